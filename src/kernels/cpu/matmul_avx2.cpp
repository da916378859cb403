// AVX2 + FMA + F16C kernels (the baseline target: AVX2-only x86-64).
//
// Structure shared by every type: the thread's row range is cut into panels
// small enough to stay in L2 (panel_rows); for each panel all token tiles are
// processed, so a weight panel comes from memory once per call and from L2
// once per token tile, and every weight load/decode feeds several tokens.
//   fp32/fp16/bf16: register tiles of 4 rows x 3 tokens (12 accumulators);
//   32-element quants: 2 rows x 4 tokens, integer dots via maddubs;
//   K quants: 1 row x 4 tokens, integer sums per super-block.
#include <algorithm>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/matmul_q32_impl.h"

namespace frugal::kernels {
namespace {

using namespace avx2;
using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ4_K;
using quant::BlockQ5_0;
using quant::BlockQ5_1;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

// ---------------------------------------------------------------- float --

// R rows x T tokens over the full row length K. For a single token there is
// too little independent work per k step to hide FMA latency, so U = 2
// accumulator sets alternate over k.
template <class L, int R, int T>
inline void float_tile(const uint8_t* const* wrow, const float* x, int64_t K, float* out,
                       int64_t out_stride) {
  constexpr int U = T == 1 ? 2 : 1;
  __m256 acc[U][R][T];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[u][r][t] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * U <= K; k += 8 * U) {
    if constexpr (T == 1)
      if ((k * L::kBytes) % 64 == 0)
        for (int r = 0; r < R; ++r) prefetch_next_tile(wrow[r], R * K * L::kBytes, k * L::kBytes);
    for (int u = 0; u < U; ++u) {
      __m256 xv[T];
      for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * K + k + 8 * u);
      for (int r = 0; r < R; ++r) {
        const __m256 wv = L::load8(wrow[r] + (k + 8 * u) * L::kBytes);
        for (int t = 0; t < T; ++t) acc[u][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[u][r][t]);
      }
    }
  }
  for (; k + 8 <= K; k += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * K + k);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = L::load8(wrow[r] + k * L::kBytes);
      for (int t = 0; t < T; ++t) acc[0][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[0][r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      __m256 a = acc[0][r][t];
      if constexpr (U == 2) a = _mm256_add_ps(a, acc[1][r][t]);
      float s = hsum(a);
      for (int64_t kk = k; kk < K; ++kk) s += L::load1(wrow[r] + kk * L::kBytes) * x[t * K + kk];
      out[t * out_stride + r] = s;
    }
}

template <class L, int R>
inline void float_tile_t(const uint8_t* const* wrow, const float* x, int64_t K, float* out,
                         int64_t stride, int nt) {
  switch (nt) {
    case 3: float_tile<L, R, 3>(wrow, x, K, out, stride); break;
    case 2: float_tile<L, R, 2>(wrow, x, K, out, stride); break;
    default: float_tile<L, R, 1>(wrow, x, K, out, stride); break;
  }
}

template <class L>
void gemm_float(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
                int64_t r1) {
  constexpr int kR = 4, kT = 3;
  const auto* x = static_cast<const float*>(act);
  const int64_t K = w.cols;
  const size_t row_bytes = static_cast<size_t>(K) * L::kBytes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t panel = panel_rows(row_bytes, kR);
  for (int64_t p0 = r0; p0 < r1; p0 += panel) {
    const int64_t p1 = std::min(r1, p0 + panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = static_cast<int>(std::min<int64_t>(kT, n_tokens - t0));
      const float* xt = x + t0 * K;
      for (int64_t r = p0; r < p1; r += kR) {
        const int nr = static_cast<int>(std::min<int64_t>(kR, p1 - r));
        const uint8_t* rows[kR];
        for (int i = 0; i < kR; ++i) rows[i] = base + (r + std::min(i, nr - 1)) * row_bytes;
        float* o = out + t0 * w.rows + r;
        switch (nr) {
          case 4: float_tile_t<L, 4>(rows, xt, K, o, w.rows, nt); break;
          case 3: float_tile_t<L, 3>(rows, xt, K, o, w.rows, nt); break;
          case 2: float_tile_t<L, 2>(rows, xt, K, o, w.rows, nt); break;
          default: float_tile_t<L, 1>(rows, xt, K, o, w.rows, nt); break;
        }
      }
    }
  }
}

// -------------------------------------------------------------- K quants --

template <int T>
inline void q4k_tile(const BlockQ4_K* wr, const BlockQ8_K* const* arow, int64_t nb, float* out,
                     int64_t out_stride, bool five_bit, const BlockQ5_K* wr5) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (T == 1) {
      if (five_bit) prefetch_ahead(wr5 + b, sizeof(BlockQ5_K));
      else prefetch_ahead(wr + b, sizeof(BlockQ4_K));
    }
    const uint8_t* scales = five_bit ? wr5[b].scales : wr[b].scales;
    const uint8_t* qs = five_bit ? wr5[b].qs : wr[b].qs;
    const float d = fp16(five_bit ? wr5[b].d : wr[b].d);
    const float dmin = fp16(five_bit ? wr5[b].dmin : wr[b].dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) quant::unpack_k_scale_min(j, scales, &sc[j], &mn[j]);
    // Mins repeated per group of 16 to pair with the activation bsums.
    const __m256i mins16 = _mm256_setr_epi16(mn[0], mn[0], mn[1], mn[1], mn[2], mn[2], mn[3], mn[3],
                                             mn[4], mn[4], mn[5], mn[5], mn[6], mn[6], mn[7], mn[7]);
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    const __m256i hbits = five_bit ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr5[b].qh))
                                   : _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if (five_bit) {
        const __m256i b0 = _mm256_set1_epi8(static_cast<char>(1 << (2 * c)));
        const __m256i b1 = _mm256_set1_epi8(static_cast<char>(2 << (2 * c)));
        const __m256i s16 = _mm256_set1_epi8(16);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, b0), b0), s16));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, b1), b1), s16));
      }
      const __m256i s_lo = _mm256_set1_epi16(sc[2 * c]);
      const __m256i s_hi = _mm256_set1_epi16(sc[2 * c + 1]);
      for (int t = 0; t < T; ++t) {
        const int8_t* aq = arow[t][b].qs + 64 * c;
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), s_lo);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), s_hi);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
      }
    }
    for (int t = 0; t < T; ++t) {
      const BlockQ8_K& a = arow[t][b];
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
      const __m256 msum = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
      acc[t] = _mm256_fnmadd_ps(msum, _mm256_set1_ps(dmin * a.d), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t * out_stride] = hsum(acc[t]);
}

