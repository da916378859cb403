// Row-wise and element-wise kernels of the decoder layer: RMSNorm, SwiGLU,
// bias + RoPE + KV-cache store, activation conversions.
#include <algorithm>
#include <atomic>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace frugal::cuda {
namespace {

__global__ void f32_to_f16_kernel(const float* __restrict__ x, __half* __restrict__ out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2half_rn(x[i]);
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(x[i]);
}

// One block per row. A decode step runs one row per call, so the row is read
// with float4 loads by up to 1024 threads (a few loads in flight each, not a
// chain of dependent ones): this kernel is latency-bound, not bandwidth-bound.
// With q8 the output row is also quantized in the same pass, so the decode
// GEMVs that follow need no separate quantization launch.
__global__ void rmsnorm_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                               const int32_t* __restrict__ rows, int n, float eps, float* __restrict__ out,
                               Q8Out q8, Act16Out a16) {
  __shared__ float scratch[32];
  // No kernel writes the weight: its first float4 per thread loads before
  // the wait, so its latency overlaps the previous kernel instead of
  // following the sum of squares.
  const float4* w4 = reinterpret_cast<const float4*>(weight);
  const float4 w_first = n % 4 == 0 && static_cast<int>(threadIdx.x) < n / 4 ? __ldg(w4 + threadIdx.x)
                                                                             : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  pdl_enter();
  const int64_t src_row = rows ? rows[blockIdx.x] : blockIdx.x;
  const float* xr = x + src_row * n;
  float* o = out + static_cast<int64_t>(blockIdx.x) * n;
  float ss = 0.0f;
  if (n % 4 != 0) {  // no quants here: they need n % 32 == 0
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      o[i] = xr[i] * inv * weight[i];
      if (a16.data) store_16(a16, static_cast<int64_t>(blockIdx.x) * n + i, o[i]);
    }
    return;
  }
  const float4* x4 = reinterpret_cast<const float4*>(xr);
#pragma unroll 4
  for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
    const float4 v = x4[i];
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / n + eps);
  float4* o4 = reinterpret_cast<float4*>(o);
  if (q8.q == nullptr) {
#pragma unroll 4
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
      const float4 v = x4[i], w = i == static_cast<int>(threadIdx.x) ? w_first : w4[i];
      const float4 r = make_float4(v.x * inv * w.x, v.y * inv * w.y, v.z * inv * w.z, v.w * inv * w.w);
      o4[i] = r;
      if (a16.data) store4_16(a16, static_cast<int64_t>(blockIdx.x) * (n / 4) + i, r);
    }
    return;
  }
  // With quants: 8 consecutive threads hold a 32-value block, quantized from
  // registers in the same pass. Every lane runs each trip for the shuffles;
  // out-of-range lanes write nothing.
  char4* q4 = reinterpret_cast<char4*>(q8.q) + static_cast<int64_t>(blockIdx.x) * (n / 4);
  float* qd = q8.d + static_cast<int64_t>(blockIdx.x) * (n / 32);
  for (int base = 0; base < n / 4; base += blockDim.x) {
    const int i = base + threadIdx.x;
    const bool in = i < n / 4;
    float4 r = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (in) {
      const float4 v = x4[i], w = base == 0 ? w_first : w4[i];
      r = make_float4(v.x * inv * w.x, v.y * inv * w.y, v.z * inv * w.z, v.w * inv * w.w);
      o4[i] = r;
    }
    char4 qv;
    float dv;
    quantize_block32_x4(r, threadIdx.x % 32, &qv, &dv);
    if (in) {
      q4[i] = qv;
      if (i % 8 == 0) qd[i / 8] = dv;
    }
  }
}

// One thread per value; with q8 every warp also quantizes its 32 values
// (n % 32 == 0: a warp is all in range or all out).
__global__ void silu_mul_kernel(float* __restrict__ gate, const float* __restrict__ up, int64_t n, Q8Out q8) {
  pdl_enter();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  const float v = g / (1.0f + __expf(-g)) * up[i];
  gate[i] = v;
  if (q8.q != nullptr) quantize_block32(v, threadIdx.x % 32, q8.q + (i / 32) * 32, q8.d + i / 32);
}

