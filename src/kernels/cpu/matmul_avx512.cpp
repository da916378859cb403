#include "kernels/cpu/kernel_table.h"
namespace frugal::kernels {
void fill_avx512(KernelTable&) {}
void fill_avx512_vec(KernelTable&) {}
}  // namespace frugal::kernels
