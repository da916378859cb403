#include "kernels/cpu/kernel_table.h"
namespace frugal::kernels {
void fill_avx2(KernelTable&) {}
void fill_avx2_vec(KernelTable&) {}
}  // namespace frugal::kernels
