// AVX2 + FMA vec ops. Reductions use two accumulators to cover FMA latency.
#include <cmath>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/simd_avx2.h"

namespace frugal::kernels {
namespace {

using namespace avx2;

float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  if (i + 8 <= n) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    i += 8;
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_avx2(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// R rows at once, each with dot_avx2's two accumulators and reduction
// order, so every result equals dot_avx2(q, row, n).
template <int R>
inline void dot_rows_r(const float* q, const float* rows, int64_t n, float scale, float* out) {
  __m256 s0[R], s1[R];
  for (int r = 0; r < R; ++r) s0[r] = s1[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 qa = _mm256_loadu_ps(q + i), qb = _mm256_loadu_ps(q + i + 8);
    for (int r = 0; r < R; ++r) {
      s0[r] = _mm256_fmadd_ps(qa, _mm256_loadu_ps(rows + r * n + i), s0[r]);
      s1[r] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(rows + r * n + i + 8), s1[r]);
    }
  }
  if (i + 8 <= n) {
    const __m256 qa = _mm256_loadu_ps(q + i);
    for (int r = 0; r < R; ++r) s0[r] = _mm256_fmadd_ps(qa, _mm256_loadu_ps(rows + r * n + i), s0[r]);
    i += 8;
  }
  for (int r = 0; r < R; ++r) {
    float s = hsum(_mm256_add_ps(s0[r], s1[r]));
    for (int64_t k = i; k < n; ++k) s += q[k] * rows[r * n + k];
    out[r] = s * scale;
  }
}

void dot_rows_avx2(const float* q, const float* rows, int64_t n_rows, int64_t n, float scale, float* out) {
  int64_t j = 0;
  for (; j + 4 <= n_rows; j += 4) dot_rows_r<4>(q, rows + j * n, n, scale, out + j);
  switch (n_rows - j) {
    case 3: dot_rows_r<3>(q, rows + j * n, n, scale, out + j); break;
    case 2: dot_rows_r<2>(q, rows + j * n, n, scale, out + j); break;
    case 1: dot_rows_r<1>(q, rows + j * n, n, scale, out + j); break;
    default: break;
  }
}

// Per element the same fmadd sequence as n_rows axpy_avx2 calls; 64
// elements of y stay in registers while every row passes.
void axpy_rows_avx2(const float* w, const float* rows, int64_t n_rows, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256 acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = _mm256_loadu_ps(y + i + 8 * k);
    for (int64_t j = 0; j < n_rows; ++j) {
      const __m256 a = _mm256_set1_ps(w[j]);
      const float* x = rows + j * n + i;
      for (int k = 0; k < 8; ++k) acc[k] = _mm256_fmadd_ps(a, _mm256_loadu_ps(x + 8 * k), acc[k]);
    }
    for (int k = 0; k < 8; ++k) _mm256_storeu_ps(y + i + 8 * k, acc[k]);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 acc = _mm256_loadu_ps(y + i);
    for (int64_t j = 0; j < n_rows; ++j)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(rows + j * n + i), acc);
    _mm256_storeu_ps(y + i, acc);
  }
  for (int64_t j = 0; j < n_rows; ++j)
    for (int64_t k = i; k < n; ++k) y[k] += w[j] * rows[j * n + k];
}

void scale_avx2(float* x, float a, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), av));
  for (; i < n; ++i) x[i] *= a;
}

void add_avx2(float* out, const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

void rmsnorm_avx2(float* out, const float* x, const float* weight, int64_t n, float eps) {
  const float ss = dot_avx2(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const __m256 iv = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv), _mm256_loadu_ps(weight + i)));
  for (; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

// Scalar tails go through the same vector exp (one padded lane group) so
// every element gets identical rounding whatever its position.
inline __m256 load_tail(const float* x, int64_t n, float fill) {
  alignas(32) float buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = i < n ? x[i] : fill;
  return _mm256_load_ps(buf);
}
inline void store_tail(float* y, __m256 v, int64_t n) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  for (int i = 0; i < n; ++i) y[i] = buf[i];
}

void softmax_avx2(float* x, int64_t n) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float mx = _mm_cvtss_f32(m4);
  for (; i < n; ++i) mx = mx > x[i] ? mx : x[i];
  const __m256 mxv = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mxv));
    _mm256_storeu_ps(x + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  if (i < n) {
    const __m256 e = exp_ps(_mm256_sub_ps(load_tail(x + i, n - i, -INFINITY), mxv));
    store_tail(x + i, e, n - i);
    sv = _mm256_add_ps(sv, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(sv));
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= _mm256_cvtss_f32(inv);
}

inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul_avx2(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) store_tail(out + i, silu_mul8(load_tail(gate + i, n - i, 0.0f), load_tail(up + i, n - i, 0.0f)), n - i);
}

}  // namespace

void fill_avx2_vec(KernelTable& t) {
  t.dot = dot_avx2;
  t.axpy = axpy_avx2;
  t.dot_rows = dot_rows_avx2;
  t.axpy_rows = axpy_rows_avx2;
  t.scale = scale_avx2;
  t.rmsnorm = rmsnorm_avx2;
  t.softmax = softmax_avx2;
  t.silu_mul = silu_mul_avx2;
  t.add = add_avx2;
}

}  // namespace frugal::kernels