template <int T>
inline void q6k_tile(const BlockQ6_K* wr, const BlockQ8_K* const* arow, int64_t nb, float* out,
                     int64_t out_stride) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K& x = wr[b];
    if constexpr (T == 1) prefetch_ahead(&x, sizeof(x));
    const float d = fp16(x.d);
    // The 16 sub-block scales as int16 (also the offset term's operand).
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      // Scales 8h..8h+7 in both 128-bit lanes: one byte shuffle per group
      // then puts scale 8h+2g in the low lane and 8h+2g+1 in the high one.
      const __m256i sc_half = h == 0 ? _mm256_permute2x128_si256(sc16, sc16, 0x00)
                                     : _mm256_permute2x128_si256(sc16, sc16, 0x11);
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
      // Unsigned 6-bit quants 0..63 of the four 32-element groups.
      __m256i u[4];
      u[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
      u[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
      u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
      u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
      for (int g = 0; g < 4; ++g) {
        // maddubs pairs of the low 128 bits belong to sub-block 2g, the high
        // 128 bits to sub-block 2g + 1.
        const char lo0 = static_cast<char>(4 * g), lo1 = static_cast<char>(4 * g + 1);
        const char hi0 = static_cast<char>(4 * g + 2), hi1 = static_cast<char>(4 * g + 3);
        const __m256i pick = _mm256_setr_epi8(lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1,
                                              lo0, lo1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1,
                                              hi0, hi1, hi0, hi1);
        const __m256i s = _mm256_shuffle_epi8(sc_half, pick);
        for (int t = 0; t < T; ++t) {
          const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(arow[t][b].qs + 128 * h + 32 * g));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(u[g], a), s));
        }
      }
    }
    // The -32 offset: subtract 32 * sum_g scale_g * bsum_g.
    for (int t = 0; t < T; ++t) {
      const BlockQ8_K& a = arow[t][b];
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
      const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[t], off)), _mm256_set1_ps(d * a.d),
                               acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t * out_stride] = hsum(acc[t]);
}

enum class KType { kQ4, kQ5, kQ6 };

template <KType kType, int T>
inline void k_tile(const void* row, const BlockQ8_K* const* arow, int64_t nb, float* out, int64_t stride) {
  if constexpr (kType == KType::kQ6)
    q6k_tile<T>(static_cast<const BlockQ6_K*>(row), arow, nb, out, stride);
  else if constexpr (kType == KType::kQ5)
    q4k_tile<T>(nullptr, arow, nb, out, stride, true, static_cast<const BlockQ5_K*>(row));
  else
    q4k_tile<T>(static_cast<const BlockQ4_K*>(row), arow, nb, out, stride, false, nullptr);
}

