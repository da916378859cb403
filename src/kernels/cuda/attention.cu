// Causal attention over the paged fp16 KV cache, flash-style: keys and values
// are streamed once per (entry, kv head) with an online softmax, so scores are
// never materialised. All query heads that share a kv head (GQA) are handled
// by the same block and reuse each loaded key/value row.
//
// For short batches (decode) a sequence is split into chunks of
// kAttnSplitTokens positions handled by separate blocks (flash-decoding); a
// second kernel merges the chunks' (max, sum, accumulator) triples.
//
// Prefill and large batches take attention_prefill(): tiles of consecutive
// entries of one sequence, scores and the value product on tensor cores.
// Large batches of one-token entries (decode) take attention_decode(): the
// same products with keys and values loaded straight into the fragments.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace frugal::cuda {
namespace {

constexpr int kAttnWarps = 4;
constexpr int kMaxGroup = 8;         // query heads per kv head
constexpr float kEmptyMax = -1e30f;  // finite, so exp(kEmptyMax - m) is 0, never NaN

// A lane's kDimsPerLane fp16 values of a cache row as one load (a warp
// issues several rows' loads before converting any of them).
template <int kDimsPerLane>
struct HalfRow {
  using Word = std::conditional_t<
      kDimsPerLane == 1, unsigned short,
      std::conditional_t<kDimsPerLane == 2, unsigned, std::conditional_t<kDimsPerLane == 4, uint2, uint4>>>;
  Word bits;
  __device__ __forceinline__ void load(const __half* p) { bits = *reinterpret_cast<const Word*>(p); }
  __device__ __forceinline__ void store(__half* p) const { *reinterpret_cast<Word*>(p) = bits; }
  // The values rounded to fp16 (what a store and a load of them would give).
  __device__ __forceinline__ void pack(const float* v) {
    __half* h = reinterpret_cast<__half*>(&bits);
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) h[i] = __float2half_rn(v[i]);
  }
  __device__ __forceinline__ void to_float(float* out) const {
    const __half* h = reinterpret_cast<const __half*>(&bits);
    if constexpr (kDimsPerLane == 1) {
      out[0] = __half2float(h[0]);
    } else {
#pragma unroll
      for (int i = 0; i < kDimsPerLane / 2; ++i) {
        const float2 f = __half22float2(reinterpret_cast<const __half2*>(h)[i]);
        out[2 * i] = f.x, out[2 * i + 1] = f.y;
      }
    }
  }
};

// Rotates one head row held D dimensions per lane (lane holds [lane * D,
// lane * D + D)) with the arithmetic of rope_store_kernel: pairs (2i, 2i + 1),
// or (i, i + hd / 2) with neox; every dimension rotates (n_rot == head_dim).
template <int D>
__device__ __forceinline__ void rope_row(float (&v)[D], int lane, bool neox, const float* __restrict__ cos_row,
                                         const float* __restrict__ sin_row) {
  constexpr int hd = 32 * D, half = hd / 2;
  float partner[D];
#pragma unroll
  for (int j = 0; j < D; ++j) {
    // neox: dimension d + half sits 16 lanes away; pairs: in this lane for D >= 2, the next lane for D == 1.
    const float other = neox || D == 1 ? __shfl_xor_sync(0xffffffffu, v[j], neox ? 16 : 1) : v[j ^ 1];
    partner[j] = other;
  }
#pragma unroll
  for (int j = 0; j < D; ++j) {
    const int d = lane * D + j;
    const bool first = neox ? d < half : d % 2 == 0;
    const int i = neox ? (first ? d : d - half) : d / 2;
    const float a = first ? v[j] : partner[j], b = first ? partner[j] : v[j];
    const float c = cos_row[i], s = sin_row[i];
    partner[j] = first ? a * c - b * s : a * s + b * c;
  }
#pragma unroll
  for (int j = 0; j < D; ++j) v[j] = partner[j];
}

// The warps' partial softmax states (max m, sum l, accumulator acc per
// query head of the group) meet in shared memory; then finish(g, d, max,
// sum, acc) gets each of the group * hd merged outputs, a warp's 32
// consecutive calls being 32 dimensions of one head (one quant block).
// Constant indices into the register arrays: a run-time g would put them in
// local memory.
template <int kWarps, int D, int kHeads, class Finish>
__device__ __forceinline__ void merge_warp_states(const float (&m)[kHeads], const float (&l)[kHeads],
                                                  const float (&acc)[kHeads][D], int group,
                                                  float (*sm_max)[kHeads], float (*sm_sum)[kHeads],
                                                  float (*sm_acc)[kHeads][32 * D], Finish&& finish) {
  constexpr int hd = 32 * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    if (g >= group) break;
    if (lane == 0) sm_max[warp][g] = m[g], sm_sum[warp][g] = l[g];
#pragma unroll
    for (int j = 0; j < D; ++j) sm_acc[warp][g][lane * D + j] = acc[g][j];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * hd; idx += blockDim.x) {
    const int g = idx / hd, d = idx % hd;
    float mx = kEmptyMax;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_max[w][g]);
    float sum = 0.0f, a = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float f = __expf(sm_max[w][g] - mx);
      sum += sm_sum[w][g] * f;
      a += sm_acc[w][g][d] * f;
    }
    finish(g, d, mx, sum, a);
  }
}

