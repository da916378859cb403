// Weight matmul for the model forward pass:
//   out[t * rows + r] = sum_k W[r, k] * x[t * cols + k],   t < n_tokens.
// W is stored row-major in its GGUF type (row r = row_size(type, cols)
// bytes; GGUF dims[0] == cols) and read in place from the mapping.
//
// Precision: F32/F16/BF16 weights multiply fp32 activations with fp32
// accumulation. Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 quantize each activation row to
// 8-bit blocks of 32 (fp32 scale) and use integer dot products; Q4_K/Q5_K/Q6_K
// quantize activations to Q8_K blocks of 256. The activation quantization is
// bit-identical on every ISA, so ISAs differ only in fp32 summation order.
// WeightMatrix::fine_activations adds a second 8-bit pass over the rounding
// residual (~15-bit activations) at twice the integer work.
//
// n_tokens == 1 runs a GEMV split over rows; n_tokens > 1 runs a blocked GEMM
// that streams each cache-sized panel of weights once per tile of tokens.
// The ISA (generic / AVX2+FMA+F16C / AVX-512) is chosen once at run time;
// FRUGAL_CPU_ISA=generic|avx2|avx512 forces a lower one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "core/thread_pool.h"
#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal::kernels {

struct WeightMatrix {
  TensorType type = TensorType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  // Optional copy of the weights in an interleaved kernel layout, made by
  // prepare_weight(). `data` always stays the canonical GGUF rows: row
  // lookups, device backends and ISAs without a packed kernel read it.
  const void* packed = nullptr;
  std::shared_ptr<const void> packed_owner;
  // For the quantized types (integer kernels): quantize the activations in
  // two 8-bit passes, x ~ d1*q1 + d2*q2 with q2 the rounded residual, so the
  // product sees ~15-bit activations (the quality of fp32 ones) at twice the
  // integer work. Ignored for F32/F16/BF16, which take fp32 activations.
  bool fine_activations = false;
};

// True when matmul() implements `type`.
bool matmul_supported(TensorType type);

// Checks what matmul() assumes: a supported type, cols a positive multiple
// of the block size, rows >= 0, data non-null. Call once when binding
// weights; matmul() itself treats a violation as a bug and aborts.
Status validate_weight(const WeightMatrix& w);

// Prepares a bound weight for the CPU kernels: types with an interleaved
// layout (Q4_0, Q8_0) get a repacked copy in memory (w.packed) when the
// active ISA has kernels for it; other types are left as they are. Call once
// per matrix at load; the file format stays canonical. Fails only when the
// copy cannot be allocated or `w` is invalid.
Status prepare_weight(WeightMatrix& w, ThreadPool& pool);

// Reusable buffers for quantized activations. reserve() once with the
// largest (n_tokens, cols) the caller will pass; matmul() then allocates
// nothing. A call that exceeds the reservation grows the buffer (allocating)
// rather than failing. Not shareable between concurrent matmul() calls.
class MatmulScratch {
 public:
  MatmulScratch() = default;
  ~MatmulScratch();
  MatmulScratch(const MatmulScratch&) = delete;
  MatmulScratch& operator=(const MatmulScratch&) = delete;
  MatmulScratch(MatmulScratch&& o) noexcept;
  MatmulScratch& operator=(MatmulScratch&& o) noexcept;

  void reserve(int64_t max_tokens, int64_t max_cols, int64_t max_fine_rows = 0);
  size_t capacity_bytes() const { return capacity_; }
  // Number of times the buffer was (re)allocated; tests use it to check
  // that matmul() stays allocation-free after reserve().
  int allocations() const { return allocations_; }

  // Internal: a 64-byte aligned buffer of at least `bytes`.
  void* ensure(size_t bytes);

 private:
  void* buf_ = nullptr;
  size_t capacity_ = 0;
  int allocations_ = 0;
};

// Bytes of scratch needed for n_tokens activation rows of `cols` elements
// (covers every weight type; with fine_rows > 0, also fine_activations
// weights of up to fine_rows output rows).
size_t matmul_scratch_bytes(int64_t n_tokens, int64_t cols, int64_t fine_rows = 0);

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* out, ThreadPool& pool,
            MatmulScratch& scratch);

// Several matmuls of the same input (Q/K/V, gate/up): out_i = W_i x. When
// the weights read the same activation format, x is quantized once and the
// rows of all of them are shared out in one pass over the pool (one
// barrier instead of one per matrix, which is most of a decode step's
// synchronisation on few cores). Results equal separate matmul() calls.
struct MatmulOp {
  const WeightMatrix* w;
  float* out;
};
inline constexpr size_t kMaxMatmulGroup = 4;
void matmul_group(std::span<const MatmulOp> ops, const float* x, int64_t n_tokens, ThreadPool& pool,
                  MatmulScratch& scratch);

}  // namespace frugal::kernels
