// Read loop for the bandwidth measurement: 32-byte loads, four independent
// accumulators so the loop is bound by memory, not by the add latency.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace frugal {

uint64_t sum_buffer_avx2(const uint8_t* data, size_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  const size_t n = bytes / 128;
  for (size_t i = 0; i < n; ++i) {
    const __m256i* p = reinterpret_cast<const __m256i*>(data + i * 128);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(p));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + 3));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

}  // namespace frugal
