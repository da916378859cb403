// Weight matmuls on the GPU: fused dequantize-GEMVs for small batches
// (decode) on fp32 activations, or on 8-bit activations with integer dot
// products for the 32-element formats, and a dequantize-to-fp16 pass that
// feeds cuBLAS for large batches.
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_layouts.cuh"

namespace frugal::cuda {
namespace {

constexpr int kGemvWarps = 4;   // warps per block, all on the block's rows
constexpr int kGemvUnroll = 2;  // groups each thread has in flight per row
constexpr int64_t kWideRowCols = 8192;  // wider single-token rows take fewer rows per block

// The matrices of one GEMV launch (gemv_group; a lone GEMV is a group of
// one). Blocks [first_block[m], first_block[m + 1]) compute matrix m.
struct GemvTargets {
  const uint8_t* w[kGemvMaxOutputs];
  int64_t rows[kGemvMaxOutputs];
  float* y[kGemvMaxOutputs];
  unsigned first_block[kGemvMaxOutputs];
  int count;
};

// This block's matrix and its first row. The unrolled loop indexes the
// parameters with constants (a dynamic index would copy them to local memory).
struct GemvBlock {
  const uint8_t* w;
  int64_t rows;
  float* y;
  int64_t r0;
};
template <int kRows>
__device__ __forceinline__ GemvBlock gemv_block(const GemvTargets& t) {
  const unsigned b = blockIdx.x;
  GemvBlock g{t.w[0], t.rows[0], t.y[0], static_cast<int64_t>(b) * kRows};
#pragma unroll
  for (int m = 1; m < kGemvMaxOutputs; ++m)
    if (m < t.count && b >= t.first_block[m])
      g = {t.w[m], t.rows[m], t.y[m], static_cast<int64_t>(b - t.first_block[m]) * kRows};
  return g;
}

// Rows of this block: consecutive rows r0.. of its matrix or, in a paired
// gate/up launch (kPaired), gate rows h0..h0 + kRows / 2 - 1 then the same up
// rows, h0 = blockIdx.x * kRows / 2 (targets.w[0] gate, w[1] up).
template <int kRows, bool kPaired>
__device__ __forceinline__ GemvBlock block_rows(const GemvTargets& t, int64_t row_bytes, const uint8_t* (&row)[kRows]) {
  if constexpr (kPaired) {
    constexpr int kHalf = kRows / 2;
    const GemvBlock g{nullptr, t.rows[0], nullptr, static_cast<int64_t>(blockIdx.x) * kHalf};
#pragma unroll
    for (int j = 0; j < kRows; ++j) row[j] = t.w[j < kHalf ? 0 : 1] + min(g.r0 + j % kHalf, g.rows - 1) * row_bytes;
    return g;
  } else {
    const GemvBlock g = gemv_block<kRows>(t);
#pragma unroll
    for (int j = 0; j < kRows; ++j) row[j] = g.w + min(g.r0 + j, g.rows - 1) * row_bytes;  // tail rows repeat the last
    return g;
  }
}

// The block's per-thread partial sums of kRows rows x kMaxTokens tokens meet
// in shared memory; y[t * rows + r0 + j] gets (or accumulates) the totals.
template <int kMaxTokens, int kRows>
__device__ __forceinline__ void store_row_sums(float (&sum)[kRows][kMaxTokens], int64_t rows, int64_t r0,
                                               int n_tokens, float* __restrict__ y, bool accumulate) {
  constexpr int kThreads = kGemvWarps * 32;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  __shared__ float part[kGemvWarps][kRows * kMaxTokens];
#pragma unroll
  for (int j = 0; j < kRows; ++j)
#pragma unroll
    for (int t = 0; t < kMaxTokens; ++t) {
      const float s = warp_sum(sum[j][t]);
      if (lane == 0) part[warp][j * kMaxTokens + t] = s;
    }
  __syncthreads();
  for (int k = tid; k < kRows * kMaxTokens; k += kThreads) {
    const int j = k / kMaxTokens, t = k % kMaxTokens;
    if (t >= n_tokens || r0 + j >= rows) continue;
    float s = 0.0f;
#pragma unroll
    for (int v = 0; v < kGemvWarps; ++v) s += part[v][k];
    float* out = y + t * rows + r0 + j;
    *out = accumulate ? *out + s : s;
  }
}

// Epilogue of a paired gate/up GEMV of one token: the block's kRows / 2
// hidden values silu(gate) * up go to hidden (the formula of silu_mul, row
// sums added in store_row_sums' order: the same bits as the unfused kernels).
template <int kRows>
__device__ __forceinline__ void store_swiglu(float (&sum)[kRows][1], int64_t rows, int64_t h0,
                                             float* __restrict__ hidden) {
  constexpr int kHalf = kRows / 2;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  __shared__ float part[kGemvWarps][kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    const float s = warp_sum(sum[j][0]);
    if (lane == 0) part[warp][j] = s;
  }
  __syncthreads();
  if (tid < kHalf && h0 + tid < rows) {
    float g = 0.0f, u = 0.0f;
#pragma unroll
    for (int v = 0; v < kGemvWarps; ++v) {
      g += part[v][tid];
      u += part[v][kHalf + tid];
    }
    hidden[h0 + tid] = g / (1.0f + __expf(-g)) * u;
  }
}

// A block computes kRows output rows; its threads stride over the rows'
// 8-weight groups (consecutive threads, consecutive groups: coalesced) and
// each activation pair of float4 it reads serves all kRows rows, so the
// activation traffic through L1 is 1/kRows of the one-row-per-warp form
// (with fp32 activations it otherwise exceeds the weight bytes several
// times over). Loads of kGemvUnroll groups x kRows rows are issued before
// any is used, to keep enough bytes in flight for HBM. Partial sums meet in
// shared memory at the end.
template <class F, int kMaxTokens, int kRows, bool kPaired = false>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(GemvTargets targets, int64_t cols, int64_t row_bytes, const float* __restrict__ x, int n_tokens,
                bool accumulate, float* __restrict__ hidden) {
  constexpr int kThreads = kGemvWarps * 32;
  const int tid = threadIdx.x;
  const uint8_t* row[kRows];
  const auto [w, rows, y, r0] = block_rows<kRows, kPaired>(targets, row_bytes, row);
  const int n_groups = static_cast<int>(cols / 8);
  float sum[kRows][kMaxTokens];
#pragma unroll
  for (int j = 0; j < kRows; ++j)
#pragma unroll
    for (int t = 0; t < kMaxTokens; ++t) sum[j][t] = 0.0f;

  constexpr int kStep = kThreads * kGemvUnroll;
  using Raw = typename F::Raw;
  auto load_groups = [&](Raw (&raw)[kGemvUnroll][kRows], int base) {
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int i = base + kThreads * u;
      if (i < n_groups)
#pragma unroll
        for (int j = 0; j < kRows; ++j) raw[u][j] = F::load(row[j] + (i / F::kGroups) * F::kBytes, i % F::kGroups);
    }
  };
  auto add_groups = [&](const Raw (&raw)[kGemvUnroll][kRows], int base) {
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int i = base + kThreads * u;
      if (i >= n_groups) break;
      float wv[kRows][8];
      int c0 = 0, c1 = 0;
#pragma unroll
      for (int j = 0; j < kRows; ++j) F::dequant(raw[u][j], i % F::kGroups, wv[j], c0, c1);
      const int64_t col = static_cast<int64_t>(i / F::kGroups) * F::kElems;
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t >= n_tokens) break;
        const float4 a = __ldg(reinterpret_cast<const float4*>(x + t * cols + col + c0));
        const float4 b = __ldg(reinterpret_cast<const float4*>(x + t * cols + col + c1));
#pragma unroll
        for (int j = 0; j < kRows; ++j)
          sum[j][t] += wv[j][0] * a.x + wv[j][1] * a.y + wv[j][2] * a.z + wv[j][3] * a.w + wv[j][4] * b.x +
                       wv[j][5] * b.y + wv[j][6] * b.z + wv[j][7] * b.w;
      }
    }
  };
  {
    // The first step's weight loads go out before waiting for the previous
    // kernel, as in gemv_int8_split_kernel.
    Raw raw[kGemvUnroll][kRows];
    load_groups(raw, tid);
    pdl_enter();
    add_groups(raw, tid);
  }
  for (int base = tid + kStep; base < n_groups; base += kStep) {
    Raw raw[kGemvUnroll][kRows];
    load_groups(raw, base);
    add_groups(raw, base);
  }
  if constexpr (kPaired)
    store_swiglu<kRows>(sum, rows, r0, hidden);
  else
    store_row_sums<kMaxTokens, kRows>(sum, rows, r0, n_tokens, y, accumulate);
}

