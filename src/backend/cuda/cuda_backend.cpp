// The CUDA backend: weights uploaded in their stored GGUF type, a paged fp16
// KV cache in device memory mirroring the CPU block tables, and the decoder
// layers as a sequence of kernels on one stream. Small batches (decode) use
// the fused dequantize-GEMV and are replayed from CUDA graphs; large batches
// (prefill) use cuBLAS on fp16/bf16 operands.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <utility>
#include <mutex>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "kernels/cuda/cuda_kernels.h"
#include "quant/reference.h"

namespace frugal::backend {
namespace {

Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return internal_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) + " (" +
                        cudaGetErrorString(err) + ")");
}

Status cublas_status(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return internal_error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(st));
}

#define CUDA_TRY(expr, what) FRUGAL_RETURN_IF_ERROR(cuda_status((expr), what))
#define CUBLAS_TRY(expr, what) FRUGAL_RETURN_IF_ERROR(cublas_status((expr), what))

std::string gib(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llu bytes (%.2f GiB)", static_cast<unsigned long long>(bytes),
                bytes / double(1ull << 30));
  return buf;
}

uint64_t align_up(uint64_t v) { return (v + 255) & ~uint64_t{255}; }

// Fails with kResourceExhausted naming the bytes needed and free.
Status check_free_memory(uint64_t need, const char* what) {
  size_t free_b = 0, total_b = 0;
  CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  if (need > free_b)
    return Status(ErrorCode::kResourceExhausted, std::string(what) + " needs " + gib(need) + " of GPU memory, " +
                                                     gib(free_b) + " free of " + gib(total_b));
  return Status::Ok();
}

// One device allocation carved into 256-byte aligned pieces.
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() {
    if (base_) cudaFree(base_);
  }
  Status allocate(uint64_t bytes, const char* what) {
    FRUGAL_RETURN_IF_ERROR(check_free_memory(bytes, what));
    CUDA_TRY(cudaMalloc(&base_, std::max<uint64_t>(bytes, 256)), what);
    size_ = bytes;
    return Status::Ok();
  }
  void* take(uint64_t bytes) {
    void* p = static_cast<uint8_t*>(base_) + used_;
    used_ += align_up(bytes);
    return p;
  }
  uint64_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  uint64_t size_ = 0, used_ = 0;
};

struct DeviceMatrix {
  TensorType type = TensorType::kF32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  uint64_t row_bytes = 0;
  bool split = false;  // rows in the split layout (cuda::split_row_bytes), for 8-bit-activation GEMVs
};

struct DeviceLayer {
  const float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  DeviceMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
};

uint64_t matrix_bytes(const WeightMatrix& w) { return quant::row_size(w.type, w.cols) * static_cast<uint64_t>(w.rows); }

// FRUGAL_CUDA_INT8=0: fp32-activation GEMVs on the GGUF layout only (for comparisons).
bool int8_gemv_enabled() {
  const char* g = std::getenv("FRUGAL_CUDA_INT8");
  return !(g && std::strcmp(g, "0") == 0);
}

// Q4_0 / Q8_0 / Q4_K / Q6_K go to the GPU in their device layouts when the 8-bit GEMVs are on.
bool upload_split(const WeightMatrix& w) {
  return int8_gemv_enabled() && cuda::split_layout_supported(w.type) && cuda::split_row_bytes(w.type, w.cols) > 0;
}

uint64_t device_matrix_bytes(const WeightMatrix& w) {
  return upload_split(w) ? cuda::split_row_bytes(w.type, w.cols) * static_cast<uint64_t>(w.rows) : matrix_bytes(w);
}

class CudaModel final : public DeviceModel {
 public:
  int n_layers() const override { return static_cast<int>(layers.size()); }
  bool has_output() const override { return output.data != nullptr; }
  uint64_t bytes() const override { return arena.size(); }

  DeviceArena arena;
  std::vector<DeviceLayer> layers;
  const float* output_norm = nullptr;
  DeviceMatrix output;
};

// Host-side staging of one step's inputs (pinned) and its device twin. The
// pieces of an n-token step lie back to back from the region's start (the
// block tables last), so one copy uploads them all; the layout depends on n
// alone, so a graph captured for n keeps reading the right addresses. The
// device region's x is the residual stream itself (x_).
struct StepBuffers {
  float *x = nullptr, *cos = nullptr, *sin = nullptr;
  int32_t *pos = nullptr, *table_offset = nullptr, *out_rows = nullptr;
  int32_t* attn_tiles = nullptr;  // (first entry, count) pairs for attention_prefill
  int32_t* argmax = nullptr;      // per logits row (device greedy sampling)
  int32_t* tables = nullptr;      // the sequences' block tables, concatenated
};

// The pieces of an n-token step from `base` (null: sizes only); returns the
// bytes before the tables.
uint64_t carve_step(void* base, int64_t n, int64_t d, int half, StepBuffers& s) {
  uint64_t used = 0;
  auto take = [&](uint64_t bytes) {
    void* p = base ? static_cast<uint8_t*>(base) + used : nullptr;
    used += align_up(bytes);
    return p;
  };
  s.x = static_cast<float*>(take(n * d * sizeof(float)));
  s.cos = static_cast<float*>(take(n * half * sizeof(float)));
  s.sin = static_cast<float*>(take(n * half * sizeof(float)));
  s.pos = static_cast<int32_t*>(take(n * 4));
  s.table_offset = static_cast<int32_t*>(take(n * 4));
  s.out_rows = static_cast<int32_t*>(take(n * 4));
  s.attn_tiles = static_cast<int32_t*>(take(n * 8));
  s.argmax = static_cast<int32_t*>(take(n * 4));
  s.tables = static_cast<int32_t*>(take(0));
  return used;
}

// 8-bit quants of a matmul input (cuda::quantize_activations_q8), or none.
struct Q8Input {
  const int8_t* q = nullptr;
  const float* d = nullptr;
};

