// Differential tests of every CUDA kernel against the scalar CPU reference
// (src/quant/reference.h for the weight formats, plain loops for the rest)
// on random inputs.
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "gpu/cuda_test_util.h"
#include "kernels/cuda/cuda_kernels.h"
#include "quant/reference.h"

namespace frugal::cuda {
namespace {

// The tests need a GPU: without one they fail here instead of skipping.
TEST(CudaKernels, DeviceIsPresent) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  ASSERT_GT(count, 0);
}

struct WeightCase {
  TensorType type;
  int64_t rows, cols;
};

class CudaWeightFormats : public ::testing::TestWithParam<WeightCase> {};

// Quantizes random weights with the reference quantizer, then checks the GPU
// dequantizer and the GEMV (1..8 tokens, overwrite and accumulate) against
// the reference dequantization multiplied in double precision.
TEST_P(CudaWeightFormats, DequantizeAndGemvMatchReference) {
  const auto [type, rows, cols] = GetParam();
  const std::vector<float> w_src = random_floats(rows * cols, 7, 0.05f);
  const size_t row_bytes = quant::row_size(type, cols);
  ASSERT_GT(row_bytes, 0u);
  std::vector<uint8_t> packed(row_bytes * rows);
  std::vector<float> w_ref(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_TRUE(quant::quantize_row(type, w_src.data() + r * cols, packed.data() + r * row_bytes, cols).ok());
    ASSERT_TRUE(quant::dequantize_row(type, packed.data() + r * row_bytes, w_ref.data() + r * cols, cols).ok());
  }
  DeviceBuffer<uint8_t> dw(packed);

  DeviceBuffer<__half> dq(rows * cols);
  ASSERT_CUDA(dequantize_to_f16(type, dw.ptr, rows, cols, dq.ptr, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const std::vector<__half> got_w = dq.download();
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float g = __half2float(got_w[i]);
    ASSERT_NEAR(g, w_ref[i], std::abs(w_ref[i]) * 1e-3f + 1e-6f) << "element " << i;
  }

  for (int n : {1, 2, 3, 5, 8}) {
    SCOPED_TRACE("tokens " + std::to_string(n));
    const std::vector<float> x = random_floats(n * cols, 100 + n);
    const std::vector<float> y0 = random_floats(n * rows, 200 + n);
    DeviceBuffer<float> dx(x), dy(y0);
    for (bool accumulate : {false, true}) {
      ASSERT_EQ(cudaMemcpy(dy.ptr, y0.data(), y0.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_CUDA(gemv(type, dw.ptr, rows, cols, dx.ptr, n, dy.ptr, accumulate, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      expect_gemv_result(dy.download(), y0, w_ref, x, rows, cols, n, accumulate);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, CudaWeightFormats,
    ::testing::Values(WeightCase{TensorType::kF32, 37, 264}, WeightCase{TensorType::kF16, 37, 264},
                      WeightCase{TensorType::kBF16, 37, 264}, WeightCase{TensorType::kQ8_0, 45, 384},
                      WeightCase{TensorType::kQ4_0, 45, 384}, WeightCase{TensorType::kQ5_0, 45, 384},
                      WeightCase{TensorType::kQ4_K, 19, 768}, WeightCase{TensorType::kQ6_K, 19, 768},
                      WeightCase{TensorType::kBF16, 21, 8704}),  // wide rows: fewer rows per block
    [](const auto& info) {
      return std::string(tensor_type_name(info.param.type)) + (info.param.cols > 8192 ? "_wide" : "");
    });

// 8-bit activations: the GPU quantizer against the scalar definition (block
// scale amax / 127, quants rounded to nearest even: identical), then the
// integer GEMV against the reference weights times the dequantized
// activations in double precision.
class CudaInt8Gemv : public ::testing::TestWithParam<TensorType> {};

void check_int8_gemv(TensorType type, int64_t cols);

// 17 super-blocks: 136 units per row, more than one block's threads; 33:
// rows wide enough for the single-token kernel with fewer rows per block.
TEST_P(CudaInt8Gemv, MatchesReferenceOnQuantizedActivations) {
  for (int64_t cols : {17 * 256, 33 * 256}) {
    SCOPED_TRACE("columns " + std::to_string(cols));
    check_int8_gemv(GetParam(), cols);
    if (HasFatalFailure()) return;
  }
}

void check_int8_gemv(TensorType type, int64_t cols) {
  const int64_t rows = 45;
  const bool gguf_int8 = int8_gemv_supported(type), split = split_layout_supported(type);
  ASSERT_TRUE(gguf_int8 || split);
  const std::vector<float> w_src = random_floats(rows * cols, 9, 0.05f);
  const size_t row_bytes = quant::row_size(type, cols);
  std::vector<uint8_t> packed(row_bytes * rows);
  std::vector<float> w_ref(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_TRUE(quant::quantize_row(type, w_src.data() + r * cols, packed.data() + r * row_bytes, cols).ok());
    ASSERT_TRUE(quant::dequantize_row(type, packed.data() + r * row_bytes, w_ref.data() + r * cols, cols).ok());
  }
  DeviceBuffer<uint8_t> dw(packed);
  // The device layout: repacked on the host, dequantized and multiplied on the device.
  std::vector<uint8_t> split_rows(split ? split_row_bytes(type, cols) * rows : 1);
  if (split) {
    ASSERT_TRUE(repack_split_rows(type, packed.data(), rows, cols, split_rows.data()));
    DeviceBuffer<uint8_t> ds(split_rows);
    DeviceBuffer<__half> dq(rows * cols);
    ASSERT_CUDA(dequantize_split_to_f16(type, ds.ptr, rows, cols, dq.ptr, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<__half> got_w = dq.download();
    for (int64_t i = 0; i < rows * cols; ++i)
      ASSERT_NEAR(__half2float(got_w[i]), w_ref[i], std::abs(w_ref[i]) * 1e-3f + 1e-6f) << "split element " << i;
  }
  DeviceBuffer<uint8_t> dsplit(split_rows);
  for (int n : {1, 3, 8}) {
    SCOPED_TRACE("tokens " + std::to_string(n));
    std::vector<float> x = random_floats(n * cols, 300 + n);
    for (int64_t k = 0; k < 32; ++k) x[k] = 0.0f;  // an all-zero block
    DeviceBuffer<float> dx(x);
    DeviceBuffer<int8_t> dq(n * cols);
    DeviceBuffer<float> dd(n * cols / 32);
    ASSERT_CUDA(quantize_activations_q8(dx.ptr, n, cols, dq.ptr, dd.ptr, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<int8_t> q = dq.download();
    const std::vector<float> d = dd.download();
    std::vector<float> x_deq(x.size());
    for (int64_t b = 0; b < n * cols / 32; ++b) {
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      ASSERT_EQ(d[b], amax / 127.0f) << "block " << b;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int i = 0; i < 32; ++i) {
        ASSERT_EQ(q[b * 32 + i], quant::nearest_int(x[b * 32 + i] * inv)) << "block " << b << " value " << i;
        x_deq[b * 32 + i] = d[b] * q[b * 32 + i];
      }
    }
    const std::vector<float> y0 = random_floats(n * rows, 400 + n);
    DeviceBuffer<float> dy(y0);
    for (int variant = 0; variant < 4; ++variant) {
      const bool accumulate = variant % 2 == 1, use_split = variant >= 2;
      if (use_split ? !split : !gguf_int8) continue;
      SCOPED_TRACE(use_split ? "split layout" : "GGUF layout");
      ASSERT_EQ(cudaMemcpy(dy.ptr, y0.data(), y0.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
      if (use_split)
        ASSERT_CUDA(gemv_int8_split(type, dsplit.ptr, rows, cols, dq.ptr, dd.ptr, n, dy.ptr, accumulate, nullptr));
      else
        ASSERT_CUDA(gemv_int8(type, dw.ptr, rows, cols, dq.ptr, dd.ptr, n, dy.ptr, accumulate, nullptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      expect_gemv_result(dy.download(), y0, w_ref, x_deq, rows, cols, n, accumulate);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaInt8Gemv,
                         ::testing::Values(TensorType::kQ4_0, TensorType::kQ5_0, TensorType::kQ8_0,
                                           TensorType::kQ4_K, TensorType::kQ6_K),
                         [](const auto& info) { return std::string(tensor_type_name(info.param)); });

TEST(CudaKernels, Int8GemvRejectsWhatItDoesNotRun) {
  EXPECT_FALSE(int8_gemv_supported(TensorType::kQ4_K));
  EXPECT_FALSE(int8_gemv_supported(TensorType::kF16));
  EXPECT_NE(gemv_int8(TensorType::kQ4_K, nullptr, 1, 256, nullptr, nullptr, 1, nullptr, false, nullptr), cudaSuccess);
  EXPECT_NE(gemv_int8(TensorType::kQ8_0, nullptr, 1, 48, nullptr, nullptr, 1, nullptr, false, nullptr), cudaSuccess);
  EXPECT_NE(quantize_activations_q8(nullptr, 1, 48, nullptr, nullptr, nullptr), cudaSuccess);
  EXPECT_FALSE(split_layout_supported(TensorType::kQ5_0));
  EXPECT_EQ(split_row_bytes(TensorType::kQ4_0, 48), 0u);
  EXPECT_EQ(split_row_bytes(TensorType::kQ4_0, 4096), 4096u / 32 * 18);
  EXPECT_EQ(split_row_bytes(TensorType::kQ8_0, 32), 48u) << "34 bytes padded to 16";
  EXPECT_EQ(split_row_bytes(TensorType::kQ4_K, 512), 304u) << "2 x 148 bytes padded to 16";
  EXPECT_EQ(split_row_bytes(TensorType::kQ6_K, 256), 224u) << "210 bytes padded to 16";
  EXPECT_EQ(split_row_bytes(TensorType::kQ6_K, 288), 0u);
  EXPECT_FALSE(split_layout_supported(TensorType::kF16));
  EXPECT_NE(gemv_int8_split(TensorType::kQ4_K, nullptr, 1, 288, nullptr, nullptr, 1, nullptr, false, nullptr), cudaSuccess);
  EXPECT_NE(gemv_int8_split(TensorType::kQ5_0, nullptr, 1, 64, nullptr, nullptr, 1, nullptr, false, nullptr), cudaSuccess);
}

TEST(CudaKernels, UnsupportedTypeIsAnErrorNotACrash) {
  EXPECT_FALSE(weight_type_supported(TensorType::kQ2_K));
  EXPECT_NE(gemv(TensorType::kQ2_K, nullptr, 1, 256, nullptr, 1, nullptr, false, nullptr), cudaSuccess);
  EXPECT_NE(gemv(TensorType::kQ4_0, nullptr, 1, 32, nullptr, kGemvMaxRows + 1, nullptr, false, nullptr), cudaSuccess);
}

TEST(CudaKernels, RmsNormWithRowGather) {
  const int rows = 5, n = 384;
  const std::vector<float> x = random_floats(rows * n, 1, 3.0f), w = random_floats(n, 2);
  const std::vector<int32_t> pick = {4, 1};
  DeviceBuffer<float> dx(x), dw(w), out(rows * n);
  DeviceBuffer<int32_t> dpick(pick);
  for (bool gather : {false, true}) {
    const int n_rows = gather ? 2 : rows;
    ASSERT_CUDA(rmsnorm(dx.ptr, dw.ptr, gather ? dpick.ptr : nullptr, n_rows, n, 1e-5f, out.ptr, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const auto y = out.download();
    for (int r = 0; r < n_rows; ++r) {
      const int src = gather ? pick[r] : r;
      double ss = 0;
      for (int i = 0; i < n; ++i) ss += double(x[src * n + i]) * x[src * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (int i = 0; i < n; ++i) ASSERT_NEAR(y[r * n + i], x[src * n + i] * inv * w[i], 1e-4);
    }
  }
}

TEST(CudaKernels, SiluMul) {
  const int64_t n = 1000;
  std::vector<float> g = random_floats(n, 3, 4.0f);
  const std::vector<float> u = random_floats(n, 4);
  DeviceBuffer<float> dg(g), du(u);
  ASSERT_CUDA(silu_mul(dg.ptr, du.ptr, n, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const auto y = dg.download();
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-5);
}

TEST(CudaKernels, ActivationConversions) {
  const std::vector<float> x = random_floats(333, 5, 10.0f);
  DeviceBuffer<float> dx(x);
  DeviceBuffer<__half> h(x.size());
  DeviceBuffer<__nv_bfloat16> b(x.size());
  ASSERT_CUDA(convert_f32_to_f16(dx.ptr, h.ptr, x.size(), nullptr));
  ASSERT_CUDA(convert_f32_to_bf16(dx.ptr, b.ptr, x.size(), nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const auto hv = h.download();
  const auto bv = b.download();
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(__half2float(hv[i]), f16_to_f32(f32_to_f16(x[i])));
    ASSERT_EQ(__bfloat162float(bv[i]), bf16_to_f32(f32_to_bf16(x[i])));
  }
}

// Greedy sampling on the device against the host's rule: the largest value,
// the lowest index among equals, NaNs never chosen (a row of NaNs gives 0).
TEST(CudaArgmax, RowsMatchTheHostRule) {
  const int64_t n = 32003;  // not a multiple of the block
  std::vector<float> x = random_floats(6 * n, 71);
  x[0 * n + 5] = 50.0f, x[0 * n + 9000] = 50.0f;  // tie: 5
  x[1 * n + 7] = NAN, x[1 * n + n - 1] = 60.0f;   // NaN ignored, last index wins
  for (int64_t i = 0; i < n; ++i) x[2 * n + i] = -INFINITY;  // all -inf: the first
  for (int64_t i = 0; i < n; ++i) x[3 * n + i] = NAN;        // all NaN: 0
  x[4 * n + 31999] = 1e30f;
  std::vector<int32_t> want(6);
  for (int r = 0; r < 6; ++r) {
    int32_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[r * n + i];
      if (!std::isnan(v) && (best < 0 || v > x[r * n + best])) best = int32_t(i);
    }
    want[r] = best < 0 ? 0 : best;
  }
  EXPECT_EQ(want[0], 5);
  EXPECT_EQ(want[1], n - 1);
  EXPECT_EQ(want[2], 0);
  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> out(6);
  ASSERT_CUDA(argmax_rows(dx.ptr, 6, n, out.ptr, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  EXPECT_EQ(out.download(), want);
  EXPECT_NE(argmax_rows(dx.ptr, 1, 0, out.ptr, nullptr), cudaSuccess);
}

// A small paged cache: 2 sequences with shuffled block tables.
struct PagedSetup {
  int n_head = 8, n_kv = 2, hd = 64, bt = 16, n_blocks = 12, n_rot = 64;
  std::vector<int32_t> tables = {7, 2, 9, 0, 11, 4, 1, 3};  // seq 0: first 4, seq 1: last 4
  int table_of(int seq) const { return seq * 4; }
};

class CudaRope : public ::testing::TestWithParam<bool> {};

// Bias + RoPE on q and k, k/v stored into their cache slots, checked against
// the pairing rules of src/model/blocks.cpp.
TEST_P(CudaRope, BiasRotationAndCacheStore) {
  const bool neox = GetParam();
  PagedSetup s;
  s.n_rot = 48;  // partial rotation: the last 16 dimensions pass through
  const int n = 3;
  const std::vector<int32_t> pos = {5, 17, 40}, offs = {0, 4, 0};
  const int half = s.n_rot / 2;
  auto q = random_floats(n * s.n_head * s.hd, 10), k = random_floats(n * s.n_kv * s.hd, 11),
       v = random_floats(n * s.n_kv * s.hd, 12);
  auto bq = random_floats(s.n_head * s.hd, 13), bk = random_floats(s.n_kv * s.hd, 14),
       bv = random_floats(s.n_kv * s.hd, 15);
  std::vector<float> cs(n * half), sn(n * half);
  for (int e = 0; e < n; ++e)
    for (int i = 0; i < half; ++i) {
      const double a = pos[e] * std::pow(10000.0, -2.0 * i / s.n_rot);
      cs[e * half + i] = float(std::cos(a)), sn[e * half + i] = float(std::sin(a));
    }
  const size_t cache = size_t(s.n_blocks) * s.n_kv * s.bt * s.hd;
  DeviceBuffer<float> dq(q), dk(k), dv(v), dbq(bq), dbk(bk), dbv(bv), dc(cs), ds(sn);
  DeviceBuffer<__half> keys(cache), values(cache);
  DeviceBuffer<int32_t> dpos(pos), doff(offs), dtab(s.tables);
  const KvLayout kv{keys.ptr, values.ptr, s.n_kv, s.hd, s.bt};
  ASSERT_CUDA(rope_and_store_kv(dq.ptr, dk.ptr, dv.ptr, dbq.ptr, dbk.ptr, dbv.ptr, dc.ptr, ds.ptr, n, s.n_head,
                                s.n_rot, neox, kv, {dpos.ptr, doff.ptr, dtab.ptr}, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  auto rotate = [&](std::vector<float> h, int e) {
    const float* c = cs.data() + e * half;
    const float* sv = sn.data() + e * half;
    std::vector<float> o = h;
    for (int i = 0; i < half; ++i) {
      const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      o[a] = h[a] * c[i] - h[b] * sv[i];
      o[b] = h[a] * sv[i] + h[b] * c[i];
    }
    return o;
  };
  const auto gq = dq.download();
  const auto gk = keys.download(), gv = values.download();
  for (int e = 0; e < n; ++e) {
    for (int h = 0; h < s.n_head; ++h) {
      std::vector<float> head(s.hd);
      for (int d = 0; d < s.hd; ++d) head[d] = q[(e * s.n_head + h) * s.hd + d] + bq[h * s.hd + d];
      const auto want = rotate(head, e);
      for (int d = 0; d < s.hd; ++d) ASSERT_NEAR(gq[(e * s.n_head + h) * s.hd + d], want[d], 1e-5);
    }
    const int block = s.tables[offs[e] + pos[e] / s.bt];
    for (int h = 0; h < s.n_kv; ++h) {
      std::vector<float> kh(s.hd);
      for (int d = 0; d < s.hd; ++d) kh[d] = k[(e * s.n_kv + h) * s.hd + d] + bk[h * s.hd + d];
      const auto want = rotate(kh, e);
      const size_t slot = ((size_t(block) * s.n_kv + h) * s.bt + pos[e] % s.bt) * s.hd;
      for (int d = 0; d < s.hd; ++d) {
        ASSERT_NEAR(__half2float(gk[slot + d]), want[d], std::abs(want[d]) * 1e-3 + 1e-4);
        const float vv = v[(e * s.n_kv + h) * s.hd + d] + bv[h * s.hd + d];
        ASSERT_NEAR(__half2float(gv[slot + d]), vv, std::abs(vv) * 1e-3 + 1e-4);
      }
    }
  }
}

// The large-batch path's rows: q, k, v side by side per token ([q | k | v]),
// q written to its own packed buffer. Same bits as the packed, in-place call.
TEST_P(CudaRope, StackedRowsEqualPackedRows) {
  const bool neox = GetParam();
  PagedSetup s;
  const int n = 3, qd = s.n_head * s.hd, kvd = s.n_kv * s.hd, width = qd + 2 * kvd;
  const std::vector<int32_t> pos = {5, 17, 40}, offs = {0, 4, 0};
  const int half = s.n_rot / 2;
  const auto rows = random_floats(n * width, 16);
  std::vector<float> q(n * qd), k(n * kvd), v(n * kvd), cs(n * half), sn(n * half);
  for (int e = 0; e < n; ++e) {
    std::copy_n(rows.begin() + e * width, qd, q.begin() + e * qd);
    std::copy_n(rows.begin() + e * width + qd, kvd, k.begin() + e * kvd);
    std::copy_n(rows.begin() + e * width + qd + kvd, kvd, v.begin() + e * kvd);
    for (int i = 0; i < half; ++i) {
      const double a = pos[e] * std::pow(10000.0, -2.0 * i / s.n_rot);
      cs[e * half + i] = float(std::cos(a)), sn[e * half + i] = float(std::sin(a));
    }
  }
  const auto bq = random_floats(qd, 17), bk = random_floats(kvd, 18), bv = random_floats(kvd, 19);
  const size_t cache = size_t(s.n_blocks) * s.n_kv * s.bt * s.hd;
  DeviceBuffer<float> dq(q), dk(k), dv(v), drows(rows), qout(n * qd), dbq(bq), dbk(bk), dbv(bv), dc(cs), ds(sn);
  DeviceBuffer<__half> keys_a(cache), values_a(cache), keys_b(cache), values_b(cache);
  DeviceBuffer<int32_t> dpos(pos), doff(offs), dtab(s.tables);
  const BatchDevice batch{dpos.ptr, doff.ptr, dtab.ptr};
  ASSERT_CUDA(cudaMemset(keys_a.ptr, 0, cache * 2));
  ASSERT_CUDA(cudaMemset(values_a.ptr, 0, cache * 2));
  ASSERT_CUDA(cudaMemset(keys_b.ptr, 0, cache * 2));
  ASSERT_CUDA(cudaMemset(values_b.ptr, 0, cache * 2));
  ASSERT_CUDA(rope_and_store_kv(dq.ptr, dk.ptr, dv.ptr, dbq.ptr, dbk.ptr, dbv.ptr, dc.ptr, ds.ptr, n, s.n_head,
                                s.n_rot, neox, {keys_a.ptr, values_a.ptr, s.n_kv, s.hd, s.bt}, batch, nullptr));
  ASSERT_CUDA(rope_and_store_kv(drows.ptr, drows.ptr + qd, drows.ptr + qd + kvd, dbq.ptr, dbk.ptr, dbv.ptr, dc.ptr,
                                ds.ptr, n, s.n_head, s.n_rot, neox, {keys_b.ptr, values_b.ptr, s.n_kv, s.hd, s.bt},
                                batch, nullptr, qout.ptr, width, width));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const auto want_q = dq.download(), got_q = qout.download();
  for (size_t i = 0; i < want_q.size(); ++i) ASSERT_EQ(got_q[i], want_q[i]) << "q " << i;
  const auto ka = keys_a.download(), kb = keys_b.download(), va = values_a.download(), vb = values_b.download();
  for (size_t i = 0; i < cache; ++i) {
    ASSERT_EQ(__half_as_ushort(ka[i]), __half_as_ushort(kb[i])) << "key " << i;
    ASSERT_EQ(__half_as_ushort(va[i]), __half_as_ushort(vb[i])) << "value " << i;
  }
  EXPECT_EQ(drows.download(), rows) << "the stacked input is only read";
}

// One token: the attention kernel that rotates and stores the key and value
// itself equals rope_and_store_kv followed by the plain attention kernel, for
// whole and split sequences, GQA, biases, head sizes 64 and 128.
TEST_P(CudaRope, AttentionWithRopeEqualsRopeThenAttention) {
  const bool neox = GetParam();
  const int n_kv = 2, group = 4, n_head = n_kv * group, bt = 16, n_blocks = 12;
  for (const int hd : {64, 128})
    for (const int pos : {0, 70, 150}) {
      SCOPED_TRACE("head size " + std::to_string(hd) + ", position " + std::to_string(pos));
      const int half = hd / 2, qd = n_head * hd, kvd = n_kv * hd;
      std::vector<int32_t> table(n_blocks);
      for (int i = 0; i < n_blocks; ++i) table[i] = (i * 5 + 2) % n_blocks;
      const size_t cache = size_t(n_blocks) * n_kv * bt * hd;
      std::vector<__half> keys(cache), values(cache);
      const auto kf = random_floats(cache, 31), vf = random_floats(cache, 32);
      for (size_t i = 0; i < cache; ++i) keys[i] = __float2half_rn(kf[i]), values[i] = __float2half_rn(vf[i]);
      std::vector<float> cs(half), sn(half);
      for (int i = 0; i < half; ++i) {
        const double a = pos * std::pow(10000.0, -2.0 * i / hd);
        cs[i] = float(std::cos(a)), sn[i] = float(std::sin(a));
      }
      const DeviceBuffer<float> dq(random_floats(qd, 33)), dk(random_floats(kvd, 34)), dv(random_floats(kvd, 35)),
          dbq(random_floats(qd, 36, 0.1f)), dbk(random_floats(kvd, 37, 0.1f)), dbv(random_floats(kvd, 38, 0.1f)),
          dc(cs), ds(sn);
      const DeviceBuffer<int32_t> dpos(std::vector<int32_t>{pos}), doff(std::vector<int32_t>{0}), dtab(table);
      const int splits = (pos + 1 + kAttnSplitTokens - 1) / kAttnSplitTokens;
      const float scale = 1.0f / std::sqrt(float(hd));
      DeviceBuffer<__half> ka(keys), va(values), kb(keys), vb(values);
      DeviceBuffer<float> qa(qd), out_a(qd), out_b(qd), partial(n_head * splits * (hd + 2));
      const BatchDevice batch{dpos.ptr, doff.ptr, dtab.ptr};
      ASSERT_CUDA(rope_and_store_kv(dq.ptr, dk.ptr, dv.ptr, dbq.ptr, dbk.ptr, dbv.ptr, dc.ptr, ds.ptr, 1, n_head, hd,
                                    neox, {ka.ptr, va.ptr, n_kv, hd, bt}, batch, nullptr, qa.ptr));
      ASSERT_CUDA(attention(qa.ptr, {ka.ptr, va.ptr, n_kv, hd, bt}, batch, 1, n_head, scale, splits, partial.ptr,
                            out_a.ptr, nullptr));
      // Without counters a split sequence takes the per-entry kernel and the
      // merge launch; with them the one-token kernel merges in its last block.
      const RopeIn rope{dk.ptr, dv.ptr, dbq.ptr, dbk.ptr, dbv.ptr, dc.ptr, ds.ptr, hd, neox};
      DeviceBuffer<unsigned> counters(std::vector<unsigned>(n_head, 0));
      ASSERT_CUDA(attention(dq.ptr, {kb.ptr, vb.ptr, n_kv, hd, bt}, batch, 1, n_head, scale, splits, partial.ptr,
                            out_b.ptr, nullptr, {}, rope, counters.ptr));
      ASSERT_CUDA(cudaDeviceSynchronize());
      const auto a = out_a.download(), b = out_b.download();
      for (int i = 0; i < qd; ++i) ASSERT_NEAR(b[i], a[i], 1e-5f + 1e-5f * std::abs(a[i])) << "output " << i;
      EXPECT_EQ(counters.download(), std::vector<unsigned>(n_head, 0)) << "counters left zeroed";
      const auto kah = ka.download(), kbh = kb.download(), vah = va.download(), vbh = vb.download();
      for (size_t i = 0; i < cache; ++i) {
        ASSERT_NEAR(__half2float(kbh[i]), __half2float(kah[i]), 1e-3f * (1.0f + std::abs(__half2float(kah[i]))))
            << "key " << i;
        ASSERT_EQ(__half_as_ushort(vbh[i]), __half_as_ushort(vah[i])) << "value " << i;
      }
      // Two entries, or a partial rotation, are refused.
      EXPECT_NE(attention(dq.ptr, {kb.ptr, vb.ptr, n_kv, hd, bt}, batch, 2, n_head, scale, splits, partial.ptr,
                          out_b.ptr, nullptr, {}, rope),
                cudaSuccess);
      RopeIn partial_rope = rope;
      partial_rope.n_rot = hd / 2;
      EXPECT_NE(attention(dq.ptr, {kb.ptr, vb.ptr, n_kv, hd, bt}, batch, 1, n_head, scale, splits, partial.ptr,
                          out_b.ptr, nullptr, {}, partial_rope),
                cudaSuccess);
    }
}

INSTANTIATE_TEST_SUITE_P(Pairings, CudaRope, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "NeoX" : "Interleaved"; });

// One query head's attention over positions [0, len) of a paged fp16 cache
// (kv head kvh, block table `table`), in double precision.
std::vector<double> reference_attention(const float* q, const std::vector<__half>& keys,
                                        const std::vector<__half>& values, const int32_t* table, int len, int kvh,
                                        int n_kv, int hd, int bt, float scale) {
  auto row = [&](int t) { return ((size_t(table[t / bt]) * n_kv + kvh) * bt + t % bt) * hd; };
  std::vector<double> sc(len), out(hd, 0.0);
  double mx = -1e300;
  for (int t = 0; t < len; ++t) {
    double s = 0;
    for (int d = 0; d < hd; ++d) s += double(q[d]) * __half2float(keys[row(t) + d]);
    sc[t] = s * scale;
    mx = std::max(mx, sc[t]);
  }
  double sum = 0;
  for (double& s : sc) sum += (s = std::exp(s - mx));
  for (int t = 0; t < len; ++t)
    for (int d = 0; d < hd; ++d) out[d] += sc[t] * __half2float(values[row(t) + d]);
  for (double& a : out) a /= sum;
  return out;
}

struct AttnCase {
  // 0: one block per entry, 1: split positions, 2: tiles on tensor cores, 3: one-token entries on tensor cores
  int hd, group, splits_mode;
};
class CudaAttention : public ::testing::TestWithParam<AttnCase> {};

// Paged causal attention against a double-precision softmax over the same
// fp16 cache contents; entries of two sequences at different positions. The
// tile mode gets a prefill-like batch: a 70-entry run of one sequence (more
// than one tile, not starting at 0), lone entries (one at the last position
// of a key tile), a 41-entry run of the other from position 0 (tiles of
// 64 / group entries). The decode mode gets one-token entries whose last
// run of 16 keys is full, has one key, or is the first.
TEST_P(CudaAttention, MatchesReferenceSoftmax) {
  const auto [hd, group, split_mode] = GetParam();
  const int n_kv = 2, n_head = n_kv * group, bt = 16, n_blocks = 40, per_seq = 20;
  std::vector<int32_t> tables(2 * per_seq);
  for (int i = 0; i < 2 * per_seq; ++i) tables[i] = (i * 7 + 3) % n_blocks;  // a permutation of the blocks
  std::vector<int32_t> pos = {0, 150, 300, 63}, offs = {0, 0, per_seq, per_seq}, seq = {0, 0, 1, 1};
  if (split_mode == 2) {
    pos.clear(), offs.clear(), seq.clear();
    for (int p = 100; p < 170; ++p) pos.push_back(p), offs.push_back(0), seq.push_back(0);
    pos.push_back(300), offs.push_back(per_seq), seq.push_back(1);
    pos.push_back(5), offs.push_back(0), seq.push_back(2);  // another sequence sharing seq 0's table
    pos.push_back(127), offs.push_back(per_seq), seq.push_back(3);  // a lone entry ending a whole key tile
    for (int p = 0; p <= 40; ++p) pos.push_back(p), offs.push_back(per_seq), seq.push_back(1);
  }
  if (split_mode == 3) {
    pos = {0, 15, 16, 63, 64, 150, 300, 127, 1, 200, 31, 79};
    offs.clear();
    for (size_t i = 0; i < pos.size(); ++i) offs.push_back(i % 2 ? per_seq : 0);
  }
  const int n = static_cast<int>(pos.size());
  const size_t cache = size_t(n_blocks) * n_kv * bt * hd;
  std::vector<__half> keys(cache), values(cache);
  const auto kf = random_floats(cache, 21), vf = random_floats(cache, 22);
  for (size_t i = 0; i < cache; ++i) keys[i] = __float2half_rn(kf[i]), values[i] = __float2half_rn(vf[i]);
  const auto q = random_floats(n * n_head * hd, 23);
  int max_len = 0;
  for (int p : pos) max_len = std::max(max_len, p + 1);
  const int splits = split_mode == 1 || split_mode == 2 ? (max_len + kAttnSplitTokens - 1) / kAttnSplitTokens : 1;
  DeviceBuffer<__half> dk(keys), dvv(values);
  DeviceBuffer<float> dq(q), out(n * n_head * hd), partial(n * n_head * splits * (hd + 2));
  DeviceBuffer<int32_t> dpos(pos), doff(offs), dtab(tables);
  const float scale = 1.0f / std::sqrt(float(hd));
  double tolerance = 2e-4;
  if (split_mode >= 2) {
    const KvLayout kvl{dk.ptr, dvv.ptr, n_kv, hd, bt};
    const BatchDevice batch{dpos.ptr, doff.ptr, dtab.ptr};
    std::vector<int32_t> tiles(2 * n);
    int n_tiles = 0;
    if (split_mode == 2) {
      ASSERT_TRUE(attention_prefill_supported(hd, group));
      n_tiles = attention_prefill_tiles(seq.data(), n, group, tiles.data());
      const int per_tile = 64 / group;
      ASSERT_EQ(n_tiles, (70 + per_tile - 1) / per_tile + 3 + (41 + per_tile - 1) / per_tile);
    } else {
      ASSERT_TRUE(attention_decode_supported(hd, group));
    }
    DeviceBuffer<int32_t> dtiles(tiles);
    auto run = [&](float* o32, Act16Out o16) {
      return split_mode == 2 ? attention_prefill(dq.ptr, kvl, batch, dtiles.ptr, n_tiles, n_head, scale, o32, nullptr, o16)
                             : attention_decode(dq.ptr, kvl, batch, n, n_head, scale, o32, nullptr, o16);
    };
    ASSERT_CUDA(run(out.ptr, {}));
    // The 16-bit output alone (the o GEMM's input): the fp32 output rounded.
    const int64_t n_vals = int64_t(n) * n_head * hd;
    DeviceBuffer<__nv_bfloat16> o_bf16(n_vals);
    DeviceBuffer<__half> o_f16(n_vals);
    ASSERT_CUDA(run(nullptr, {o_bf16.ptr, true}));
    ASSERT_CUDA(run(nullptr, {o_f16.ptr, false}));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const auto f32 = out.download();
    const auto b16 = o_bf16.download();
    const auto h16 = o_f16.download();
    int mismatched = 0;
    for (int64_t i = 0; i < n_vals; ++i) {
      const __nv_bfloat16 rb = __float2bfloat16_rn(f32[i]);
      const __half rh = __float2half_rn(f32[i]);
      mismatched += std::memcmp(&rb, &b16[i], 2) != 0 || std::memcmp(&rh, &h16[i], 2) != 0;
    }
    EXPECT_EQ(mismatched, 0);
    tolerance = 2e-3;  // fp16 queries and probabilities
  } else {
    // With the 8-bit copy of the output that the next GEMV reads: the same
    // quants as quantizing the output afterwards.
    const int64_t n_vals = int64_t(n) * n_head * hd;
    DeviceBuffer<int8_t> fq(n_vals), rq(n_vals);
    DeviceBuffer<float> fd(n_vals / 32), rd(n_vals / 32);
    ASSERT_CUDA(attention(dq.ptr, {dk.ptr, dvv.ptr, n_kv, hd, bt}, {dpos.ptr, doff.ptr, dtab.ptr}, n, n_head, scale,
                          splits, partial.ptr, out.ptr, nullptr, {fq.ptr, fd.ptr}));
    ASSERT_CUDA(quantize_activations_q8(out.ptr, n, n_head * hd, rq.ptr, rd.ptr, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    ASSERT_EQ(fq.download(), rq.download());
    ASSERT_EQ(fd.download(), rd.download());
  }
  ASSERT_CUDA(cudaDeviceSynchronize());
  const auto got = out.download();
  for (int e = 0; e < n; ++e)
    for (int h = 0; h < n_head; ++h) {
      const std::vector<double> ref = reference_attention(q.data() + (e * n_head + h) * hd, keys, values,
                                                          tables.data() + offs[e], pos[e] + 1, h / group, n_kv, hd,
                                                          bt, scale);
      for (int d = 0; d < hd; ++d)
        ASSERT_NEAR(got[(e * n_head + h) * hd + d], ref[d], tolerance) << "entry " << e << " head " << h << " dim " << d;
    }
}

std::string attn_case_name(const AttnCase& c) {
  const char* modes[] = {"_whole", "_split", "_tiles", "_decode"};
  const char* mode = modes[c.splits_mode];
  return "hd" + std::to_string(c.hd) + "_group" + std::to_string(c.group) + mode;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttnCase{64, 3, 0}, AttnCase{64, 3, 1}, AttnCase{128, 4, 0},
                                           AttnCase{128, 4, 1}, AttnCase{32, 1, 1}, AttnCase{256, 8, 0},
                                           AttnCase{128, 4, 2}, AttnCase{64, 3, 2}, AttnCase{64, 1, 2},
                                           AttnCase{128, 8, 2}, AttnCase{128, 4, 3}, AttnCase{64, 3, 3},
                                           AttnCase{64, 1, 3}, AttnCase{128, 8, 3}),
                         [](const auto& info) { return attn_case_name(info.param); });

// One token (single-stream decode): the kernel that reads earlier cache
// rows before its wait, whole and split (merged by the last block of each
// query head), against a double-precision softmax; the 8-bit copy of the output
// equals quantizing it afterwards; a second launch over the same counters
// gives the same output (they are left zeroed, as graph replays need).
TEST(CudaAttention, OneTokenMatchesReferenceSoftmax) {
  const int bt = 16, n_blocks = 80;
  for (const auto& [hd, group] : std::vector<std::pair<int, int>>{{32, 1}, {64, 3}, {128, 4}, {128, 8}})
    for (const int pos : {0, 1, 9, 63, 64, 65, 127, 200, 1000})
      for (const bool split : {false, true}) {
        SCOPED_TRACE("head size " + std::to_string(hd) + ", group " + std::to_string(group) + ", position " +
                     std::to_string(pos) + (split ? ", split" : ", whole"));
        const int n_kv = 2, n_head = n_kv * group, len = pos + 1;
        std::vector<int32_t> table(n_blocks);
        for (int i = 0; i < n_blocks; ++i) table[i] = (i * 7 + 3) % n_blocks;
        const size_t cache = size_t(n_blocks) * n_kv * bt * hd;
        std::vector<__half> keys(cache), values(cache);
        const auto kf = random_floats(cache, 41), vf = random_floats(cache, 42);
        for (size_t i = 0; i < cache; ++i) keys[i] = __float2half_rn(kf[i]), values[i] = __float2half_rn(vf[i]);
        const auto q = random_floats(n_head * hd, 43);
        const int splits = split ? (len + kAttnSplitTokens - 1) / kAttnSplitTokens : 1;
        DeviceBuffer<__half> dk(keys), dv(values);
        DeviceBuffer<float> dq(q), out(n_head * hd), again(n_head * hd), partial(n_head * splits * (hd + 2));
        DeviceBuffer<int32_t> dpos(std::vector<int32_t>{pos}), doff(std::vector<int32_t>{0}), dtab(table);
        DeviceBuffer<unsigned> counters(std::vector<unsigned>(n_head, 0));
        DeviceBuffer<int8_t> fq(n_head * hd), rq(n_head * hd);
        DeviceBuffer<float> fd(n_head * hd / 32), rd(n_head * hd / 32);
        const float scale = 1.0f / std::sqrt(float(hd));
        const KvLayout kvl{dk.ptr, dv.ptr, n_kv, hd, bt};
        const BatchDevice batch{dpos.ptr, doff.ptr, dtab.ptr};
        ASSERT_CUDA(attention(dq.ptr, kvl, batch, 1, n_head, scale, splits, partial.ptr, out.ptr, nullptr,
                              {fq.ptr, fd.ptr}, {}, counters.ptr));
        ASSERT_CUDA(attention(dq.ptr, kvl, batch, 1, n_head, scale, splits, partial.ptr, again.ptr, nullptr, {}, {},
                              counters.ptr));
        ASSERT_CUDA(quantize_activations_q8(out.ptr, 1, n_head * hd, rq.ptr, rd.ptr, nullptr));
        ASSERT_CUDA(cudaDeviceSynchronize());
        const auto got = out.download();
        ASSERT_EQ(again.download(), got);
        ASSERT_EQ(fq.download(), rq.download());
        ASSERT_EQ(fd.download(), rd.download());
        EXPECT_EQ(counters.download(), std::vector<unsigned>(n_head, 0));
        for (int h = 0; h < n_head; ++h) {
          const std::vector<double> ref =
              reference_attention(q.data() + h * hd, keys, values, table.data(), len, h / group, n_kv, hd, bt, scale);
          for (int d = 0; d < hd; ++d) ASSERT_NEAR(got[h * hd + d], ref[d], 2e-4) << "head " << h << " dim " << d;
        }
      }
}

TEST(CudaKernels, CopyKvBlock) {
  const int n_kv = 2, hd = 64, bt = 16, n_blocks = 4;
  const size_t cache = size_t(n_blocks) * n_kv * bt * hd, per_block = size_t(n_kv) * bt * hd;
  std::vector<__half> k(cache), v(cache);
  const auto f = random_floats(2 * cache, 31);
  for (size_t i = 0; i < cache; ++i) k[i] = __float2half_rn(f[i]), v[i] = __float2half_rn(f[cache + i]);
  DeviceBuffer<__half> dk(k), dv(v);
  ASSERT_CUDA(copy_kv_block({dk.ptr, dv.ptr, n_kv, hd, bt}, 1, 3, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const auto gk = dk.download(), gv = dv.download();
  for (size_t i = 0; i < per_block; ++i) {
    ASSERT_EQ(__half2float(gk[3 * per_block + i]), __half2float(k[per_block + i]));
    ASSERT_EQ(__half2float(gv[3 * per_block + i]), __half2float(v[per_block + i]));
    ASSERT_EQ(__half2float(gk[i]), __half2float(k[i]));  // others untouched
  }
}

}  // namespace
}  // namespace frugal::cuda
