// Compute backends for the decoder layers. The CPU path lives in src/model
// and src/kernels/cpu; a device backend (CUDA) holds its own copy of the
// weights and its own KV cache storage, and runs a contiguous range of the
// first layers of every forward call (the rest run on the CPU, so the
// activations cross once per boundary).
//
// The model layer describes the network with plain pointers (ModelDesc) so
// this library does not depend on it. Block tables stay owned by the CPU
// KvCache bookkeeping; the device mirrors its storage with the same block ids.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/model.h"
#include "frugal/status.h"
#include "frugal/tensor_type.h"
#include "kernels/cpu/matmul.h"

namespace frugal::backend {

using kernels::WeightMatrix;

// Operations a backend may or may not implement, for "can you run this?" queries.
enum class Op { kMatmul, kRmsNorm, kRope, kAttention, kSwiGlu, kResidualAdd };

struct LayerDesc {
  const float* attn_norm = nullptr;
  WeightMatrix wq, wk, wv, wo;
  const float* bq = nullptr;  // optional biases
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;
  WeightMatrix w_gate, w_up, w_down;
};

struct ModelDesc {
  int n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_rot = 0, n_vocab = 0;
  float rms_eps = 1e-5f;
  bool rope_neox = false;
  std::vector<LayerDesc> layers;
  const float* output_norm = nullptr;
  WeightMatrix output;
};

// Weights of the first n_layers layers (and optionally the output head) on a device.
class DeviceModel {
 public:
  virtual ~DeviceModel() = default;
  virtual int n_layers() const = 0;
  virtual bool has_output() const = 0;
  virtual uint64_t bytes() const = 0;
};

struct DeviceContextOptions {
  int n_layers = 0;             // layers [0, n_layers) run on the device
  bool output_on_device = false;  // final norm + output projection too (all layers on the device)
  int max_batch_tokens = 512;
  int max_sequences = 1;
  int max_context = 0;
  int kv_block_tokens = 16;
  int kv_blocks = 0;
};

// One forward step as the device sees it.
struct StepInput {
  std::span<const BatchEntry> batch;
  const float* x = nullptr;         // [n][n_embd] token embeddings
  const float* rope_cos = nullptr;  // [n][n_rot/2]
  const float* rope_sin = nullptr;
  // The block table of a sequence (positions -> KV block ids), already
  // reserved for every position of the batch.
  std::span<const int32_t> (*block_table)(const void* owner, int32_t seq) = nullptr;
  const void* table_owner = nullptr;
};

// Host memory a device uploads a step's inputs from (pinned), laid out for a
// step of a given number of tokens; null where the device has none.
struct StepStaging {
  float* x = nullptr;
  float* rope_cos = nullptr;
  float* rope_sin = nullptr;
};

class DeviceContext {
 public:
  virtual ~DeviceContext() = default;
  // Where the caller may build the inputs of a next step of n_tokens entries
  // (StepInput's x and RoPE tables may then point there, and no copy is made).
  virtual StepStaging staging(int /*n_tokens*/) { return {}; }
  // Runs the device layers. With output_on_device, `out` views n_vocab
  // floats per entry that wants logits (rows of argmax_only entries may be
  // left unfilled when out->argmax holds every row's argmax), in host memory
  // the context owns, valid until its next forward; otherwise x_out
  // ([n][n_embd]) receives the residual stream after the last device layer.
  virtual Status forward(const StepInput& in, float* x_out, StepOutput* out) = 0;
  // Mirrors KvCache's copy-on-write of a shared partial block.
  virtual Status copy_kv_block(int32_t from, int32_t to) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // `type` is the weight type for kMatmul and ignored for the other ops.
  virtual bool supports(Op op, TensorType type = TensorType::kF32) const = 0;
  // Checks that every op of the first n_layers layers (and the output head)
  // can run; the message names the first that cannot.
  virtual Status check_model(const ModelDesc& model, int n_layers, bool output) const = 0;
  virtual Expected<std::shared_ptr<DeviceModel>> upload(const ModelDesc& model, int n_layers,
                                                        bool output) = 0;
  virtual Expected<std::unique_ptr<DeviceContext>> create_context(std::shared_ptr<DeviceModel> weights,
                                                                  const ModelDesc& model,
                                                                  const DeviceContextOptions& options) = 0;
  // The device memory's peak bandwidth in GB/s (the decode roofline), or 0
  // when the device does not say.
  virtual double peak_bandwidth_gbps() const { return 0; }
};

// Peak bandwidth in GB/s of double-data-rate memory from its clock (kHz)
// and bus width (bits), as a GPU reports them: an H100 SXM's 2,619 MHz and
// 5,120 bits give 3,352 GB/s (its datasheet: 3.35 TB/s). 0 when either is
// unknown (not positive).
inline double memory_bandwidth_gbps(int64_t clock_khz, int64_t bus_bits) {
  if (clock_khz <= 0 || bus_bits <= 0) return 0;
  return 2.0 * static_cast<double>(clock_khz) * 1e3 * (static_cast<double>(bus_bits) / 8.0) / 1e9;
}

// The CUDA backend, or kUnsupported when this build has no CUDA or no GPU
// is visible.
Expected<Backend*> cuda_backend();

// Whether this build includes the CUDA backend.
bool cuda_compiled();

}  // namespace frugal::backend
