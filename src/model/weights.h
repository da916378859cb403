// Weights bound to a model's tensors: matrices stay in the mapped file in
// their stored type (the matmul kernels read them in place); small 1-D
// tensors (norms, biases) are converted to fp32 once at load.
#pragma once

#include <string>
#include <vector>

#include "frugal/status.h"
#include "kernels/cpu/matmul.h"
#include "model/hparams.h"

namespace frugal {

class GgufFile;
struct GgufTensorInfo;

using kernels::WeightMatrix;

struct LayerWeights {
  std::vector<float> attn_norm;
  WeightMatrix wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;  // empty when the architecture has no QKV bias
  std::vector<float> q_norm, k_norm;  // per-head RMSNorm of Q and K before RoPE (Qwen3); else empty
  std::vector<float> ffn_norm;
  WeightMatrix w_gate, w_up, w_down;
};

struct ModelWeights {
  WeightMatrix token_embd;  // rows = n_vocab, cols = n_embd
  std::vector<float> output_norm;
  WeightMatrix output;      // token_embd when the embeddings are tied
  std::vector<LayerWeights> layers;
};

// What an architecture's tensors look like; checked while binding.
struct BindOptions {
  bool qkv_bias = false;  // attn_{q,k,v}.bias required
  bool qk_norm = false;   // attn_{q,k}_norm.weight (head_dim each) required
};

// Binds and shape-checks every tensor; errors name the tensor and the
// expected and actual shapes.
Expected<ModelWeights> bind_weights(const GgufFile& file, const HParams& hp,
                                    const BindOptions& options);

// Copies row `row` of a matrix to fp32 (token embedding lookup).
Status read_matrix_row(const WeightMatrix& m, int64_t row, float* out);

}  // namespace frugal
