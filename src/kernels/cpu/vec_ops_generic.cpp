// Scalar vec ops (any CPU). Reductions use 8 partial sums, which both lets
// the compiler vectorize with SSE2 and keeps rounding error low.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/kernel_table.h"

namespace frugal::kernels {
namespace {

float dot_generic(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[i + u] * b[i + u];
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void axpy_generic(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void dot_rows_generic(const float* q, const float* rows, int64_t n_rows, int64_t n, float scale, float* out) {
  for (int64_t j = 0; j < n_rows; ++j) out[j] = dot_generic(q, rows + j * n, n) * scale;
}

void axpy_rows_generic(const float* w, const float* rows, int64_t n_rows, int64_t n, float* y) {
  for (int64_t j = 0; j < n_rows; ++j) axpy_generic(w[j], rows + j * n, y, n);
}

void scale_generic(float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

void rmsnorm_generic(float* out, const float* x, const float* weight, int64_t n, float eps) {
  const float ss = dot_generic(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

void softmax_generic(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul_generic(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_generic(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace

void fill_generic_vec(KernelTable& t) {
  t.dot = dot_generic;
  t.axpy = axpy_generic;
  t.dot_rows = dot_rows_generic;
  t.axpy_rows = axpy_rows_generic;
  t.scale = scale_generic;
  t.rmsnorm = rmsnorm_generic;
  t.softmax = softmax_generic;
  t.silu_mul = silu_mul_generic;
  t.add = add_generic;
}

}  // namespace frugal::kernels