// The same shape on 8-bit activations (quantize_activations_q8): a group of
// 8 weights meets two 32-bit words of activation quants in __dp4a integer
// dot products, and the block's two scales are applied once per group. It
// replaces 8 conversions and 8 FMAs per group and token with ~4 integer
// instructions, and reads a quarter of the activation bytes: the fp32 form
// is bound by instruction issue, not by HBM, on the 4/5/8-bit formats.
template <class F, int kMaxTokens, int kRows>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_int8_kernel(GemvTargets targets, int64_t cols, int64_t row_bytes, const int8_t* __restrict__ xq,
                     const float* __restrict__ xd, int n_tokens, bool accumulate) {
  constexpr int kThreads = kGemvWarps * 32;
  const int tid = threadIdx.x;
  const auto [w, rows, y, r0] = gemv_block<kRows>(targets);
  pdl_enter();
  const uint8_t* row[kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) row[j] = w + min(r0 + j, rows - 1) * row_bytes;
  const int n_groups = static_cast<int>(cols / 8);
  const int64_t blocks_per_row = cols / kActBlock;
  float sum[kRows][kMaxTokens];
#pragma unroll
  for (int j = 0; j < kRows; ++j)
#pragma unroll
    for (int t = 0; t < kMaxTokens; ++t) sum[j][t] = 0.0f;

  for (int base = tid; base < n_groups; base += kThreads * kGemvUnroll) {
    typename F::Raw raw[kGemvUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int i = base + kThreads * u;
      if (i < n_groups)
#pragma unroll
        for (int j = 0; j < kRows; ++j) raw[u][j] = F::load(row[j] + (i / F::kGroups) * F::kBytes, i % F::kGroups);
    }
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int i = base + kThreads * u;
      if (i >= n_groups) break;
      const int g = i % F::kGroups, blk = i / F::kGroups;
      float dw[kRows];
#pragma unroll
      for (int j = 0; j < kRows; ++j) dw[j] = F::scale(raw[u][j]);
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t >= n_tokens) break;
        const int8_t* xb = xq + t * cols + static_cast<int64_t>(blk) * kActBlock;
        const int a0 = __ldg(reinterpret_cast<const int*>(xb + F::col0(g)));
        const int a1 = __ldg(reinterpret_cast<const int*>(xb + F::col1(g)));
        const float da = __ldg(xd + t * blocks_per_row + blk);
#pragma unroll
        for (int j = 0; j < kRows; ++j) sum[j][t] += dw[j] * da * static_cast<float>(F::dot(raw[u][j], g, a0, a1));
      }
    }
  }
  store_row_sums<kMaxTokens, kRows>(sum, rows, r0, n_tokens, y, accumulate);
}

