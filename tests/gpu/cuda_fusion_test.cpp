// The decode step's kernel fusions against the unfused kernels, bit for bit:
// RMSNorm and SwiGLU that also write 8-bit activations, GEMVs of several
// matrices in one launch, and programmatic dependent launch (kernels that
// start before the previous one has finished and wait for it on the device).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "gpu/cuda_test_util.h"
#include "kernels/cuda/cuda_kernels.h"
#include "quant/reference.h"

namespace frugal::cuda {
namespace {

// The quants a fused producer wrote against quantize_activations_q8 of its
// fp32 output.
void expect_quants_of(const DeviceBuffer<float>& out, int rows, int64_t cols, const DeviceBuffer<int8_t>& q,
                      const DeviceBuffer<float>& d) {
  DeviceBuffer<int8_t> q_ref(rows * cols);
  DeviceBuffer<float> d_ref(rows * cols / 32);
  ASSERT_CUDA(quantize_activations_q8(out.ptr, rows, cols, q_ref.ptr, d_ref.ptr, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  std::vector<int8_t> got_q = q.download();
  std::vector<float> got_d = d.download();
  got_q.resize(rows * cols);
  got_d.resize(rows * cols / 32);
  expect_same_bits(got_q, q_ref.download(), "quants");
  expect_same_bits(got_d, d_ref.download(), "scales");
}

// Widths: one float4 per thread, a last warp partly past the row (4064),
// two trips per thread (8192), a single warp (96).
TEST(CudaFusion, RmsNormWritesTheQuantsOfItsOutput) {
  const int rows = 4;
  for (int n : {4096, 4064, 8192, 96}) {
    SCOPED_TRACE("width " + std::to_string(n));
    const std::vector<float> x = random_floats(rows * n, 51, 3.0f), w = random_floats(n, 52);
    const std::vector<int32_t> pick = {3, 0};
    DeviceBuffer<float> dx(x), dw(w), plain(rows * n), fused(rows * n);
    DeviceBuffer<int32_t> dpick(pick);
    DeviceBuffer<int8_t> q(rows * n);
    DeviceBuffer<float> d(rows * n / 32);
    for (bool gather : {false, true}) {
      SCOPED_TRACE(gather ? "row gather" : "every row");
      const int n_rows = gather ? 2 : rows;
      const int32_t* sel = gather ? dpick.ptr : nullptr;
      ASSERT_CUDA(rmsnorm(dx.ptr, dw.ptr, sel, n_rows, n, 1e-5f, plain.ptr, nullptr));
      ASSERT_CUDA(rmsnorm(dx.ptr, dw.ptr, sel, n_rows, n, 1e-5f, fused.ptr, nullptr, {q.ptr, d.ptr}));
      ASSERT_CUDA(cudaDeviceSynchronize());
      std::vector<float> got = fused.download(), want = plain.download();
      got.resize(n_rows * n), want.resize(n_rows * n);
      expect_same_bits(got, want, "fp32 output");
      expect_quants_of(fused, n_rows, n, q, d);
    }
    EXPECT_NE(rmsnorm(dx.ptr, dw.ptr, nullptr, 1, 100, 1e-5f, fused.ptr, nullptr, {q.ptr, d.ptr}), cudaSuccess)
        << "quants need whole 32-value blocks";
  }
}

TEST(CudaFusion, SiluMulWritesTheQuantsOfItsOutput) {
  const int rows = 3;
  const int64_t n = 2816;
  const std::vector<float> g = random_floats(rows * n, 53, 4.0f), u = random_floats(rows * n, 54);
  DeviceBuffer<float> plain(g), fused(g), du(u);
  DeviceBuffer<int8_t> q(rows * n);
  DeviceBuffer<float> d(rows * n / 32);
  ASSERT_CUDA(silu_mul(plain.ptr, du.ptr, rows * n, nullptr));
  ASSERT_CUDA(silu_mul(fused.ptr, du.ptr, rows * n, nullptr, {q.ptr, d.ptr}));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_same_bits(fused.download(), plain.download(), "fp32 output");
  expect_quants_of(fused, rows, n, q, d);
  EXPECT_NE(silu_mul(fused.ptr, du.ptr, 1000, nullptr, {q.ptr, d.ptr}), cudaSuccess);
}

// The 16-bit activations of the large-batch GEMMs: RMSNorm's equal the
// conversion of its fp32 output; the stacked SwiGLU over [gate | up] rows
// equals silu_mul on separate rows, and its 16-bit output that conversion.
template <class T>
std::vector<T> converted(const std::vector<float>& x, bool bf16) {
  DeviceBuffer<float> dx(x);
  DeviceBuffer<T> out(x.size());
  EXPECT_EQ(bf16 ? convert_f32_to_bf16(dx.ptr, reinterpret_cast<__nv_bfloat16*>(out.ptr), x.size(), nullptr)
                 : convert_f32_to_f16(dx.ptr, reinterpret_cast<__half*>(out.ptr), x.size(), nullptr),
            cudaSuccess);
  return out.download();
}

TEST(CudaFusion, RmsNormWrites16BitActivations) {
  const int rows = 5;
  for (int n : {4096, 4064, 100}) {  // float4 path (two widths), scalar path
    for (bool bf16 : {true, false}) {
      SCOPED_TRACE(std::to_string(n) + (bf16 ? " bf16" : " fp16"));
      const std::vector<float> x = random_floats(rows * n, 61, 3.0f), w = random_floats(n, 62);
      DeviceBuffer<float> dx(x), dw(w), plain(rows * n), fused(rows * n);
      DeviceBuffer<uint16_t> a16(rows * n);
      ASSERT_CUDA(rmsnorm(dx.ptr, dw.ptr, nullptr, rows, n, 1e-5f, plain.ptr, nullptr));
      ASSERT_CUDA(rmsnorm(dx.ptr, dw.ptr, nullptr, rows, n, 1e-5f, fused.ptr, nullptr, {}, {a16.ptr, bf16}));
      ASSERT_CUDA(cudaDeviceSynchronize());
      const std::vector<float> out = plain.download();
      expect_same_bits(fused.download(), out, "fp32 output");
      expect_same_bits(a16.download(), converted<uint16_t>(out, bf16), "16-bit output");
    }
  }
  DeviceBuffer<float> x(64), out(64);
  DeviceBuffer<int8_t> q(64);
  DeviceBuffer<uint16_t> a16(64);
  EXPECT_NE(rmsnorm(x.ptr, x.ptr, nullptr, 1, 64, 1e-5f, out.ptr, nullptr, {q.ptr, out.ptr}, {a16.ptr, true}),
            cudaSuccess)
      << "one fused output at a time";
}

TEST(CudaFusion, StackedSiluMulRows) {
  const int rows = 7;
  const int64_t ff = 2816;
  const std::vector<float> gu = random_floats(rows * 2 * ff, 63, 4.0f);
  std::vector<float> g(rows * ff), u(rows * ff);
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < ff; ++j) g[r * ff + j] = gu[r * 2 * ff + j], u[r * ff + j] = gu[r * 2 * ff + ff + j];
  DeviceBuffer<float> plain(g), du(u), dgu(gu), out(rows * ff);
  ASSERT_CUDA(silu_mul(plain.ptr, du.ptr, rows * ff, nullptr));
  const std::vector<float> want = plain.download();
  for (bool bf16 : {true, false}) {
    SCOPED_TRACE(bf16 ? "bf16" : "fp16");
    DeviceBuffer<uint16_t> a16(rows * ff);
    ASSERT_CUDA(silu_mul_rows(dgu.ptr, dgu.ptr + ff, rows, ff, 2 * ff, out.ptr, {a16.ptr, bf16}, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    expect_same_bits(out.download(), want, "fp32 output");
    expect_same_bits(a16.download(), converted<uint16_t>(want, bf16), "16-bit output");
  }
  EXPECT_NE(silu_mul_rows(dgu.ptr, dgu.ptr + ff, rows, ff, 2 * ff, nullptr, {}, nullptr), cudaSuccess)
      << "no output";
  EXPECT_NE(silu_mul_rows(dgu.ptr, dgu.ptr + 2, rows, 2, 6, out.ptr, {}, nullptr), cudaSuccess) << "n_ff % 4";
}

struct GroupCase {
  TensorType type;
  bool split;  // device layout on 8-bit activations; else GGUF rows on fp32 activations
};

class CudaGroupedGemv : public ::testing::TestWithParam<GroupCase> {};

// Three matrices of different heights (tails of partial blocks) in one launch
// give exactly what three lone GEMVs give, for 1..8 tokens, overwriting and
// accumulating.
TEST_P(CudaGroupedGemv, EqualsOneGemvPerMatrix) {
  const auto [type, split] = GetParam();
  const int64_t heights[kGemvMaxOutputs] = {45, 13, 6};
  for (const int64_t cols : {int64_t{17} * 256, int64_t{33} * 256})  // 33: the wide-row single-token kernel
  for (int n : {1, 3, 8}) {
    SCOPED_TRACE("columns " + std::to_string(cols) + ", tokens " + std::to_string(n));
    std::vector<DeviceBuffer<uint8_t>> weights;
    for (int m = 0; m < kGemvMaxOutputs; ++m) weights.emplace_back(weight_rows(type, split, heights[m], cols, 60 + m));
    const std::vector<float> x = random_floats(n * cols, 70 + n);
    DeviceBuffer<float> dx(x);
    DeviceBuffer<int8_t> xq(n * cols);
    DeviceBuffer<float> xd(n * cols / 32);
    ASSERT_CUDA(quantize_activations_q8(dx.ptr, n, cols, xq.ptr, xd.ptr, nullptr));
    for (bool accumulate : {false, true}) {
      std::vector<std::vector<float>> lone(kGemvMaxOutputs);
      std::vector<DeviceBuffer<float>> grouped;
      GemvOutput outs[kGemvMaxOutputs];
      for (int m = 0; m < kGemvMaxOutputs; ++m) {
        const std::vector<float> y0 = random_floats(n * heights[m], 80 + m);
        DeviceBuffer<float> y(y0);
        ASSERT_CUDA(split ? gemv_int8_split(type, weights[m].ptr, heights[m], cols, xq.ptr, xd.ptr, n, y.ptr, accumulate,
                                            nullptr)
                          : gemv(type, weights[m].ptr, heights[m], cols, dx.ptr, n, y.ptr, accumulate, nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        lone[m] = y.download();
        grouped.emplace_back(y0);
        outs[m] = {weights[m].ptr, heights[m], grouped.back().ptr};
      }
      ASSERT_CUDA(gemv_group(type, split, outs, kGemvMaxOutputs, cols, dx.ptr, xq.ptr, xd.ptr, n, accumulate, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      for (int m = 0; m < kGemvMaxOutputs; ++m) expect_same_bits(grouped[m].download(), lone[m], "grouped GEMV output");
    }
  }
  GemvOutput none[kGemvMaxOutputs + 1];
  const int64_t cols = 256;
  EXPECT_NE(gemv_group(type, split, none, 0, cols, nullptr, nullptr, nullptr, 1, false, nullptr), cudaSuccess);
  EXPECT_NE(gemv_group(type, split, none, kGemvMaxOutputs + 1, cols, nullptr, nullptr, nullptr, 1, false, nullptr),
            cudaSuccess);
}

// One token over matrices of two split layouts in one launch (a Q4_K_M
// layer's Q4_K q / k and Q6_K v) gives the bits of one GEMV per matrix.
TEST(CudaGroupedGemvTwoTypes, EqualsOneGemvPerMatrix) {
  const int64_t heights[kGemvMaxOutputs] = {45, 13, 6};
  const int64_t cols = int64_t{17} * 256;
  DeviceBuffer<float> dx(random_floats(cols, 77));
  DeviceBuffer<int8_t> xq(cols);
  DeviceBuffer<float> xd(cols / 32);
  ASSERT_CUDA(quantize_activations_q8(dx.ptr, 1, cols, xq.ptr, xd.ptr, nullptr));
  const std::pair<TensorType, TensorType> pairs[] = {{TensorType::kQ4_K, TensorType::kQ6_K},
                                                     {TensorType::kQ6_K, TensorType::kQ4_K},
                                                     {TensorType::kQ4_0, TensorType::kQ8_0}};
  for (const auto& [type_a, type_b] : pairs)
    for (int n_a : {1, 2}) {
      SCOPED_TRACE(std::string(tensor_type_name(type_a)) + " x" + std::to_string(n_a) + ", then " +
                   std::string(tensor_type_name(type_b)));
      std::vector<DeviceBuffer<uint8_t>> weights;
      std::vector<std::vector<float>> lone;
      std::vector<DeviceBuffer<float>> grouped;
      GemvOutput outs[kGemvMaxOutputs];
      for (int m = 0; m < kGemvMaxOutputs; ++m) {
        const TensorType type = m < n_a ? type_a : type_b;
        weights.emplace_back(weight_rows(type, true, heights[m], cols, 60 + m));
        DeviceBuffer<float> y(heights[m]);
        ASSERT_CUDA(gemv_int8_split(type, weights[m].ptr, heights[m], cols, xq.ptr, xd.ptr, 1, y.ptr, false, nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        lone.push_back(y.download());
        grouped.emplace_back(std::vector<float>(heights[m], std::nanf("")));
      }
      for (int m = 0; m < kGemvMaxOutputs; ++m) outs[m] = {weights[m].ptr, heights[m], grouped[m].ptr};
      ASSERT_CUDA(gemv_group_split2(type_a, n_a, type_b, outs, kGemvMaxOutputs, cols, xq.ptr, xd.ptr, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      for (int m = 0; m < kGemvMaxOutputs; ++m) expect_same_bits(grouped[m].download(), lone[m], "grouped GEMV output");
      EXPECT_NE(gemv_group_split2(type_a, 0, type_b, outs, kGemvMaxOutputs, cols, xq.ptr, xd.ptr, nullptr), cudaSuccess)
          << "no matrix of the first type";
      EXPECT_NE(gemv_group_split2(type_a, kGemvMaxOutputs, type_b, outs, kGemvMaxOutputs, cols, xq.ptr, xd.ptr, nullptr),
                cudaSuccess)
          << "no matrix of the second type";
      EXPECT_NE(gemv_group_split2(type_a, n_a, type_b, outs, kGemvMaxOutputs, 33 * 256, xq.ptr, xd.ptr, nullptr),
                cudaSuccess)
          << "wide rows";
      EXPECT_NE(gemv_group_split2(type_a, n_a, type_a, outs, kGemvMaxOutputs, cols, xq.ptr, xd.ptr, nullptr),
                cudaSuccess)
          << "one type";
    }
  EXPECT_NE(gemv_group_split2(TensorType::kBF16, 1, TensorType::kQ6_K, nullptr, 2, cols, xq.ptr, xd.ptr, nullptr),
            cudaSuccess)
      << "no split layout";
}

// The single-token gate/up GEMV on fp32 activations with the SwiGLU in its
// epilogue gives the bits of the grouped GEMV followed by silu_mul.
TEST(CudaFusion, SwiGluEpilogueEqualsGemvThenSiluMul) {
  for (const TensorType type : {TensorType::kBF16, TensorType::kF16, TensorType::kQ4_K, TensorType::kQ8_0}) {
    SCOPED_TRACE(tensor_type_name(type));
    const int64_t cols = int64_t{17} * 256, n_ff = 7 * 32 + 2;
    const DeviceBuffer<uint8_t> gate(weight_rows(type, false, n_ff, cols, 91)),
        up(weight_rows(type, false, n_ff, cols, 92));
    const DeviceBuffer<float> dx(random_floats(cols, 93));
    DeviceBuffer<float> yg(n_ff), yu(n_ff);
    const GemvOutput outs[2] = {{gate.ptr, n_ff, yg.ptr}, {up.ptr, n_ff, yu.ptr}};
    ASSERT_CUDA(gemv_group(type, false, outs, 2, cols, dx.ptr, nullptr, nullptr, 1, false, nullptr));
    ASSERT_CUDA(silu_mul(yg.ptr, yu.ptr, n_ff, nullptr));
    DeviceBuffer<float> hidden(std::vector<float>(n_ff, std::nanf("")));
    ASSERT_CUDA(gemv_swiglu(type, gate.ptr, up.ptr, n_ff, cols, dx.ptr, hidden.ptr, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    expect_same_bits(hidden.download(), yg.download(), "hidden");
    EXPECT_NE(gemv_swiglu(type, gate.ptr, up.ptr, n_ff - 1, cols, dx.ptr, hidden.ptr, nullptr), cudaSuccess);
    EXPECT_NE(gemv_swiglu(type, gate.ptr, up.ptr, n_ff, cols, dx.ptr, nullptr, nullptr), cudaSuccess);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CudaGroupedGemv,
                         ::testing::Values(GroupCase{TensorType::kQ4_0, true}, GroupCase{TensorType::kQ8_0, true},
                                           GroupCase{TensorType::kQ4_K, true}, GroupCase{TensorType::kQ6_K, true},
                                           GroupCase{TensorType::kF16, false}, GroupCase{TensorType::kBF16, false},
                                           GroupCase{TensorType::kQ4_K, false}),
                         [](const auto& info) {
                           return std::string(tensor_type_name(info.param.type)) +
                                  (info.param.split ? "_split" : "_gguf");
                         });

// A feed-forward block applied 12 times on one stream (RMSNorm with quants,
// gate/up in one GEMV, SwiGLU with quants, down projection accumulated into
// the residual): every kernel reads what the one before it wrote. With
// programmatic launch each may start early and must wait on the device; a
// missing wait would read stale inputs and change the result. Plain
// launches, programmatic launches and a CUDA graph of them must agree bit
// for bit.
TEST(CudaFusion, ProgrammaticLaunchChainMatchesPlainLaunches) {
  const int64_t d = 1024, ff = 2816;
  const int steps = 12;
  int major = 0;
  ASSERT_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  const bool hopper = major >= 9;
  const bool was_on = programmatic_launch();
  DeviceBuffer<uint8_t> gate(weight_rows(TensorType::kQ4_0, true, ff, d, 91)),
      up(weight_rows(TensorType::kQ4_0, true, ff, d, 92)), down(weight_rows(TensorType::kQ6_K, true, d, ff, 93));
  const std::vector<float> x0 = random_floats(d, 95), norm = random_floats(d, 96);
  DeviceBuffer<float> x(x0), dnorm(norm), h(d), g(ff), u(ff);
  DeviceBuffer<int8_t> q(ff);
  DeviceBuffer<float> qd(ff / 32);
  cudaStream_t stream = nullptr;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto enqueue = [&]() -> cudaError_t {
    for (int s = 0; s < steps; ++s) {
      cudaError_t err = rmsnorm(x.ptr, dnorm.ptr, nullptr, 1, d, 1e-5f, h.ptr, stream, {q.ptr, qd.ptr});
      const GemvOutput gu[2] = {{gate.ptr, ff, g.ptr}, {up.ptr, ff, u.ptr}};
      if (err == cudaSuccess) err = gemv_group(TensorType::kQ4_0, true, gu, 2, d, nullptr, q.ptr, qd.ptr, 1, false, stream);
      if (err == cudaSuccess) err = silu_mul(g.ptr, u.ptr, ff, stream, {q.ptr, qd.ptr});
      if (err == cudaSuccess) err = gemv_int8_split(TensorType::kQ6_K, down.ptr, d, ff, q.ptr, qd.ptr, 1, x.ptr, true, stream);
      if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
  };
  auto run = [&](bool programmatic, bool graph, std::vector<float>& out) {
    set_programmatic_launch(programmatic);
    ASSERT_EQ(cudaMemcpy(x.ptr, x0.data(), d * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    if (graph) {
      cudaGraph_t g_ = nullptr;
      cudaGraphExec_t exec = nullptr;
      ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      const cudaError_t err = enqueue();
      ASSERT_CUDA(cudaStreamEndCapture(stream, &g_));
      ASSERT_CUDA(err);
      ASSERT_CUDA(cudaGraphInstantiate(&exec, g_, 0));
      ASSERT_CUDA(cudaGraphLaunch(exec, stream));
      ASSERT_CUDA(cudaStreamSynchronize(stream));
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(g_);
    } else {
      ASSERT_CUDA(enqueue());
      ASSERT_CUDA(cudaStreamSynchronize(stream));
    }
    out = x.download();
  };
  std::vector<float> plain, early, graphed;
  run(false, false, plain);
  run(hopper, false, early);
  run(hopper, true, graphed);
  set_programmatic_launch(was_on);
  cudaStreamDestroy(stream);
  expect_same_bits(early, plain, "programmatic launches");
  expect_same_bits(graphed, plain, "graph of programmatic launches");
  // The chain changes x: a chain that did nothing would pass the comparisons.
  double moved = 0;
  for (int64_t i = 0; i < d; ++i) moved += std::abs(plain[i] - x0[i]);
  EXPECT_GT(moved, 1e-3);
}

}  // namespace
}  // namespace frugal::cuda
