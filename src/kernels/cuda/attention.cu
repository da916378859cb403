// Causal attention over the paged fp16 KV cache, flash-style: keys and values
// are streamed once per (entry, kv head) with an online softmax, so scores are
// never materialised. All query heads that share a kv head (GQA) are handled
// by the same block and reuse each loaded key/value row.
//
// For short batches (decode) a sequence is split into chunks of
// kAttnSplitTokens positions handled by separate blocks (flash-decoding); a
// second kernel merges the chunks' (max, sum, accumulator) triples.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace frugal::cuda {
namespace {

constexpr int kAttnWarps = 4;
constexpr int kMaxGroup = 8;         // query heads per kv head
constexpr float kEmptyMax = -1e30f;  // finite, so exp(kEmptyMax - m) is 0, never NaN

template <int kDimsPerLane>
__device__ __forceinline__ void load_half_row(const __half* p, float* out) {
  if constexpr (kDimsPerLane == 1) {
    out[0] = __half2float(*p);
  } else if constexpr (kDimsPerLane == 2) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p));
    out[0] = f.x, out[1] = f.y;
  } else if constexpr (kDimsPerLane == 4) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
    const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
    out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      out[2 * i] = f.x, out[2 * i + 1] = f.y;
    }
  }
}

// Grid (entry, kv head, split). Each warp takes every kAttnWarps-th position
// of the block's range; lane holds dimensions [lane * D, lane * D + D).
template <int D>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_kernel(const float* __restrict__ q, KvLayout kv, BatchDevice batch, int n_head, float scale,
                     int splits, float* __restrict__ partial, float* __restrict__ out) {
  constexpr int hd = 32 * D;
  __shared__ float sm_max[kAttnWarps][kMaxGroup], sm_sum[kAttnWarps][kMaxGroup];
  __shared__ float sm_acc[kAttnWarps][kMaxGroup][hd];
  const int e = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = n_head / kv.n_head_kv;
  const int len = batch.pos[e] + 1;
  int t_begin = 0, t_end = len;
  if (splits > 1) {
    t_begin = split * kAttnSplitTokens;
    t_end = min(len, t_begin + kAttnSplitTokens);
  }
  const int32_t* table = batch.tables + batch.table_offset[e];
  const int bt = kv.block_tokens;

  float qr[kMaxGroup][D], acc[kMaxGroup][D], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = kEmptyMax, l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < D; ++j) {
      acc[g][j] = 0.0f;
      qr[g][j] = g < group ? q[(static_cast<int64_t>(e) * n_head + kvh * group + g) * hd + lane * D + j] * scale
                           : 0.0f;
    }
  }

  for (int t = t_begin + warp; t < t_end; t += kAttnWarps) {
    const int64_t off =
        ((static_cast<int64_t>(table[t / bt]) * kv.n_head_kv + kvh) * bt + t % bt) * hd + lane * D;
    float kr[D], vr[D];
    load_half_row<D>(kv.keys + off, kr);
    load_half_row<D>(kv.values + off, vr);
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= group) break;
      float s = 0.0f;
#pragma unroll
      for (int j = 0; j < D; ++j) s += qr[g][j] * kr[j];
      s = warp_sum(s);
      const float m_new = fmaxf(m[g], s);
      const float corr = __expf(m[g] - m_new), p = __expf(s - m_new);
      l[g] = l[g] * corr + p;
#pragma unroll
      for (int j = 0; j < D; ++j) acc[g][j] = acc[g][j] * corr + p * vr[j];
      m[g] = m_new;
    }
  }

  // Merge the warps' partial softmax states.
  for (int g = 0; g < group; ++g) {
    if (lane == 0) sm_max[warp][g] = m[g], sm_sum[warp][g] = l[g];
#pragma unroll
    for (int j = 0; j < D; ++j) sm_acc[warp][g][lane * D + j] = acc[g][j];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * hd; idx += blockDim.x) {
    const int g = idx / hd, d = idx % hd;
    float mx = kEmptyMax;
    for (int w = 0; w < kAttnWarps; ++w) mx = fmaxf(mx, sm_max[w][g]);
    float sum = 0.0f, a = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) {
      const float f = __expf(sm_max[w][g] - mx);
      sum += sm_sum[w][g] * f;
      a += sm_acc[w][g][d] * f;
    }
    const int64_t head = static_cast<int64_t>(e) * n_head + kvh * group + g;
    if (splits == 1) {
      out[head * hd + d] = a / sum;
    } else {
      float* p = partial + (head * splits + split) * (hd + 2);
      if (d == 0) p[0] = mx, p[1] = sum;
      p[2 + d] = a;
    }
  }
}

// Grid (entry, head), one thread per dimension.
__global__ void merge_splits_kernel(const float* __restrict__ partial, int splits, int hd, float* __restrict__ out) {
  const int64_t head = static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y;
  const int d = threadIdx.x;
  const float* p = partial + head * splits * (hd + 2);
  float mx = kEmptyMax;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, p[s * (hd + 2)]);
  float sum = 0.0f, a = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* ps = p + s * (hd + 2);
    const float f = __expf(ps[0] - mx);
    sum += ps[1] * f;
    a += ps[2 + d] * f;
  }
  out[head * hd + d] = a / sum;
}

template <int D>
void launch(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_tokens, int n_head,
            float scale, int splits, float* partial, float* out, cudaStream_t stream) {
  const dim3 grid(n_tokens, kv.n_head_kv, splits);
  attention_kernel<D><<<grid, kAttnWarps * 32, 0, stream>>>(q, kv, batch, n_head, scale, splits, partial, out);
}

}  // namespace

cudaError_t attention(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_tokens, int n_head,
                      float scale, int splits, float* partial, float* out, cudaStream_t stream) {
  if (n_tokens <= 0) return cudaSuccess;
  if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv != 0 || n_head / kv.n_head_kv > kMaxGroup || splits < 1 ||
      (splits > 1 && partial == nullptr))
    return cudaErrorInvalidValue;
  switch (kv.head_dim) {
    case 32: launch<1>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, stream); break;
    case 64: launch<2>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, stream); break;
    case 128: launch<4>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, stream); break;
    case 256: launch<8>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, stream); break;
    default: return cudaErrorInvalidValue;
  }
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  if (splits > 1) {
    merge_splits_kernel<<<dim3(n_tokens, n_head), kv.head_dim, 0, stream>>>(partial, splits, kv.head_dim, out);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

bool attention_head_dim_supported(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

}  // namespace frugal::cuda
