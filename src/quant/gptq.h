// Error-compensating quantization of a weight matrix against the second
// moment of its inputs (the GPTQ method: Frantar et al., 2022).
//
// For a linear layer y = W x, the output error of a quantized Q over inputs
// with second moment H = E[x x^T] is sum_r (W_r - Q_r) H (W_r - Q_r)^T. The
// columns are rounded one at a time, left to right; the error each rounding
// leaves is spread over the columns not yet rounded along the inverse of H, so
// correlated inputs absorb it. Each block's scales are chosen when the
// sweep reaches the block (from the already-compensated weights), so the
// result is an ordinary block of the GGUF type that any engine runs.
#pragma once

#include <cstdint>
#include <span>

#include "core/thread_pool.h"
#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal::quant {

// Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K.
bool can_gptq_quantize(TensorType type);

struct GptqOptions {
  // Added to H's diagonal as a fraction of its mean diagonal: keeps the
  // inverse well conditioned when calibration saw few tokens.
  double damp = 0.01;
};

// The inverse factor the sweep needs: the upper Cholesky factor U of H^-1
// (H^-1 = U^T U), cols x cols row-major, after damping. Fails when H is not
// finite or not positive definite even after raising the damping.
Expected<std::vector<float>> gptq_inverse_factor(std::span<const float> h, int64_t cols, const GptqOptions& opt = {});

// Quantizes rows x cols weights (row-major fp32) into `out` (rows *
// row_size(type, cols) bytes). `h` is the cols x cols input second moment
// (any positive multiple); its diagonal also weighs each block's scale
// search.
Status gptq_quantize(TensorType type, const float* w, int64_t rows, int64_t cols, std::span<const float> h,
                     uint8_t* out, ThreadPool& pool, const GptqOptions& opt = {});

}  // namespace frugal::quant
