// Building blocks shared by every architecture: RMSNorm over rows, rotary
// embeddings, paged-KV attention, the SwiGLU feed-forward, and the standard
// pre-norm decoder layer made of them. All work on a batch of entries
// (rows), fp32 activations.
#pragma once

#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "frugal/model.h"
#include "kernels/cpu/matmul.h"
#include "model/hparams.h"
#include "model/kv_cache.h"

namespace frugal {

struct LayerWeights;

// Activation buffers of one forward call, sized at context creation for
// max_batch_tokens rows so the token loop never allocates.
struct ForwardBuffers {
  std::vector<float> x;      // residual stream [n][n_embd]
  std::vector<float> h;      // normed input / projection output [n][n_embd]
  std::vector<float> q;      // [n][q_dim]
  std::vector<float> k;      // [n][kv_dim]
  std::vector<float> v;      // [n][kv_dim]
  std::vector<float> attn;   // [n][q_dim]
  std::vector<float> gate;   // [n][n_ff]
  std::vector<float> up;     // [n][n_ff]
  std::vector<float> rope_cos, rope_sin;  // [n][n_rot/2]
  std::vector<float> rope_inv_freq;       // [n_rot/2], fixed per model
  std::vector<std::vector<float>> scores;  // per thread: [n_head / n_head_kv][max_context]
};

struct LayerContext {
  const HParams& hp;
  RopeStyle rope_style;
  const LayerWeights& w;
  int layer;
  std::span<const BatchEntry> batch;
  KvCache& kv;
  ForwardBuffers& buf;
  ThreadPool& pool;
  kernels::MatmulScratch& mm;
  LinearInputObserver* observer = nullptr;
  int model_layer = 0;  // index in the model (layer counts from the first CPU layer)

  void observe(LinearInput input, const float* rows, int64_t n_rows, int64_t width) const {
    if (observer) observer->observe(model_layer, input, rows, n_rows, width);
  }
};

// out[r] = x[r] / rms(x[r]) * weight, for n_rows rows of n values.
void rmsnorm_rows(const float* x, const float* weight, int64_t n_rows, int64_t n, float eps,
                  float* out, ThreadPool& pool);

// Fills cos/sin tables ([n][n_rot/2]) for the batch positions.
void rope_tables(const HParams& hp, const std::vector<float>& inv_freq,
                 std::span<const BatchEntry> batch, float* cos_out, float* sin_out);

// Rotates the first n_rot dimensions of every head of every row in place.
void apply_rope(float* rows, int64_t n_rows, int n_heads, const HParams& hp, RopeStyle style,
                const float* cos_table, const float* sin_table);

// Writes k/v rows into the cache, then computes causal attention of every
// (entry, head) over its sequence's positions [0, pos] into buf.attn.
void paged_attention(LayerContext& ctx);

// The Llama-style block: x += Wo·attn(rope(Wq·n(x)), ...); x += Wd·(silu(Wg·n(x)) * Wu·n(x)).
void standard_decoder_layer(LayerContext& ctx);

}  // namespace frugal