// Grid (entry, kv head, split). Each warp takes every kAttnWarps-th position
// of the block's range; lane holds dimensions [lane * D, lane * D + D).
// With rope.k set (one entry), q is the projection before RoPE: the block
// rotates its query heads itself and the last split's block rotates the new
// key, stores key and value at the entry's position and then reads them
// back with the rest (rope_and_store_kv's work, one launch fewer).
template <int D>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_kernel(const float* __restrict__ q, KvLayout kv, BatchDevice batch, int n_head, float scale,
                     int splits, float* __restrict__ partial, float* __restrict__ out, Q8Out q8, RopeIn rope) {
  constexpr int hd = 32 * D;
  __shared__ float sm_max[kAttnWarps][kMaxGroup], sm_sum[kAttnWarps][kMaxGroup];
  __shared__ float sm_acc[kAttnWarps][kMaxGroup][hd];
  pdl_enter();
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
  const int half = hd / 2;

  if (rope.k != nullptr && split == splits - 1 && warp < 2) {
    // Warp 0 the key, warp 1 the value of this kv head at the entry's position.
    const float* src = (warp == 0 ? rope.k : rope.v) + static_cast<int64_t>(e) * kv.n_head_kv * hd + kvh * hd;
    const float* bias = warp == 0 ? rope.bk : rope.bv;
    float r[D];
#pragma unroll
    for (int j = 0; j < D; ++j) r[j] = src[lane * D + j] + (bias ? bias[kvh * hd + lane * D + j] : 0.0f);
    if (warp == 0) rope_row<D>(r, lane, rope.neox, rope.cos + e * half, rope.sin + e * half);
    const int pos = len - 1;
    const int64_t slot = ((static_cast<int64_t>(table[pos / bt]) * kv.n_head_kv + kvh) * bt + pos % bt) * hd + lane * D;
#pragma unroll
    for (int j = 0; j < D; ++j) (warp == 0 ? kv.keys : kv.values)[slot + j] = __float2half_rn(r[j]);
  }
  if (rope.k != nullptr) __syncthreads();  // the stored row is read below by any warp of the block

  float qr[kMaxGroup][D], acc[kMaxGroup][D], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = kEmptyMax, l[g] = 0.0f;
    const int64_t head = static_cast<int64_t>(e) * n_head + kvh * group + g;
#pragma unroll
    for (int j = 0; j < D; ++j) {
      acc[g][j] = 0.0f;
      qr[g][j] = g < group ? q[head * hd + lane * D + j] + (rope.bq ? rope.bq[(kvh * group + g) * hd + lane * D + j] : 0.0f)
                           : 0.0f;
    }
    if (rope.k != nullptr && g < group) rope_row<D>(qr[g], lane, rope.neox, rope.cos + e * half, rope.sin + e * half);
#pragma unroll
    for (int j = 0; j < D; ++j) qr[g][j] *= scale;
  }

  // A warp takes positions warp, warp + kAttnWarps, ... in order; the rows
  // of kRowsAhead of them are loaded before the first is used, so a split
  // of 64 positions waits for memory 4 times per warp instead of 16.
  constexpr int kRowsAhead = 4;
  for (int t0 = t_begin + warp; t0 < t_end; t0 += kAttnWarps * kRowsAhead) {
    HalfRow<D> krow[kRowsAhead], vrow[kRowsAhead];
#pragma unroll
    for (int u = 0; u < kRowsAhead; ++u) {
      const int t = t0 + u * kAttnWarps;
      if (t >= t_end) break;
      const int64_t off =
          ((static_cast<int64_t>(table[t / bt]) * kv.n_head_kv + kvh) * bt + t % bt) * hd + lane * D;
      krow[u].load(kv.keys + off);
      vrow[u].load(kv.values + off);
    }
#pragma unroll
    for (int u = 0; u < kRowsAhead; ++u) {
      if (t0 + u * kAttnWarps >= t_end) break;
      float kr[D], vr[D];
      krow[u].to_float(kr);
      vrow[u].to_float(vr);
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
  }

  merge_warp_states<kAttnWarps, D>(m, l, acc, group, sm_max, sm_sum, sm_acc, [&](int g, int d, float mx, float sum,
                                                                                 float a) {
    const int64_t head = static_cast<int64_t>(e) * n_head + kvh * group + g;
    if (splits == 1) {
      out[head * hd + d] = a / sum;
      // A warp holds 32 consecutive dimensions of one head: one quant block.
      if (q8.q) quantize_block32(a / sum, lane, q8.q + (head * hd + d) / 32 * 32, q8.d + (head * hd + d) / 32);
    } else {
      float* p = partial + (head * splits + split) * (hd + 2);
      if (d == 0) p[0] = mx, p[1] = sum;
      p[2 + d] = a;
    }
  });
}

// Grid (entry, head), one thread per dimension.
__global__ void merge_splits_kernel(const float* __restrict__ partial, int splits, int hd, float* __restrict__ out,
                                    Q8Out q8) {
  pdl_enter();
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
  if (q8.q) quantize_block32(a / sum, d % 32, q8.q + (head * hd + d) / 32 * 32, q8.d + (head * hd + d) / 32);
}

// One token (single-stream decode): grid (block of kHeads query heads of one
// kv head, split), kOneWarps warps. One head a block: a kv head's rows are
// then read by group blocks (from L2 after the first), but a block's chain
// of dependent steps -- scores, softmax, the warps' merge, the output -- is
// a group's fraction as long, and that chain, not memory, bounds the kernel
// (ncu, Llama-3-8B on an H100: 8 blocks of 4 heads, 2 warps a scheduler,
// one instruction issued per 8.7 cycles; tg128 13% faster in Q4_0 with a
// block per head). Everything no kernel of this step writes -- the position
// and block table (uploaded before the step's first kernel) and the cache
// rows of earlier positions -- is loaded before waiting for the previous
// kernel (the q/k/v GEMV), so the latency of the table lookups and of the
// cache rows overlaps that kernel instead of following it; after the wait
// only the projections are read. A round is kAttnSplitTokens positions, kOneRows per warp, all
// scored before the softmax state is updated once (not once per position).
// With splits > 1 each block leaves its (max, sum, accumulator) in partial
// and the last block of its heads to finish (counters[block], reset by that
// block) merges them: no second launch.
constexpr int kOneWarps = 8;
constexpr int kOneRows = kAttnSplitTokens / kOneWarps;