// One warp per 32-value block: scale amax / 127, quants rounded to nearest even.
__global__ void quantize_act_kernel(const float* __restrict__ x, int64_t n_blocks, int8_t* __restrict__ q,
                                    float* __restrict__ d) {
  pdl_enter();
  const int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (b >= n_blocks) return;  // uniform across the warp
  quantize_block32(x[b * kActBlock + threadIdx.x % 32], threadIdx.x % 32, q + b * kActBlock, d + b);
}

template <class F, int kMaxTokens, int kRows>
__device__ __forceinline__ void gemv_int8_split_body(const GemvTargets& targets, int64_t cols, int64_t row_bytes,
                                                     const int8_t* __restrict__ xq, const float* __restrict__ xd,
                                                     int n_tokens, bool accumulate) {
  constexpr int kThreads = kGemvWarps * 32;
  const int tid = threadIdx.x;
  const uint8_t* row[kRows];
  const auto [w, rows, y, r0] = block_rows<kRows, false>(targets, row_bytes, row);
  const int n_units = static_cast<int>(cols / kActBlock);
  float sum[kRows][kMaxTokens];
#pragma unroll
  for (int j = 0; j < kRows; ++j)
#pragma unroll
    for (int t = 0; t < kMaxTokens; ++t) sum[j][t] = 0.0f;

  // Rows wider than kThreads units (e.g. the FFN down matrix) take several
  // steps per thread. Single-token decode either issues the weight loads of
  // F::kLoadsAhead units before any dot product, or (kLoadsAhead 1) lets the
  // compiler unroll the loop four times; measured on an H200, Q8_0 decode is
  // 12% faster with two units ahead and Q4_0 13% faster unrolled.
  constexpr int kUnits = kMaxTokens == 1 ? F::kLoadsAhead : 1;
  constexpr int kStep = kThreads * kUnits;
  using Raw = typename F::Raw;
  auto load_units = [&](Raw (&raw)[kUnits][kRows], int base) {
#pragma unroll
    for (int k = 0; k < kUnits; ++k) {
      const int u = base + kThreads * k;
      if (u < n_units)
#pragma unroll
        for (int j = 0; j < kRows; ++j) raw[k][j] = F::load(row[j], cols, u);
    }
  };
  auto add_units = [&](const Raw (&raw)[kUnits][kRows], int base) {
#pragma unroll
    for (int k = 0; k < kUnits; ++k) {
      const int u = base + kThreads * k;
      if (u >= n_units) break;
#pragma unroll
      for (int t = 0; t < kMaxTokens; ++t) {
        if (t >= n_tokens) break;
        const typename F::Act a = F::load_act(xq + t * cols, xd + t * n_units, u);
#pragma unroll
        for (int j = 0; j < kRows; ++j) sum[j][t] += F::dot(raw[k][j], a);
      }
    }
  };
  {
    // The first step's weight loads go out before waiting for the previous
    // kernel (no kernel writes weights): for rows of up to kStep units, all
    // but the FFN down matrix, that is every weight byte of the launch in
    // flight while the previous kernel finishes.
    Raw raw[kUnits][kRows];
    load_units(raw, tid);
    pdl_enter();
    add_units(raw, tid);
  }
#pragma unroll(kUnits == 1 && kMaxTokens == 1 ? 4 : 1)
  for (int base = tid + kStep; base < n_units; base += kStep) {
    Raw raw[kUnits][kRows];
    load_units(raw, base);
    add_units(raw, base);
  }
  store_row_sums<kMaxTokens, kRows>(sum, rows, r0, n_tokens, y, accumulate);
}

