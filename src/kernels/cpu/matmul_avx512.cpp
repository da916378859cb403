// AVX-512 kernels (F + BW + VL + DQ + VNNI). fp32/fp16/bf16 weights use
// 512-bit register tiles of 4 rows x 4 tokens with masked loads for row
// tails; the 32-element quants reuse the 256-bit tiles with VNNI dpbusd.
// The K quants and the vec ops keep their AVX2 versions (they are bound by
// decode work and memory, not by vector width).
#include <algorithm>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/matmul_packed_impl.h"
#include "kernels/cpu/matmul_q32_impl.h"
#include "kernels/cpu/simd_avx2.h"

namespace frugal::kernels {
namespace {

struct Load512F32 {
  static constexpr int kBytes = 4;
  static __m512 load(const uint8_t* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static __m512 load(const uint8_t* p) { return _mm512_loadu_ps(p); }
};
struct Load512F16 {
  static constexpr int kBytes = 2;
  static __m512 load(const uint8_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static __m512 load(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};
struct Load512BF16 {
  static constexpr int kBytes = 2;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint8_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
  static __m512 load(const uint8_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
};

template <class L, int R, int T>
inline void float_tile512(const uint8_t* const* wrow, const float* x, int64_t K, float* out, int64_t out_stride) {
  // A single token (the last tile of an odd batch; one-token calls go to
  // gemv_float512) gets two accumulator sets to keep enough FMAs in flight.
  constexpr int U = T == 1 ? 2 : 1;
  __m512 acc[U][R][T];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[u][r][t] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 * U <= K; k += 16 * U) {
    for (int u = 0; u < U; ++u) {
      __m512 xv[T];
      for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x + t * K + k + 16 * u);
      for (int r = 0; r < R; ++r) {
        const __m512 wv = L::load(wrow[r] + (k + 16 * u) * L::kBytes);
        for (int t = 0; t < T; ++t) acc[u][r][t] = _mm512_fmadd_ps(wv, xv[t], acc[u][r][t]);
      }
    }
  }
  for (; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    __m512 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = L::load(wrow[r] + k * L::kBytes, m);
      for (int t = 0; t < T; ++t) acc[0][r][t] = _mm512_fmadd_ps(wv, xv[t], acc[0][r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      __m512 a = acc[0][r][t];
      if constexpr (U == 2) a = _mm512_add_ps(a, acc[1][r][t]);
      out[t * out_stride + r] = _mm512_reduce_add_ps(a);
    }
}

template <class L, int R>
inline void float_tile512_t(const uint8_t* const* w, const float* x, int64_t K, float* out, int64_t stride, int nt) {
  switch (nt) {
    case 4: float_tile512<L, R, 4>(w, x, K, out, stride); break;
    case 3: float_tile512<L, R, 3>(w, x, K, out, stride); break;
    case 2: float_tile512<L, R, 2>(w, x, K, out, stride); break;
    default: float_tile512<L, R, 1>(w, x, K, out, stride); break;
  }
}

// One token: a row at a time, so each thread reads its rows as one
// sequential stream, with no software prefetch. For weights mapped from the
// model file this streamed 5% (scarce bandwidth) to 9% (plentiful) more fp16
// bytes per second than 4-row tiles prefetching the next tile into L2, and
// 11-16% more for bf16, on a Zen 4 EPYC with 2 threads (tiles were ahead
// only for weights in anonymous memory, by 4%). The model's fp16/bf16
// weights are file mappings.
template <class L>
void gemv_float512(const uint8_t* base, size_t row_bytes, const float* x, int64_t K, float* out, int64_t r0,
                   int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* w = base + r * row_bytes;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t k = 0;
    for (; k + 64 <= K; k += 64)
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_fmadd_ps(L::load(w + (k + 16 * u) * L::kBytes), _mm512_loadu_ps(x + k + 16 * u), acc[u]);
    for (; k < K; k += 16) {
      const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
      acc[0] = _mm512_fmadd_ps(L::load(w + k * L::kBytes, m), _mm512_maskz_loadu_ps(m, x + k), acc[0]);
    }
    out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}

template <class L>
void gemm_float512(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0, int64_t r1) {
  constexpr int kR = 4, kT = 4;
  const auto* x = static_cast<const float*>(act);
  const int64_t K = w.cols;
  const size_t row_bytes = static_cast<size_t>(K) * L::kBytes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (n_tokens == 1) return gemv_float512<L>(base, row_bytes, x, K, out, r0, r1);
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
          case 4: float_tile512_t<L, 4>(rows, xt, K, o, w.rows, nt); break;
          case 3: float_tile512_t<L, 3>(rows, xt, K, o, w.rows, nt); break;
          case 2: float_tile512_t<L, 2>(rows, xt, K, o, w.rows, nt); break;
          default: float_tile512_t<L, 1>(rows, xt, K, o, w.rows, nt); break;
        }
      }
    }
  }
}

}  // namespace

void fill_avx512(KernelTable& t) {
  t.gemm[static_cast<int>(TensorType::kF32)] = gemm_float512<Load512F32>;
  t.gemm[static_cast<int>(TensorType::kF16)] = gemm_float512<Load512F16>;
  t.gemm[static_cast<int>(TensorType::kBF16)] = gemm_float512<Load512BF16>;
  t.gemm[static_cast<int>(TensorType::kQ4_0)] = gemm_q32<DecQ4_0, true>;
  t.gemm[static_cast<int>(TensorType::kQ4_1)] = gemm_q32<DecQ4_1, true>;
  t.gemm[static_cast<int>(TensorType::kQ5_0)] = gemm_q32<DecQ5_0, true>;
  t.gemm[static_cast<int>(TensorType::kQ5_1)] = gemm_q32<DecQ5_1, true>;
  t.gemm[static_cast<int>(TensorType::kQ8_0)] = gemm_q32<DecQ8_0, true>;
  t.gemm_packed[static_cast<int>(TensorType::kQ4_0)] = gemm_packed<PackQ4_0x8, true>;
  t.gemm_packed[static_cast<int>(TensorType::kQ8_0)] = gemm_packed<PackQ8_0x8, true>;
  // Same 256-bit code as the AVX2 table, but compiled with 32 vector
  // registers, so the 4-token tiles keep every accumulator in a register.
  t.gemm_packed[static_cast<int>(TensorType::kQ4_K)] = gemm_packed_k<PackQ4_Kx8, 4, true>;
  t.gemm_packed[static_cast<int>(TensorType::kQ6_K)] = gemm_packed_k<PackQ6_Kx8, 4>;
}

void fill_avx512_vec(KernelTable&) {}

}  // namespace frugal::kernels