template <int D, int kHeads>
__global__ void __launch_bounds__(kOneWarps * 32)
    attention_one_kernel(const float* __restrict__ q, KvLayout kv, BatchDevice batch, int n_head, float scale,
                         int splits, float* __restrict__ partial, unsigned* __restrict__ counters,
                         float* __restrict__ out, Q8Out q8, RopeIn rope) {
  constexpr int hd = 32 * D;
  __shared__ float sm_max[kOneWarps][kHeads], sm_sum[kOneWarps][kHeads];
  __shared__ float sm_acc[kOneWarps][kHeads][hd];
  __shared__ bool sm_last;
  const int group = n_head / kv.n_head_kv;
  // This block's query heads: [head0, head0 + heads) of kv head kvh.
  const int heads = min(group, kHeads), slices = group / heads;
  const int kvh = blockIdx.x / slices, head0 = blockIdx.x * heads, split = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int bt = kv.block_tokens;
  const int len = batch.pos[0] + 1, last = len - 1;  // `last` is written in this step
  const int32_t* table = batch.tables + batch.table_offset[0];
  const int t_begin = splits > 1 ? split * kAttnSplitTokens : 0;
  const int t_end = splits > 1 ? min(len, t_begin + kAttnSplitTokens) : len;
  auto row_offset = [&](int t) {
    return ((static_cast<int64_t>(table[t / bt]) * kv.n_head_kv + kvh) * bt + t % bt) * hd + lane * D;
  };
  HalfRow<D> krow[kOneRows]{}, vrow[kOneRows]{};
#pragma unroll
  for (int u = 0; u < kOneRows; ++u) {
    const int t = t_begin + warp + kOneWarps * u;
    if (t < t_end && t < last) {
      krow[u].load(kv.keys + row_offset(t));
      vrow[u].load(kv.values + row_offset(t));
    }
  }
  pdl_enter();

  float qr[kHeads][D];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    const int h = head0 + g;
#pragma unroll
    for (int j = 0; j < D; ++j)
      qr[g][j] = g < heads ? q[h * hd + lane * D + j] + (rope.bq ? rope.bq[h * hd + lane * D + j] : 0.0f) : 0.0f;
    if (rope.k != nullptr && g < heads) rope_row<D>(qr[g], lane, rope.neox, rope.cos, rope.sin);
#pragma unroll
    for (int j = 0; j < D; ++j) qr[g][j] *= scale;
  }
  // This step's row: the warp that scores it takes it from the projections
  // (rotated, rounded to fp16 and stored, as rope_and_store_kv does) or,
  // rotated by the previous kernel, from the cache.
  const bool own_last = last >= t_begin && last < t_end && (last - t_begin) % kOneWarps == warp;
  HalfRow<D> k_last{}, v_last{};
  if (own_last) {
    const int64_t off = row_offset(last);
    if (rope.k != nullptr) {
      float kr[D], vr[D];
#pragma unroll
      for (int j = 0; j < D; ++j) {
        const int i = kvh * hd + lane * D + j;
        kr[j] = rope.k[i] + (rope.bk ? rope.bk[i] : 0.0f);
        vr[j] = rope.v[i] + (rope.bv ? rope.bv[i] : 0.0f);
      }
      rope_row<D>(kr, lane, rope.neox, rope.cos, rope.sin);
      k_last.pack(kr);
      v_last.pack(vr);
      if (head0 == kvh * group) {  // the kv head's first slice stores; every slice uses its own copy
        k_last.store(kv.keys + off);
        v_last.store(kv.values + off);
      }
    } else {
      k_last.load(kv.keys + off);
      v_last.load(kv.values + off);
    }
  }

  float acc[kHeads][D], m[kHeads], l[kHeads];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    m[g] = kEmptyMax, l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < D; ++j) acc[g][j] = 0.0f;
  }
  for (int r0 = t_begin; r0 < t_end; r0 += kAttnSplitTokens) {
    const int u_last = own_last && last >= r0 && last < r0 + kAttnSplitTokens ? (last - r0) / kOneWarps : -1;
#pragma unroll
    for (int u = 0; u < kOneRows; ++u) {  // constant indices: the rows stay in registers
      const int t = r0 + warp + kOneWarps * u;
      if (r0 != t_begin && t < t_end && t < last) {
        krow[u].load(kv.keys + row_offset(t));
        vrow[u].load(kv.values + row_offset(t));
      }
      if (u == u_last) krow[u].bits = k_last.bits, vrow[u].bits = v_last.bits;
    }
    float s[kOneRows][kHeads];
#pragma unroll
    for (int u = 0; u < kOneRows; ++u) {
      const bool valid = r0 + warp + kOneWarps * u < t_end;
      float kr[D];
      krow[u].to_float(kr);
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        if (g >= heads) break;
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < D; ++j) dot += qr[g][j] * kr[j];
        dot = warp_sum(dot);
        s[u][g] = valid ? dot : kEmptyMax;
      }
    }
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
      if (g >= heads) break;
      float mr = m[g];
#pragma unroll
      for (int u = 0; u < kOneRows; ++u) mr = fmaxf(mr, s[u][g]);
      const float corr = __expf(m[g] - mr);
      l[g] *= corr;
