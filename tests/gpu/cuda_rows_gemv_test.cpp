// The row-owning single-token GEMVs (gemv_rows, gemv_rows_residual,
// gemv_rows_swiglu) against the scalar reference in double precision: the
// weights dequantized by src/quant/reference.h times the dequantized 8-bit
// activations, the deferred RMSNorm factor, the residual update and SwiGLU;
// the quants they leave against quantize_activations_q8 of their own fp32
// values, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gpu/cuda_test_util.h"
#include "kernels/cuda/cuda_kernels.h"

namespace frugal::cuda {
namespace {

// One token's activations quantized on the device, and their dequantized values.
struct QuantizedInput {
  DeviceBuffer<int8_t> q;
  DeviceBuffer<float> d;
  std::vector<float> values;
  explicit QuantizedInput(const std::vector<float>& x) : q(x.size()), d(x.size() / 32), values(x.size()) {
    DeviceBuffer<float> dx(x);
    EXPECT_EQ(quantize_activations_q8(dx.ptr, 1, static_cast<int64_t>(x.size()), q.ptr, d.ptr, nullptr), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<int8_t> hq = q.download();
    const std::vector<float> hd = d.download();
    for (size_t i = 0; i < x.size(); ++i) values[i] = hd[i / 32] * hq[i];
  }
};

// Row r of W x in double precision, and the sum of its products' magnitudes.
std::pair<double, double> row_dot(const std::vector<float>& w, const std::vector<float>& x, int64_t r) {
  const int64_t cols = static_cast<int64_t>(x.size());
  double dot = 0.0, mag = 0.0;
  for (int64_t k = 0; k < cols; ++k) {
    dot += double(w[r * cols + k]) * x[k];
    mag += std::abs(double(w[r * cols + k]) * x[k]);
  }
  return {dot, mag};
}

// The partial sums of squares of a deferred norm and the factor they give.
struct NormCase {
  std::vector<float> partials;
  int64_t cols;
  float eps;
  double factor() const {
    double s = 0.0;
    for (float p : partials) s += p;
    return 1.0 / std::sqrt(s / double(cols) + double(eps));
  }
};
const NormCase kNorm{{3.0f, 5.5f, 1.25f, 0.5f, 7.0f}, 1000, 1e-5f};

// The quants a kernel left in q / d against quantize_activations_q8 of the
// fp32 values `of` (computed on the host as the kernel computes them).
void expect_quants_of(const std::vector<float>& of, const DeviceBuffer<int8_t>& q, const DeviceBuffer<float>& d) {
  const int64_t n = static_cast<int64_t>(of.size());
  DeviceBuffer<float> dof(of);
  DeviceBuffer<int8_t> q_ref(n);
  DeviceBuffer<float> d_ref(n / 32);
  ASSERT_CUDA(quantize_activations_q8(dof.ptr, 1, n, q_ref.ptr, d_ref.ptr, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_same_bits(q.download(), q_ref.download(), "quants");
  expect_same_bits(d.download(), d_ref.download(), "scales");
}

class CudaRowsGemv : public ::testing::TestWithParam<TensorType> {};

// 17 super-blocks: one stage of units per lane; 33: several stages. Three
// matrices in one launch, two of them with partial last blocks.
const int64_t kColumns[] = {17 * 256, 33 * 256};

TEST_P(CudaRowsGemv, StoresRowSumsScaledByTheDeferredNorm) {
  const TensorType type = GetParam();
  const int64_t heights[kGemvMaxOutputs] = {96, 45, 7};
  for (const int64_t cols : kColumns)
    for (const bool deferred : {false, true}) {
      SCOPED_TRACE("columns " + std::to_string(cols) + (deferred ? ", deferred norm" : ""));
      std::vector<std::vector<float>> w_ref(kGemvMaxOutputs);
      std::vector<DeviceBuffer<uint8_t>> weights;
      std::vector<DeviceBuffer<float>> ys;
      GemvOutput outs[kGemvMaxOutputs];
      for (int m = 0; m < kGemvMaxOutputs; ++m) {
        weights.emplace_back(weight_rows(type, true, heights[m], cols, 10 + m, &w_ref[m]));
        ys.emplace_back(std::vector<float>(heights[m], std::nanf("")));
        outs[m] = {weights[m].ptr, heights[m], ys[m].ptr};
      }
      const QuantizedInput x(random_floats(cols, 20));
      DeviceBuffer<float> partials(kNorm.partials);
      const DeferredNorm norm = deferred ? DeferredNorm{partials.ptr, static_cast<int>(kNorm.partials.size()),
                                                        kNorm.cols, kNorm.eps}
                                         : DeferredNorm{};
      ASSERT_CUDA(gemv_rows(type, outs, kGemvMaxOutputs, cols, x.q.ptr, x.d.ptr, norm, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      const double r = deferred ? kNorm.factor() : 1.0;
      for (int m = 0; m < kGemvMaxOutputs; ++m) {
        const std::vector<float> y = ys[m].download();
        for (int64_t i = 0; i < heights[m]; ++i) {
          const auto [dot, mag] = row_dot(w_ref[m], x.values, i);
          ASSERT_NEAR(y[i], r * dot, r * (1e-5 * mag + 1e-5)) << "matrix " << m << " row " << i;
        }
      }
    }
}

TEST_P(CudaRowsGemv, ResidualLeavesTheNextNormsQuants) {
  const TensorType type = GetParam();
  const int64_t rows = 96;
  for (const int64_t cols : kColumns) {
    SCOPED_TRACE("columns " + std::to_string(cols));
    std::vector<float> w_ref;
    const DeviceBuffer<uint8_t> w(weight_rows(type, true, rows, cols, 30, &w_ref));
    const QuantizedInput a(random_floats(cols, 31));
    const std::vector<float> x0 = random_floats(rows, 32), norm_w = random_floats(rows, 33);
    const DeviceBuffer<float> dnorm(norm_w);
    for (const bool with_norm : {true, false}) {
      SCOPED_TRACE(with_norm ? "with the next norm" : "residual only");
      DeviceBuffer<float> x(x0);
      DeviceBuffer<int8_t> q(std::vector<int8_t>(rows, 0x55));
      DeviceBuffer<float> d(std::vector<float>(rows / 32, -1.0f)), sum_sq(std::vector<float>(rows / 32, -1.0f));
      const NormQuantsOut next = with_norm ? NormQuantsOut{dnorm.ptr, {q.ptr, d.ptr}, sum_sq.ptr} : NormQuantsOut{};
      ASSERT_CUDA(gemv_rows_residual(type, w.ptr, rows, cols, a.q.ptr, a.d.ptr, x.ptr, next, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      const std::vector<float> got = x.download();
      expect_gemv_result(got, x0, w_ref, a.values, rows, cols, 1, true);
      if (!with_norm) {  // nothing else written
        expect_same_bits(q.download(), std::vector<int8_t>(rows, 0x55), "quants");
        expect_same_bits(sum_sq.download(), std::vector<float>(rows / 32, -1.0f), "sums of squares");
        continue;
      }
      std::vector<float> scaled(rows);
      for (int64_t i = 0; i < rows; ++i) scaled[i] = got[i] * norm_w[i];
      expect_quants_of(scaled, q, d);
      const std::vector<float> ss = sum_sq.download();
      for (int64_t b = 0; b < rows / 32; ++b) {
        double ref = 0.0;
        for (int i = 0; i < 32; ++i) ref += double(got[b * 32 + i]) * got[b * 32 + i];
        EXPECT_NEAR(ss[b], ref, 1e-5 * ref) << "block " << b;
      }
    }
    DeviceBuffer<float> x(x0);
    EXPECT_NE(gemv_rows_residual(type, w.ptr, rows - 1, cols, a.q.ptr, a.d.ptr, x.ptr, {}, nullptr), cudaSuccess);
    EXPECT_NE(gemv_rows_residual(type, w.ptr, rows, cols, a.q.ptr, a.d.ptr, x.ptr, {dnorm.ptr, {}, nullptr}, nullptr),
              cudaSuccess);
  }
}

TEST_P(CudaRowsGemv, SwiGluQuantizesTheHiddenValues) {
  const TensorType type = GetParam();
  const int64_t n_ff = 96;
  for (const int64_t cols : kColumns)
    for (const bool deferred : {false, true}) {
      SCOPED_TRACE("columns " + std::to_string(cols) + (deferred ? ", deferred norm" : ""));
      std::vector<float> g_ref, u_ref;
      const DeviceBuffer<uint8_t> gate(weight_rows(type, true, n_ff, cols, 40, &g_ref)),
          up(weight_rows(type, true, n_ff, cols, 41, &u_ref));
      const QuantizedInput a(random_floats(cols, 42));
      DeviceBuffer<float> partials(kNorm.partials), hidden(std::vector<float>(n_ff, std::nanf("")));
      DeviceBuffer<int8_t> q(n_ff);
      DeviceBuffer<float> d(n_ff / 32);
      const DeferredNorm norm = deferred ? DeferredNorm{partials.ptr, static_cast<int>(kNorm.partials.size()),
                                                        kNorm.cols, kNorm.eps}
                                         : DeferredNorm{};
      ASSERT_CUDA(gemv_rows_swiglu(type, gate.ptr, up.ptr, n_ff, cols, a.q.ptr, a.d.ptr, norm, {q.ptr, d.ptr},
                                   hidden.ptr, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      const double r = deferred ? kNorm.factor() : 1.0;
      const std::vector<float> h = hidden.download();
      for (int64_t i = 0; i < n_ff; ++i) {
        const auto [gd, gm] = row_dot(g_ref, a.values, i);
        const auto [ud, um] = row_dot(u_ref, a.values, i);
        const double g = r * gd, u = r * ud, err_g = r * (1e-5 * gm + 1e-5), err_u = r * (1e-5 * um + 1e-5);
        const double silu = g / (1.0 + std::exp(-g));
        // |d silu / dg| < 1.1 everywhere.
        ASSERT_NEAR(h[i], silu * u, 1.1 * std::abs(u) * err_g + (std::abs(silu) + err_g) * err_u + 1e-6)
            << "hidden " << i;
      }
      expect_quants_of(h, q, d);
    }
}

TEST(CudaRowsGemvErrors, WhatTheKernelsDoNotRunIsAnError) {
  const int64_t cols = 256;
  DeviceBuffer<uint8_t> w(1 << 16);
  DeviceBuffer<int8_t> q(cols);
  DeviceBuffer<float> d(cols / 32), y(64);
  const GemvOutput out{w.ptr, 64, y.ptr};
  EXPECT_NE(gemv_rows(TensorType::kF16, &out, 1, cols, q.ptr, d.ptr, {}, nullptr), cudaSuccess);  // no split layout
  EXPECT_NE(gemv_rows(TensorType::kQ4_0, &out, 0, cols, q.ptr, d.ptr, {}, nullptr), cudaSuccess);
  EXPECT_NE(gemv_rows(TensorType::kQ4_0, &out, 1, cols, nullptr, d.ptr, {}, nullptr), cudaSuccess);
  EXPECT_NE(gemv_rows(TensorType::kQ4_0, &out, 1, cols, q.ptr, d.ptr, {y.ptr, 0, cols, 1e-5f}, nullptr), cudaSuccess);
  EXPECT_NE(gemv_rows_swiglu(TensorType::kQ4_0, w.ptr, w.ptr, 45, cols, q.ptr, d.ptr, {}, {q.ptr, d.ptr}, nullptr,
                             nullptr),
            cudaSuccess);
  EXPECT_NE(gemv_rows_swiglu(TensorType::kQ4_0, w.ptr, w.ptr, 64, cols, q.ptr, d.ptr, {}, {}, nullptr, nullptr),
            cudaSuccess);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CudaRowsGemv,
                         ::testing::Values(TensorType::kQ4_0, TensorType::kQ8_0, TensorType::kQ4_K,
                                           TensorType::kQ6_K),
                         [](const auto& info) { return std::string(tensor_type_name(info.param)); });

}  // namespace
}  // namespace frugal::cuda
