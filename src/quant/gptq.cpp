#include "quant/gptq.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/block_levels.h"
#include "quant/reference.h"
#include "quant/search_quantize.h"

namespace frugal::quant {
namespace {

// In-place lower Cholesky factor of a symmetric n x n matrix (row-major);
// false when a pivot is not positive.
bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0) || !std::isfinite(d)) return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      const double* ai = &a[i * n];
      const double* aj = &a[j * n];
      for (int64_t k = 0; k < j; ++k) s -= ai[k] * aj[k];
      a[i * n + j] = s / d;
    }
    for (int64_t k = j + 1; k < n; ++k) a[j * n + k] = 0;
  }
  return true;
}

// Inverse of a lower-triangular matrix (row-major), in place.
void invert_lower(std::vector<double>& l, int64_t n) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    inv[j * n + j] = 1.0 / l[j * n + j];
    for (int64_t i = j + 1; i < n; ++i) {
      double s = 0;
      for (int64_t k = j; k < i; ++k) s += l[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / l[i * n + i];
    }
  }
  l.swap(inv);
}

}  // namespace

bool can_gptq_quantize(TensorType type) { return has_block_grid(type); }

Expected<std::vector<float>> gptq_inverse_factor(std::span<const float> h, int64_t cols, const GptqOptions& opt) {
  if (cols <= 0 || static_cast<int64_t>(h.size()) != cols * cols)
    return invalid_argument("input second moment has " + std::to_string(h.size()) + " entries, expected " +
                            std::to_string(cols) + "^2");
  for (float v : h)
    if (!std::isfinite(v)) return invalid_argument("input second moment has a non-finite entry");
  double mean_diag = 0;
  for (int64_t i = 0; i < cols; ++i) {
    const double v = h[i * cols + i];
    if (!std::isfinite(v) || v < 0) return invalid_argument("input second moment has a bad diagonal entry");
    mean_diag += v;
  }
  mean_diag /= static_cast<double>(cols);
  if (!(mean_diag > 0)) return invalid_argument("input second moment is zero");
  for (double damp = opt.damp; damp <= 10.0; damp *= 10.0) {
    // H + damp * mean(diag) * I; a channel calibration never saw gets the
    // damping alone, so its weights are rounded to nearest.
    std::vector<double> a(h.begin(), h.end());
    for (int64_t i = 0; i < cols; ++i) a[i * cols + i] += damp * mean_diag;
    if (!cholesky_lower(a, cols)) continue;
    invert_lower(a, cols);  // a = L^-1, so H^-1 = L^-T L^-1
    std::vector<double> hinv(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t k = i; k < cols; ++k) {
        const double lki = a[k * cols + i];
        if (lki == 0) continue;
        const double* lk = &a[k * cols];
        for (int64_t j = 0; j <= i; ++j) hinv[i * cols + j] += lki * lk[j];
      }
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < i; ++j) hinv[j * cols + i] = hinv[i * cols + j];
    if (!cholesky_lower(hinv, cols)) continue;
    // Upper factor U = L'^T of H^-1 = L' L'^T.
    std::vector<float> u(static_cast<size_t>(cols * cols), 0.0f);
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = i; j < cols; ++j) u[i * cols + j] = static_cast<float>(hinv[j * cols + i]);
    return u;
  }
  return invalid_argument("input second moment is not positive definite");
}

Status gptq_quantize(TensorType type, const float* w, int64_t rows, int64_t cols, std::span<const float> h,
                     uint8_t* out, ThreadPool& pool, const GptqOptions& opt) {
  if (!can_gptq_quantize(type))
    return unsupported("error-compensating quantization to " + std::string(tensor_type_name(type)));
  const int64_t bs = block_size(type);
  if (rows <= 0 || cols <= 0 || cols % bs != 0)
    return invalid_argument("a " + std::to_string(rows) + "x" + std::to_string(cols) + " matrix does not fit " +
                            std::string(tensor_type_name(type)) + " blocks");
  FRUGAL_ASSIGN_OR_RETURN(const std::vector<float> u, gptq_inverse_factor(h, cols, opt));
  std::vector<float> importance(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) importance[i] = h[i * cols + i];
  const size_t out_row = row_size(type, cols), block_bytes = row_size(type, bs);

  // Rows are independent; a tile of rows shares each row of U while it is in cache.
  constexpr int64_t kTile = 8;
  const int64_t n_tiles = (rows + kTile - 1) / kTile;
  std::atomic<bool> failed{false};
  pool.parallel_for(n_tiles, [&](int64_t t0, int64_t t1) {
    std::vector<float> tile(static_cast<size_t>(kTile * cols));
    std::vector<ElementGrid> grids(static_cast<size_t>(kTile * bs));
    std::vector<int> levels(static_cast<size_t>(kTile * bs));
    float err[kTile], sigma2[kTile];
    for (int64_t t = t0; t < t1 && !failed; ++t) {
      const int64_t r0 = t * kTile, nr = std::min(kTile, rows - r0);
      std::memcpy(tile.data(), w + r0 * cols, static_cast<size_t>(nr * cols) * 4);
      for (int64_t r = 0; r < nr; ++r) sigma2[r] = row_sigma2(w + (r0 + r) * cols, cols);
      for (int64_t b = 0; b < cols; b += bs) {
        // Scales of this block from the compensated weights.
        for (int64_t r = 0; r < nr; ++r) {
          uint8_t* blk = out + (r0 + r) * out_row + (b / bs) * block_bytes;
          if (!quantize_row_searched(type, &tile[r * cols + b], blk, bs, &importance[b], sigma2[r]).ok()) {
            failed = true;
            return;
          }
          block_grids(type, blk, &grids[r * bs]);
        }
        for (int64_t i = b; i < b + bs; ++i) {
          const float* ui = &u[i * cols];
          for (int64_t r = 0; r < nr; ++r) {
            const ElementGrid& g = grids[r * bs + (i - b)];
            float& x = tile[r * cols + i];
            const int k = g.level_of(x);
            levels[r * bs + (i - b)] = k;
            err[r] = (x - g.value(k)) / ui[i];
          }
          for (int64_t r = 0; r < nr; ++r) {
            float* row = &tile[r * cols];
            const float e = err[r];
            for (int64_t j = i + 1; j < cols; ++j) row[j] -= e * ui[j];
          }
        }
        for (int64_t r = 0; r < nr; ++r)
          pack_block_levels(type, out + (r0 + r) * out_row + (b / bs) * block_bytes, &levels[r * bs]);
      }
    }
  });
  if (failed) return internal_error("error-compensating quantization failed");
  return Status::Ok();
}

}  // namespace frugal::quant
