// Internal: GEMV/GEMM kernels over the interleaved 8-row layouts of packed.h
// for 256-bit vectors, shared by the AVX2 and the AVX-512 translation units
// (the latter instantiates the VNNI variant). Internal linkage on purpose,
// see simd_avx2.h.
//
// One register tile is one group of 8 rows x T tokens. For every 4-element
// slice of a block the 8 rows' quants are one vector; the matching 4
// activation bytes of a token are broadcast to all lanes (a load, not a
// shuffle), so a maddubs/dpbusd yields partial dot products of all 8 rows in
// their own lanes. Per block and token that leaves one int->float
// conversion and one FMA with the vector of 8 row scales, and the 8 results
// are stored with one instruction: no horizontal sums anywhere.
#pragma once


#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/simd_avx2.h"

namespace frugal::kernels {
namespace {

using namespace avx2;

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline __m256 row_scales(const uint16_t* d) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d)));
}

// Writes the 8 lanes of `v` to out[0..n) (n < 8 only for the last group).
inline void store_rows(float* out, __m256 v, int n) {
  if (n == kPackRows) {
    _mm256_storeu_ps(out, v);
  } else {
    alignas(32) float tmp[kPackRows];
    _mm256_store_ps(tmp, v);
    for (int i = 0; i < n; ++i) out[i] = tmp[i];
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// Q4_0, one token, dpbusd: the low and the high nibbles sum into separate
// registers and consecutive blocks into separate accumulators, so no
// dependency chain is longer than 4 dpbusd (q4_0x8_tile<true, 1> chains 8
// per block and one FMA per block); 6% more bytes per second in L2 on a
// Zen 4 core. Same integers; the fp32 sums are added in another order.
inline void q4_0x8_gemv_vnni(const PackQ4_0x8* P, const ActQ8* a, int64_t nb, float* out, int n_rows) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  auto block = [&](int64_t b) {
    const PackQ4_0x8& p = P[b];
    prefetch_ahead(&p, sizeof(p));
    const int8_t* aq = a[b].qs;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (int v = 0; v < 4; ++v) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs + 32 * v));
      s0 = _mm256_dpbusd_epi32(s0, _mm256_and_si256(raw, m4), bcast4(aq + 4 * v));
      s1 = _mm256_dpbusd_epi32(s1, _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), bcast4(aq + 16 + 4 * v));
    }
    const __m256i s = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_set1_epi32(8 * a[b].sum));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(row_scales(p.d), _mm256_set1_ps(a[b].d)));
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = _mm256_add_ps(acc0, block(b));
    acc1 = _mm256_add_ps(acc1, block(b + 1));
  }
  if (b < nb) acc0 = _mm256_add_ps(acc0, block(b));
  store_rows(out, _mm256_add_ps(acc0, acc1), n_rows);
}
#endif

// Q4_0: unsigned nibbles u = q + 8 times the activations, then subtract
// 8 * sum(a) per block (ActQ8::sum). Without VNNI the int16 maddubs results
// of a whole block are summed before widening: each is at most
// 2 * 15 * 127 = 3810 in magnitude, 8 of them 30480 < 2^15.
template <bool kVnni, int T>
inline void q4_0x8_tile(const PackQ4_0x8* P, const ActQ8* const* arow, int64_t nb, float* out,
                        int64_t out_stride, int n_rows) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  if constexpr (kVnni && T == 1) return q4_0x8_gemv_vnni(P, arow[0], nb, out, n_rows);
#endif
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ4_0x8& p = P[b];
    if constexpr (T == 1) prefetch_ahead(&p, sizeof(p));
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int v = 0; v < 4; ++v) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs + 32 * v));
      const __m256i lo = _mm256_and_si256(raw, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      for (int t = 0; t < T; ++t) {
        const int8_t* aq = arow[t][b].qs;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        if constexpr (kVnni) {
          isum[t] = _mm256_dpbusd_epi32(isum[t], lo, bcast4(aq + 4 * v));
          isum[t] = _mm256_dpbusd_epi32(isum[t], hi, bcast4(aq + 16 + 4 * v));
          continue;
        }
#endif
        isum[t] = _mm256_add_epi16(isum[t], _mm256_maddubs_epi16(lo, bcast4(aq + 4 * v)));
        isum[t] = _mm256_add_epi16(isum[t], _mm256_maddubs_epi16(hi, bcast4(aq + 16 + 4 * v)));
      }
    }
    const __m256 dw = row_scales(p.d);
    for (int t = 0; t < T; ++t) {
      const ActQ8& a = arow[t][b];
      __m256i s = kVnni ? isum[t] : _mm256_madd_epi16(isum[t], _mm256_set1_epi16(1));
      s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * a.sum));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(a.d)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) store_rows(out + t * out_stride, acc[t], n_rows);
}