// FRUGAL_CUDA_STEP_TIMES=1: where a step's time goes, per batch size, printed
// to stderr when the context closes: host staging, the uploads, the kernels
// (CUDA events on the stream) and the output download plus the final wait.
// FRUGAL_CUDA_STEP_TIMES=2 also prints one line per step, with the host time
// spent launching its kernels (or capturing and replaying its graph) and the
// caller's time before it.
class StepTimes {
 public:
  enum Mark { kStart, kUploaded, kComputed, kDone, kMarks };
  ~StepTimes() {
    if (!events_[0]) return;
    for (auto& [n, t] : sums_)
      std::fprintf(stderr, "cuda steps of %d tokens: %ld, mean ms: staging %.3f upload %.3f kernels %.3f download %.3f\n",
                   n, t.count, t.ms[0] / t.count, t.ms[1] / t.count, t.ms[2] / t.count, t.ms[3] / t.count);
    if (gaps_ > 0) std::fprintf(stderr, "cuda steps: mean host time between steps %.3f ms\n", gap_ms_ / gaps_);
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  bool init() {
    const char* v = std::getenv("FRUGAL_CUDA_STEP_TIMES");
    if (!v || (std::strcmp(v, "1") != 0 && std::strcmp(v, "2") != 0)) return false;
    per_step_ = v[0] == '2';
    for (cudaEvent_t& e : events_)
      if (cudaEventCreate(&e) != cudaSuccess) return false;
    return true;
  }
  bool on() const { return events_[kMarks - 1] != nullptr; }
  void begin() {
    if (!on()) return;
    host_start_ = std::chrono::steady_clock::now();
    last_gap_ms_ = host_end_ ? std::chrono::duration<double, std::milli>(host_start_ - *host_end_).count() : 0.0;
    if (host_end_) gap_ms_ += last_gap_ms_, ++gaps_;
  }
  void mark(Mark m, cudaStream_t s) {
    if (!on()) return;
    if (m == kStart) host_staged_ = std::chrono::steady_clock::now();
    if (m == kUploaded) host_launch_ = std::chrono::steady_clock::now();
    if (m == kComputed) host_launched_ = std::chrono::steady_clock::now();
    cudaEventRecord(events_[m], s);
  }
  // After the step's final synchronisation.
  // `how`: "plain", "capture" or "replay".
  void end(int n, const char* how) {
    if (!on()) return;
    Sum& t = sums_[n];
    ++t.count;
    double ms[kMarks] = {std::chrono::duration<double, std::milli>(host_staged_ - host_start_).count()};
    for (int m = kStart; m + 1 < kMarks; ++m) {
      float e = 0;
      cudaEventElapsedTime(&e, events_[m], events_[m + 1]);
      ms[m + 1] = e;
    }
    for (int m = 0; m < kMarks; ++m) t.ms[m] += ms[m];
    if (per_step_)
      std::fprintf(stderr,
                   "cuda step %ld: %d tokens %s, ms: before %.3f staging %.3f upload %.3f kernels %.3f (host launch "
                   "%.3f) download %.3f\n",
                   steps_, n, how, last_gap_ms_, ms[0], ms[1], ms[2],
                   std::chrono::duration<double, std::milli>(host_launched_ - host_launch_).count(), ms[3]);
    ++steps_;
    host_end_ = std::chrono::steady_clock::now();
  }

 private:
  struct Sum {
    long count = 0;
    double ms[4] = {};
  };
  cudaEvent_t events_[kMarks] = {};
  std::chrono::steady_clock::time_point host_start_, host_staged_, host_launch_, host_launched_;
  bool per_step_ = false;
  long steps_ = 0;
  double last_gap_ms_ = 0;
  std::optional<std::chrono::steady_clock::time_point> host_end_;  // of the previous step
  double gap_ms_ = 0;  // the caller's time between steps (scheduling, sampling, embeddings)
  long gaps_ = 0;
  std::map<int, Sum> sums_;
};

class CudaContext final : public DeviceContext {
 public:
  ~CudaContext() override {
    drop_graphs();
    if (cublas_) cublasDestroy(cublas_);
    if (host_) cudaFreeHost(host_);
    if (host_logits_) cudaFreeHost(host_logits_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init(std::shared_ptr<DeviceModel> weights, const ModelDesc& md, const DeviceContextOptions& o);
  Status forward(const StepInput& in, float* x_out, StepOutput* out) override;
  StepStaging staging(int n_tokens) override {
    if (n_tokens < 1 || n_tokens > opt_.max_batch_tokens) return {};
    StepBuffers s;
    carve_step(host_, n_tokens, md_.n_embd, md_.n_rot / 2, s);
    return {s.x, s.cos, s.sin};
  }
  Status copy_kv_block(int32_t from, int32_t to) override {
    for (int l = 0; l < opt_.n_layers; ++l)
      CUDA_TRY(cuda::copy_kv_block(kv_layout(l), from, to, stream_), "KV block copy");
    return Status::Ok();
  }

 private:
  cuda::KvLayout kv_layout(int layer) const {
    const size_t per_layer = static_cast<size_t>(opt_.kv_blocks) * md_.n_head_kv * opt_.kv_block_tokens * md_.head_dim;
    return {keys_ + layer * per_layer, values_ + layer * per_layer, md_.n_head_kv, md_.head_dim,
            opt_.kv_block_tokens};
  }
  // Quantizes x (n rows of `cols`) for the 8-bit GEMVs when one of `ws` takes
  // them at this batch size; else leaves `out` empty. `produced`: the kernel
  // that wrote x already wrote its quants there (q8_target).
  Status prepare_q8(const float* x, int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws,
                    Q8Input& out, const cuda::Q8Out& produced = {});
  // Where the producer of a matmul input writes its 8-bit quants (fused into
  // RMSNorm / SwiGLU) when one of `ws` takes them at this batch size.
  cuda::Q8Out q8_target(int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws) const;
  // Whether one of `ws` multiplies 8-bit activations at batch size n.
  bool wants_q8(int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws) const;
  // Whether a single-token gate/up pair can run as one GEMV with the SwiGLU in its epilogue.
  bool swiglu_fusable(const DeviceLayer& w, const Q8Input& xq) const;
  Status matmul(const DeviceMatrix& w, const float* x, int n, float* y, bool accumulate, const Q8Input& xq = {});
  // y_i = W_i x for matrices sharing their input (q/k/v, gate/up): one GEMV
  // launch when they share type, layout and width, else one matmul each.
  Status matmul_group(std::initializer_list<std::pair<const DeviceMatrix*, float*>> outs, const float* x, int n,
                      const Q8Input& xq);
  // y (ldy floats per token) = the first `rows` rows of W (w.data on,
  // contiguous, one type) times 16-bit activations act ([n][w.cols]: bf16 for
  // bf16 weights, else fp16) on cuBLAS.
  Status gemm_rows(const DeviceMatrix& w, int64_t rows, const void* act, int n, float* y, int64_t ldy,
                   bool accumulate);
  // The matrices' outputs side by side in each token's row of y ([q | k | v],
  // [gate | up]); one cuBLAS call per run of matrices contiguous in memory.
  Status gemm_stacked(std::initializer_list<const DeviceMatrix*> ws, const void* act, int n, float* y, int64_t ldy,
                      bool accumulate);
  // Large batches: RMSNorm and SwiGLU write the 16-bit GEMM inputs
  // themselves, q/k/v and gate/up each come out of one stacked GEMM.
  // Supported when no matrix is fp32 and each stack takes one activation type.
  bool gemm_layer_supported(const DeviceLayer& w) const;
  Status gemm_layer(const DeviceLayer& w, int layer, int n, int splits);
  // Decode batches (and the fallback for large ones): the GEMVs, fused 8-bit
  // activations, grouped launches.
  Status gemv_layer(const DeviceLayer& w, int layer, int n, int splits);
  // One token through a layer whose matrices all have split layouts: the
  // row-owning GEMVs (cuda::gemv_rows*) with the RMSNorms and the SwiGLU in
  // their epilogues. norm_ready: the previous layer's down GEMV left this
  // layer's attention-norm quants; next_norm: the next layer's attention
  // norm weight when it runs this way too (its quants are left for it).
  bool rows_fusable(const DeviceLayer& w) const;
  Status rows_layer(const DeviceLayer& w, int layer, int splits, bool norm_ready, const float* next_norm);
  // rows_layer's q/k/v: one launch per run of matrices of one type and width.
  Status rows_group(std::initializer_list<std::pair<const DeviceMatrix*, float*>> outs,
                    const cuda::DeferredNorm& norm);
  // RoPE and the KV store of the projections in q_ / k_ / v_: for one token
  // inside the attention kernel (rope is set for attend), else their own
  // kernel now (rope left empty).
  Status rope_for_attention(const DeviceLayer& w, int layer, int n, cuda::RopeIn& rope);
  // Attention of the step's queries in q_ into attn_ (tiles when the step has them).
  Status attend(int layer, int n, int splits, const cuda::Q8Out& q8, const cuda::RopeIn& rope = {},
                cuda::Act16Out out16 = {});
  // Everything after the input upload: the layers and the output head.
  Status run_kernels(int n, int n_out, int splits);
  Status reserve_host_logits(size_t elems) {
    if (elems <= host_logits_elems_) return Status::Ok();
    if (host_logits_) CUDA_TRY(cudaFreeHost(host_logits_), "pinned logits release");
    host_logits_ = nullptr;
    host_logits_elems_ = 0;
    void* p = nullptr;
    CUDA_TRY(cudaHostAlloc(&p, elems * sizeof(float), cudaHostAllocDefault), "pinned logits allocation");
    host_logits_ = static_cast<float*>(p);
    host_logits_elems_ = elems;
    return Status::Ok();
  }

  std::shared_ptr<DeviceModel> owner_;
  const CudaModel* model_ = nullptr;
  ModelDesc md_;  // scalars only (layer pointers are not used here)
  DeviceContextOptions opt_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceArena arena_;
  __half *keys_ = nullptr, *values_ = nullptr;
  float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *attn_ = nullptr;
  float *gate_ = nullptr, *up_ = nullptr, *partial_ = nullptr, *logits_ = nullptr;
  unsigned* split_counters_ = nullptr;  // one-token attention: n_head counters, zero between launches
  float* qkv_ = nullptr;  // the GEMM path's fused [q | k | v] rows
  __half* act16_ = nullptr;   // activations converted for cuBLAS
  int8_t* act_q8_ = nullptr;  // 8-bit activation quants for the integer GEMVs
  float* act_q8_scale_ = nullptr;
  // rows_layer: the deferred RMSNorm quants and the per-block sums of squares
  // (n_embd / 32) that a residual GEMV leaves for the next GEMV.
  int8_t* norm_q8_ = nullptr;
  float *norm_q8_scale_ = nullptr, *norm_sum_sq_ = nullptr;
  __half* wscratch_ = nullptr;  // dequantized weight rows for cuBLAS
  int64_t wscratch_elems_ = 0;
  int max_splits_ = 1;
  int blocks_per_seq_ = 0;
  void* host_ = nullptr;     // pinned staging region
  void* dev_step_ = nullptr;  // its device twin; starts with x_
  // Pinned rows of the step's logits (grown on demand: most steps want one
  // row per sequence, not one per batch entry). Downloads into pageable memory
  // went at a fraction of the bus's speed.
  float* host_logits_ = nullptr;
  size_t host_logits_elems_ = 0;
  StepBuffers hs_, ds_;  // pinned host / device
  std::vector<int32_t> seq_offset_;
  std::vector<int32_t> entry_seq_;  // sequence id per batch entry (tiles of the prefill attention)
  int n_attn_tiles_ = 0;            // > 0: this step's attention runs in tiles on tensor cores
  void drop_graphs() {
    for (auto& [key, g] : graphs_)
      if (g.exec) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
  }
  // A step shape's graph is captured when the shape comes in two steps in a
  // row: a steady decode batch repeats its shape every step, while the sizes
  // of a batch that shrinks (or grows) as sequences finish (or join) come
  // once each. A capture stalls the GPU for the capture and instantiation
  // (~5 ms for a Llama-3-8B step, about the step's own kernel time), which a
  // shape seen once more much later never earns back. Once captured, a shape
  // replays whenever it comes.
  struct StepGraph {
    cudaGraphExec_t exec = nullptr;
  };
  std::map<uint64_t, StepGraph> graphs_;
  uint64_t last_key_ = ~uint64_t{0};  // the previous step's shape (~0: not graphable)
  bool use_graphs_ = true;
  // FRUGAL_CUDA_GRAPH_ON_REPEAT=1: capture a shape the second time it comes,
  // in a row or not (for comparisons).
  bool capture_on_any_repeat_ = false;
  // Steps of up to this many tokens run the decode GEMVs, larger ones the
  // GEMM path: 1 for 16-bit weights, else kGemvMaxRows (init() says why;
  // FRUGAL_CUDA_GEMV_TOKENS=1..8 overrides it).
  int gemv_max_tokens_ = cuda::kGemvMaxRows;
  bool use_tile_attention_ = true;  // FRUGAL_CUDA_TILE_ATTN=0: the per-entry kernel for every batch
  bool use_decode_attention_ = true;  // FRUGAL_CUDA_DECODE_ATTN=0: tiles for decode batches too
  bool use_int8_ = true;  // FRUGAL_CUDA_INT8=0: fp32-activation GEMVs only (for comparisons)
  // FRUGAL_CUDA_FUSE=0: one GEMV launch per matrix and a separate activation
  // quantization launch (for comparisons).
  bool use_fusion_ = true;
  bool use_rope_attention_ = true;  // FRUGAL_CUDA_ROPE_ATTN=0: RoPE + KV store in their own kernel for one token
  bool use_mixed_group_ = true;     // FRUGAL_CUDA_MIXED_GROUP=0: one launch per weight type of a q/k/v group
  bool use_swiglu_gemv_ = true;  // FRUGAL_CUDA_SWIGLU_GEMV=0: SwiGLU in its own kernel after the gate/up GEMV
  // Which single-token layers run on rows_layer (five kernels) instead of
  // gemv_layer (eight). Llama-3-8B on an H100, tg128 tok/s, gemv_layer /
  // rows_layer: Q8_0 307 / 317, Q4_0 471 / 444, Q4_K_M 412 / 394; with
  // one-head attention blocks Q8_0 328 / 336, Q4_0 527 / 495 -- the 4-bit
  // rows hold too few bytes per block to hide a block's load latency with
  // one block an SM. FRUGAL_CUDA_ROWS_GEMV=1: every split-layout layer,
  // =0: none (for comparisons).
  enum class RowsGemv { kQ8_0Only, kAll, kNone };
  RowsGemv rows_gemv_ = RowsGemv::kQ8_0Only;
  StepTimes times_;
};

constexpr int kMaxSplitBatch = 4;  // decode batches up to this size use split attention
// Steps of up to this many tokens run from captured graphs (decode batches;
// prompt chunks are larger, and their kernels long enough to hide launches).
constexpr int kMaxGraphTokens = 256;
constexpr uint64_t kCublasWorkspaceBytes = uint64_t{32} << 20;  // cuBLAS's own advice for sm_90

Status CudaContext::init(std::shared_ptr<DeviceModel> weights, const ModelDesc& md, const DeviceContextOptions& o) {
  owner_ = std::move(weights);
  model_ = static_cast<const CudaModel*>(owner_.get());
  md_ = md;
  md_.layers.clear();
  opt_ = o;
  if (const char* g = std::getenv("FRUGAL_CUDA_GRAPHS"); g && std::strcmp(g, "0") == 0) use_graphs_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_GRAPH_ON_REPEAT"); g && std::strcmp(g, "1") == 0)
    capture_on_any_repeat_ = true;
  if (const char* g = std::getenv("FRUGAL_CUDA_DECODE_ATTN"); g && std::strcmp(g, "0") == 0)
    use_decode_attention_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_TILE_ATTN"); g && std::strcmp(g, "0") == 0) use_tile_attention_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_FUSE"); g && std::strcmp(g, "0") == 0) use_fusion_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_SWIGLU_GEMV"); g && std::strcmp(g, "0") == 0) use_swiglu_gemv_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_ROPE_ATTN"); g && std::strcmp(g, "0") == 0) use_rope_attention_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_MIXED_GROUP"); g && std::strcmp(g, "0") == 0) use_mixed_group_ = false;
  if (const char* g = std::getenv("FRUGAL_CUDA_ROWS_GEMV"))
    rows_gemv_ = std::strcmp(g, "1") == 0 ? RowsGemv::kAll : std::strcmp(g, "0") == 0 ? RowsGemv::kNone : rows_gemv_;
  use_int8_ = int8_gemv_enabled();
  // 16-bit weights: cuBLAS beats the fp32-activation GEMV from two tokens
  // on (Llama-3-8B BF16 on an H200, ms of kernels per decode step, GEMV /
  // GEMM: 2 tokens 5.15 / 4.80, 4: 6.36 / 4.85, 8: 12.25 / 5.02). The 8-bit
  // activation GEMVs of quantized weights stay ahead of dequantize + GEMM
  // up to 8 (Q4_0, 8 tokens: 5.04 / 10.93).
  bool all_16bit = true;
  for (const DeviceLayer& l : model_->layers)
    for (const DeviceMatrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      all_16bit = all_16bit && (w->type == TensorType::kBF16 || w->type == TensorType::kF16);
  if (o.output_on_device)
    all_16bit = all_16bit && (model_->output.type == TensorType::kBF16 || model_->output.type == TensorType::kF16);
  if (all_16bit) gemv_max_tokens_ = 1;
  if (const char* g = std::getenv("FRUGAL_CUDA_GEMV_TOKENS")) {
    const int v = std::atoi(g);
    if (v >= 1 && v <= cuda::kGemvMaxRows) gemv_max_tokens_ = v;
  }
  times_.init();
  CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  CUBLAS_TRY(cublasCreate(&cublas_), "cublasCreate");
  CUBLAS_TRY(cublasSetStream(cublas_, stream_), "cublasSetStream");
  CUBLAS_TRY(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");

  const int64_t n = o.max_batch_tokens;
  const int64_t d = md.n_embd, qd = int64_t(md.n_head) * md.head_dim, kvd = int64_t(md.n_head_kv) * md.head_dim;
  const int half = md.n_rot / 2;
  blocks_per_seq_ = (o.max_context + o.kv_block_tokens - 1) / o.kv_block_tokens;
  max_splits_ = std::max(1, (o.max_context + cuda::kAttnSplitTokens - 1) / cuda::kAttnSplitTokens);
  const uint64_t kv_elems = uint64_t(o.n_layers) * o.kv_blocks * o.kv_block_tokens * kvd;
  const int64_t widest = std::max<int64_t>({d, md.n_ff, qd});
  int64_t largest_matrix = 0;
  for (const DeviceLayer& l : model_->layers)
    for (const DeviceMatrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      largest_matrix = std::max(largest_matrix, w->rows * w->cols);
  if (o.output_on_device) largest_matrix = std::max(largest_matrix, model_->output.rows * model_->output.cols);
  const bool needs_gemm = n > gemv_max_tokens_;
  wscratch_elems_ = needs_gemm ? std::min<int64_t>(largest_matrix, int64_t{64} << 20) : 0;
  const uint64_t partial_elems = uint64_t(kMaxSplitBatch) * md.n_head * max_splits_ * (md.head_dim + 2);
  const uint64_t logits_elems = o.output_on_device ? uint64_t(n) * md.n_vocab : 0;
  const uint64_t f = sizeof(float);
  const uint64_t q8_elems = uint64_t(std::min<int64_t>(n, gemv_max_tokens_)) * widest;
  StepBuffers unused;
  const uint64_t step_bytes =
      carve_step(nullptr, n, d, half, unused) + align_up(uint64_t(o.max_sequences) * blocks_per_seq_ * 4);
  const uint64_t gemm_bytes = needs_gemm ? align_up(n * widest * 2) + align_up(kCublasWorkspaceBytes) +
                                              align_up(n * (qd + 2 * kvd) * f)
                                        : 0;
  uint64_t total = 2 * align_up(kv_elems * 2) + align_up(n * d * f) + align_up(n * qd * f) * 2 +
                   2 * align_up(n * kvd * f) + align_up(2 * n * md.n_ff * f) + align_up(partial_elems * f) +
                   align_up(uint64_t(md.n_head) * sizeof(unsigned)) + align_up(logits_elems * f) + gemm_bytes +
                   align_up(wscratch_elems_ * 2) + align_up(q8_elems) + align_up(q8_elems / 32 * f) + align_up(d) +
                   2 * align_up(d / 32 * f) + step_bytes;
  FRUGAL_RETURN_IF_ERROR(arena_.allocate(total, "the GPU KV cache and activation buffers"));
  keys_ = static_cast<__half*>(arena_.take(kv_elems * 2));
  values_ = static_cast<__half*>(arena_.take(kv_elems * 2));
  CUDA_TRY(cudaMemsetAsync(keys_, 0, kv_elems * 2, stream_), "KV cache clear");
  CUDA_TRY(cudaMemsetAsync(values_, 0, kv_elems * 2, stream_), "KV cache clear");
  dev_step_ = arena_.take(step_bytes);
  x_ = static_cast<float*>(dev_step_);  // every step layout's x
  h_ = static_cast<float*>(arena_.take(n * d * f));
  q_ = static_cast<float*>(arena_.take(n * qd * f));
  attn_ = static_cast<float*>(arena_.take(n * qd * f));
  k_ = static_cast<float*>(arena_.take(n * kvd * f));
  v_ = static_cast<float*>(arena_.take(n * kvd * f));
  // gate and up rows back to back: the GEMM path writes [gate | up] per token.
  gate_ = static_cast<float*>(arena_.take(2 * n * md.n_ff * f));
  up_ = gate_ + n * md.n_ff;
  if (needs_gemm) qkv_ = static_cast<float*>(arena_.take(n * (qd + 2 * kvd) * f));
  partial_ = static_cast<float*>(arena_.take(partial_elems * f));
  split_counters_ = static_cast<unsigned*>(arena_.take(uint64_t(md.n_head) * sizeof(unsigned)));
  CUDA_TRY(cudaMemsetAsync(split_counters_, 0, md.n_head * sizeof(unsigned), stream_), "attention counters clear");
  logits_ = static_cast<float*>(arena_.take(logits_elems * f));
  if (needs_gemm) act16_ = static_cast<__half*>(arena_.take(n * widest * 2));
  wscratch_ = static_cast<__half*>(arena_.take(wscratch_elems_ * 2));
  if (needs_gemm) {
    // A workspace of our own: cuBLAS then never allocates inside a graph capture.
    CUBLAS_TRY(cublasSetWorkspace(cublas_, arena_.take(kCublasWorkspaceBytes), kCublasWorkspaceBytes),
               "cublasSetWorkspace");
  }
  act_q8_ = static_cast<int8_t*>(arena_.take(q8_elems));
  act_q8_scale_ = static_cast<float*>(arena_.take(q8_elems / 32 * f));
  norm_q8_ = static_cast<int8_t*>(arena_.take(d));
  norm_q8_scale_ = static_cast<float*>(arena_.take(d / 32 * f));
  norm_sum_sq_ = static_cast<float*>(arena_.take(d / 32 * f));
  CUDA_TRY(cudaHostAlloc(&host_, step_bytes, cudaHostAllocDefault), "pinned staging allocation");
  seq_offset_.assign(o.max_sequences, -1);
  entry_seq_.assign(n, 0);
  // One row per sequence up front: a decode step's logits.
  if (o.output_on_device)
    FRUGAL_RETURN_IF_ERROR(reserve_host_logits(size_t(std::min<int64_t>(o.max_sequences, n)) * md.n_vocab));
  CUDA_TRY(cudaStreamSynchronize(stream_), "context setup");
  return Status::Ok();
}

Status CudaContext::prepare_q8(const float* x, int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws,
                               Q8Input& out, const cuda::Q8Out& produced) {
  out = {produced.q, produced.d};
  if (produced.q != nullptr || !wants_q8(n, cols, ws)) return Status::Ok();
  CUDA_TRY(cuda::quantize_activations_q8(x, n, cols, act_q8_, act_q8_scale_, stream_), "activation quantization");
  out = {act_q8_, act_q8_scale_};
  return Status::Ok();
}

cuda::Q8Out CudaContext::q8_target(int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws) const {
  if (!use_fusion_ || !wants_q8(n, cols, ws)) return {};
  return {act_q8_, act_q8_scale_};
}

bool CudaContext::wants_q8(int n, int64_t cols, std::initializer_list<const DeviceMatrix*> ws) const {
  return use_int8_ && n <= gemv_max_tokens_ && cols % 32 == 0 &&
         std::any_of(ws.begin(), ws.end(),
                     [](const DeviceMatrix* w) { return w->split || cuda::int8_gemv_supported(w->type); });
}

namespace {
// Runs of matrices of one type, layout and width among outs (in order of
// first appearance), for grouped launches: issue(targets, count) per run of
// matrices that `groupable` accepts, lone(w, y) for each other one. (A
// Q4_K_M file mixes Q4_K q/k with a Q6_K v: two runs.)
template <class Groupable, class Issue, class Lone>
Status for_each_run(std::initializer_list<std::pair<const DeviceMatrix*, float*>> outs, Groupable&& groupable,
                    Issue&& issue, Lone&& lone) {
  if (outs.size() > 32) return internal_error("grouped matmul: more than 32 matrices");
  uint32_t done = 0;  // bit i: matrix i issued (no allocation on the step's path)
  const auto* o = outs.begin();
  for (size_t i = 0; i < outs.size(); ++i) {
    if (done >> i & 1u) continue;
    const DeviceMatrix& w = *o[i].first;
    if (!groupable(w)) {
      FRUGAL_RETURN_IF_ERROR(lone(w, o[i].second));
      continue;
    }
    cuda::GemvOutput targets[cuda::kGemvMaxOutputs];
    int count = 0;
    for (size_t j = i; j < outs.size() && count < cuda::kGemvMaxOutputs; ++j) {
      const DeviceMatrix& v = *o[j].first;
      if ((done >> j & 1u) || v.type != w.type || v.split != w.split || v.cols != w.cols) continue;
      targets[count++] = {v.data, v.rows, o[j].second};
      done |= 1u << j;
    }
    FRUGAL_RETURN_IF_ERROR(issue(w, targets, count));
  }
  return Status::Ok();
}
}  // namespace

Status CudaContext::matmul_group(std::initializer_list<std::pair<const DeviceMatrix*, float*>> outs, const float* x,
                                 int n, const Q8Input& xq) {
  // The grouped kernel is the split-layout one on 8-bit activations or the
  // fp32-activation one; the GGUF-layout 8-bit kernel (Q5_0) goes alone.
  auto groupable = [&](const DeviceMatrix& w) {
    return use_fusion_ && n <= gemv_max_tokens_ &&
           (w.split ? xq.q != nullptr : !(xq.q != nullptr && cuda::int8_gemv_supported(w.type)));
  };
  if (n == 1 && use_mixed_group_ && outs.size() <= cuda::kGemvMaxOutputs && groupable(*outs.begin()->first)) {
    // One token over split layouts of exactly two types, type A's matrices
    // before type B's (Q4_K q / k, Q6_K v): one launch.
    const auto* o = outs.begin();
    const DeviceMatrix& first = *o[0].first;
    const int count = static_cast<int>(outs.size());
    int n_a = 0;
    while (n_a < count && o[n_a].first->type == first.type) ++n_a;
    bool mixed = n_a < count && first.cols <= 8192;
    cuda::GemvOutput targets[cuda::kGemvMaxOutputs];
    for (int i = 0; i < count && mixed; ++i) {
      const DeviceMatrix& m = *o[i].first;
      mixed = m.split && m.cols == first.cols && (i < n_a || m.type == o[n_a].first->type);
      targets[i] = {m.data, m.rows, o[i].second};
    }
    if (mixed)
      return cuda_status(cuda::gemv_group_split2(first.type, n_a, o[n_a].first->type, targets, count, first.cols,
                                                 xq.q, xq.d, stream_),
                         "grouped GEMV (two types)");
  }
  return for_each_run(
      outs, groupable,
      [&](const DeviceMatrix& w, const cuda::GemvOutput* targets, int count) {
        return cuda_status(
            cuda::gemv_group(w.type, w.split, targets, count, w.cols, x, xq.q, xq.d, n, false, stream_),
            "grouped GEMV");
      },
      [&](const DeviceMatrix& w, float* y) { return matmul(w, x, n, y, false, xq); });
}

Status CudaContext::rows_group(std::initializer_list<std::pair<const DeviceMatrix*, float*>> outs,
                               const cuda::DeferredNorm& norm) {
  return for_each_run(
      outs, [](const DeviceMatrix&) { return true; },
      [&](const DeviceMatrix& w, const cuda::GemvOutput* targets, int count) {
        return cuda_status(cuda::gemv_rows(w.type, targets, count, w.cols, norm_q8_, norm_q8_scale_, norm, stream_),
                           "q/k/v GEMV");
      },
      [](const DeviceMatrix&, float*) { return Status::Ok(); });
}

bool CudaContext::swiglu_fusable(const DeviceLayer& w, const Q8Input& xq) const {
  const DeviceMatrix &g = w.w_gate, &u = w.w_up;
  // fp32 activations in and out: 16-bit (or GGUF-layout) gate/up that no
  // 8-bit kernel takes, and a down matrix that reads fp32 too.
  return use_fusion_ && use_swiglu_gemv_ && g.type == u.type && !g.split && !u.split && g.cols == u.cols &&
         g.rows == md_.n_ff && u.rows == md_.n_ff && xq.q == nullptr && !wants_q8(1, md_.n_ff, {&w.w_down});
}

Status CudaContext::matmul(const DeviceMatrix& w, const float* x, int n, float* y, bool accumulate,
                           const Q8Input& xq) {
  if (n <= gemv_max_tokens_ && w.split) {
    if (xq.q == nullptr) return internal_error("split-layout weights need 8-bit activations");
    return cuda_status(cuda::gemv_int8_split(w.type, w.data, w.rows, w.cols, xq.q, xq.d, n, y, accumulate, stream_),
                       "GEMV (8-bit activations, split layout)");
  }
  if (n <= gemv_max_tokens_ && xq.q != nullptr && cuda::int8_gemv_supported(w.type))
    return cuda_status(cuda::gemv_int8(w.type, w.data, w.rows, w.cols, xq.q, xq.d, n, y, accumulate, stream_),
                       "GEMV (8-bit activations)");
  if (n <= gemv_max_tokens_)
    return cuda_status(cuda::gemv(w.type, w.data, w.rows, w.cols, x, n, y, accumulate, stream_), "GEMV");
  if (w.type == TensorType::kF32) {
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const int m = static_cast<int>(w.rows), k = static_cast<int>(w.cols);
    CUBLAS_TRY(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, static_cast<const float*>(w.data), k,
                           x, k, &beta, y, m),
               "cublasSgemm");
    return Status::Ok();
  }
  const int64_t count = int64_t(n) * w.cols;
  CUDA_TRY(w.type == TensorType::kBF16
               ? cuda::convert_f32_to_bf16(x, reinterpret_cast<__nv_bfloat16*>(act16_), count, stream_)
               : cuda::convert_f32_to_f16(x, act16_, count, stream_),
           "activation conversion");
  return gemm_rows(w, w.rows, act16_, n, y, w.rows, accumulate);
}

Status CudaContext::gemm_rows(const DeviceMatrix& w, int64_t rows, const void* act, int n, float* y, int64_t ldy,
                              bool accumulate) {
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const int k = static_cast<int>(w.cols), ldc = static_cast<int>(ldy);
  if (w.type == TensorType::kBF16 || w.type == TensorType::kF16) {
    const cudaDataType t = w.type == TensorType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
    CUBLAS_TRY(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), n, k, &one, w.data, t, k, act,
                            t, k, &beta, y, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (16-bit weights)");
    return Status::Ok();
  }
  if (w.type == TensorType::kF32) return internal_error("fp32 weights take fp32 activations");
  // Quantized: dequantize a panel of rows to fp16, multiply it, next panel.
  const int64_t panel = std::max<int64_t>(1, wscratch_elems_ / w.cols);
  for (int64_t r0 = 0; r0 < rows; r0 += panel) {
    const int64_t pr = std::min(panel, rows - r0);
    const void* panel_rows = static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes;
    CUDA_TRY(w.split ? cuda::dequantize_split_to_f16(w.type, panel_rows, pr, w.cols, wscratch_, stream_)
                     : cuda::dequantize_to_f16(w.type, panel_rows, pr, w.cols, wscratch_, stream_),
             "weight dequantization");
    CUBLAS_TRY(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(pr), n, k, &one, wscratch_,
                            CUDA_R_16F, k, act, CUDA_R_16F, k, &beta, y + r0, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (dequantized)");
  }
  return Status::Ok();
}

Status CudaContext::gemm_stacked(std::initializer_list<const DeviceMatrix*> ws, const void* act, int n, float* y,
                                 int64_t ldy, bool accumulate) {
  const DeviceMatrix* const* m = ws.begin();
  const size_t count = ws.size();
  int64_t row0 = 0;
  for (size_t i = 0; i < count;) {
    const DeviceMatrix& w = *m[i];
    int64_t rows = w.rows;
    size_t j = i + 1;
    // The uploader places a layer's matrices one after the other, so q/k/v
    // (gate/up) of one type are usually a single run of rows. Only 16-bit
    // weights are stacked: dequantized panels of stacked q/k/v and gate/up
    // measured slower than one panel per matrix (Q4_0 pp512 19.8k vs 20.3k
    // tok/s on an H200).
    const bool sixteen_bit = w.type == TensorType::kBF16 || w.type == TensorType::kF16;
    for (; use_fusion_ && sixteen_bit && j < count; ++j) {
      const DeviceMatrix& v = *m[j];
      const bool follows = v.data == static_cast<const uint8_t*>(w.data) + rows * w.row_bytes;
      if (!follows || v.type != w.type || v.cols != w.cols || v.row_bytes != w.row_bytes) break;
      rows += v.rows;
    }
    FRUGAL_RETURN_IF_ERROR(gemm_rows(w, rows, act, n, y + row0, ldy, accumulate));
    row0 += rows;
    i = j;
  }
  return Status::Ok();
}

bool CudaContext::gemm_layer_supported(const DeviceLayer& w) const {
  auto one_kind = [](std::initializer_list<const DeviceMatrix*> ws) {
    const bool bf16 = (*ws.begin())->type == TensorType::kBF16;
    for (const DeviceMatrix* m : ws)
      if (m->type == TensorType::kF32 || (m->type == TensorType::kBF16) != bf16) return false;
    return true;
  };
  return qkv_ && one_kind({&w.wq, &w.wk, &w.wv}) && one_kind({&w.wo}) && one_kind({&w.w_gate, &w.w_up}) &&
         one_kind({&w.w_down});
}

Status CudaContext::gemm_layer(const DeviceLayer& w, int layer, int n, int splits) {
  const int64_t d = md_.n_embd, qd = int64_t(md_.n_head) * md_.head_dim, kvd = int64_t(md_.n_head_kv) * md_.head_dim;
  const int64_t qkv_cols = qd + 2 * kvd, ff = md_.n_ff;
  const cuda::KvLayout kv = kv_layout(layer);
  const cuda::BatchDevice batch{ds_.pos, ds_.table_offset, ds_.tables};
  auto act_for = [&](const DeviceMatrix& m) { return cuda::Act16Out{act16_, m.type == TensorType::kBF16}; };
  CUDA_TRY(cuda::rmsnorm(x_, w.attn_norm, nullptr, n, d, md_.rms_eps, h_, stream_, {}, act_for(w.wq)), "rmsnorm");
  FRUGAL_RETURN_IF_ERROR(gemm_stacked({&w.wq, &w.wk, &w.wv}, act16_, n, qkv_, qkv_cols, false));
  CUDA_TRY(cuda::rope_and_store_kv(qkv_, qkv_ + qd, qkv_ + qd + kvd, w.bq, w.bk, w.bv, ds_.cos, ds_.sin, n,
                                   md_.n_head, md_.n_rot, md_.rope_neox, kv, batch, stream_, q_, qkv_cols, qkv_cols),
           "rope / KV store");
  // Tile attention writes the o GEMM's 16-bit input itself (one conversion kernel fewer).
  const bool attn16 = use_fusion_ && n_attn_tiles_ > 0;
  FRUGAL_RETURN_IF_ERROR(attend(layer, n, splits, {}, {}, attn16 ? act_for(w.wo) : cuda::Act16Out{}));
  FRUGAL_RETURN_IF_ERROR(attn16 ? gemm_rows(w.wo, w.wo.rows, act16_, n, x_, d, true) : matmul(w.wo, attn_, n, x_, true));
  CUDA_TRY(cuda::rmsnorm(x_, w.ffn_norm, nullptr, n, d, md_.rms_eps, h_, stream_, {}, act_for(w.w_gate)), "rmsnorm");
  FRUGAL_RETURN_IF_ERROR(gemm_stacked({&w.w_gate, &w.w_up}, act16_, n, gate_, 2 * ff, false));
  CUDA_TRY(cuda::silu_mul_rows(gate_, gate_ + ff, n, ff, 2 * ff, nullptr, act_for(w.w_down), stream_), "silu_mul");
  return gemm_stacked({&w.w_down}, act16_, n, x_, d, true);
}

Status CudaContext::attend(int layer, int n, int splits, const cuda::Q8Out& q8, const cuda::RopeIn& rope,
                           cuda::Act16Out out16) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(md_.head_dim));
  const cuda::BatchDevice batch{ds_.pos, ds_.table_offset, ds_.tables};
  if (n_attn_tiles_ > 0) {
    // With out16 only the 16-bit copy is written: the o GEMM's input.
    const int group = md_.n_head / md_.n_head_kv;
    if (n_attn_tiles_ == n && use_decode_attention_ && cuda::attention_decode_supported(md_.head_dim, group)) {
      // Every entry its own tile (a decode batch): warps split the keys instead.
      CUDA_TRY(cuda::attention_decode(q_, kv_layout(layer), batch, n, md_.n_head, scale, out16.data ? nullptr : attn_,
                                      stream_, out16),
               "attention (decode batch)");
      return Status::Ok();
    }
    CUDA_TRY(cuda::attention_prefill(q_, kv_layout(layer), batch, ds_.attn_tiles, n_attn_tiles_, md_.n_head, scale,
                                     out16.data ? nullptr : attn_, stream_, out16),
             "attention (tiles)");
    return Status::Ok();
  }
  CUDA_TRY(cuda::attention(q_, kv_layout(layer), batch, n, md_.n_head, scale, splits, partial_, attn_, stream_, q8,
                           rope, split_counters_),
           "attention");
  return Status::Ok();
}

