// Block grids and error-compensating (GPTQ) quantization: levels packed back
// into a block reproduce it; with uncorrelated inputs the sweep equals the
// searched quantizer; with correlated inputs it lowers the output error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/block_levels.h"
#include "quant/gptq.h"
#include "quant/reference.h"
#include "quant/search_quantize.h"

namespace frugal::quant {
namespace {

const TensorType kTypes[] = {TensorType::kQ4_0, TensorType::kQ5_0, TensorType::kQ8_0,
                             TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K};

std::vector<float> normal(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(BlockLevels, LevelsOfTheDequantizedValuesRepackTheBlock) {
  const int64_t n = 512;
  const auto x = normal(n, 7);
  for (TensorType type : kTypes) {
    SCOPED_TRACE(std::string(tensor_type_name(type)));
    const int64_t bs = block_size(type);
    const size_t bb = row_size(type, bs);
    std::vector<uint8_t> q(row_size(type, n));
    ASSERT_TRUE(quantize_row_searched(type, x.data(), q.data(), n, nullptr).ok());
    std::vector<float> back(static_cast<size_t>(n));
    ASSERT_TRUE(dequantize_row(type, q.data(), back.data(), n).ok());
    std::vector<uint8_t> repacked = q;
    std::vector<ElementGrid> g(static_cast<size_t>(bs));
    std::vector<int> k(static_cast<size_t>(bs));
    for (int64_t b = 0; b < n / bs; ++b) {
      uint8_t* blk = repacked.data() + b * bb;
      block_grids(type, blk, g.data());
      for (int64_t i = 0; i < bs; ++i) {
        k[i] = g[i].level_of(back[b * bs + i]);
        ASSERT_NEAR(g[i].value(k[i]), back[b * bs + i], 1e-6f * (1 + std::fabs(back[b * bs + i])));
      }
      std::fill(blk, blk + bb, 0);  // wipe, then restore the scales from the original
      std::memcpy(blk, q.data() + b * bb, bb);
      pack_block_levels(type, blk, k.data());
    }
    EXPECT_EQ(repacked, q);
  }
}

TEST(BlockLevels, LevelOfClampsToTheGrid) {
  const ElementGrid g{0.5f, -1.0f, 0, 15};
  EXPECT_EQ(g.level_of(-100.0f), 0);
  EXPECT_EQ(g.level_of(100.0f), 15);
  EXPECT_EQ(g.level_of(1e30f), 15);
  EXPECT_EQ(g.level_of(0.0f), 2);
  const ElementGrid zero{0.0f, 0.0f, -8, 7};
  EXPECT_EQ(zero.level_of(3.0f), 0);
}

// Output error sum_r (W_r - Q_r) H (W_r - Q_r)^T of a quantized matrix.
double output_error(TensorType type, const std::vector<float>& w, const std::vector<uint8_t>& q, int64_t rows,
                    int64_t cols, const std::vector<float>& h) {
  std::vector<float> back(static_cast<size_t>(rows * cols));
  EXPECT_TRUE(dequantize_row(type, q.data(), back.data(), rows * cols).ok());
  double total = 0;
  std::vector<double> d(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) d[j] = double(w[r * cols + j]) - back[r * cols + j];
    for (int64_t i = 0; i < cols; ++i) {
      double s = 0;
      for (int64_t j = 0; j < cols; ++j) s += h[i * cols + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}

std::vector<uint8_t> searched(TensorType type, const std::vector<float>& w, int64_t rows, int64_t cols,
                              const std::vector<float>& importance) {
  const size_t rs = row_size(type, cols);
  std::vector<uint8_t> q(rs * rows);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_TRUE(quantize_row_searched(type, &w[r * cols], q.data() + r * rs, cols, importance.data()).ok());
  return q;
}

TEST(Gptq, UncorrelatedInputsGiveTheSearchedQuantizer) {
  ThreadPool pool(2);
  const int64_t rows = 12, cols = 512;
  const auto w = normal(rows * cols, 3);
  std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f), ones(static_cast<size_t>(cols), 1.0f);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0f;
  for (TensorType type : kTypes) {
    SCOPED_TRACE(std::string(tensor_type_name(type)));
    std::vector<uint8_t> q(row_size(type, cols) * rows);
    ASSERT_TRUE(gptq_quantize(type, w.data(), rows, cols, h, q.data(), pool).ok());
    const auto s = searched(type, w, rows, cols, ones);
    if (type == TensorType::kQ8_0) {
      // Q8_0's reference quantizer rounds with the unrounded fp32 scale, the sweep
      // with the stored fp16 one: a few levels differ by one step.
      EXPECT_NEAR(output_error(type, w, q, rows, cols, h), output_error(type, w, s, rows, cols, h),
                  0.01 * output_error(type, w, s, rows, cols, h));
    } else {
      EXPECT_EQ(q, s);
    }
  }
}

TEST(Gptq, CorrelatedInputsLowerTheOutputError) {
  ThreadPool pool(2);
  const int64_t rows = 24, cols = 256, samples = 2048;
  const auto w = normal(rows * cols, 11);
  // Inputs with strongly correlated channels and uneven energy, as the
  // inputs of a transformer's linear layers have.
  const auto z = normal(samples * cols, 12);
  std::vector<float> x(static_cast<size_t>(samples * cols));
  for (int64_t s = 0; s < samples; ++s) {
    const float shared = z[s * cols];
    for (int64_t j = 0; j < cols; ++j)
      x[s * cols + j] = (0.8f * shared + 0.6f * z[s * cols + j]) * (1.0f + 3.0f * (j % 17 == 0));
  }
  std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f), diag(static_cast<size_t>(cols));
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) h[i * cols + j] += x[s * cols + i] * x[s * cols + j] / samples;
  for (int64_t i = 0; i < cols; ++i) diag[i] = h[i * cols + i];
  for (TensorType type : kTypes) {
    SCOPED_TRACE(std::string(tensor_type_name(type)));
    std::vector<uint8_t> q(row_size(type, cols) * rows);
    ASSERT_TRUE(gptq_quantize(type, w.data(), rows, cols, h, q.data(), pool).ok());
    const double e_gptq = output_error(type, w, q, rows, cols, h);
    const double e_diag = output_error(type, w, searched(type, w, rows, cols, diag), rows, cols, h);
    std::printf("[ gptq     ] %s: output error %.4g (diagonal-weighted search %.4g)\n", std::string(tensor_type_name(type)).c_str(),
                e_gptq, e_diag);
    EXPECT_LT(e_gptq, 0.7 * e_diag);
  }
}

TEST(Gptq, RejectsBadInput) {
  ThreadPool pool(1);
  const int64_t cols = 64;
  const auto w = normal(2 * cols, 1);
  std::vector<uint8_t> q(row_size(TensorType::kQ4_0, cols) * 2);
  std::vector<float> h(static_cast<size_t>(cols * cols), 0.0f);
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_0, w.data(), 2, cols, h, q.data(), pool).ok()) << "zero H";
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_0, w.data(), 2, cols, std::span<const float>(h).first(10), q.data(), pool).ok());
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0f;
  h[5] = NAN;
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_0, w.data(), 2, cols, h, q.data(), pool).ok()) << "NaN";
  h[5] = 0.0f;
  h[3 * cols + 3] = -1.0f;
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_0, w.data(), 2, cols, h, q.data(), pool).ok()) << "negative diagonal";
  h[3 * cols + 3] = 1.0f;
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_1, w.data(), 2, cols, h, q.data(), pool).ok()) << "no grid for Q4_1";
  EXPECT_FALSE(gptq_quantize(TensorType::kQ4_K, w.data(), 2, cols, h, q.data(), pool).ok()) << "64 columns < 256";
  EXPECT_TRUE(gptq_quantize(TensorType::kQ4_0, w.data(), 2, cols, h, q.data(), pool).ok());
}

}  // namespace
}  // namespace frugal::quant
