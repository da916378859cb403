// quantize -> dequantize error bounds for every quantizer. Bounds follow from
// the formats: a round-to-nearest quant is off by at most half a step, and
// the step is the block's range divided by the number of levels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/reference.h"

namespace frugal::quant {
namespace {

std::vector<float> random_data(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  // A few outliers and a constant block exercise the scale selection.
  v[5] = 6.0f * scale;
  for (int i = 64; i < 96 && i < n; ++i) v[i] = 0.25f * scale;
  return v;
}

struct Case {
  TensorType type;
  double max_rel_rms;  // RMS error / RMS of the data
};

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, ErrorWithinBounds) {
  const Case c = GetParam();
  const int64_t n = 256 * 12;
  for (uint32_t seed : {1u, 2u, 3u}) {
    auto x = random_data(n, seed, seed == 3 ? 1e-3f : 1.0f);
    std::vector<uint8_t> q(row_size(c.type, n));
    ASSERT_TRUE(quantize_row(c.type, x.data(), q.data(), n).ok());
    std::vector<float> y(static_cast<size_t>(n));
    ASSERT_TRUE(dequantize_row(c.type, q.data(), y.data(), n).ok());
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (x[i] - y[i]) * double(x[i] - y[i]);
      ref += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_LT(rel, c.max_rel_rms) << tensor_type_name(c.type) << " seed " << seed;
    // Per-block bounds for the 32-element formats. Affine types (Q4_1, Q5_1)
    // split [min, max] in 2^b - 1 steps: error <= step / 2. Symmetric types map
    // the signed extreme to -2^(b-1), so values of the other sign are clipped
    // at (2^(b-1) - 1) steps: error <= one step d = amax / 2^(b-1). Q8 rounds
    // within +-127 steps of amax / 127: error <= d / 2. Plus the fp16 rounding
    // of the stored scale (relative 2^-11 of the value, or absolute half a
    // subnormal fp16 step 2^-25 times the largest quant for tiny scales).
    const int64_t bs = block_size(c.type);
    if (bs == 32) {
      for (int64_t b = 0; b < n / 32; ++b) {
        float mn = x[b * 32], mx = x[b * 32];
        for (int j = 0; j < 32; ++j) {
          mn = std::min(mn, x[b * 32 + j]);
          mx = std::max(mx, x[b * 32 + j]);
        }
        const float amax = std::max(std::fabs(mn), std::fabs(mx));
        float bound = 0;
        switch (c.type) {
          case TensorType::kQ4_1: bound = 0.5f * (mx - mn) / 15; break;
          case TensorType::kQ5_1: bound = 0.5f * (mx - mn) / 31; break;
          case TensorType::kQ4_0: bound = amax / 8; break;
          case TensorType::kQ5_0: bound = amax / 16; break;
          default: bound = 0.5f * amax / 127; break;
        }
        for (int j = 0; j < 32; ++j) {
          const int64_t i = b * 32 + j;
          ASSERT_LE(std::fabs(x[i] - y[i]), bound * 1.01f + amax * 1e-3f + 127 * 0x1p-25f)
              << tensor_type_name(c.type) << " block " << b << " elem " << j;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, RoundTrip,
    ::testing::Values(Case{TensorType::kF32, 1e-7}, Case{TensorType::kF16, 5e-4},
                      Case{TensorType::kBF16, 4e-3}, Case{TensorType::kQ8_0, 8e-3},
                      Case{TensorType::kQ8_1, 8e-3}, Case{TensorType::kQ4_0, 0.13},
                      Case{TensorType::kQ4_1, 0.11}, Case{TensorType::kQ5_0, 0.065},
                      Case{TensorType::kQ5_1, 0.055}, Case{TensorType::kQ8_K, 8e-3},
                      Case{TensorType::kQ4_K, 0.12}, Case{TensorType::kQ5_K, 0.06},
                      Case{TensorType::kQ6_K, 0.035}),
    [](const auto& info) { return std::string(tensor_type_name(info.param.type)); });

TEST(RoundTrip, ZerosStayZero) {
  for (TensorType t : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1,
                       TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K,
                       TensorType::kQ8_K}) {
    std::vector<float> x(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> q(row_size(t, 512));
    ASSERT_TRUE(quantize_row(t, x.data(), q.data(), 512).ok());
    ASSERT_TRUE(dequantize_row(t, q.data(), y.data(), 512).ok());
    for (float v : y) ASSERT_EQ(v, 0.0f) << tensor_type_name(t);
  }
}

TEST(RoundTrip, Q8KBlockSums) {
  auto x = random_data(512, 7);
  std::vector<BlockQ8_K> q(2);
  quantize_row_q8_k(x.data(), q.data(), 512);
  for (const auto& b : q)
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += b.qs[16 * g + l];
      EXPECT_EQ(s, b.bsums[g]);
    }
}

TEST(RoundTrip, KScalePackingIsInvertible) {
  std::mt19937 rng(3);
  for (int it = 0; it < 1000; ++it) {
    uint8_t sc[8], m[8], packed[12];
    for (int j = 0; j < 8; ++j) {
      sc[j] = rng() & 63;
      m[j] = rng() & 63;
    }
    pack_k_scale_min(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      uint8_t s2, m2;
      unpack_k_scale_min(j, packed, &s2, &m2);
      ASSERT_EQ(s2, sc[j]);
      ASSERT_EQ(m2, m[j]);
    }
  }
}

TEST(RoundTrip, RejectsBadSizes) {
  std::vector<float> x(300);
  std::vector<uint8_t> q(1024);
  EXPECT_FALSE(quantize_row(TensorType::kQ4_K, x.data(), q.data(), 300).ok());
  EXPECT_FALSE(quantize_row(TensorType::kQ8_0, x.data(), q.data(), 31).ok());
  EXPECT_FALSE(quantize_row(TensorType::kQ3_K, x.data(), q.data(), 256).ok());
}

}  // namespace
}  // namespace frugal::quant
