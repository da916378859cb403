// Searched, importance-weighted quantizers for the GGUF block formats.
//
// The reference quantizers (reference.h) take each block's scale from its
// extremes and round to nearest. These search instead: for every block (and
// for the K formats every sub-block) several candidate scales are tried,
// each with the weighted least-squares optimal scale (and offset) for the
// rounding it produces, and the one with the smallest weighted squared error
//   sum_i w_i (x_i - dequant(q)_i)^2
// is kept; quants are rounded again against the final fp16/6-bit/8-bit
// stored scales. The weight of element i is importance_i * sqrt(sigma2 +
// x_i^2), where importance is the mean squared activation that multiplies
// column i (from calibration; 1 when absent) and sigma2 the row's mean
// square: large weights and weights fed by large activations matter most.
#pragma once

#include <cstdint>

#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal::quant {

// Types quantize_row_searched handles: Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K
// (and F32/F16/BF16, converted directly).
bool can_search_quantize(TensorType type);

// Quantizes one row of n elements (a multiple of the block size) into dst
// (row_size(type, n) bytes). `importance` has n entries or is null.
// `sigma2` is the row's weighting term (row_sigma2); negative computes it
// from x, which callers quantizing a row piece by piece must not rely on.
Status quantize_row_searched(TensorType type, const float* x, void* dst, int64_t n, const float* importance,
                             float sigma2 = -1.0f);

// 2 * mean square of the row: the element weights' floor (see above).
float row_sigma2(const float* x, int64_t n);

// Weighted squared error of a quantized row against x (for tests and reports).
Expected<double> weighted_row_error(TensorType type, const float* x, const void* q, int64_t n,
                                    const float* importance);

}  // namespace frugal::quant
