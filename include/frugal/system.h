// Facts about the machine that the roofline and thread defaults need.
#pragma once

#include <cstddef>
#include <string>

namespace frugal {

// Threads used by default: online CPUs limited by affinity and cgroup quota.
int default_threads();

// Measured read bandwidth in GB/s: `threads` threads summing a `bytes` buffer
// (much larger than the caches), best of `reps` passes.
double measure_read_bandwidth_gbps(int threads, size_t bytes = size_t{1} << 30, int reps = 5);

// CPU model name and the kernel ISA path in use ("avx2", "avx512", "generic").
std::string cpu_model_name();
std::string kernel_isa_name();

}  // namespace frugal
