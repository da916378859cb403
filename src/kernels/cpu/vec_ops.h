// Small fp32 vector helpers used by attention and normalization, dispatched
// to the same ISA as matmul (see cpu_isa.h). All accumulate in fp32.
#pragma once

#include <cstdint>

namespace frugal::kernels {

// sum_i a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);
// Attention over a block of cached rows (row j at rows + j * n):
// out[j] = dot(q, row j, n) * scale for j < n_rows, each bit-equal to that
// dot() call; one call instead of n_rows keeps q in registers and overlaps
// the rows' reductions.
void dot_rows(const float* q, const float* rows, int64_t n_rows, int64_t n, float scale, float* out);
// y[i] += sum_j w[j] * row j[i] with j in order: bit-equal to n_rows axpy()
// calls, but y is loaded and stored once per block instead of once per row.
void axpy_rows(const float* w, const float* rows, int64_t n_rows, int64_t n, float* y);
// x[i] *= a
void scale(float* x, float a, int64_t n);
// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]; out may alias x.
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps);
// x = exp(x - max) / sum, in place; n >= 1. -inf entries become 0.
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i] with silu(g) = g / (1 + exp(-g)); out may
// alias gate or up.
void silu_mul(float* out, const float* gate, const float* up, int64_t n);
// out[i] = a[i] + b[i]; out may alias a or b.
void add(float* out, const float* a, const float* b, int64_t n);

}  // namespace frugal::kernels