// Q8_0: the packed quants are u = q + 128 (packed.h). With VNNI they are
// the unsigned operand of dpbusd against the signed activations as they
// are, and sum(u * a) - 128 * sum(a) is the signed dot product. Without it
// they go back to signed (u ^ 0x80) once per vector and their sign moves
// onto the activation (|q| unsigned for maddubs; activations are never
// -128); pair sums reach 2 * 128 * 127, so each maddubs is widened to int32
// at once. (Splitting the activations into nibbles instead, so that u times
// each nibble could be summed in int16, takes fewer multiply-port
// operations on paper, but measured 48 against 84 GFLOP/s for this form
// with the data in L1, on an Emerald Rapids core.)
template <bool kVnni, int T>
inline void q8_0x8_tile(const PackQ8_0x8* P, const ActQ8* const* arow, int64_t nb, float* out,
                        int64_t out_stride, int n_rows) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ8_0x8& p = P[b];
    if constexpr (T == 1) prefetch_ahead(&p, sizeof(p));
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int v = 0; v < 8; ++v) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs + 32 * v));
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      if constexpr (kVnni) {
        for (int t = 0; t < T; ++t) isum[t] = _mm256_dpbusd_epi32(isum[t], u, bcast4(arow[t][b].qs + 4 * v));
        continue;
      }
#endif
      const __m256i w = _mm256_xor_si256(u, flip);
      const __m256i wa = _mm256_sign_epi8(w, w);
      for (int t = 0; t < T; ++t) {
        const __m256i as = _mm256_sign_epi8(bcast4(arow[t][b].qs + 4 * v), w);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, as), ones));
      }
    }
    const __m256 dw = row_scales(p.d);
    for (int t = 0; t < T; ++t) {
      const ActQ8& a = arow[t][b];
      const __m256i s = kVnni ? _mm256_sub_epi32(isum[t], _mm256_set1_epi32(128 * a.sum)) : isum[t];
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(a.d)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) store_rows(out + t * out_stride, acc[t], n_rows);
}

template <class Pack, bool kVnni, int T>
inline void packed_tile(const Pack* P, const ActQ8* const* arow, int64_t nb, float* out, int64_t stride,
                        int n_rows) {
  if constexpr (std::is_same_v<Pack, PackQ4_0x8>)
    q4_0x8_tile<kVnni, T>(P, arow, nb, out, stride, n_rows);
  else
    q8_0x8_tile<kVnni, T>(P, arow, nb, out, stride, n_rows);
}