// Rows of a fused gate/up output; one thread per 4 values.
__global__ void silu_mul_rows_kernel(const float* __restrict__ gate, const float* __restrict__ up, int n_rows,
                                     int64_t n_ff, int64_t stride, float* __restrict__ out, Act16Out a16) {
  pdl_enter();
  const int64_t i4 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t per_row = n_ff / 4;
  if (i4 >= per_row * n_rows) return;
  const int64_t r = i4 / per_row, j = (i4 % per_row) * 4;
  const float4 g = *reinterpret_cast<const float4*>(gate + r * stride + j);
  const float4 u = *reinterpret_cast<const float4*>(up + r * stride + j);
  auto f = [](float gv, float uv) { return gv / (1.0f + __expf(-gv)) * uv; };
  const float4 v = make_float4(f(g.x, u.x), f(g.y, u.y), f(g.z, u.z), f(g.w, u.w));
  if (out) *reinterpret_cast<float4*>(out + r * n_ff + j) = v;
  if (a16.data) store4_16(a16, i4, v);
}

// One block per row; each thread keeps its best (value, index), then the
// warps and the block reduce pairs with the same rule.
__device__ inline bool better(float v, int64_t i, float best_v, int64_t best_i) {
  return v > best_v || (v == best_v && i < best_i);  // false for a NaN v
}

__global__ void argmax_rows_kernel(const float* __restrict__ x, int64_t n, int32_t* __restrict__ out) {
  __shared__ float s_v[32];
  __shared__ int64_t s_i[32];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * n;
  float best_v = -INFINITY;
  int64_t best_i = INT64_MAX;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = row[i];
    if (better(v, i, best_v, best_i)) best_v = v, best_i = i;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best_v, o);
    const int64_t i = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (better(v, i, best_v, best_i)) best_v = v, best_i = i;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) s_v[warp] = best_v, s_i[warp] = best_i;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (better(s_v[w], s_i[w], best_v, best_i)) best_v = s_v[w], best_i = s_i[w];
    out[blockIdx.x] = best_i == INT64_MAX ? 0 : static_cast<int32_t>(best_i);
  }
}

// Block (entry, head) over n_head query heads, then n_kv key heads, then
// n_kv value heads; one thread per dimension.
// q_out may be q (in place): every block reads its head before it writes it.
__global__ void rope_store_kernel(const float* q, const float* __restrict__ k,
                                  const float* __restrict__ v, const float* __restrict__ bq,
                                  const float* __restrict__ bk, const float* __restrict__ bv,
                                  const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                                  int n_head, int n_rot, bool neox, KvLayout kv, BatchDevice batch, float* q_out,
                                  int64_t q_stride, int64_t kv_stride) {
  extern __shared__ float head[];
  pdl_enter();
  const int e = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  const int hd = kv.head_dim, n_kv = kv.n_head_kv, half = n_rot / 2;
  const float* src;
  const float* bias;
  int kind;  // 0 query, 1 key, 2 value
  int hh;
  if (h < n_head) {
    kind = 0, hh = h, src = q + e * q_stride + h * hd, bias = bq;
  } else if (h < n_head + n_kv) {
    kind = 1, hh = h - n_head, src = k + e * kv_stride + hh * hd, bias = bk;
  } else {
    kind = 2, hh = h - n_head - n_kv, src = v + e * kv_stride + hh * hd, bias = bv;
  }
  head[d] = src[d] + (bias ? bias[hh * hd + d] : 0.0f);
  __syncthreads();
  float val = head[d];
  if (kind != 2 && d < n_rot) {
    int i;
    float a, b;
    bool first;
    if (neox) {
      first = d < half;
      i = first ? d : d - half;
      a = head[i], b = head[i + half];
    } else {
      first = d % 2 == 0;
      i = d / 2;
      a = head[2 * i], b = head[2 * i + 1];
    }
    const float c = cos_table[e * half + i], s = sin_table[e * half + i];
    val = first ? a * c - b * s : a * s + b * c;
  }
  if (kind == 0) {
    q_out[(static_cast<int64_t>(e) * n_head + hh) * hd + d] = val;
    return;
  }
  const int pos = batch.pos[e];
  const int32_t block = batch.tables[batch.table_offset[e] + pos / kv.block_tokens];
  const int64_t slot = ((static_cast<int64_t>(block) * n_kv + hh) * kv.block_tokens + pos % kv.block_tokens) * hd + d;
  (kind == 1 ? kv.keys : kv.values)[slot] = __float2half_rn(val);
}

std::atomic<bool> g_programmatic_launch{false};

}  // namespace

