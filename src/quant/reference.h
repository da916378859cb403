// Scalar reference implementations of the GGUF block formats: row sizes,
// dequantization and round-to-nearest quantizers. They are deliberately plain
// C++ (no SIMD) because they are the oracle the optimized kernels are tested
// against, and the quantizers back `frugal quantize`.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal::quant {

// Bytes taken by a row of n elements of `type`, or 0 when the type is unknown
// or n is not a multiple of its block size.
size_t row_size(TensorType type, int64_t n);

// Elements per block of `type` (1 for plain types, 0 when unknown).
int64_t block_size(TensorType type);

// True when dequantize_row / quantize_row handle `type`.
bool can_dequantize(TensorType type);
bool can_quantize(TensorType type);

// Converts n elements starting at `src` (a row or a whole tensor: blocks are
// consecutive) to fp32. Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q8_1, Q4_K, Q5_K, Q6_K, Q8_K. n must be a multiple of the block size.
Status dequantize_row(TensorType type, const void* src, float* dst, int64_t n);

// Quantizes n floats into `dst`, which must hold row_size(type, n) bytes.
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q4_K, Q5_K,
// Q6_K, Q8_K. Scales are chosen from the block's extremes and every value is
// rounded to the nearest representable quant.
Status quantize_row(TensorType type, const float* src, void* dst, int64_t n);

// Per-type entry points (n a multiple of the block size; no checks).
void quantize_row_q4_0(const float* x, void* dst, int64_t n);
void quantize_row_q4_1(const float* x, void* dst, int64_t n);
void quantize_row_q5_0(const float* x, void* dst, int64_t n);
void quantize_row_q5_1(const float* x, void* dst, int64_t n);
void quantize_row_q8_0(const float* x, void* dst, int64_t n);
void quantize_row_q8_1(const float* x, void* dst, int64_t n);
void quantize_row_q4_k(const float* x, void* dst, int64_t n);
void quantize_row_q5_k(const float* x, void* dst, int64_t n);
void quantize_row_q6_k(const float* x, void* dst, int64_t n);
void quantize_row_q8_k(const float* x, void* dst, int64_t n);

// Round half to even on float -> int, identical on every build (does not
// depend on the current rounding mode or on -ffast-math).
inline int nearest_int(float f) {
  // Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits;
  // valid for |f| < 2^22, which every caller guarantees.
  float v = f + 12582912.0f;
  int32_t i;
  __builtin_memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace frugal::quant