Status CudaContext::rope_for_attention(const DeviceLayer& w, int layer, int n, cuda::RopeIn& rope) {
  const bool in_attention =
      n == 1 && n_attn_tiles_ == 0 && use_fusion_ && use_rope_attention_ && md_.n_rot == md_.head_dim;
  if (in_attention) {
    rope = {k_, v_, w.bq, w.bk, w.bv, ds_.cos, ds_.sin, md_.n_rot, md_.rope_neox};
    return Status::Ok();
  }
  rope = {};
  CUDA_TRY(cuda::rope_and_store_kv(q_, k_, v_, w.bq, w.bk, w.bv, ds_.cos, ds_.sin, n, md_.n_head, md_.n_rot,
                                   md_.rope_neox, kv_layout(layer), {ds_.pos, ds_.table_offset, ds_.tables}, stream_),
           "rope / KV store");
  return Status::Ok();
}

Status CudaContext::gemv_layer(const DeviceLayer& w, int layer, int n, int splits) {
  const int64_t d = md_.n_embd;
  Q8Input xq;
  cuda::Q8Out q8 = q8_target(n, d, {&w.wq, &w.wk, &w.wv});
  CUDA_TRY(cuda::rmsnorm(x_, w.attn_norm, nullptr, n, md_.n_embd, md_.rms_eps, h_, stream_, q8), "rmsnorm");
  FRUGAL_RETURN_IF_ERROR(prepare_q8(h_, n, d, {&w.wq, &w.wk, &w.wv}, xq, q8));
  FRUGAL_RETURN_IF_ERROR(matmul_group({{&w.wq, q_}, {&w.wk, k_}, {&w.wv, v_}}, h_, n, xq));
  cuda::RopeIn rope;
  FRUGAL_RETURN_IF_ERROR(rope_for_attention(w, layer, n, rope));
  q8 = n_attn_tiles_ > 0 ? cuda::Q8Out{} : q8_target(n, w.wo.cols, {&w.wo});
  FRUGAL_RETURN_IF_ERROR(attend(layer, n, splits, q8, rope));
  FRUGAL_RETURN_IF_ERROR(prepare_q8(attn_, n, w.wo.cols, {&w.wo}, xq, q8));
  FRUGAL_RETURN_IF_ERROR(matmul(w.wo, attn_, n, x_, true, xq));
  q8 = q8_target(n, d, {&w.w_gate, &w.w_up});
  CUDA_TRY(cuda::rmsnorm(x_, w.ffn_norm, nullptr, n, md_.n_embd, md_.rms_eps, h_, stream_, q8), "rmsnorm");
  FRUGAL_RETURN_IF_ERROR(prepare_q8(h_, n, d, {&w.w_gate, &w.w_up}, xq, q8));
  if (n == 1 && swiglu_fusable(w, xq)) {
    // One token on fp32 activations: the SwiGLU in the gate/up GEMV's epilogue.
    CUDA_TRY(cuda::gemv_swiglu(w.w_gate.type, w.w_gate.data, w.w_up.data, md_.n_ff, w.w_gate.cols, h_, gate_, stream_),
             "gate/up GEMV + SwiGLU");
    return matmul(w.w_down, gate_, n, x_, true, {});
  }
  FRUGAL_RETURN_IF_ERROR(matmul_group({{&w.w_gate, gate_}, {&w.w_up, up_}}, h_, n, xq));
  q8 = q8_target(n, md_.n_ff, {&w.w_down});
  CUDA_TRY(cuda::silu_mul(gate_, up_, int64_t(n) * md_.n_ff, stream_, q8), "silu_mul");
  FRUGAL_RETURN_IF_ERROR(prepare_q8(gate_, n, md_.n_ff, {&w.w_down}, xq, q8));
  return matmul(w.w_down, gate_, n, x_, true, xq);
}