// Rows [r0, r1) with r0 a multiple of 8. Weight panels sized for L2 are
// reused by every token tile, as in the canonical kernels.
template <class Pack, bool kVnni, int kT = 4>
void gemm_packed(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
                 int64_t r1) {
  static_assert(kT >= 1 && kT <= 4);
  const int64_t nb = w.cols / 32;
  const auto* P = static_cast<const Pack*>(w.packed);
  const auto* A = static_cast<const ActQ8*>(act);
  const int64_t g_begin = r0 / kPackRows, g_end = (r1 + kPackRows - 1) / kPackRows;
  const int64_t panel = std::max<int64_t>(1, panel_rows(static_cast<size_t>(nb) * sizeof(Pack), 1));
  for (int64_t p0 = g_begin; p0 < g_end; p0 += panel) {
    const int64_t p1 = std::min(g_end, p0 + panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = static_cast<int>(std::min<int64_t>(kT, n_tokens - t0));
      const ActQ8* arow[kT];
      for (int i = 0; i < kT; ++i) arow[i] = A + (t0 + std::min(i, nt - 1)) * nb;
      for (int64_t g = p0; g < p1; ++g) {
        const Pack* pg = P + g * nb;
        const int n_rows = static_cast<int>(std::min<int64_t>(kPackRows, r1 - g * kPackRows));
        float* o = out + t0 * w.rows + g * kPackRows;
        if (nt == kT) packed_tile<Pack, kVnni, kT>(pg, arow, nb, o, w.rows, n_rows);
        else if (nt == 3) packed_tile<Pack, kVnni, 3>(pg, arow, nb, o, w.rows, n_rows);
        else if (nt == 2) packed_tile<Pack, kVnni, 2>(pg, arow, nb, o, w.rows, n_rows);
        else packed_tile<Pack, kVnni, 1>(pg, arow, nb, o, w.rows, n_rows);
      }
    }
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// Q4_K, one token, dpbusd: with a single token few registers are live, so
// each chunk's 256 bytes of quants are loaded once and both nibble halves
// (sub-blocks 2c and 2c + 1) go through dpbusd in the same pass, each half
// into two accumulators so that consecutive dpbusd do not wait on each
// other. Same integers as q4_kx8_tile<true, 1>, 24% more bytes per second
// with the weights in L2 on a Zen 4 core (`frugal_kernel_bench --gemv-mb`).
inline void q4_kx8_gemv_vnni(const PackQ4_Kx8* P, const quant::BlockQ8_K* a, const int16_t* sums32, int64_t nb,
                             float* out, int n_rows) {
  __m256 acc = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ4_Kx8& p = P[b];
    prefetch_ahead(&p, sizeof(p));
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const int8_t* aq = a[b].qs + 64 * c;
      __m256i lo0 = _mm256_setzero_si256(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
      for (int v = 0; v < 8; v += 2) {
        const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs[c][v]));
        const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs[c][v + 1]));
        lo0 = _mm256_dpbusd_epi32(lo0, _mm256_and_si256(r0, m4), bcast4(aq + 4 * v));
        hi0 = _mm256_dpbusd_epi32(hi0, _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4), bcast4(aq + 32 + 4 * v));
        lo1 = _mm256_dpbusd_epi32(lo1, _mm256_and_si256(r1, m4), bcast4(aq + 4 * v + 4));
        hi1 = _mm256_dpbusd_epi32(hi1, _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4), bcast4(aq + 36 + 4 * v));
      }
      const __m256i sc_lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p.scales[2 * c])));
      const __m256i sc_hi =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p.scales[2 * c + 1])));
      isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm256_mullo_epi32(_mm256_add_epi32(lo0, lo1), sc_lo),
                                                     _mm256_mullo_epi32(_mm256_add_epi32(hi0, hi1), sc_hi)));
    }
    const int16_t* pairs = sums32 + 8 * b;
    __m256i msum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i mn = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.mins[c])));
      msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mn, bcast4(reinterpret_cast<const int8_t*>(pairs + 2 * c))));
    }
    const __m256 ad = _mm256_set1_ps(a[b].d);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(row_scales(p.d), ad), acc);
    acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(row_scales(p.dmin), ad), acc);
  }
  store_rows(out, acc, n_rows);
}
#endif

// Q4_K: per sub-block the 8 maddubs of unsigned nibbles x activations are
// summed in int16 (bounded as for Q4_0), then one madd against the row
// scales (each repeated in both int16 halves of its lane) applies the 6-bit
// scale while widening. With VNNI the 8 slices go through dpbusd into an
// int32 sub-block sum (at most 32 * 15 * 127) and one mullo applies the
// scale: 8 instructions fewer per sub-block, the same integers. The low and
// the high nibbles of a chunk (sub-blocks 2c and 2c + 1) are two passes over
// the same 256 bytes rather than one:
// with 16 vector registers, T = 4 tokens of int16 sums for both sub-blocks
// plus the int32 and fp32 accumulators do not fit and the compiler spills
// in the innermost loop; reloading the quants costs one load per vector.
// The mins need sum(min_j * bsum_j), which does not touch the quants: with
// (min 2p, min 2p+1) as an int16 pair per row, one madd against the
// broadcast pair of 32-element activation sums covers two sub-blocks, in a
// short loop after the quants. The pairs come from `sums32` (per token, 8
// int16 per block, made once per call by sums32_of) so that the
// broadcast is a load, not scalar arithmetic repeated for every row group.
template <bool kVnni, int T>
inline void q4_kx8_tile(const PackQ4_Kx8* P, const quant::BlockQ8_K* const* arow, const int16_t* const* sums32,
                        int64_t nb, float* out, int64_t out_stride, int n_rows) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  if constexpr (kVnni && T == 1) return q4_kx8_gemv_vnni(P, arow[0], sums32[0], nb, out, n_rows);