template <KType kType>
void gemm_k(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0, int64_t r1) {
  constexpr size_t kBlock = kType == KType::kQ6 ? sizeof(BlockQ6_K)
                            : kType == KType::kQ5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  const int64_t nb = w.cols / 256;
  const size_t row_bytes = static_cast<size_t>(nb) * kBlock;
  const auto* base = static_cast<const uint8_t*>(w.data);
  const auto* A = static_cast<const BlockQ8_K*>(act);
  constexpr int kT = 4;
  const int64_t panel = panel_rows(row_bytes, 1);
  for (int64_t p0 = r0; p0 < r1; p0 += panel) {
    const int64_t p1 = std::min(r1, p0 + panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = static_cast<int>(std::min<int64_t>(kT, n_tokens - t0));
      const BlockQ8_K* arow[kT];
      for (int i = 0; i < kT; ++i) arow[i] = A + (t0 + std::min(i, nt - 1)) * nb;
      for (int64_t r = p0; r < p1; ++r) {
        const void* row = base + r * row_bytes;
        float* o = out + t0 * w.rows + r;
        switch (nt) {
          case 4: k_tile<kType, 4>(row, arow, nb, o, w.rows); break;
          case 3: k_tile<kType, 3>(row, arow, nb, o, w.rows); break;
          case 2: k_tile<kType, 2>(row, arow, nb, o, w.rows); break;
          default: k_tile<kType, 1>(row, arow, nb, o, w.rows); break;
        }
      }
    }
  }
}

// ------------------------------------------------- activation quantizers --

// Same arithmetic as quant_q8x32_generic: amax, d = amax / 127, q =
// round-half-even(x * (1 / d)); cvtps_epi32 rounds half to even under the
// default MXCSR, matching nearest_int.
inline __m256i quantize32(const float* x, float id) {
  const __m256 s = _mm256_set1_ps(id);
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), s));
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), s));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), s));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), s));
  // packs works per 128-bit lane; the final permute restores element order.
  const __m256i p01 = _mm256_packs_epi32(i0, i1);
  const __m256i p23 = _mm256_packs_epi32(i2, i3);
  const __m256i p = _mm256_packs_epi16(p01, p23);
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float absmax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void quant_q8x32_avx2(const float* x, ActQ8* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    const float amax = absmax(x, 32);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256i q = quantize32(x, id);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), q);
    // Sum of the 32 int8: widen pairs with maddubs against ones (signed
    // second operand), then to int32.
    const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    y[b].sum = hsum_i32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
    y[b].d = d;
  }
}

void quant_q8k_avx2(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b, x += 256) {
    const float amax = absmax(x, 256);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int c = 0; c < 8; ++c) {
      const __m256i q = quantize32(x + 32 * c, id);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + 32 * c), q);
      // Per-16 sums: maddubs gives 16 pair sums; madd with ones gives 8
      // quad sums, lanes 0-3 = first 16 values, lanes 4-7 = second 16.
      const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
      const __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
      __m128i h = _mm_hadd_epi32(lo, hi);  // [l01, l23, h01, h23]
      h = _mm_hadd_epi32(h, h);            // [l, h, l, h]
      y[b].bsums[2 * c] = static_cast<int16_t>(_mm_cvtsi128_si32(h));
      y[b].bsums[2 * c + 1] = static_cast<int16_t>(_mm_extract_epi32(h, 1));
    }
  }
}

}  // namespace

void fill_avx2(KernelTable& t) {
  t.gemm[static_cast<int>(TensorType::kF32)] = gemm_float<LoadF32>;
  t.gemm[static_cast<int>(TensorType::kF16)] = gemm_float<LoadF16>;
  t.gemm[static_cast<int>(TensorType::kBF16)] = gemm_float<LoadBF16>;
  t.gemm[static_cast<int>(TensorType::kQ4_0)] = gemm_q32<DecQ4_0, false>;
  t.gemm[static_cast<int>(TensorType::kQ4_1)] = gemm_q32<DecQ4_1, false>;
  t.gemm[static_cast<int>(TensorType::kQ5_0)] = gemm_q32<DecQ5_0, false>;
  t.gemm[static_cast<int>(TensorType::kQ5_1)] = gemm_q32<DecQ5_1, false>;
  t.gemm[static_cast<int>(TensorType::kQ8_0)] = gemm_q32<DecQ8_0, false>;
  t.gemm[static_cast<int>(TensorType::kQ4_K)] = gemm_k<KType::kQ4>;
  t.gemm[static_cast<int>(TensorType::kQ5_K)] = gemm_k<KType::kQ5>;
  t.gemm[static_cast<int>(TensorType::kQ6_K)] = gemm_k<KType::kQ6>;
  t.quant_q8x32 = quant_q8x32_avx2;
  t.quant_q8k = quant_q8k_avx2;
}

}  // namespace frugal::kernels