template <class F, int kMaxTokens, int kRows>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_int8_split_kernel(GemvTargets targets, int64_t cols, int64_t row_bytes, const int8_t* __restrict__ xq,
                           const float* __restrict__ xd, int n_tokens, bool accumulate) {
  gemv_int8_split_body<F, kMaxTokens, kRows>(targets, cols, row_bytes, xq, xd, n_tokens, accumulate);
}

// One token, matrices of two split layouts in one launch: blocks before
// b_first compute the FA matrices, the others the FB ones (a Q4_K_M layer's
// Q4_K q / k with its Q6_K v: one launch boundary fewer). Registers are
// capped at six blocks per SM (80, what the lone Q6_K kernel uses): the
// larger of the two bodies would otherwise set them (94 for Q4_K + Q6_K, 64
// for Q4_K alone) and cut the Q4_K blocks in flight.
template <class FA, class FB, int kRows>
__global__ void __launch_bounds__(kGemvWarps * 32, 6)
    gemv_int8_split2_kernel(GemvTargets targets, unsigned b_first, int64_t cols, int64_t row_bytes_a,
                            int64_t row_bytes_b, const int8_t* __restrict__ xq, const float* __restrict__ xd) {
  if (blockIdx.x < b_first)
    gemv_int8_split_body<FA, 1, kRows>(targets, cols, row_bytes_a, xq, xd, 1, false);
  else
    gemv_int8_split_body<FB, 1, kRows>(targets, cols, row_bytes_b, xq, xd, 1, false);
}