#endif
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ4_Kx8& p = P[b];
    if constexpr (T == 1) prefetch_ahead(&p, sizeof(p));
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {  // sub-block j: nibble half j % 2 of chunk j / 2
      const int c = j / 2;
      __m256i s[T];
      for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
      for (int v = 0; v < 8; ++v) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.qs[c][v]));
        const __m256i q = (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4) : _mm256_and_si256(raw, m4);
        for (int t = 0; t < T; ++t) {
          const __m256i a = bcast4(arow[t][b].qs + 32 * j + 4 * v);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
          if constexpr (kVnni) {
            s[t] = _mm256_dpbusd_epi32(s[t], q, a);
            continue;
          }
#endif
          s[t] = _mm256_add_epi16(s[t], _mm256_maddubs_epi16(q, a));
        }
      }
      // Row r's scale in lane r.
      const __m256i sc32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p.scales[j])));
      if constexpr (kVnni) {
        for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(s[t], sc32));
      } else {
        // The scale in both int16 halves of its lane: madd scales each pair sum and widens.
        const __m256i sc = _mm256_or_si256(sc32, _mm256_slli_epi32(sc32, 16));
        for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s[t], sc));
      }
    }
    const __m256 dw = row_scales(p.d), mw = row_scales(p.dmin);
    for (int t = 0; t < T; ++t) {
      const int16_t* pairs = sums32[t] + 8 * b;
      __m256i msum = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.mins[c])));
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mn, bcast4(reinterpret_cast<const int8_t*>(pairs + 2 * c))));
      }
      const __m256 ad = _mm256_set1_ps(arow[t][b].d);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, ad), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(mw, ad), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) store_rows(out + t * out_stride, acc[t], n_rows);
}

// The eight 32-element sums of each Q8_K block of a row (bsums holds
// 16-element ones; each sum is at most 32 * 127, so int16 holds it).
inline void sums32_of(const quant::BlockQ8_K* a, int64_t nb, int16_t* dst) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[b].bsums));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[b].bsums + 8));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8 * b), _mm_hadd_epi16(lo, hi));
  }
}

// Q6_K: unsigned 6-bit quants (0..63), one byte each in the packed layout;
// maddubs pair sums reach 2 * 63 * 127 = 16002, so only two slices are
// summed in int16 before a madd applies the sub-block's int8 scale. The
// packed layout is only used for prefill (KernelTable::packed_min_tokens):
// a single token is bound by memory and reads the smaller canonical rows.
// The -32 offset is subtracted once per block as 32 * sum(scale_j * bsum_j).
template <int T>
inline void q6_kx8_tile(const PackQ6_Kx8* P, const quant::BlockQ8_K* const* arow, int64_t nb, float* out,
                        int64_t out_stride, int n_rows) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ6_Kx8& p = P[b];
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    auto quants = [&](int v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.q[v])); };
    for (int j = 0; j < 16; ++j) {
      const __m256i q0 = quants(4 * j), q1 = quants(4 * j + 1), q2 = quants(4 * j + 2), q3 = quants(4 * j + 3);
      const __m256i sc =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scales[j])));
      for (int t = 0; t < T; ++t) {
        const int8_t* aq = arow[t][b].qs + 16 * j;
        const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(q0, bcast4(aq)),
                                             _mm256_maddubs_epi16(q1, bcast4(aq + 4)));
        const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(q2, bcast4(aq + 8)),
                                             _mm256_maddubs_epi16(q3, bcast4(aq + 12)));
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(s01, sc), _mm256_madd_epi16(s23, sc)));
      }
    }
    const __m256 dw = row_scales(p.d);
    for (int t = 0; t < T; ++t) {
      __m256i off = _mm256_setzero_si256();
      const int16_t* bs = arow[t][b].bsums;
      for (int q = 0; q < 8; ++q) {
        const __m256i scp =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.scale_pairs[q])));
        // (bsum 2q, bsum 2q + 1) as one int16 pair: 4 bytes of bsums.
        off = _mm256_add_epi32(off, _mm256_madd_epi16(scp, bcast4(reinterpret_cast<const int8_t*>(bs + 2 * q))));
      }
      const __m256i tot = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(dw, _mm256_set1_ps(arow[t][b].d)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) store_rows(out + t * out_stride, acc[t], n_rows);
}

