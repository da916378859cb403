// vec ops on every available ISA against double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/vec_ops.h"

namespace frugal::kernels {
namespace {

struct IsaGuard {
  CpuIsa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};

std::vector<float> rnd(int64_t n, uint32_t seed, float s = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, s);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

const int64_t kSizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 64, 100, 384, 1000, 4099};

template <class Fn>
void for_each_isa(Fn fn) {
  IsaGuard g;
  for (int i = 0; i <= static_cast<int>(detected_isa()); ++i) {
    ASSERT_TRUE(set_isa(static_cast<CpuIsa>(i)));
    SCOPED_TRACE(std::string(isa_name(static_cast<CpuIsa>(i))));
    fn();
  }
}

TEST(VecOps, Dot) {
  for_each_isa([] {
    for (int64_t n : kSizes) {
      auto a = rnd(n, 1), b = rnd(n, 2);
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += double(a[i]) * b[i];
        mag += std::fabs(double(a[i]) * b[i]);
      }
      EXPECT_NEAR(dot(a.data(), b.data(), n), ref, 1e-5 * mag + 1e-7) << n;
    }
  });
}

TEST(VecOps, AxpyScaleAdd) {
  for_each_isa([] {
    for (int64_t n : kSizes) {
      auto x = rnd(n, 3), y = rnd(n, 4), z = rnd(n, 5);
      auto y2 = y;
      axpy(0.37f, x.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y2[i], y[i] + 0.37 * x[i], 1e-6 * (1 + std::fabs(y[i]))) << n;
      auto s = x;
      scale(s.data(), -1.5f, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], x[i] * -1.5f);
      std::vector<float> o(n);
      add(o.data(), x.data(), z.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(o[i], x[i] + z[i]);
      add(x.data(), x.data(), z.data(), n);  // aliasing
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], o[i]);
    }
  });
}

// The attention block kernels must give exactly what the per-row calls
// give (prefill and decode mix both), for every row count and length.
TEST(VecOps, DotRowsAndAxpyRowsEqualPerRowCalls) {
  for_each_isa([] {
    for (int64_t n : {1, 7, 8, 16, 24, 64, 72, 128, 200}) {
      for (int64_t rows : {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 33}) {
        const auto q = rnd(n, 11), block = rnd(rows * n + 1, 12), w = rnd(rows + 1, 13);
        std::vector<float> got(rows + 1, -7.0f);
        dot_rows(q.data(), block.data(), rows, n, 0.125f, got.data());
        for (int64_t j = 0; j < rows; ++j) ASSERT_EQ(got[j], dot(q.data(), block.data() + j * n, n) * 0.125f) << n << " " << j;
        ASSERT_EQ(got[rows], -7.0f);  // nothing past n_rows written
        auto y_block = rnd(n, 14);
        auto y_rows = y_block;
        axpy_rows(w.data(), block.data(), rows, n, y_block.data());
        for (int64_t j = 0; j < rows; ++j) axpy(w[j], block.data() + j * n, y_rows.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y_block[i], y_rows[i]) << n << " " << rows << " " << i;
      }
    }
  });
}

TEST(VecOps, RmsNorm) {
  for_each_isa([] {
    for (int64_t n : kSizes) {
      auto x = rnd(n, 6, 3.0f), w = rnd(n, 7);
      std::vector<float> o(n);
      rmsnorm(o.data(), x.data(), w.data(), n, 1e-5f);
      double ss = 0;
      for (float v : x) ss += double(v) * v;
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(o[i], x[i] * inv * w[i], 2e-5 * (std::fabs(x[i] * inv * w[i]) + 1e-3)) << n;
      rmsnorm(x.data(), x.data(), w.data(), n, 1e-5f);  // in place
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], o[i]);
    }
  });
}

TEST(VecOps, Softmax) {
  for_each_isa([] {
    for (int64_t n : kSizes) {
      auto x = rnd(n, 8, 5.0f);
      if (n > 2) x[1] = -INFINITY;
      auto y = x;
      softmax(y.data(), n);
      double mx = -INFINITY;
      for (float v : x) mx = std::max(mx, double(v));
      double sum = 0;
      for (float v : x) sum += std::exp(v - mx);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], std::exp(x[i] - mx) / sum, 2e-6 + 1e-5 * std::exp(x[i] - mx) / sum) << n;
      if (n > 2) EXPECT_EQ(y[1], 0.0f);
    }
    // Large logits must not overflow.
    std::vector<float> big = {1000.0f, 999.0f, -1000.0f};
    softmax(big.data(), 3);
    EXPECT_NEAR(big[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  });
}

TEST(VecOps, SiluMul) {
  for_each_isa([] {
    for (int64_t n : kSizes) {
      auto g = rnd(n, 9, 4.0f), u = rnd(n, 10);
      if (n > 3) {
        g[0] = 90.0f;
        g[1] = -90.0f;
        g[2] = 0.0f;
      }
      std::vector<float> o(n);
      silu_mul(o.data(), g.data(), u.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double ref = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
        ASSERT_NEAR(o[i], ref, 1e-5 * std::fabs(ref) + 1e-7) << n << " g=" << g[i];
      }
      silu_mul(g.data(), g.data(), u.data(), n);  // out aliases gate
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(g[i], o[i]);
    }
  });
}

}  // namespace
}  // namespace frugal::kernels