void set_programmatic_launch(bool on) { g_programmatic_launch.store(on, std::memory_order_relaxed); }
bool programmatic_launch() { return g_programmatic_launch.load(std::memory_order_relaxed); }

cudaError_t convert_f32_to_f16(const float* x, __half* out, int64_t n, cudaStream_t stream) {
  f32_to_f16_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

cudaError_t convert_f32_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream) {
  f32_to_bf16_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

cudaError_t rmsnorm(const float* x, const float* weight, const int32_t* rows, int n_rows, int n, float eps,
                    float* out, cudaStream_t stream, Q8Out q8, Act16Out a16) {
  if (n_rows <= 0) return cudaSuccess;
  if (q8.q != nullptr && (n % 32 != 0 || q8.d == nullptr)) return cudaErrorInvalidValue;
  if (q8.q != nullptr && a16.data != nullptr) return cudaErrorInvalidValue;
  const int threads = std::clamp((n / 4 + 31) / 32 * 32, 32, 1024);
  return launch_kernel(rmsnorm_kernel, n_rows, threads, 0, stream, x, weight, rows, n, eps, out, q8, a16);
}

cudaError_t argmax_rows(const float* x, int n_rows, int64_t n, int32_t* out, cudaStream_t stream) {
  if (n_rows <= 0) return cudaSuccess;
  if (n <= 0) return cudaErrorInvalidValue;
  argmax_rows_kernel<<<n_rows, 1024, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

cudaError_t silu_mul_rows(const float* gate, const float* up, int n_rows, int64_t n_ff, int64_t stride, float* out,
                          Act16Out a16, cudaStream_t stream) {
  if (n_rows <= 0) return cudaSuccess;
  if (n_ff % 4 != 0 || stride % 4 != 0 || (out == nullptr && a16.data == nullptr)) return cudaErrorInvalidValue;
  const int64_t threads = int64_t(n_rows) * (n_ff / 4);
  return launch_kernel(silu_mul_rows_kernel, blocks_for(threads, 256), 256, 0, stream, gate, up, n_rows, n_ff, stride,
                       out, a16);
}

cudaError_t silu_mul(float* gate, const float* up, int64_t n, cudaStream_t stream, Q8Out q8) {
  if (n <= 0) return cudaSuccess;
  if (q8.q != nullptr && (n % 32 != 0 || q8.d == nullptr)) return cudaErrorInvalidValue;
  return launch_kernel(silu_mul_kernel, blocks_for(n, 256), 256, 0, stream, gate, up, n, q8);
}

cudaError_t rope_and_store_kv(float* q, const float* k, const float* v, const float* bq, const float* bk,
                              const float* bv, const float* cos_table, const float* sin_table, int n_tokens,
                              int n_head, int n_rot, bool neox, const KvLayout& kv, const BatchDevice& batch,
                              cudaStream_t stream, float* q_out, int64_t q_stride, int64_t kv_stride) {
  if (kv.head_dim > 1024 || n_rot > kv.head_dim || n_rot % 2 != 0) return cudaErrorInvalidValue;
  const dim3 grid(n_tokens, n_head + 2 * kv.n_head_kv);
  if (q_stride == 0) q_stride = int64_t(n_head) * kv.head_dim;
  if (kv_stride == 0) kv_stride = int64_t(kv.n_head_kv) * kv.head_dim;
  return launch_kernel(rope_store_kernel, grid, kv.head_dim, kv.head_dim * sizeof(float), stream,
                       static_cast<const float*>(q), k, v, bq, bk, bv, cos_table, sin_table, n_head, n_rot, neox, kv,
                       batch, q_out ? q_out : q, q_stride, kv_stride);
}

cudaError_t copy_kv_block(const KvLayout& kv, int32_t from, int32_t to, cudaStream_t stream) {
  const size_t per_block = static_cast<size_t>(kv.n_head_kv) * kv.block_tokens * kv.head_dim;
  cudaError_t err = cudaMemcpyAsync(kv.keys + to * per_block, kv.keys + from * per_block,
                                    per_block * sizeof(__half), cudaMemcpyDeviceToDevice, stream);
  if (err != cudaSuccess) return err;
  return cudaMemcpyAsync(kv.values + to * per_block, kv.values + from * per_block, per_block * sizeof(__half),
                         cudaMemcpyDeviceToDevice, stream);
}

}  // namespace frugal::cuda
