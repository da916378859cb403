// Internal: 32-element-block GEMM kernels (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights
// against ActQ8 activations) for 256-bit vectors, shared by the AVX2 and the
// AVX-512 translation units (the latter instantiates the VNNI variant).
// Internal linkage on purpose, see simd_avx2.h.
#pragma once

#include <algorithm>
#include <cstring>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/simd_avx2.h"

namespace frugal::kernels {
namespace {

using namespace avx2;


// Decoders: signed quants (offset folded in) for the symmetric types,
// unsigned quants plus a min for the affine ones.
struct DecQ4_0 {
  using Block = quant::BlockQ4_0;
  static constexpr bool kAffine = false;
  static __m256i q(const Block& b) { return _mm256_sub_epi8(nibbles_32(b.qs), _mm256_set1_epi8(8)); }
  static float d(const Block& b) { return fp16(b.d); }
  static float m(const Block&) { return 0.0f; }
};
struct DecQ5_0 {
  using Block = quant::BlockQ5_0;
  static constexpr bool kAffine = false;
  static __m256i q(const Block& b) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i hb = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(nibbles_32(b.qs), hb), _mm256_set1_epi8(16));
  }
  static float d(const Block& b) { return fp16(b.d); }
  static float m(const Block&) { return 0.0f; }
};
struct DecQ8_0 {
  using Block = quant::BlockQ8_0;
  static constexpr bool kAffine = false;
  static __m256i q(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
  static float d(const Block& b) { return fp16(b.d); }
  static float m(const Block&) { return 0.0f; }
};
struct DecQ4_1 {
  using Block = quant::BlockQ4_1;
  static constexpr bool kAffine = true;
  static __m256i q(const Block& b) { return nibbles_32(b.qs); }
  static float d(const Block& b) { return fp16(b.d); }
  static float m(const Block& b) { return fp16(b.m); }
};
struct DecQ5_1 {
  using Block = quant::BlockQ5_1;
  static constexpr bool kAffine = true;
  static __m256i q(const Block& b) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i hb = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_32(b.qs), hb);
  }
  static float d(const Block& b) { return fp16(b.d); }
  static float m(const Block& b) { return fp16(b.m); }
};

// sum(w * a) over 32 int8 pairs as 8 int32 lanes. maddubs needs an unsigned
// first operand: for signed weights move the sign onto the activation (the
// activations never hold -128, so negating them is exact). Pair sums stay
// below 2 * 127 * 127 < 2^15, so maddubs never saturates.
// With VNNI (AVX512-VNNI on 256-bit vectors) one dpbusd replaces the
// maddubs + madd pair.
template <bool kAffine, bool kVnni>
inline __m256i dot32(__m256i wq_abs_or_u, __m256i wq, __m256i a) {
  const __m256i as = kAffine ? a : _mm256_sign_epi8(a, wq);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  if constexpr (kVnni) return _mm256_dpbusd_epi32(_mm256_setzero_si256(), wq_abs_or_u, as);
#endif
  return _mm256_madd_epi16(_mm256_maddubs_epi16(wq_abs_or_u, as), _mm256_set1_epi16(1));
}

template <class D, bool kVnni, int R, int T>
inline void q32_tile(const typename D::Block* const* wrow, const ActQ8* const* arow, int64_t nb,
                     float* out, int64_t out_stride) {
  __m256 acc[R][T];
  float macc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      acc[r][t] = _mm256_setzero_ps();
      macc[r][t] = 0.0f;
    }
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wq[R], wa[R];
    float dw[R], mw[R];
    for (int r = 0; r < R; ++r) {
      if constexpr (T == 1) prefetch_ahead(&wrow[r][b], sizeof(wrow[r][b]));
      wq[r] = D::q(wrow[r][b]);
      wa[r] = D::kAffine ? wq[r] : _mm256_sign_epi8(wq[r], wq[r]);
      dw[r] = D::d(wrow[r][b]);
      if constexpr (D::kAffine) mw[r] = D::m(wrow[r][b]);
    }
    for (int t = 0; t < T; ++t) {
      const ActQ8& a = arow[t][b];
      const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
      for (int r = 0; r < R; ++r) {
        const __m256 p = _mm256_cvtepi32_ps(dot32<D::kAffine, kVnni>(wa[r], wq[r], aq));
        acc[r][t] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw[r] * a.d), acc[r][t]);
        if constexpr (D::kAffine) macc[r][t] += mw[r] * a.d * static_cast<float>(a.sum);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = hsum(acc[r][t]) + macc[r][t];
}

template <class D, bool kVnni, int R>
inline void q32_tile_t(const typename D::Block* const* w, const ActQ8* const* a, int64_t nb, float* out,
                       int64_t stride, int nt) {
  switch (nt) {
    case 4: q32_tile<D, kVnni, R, 4>(w, a, nb, out, stride); break;
    case 3: q32_tile<D, kVnni, R, 3>(w, a, nb, out, stride); break;
    case 2: q32_tile<D, kVnni, R, 2>(w, a, nb, out, stride); break;
    default: q32_tile<D, kVnni, R, 1>(w, a, nb, out, stride); break;
  }
}

template <class D, bool kVnni>
void gemm_q32(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
              int64_t r1) {
  using Block = typename D::Block;
  const int64_t nb = w.cols / 32;
  const auto* W = static_cast<const Block*>(w.data);
  const auto* A = static_cast<const ActQ8*>(act);
  // GEMV: 4 rows per tile for independent accumulation chains; GEMM: 2 rows
  // x 4 tokens keeps 8 accumulators plus decoded weights in 16 registers.
  const int kR = n_tokens == 1 ? 4 : 2;
  constexpr int kT = 4;
  const int64_t panel = panel_rows(static_cast<size_t>(nb) * sizeof(Block), 4);
  for (int64_t p0 = r0; p0 < r1; p0 += panel) {
    const int64_t p1 = std::min(r1, p0 + panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = static_cast<int>(std::min<int64_t>(kT, n_tokens - t0));
      const ActQ8* arow[kT];
      for (int i = 0; i < kT; ++i) arow[i] = A + (t0 + std::min(i, nt - 1)) * nb;
      for (int64_t r = p0; r < p1; r += kR) {
        const int nr = static_cast<int>(std::min<int64_t>(kR, p1 - r));
        const Block* rows[4];
        for (int i = 0; i < 4; ++i) rows[i] = W + (r + std::min(i, nr - 1)) * nb;
        float* o = out + t0 * w.rows + r;
        if (nr == 4) q32_tile<D, kVnni, 4, 1>(rows, arow, nb, o, w.rows);
        else if (nr == 3) q32_tile<D, kVnni, 3, 1>(rows, arow, nb, o, w.rows);
        else if (nr == 2) q32_tile_t<D, kVnni, 2>(rows, arow, nb, o, w.rows, nt);
        else q32_tile_t<D, kVnni, 1>(rows, arow, nb, o, w.rows, nt);
      }
    }
  }
}

}  // namespace
}  // namespace frugal::kernels