template <class Pack, bool kVnni, int T>
inline void k_packed_tile(const Pack* P, const quant::BlockQ8_K* const* arow, const int16_t* const* sums32,
                          int64_t nb, float* out, int64_t stride, int n_rows) {
  if constexpr (std::is_same_v<Pack, PackQ4_Kx8>)
    q4_kx8_tile<kVnni, T>(P, arow, sums32, nb, out, stride, n_rows);
  else
    q6_kx8_tile<T>(P, arow, nb, out, stride, n_rows);
}

// kT: tokens per register tile. Q4_K on 16 vector registers (AVX2) runs
// best with 3 (with 4 its int16 sums, int32 sums and fp32 accumulators no
// longer fit and the compiler spills in the inner loop); with 32 registers,
// and for Q6_K, 4 is faster. kVnni: dpbusd for Q4_K (the AVX-512 table).
template <class Pack, int kT, bool kVnni = false>
void gemm_packed_k(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
                   int64_t r1) {
  static_assert(kT >= 1 && kT <= 4);
  constexpr bool kSums32 = std::is_same_v<Pack, PackQ4_Kx8>;
  const int64_t nb = w.cols / 256;
  const auto* P = static_cast<const Pack*>(w.packed);
  const auto* A = static_cast<const quant::BlockQ8_K*>(act);
  // Per-thread buffer of every token's 32-element sums, made once per call
  // (not per panel); it grows the first time a larger call comes, never in
  // steady state.
  thread_local std::vector<int16_t> sums_buf;
  if constexpr (kSums32) {
    const size_t need = static_cast<size_t>(n_tokens * nb * 8);
    if (sums_buf.size() < need) sums_buf.resize(need);
    for (int64_t t = 0; t < n_tokens; ++t) sums32_of(A + t * nb, nb, sums_buf.data() + t * nb * 8);
  }
  const int64_t g_begin = r0 / kPackRows, g_end = (r1 + kPackRows - 1) / kPackRows;
  const int64_t panel = std::max<int64_t>(1, panel_rows(static_cast<size_t>(nb) * sizeof(Pack), 1));
  for (int64_t p0 = g_begin; p0 < g_end; p0 += panel) {
    const int64_t p1 = std::min(g_end, p0 + panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = static_cast<int>(std::min<int64_t>(kT, n_tokens - t0));
      const quant::BlockQ8_K* arow[kT];
      const int16_t* sums32[kT];
      for (int i = 0; i < kT; ++i) {
        arow[i] = A + (t0 + std::min(i, nt - 1)) * nb;
        sums32[i] = kSums32 ? sums_buf.data() + (t0 + std::min(i, nt - 1)) * nb * 8 : nullptr;
      }
      for (int64_t g = p0; g < p1; ++g) {
        const Pack* pg = P + g * nb;
        const int n_rows = static_cast<int>(std::min<int64_t>(kPackRows, r1 - g * kPackRows));
        float* o = out + t0 * w.rows + g * kPackRows;
        if (nt == kT) k_packed_tile<Pack, kVnni, kT>(pg, arow, sums32, nb, o, w.rows, n_rows);
        else if (nt == 3) k_packed_tile<Pack, kVnni, 3>(pg, arow, sums32, nb, o, w.rows, n_rows);
        else if (nt == 2) k_packed_tile<Pack, kVnni, 2>(pg, arow, sums32, nb, o, w.rows, n_rows);
        else k_packed_tile<Pack, kVnni, 1>(pg, arow, sums32, nb, o, w.rows, n_rows);
      }
    }
  }
}

}  // namespace
}  // namespace frugal::kernels
