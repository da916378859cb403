// Times the single-token decode GEMVs (cuda::gemv_group) on the matrices of
// a Llama-3-8B layer and its output head, for each weight type, against the
// memory roofline. Weights rotate over copies several times the L2 so every
// launch streams from HBM; launches are replayed from a CUDA graph, with
// programmatic launch as the backend uses it, so launch gaps are as in a
// decode step. Rows per block of the wide (FFN down) launches follow
// FRUGAL_CUDA_WIDE_ROWS: run it once per setting.
//
//   frugal_gemv_bench [--membw-gbps 4300] [--reps 20] [TYPE...]
//   TYPE: bf16 q8_0 q4_0 q4_k q6_k (default: all)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"

namespace {

using frugal::TensorType;
namespace cuda = frugal::cuda;

struct Shape {
  const char* name;
  std::vector<int64_t> rows;  // matrices of one grouped launch
  int64_t cols;
};

struct Type {
  const char* name;
  TensorType type;
  bool split;
};

bool check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
  return false;
}

uint64_t row_bytes(const Type& t, int64_t cols) {
  return t.split ? cuda::split_row_bytes(t.type, cols) : static_cast<uint64_t>(cols) * 2;
}

// Fills n bytes of device memory with random bytes (fp16 / bf16 values
// included: NaN or not, the GEMV's speed is the same).
bool fill_random(void* dst, uint64_t n, std::mt19937_64& rng) {
  std::vector<uint64_t> host(std::min<uint64_t>(n, 64ull << 20) / 8 + 1);
  for (auto& v : host) v = rng();
  for (uint64_t off = 0; off < n;) {
    const uint64_t len = std::min<uint64_t>(n - off, host.size() * 8);
    if (!check(cudaMemcpy(static_cast<char*>(dst) + off, host.data(), len, cudaMemcpyHostToDevice), "copy"))
      return false;
    off += len;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  double membw_gbps = 4300;
  int reps = 20;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--membw-gbps") == 0 && i + 1 < argc) membw_gbps = std::atof(argv[++i]);
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(3, std::atoi(argv[++i]));
    else names.push_back(argv[i]);
  }
  const std::vector<Type> all = {{"bf16", TensorType::kBF16, false},
                                 {"q8_0", TensorType::kQ8_0, true},
                                 {"q4_0", TensorType::kQ4_0, true},
                                 {"q4_k", TensorType::kQ4_K, true},
                                 {"q6_k", TensorType::kQ6_K, true}};
  const std::vector<Shape> shapes = {{"qkv", {4096, 1024, 1024}, 4096},
                                     {"o", {4096}, 4096},
                                     {"gate_up", {14336, 14336}, 4096},
                                     {"down", {4096}, 14336},
                                     {"head", {128256}, 4096}};
  cudaDeviceProp prop{};
  if (!check(cudaGetDeviceProperties(&prop, 0), "device")) return 1;
  cuda::set_programmatic_launch(prop.major >= 9);
  const char* wide = std::getenv("FRUGAL_CUDA_WIDE_ROWS");
  std::printf("# %s, wide rows a block: %s, roofline %.0f GB/s, median of %d graph replays\n", prop.name,
              wide ? wide : "default", membw_gbps, reps);
  std::printf("%-5s %-8s %10s %10s %8s\n", "type", "matrix", "us", "GB/s", "roofline");
  std::mt19937_64 rng(7);
  cudaStream_t stream;
  if (!check(cudaStreamCreate(&stream), "stream")) return 1;
  for (const Type& t : all) {
    if (!names.empty() && std::find(names.begin(), names.end(), t.name) == names.end()) continue;
    double layer_us = 0, layer_ideal_us = 0;
    for (const Shape& s : shapes) {
      uint64_t bytes = 0;
      for (int64_t r : s.rows) bytes += r * row_bytes(t, s.cols);
      const int copies = static_cast<int>(std::max<uint64_t>(2, (400ull << 20) / bytes + 1));
      void* w = nullptr;
      float *x = nullptr, *xd = nullptr, *y = nullptr;
      int8_t* xq = nullptr;
      int64_t total_rows = 0;
      for (int64_t r : s.rows) total_rows += r;
      if (!check(cudaMalloc(&w, bytes * copies), "weights") || !fill_random(w, bytes * copies, rng) ||
          !check(cudaMalloc(&x, s.cols * sizeof(float)), "x") || !check(cudaMalloc(&xq, s.cols), "xq") ||
          !check(cudaMalloc(&xd, s.cols / 32 * sizeof(float)), "xd") ||
          !check(cudaMalloc(&y, total_rows * sizeof(float)), "y"))
        return 1;
      std::vector<float> hx(s.cols), hd(s.cols / 32);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (auto& v : hx) v = normal(rng);
      for (auto& v : hd) v = 0.01f + 0.001f * normal(rng);
      std::vector<int8_t> hq(s.cols);
      for (auto& v : hq) v = static_cast<int8_t>(rng() % 255 - 127);
      cudaMemcpy(x, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice);
      cudaMemcpy(xd, hd.data(), hd.size() * sizeof(float), cudaMemcpyHostToDevice);
      cudaMemcpy(xq, hq.data(), hq.size(), cudaMemcpyHostToDevice);

      cudaGraph_t graph;
      cudaGraphExec_t exec;
      if (!check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture")) return 1;
      for (int c = 0; c < copies; ++c) {
        cuda::GemvOutput outs[cuda::kGemvMaxOutputs];
        const char* base = static_cast<const char*>(w) + bytes * c;
        float* yo = y;
        for (size_t m = 0; m < s.rows.size(); ++m) {
          outs[m] = {base, s.rows[m], yo};
          base += s.rows[m] * row_bytes(t, s.cols);
          yo += s.rows[m];
        }
        if (!check(cuda::gemv_group(t.type, t.split, outs, static_cast<int>(s.rows.size()), s.cols, x, xq, xd, 1,
                                    false, stream),
                   "gemv"))
          return 1;
      }
      if (!check(cudaStreamEndCapture(stream, &graph), "end capture") ||
          !check(cudaGraphInstantiate(&exec, graph, 0), "instantiate"))
        return 1;
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      std::vector<float> times;
      for (int r = 0; r < reps + 3; ++r) {
        cudaEventRecord(start, stream);
        cudaGraphLaunch(exec, stream);
        cudaEventRecord(stop, stream);
        if (!check(cudaEventSynchronize(stop), "run")) return 1;
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        if (r >= 3) times.push_back(ms * 1000.0f / copies);
      }
      std::sort(times.begin(), times.end());
      const double us = times[times.size() / 2];
      const double gbps = bytes / us / 1e3;
      std::printf("%-5s %-8s %10.2f %10.0f %7.0f%%   [%.2f-%.2f us]\n", t.name, s.name, us, gbps,
                  100.0 * gbps / membw_gbps, times.front(), times.back());
      if (std::strcmp(s.name, "head") != 0) {
        layer_us += us;
        layer_ideal_us += bytes / membw_gbps / 1e3;
      }
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      cudaFree(w);
      cudaFree(x);
      cudaFree(xq);
      cudaFree(xd);
      cudaFree(y);
    }
    std::printf("%-5s %-8s %10.2f %10s %7.0f%%\n", t.name, "layer", layer_us, "", 100.0 * layer_ideal_us / layer_us);
  }
  return 0;
}