bool CudaContext::rows_fusable(const DeviceLayer& w) const {
  if (!use_fusion_ || rows_gemv_ == RowsGemv::kNone || !use_int8_ || n_attn_tiles_ > 0 || md_.n_embd % 32 != 0 ||
      md_.n_ff % 32 != 0)
    return false;
  for (const DeviceMatrix* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down})
    if (!m->split || (rows_gemv_ == RowsGemv::kQ8_0Only && m->type != TensorType::kQ8_0)) return false;
  return w.w_gate.type == w.w_up.type && w.w_gate.cols == w.w_up.cols && w.w_gate.rows == md_.n_ff &&
         w.w_up.rows == md_.n_ff && w.wo.rows == md_.n_embd && w.w_down.rows == md_.n_embd &&
         w.w_down.cols == md_.n_ff;
}

Status CudaContext::rows_layer(const DeviceLayer& w, int layer, int splits, bool norm_ready, const float* next_norm) {
  const int64_t d = md_.n_embd;
  const cuda::Q8Out norm_q8{norm_q8_, norm_q8_scale_}, act_q8{act_q8_, act_q8_scale_};
  const cuda::DeferredNorm deferred{norm_sum_sq_, static_cast<int>(d / 32), d, md_.rms_eps};
  if (!norm_ready)
    CUDA_TRY(cuda::rmsnorm(x_, w.attn_norm, nullptr, 1, d, md_.rms_eps, h_, stream_, norm_q8), "rmsnorm");
  FRUGAL_RETURN_IF_ERROR(rows_group({{&w.wq, q_}, {&w.wk, k_}, {&w.wv, v_}}, norm_ready ? deferred
                                                                                        : cuda::DeferredNorm{}));
  cuda::RopeIn rope;
  FRUGAL_RETURN_IF_ERROR(rope_for_attention(w, layer, 1, rope));
  // Buffers alternate so that no GEMV overwrites its own input: attention
  // and SwiGLU quants in act_q8_, RMSNorm quants in norm_q8_.
  FRUGAL_RETURN_IF_ERROR(attend(layer, 1, splits, act_q8, rope));
  CUDA_TRY(cuda::gemv_rows_residual(w.wo.type, w.wo.data, w.wo.rows, w.wo.cols, act_q8_, act_q8_scale_, x_,
                                    {w.ffn_norm, norm_q8, norm_sum_sq_}, stream_),
           "o GEMV + residual");
  CUDA_TRY(cuda::gemv_rows_swiglu(w.w_gate.type, w.w_gate.data, w.w_up.data, md_.n_ff, w.w_gate.cols, norm_q8_,
                                  norm_q8_scale_, deferred, act_q8, nullptr, stream_),
           "gate/up GEMV + SwiGLU");
  const cuda::NormQuantsOut next =
      next_norm != nullptr ? cuda::NormQuantsOut{next_norm, norm_q8, norm_sum_sq_} : cuda::NormQuantsOut{};
  CUDA_TRY(cuda::gemv_rows_residual(w.w_down.type, w.w_down.data, w.w_down.rows, w.w_down.cols, act_q8_,
                                    act_q8_scale_, x_, next, stream_),
           "down GEMV + residual");
  return Status::Ok();
}