// One thread per 8-weight group of a device layout (coalesced stores, as
// the GGUF-layout dequantizer below).
template <class F>
__global__ void dequant_split_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, int64_t row_bytes,
                                     __half* __restrict__ out) {
  const int64_t n_groups = cols / 8;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * n_groups) return;
  const int64_t r = idx / n_groups;
  const int i = static_cast<int>(idx % n_groups);
  constexpr int kGroups = F::Format::kGroups;
  float wv[8];
  int c0, c1;
  F::Format::dequant(F::load_group(w + r * row_bytes, cols, i / kGroups, i % kGroups), i % kGroups, wv, c0, c1);
  __half* dst = out + r * cols + static_cast<int64_t>(i / kGroups) * F::Format::kElems;
  __half2 h[4] = {__floats2half2_rn(wv[0], wv[1]), __floats2half2_rn(wv[2], wv[3]),
                  __floats2half2_rn(wv[4], wv[5]), __floats2half2_rn(wv[6], wv[7])};
  reinterpret_cast<uint2*>(dst + c0)[0] = *reinterpret_cast<uint2*>(&h[0]);
  reinterpret_cast<uint2*>(dst + c1)[0] = *reinterpret_cast<uint2*>(&h[2]);
}

// One thread per 8-weight group.
template <class F>
__global__ void dequant_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols,
                               int64_t row_bytes, __half* __restrict__ out) {
  const int64_t n_groups = cols / 8;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * n_groups) return;
  const int64_t r = idx / n_groups;
  const int i = static_cast<int>(idx % n_groups);
  float wv[8];
  int c0, c1;
  F::dequant(F::load(w + r * row_bytes + (i / F::kGroups) * F::kBytes, i % F::kGroups),
             i % F::kGroups, wv, c0, c1);
  __half* dst = out + r * cols + static_cast<int64_t>(i / F::kGroups) * F::kElems;
  __half2 h[4] = {__floats2half2_rn(wv[0], wv[1]), __floats2half2_rn(wv[2], wv[3]),
                  __floats2half2_rn(wv[4], wv[5]), __floats2half2_rn(wv[6], wv[7])};
  reinterpret_cast<uint2*>(dst + c0)[0] = *reinterpret_cast<uint2*>(&h[0]);
  reinterpret_cast<uint2*>(dst + c1)[0] = *reinterpret_cast<uint2*>(&h[2]);
}

// Arguments of every decode GEMV launch; x is fp32 activations, xq / xd the
// 8-bit ones (quantize_activations_q8), whichever the kernel reads.
struct GemvArgs {
  const GemvOutput* outs;
  int n_outs;
  int64_t cols, row_bytes;
  const float* x;
  const int8_t* xq;
  const float* xd;
  int n_tokens;
  bool accumulate;
};

// The group's matrices and the grid that covers them, kRows rows per block.
GemvTargets gemv_targets(const GemvArgs& a, int rows_per_block, unsigned& grid) {
  GemvTargets t{};
  grid = 0;
  for (int m = 0; m < a.n_outs; ++m) {
    t.w[m] = static_cast<const uint8_t*>(a.outs[m].w);
    t.rows[m] = a.outs[m].rows;
    t.y[m] = a.outs[m].y;
    t.first_block[m] = grid;
    grid += blocks_for(a.outs[m].rows, rows_per_block);
  }
  t.count = a.n_outs;
  return t;
}

// Rows per block of the paired gate/up GEMV: 2 gate + 2 up rows, the
// single-token GEMV's 4 rows.
constexpr int kPairedRows = 4;

// Kernel shape by batch size: one token, up to 4 (4 rows per block share
// each activation load), up to kGemvMaxRows (2 rows: registers).
template <class Kernel>
cudaError_t launch_for_tokens(const GemvArgs& a, cudaStream_t stream) {
  if (a.n_tokens == 1) {
    // Wide rows (the FFN down matrix: 14336 columns, only 4096 rows) with 4
    // rows per block fill half the GPU's thread slots, each thread walking a
    // long row; Kernel::kWideRows per block gives more blocks in flight where
    // that measured faster. FRUGAL_CUDA_WIDE_ROWS=1|2|4 overrides it.
    static const int wide_override = [] {
      const char* e = std::getenv("FRUGAL_CUDA_WIDE_ROWS");
      return e && (std::strcmp(e, "1") == 0 || std::strcmp(e, "2") == 0 || std::strcmp(e, "4") == 0) ? std::atoi(e)
                                                                                                       : 0;
    }();
    const int wide_rows = wide_override ? wide_override : Kernel::kWideRows;
    if (a.cols > kWideRowCols && wide_rows == 2) return Kernel::template launch<1, 2>(a, stream);
    if (a.cols > kWideRowCols && wide_rows == 1) return Kernel::template launch<1, 1>(a, stream);
    return Kernel::template launch<1, 4>(a, stream);
  }
  if (a.n_tokens <= 4) return Kernel::template launch<4, 4>(a, stream);
  return Kernel::template launch<kGemvMaxRows, 2>(a, stream);
}

