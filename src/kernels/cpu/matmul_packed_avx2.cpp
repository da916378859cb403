// AVX2 kernels over the interleaved weight layouts (packed.h).
#include "kernels/cpu/matmul_packed_impl.h"

namespace frugal::kernels {

void fill_avx2_packed(KernelTable& t) {
  t.gemm_packed[static_cast<int>(TensorType::kQ4_0)] = gemm_packed<PackQ4_0x8, false>;
  t.gemm_packed[static_cast<int>(TensorType::kQ8_0)] = gemm_packed<PackQ8_0x8, false>;
  t.gemm_packed[static_cast<int>(TensorType::kQ4_K)] = gemm_packed_q4_k<false>;
}

}  // namespace frugal::kernels
