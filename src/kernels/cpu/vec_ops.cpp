#include "kernels/cpu/vec_ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/kernel_table.h"

namespace frugal::kernels {

float dot(const float* a, const float* b, int64_t n) { return kernel_table().dot(a, b, n); }
void axpy(float a, const float* x, float* y, int64_t n) { kernel_table().axpy(a, x, y, n); }
void dot_rows(const float* q, const float* rows, int64_t n_rows, int64_t n, float scale, float* out) {
  kernel_table().dot_rows(q, rows, n_rows, n, scale, out);
}
void axpy_rows(const float* w, const float* rows, int64_t n_rows, int64_t n, float* y) {
  kernel_table().axpy_rows(w, rows, n_rows, n, y);
}
void scale(float* x, float a, int64_t n) { kernel_table().scale(x, a, n); }
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  kernel_table().rmsnorm(out, x, weight, n, eps);
}
void softmax(float* x, int64_t n) { kernel_table().softmax(x, n); }
void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  kernel_table().silu_mul(out, gate, up, n);
}
void add(float* out, const float* a, const float* b, int64_t n) { kernel_table().add(out, a, b, n); }

}  // namespace frugal::kernels