// kWideRows: rows per block of single-token GEMVs over wide rows. Measured
// on an H200 (llama3-8b shape, tg128 with 4 / 2 / 1): BF16 223.8 / 227.9 /
// 225.4, Q4_0 470.1 / 459.7 / 432.6, Q4_K_M (Q4_K and Q6_K down
// matrices) 353.5 / 367.3 / 355.2 tok/s. Q8_0 and Q5_0 keep 4 (not measured).
template <class F>
struct FloatGemv {
  static constexpr int kWideRows = 2;
  template <int kMaxTokens, int kRows>
  static cudaError_t launch(const GemvArgs& a, cudaStream_t stream) {
    unsigned grid;
    const GemvTargets t = gemv_targets(a, kRows, grid);
    return launch_kernel(gemv_kernel<F, kMaxTokens, kRows>, grid, kGemvWarps * 32, 0, stream, t, a.cols, a.row_bytes,
                         a.x, a.n_tokens, a.accumulate, nullptr);
  }
  static cudaError_t launch_paired(const GemvArgs& a, float* hidden, cudaStream_t stream) {
    unsigned grid;
    GemvTargets t = gemv_targets(a, kPairedRows / 2, grid);
    t.w[1] = static_cast<const uint8_t*>(a.outs[1].w);  // the up matrix
    return launch_kernel(gemv_kernel<F, 1, kPairedRows, true>, grid, kGemvWarps * 32, 0, stream, t, a.cols,
                         a.row_bytes, a.x, 1, false, hidden);
  }
};

template <class F>
struct Int8Gemv {
  static constexpr int kWideRows = 4;
  template <int kMaxTokens, int kRows>
  static cudaError_t launch(const GemvArgs& a, cudaStream_t stream) {
    unsigned grid;
    const GemvTargets t = gemv_targets(a, kRows, grid);
    return launch_kernel(gemv_int8_kernel<F, kMaxTokens, kRows>, grid, kGemvWarps * 32, 0, stream, t, a.cols,
                         a.row_bytes, a.xq, a.xd, a.n_tokens, a.accumulate);
  }
};

template <class F>
struct Int8SplitGemv {
  static constexpr int kWideRows = F::kWideRows;
  template <int kMaxTokens, int kRows>
  static cudaError_t launch(const GemvArgs& a, cudaStream_t stream) {
    unsigned grid;
    const GemvTargets t = gemv_targets(a, kRows, grid);
    return launch_kernel(gemv_int8_split_kernel<F, kMaxTokens, kRows>, grid, kGemvWarps * 32, 0, stream, t, a.cols,
                         a.row_bytes, a.xq, a.xd, a.n_tokens, a.accumulate);
  }
};

// Calls fn(F{}) with the integer-dot format of `type`; false when there is none.
template <class Fn>
bool with_int8_format(TensorType type, Fn&& fn) {
  switch (type) {
    case TensorType::kQ4_0: fn(IntQ4_0{}); return true;
    case TensorType::kQ5_0: fn(IntQ5_0{}); return true;
    case TensorType::kQ8_0: fn(IntQ8_0{}); return true;
    default: return false;
  }
}

template <class F>
cudaError_t launch_dequant(const void* w, int64_t rows, int64_t cols, __half* out, cudaStream_t stream) {
  const int64_t row_bytes = cols / F::kElems * F::kBytes;
  const int64_t n = rows * (cols / 8);
  dequant_kernel<F><<<blocks_for(n, 256), 256, 0, stream>>>(static_cast<const uint8_t*>(w), rows, cols,
                                                             row_bytes, out);
  return cudaGetLastError();
}