Status CudaContext::run_kernels(int n, int n_out, int splits) {
  const int64_t d = md_.n_embd;
  bool norm_ready = false;
  for (int l = 0; l < opt_.n_layers; ++l) {
    const DeviceLayer& w = model_->layers[l];
    if (n == 1 && rows_fusable(w)) {
      const bool next_rows = l + 1 < opt_.n_layers && rows_fusable(model_->layers[l + 1]);
      FRUGAL_RETURN_IF_ERROR(
          rows_layer(w, l, splits, norm_ready, next_rows ? model_->layers[l + 1].attn_norm : nullptr));
      norm_ready = next_rows;
      continue;
    }
    norm_ready = false;
    FRUGAL_RETURN_IF_ERROR(n > gemv_max_tokens_ && gemm_layer_supported(w) ? gemm_layer(w, l, n, splits)
                                                                           : gemv_layer(w, l, n, splits));
  }
  if (opt_.output_on_device && n_out > 0) {
    const cuda::Q8Out q8 = q8_target(n_out, d, {&model_->output});
    CUDA_TRY(cuda::rmsnorm(x_, model_->output_norm, ds_.out_rows, n_out, md_.n_embd, md_.rms_eps, h_, stream_, q8),
             "output rmsnorm");
    Q8Input xq;
    FRUGAL_RETURN_IF_ERROR(prepare_q8(h_, n_out, md_.n_embd, {&model_->output}, xq, q8));
    FRUGAL_RETURN_IF_ERROR(matmul(model_->output, h_, n_out, logits_, false, xq));
  }
  return Status::Ok();
}

