// Helpers of the GPU tests: device buffers freed at scope exit, random inputs.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"
#include "quant/reference.h"

namespace frugal::cuda {

#define ASSERT_CUDA(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

// Device copy of a host vector, freed at scope exit.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<size_t>(1, count) * sizeof(T)), cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr(std::exchange(o.ptr, nullptr)), n(o.n) {}
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// y against y0 (when accumulating) + W x for n tokens, in double precision,
// to 1e-5 of the sum of the products' magnitudes.
inline void expect_gemv_result(const std::vector<float>& y, const std::vector<float>& y0, const std::vector<float>& w,
                               const std::vector<float>& x, int64_t rows, int64_t cols, int n, bool accumulate) {
  for (int t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double ref = accumulate ? y0[t * rows + r] : 0.0, mag = 0;
      for (int64_t k = 0; k < cols; ++k) {
        ref += double(w[r * cols + k]) * x[t * cols + k];
        mag += std::abs(double(w[r * cols + k]) * x[t * cols + k]);
      }
      ASSERT_NEAR(y[t * rows + r], ref, 1e-5 * mag + 1e-5) << "token " << t << " row " << r;
    }
}

// Random weights of `type` in the layout their decode GEMV reads: the split
// device layout, or the GGUF rows; `reference`, when given, gets them
// dequantized by the scalar reference.
inline std::vector<uint8_t> weight_rows(TensorType type, bool split, int64_t rows, int64_t cols, uint32_t seed,
                                        std::vector<float>* reference = nullptr) {
  const std::vector<float> src = random_floats(rows * cols, seed, 0.05f);
  const size_t row_bytes = quant::row_size(type, cols);
  std::vector<uint8_t> packed(row_bytes * rows);
  if (reference) reference->resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(quant::quantize_row(type, src.data() + r * cols, packed.data() + r * row_bytes, cols).ok());
    if (reference) {
      EXPECT_TRUE(quant::dequantize_row(type, packed.data() + r * row_bytes, reference->data() + r * cols, cols).ok());
    }
  }
  if (!split) return packed;
  std::vector<uint8_t> out(split_row_bytes(type, cols) * rows);
  EXPECT_TRUE(repack_split_rows(type, packed.data(), rows, cols, out.data()));
  return out;
}

template <class T>
inline void expect_same_bits(const std::vector<T>& a, const std::vector<T>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(T)), 0) << what << " differs at " << i;
}

}  // namespace frugal::cuda