// Calls fn(F{}) with the format of `type`; false when there is none.
template <class Fn>
bool with_format(TensorType type, Fn&& fn) {
  switch (type) {
    case TensorType::kF32: fn(FormatF32{}); return true;
    case TensorType::kF16: fn(FormatF16{}); return true;
    case TensorType::kBF16: fn(FormatBF16{}); return true;
    case TensorType::kQ4_0: fn(FormatQ4_0{}); return true;
    case TensorType::kQ5_0: fn(FormatQ5_0{}); return true;
    case TensorType::kQ8_0: fn(FormatQ8_0{}); return true;
    case TensorType::kQ4_K: fn(FormatQ4_K{}); return true;
    case TensorType::kQ6_K: fn(FormatQ6_K{}); return true;
    default: return false;
  }
}

}  // namespace

bool weight_type_supported(TensorType type) {
  return with_format(type, [](auto) {});
}

cudaError_t gemv_group(TensorType type, bool split, const GemvOutput* outs, int n_outs, int64_t cols,
                       const float* x, const int8_t* xq, const float* xd, int n_tokens, bool accumulate,
                       cudaStream_t stream) {
  if (n_tokens < 1 || n_tokens > kGemvMaxRows || n_outs < 1 || n_outs > kGemvMaxOutputs || cols <= 0)
    return cudaErrorInvalidValue;
  for (int m = 0; m < n_outs; ++m)
    if (outs[m].rows < 1) return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  if (split) {
    const uint64_t row_bytes = split_row_bytes(type, cols);
    if (row_bytes == 0) return cudaErrorInvalidValue;
    with_split_format(type, [&](auto f) {
      err = launch_for_tokens<Int8SplitGemv<decltype(f)>>(
          {outs, n_outs, cols, static_cast<int64_t>(row_bytes), nullptr, xq, xd, n_tokens, accumulate}, stream);
    });
    return err;
  }
  if (cols % 8 != 0) return cudaErrorInvalidValue;
  with_format(type, [&](auto f) {
    using F = decltype(f);
    if (cols % F::kElems == 0)
      err = launch_for_tokens<FloatGemv<F>>(
          {outs, n_outs, cols, cols / F::kElems * F::kBytes, x, nullptr, nullptr, n_tokens, accumulate}, stream);
  });
  return err;
}

cudaError_t gemv_swiglu(TensorType type, const void* w_gate, const void* w_up, int64_t n_ff, int64_t cols,
                        const float* x, float* hidden, cudaStream_t stream) {
  if (n_ff < 1 || n_ff % (kPairedRows / 2) != 0 || cols <= 0 || cols % 8 != 0 || x == nullptr || hidden == nullptr)
    return cudaErrorInvalidValue;
  // The grid covers the hidden rows: one "matrix" of n_ff rows, both weight
  // pointers in the targets.
  const GemvOutput outs[2] = {{w_gate, n_ff, nullptr}, {w_up, 0, nullptr}};
  cudaError_t err = cudaErrorInvalidValue;
  with_format(type, [&](auto f) {
    using F = decltype(f);
    if (cols % F::kElems == 0)
      err = FloatGemv<F>::launch_paired({outs, 1, cols, cols / F::kElems * F::kBytes, x, nullptr, nullptr, 1, false},
                                        hidden, stream);
  });
  return err;
}

cudaError_t gemv(TensorType type, const void* w, int64_t rows, int64_t cols, const float* x,
                 int n_tokens, float* y, bool accumulate, cudaStream_t stream) {
  const GemvOutput out{w, rows, y};
  return gemv_group(type, false, &out, 1, cols, x, nullptr, nullptr, n_tokens, accumulate, stream);
}

bool int8_gemv_supported(TensorType type) {
  return with_int8_format(type, [](auto) {});
}

cudaError_t quantize_activations_q8(const float* x, int n_tokens, int64_t cols, int8_t* q, float* d,
                                    cudaStream_t stream) {
  if (n_tokens < 1 || cols % kActBlock != 0) return cudaErrorInvalidValue;
  const int64_t n_blocks = n_tokens * (cols / kActBlock);
  return launch_kernel(quantize_act_kernel, blocks_for(n_blocks * 32, 256), 256, 0, stream, x, n_blocks, q, d);
}

cudaError_t gemv_int8(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                      const float* xd, int n_tokens, float* y, bool accumulate, cudaStream_t stream) {
  if (n_tokens < 1 || n_tokens > kGemvMaxRows || cols % kActBlock != 0) return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  const GemvOutput out{w, rows, y};
  with_int8_format(type, [&](auto f) {
    using F = decltype(f);
    if (cols % F::kElems == 0)
      err = launch_for_tokens<Int8Gemv<F>>(
          {&out, 1, cols, cols / F::kElems * F::kBytes, nullptr, xq, xd, n_tokens, accumulate}, stream);
  });
  return err;
}

