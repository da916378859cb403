// Loading a model and running its forward pass.
//
// The forward pass always takes a batch: a list of (sequence, position,
// token) entries. A single prompt is a batch of one sequence; continuous
// batching, prefix sharing and speculative verification are scheduling
// decisions on top of the same call. Keys and values live in a paged KV cache
// addressed through per-sequence block tables (see KvCache).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/status.h"

namespace frugal {

class GgufFile;
class Tokenizer;
class ThreadPool;
struct ModelImpl;
struct ContextImpl;

struct ModelInfo {
  std::string architecture;  // general.architecture ("llama", "qwen2", ...)
  std::string name;          // general.name, if any
  int64_t n_params = 0;
  uint64_t weight_bytes = 0;  // bytes of all weight tensors
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_ctx_train = 0;
  std::string weight_type;  // dominant tensor type, e.g. "Q4_0"
  // Roofline accounting: weight bytes every decoded token must stream (all
  // matmul weights; the embedding table only when it doubles as the output)
  // and the multiply-adds of those matmuls per token.
  uint64_t decode_bytes_per_token = 0;
  int64_t matmul_params = 0;
};

struct ModelOptions {
  int n_threads = 0;  // 0: default_thread_count() (respects cgroup quotas)
  // CPU matmuls of quantized weights take their activations in two 8-bit
  // passes (~15 bits) instead of one: the quality of fp32 activations (Q4_0
  // perplexity delta +1.23% instead of +1.25..1.27% on the bundled model)
  // for about twice the integer work.
  bool fine_activations = false;
};

class Model {
 public:
  static Expected<std::unique_ptr<Model>> load(const std::string& path,
                                               const ModelOptions& options = {});
  ~Model();

  const ModelInfo& info() const;
  const Tokenizer& tokenizer() const;
  ThreadPool& thread_pool() const;
  const ModelImpl& impl() const { return *impl_; }

 private:
  Model();
  std::unique_ptr<ModelImpl> impl_;
};

// One token to process: sequence id, its position in that sequence, and
// whether the caller wants the logits of this position.
struct BatchEntry {
  int32_t seq = 0;
  int32_t pos = 0;
  int32_t token = 0;
  bool want_logits = false;
  // With want_logits: the caller needs only the row's largest logit (greedy
  // sampling). A device may then compute it itself (StepOutput::argmax) and
  // leave the row's logits unfilled.
  bool argmax_only = false;
};

// One step's results: n_vocab logits per entry with want_logits, in batch
// order, and, when the device computed them, the index of each row's largest
// logit (the lowest index among equals; empty otherwise). Views into the
// context, valid until its next step.
struct StepOutput {
  std::span<const float> logits;
  std::span<const int32_t> argmax;
};

// Where the decoder layers run.
enum class Device { kCpu, kCuda };

// The inputs of a decoder layer's linear projections.
enum class LinearInput {
  kAttnIn,        // normed hidden state into q/k/v
  kAttnOutputIn,  // attention output into attn_output
  kFfnIn,         // normed hidden state into gate/up
  kFfnDownIn,     // gated activation into ffn_down
};

// Sees the input rows of every linear projection of the layers that run on
// the CPU, during forward() (calibration statistics for quantization).
class LinearInputObserver {
 public:
  virtual ~LinearInputObserver() = default;
  virtual void observe(int layer, LinearInput input, const float* rows, int64_t n_rows, int64_t width) = 0;
};

struct ContextOptions {
  int max_sequences = 1;     // distinct sequence ids in [0, max_sequences)
  int max_context = 0;       // tokens per sequence; 0: the model's training context
  int max_batch_tokens = 512;  // entries per forward() call
  int kv_block_tokens = 16;  // tokens per KV cache block
  int kv_blocks = 0;         // 0: enough for max_sequences full contexts
  Device device = Device::kCpu;
  // With Device::kCuda: layers [0, gpu_layers) run on the GPU, the rest on the
  // CPU (-1: all layers and the output head on the GPU).
  int gpu_layers = -1;
  LinearInputObserver* observer = nullptr;  // not owned; must outlive the context
};

// Parses "cpu" / "cuda" (for command-line flags).
Expected<Device> parse_device(std::string_view name);

// Per-stream state: the KV cache and the scratch buffers of the forward pass,
// all reserved at creation so the token loop allocates nothing.
class InferenceContext {
 public:
  static Expected<std::unique_ptr<InferenceContext>> create(const Model& model,
                                                            const ContextOptions& options = {});
  ~InferenceContext();

  // Runs the batch; on success `logits` holds n_vocab floats per entry with
  // want_logits, in batch order. Entries of one sequence must come in
  // increasing position order; positions must continue that sequence's cache
  // (pos == current length) or overwrite from an earlier point (the cache is
  // truncated there first).
  Status forward(std::span<const BatchEntry> batch, std::vector<float>& logits);
  // The same step without the copy: the logits rows stay where the step left
  // them (on the GPU path, pinned host memory the device writes into
  // directly) and the views are valid until this context's next step.
  Expected<StepOutput> step(std::span<const BatchEntry> batch);

  // Forgets a sequence and frees its KV blocks.
  void clear_sequence(int32_t seq);
  // Keeps only the first n_tokens of a sequence.
  void truncate_sequence(int32_t seq, int32_t n_tokens);
  int32_t sequence_length(int32_t seq) const;
  // Fraction of KV blocks in use, in [0, 1]. Cached prefix blocks that no
  // sequence uses count as free.
  double kv_usage() const;
  // KV blocks a new reservation can take.
  int kv_free_blocks() const;

  // Prefix reuse. attach_cached_prefix gives the empty sequence `seq` the
  // cached KV blocks of the longest block-aligned prefix of `tokens` (always
  // leaving the last token to compute) and returns how many positions it now
  // holds. publish_prefix offers the full blocks of `seq`, whose positions hold
  // `tokens`, to later sequences.
  int32_t attach_cached_prefix(int32_t seq, std::span<const int32_t> tokens);
  void publish_prefix(int32_t seq, std::span<const int32_t> tokens);
  const ContextOptions& options() const;

 private:
  InferenceContext();
  std::unique_ptr<ContextImpl> impl_;
};

}  // namespace frugal
