// AVX2 kernels over the interleaved weight layouts (packed.h).
#include "kernels/cpu/matmul_packed_impl.h"

namespace frugal::kernels {

void fill_avx2_packed(KernelTable& t) {
  t.gemm_packed[static_cast<int>(TensorType::kQ4_0)] = gemm_packed<PackQ4_0x8, false>;
  t.gemm_packed[static_cast<int>(TensorType::kQ8_0)] = gemm_packed<PackQ8_0x8, false>;
  t.gemm_packed[static_cast<int>(TensorType::kQ4_K)] = gemm_packed_k<PackQ4_Kx8, 3>;
  t.gemm_packed[static_cast<int>(TensorType::kQ6_K)] = gemm_packed_k<PackQ6_Kx8, 4>;
  t.packed_min_tokens[static_cast<int>(TensorType::kQ6_K)] = 2;
}

}  // namespace frugal::kernels