bool split_layout_supported(TensorType type) {
  return with_split_format(type, [](auto) {});
}

uint64_t split_row_bytes(TensorType type, int64_t cols) {
  uint64_t bytes = 0;
  with_split_format(type, [&](auto f) {
    using F = decltype(f);
    if (cols > 0 && cols % F::Format::kElems == 0) bytes = F::row_bytes(cols);
  });
  return bytes;
}

bool repack_split_rows(TensorType type, const void* src, int64_t rows, int64_t cols, void* dst) {
  const uint64_t out_row = split_row_bytes(type, cols);
  if (out_row == 0) return false;
  with_split_format(type, [&](auto f) {
    using F = decltype(f);
    const int64_t in_row = cols / F::Format::kElems * F::Format::kBytes;
    for (int64_t r = 0; r < rows; ++r)
      F::repack_row(static_cast<const uint8_t*>(src) + r * in_row, cols, static_cast<uint8_t*>(dst) + r * out_row);
  });
  return true;
}

cudaError_t gemv_group_split2(TensorType type_a, int n_a, TensorType type_b, const GemvOutput* outs, int n_outs,
                              int64_t cols, const int8_t* xq, const float* xd, cudaStream_t stream) {
  const uint64_t row_bytes_a = split_row_bytes(type_a, cols), row_bytes_b = split_row_bytes(type_b, cols);
  if (n_a < 1 || n_a >= n_outs || n_outs > kGemvMaxOutputs || cols <= 0 || cols > kWideRowCols || row_bytes_a == 0 ||
      row_bytes_b == 0 || xq == nullptr || xd == nullptr)
    return cudaErrorInvalidValue;
  for (int m = 0; m < n_outs; ++m)
    if (outs[m].rows < 1) return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  with_split_format(type_a, [&](auto fa) {
    with_split_format(type_b, [&](auto fb) {
      if constexpr (!std::is_same_v<decltype(fa), decltype(fb)>) {  // one type: gemv_group
        // Rows per block as the single-token launch of narrow rows (wide
        // rows, the FFN down matrix, never come in a group).
        constexpr int kRows = 4;
        unsigned grid;
        const GemvArgs a{outs, n_outs, cols, 0, nullptr, xq, xd, 1, false};
        const GemvTargets t = gemv_targets(a, kRows, grid);
        err = launch_kernel(gemv_int8_split2_kernel<decltype(fa), decltype(fb), kRows>, grid, kGemvWarps * 32, 0,
                            stream, t, t.first_block[n_a], cols, static_cast<int64_t>(row_bytes_a),
                            static_cast<int64_t>(row_bytes_b), xq, xd);
      }
    });
  });
  return err;
}

cudaError_t gemv_int8_split(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                            const float* xd, int n_tokens, float* y, bool accumulate, cudaStream_t stream) {
  const GemvOutput out{w, rows, y};
  return gemv_group(type, true, &out, 1, cols, nullptr, xq, xd, n_tokens, accumulate, stream);
}

cudaError_t dequantize_split_to_f16(TensorType type, const void* w, int64_t rows, int64_t cols, __half* out,
                                    cudaStream_t stream) {
  const uint64_t row_bytes = split_row_bytes(type, cols);
  if (row_bytes == 0) return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  with_split_format(type, [&](auto f) {
    const int64_t n = rows * (cols / 8);
    dequant_split_kernel<decltype(f)><<<blocks_for(n, 256), 256, 0, stream>>>(
        static_cast<const uint8_t*>(w), rows, cols, static_cast<int64_t>(row_bytes), out);
    err = cudaGetLastError();
  });
  return err;
}

cudaError_t dequantize_to_f16(TensorType type, const void* w, int64_t rows, int64_t cols, __half* out,
                              cudaStream_t stream) {
  cudaError_t err = cudaErrorInvalidValue;
  with_format(type, [&](auto f) {
    using F = decltype(f);
    if (cols % F::kElems == 0) err = launch_dequant<F>(w, rows, cols, out, stream);
  });
  return err;
}

}  // namespace frugal::cuda