#pragma unroll
      for (int j = 0; j < D; ++j) acc[g][j] *= corr;
      m[g] = mr;
    }
#pragma unroll
    for (int u = 0; u < kOneRows; ++u) {
      if (r0 + warp + kOneWarps * u >= t_end) break;
      float vr[D];
      vrow[u].to_float(vr);
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        if (g >= heads) break;
        const float p = __expf(s[u][g] - m[g]);
        l[g] += p;
#pragma unroll
        for (int j = 0; j < D; ++j) acc[g][j] += p * vr[j];
      }
    }
  }

  merge_warp_states<kOneWarps, D>(m, l, acc, heads, sm_max, sm_sum, sm_acc, [&](int g, int d, float mx, float sum,
                                                                                float a) {
    const int head = head0 + g;
    if (splits == 1) {
      out[head * hd + d] = a / sum;
      if (q8.q) quantize_block32(a / sum, lane, q8.q + (head * hd + d) / 32 * 32, q8.d + (head * hd + d) / 32);
    } else {
      float* p = partial + (static_cast<int64_t>(head) * splits + split) * (hd + 2);
      if (d == 0) p[0] = mx, p[1] = sum;
      p[2 + d] = a;
    }
  });
  if (splits == 1) return;
  // The last block of this kv head merges (threadfence reduction: the
  // partials are visible before the counter moves).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) sm_last = atomicAdd(counters + blockIdx.x, 1u) == static_cast<unsigned>(splits - 1);
  __syncthreads();
  if (!sm_last) return;
  __threadfence();
  for (int idx = threadIdx.x; idx < heads * hd; idx += blockDim.x) {
    const int g = idx / hd, d = idx % hd, head = head0 + g;
    const float* p = partial + static_cast<int64_t>(head) * splits * (hd + 2);
    float mx = kEmptyMax;
    for (int sp = 0; sp < splits; ++sp) mx = fmaxf(mx, __ldcg(p + sp * (hd + 2)));
    float sum = 0.0f, a = 0.0f;
    for (int sp = 0; sp < splits; ++sp) {
      const float* ps = p + sp * (hd + 2);
      const float f = __expf(__ldcg(ps) - mx);
      sum += __ldcg(ps + 1) * f;
      a += __ldcg(ps + 2 + d) * f;
    }
    out[head * hd + d] = a / sum;
    if (q8.q) quantize_block32(a / sum, lane, q8.q + (head * hd + d) / 32 * 32, q8.d + (head * hd + d) / 32);
  }
  if (threadIdx.x == 0) counters[blockIdx.x] = 0;  // ready for the next launch
}

template <int D>
cudaError_t launch_one(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_head, float scale,
                       int splits, float* partial, unsigned* counters, float* out, Q8Out q8, const RopeIn& rope,
                       cudaStream_t stream) {
  // FRUGAL_CUDA_ATTN_GROUP_BLOCKS=1: one block per kv head, all its query
  // heads (the earlier form, for comparisons).
  static const bool grouped = [] {
    const char* e = std::getenv("FRUGAL_CUDA_ATTN_GROUP_BLOCKS");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  if (grouped)
    return launch_kernel(attention_one_kernel<D, kMaxGroup>, dim3(kv.n_head_kv, splits), kOneWarps * 32, 0, stream, q,
                         kv, batch, n_head, scale, splits, partial, counters, out, q8, rope);
  return launch_kernel(attention_one_kernel<D, 1>, dim3(n_head, splits), kOneWarps * 32, 0, stream, q, kv, batch,
                       n_head, scale, splits, partial, counters, out, q8, rope);
}

template <int D>
cudaError_t launch(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_tokens, int n_head,
                   float scale, int splits, float* partial, float* out, Q8Out q8, const RopeIn& rope,
                   cudaStream_t stream) {
  const dim3 grid(n_tokens, kv.n_head_kv, splits);
  return launch_kernel(attention_kernel<D>, grid, kAttnWarps * 32, 0, stream, q, kv, batch, n_head, scale, splits,
                       partial, out, q8, rope);
}

}  // namespace

cudaError_t attention(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_tokens, int n_head,
                      float scale, int splits, float* partial, float* out, cudaStream_t stream, Q8Out q8,
                      const RopeIn& rope, unsigned* split_counters) {
  if (n_tokens <= 0) return cudaSuccess;
  if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv != 0 || n_head / kv.n_head_kv > kMaxGroup || splits < 1 ||
      (splits > 1 && partial == nullptr) || (q8.q != nullptr && q8.d == nullptr))
    return cudaErrorInvalidValue;
  // Rotating in the kernel: one entry (another entry of the same sequence
  // would read the stored row from another block), every dimension rotated.
  if (rope.k != nullptr &&
      (n_tokens != 1 || rope.v == nullptr || rope.cos == nullptr || rope.sin == nullptr || rope.n_rot != kv.head_dim))
    return cudaErrorInvalidValue;
  if (n_tokens == 1 && (splits == 1 || split_counters != nullptr)) {
    switch (kv.head_dim) {
      case 32:
        return launch_one<1>(q, kv, batch, n_head, scale, splits, partial, split_counters, out, q8, rope, stream);
      case 64:
        return launch_one<2>(q, kv, batch, n_head, scale, splits, partial, split_counters, out, q8, rope, stream);
      case 128:
        return launch_one<4>(q, kv, batch, n_head, scale, splits, partial, split_counters, out, q8, rope, stream);
      default: break;  // larger heads: the per-entry kernel below
    }
  }
  cudaError_t err = cudaErrorInvalidValue;
  switch (kv.head_dim) {
    case 32: err = launch<1>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, q8, rope, stream); break;
    case 64: err = launch<2>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, q8, rope, stream); break;
    case 128: err = launch<4>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, q8, rope, stream); break;
    case 256: err = launch<8>(q, kv, batch, n_tokens, n_head, scale, splits, partial, out, q8, rope, stream); break;
    default: return cudaErrorInvalidValue;
  }
  if (err != cudaSuccess || splits == 1) return err;
  return launch_kernel(merge_splits_kernel, dim3(n_tokens, n_head), kv.head_dim, 0, stream, partial, splits,
                       kv.head_dim, out, q8);
}

