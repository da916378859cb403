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

}  // namespace frugal::kernels
