// Run-time ISA selection for the CPU kernels. The best ISA the CPU supports
// is detected once; FRUGAL_CPU_ISA (generic|avx2|avx512) can force a lower
// one, and tests switch with set_isa() to cover every path on one machine.
#pragma once

#include <string_view>

namespace frugal::kernels {

enum class CpuIsa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view isa_name(CpuIsa isa);
// Best ISA this CPU (and build) supports.
CpuIsa detected_isa();
// ISA currently used by matmul() and the vec ops.
CpuIsa active_isa();
// Selects `isa` for later calls (not thread-safe against running kernels).
// Returns false, changing nothing, when the CPU lacks it.
bool set_isa(CpuIsa isa);

// Whether single-token GEMVs prefetch the weight stream in software
// (simd_avx2.h, prefetch_ahead). On by default except on AMD CPUs: on the
// Intel Xeon it was written for it took Q4_0 decode from 23 to 35 tok/s,
// on a Zen 4 EPYC it measured neutral from DRAM and 3-9% slower with the
// weights in cache. FRUGAL_CPU_PREFETCH=0|1 overrides the default.
bool weight_prefetch();
void set_weight_prefetch(bool on);
// Read by the kernels' inner loops; use the functions above.
extern bool g_weight_prefetch;

}  // namespace frugal::kernels