namespace {

constexpr int kTileRows = 64;      // (entry, query head) rows per prefill block: 4 warps x 16
constexpr int kKeyTile = 64;       // keys per step
constexpr int kTileThreads = 128;  // 4 warps

__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// c += a * b on tensor cores: a 16x16 (row-major fragments), b 16x8, fp16
// operands, fp32 accumulators. Fragment layouts (lane = 4 * g + t): a regs
// {row g, cols 2t..2t+1}, {row g+8, same}, {row g, cols 2t+8..}, {row g+8,
// cols 2t+8..}; b regs {k 2t..2t+1, col g}, {k 2t+8..2t+9, col g}; c {row g,
// cols 2t, 2t+1}, {row g+8, same}.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 fp16 matrices from shared memory, transposed: lanes 8m..8m+7
// give the row addresses of matrix m, register m of lane 4 * g + t gets its
// elements (2t, g) and (2t + 1, g): the b operand of mma_16816 read from a
// row-major [key][dim] tile.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* p) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// 16 bytes global -> shared without passing through registers; valid false
// fills zeros and reads nothing.
__device__ __forceinline__ void cp_async16(__half* smem, const __half* gmem, bool valid) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Shared memory of a block: two stages of a key tile's keys and values.
template <int D>
__host__ __device__ constexpr size_t attention_tile_smem() {
  return size_t{2} * 2 * kKeyTile * (D + 8) * sizeof(__half);
}

// One warp's share of a key tile: scores of its 16 query rows (qa; rows
// g and g + 8 of the lane at positions pos_lo / pos_hi) against the tile's
// kKeyTile keys from position key0 (rows of ks / vs, row-major [key][dim]
// with kPitch halves), the online softmax update of (m, l) and o += P V.
template <int D>
__device__ __forceinline__ void attend_key_rows(const uint32_t (&qa)[D / 16][4], const __half* ks, const __half* vs,
                                                int key0, int pos_lo, int pos_hi, int v_lane, float (&o)[D / 8][4],
                                                float& m_lo, float& m_hi, float& l_lo, float& l_hi) {
  constexpr int kKSteps = D / 16, kDimTiles = D / 8, kPitch = D + 8, kNt = kKeyTile / 8;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  float s[kNt][4];
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt) {
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    const __half* kr = ks + (nt * 8 + g) * kPitch + 2 * t;
#pragma unroll
    for (int k = 0; k < kKSteps; ++k)
      mma_16816(s[nt], qa[k], *reinterpret_cast<const uint32_t*>(kr + k * 16),
                *reinterpret_cast<const uint32_t*>(kr + k * 16 + 8));
  }
  // Causal mask, then the online softmax per row (a row's values sit in one lane quad).
  float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int key = key0 + nt * 8 + 2 * t + j;
      if (key > pos_lo) s[nt][j] = kEmptyMax;
      if (key > pos_hi) s[nt][2 + j] = kEmptyMax;
      mx_lo = fmaxf(mx_lo, s[nt][j]);
      mx_hi = fmaxf(mx_hi, s[nt][2 + j]);
    }
#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 <<= 1) {
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, o2));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, o2));
  }
  const float corr_lo = __expf(m_lo - mx_lo), corr_hi = __expf(m_hi - mx_hi);
  m_lo = mx_lo, m_hi = mx_hi;
  float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt) {
    s[nt][0] = __expf(s[nt][0] - m_lo), s[nt][1] = __expf(s[nt][1] - m_lo);
    s[nt][2] = __expf(s[nt][2] - m_hi), s[nt][3] = __expf(s[nt][3] - m_hi);
    sum_lo += s[nt][0] + s[nt][1];
    sum_hi += s[nt][2] + s[nt][3];
  }
  l_lo = l_lo * corr_lo + sum_lo;  // this lane's share; the quad is summed at the end
  l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) o[i][0] *= corr_lo, o[i][1] *= corr_lo, o[i][2] *= corr_hi, o[i][3] *= corr_hi;
  // O += P V: two adjacent 8-key score tiles form one 16-key A fragment.
#pragma unroll
  for (int kk = 0; kk < kNt / 2; ++kk) {
    const uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                            pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                            pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int i = 0; i < kDimTiles; i += 2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, vs + kk * 16 * kPitch + i * 8 + v_lane);
      mma_16816(o[i], pa, b[0], b[1]);
      mma_16816(o[i + 1], pa, b[2], b[3]);
    }
  }
}