Status CudaContext::forward(const StepInput& in, float* x_out, StepOutput* out) {
  const int n = static_cast<int>(in.batch.size());
  if (n <= 0 || n > opt_.max_batch_tokens) return invalid_argument("device batch size out of range");
  const int64_t d = md_.n_embd;
  const int half = md_.n_rot / 2;
  const int bt = opt_.kv_block_tokens;
  times_.begin();
  const uint64_t tables_at = carve_step(host_, n, d, half, hs_);
  carve_step(dev_step_, n, d, half, ds_);

  // Stage the inputs: embeddings, rope tables, positions, block tables.
  std::fill(seq_offset_.begin(), seq_offset_.end(), -1);
  int32_t n_tables = 0, n_out = 0, max_len = 0;
  for (int e = 0; e < n; ++e) {
    const BatchEntry& be = in.batch[e];
    if (seq_offset_[be.seq] < 0) {
      // Every entry of this sequence is in this batch; its last position bounds the blocks needed.
      int32_t last = be.pos;
      for (int j = e + 1; j < n; ++j)
        if (in.batch[j].seq == be.seq) last = std::max(last, in.batch[j].pos);
      const std::span<const int32_t> table = in.block_table(in.table_owner, be.seq);
      const int32_t need = last / bt + 1;
      if (need > static_cast<int32_t>(table.size()) || need > blocks_per_seq_)
        return internal_error("block table of sequence " + std::to_string(be.seq) + " is shorter than its positions");
      seq_offset_[be.seq] = n_tables;
      std::memcpy(hs_.tables + n_tables, table.data(), need * sizeof(int32_t));
      n_tables += need;
    }
    hs_.pos[e] = be.pos;
    entry_seq_[e] = be.seq;
    hs_.table_offset[e] = seq_offset_[be.seq];
    if (be.want_logits) hs_.out_rows[n_out++] = e;
    max_len = std::max(max_len, be.pos + 1);
  }
  // memmove: inputs staged by the caller (staging()) for this n are in place.
  if (in.x != hs_.x) std::memmove(hs_.x, in.x, n * d * sizeof(float));
  if (in.rope_cos != hs_.cos) std::memmove(hs_.cos, in.rope_cos, size_t(n) * half * sizeof(float));
  if (in.rope_sin != hs_.sin) std::memmove(hs_.sin, in.rope_sin, size_t(n) * half * sizeof(float));
  // Prefill and large batches: attention in tiles of one sequence's entries
  // on tensor cores (a batch whose tiles are all single entries then takes
  // attention_decode, see attend()). Small decode batches keep the per-entry
  // kernel (split over positions up to kMaxSplitBatch entries) even where
  // their weights take the GEMM path.
  n_attn_tiles_ = 0;
  const int group = md_.n_head / md_.n_head_kv;
  if (n > cuda::kGemvMaxRows && use_tile_attention_ && cuda::attention_prefill_supported(md_.head_dim, group)) {
    n_attn_tiles_ = cuda::attention_prefill_tiles(entry_seq_.data(), n, group, hs_.attn_tiles);
  }
  // Every input in one copy (each copy costs the stream a few microseconds);
  // the device x is x_ itself.
  times_.mark(StepTimes::kStart, stream_);
  CUDA_TRY(cudaMemcpyAsync(dev_step_, host_, tables_at + n_tables * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
           "input upload");
  times_.mark(StepTimes::kUploaded, stream_);

  // Large batches do not split: the per-entry kernel split over blocks and
  // merged measured 50 us per layer at 64 sequences of 128-256 positions,
  // against 27 for tiles and 22 for attention_decode.
  const int splits =
      n <= kMaxSplitBatch ? std::min(max_splits_, (max_len + cuda::kAttnSplitTokens - 1) / cuda::kAttnSplitTokens) : 1;
  const int out_count = opt_.output_on_device ? n_out : 0;
  StepGraph* graph = nullptr;
  if (use_graphs_ && n <= kMaxGraphTokens) {
    // Decode steps replay a captured graph of the whole kernel sequence; the
    // kernels read positions and tables from device memory, so one graph per
    // (batch size, logits rows, attention tiles, splits) serves every step.
    const uint64_t key = uint64_t(n) | uint64_t(out_count) << 16 | uint64_t(n_attn_tiles_) << 32 | uint64_t(splits) << 48;
    const bool in_a_row = key == last_key_;
    last_key_ = key;
    auto it = graphs_.find(key);
    if (it == graphs_.end() && (in_a_row || capture_on_any_repeat_)) {
      if (graphs_.size() >= 64) drop_graphs();
      it = graphs_.emplace(key, StepGraph{}).first;
      // The comparison policy only notes a first sighting; the next one captures.
      if (!in_a_row) it = graphs_.end();
    }
    if (it != graphs_.end()) graph = &it->second;
  } else {
    last_key_ = ~uint64_t{0};
  }
  const char* how = graph ? (graph->exec ? "replay" : "capture") : "plain";
  if (graph) {
    if (!graph->exec) {
      CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "graph capture");
      Status st = run_kernels(n, out_count, splits);
      cudaGraph_t captured = nullptr;
      const cudaError_t end = cudaStreamEndCapture(stream_, &captured);
      FRUGAL_RETURN_IF_ERROR(st);
      CUDA_TRY(end, "graph capture");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t inst = cudaGraphInstantiate(&exec, captured, 0);
      cudaGraphDestroy(captured);
      CUDA_TRY(inst, "graph instantiation");
      graph->exec = exec;
    }
    CUDA_TRY(cudaGraphLaunch(graph->exec, stream_), "graph launch");
  } else {
    FRUGAL_RETURN_IF_ERROR(run_kernels(n, out_count, splits));
  }
  times_.mark(StepTimes::kComputed, stream_);

  if (opt_.output_on_device) {
    const size_t vocab = md_.n_vocab, count = size_t(n_out) * vocab;
    FRUGAL_RETURN_IF_ERROR(reserve_host_logits(count));
    int argmax_rows = 0;
    for (int r = 0; r < n_out; ++r) argmax_rows += in.batch[hs_.out_rows[r]].argmax_only;
    if (argmax_rows > 0) {
      // Greedy rows: the token ids come down instead of their logits.
      CUDA_TRY(cuda::argmax_rows(logits_, n_out, int64_t(vocab), ds_.argmax, stream_), "argmax");
      CUDA_TRY(cudaMemcpyAsync(hs_.argmax, ds_.argmax, n_out * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_),
               "argmax download");
    }
    for (int r = 0; r < n_out;) {  // runs of rows whose logits are wanted
      if (in.batch[hs_.out_rows[r]].argmax_only) {
        ++r;
        continue;
      }
      int end = r + 1;
      while (end < n_out && !in.batch[hs_.out_rows[end]].argmax_only) ++end;
      CUDA_TRY(cudaMemcpyAsync(host_logits_ + r * vocab, logits_ + r * vocab, (end - r) * vocab * sizeof(float),
                               cudaMemcpyDeviceToHost, stream_),
               "logits download");
      r = end;
    }
    out->logits = {host_logits_, count};
    out->argmax = argmax_rows > 0 ? std::span<const int32_t>(hs_.argmax, n_out) : std::span<const int32_t>();
  } else {
    CUDA_TRY(cudaMemcpyAsync(x_out, x_, n * d * sizeof(float), cudaMemcpyDeviceToHost, stream_),
             "activation download");
  }
  times_.mark(StepTimes::kDone, stream_);
  CUDA_TRY(cudaStreamSynchronize(stream_), "forward step");
  times_.end(n, how);
  return Status::Ok();
}

