// Single-token GEMVs whose blocks own 32 whole output rows, with the
// epilogues that let a decode layer run without RMSNorm and SwiGLU kernels
// (cuda_kernels.h: gemv_rows, gemv_rows_residual, gemv_rows_swiglu).
//
// The GEMVs of matmul.cu spread a block's threads along a few rows; here a
// warp takes 4 rows (the SwiGLU form: 4 gate and the same 4 up rows) and its
// lanes walk them 32 units apart, 8 warps to a block. A block then has 32
// consecutive outputs -- one 32-value block of 8-bit activations for the
// next matmul -- in shared memory at the end, and its first warp finishes
// them: the residual update with the next RMSNorm's quants, or silu(gate) *
// up quantized. Each removed kernel is a dependent stage fewer per layer:
// one wait for the previous grid to drain and one round trip through L2.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_layouts.cuh"

namespace frugal::cuda {
namespace {

constexpr int kRowsWarps = 8;
constexpr int kBlockOutputs = 32;  // outputs per block: one activation block

enum class Epilogue { kStore, kResidual, kSwiGLU };

struct RowsTargets {
  const uint8_t* w[kGemvMaxOutputs];  // kSwiGLU: w[0] gate, w[1] up
  int64_t rows[kGemvMaxOutputs];
  float* y[kGemvMaxOutputs];
  unsigned first_block[kGemvMaxOutputs];
  int count;
};

// The deferred norm's factor, from this lane's share of the partial sums
// (every lane of the warp calls it).
__device__ __forceinline__ float norm_factor(const DeferredNorm& n, float lane_sum) {
  if (n.sum_sq == nullptr) return 1.0f;
  return rsqrtf(warp_sum(lane_sum) / static_cast<float>(n.cols) + n.eps);
}

// Registers of raw weights per stage (two stages). A budget of 40 (two
// blocks an SM) spilled in the SwiGLU form and decoded slower on an H100
// (Llama-3-8B Q8_0 226 tok/s against 316 with 80).
constexpr int kStageRegs = 80;

template <class F, Epilogue kEpi>
__global__ void __launch_bounds__(kRowsWarps * 32, 1)
    gemv_rows_kernel(RowsTargets t, int64_t cols, int64_t row_bytes, const int8_t* __restrict__ xq,
                     const float* __restrict__ xd, DeferredNorm in, NormQuantsOut next, Q8Out hidden,
                     float* __restrict__ hidden_f32) {
  constexpr bool kPaired = kEpi == Epilogue::kSwiGLU;
  constexpr int kWarpRows = kPaired ? 8 : 4;
  // Units whose loads a lane has in flight per stage.
  using Raw = typename F::Raw;
  constexpr int kRawRegs = static_cast<int>(sizeof(Raw) / 4);
  constexpr int kFit = kStageRegs / (kWarpRows * kRawRegs);
  constexpr int kAhead = kFit < 1 ? 1 : kFit > 4 ? 4 : kFit;
  constexpr int kStep = 32 * kAhead;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // This block's matrix and rows (constant indices into the parameters: a
  // dynamic one would copy them to local memory).
  const unsigned b = blockIdx.x;
  const uint8_t* w = t.w[0];
  int64_t rows = t.rows[0];
  float* y = t.y[0];
  int64_t r0 = static_cast<int64_t>(b) * kBlockOutputs;
#pragma unroll
  for (int m = 1; m < kGemvMaxOutputs; ++m)
    if (!kPaired && m < t.count && b >= t.first_block[m])
      w = t.w[m], rows = t.rows[m], y = t.y[m], r0 = static_cast<int64_t>(b - t.first_block[m]) * kBlockOutputs;
  const uint8_t* row[kWarpRows];
#pragma unroll
  for (int j = 0; j < kWarpRows; ++j) {
    const int64_t r = min(r0 + 4 * warp + j % 4, rows - 1);  // tail rows repeat the last
    row[j] = (kPaired && j >= 4 ? t.w[1] : w) + r * row_bytes;
  }

  const int n_units = static_cast<int>(cols / kActBlock);
  float sum[kWarpRows];
#pragma unroll
  for (int j = 0; j < kWarpRows; ++j) sum[j] = 0.0f;
  auto load = [&](Raw (&raw)[kAhead][kWarpRows], int base) {
#pragma unroll
    for (int k = 0; k < kAhead; ++k) {
      const int u = base + 32 * k;
      if (u < n_units)
#pragma unroll
        for (int j = 0; j < kWarpRows; ++j) raw[k][j] = F::load(row[j], cols, u);
    }
  };
  auto add = [&](const Raw (&raw)[kAhead][kWarpRows], int base) {
#pragma unroll
    for (int k = 0; k < kAhead; ++k) {
      const int u = base + 32 * k;
      if (u >= n_units) break;
      const typename F::Act a = F::load_act(xq, xd, u);
#pragma unroll
      for (int j = 0; j < kWarpRows; ++j) sum[j] += F::dot(raw[k][j], a);
    }
  };

  // Two stages of weight loads go out before waiting for the previous
  // kernel (nothing in a step writes weights); with 4,096 columns of Q4_0
  // that is the whole row. Then one stage is always in flight while the
  // other is used.
  Raw stage_a[kAhead][kWarpRows], stage_b[kAhead][kWarpRows];
  load(stage_a, lane);
  load(stage_b, lane + kStep);
  const int64_t out_row = r0 + lane;
  const bool out_valid = warp == 0 && out_row < rows;
  const float norm_w = kEpi == Epilogue::kResidual && next.weight != nullptr && out_valid ? __ldg(next.weight + out_row)
                                                                                          : 0.0f;
  pdl_enter();
  // What the epilogue reads that earlier kernels wrote, loaded now so the
  // latency overlaps the dot products.
  float in_sum = 0.0f;
  if (warp == 0 && in.sum_sq != nullptr)
    for (int i = lane; i < in.count; i += 32) in_sum += in.sum_sq[i];
  const float x_old = kEpi == Epilogue::kResidual && out_valid ? y[out_row] : 0.0f;
  for (int base = lane; base < n_units; base += 2 * kStep) {
    add(stage_a, base);
    load(stage_a, base + 2 * kStep);
    add(stage_b, base + kStep);
    load(stage_b, base + 3 * kStep);
  }

  __shared__ float part[kRowsWarps * kWarpRows];
#pragma unroll
  for (int j = 0; j < kWarpRows; ++j) {
    const float s = warp_sum(sum[j]);
    if (lane == 0) part[warp * kWarpRows + j] = s;
  }
  __syncthreads();
  if (warp != 0) return;
  const float r = norm_factor(in, in_sum);
  // Lane i finishes output r0 + i: row i % 4 of warp i / 4.
  const int slot = (lane / 4) * kWarpRows + lane % 4;
  if constexpr (kEpi == Epilogue::kStore) {
    if (out_valid) y[out_row] = r * part[slot];
  } else if constexpr (kEpi == Epilogue::kResidual) {
    const float v = x_old + r * part[slot];
    if (out_valid) y[out_row] = v;
    if (next.weight == nullptr) return;
    // rows is a multiple of 32 here: every lane holds a real value.
    quantize_block32(v * norm_w, lane, next.q8.q + r0, next.q8.d + r0 / kActBlock);
    const float ss = warp_sum(v * v);
    if (lane == 0) next.sum_sq[b] = ss;
  } else {
    const float g = r * part[slot], u = r * part[slot + 4];
    const float h = g / (1.0f + __expf(-g)) * u;  // silu_mul's formula
    if (hidden_f32 != nullptr) hidden_f32[out_row] = h;
    quantize_block32(h, lane, hidden.q + r0, hidden.d + r0 / kActBlock);
  }
}

template <Epilogue kEpi>
cudaError_t launch_rows(TensorType type, const RowsTargets& t, unsigned grid, int64_t cols, const int8_t* xq,
                        const float* xd, const DeferredNorm& in, const NormQuantsOut& next, Q8Out hidden,
                        float* hidden_f32, cudaStream_t stream) {
  const uint64_t row_bytes = split_row_bytes(type, cols);
  if (row_bytes == 0 || grid == 0 || xq == nullptr || xd == nullptr) return cudaErrorInvalidValue;
  if (in.sum_sq != nullptr && (in.count < 1 || in.cols < 1)) return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  with_split_format(type, [&](auto f) {
    err = launch_kernel(gemv_rows_kernel<decltype(f), kEpi>, grid, kRowsWarps * 32, 0, stream, t, cols,
                        static_cast<int64_t>(row_bytes), xq, xd, in, next, hidden, hidden_f32);
  });
  return err;
}

unsigned blocks_of(int64_t rows) { return static_cast<unsigned>((rows + kBlockOutputs - 1) / kBlockOutputs); }

}  // namespace

cudaError_t gemv_rows(TensorType type, const GemvOutput* outs, int n_outs, int64_t cols, const int8_t* xq,
                      const float* xd, const DeferredNorm& norm, cudaStream_t stream) {
  if (n_outs < 1 || n_outs > kGemvMaxOutputs) return cudaErrorInvalidValue;
  RowsTargets t{};
  unsigned grid = 0;
  for (int m = 0; m < n_outs; ++m) {
    if (outs[m].rows < 1 || outs[m].w == nullptr || outs[m].y == nullptr) return cudaErrorInvalidValue;
    t.w[m] = static_cast<const uint8_t*>(outs[m].w);
    t.rows[m] = outs[m].rows;
    t.y[m] = outs[m].y;
    t.first_block[m] = grid;
    grid += blocks_of(outs[m].rows);
  }
  t.count = n_outs;
  return launch_rows<Epilogue::kStore>(type, t, grid, cols, xq, xd, norm, {}, {}, nullptr, stream);
}

cudaError_t gemv_rows_residual(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                               const float* xd, float* x, const NormQuantsOut& next, cudaStream_t stream) {
  if (rows < 1 || rows % kBlockOutputs != 0 || w == nullptr || x == nullptr) return cudaErrorInvalidValue;
  if (next.weight != nullptr && (next.q8.q == nullptr || next.q8.d == nullptr || next.sum_sq == nullptr))
    return cudaErrorInvalidValue;
  RowsTargets t{};
  t.w[0] = static_cast<const uint8_t*>(w);
  t.rows[0] = rows;
  t.y[0] = x;
  t.count = 1;
  return launch_rows<Epilogue::kResidual>(type, t, blocks_of(rows), cols, xq, xd, {}, next, {}, nullptr, stream);
}

cudaError_t gemv_rows_swiglu(TensorType type, const void* w_gate, const void* w_up, int64_t n_ff, int64_t cols,
                             const int8_t* xq, const float* xd, const DeferredNorm& norm, Q8Out hidden,
                             float* hidden_f32, cudaStream_t stream) {
  if (n_ff < 1 || n_ff % kBlockOutputs != 0 || w_gate == nullptr || w_up == nullptr || hidden.q == nullptr ||
      hidden.d == nullptr)
    return cudaErrorInvalidValue;
  RowsTargets t{};
  t.w[0] = static_cast<const uint8_t*>(w_gate);
  t.w[1] = static_cast<const uint8_t*>(w_up);
  t.rows[0] = t.rows[1] = n_ff;
  t.count = 2;
  return launch_rows<Epilogue::kSwiGLU>(type, t, blocks_of(n_ff), cols, xq, xd, norm, {}, hidden, hidden_f32,
                                        stream);
}

}  // namespace frugal::cuda
