#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/thread_pool.h"
#include "frugal/system.h"
#include "kernels/cpu/cpu_isa.h"

namespace frugal {

uint64_t sum_buffer_avx2(const uint8_t* data, size_t bytes);

namespace {

uint64_t sum_buffer_portable(const uint8_t* data, size_t bytes) {
  const uint64_t* p = reinterpret_cast<const uint64_t*>(data);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  return a0 + a1 + a2 + a3;
}

}  // namespace

int default_threads() { return default_thread_count(); }

double measure_read_bandwidth_gbps(int threads, size_t bytes, int reps) {
  bytes &= ~size_t{4095};
  auto* raw = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (raw == nullptr) return 0.0;
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(raw, &std::free);
  ThreadPool pool(threads);
  // Touch every page from the thread that will read it (first-touch placement).
  pool.run([&](int t, int nt) {
    const size_t b = bytes * t / nt, e = bytes * (t + 1) / nt;
    std::memset(raw + b, t + 1, e - b);
  });
  const bool avx2 = __builtin_cpu_supports("avx2");
  double best = 0.0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int t, int nt) {
      const size_t chunk = (bytes / nt) & ~size_t{127};
      const uint8_t* p = raw + chunk * t;
      sink = sink + (avx2 ? sum_buffer_avx2(p, chunk) : sum_buffer_portable(p, chunk));
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>((bytes / pool.size()) & ~size_t{127}) * pool.size() / s / 1e9);
  }
  return best;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  return "unknown";
}

std::string kernel_isa_name() { return std::string(kernels::isa_name(kernels::active_isa())); }

}  // namespace frugal
