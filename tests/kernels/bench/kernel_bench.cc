// frugal_kernel_bench: GEMV and GEMM throughput of matmul() per weight type
// on every ISA this CPU supports (or the one named by --isa).
//   frugal_kernel_bench [--threads N] [--isa generic|avx2|avx512] [--tokens N] [--no-pack] [--type T] [--cpu-time]
//                       [--gemv-mb MB]
// Weights go through prepare_weight() as the model's do (repacked layouts
// where the ISA has them) unless --no-pack.
// --gemv-mb sizes the GEMV matrix (default 4096 x 4096, which the L3 of a
// server CPU holds for 4-bit types) so that it streams from DRAM as a
// model's decode does. GEMV reports GB/s of weight bytes streamed; GEMM reports GFLOP/s
// (2 * rows * cols * tokens per call). Not a test: timings vary by machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/matmul.h"
#include "quant/reference.h"

using namespace frugal;
using namespace frugal::kernels;

namespace {

// With --cpu-time the clock is this process's CPU time divided by the
// threads: on a machine shared with other work that approximates the time
// the kernel would take with the cores to itself (spin-waits count too).
bool g_cpu_time = false;
int g_threads = 1;

double now_s() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (ts.tv_sec + ts.tv_nsec * 1e-9) / g_threads;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double seconds_per_call(const WeightMatrix& w, const std::vector<float>& x, int64_t nt, std::vector<float>& out,
                        ThreadPool& pool, MatmulScratch& scratch) {
  matmul(w, x.data(), nt, out.data(), pool, scratch);  // warm-up
  int iters = 1;
  for (;;) {
    const double t0 = now_s();
    for (int i = 0; i < iters; ++i) matmul(w, x.data(), nt, out.data(), pool, scratch);
    const double s = now_s() - t0;
    if (s > 0.3 || iters >= (1 << 20)) return s / iters;
    iters *= 2;
  }
}

std::vector<uint8_t> make_weights(TensorType type, int64_t rows, int64_t cols) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> row(cols);
  const size_t rs = quant::row_size(type, cols);
  std::vector<uint8_t> q(rs * rows);
  // Past 4,096 distinct rows the matrix repeats them: the bytes streamed are
  // what matters, and quantizing hundreds of MB would dominate the run.
  const int64_t distinct = std::min<int64_t>(rows, 4096);
  for (int64_t r = 0; r < distinct; ++r) {
    for (auto& v : row) v = nd(rng);
    (void)quant::quantize_row(type, row.data(), q.data() + r * rs, cols);
  }
  for (int64_t r = distinct; r < rows; r += distinct)
    std::memcpy(q.data() + r * rs, q.data(), static_cast<size_t>(std::min(distinct, rows - r)) * rs);
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  int64_t gemm_tokens = 128;
  std::string only_isa;
  bool pack = true;
  std::string only_type;
  double gemv_mb = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) only_isa = argv[++i];
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc) gemm_tokens = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-pack")) pack = false;
    else if (!std::strcmp(argv[i], "--cpu-time")) g_cpu_time = true;
    else if (!std::strcmp(argv[i], "--type") && i + 1 < argc) only_type = argv[++i];
    else if (!std::strcmp(argv[i], "--gemv-mb") && i + 1 < argc) gemv_mb = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--isa generic|avx2|avx512] [--tokens N] [--no-pack] [--type T] [--cpu-time] [--gemv-mb MB]\n",
                   argv[0]);
      return 2;
    }
  }
  ThreadPool pool(threads);
  g_threads = pool.size();
  const TensorType types[] = {TensorType::kF32, TensorType::kF16,  TensorType::kBF16, TensorType::kQ8_0,
                              TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1,
                              TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K};
  // GEMV: 4096 x 4096 unless --gemv-mb (a 4-bit one fits a server L3).
  const int64_t gv_rows_default = 4096, gv_cols = 4096;
  // GEMM: shaped like a small model's FFN (weights fit in L2/L3).
  const int64_t gm_rows = 1024, gm_cols = 1024;
  char gv_shape[32] = "4096 rows";
  if (gemv_mb > 0) std::snprintf(gv_shape, sizeof gv_shape, "%g MB", gemv_mb);
  std::printf("threads=%d  weight prefetch %s  GEMV %s x %lld  GEMM %lldx%lld x %lld tokens\n", pool.size(),
              weight_prefetch() ? "on" : "off", gv_shape,
              (long long)gv_cols, (long long)gm_rows, (long long)gm_cols, (long long)gemm_tokens);
  std::printf("%-8s %-6s %12s %12s %14s\n", "isa", "type", "GEMV GB/s", "GEMV GFLOP/s", "GEMM GFLOP/s");
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> xv(gv_cols), xm(gm_cols * gemm_tokens);
  for (auto& v : xv) v = nd(rng);
  for (auto& v : xm) v = nd(rng);
  std::vector<float> outv(gv_rows_default), outm(gm_rows * gemm_tokens);
  MatmulScratch scratch;
  scratch.reserve(std::max<int64_t>(gemm_tokens, 1), std::max(gv_cols, gm_cols));
  for (int isa_i = 0; isa_i <= static_cast<int>(detected_isa()); ++isa_i) {
    const CpuIsa isa = static_cast<CpuIsa>(isa_i);
    if (!only_isa.empty() && only_isa != isa_name(isa)) continue;
    set_isa(isa);
    for (TensorType type : types) {
      if (!only_type.empty() && only_type != tensor_type_name(type)) continue;
      // Rows for --gemv-mb at this type's row size, whole 8-row groups.
      const int64_t rows_for_mb =
          static_cast<int64_t>(gemv_mb * 1e6 / static_cast<double>(quant::row_size(type, gv_cols))) / 8 * 8;
      const int64_t gv_rows = gemv_mb > 0 ? std::max<int64_t>(8, rows_for_mb) : gv_rows_default;
      if (static_cast<int64_t>(outv.size()) < gv_rows) outv.resize(gv_rows);
      const auto wv_data = make_weights(type, gv_rows, gv_cols);
      const auto wm_data = make_weights(type, gm_rows, gm_cols);
      WeightMatrix wv{type, wv_data.data(), gv_rows, gv_cols};
      WeightMatrix wm{type, wm_data.data(), gm_rows, gm_cols};
      if (pack && (!prepare_weight(wv, pool).ok() || !prepare_weight(wm, pool).ok())) {
        std::fprintf(stderr, "prepare_weight failed\n");
        return 1;
      }
      const double tv = seconds_per_call(wv, xv, 1, outv, pool, scratch);
      const double tm = seconds_per_call(wm, xm, gemm_tokens, outm, pool, scratch);
      std::printf("%-8s %-6s %12.2f %12.2f %14.2f\n", std::string(isa_name(isa)).c_str(),
                  std::string(tensor_type_name(type)).c_str(), wv_data.size() / tv * 1e-9,
                  2.0 * gv_rows * gv_cols / tv * 1e-9, 2.0 * gm_rows * gm_cols * gemm_tokens / tm * 1e-9);
      std::fflush(stdout);
    }
  }
  return 0;
}