class CudaBackend final : public Backend {
 public:
  std::string_view name() const override { return "cuda"; }

  bool supports(Op op, TensorType type) const override {
    if (op == Op::kMatmul) return cuda::weight_type_supported(type);
    return true;
  }

  Status check_model(const ModelDesc& m, int n_layers, bool output) const override {
    if (!cuda::attention_head_dim_supported(m.head_dim))
      return unsupported("CUDA attention: head size " + std::to_string(m.head_dim) + " (supported: 32, 64, 128, 256)");
    if (m.n_head_kv <= 0 || m.n_head % m.n_head_kv != 0 || m.n_head / m.n_head_kv > 8)
      return unsupported("CUDA attention: more than 8 query heads per KV head");
    if (m.n_rot > m.head_dim || m.n_rot % 2 != 0) return unsupported("CUDA RoPE: rotary dimensions");
    auto check = [&](const WeightMatrix& w, const std::string& what) -> Status {
      if (!supports(Op::kMatmul, w.type))
        return unsupported("CUDA matmul: " + what + " has type " + std::string(tensor_type_name(w.type)));
      if (w.cols % quant::block_size(w.type) != 0 || w.cols % 8 != 0)
        return unsupported("CUDA matmul: " + what + " has " + std::to_string(w.cols) + " columns");
      return Status::Ok();
    };
    for (int l = 0; l < n_layers; ++l) {
      const LayerDesc& L = m.layers[l];
      const std::string p = "layer " + std::to_string(l) + " ";
      FRUGAL_RETURN_IF_ERROR(check(L.wq, p + "attn_q"));
      FRUGAL_RETURN_IF_ERROR(check(L.wk, p + "attn_k"));
      FRUGAL_RETURN_IF_ERROR(check(L.wv, p + "attn_v"));
      FRUGAL_RETURN_IF_ERROR(check(L.wo, p + "attn_output"));
      FRUGAL_RETURN_IF_ERROR(check(L.w_gate, p + "ffn_gate"));
      FRUGAL_RETURN_IF_ERROR(check(L.w_up, p + "ffn_up"));
      FRUGAL_RETURN_IF_ERROR(check(L.w_down, p + "ffn_down"));
    }
    if (output) FRUGAL_RETURN_IF_ERROR(check(m.output, "output"));
    return Status::Ok();
  }

