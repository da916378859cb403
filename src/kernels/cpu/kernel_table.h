// Internal: the per-ISA kernel table behind matmul() and the vec ops, and the
// activation block formats the quantized kernels consume.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/matmul.h"
#include "quant/blocks.h"

namespace frugal::kernels {

// One 32-element activation block: fp32 scale (no fp16 rounding of the
// activation side), the integer sum of the quants (for the offset terms of
// Q4_0/Q5_0 and the mins of Q4_1/Q5_1) and the quants, limited to +-127 so
// SIMD code may negate them.
struct alignas(8) ActQ8 {
  float d;
  int32_t sum;
  int8_t qs[32];
};
static_assert(sizeof(ActQ8) == 40);

// Which activation format a weight type consumes.
enum class ActKind { kF32, kQ8x32, kQ8K };
ActKind act_kind(TensorType type);

// Computes out[t * w.rows + r] for r in [r0, r1), every t < n_tokens.
// `act` is the fp32 x (kF32) or n_tokens rows of cols/32 ActQ8 or cols/256
// BlockQ8_K blocks.
using GemmFn = void (*)(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out,
                        int64_t r0, int64_t r1);

struct KernelTable {
  // Indexed by the raw TensorType id (< 32); null when unsupported.
  GemmFn gemm[32] = {};
  // Kernels over the interleaved layouts of packed.h (w.packed); null when
  // this ISA has none for the type (matmul then uses the canonical rows).
  // Called with r0 a multiple of 8.
  GemmFn gemm_packed[32] = {};
  // Fewest tokens for which gemm_packed beats gemm on the canonical rows.
  int packed_min_tokens[32] = {};
  // Quantizes one activation row of n elements (n a multiple of the block).
  void (*quant_q8x32)(const float* x, ActQ8* y, int64_t n) = nullptr;
  void (*quant_q8k)(const float* x, quant::BlockQ8_K* y, int64_t n) = nullptr;

  float (*dot)(const float*, const float*, int64_t) = nullptr;
  void (*axpy)(float, const float*, float*, int64_t) = nullptr;
  void (*dot_rows)(const float*, const float*, int64_t, int64_t, float, float*) = nullptr;
  void (*axpy_rows)(const float*, const float*, int64_t, int64_t, float*) = nullptr;
  void (*scale)(float*, float, int64_t) = nullptr;
  void (*rmsnorm)(float*, const float*, const float*, int64_t, float) = nullptr;
  void (*softmax)(float*, int64_t) = nullptr;
  void (*silu_mul)(float*, const float*, const float*, int64_t) = nullptr;
  void (*add)(float*, const float*, const float*, int64_t) = nullptr;
};

// Fill the table for one ISA (defined in the *_generic / *_avx2 / *_avx512
// files). Lower ISAs are filled first; a higher one overrides what it has.
void fill_generic(KernelTable& t);
void fill_generic_vec(KernelTable& t);
void fill_avx2(KernelTable& t);
void fill_avx2_vec(KernelTable& t);
void fill_avx2_packed(KernelTable& t);
void fill_avx512(KernelTable& t);
void fill_avx512_vec(KernelTable& t);

// The table of the active ISA.
const KernelTable& kernel_table();

// Scalar activation quantizers; the SIMD versions must reproduce them bit
// for bit (same scale, same round-half-even).
void quant_q8x32_generic(const float* x, ActQ8* y, int64_t n);
void quant_q8k_generic(const float* x, quant::BlockQ8_K* y, int64_t n);

// Rows per panel so that one panel of weights stays in L2 while every token
// tile passes over it.
inline int64_t panel_rows(size_t row_bytes, int64_t tile_rows) {
  int64_t p = static_cast<int64_t>((64 * 1024) / (row_bytes ? row_bytes : 1));
  p = p < tile_rows ? tile_rows : p - p % tile_rows;
  return p;
}

}  // namespace frugal::kernels