// Grid (tile, kv head). Block row r is query head kvh * group + r % group of
// tile entry r / group. Keys and values of the tile's sequence go through
// shared memory 64 positions at a time, copied asynchronously one tile ahead
// of the products (two stages): a tile's copies are in flight together and
// overlap the previous tile's products. Scores stay in registers, where the
// online softmax rescales them and they become the fp16 A operand of the
// value product (flash-attention 2 layout). Warp w owns rows 16w..16w+15.
template <int D>
__global__ void __launch_bounds__(kTileThreads, 2)
    attention_prefill_kernel(const float* __restrict__ q, KvLayout kv, BatchDevice batch,
                             const int32_t* __restrict__ tiles, int n_head, int group, float scale,
                             float* __restrict__ out, Act16Out out16) {
  pdl_enter();
  constexpr int kKSteps = D / 16, kDimTiles = D / 8;
  constexpr int kPitch = D + 8;  // halves; padding keeps fragment loads conflict-free
  constexpr int kStage = kKeyTile * kPitch;
  extern __shared__ __align__(16) unsigned char tile_smem[];
  __half* const sk = reinterpret_cast<__half*>(tile_smem);  // [stage][key][dim]
  __half* const sv = sk + 2 * kStage;                       // [stage][key][dim]
  __shared__ int s_pos[kTileRows];
  static_assert(kTileRows == 64, "two positions per lane below");
  const int e0 = tiles[2 * blockIdx.x], cnt = tiles[2 * blockIdx.x + 1], kvh = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int32_t* table = batch.tables + batch.table_offset[e0];
  for (int r = threadIdx.x; r < kTileRows; r += blockDim.x)
    s_pos[r] = r / group < cnt ? batch.pos[e0 + r / group] : -1;  // -1: no query in this row
  __syncthreads();
  int max_pos = max(s_pos[lane], s_pos[lane + 32]);
#pragma unroll
  for (int o2 = 16; o2 >= 1; o2 >>= 1) max_pos = max(max_pos, __shfl_xor_sync(0xffffffffu, max_pos, o2));
  const int r_lo = warp * 16 + g, r_hi = r_lo + 8;
  const int pos_lo = s_pos[r_lo], pos_hi = s_pos[r_hi];
  const int bt = kv.block_tokens;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kLoads = kKeyTile * kChunks / kTileThreads;
  static_assert(kKeyTile * kChunks % kTileThreads == 0, "whole loads per thread");
  // Consecutive threads copy consecutive 16-byte chunks of a key row and of
  // the same value row (coalesced); positions past the tile's last query
  // are zeros (nothing read).
  auto fetch = [&](int k0, int stage) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int idx = threadIdx.x + i * kTileThreads, p = k0 + idx / kChunks;
      const bool valid = p <= max_pos;
      const int64_t at =
          valid ? ((static_cast<int64_t>(table[p / bt]) * kv.n_head_kv + kvh) * bt + p % bt) * D + idx % kChunks * 8
                : 0;
      const int to = stage * kStage + idx / kChunks * kPitch + idx % kChunks * 8;
      cp_async16(sk + to, kv.keys + at, valid);
      cp_async16(sv + to, kv.values + at, valid);
    }
    cp_async_commit();
  };
  if (max_pos >= 0) fetch(0, 0);  // in flight while q is read

  auto row_at = [&](int r) { return (static_cast<int64_t>(e0 + r / group) * n_head + kvh * group + r % group) * D; };
  const float* ql = pos_lo >= 0 ? q + row_at(r_lo) : nullptr;
  const float* qh = pos_hi >= 0 ? q + row_at(r_hi) : nullptr;
  auto q_pair = [&](const float* row, int col) {
    return row ? pack_half2(row[col] * scale, row[col + 1] * scale) : 0u;
  };
  uint32_t qa[kKSteps][4];
#pragma unroll
  for (int ks = 0; ks < kKSteps; ++ks) {
    const int c = ks * 16 + 2 * t;
    qa[ks][0] = q_pair(ql, c), qa[ks][1] = q_pair(qh, c), qa[ks][2] = q_pair(ql, c + 8), qa[ks][3] = q_pair(qh, c + 8);
  }
  float o[kDimTiles][4];
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_lo = kEmptyMax, m_hi = kEmptyMax, l_lo = 0.0f, l_hi = 0.0f;
  // Warps whose 16 rows hold no query still copy, but skip the products.
  const bool warp_has_rows = __any_sync(0xffffffffu, pos_lo >= 0 || pos_hi >= 0);
  // Lane's row address for ldmatrix_x4_trans: matrices (keys 0-7, dims
  // 0-7), (keys 8-15, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 8-15).
  const int v_lane = ((lane / 8) % 2 * 8 + lane % 8) * kPitch + lane / 16 * 8;

  for (int k0 = 0, stage = 0; k0 <= max_pos; k0 += kKeyTile, stage ^= 1) {
    if (k0 + kKeyTile <= max_pos) {
      fetch(k0 + kKeyTile, stage ^ 1);  // the stage the previous step read
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // every thread's copies of this stage have landed
    const __half* ks_tile = sk + stage * kStage;
    const __half* vs_tile = sv + stage * kStage;
    if (warp_has_rows)
      attend_key_rows<D>(qa, ks_tile, vs_tile, k0, pos_lo, pos_hi, v_lane, o, m_lo, m_hi, l_lo, l_hi);
    __syncthreads();  // this stage is consumed before the next step refills it
  }
#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, o2);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, o2);
  }
  auto store_pair = [&](int r, int dim, float a0, float a1) {
    const int64_t at = row_at(r) + dim;
    if (out) *reinterpret_cast<float2*>(out + at) = make_float2(a0, a1);
    if (out16.data) store2_16(out16, at / 2, a0, a1);
  };
  // Each lane holds value pairs (2t, 2t + 1) of 8-wide column tiles of its two rows.
  if (pos_lo >= 0)
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) store_pair(r_lo, i * 8 + 2 * t, o[i][0] / l_lo, o[i][1] / l_lo);
  if (pos_hi >= 0)
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) store_pair(r_hi, i * 8 + 2 * t, o[i][2] / l_hi, o[i][3] / l_hi);
}