  Expected<std::shared_ptr<DeviceModel>> upload(const ModelDesc& m, int n_layers, bool output) override {
    FRUGAL_RETURN_IF_ERROR(check_model(m, n_layers, output));
    auto model = std::make_shared<CudaModel>();
    const uint64_t d = m.n_embd, qd = uint64_t(m.n_head) * m.head_dim, kvd = uint64_t(m.n_head_kv) * m.head_dim;
    uint64_t total = 0;
    for (int l = 0; l < n_layers; ++l) {
      const LayerDesc& L = m.layers[l];
      for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
        total += align_up(device_matrix_bytes(*w));
      total += 2 * align_up(d * 4) + (L.bq ? align_up(qd * 4) + 2 * align_up(kvd * 4) : 0);
    }
    if (output) total += align_up(device_matrix_bytes(m.output)) + align_up(d * 4);
    FRUGAL_RETURN_IF_ERROR(model->arena.allocate(
        total, ("loading " + std::to_string(n_layers) + " layers" + (output ? " and the output head" : "") +
                " on the GPU").c_str()));
    Status st;
    auto put = [&](const void* src, uint64_t bytes) -> const void* {
      void* dst = model->arena.take(bytes);
      if (st.ok()) st = cuda_status(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "weight upload");
      return dst;
    };
    std::vector<uint8_t> repacked;
    auto put_matrix = [&](const WeightMatrix& w) {
      if (upload_split(w)) {
        repacked.resize(device_matrix_bytes(w));
        cuda::repack_split_rows(w.type, w.data, w.rows, w.cols, repacked.data());
        return DeviceMatrix{w.type, put(repacked.data(), repacked.size()), w.rows, w.cols,
                            cuda::split_row_bytes(w.type, w.cols), true};
      }
      const uint64_t bytes = matrix_bytes(w);
      return DeviceMatrix{w.type, put(w.data, bytes), w.rows, w.cols, quant::row_size(w.type, w.cols)};
    };
    auto put_vec = [&](const float* v, uint64_t n) { return v ? static_cast<const float*>(put(v, n * 4)) : nullptr; };
    for (int l = 0; l < n_layers; ++l) {
      const LayerDesc& L = m.layers[l];
      DeviceLayer D;
      D.attn_norm = put_vec(L.attn_norm, d);
      D.ffn_norm = put_vec(L.ffn_norm, d);
      D.bq = put_vec(L.bq, qd);
      D.bk = put_vec(L.bk, kvd);
      D.bv = put_vec(L.bv, kvd);
      D.wq = put_matrix(L.wq);
      D.wk = put_matrix(L.wk);
      D.wv = put_matrix(L.wv);
      D.wo = put_matrix(L.wo);
      D.w_gate = put_matrix(L.w_gate);
      D.w_up = put_matrix(L.w_up);
      D.w_down = put_matrix(L.w_down);
      model->layers.push_back(D);
    }
    if (output) {
      model->output_norm = put_vec(m.output_norm, d);
      model->output = put_matrix(m.output);
    }
    FRUGAL_RETURN_IF_ERROR(st);
    return std::shared_ptr<DeviceModel>(std::move(model));
  }

  Expected<std::unique_ptr<DeviceContext>> create_context(std::shared_ptr<DeviceModel> weights, const ModelDesc& m,
                                                          const DeviceContextOptions& o) override {
    auto* cm = dynamic_cast<CudaModel*>(weights.get());
    if (cm == nullptr) return invalid_argument("weights were not uploaded by the CUDA backend");
    if (cm->n_layers() < o.n_layers || (o.output_on_device && !cm->has_output()))
      return invalid_argument("the uploaded weights do not cover the requested GPU layers");
    auto ctx = std::make_unique<CudaContext>();
    FRUGAL_RETURN_IF_ERROR(ctx->init(std::move(weights), m, o));
    return std::unique_ptr<DeviceContext>(std::move(ctx));
  }

  double peak_bandwidth_gbps() const override {
    int clock_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) != cudaSuccess) {
      (void)cudaGetLastError();  // leave no sticky error for the next CUDA call
      return 0;
    }
    return memory_bandwidth_gbps(clock_khz, bus_bits);
  }
};

}  // namespace

bool cuda_compiled() { return true; }

Expected<Backend*> cuda_backend() {
  static std::once_flag once;
  static Status init_status;
  static CudaBackend backend;
  std::call_once(once, [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess)
      init_status = unsupported(std::string("no usable CUDA device: ") + cudaGetErrorString(err));
    else if (count == 0)
      init_status = unsupported("no CUDA device found");
    else
      init_status = cuda_status(cudaSetDevice(0), "cudaSetDevice");
    // Programmatic dependent launch needs compute capability 9.0 (Hopper) or
    // later; FRUGAL_CUDA_PDL=0 turns it off for comparisons.
    int major = 0;
    const char* pdl = std::getenv("FRUGAL_CUDA_PDL");
    if (init_status.ok() && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess &&
        major >= 9 && !(pdl && std::strcmp(pdl, "0") == 0))
      cuda::set_programmatic_launch(true);
  });
  if (!init_status.ok()) return init_status;
  return static_cast<Backend*>(&backend);
}

}  // namespace frugal::backend