// One-token entries of a large decode batch (group <= kMaxGroup query heads
// per kv head). The tile kernel gives such an entry a whole block whose
// warps mostly copy keys for one warp's products; here each of the block's
// warps takes every fourth run of kDecodeKeys positions and loads its keys
// and values from global memory straight into tensor-core fragments (no
// shared-memory staging, no barriers in the loop), and the warps' softmax
// states are merged at the end. Fragment order, with lane = 4 * g + t:
// - scores: rows are the query heads (rows >= group and 8..15 are zeros);
//   k-step 2i + h takes dims 32i + 8t + 4h + {0..3} from lane t (a
//   permutation of the head dimensions, the same for the query fragments),
//   so each lane's share of a key row is four 16-byte loads;
// - values: n-tile i's column g is dim kLaneDims * g + i, so lane g reads
//   kLaneDims contiguous dims of each of its four key rows and pairs rows
//   with byte permutes; the output then sits in lane t as dims
//   kLaneDims * 2t + i and kLaneDims * (2t + 1) + i.
constexpr int kDecodeWarps = 4;
constexpr int kDecodeKeys = 16;  // keys per warp step: two score n-tiles, one value k-step

template <int kWords>
__device__ __forceinline__ uint32_t word_of(const uint4 (&v)[kWords], int w) {
  const uint4& u = v[w / 4];
  return w % 4 == 0 ? u.x : w % 4 == 1 ? u.y : w % 4 == 2 ? u.z : u.w;
}

// The explicit minimum of one block per multiprocessor lets the compiler
// keep a whole run's loads in registers (176 of them for D = 128) and issue
// them together; left to its default it used 154 and the kernel took 31
// instead of 22 us on a 64-sequence decode step.
template <int D>
__global__ void __launch_bounds__(kDecodeWarps * 32, 1)
    attention_decode_kernel(const float* __restrict__ q, KvLayout kv, BatchDevice batch, int n_head, float scale,
                            float* __restrict__ out, Act16Out out16) {
  constexpr int kKWords = D / 32;    // 16-byte loads per lane per key row
  constexpr int kLaneDims = D / 8;   // value dims per lane group
  constexpr int kVWords = D / 64;    // 16-byte loads per lane per value row
  constexpr int kDimTiles = D / 8;
  __shared__ float sm_o[kDecodeWarps][kMaxGroup][D];
  __shared__ float sm_m[kDecodeWarps][kMaxGroup], sm_l[kDecodeWarps][kMaxGroup];
  pdl_enter();
  const int e = blockIdx.x, kvh = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int group = n_head / kv.n_head_kv;
  const int pos = batch.pos[e];
  const int32_t* table = batch.tables + batch.table_offset[e];
  const int bt = kv.block_tokens;

  uint32_t qa[D / 16][2];  // (a0, a2) of each k-step; a1 and a3 (rows 8..15) are zero
  {
    const float* qr = q + (static_cast<int64_t>(e) * n_head + kvh * group + g) * D;
#pragma unroll
    for (int i = 0; i < D / 32; ++i) {
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
      if (g < group) {
        a = *reinterpret_cast<const float4*>(qr + 32 * i + 8 * t);
        b = *reinterpret_cast<const float4*>(qr + 32 * i + 8 * t + 4);
      }
      qa[2 * i][0] = pack_half2(a.x * scale, a.y * scale), qa[2 * i][1] = pack_half2(a.z * scale, a.w * scale);
      qa[2 * i + 1][0] = pack_half2(b.x * scale, b.y * scale), qa[2 * i + 1][1] = pack_half2(b.z * scale, b.w * scale);
    }
  }
  float o[kDimTiles][4];
#pragma unroll
  for (int i = 0; i < kDimTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m = kEmptyMax, l = 0.0f;
  // Positions past the entry's own read its last row instead (their scores
  // are masked): the table has no block for them.
  auto row_at = [&](const __half* base, int p) {
    p = min(p, pos);
    return reinterpret_cast<const uint4*>(
        base + ((static_cast<int64_t>(table[p / bt]) * kv.n_head_kv + kvh) * bt + p % bt) * D);
  };
  const int vkey[4] = {2 * t, 2 * t + 1, 2 * t + 8, 2 * t + 9};
  struct KeyRun {
    uint4 k[2][kKWords], v[4][kVWords];
  };
  auto fetch = [&](int k0, KeyRun& run) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const uint4* p = row_at(kv.keys, k0 + 8 * nt + g);
#pragma unroll
      for (int i = 0; i < kKWords; ++i) run.k[nt][i] = p[4 * i + t];
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const uint4* p = row_at(kv.values, k0 + vkey[r]);
#pragma unroll
      for (int j = 0; j < kVWords; ++j) run.v[r][j] = p[kVWords * g + j];
    }
  };
  auto attend = [&](int k0, const KeyRun& run) {
    float s[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int i = 0; i < kKWords; ++i) {
        const uint32_t a0[4] = {qa[2 * i][0], 0u, qa[2 * i][1], 0u}, a1[4] = {qa[2 * i + 1][0], 0u, qa[2 * i + 1][1], 0u};
        mma_16816(s[nt], a0, run.k[nt][i].x, run.k[nt][i].y);
        mma_16816(s[nt], a1, run.k[nt][i].z, run.k[nt][i].w);
      }
    }
    float mx = m;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        if (k0 + 8 * nt + 2 * t + j > pos) s[nt][j] = kEmptyMax;
        mx = fmaxf(mx, s[nt][j]);
      }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float corr = __expf(m - mx);
    m = mx;
    float sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      s[nt][0] = __expf(s[nt][0] - m), s[nt][1] = __expf(s[nt][1] - m);
      sum += s[nt][0] + s[nt][1];
    }
    l = l * corr + sum;  // this lane's share; the quad is summed at the end
    const uint32_t pa[4] = {pack_half2(s[0][0], s[0][1]), 0u, pack_half2(s[1][0], s[1][1]), 0u};
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) {
      o[i][0] *= corr, o[i][1] *= corr;
      const unsigned sel = i % 2 ? 0x7632u : 0x5410u;  // high or low halves of a word of two rows
      const uint32_t b0 = __byte_perm(word_of(run.v[0], i / 2), word_of(run.v[1], i / 2), sel);
      const uint32_t b1 = __byte_perm(word_of(run.v[2], i / 2), word_of(run.v[3], i / 2), sel);
      mma_16816(o[i], pa, b0, b1);
    }
  };
  for (int k0 = warp * kDecodeKeys; k0 <= pos; k0 += kDecodeWarps * kDecodeKeys) {
    KeyRun run;
    fetch(k0, run);
    attend(k0, run);
  }
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  if (g < group) {
#pragma unroll
    for (int i = 0; i < kDimTiles; ++i) {
      sm_o[warp][g][kLaneDims * 2 * t + i] = o[i][0];
      sm_o[warp][g][kLaneDims * (2 * t + 1) + i] = o[i][1];
    }
    if (t == 0) sm_m[warp][g] = m, sm_l[warp][g] = l;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * D / 2; idx += blockDim.x) {
    const int r = idx / (D / 2), d = 2 * (idx % (D / 2));
    float mx = kEmptyMax;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) mx = fmaxf(mx, sm_m[w][r]);
    float sum = 0.0f, a0 = 0.0f, a1 = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float f = __expf(sm_m[w][r] - mx);
      sum += sm_l[w][r] * f;
      a0 += sm_o[w][r][d] * f;
      a1 += sm_o[w][r][d + 1] * f;
    }
    const int64_t at = (static_cast<int64_t>(e) * n_head + kvh * group + r) * D + d;
    if (out) *reinterpret_cast<float2*>(out + at) = make_float2(a0 / sum, a1 / sum);
    if (out16.data) store2_16(out16, at / 2, a0 / sum, a1 / sum);
  }
}

}  // namespace

int attention_prefill_tiles(const int32_t* seq_of_entry, int n_entries, int group, int32_t* tiles) {
  if (group < 1 || group > kTileRows) return 0;
  const int per_tile = kTileRows / group, n = n_entries;
  int n_tiles = 0;
  for (int e = 0; e < n;) {
    int cnt = 1;
    while (e + cnt < n && cnt < per_tile && seq_of_entry[e + cnt] == seq_of_entry[e]) ++cnt;
    tiles[2 * n_tiles] = e, tiles[2 * n_tiles + 1] = cnt;
    ++n_tiles;
    e += cnt;
  }
  return n_tiles;
}

bool attention_prefill_supported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && group >= 1 && group <= kTileRows;
}

cudaError_t attention_prefill(const float* q, const KvLayout& kv, const BatchDevice& batch, const int32_t* tiles,
                              int n_tiles, int n_head, float scale, float* out, cudaStream_t stream, Act16Out out16) {
  if (n_tiles <= 0) return cudaSuccess;
  if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv != 0 ||
      !attention_prefill_supported(kv.head_dim, n_head / kv.n_head_kv))
    return cudaErrorInvalidValue;
  if (out == nullptr && out16.data == nullptr) return cudaErrorInvalidValue;
  const dim3 grid(n_tiles, kv.n_head_kv);
  const int group = n_head / kv.n_head_kv;
  // Above the 48 KiB default of dynamic shared memory for head_dim 128.
  static const cudaError_t smem_ok = [] {
    const cudaError_t e = cudaFuncSetAttribute(attention_prefill_kernel<64>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, attention_tile_smem<64>());
    return e != cudaSuccess
               ? e
               : cudaFuncSetAttribute(attention_prefill_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      attention_tile_smem<128>());
  }();
  if (smem_ok != cudaSuccess) return smem_ok;
  if (kv.head_dim == 64)
    return launch_kernel(attention_prefill_kernel<64>, grid, kTileThreads, attention_tile_smem<64>(), stream, q, kv,
                         batch, tiles, n_head, group, scale, out, out16);
  return launch_kernel(attention_prefill_kernel<128>, grid, kTileThreads, attention_tile_smem<128>(), stream, q, kv,
                       batch, tiles, n_head, group, scale, out, out16);
}

bool attention_decode_supported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && group >= 1 && group <= kMaxGroup;
}

cudaError_t attention_decode(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_entries, int n_head,
                             float scale, float* out, cudaStream_t stream, Act16Out out16) {
  if (n_entries <= 0) return cudaSuccess;
  if (kv.n_head_kv <= 0 || n_head % kv.n_head_kv != 0 ||
      !attention_decode_supported(kv.head_dim, n_head / kv.n_head_kv))
    return cudaErrorInvalidValue;
  if (out == nullptr && out16.data == nullptr) return cudaErrorInvalidValue;
  const dim3 grid(n_entries, kv.n_head_kv);
  if (kv.head_dim == 64)
    return launch_kernel(attention_decode_kernel<64>, grid, kDecodeWarps * 32, 0, stream, q, kv, batch, n_head, scale,
                         out, out16);
  return launch_kernel(attention_decode_kernel<128>, grid, kDecodeWarps * 32, 0, stream, q, kv, batch, n_head, scale,
                       out, out16);
}

bool attention_head_dim_supported(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

}  // namespace frugal::cuda
