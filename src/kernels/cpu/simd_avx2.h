// Internal AVX2 helpers shared by the *_avx2.cpp and *_avx512.cpp kernels.
// Only include from translation units compiled with AVX2+FMA+F16C enabled.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

// Everything here has internal linkage (anonymous namespace): the header is
// compiled into translation units with different ISA flags, and a shared
// inline definition could let the linker pick an AVX-512 encoding for an
// AVX2-only caller.
namespace frugal::kernels::avx2 {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Software prefetch for single-token GEMVs, which stream every weight once:
// on few cores the hardware prefetcher alone leaves the kernel waiting on
// DRAM (Q4_0 decode of a 1.1B model on 2 threads went from 23 to 31 tok/s).
// Touches the cache lines of the `bytes` that start kPrefetchBytes past `p`;
// a prefetch never faults, so running past the end of the weights is fine.
// Skipped where weight_prefetch() is off (cpu_isa.h).
inline constexpr size_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const void* p, size_t bytes) {
  if (!g_weight_prefetch) return;
  const char* a = static_cast<const char*>(p) + kPrefetchBytes;
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(a + o, _MM_HINT_T0);
}

// Single-token fp32/fp16/bf16 GEMVs of the AVX2 build walk a tile of R rows
// side by side (the AVX-512 build streams one row at a time), and
// a row of a few KiB is only a page or two: prefetch_ahead's distance would
// land in the tile's own next row. The line that pays to fetch early is the
// one at the same offset in the next tile (`tile_bytes` further on), and
// into L2: a tile's worth of lines held in L1 evicts the ones being read
// (an fp16 GEMV streamed 17% more bytes per second this way, and the same
// distance into L1 measured slower than no prefetch at all).
inline void prefetch_next_tile(const uint8_t* row, size_t tile_bytes, size_t offset) {
  _mm_prefetch(reinterpret_cast<const char*>(row + tile_bytes + offset), _MM_HINT_T1);
}

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

inline float load_fp16(const void* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 8 consecutive weights as fp32, per storage type.
struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m256 load8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static float load1(const uint8_t* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m256 load8(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(const uint8_t* p) { return load_fp16(p); }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  // bf16 is the top half of an fp32: widen and shift into place.
  static __m256 load8(const uint8_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    const uint32_t b = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
};

// Expands 32 bits to 32 bytes: byte j = 0xFF if bit j is set, else 0.
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i v = _mm256_set1_epi32(static_cast<int>(bits));
  // Byte j of the result looks at source byte j / 8 ...
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                          0x0202020202020202, 0x0303030303030303);
  __m256i b = _mm256_shuffle_epi8(v, shuf);
  // ... and tests bit j % 8 of it: set every other bit, compare with all-ones.
  const __m256i others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
  b = _mm256_or_si256(b, others);
  return _mm256_cmpeq_epi8(b, _mm256_set1_epi8(-1));
}

// 16 packed nibbles -> 32 bytes in element order (low nibbles are elements
// 0..15, high nibbles 16..31).
inline __m256i nibbles_32(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
  return _mm256_set_m128i(hi, lo);
}

// exp(x) for fp32 lanes: range reduction by ln 2 and a degree-6 polynomial
// (relative error ~2 ulp). Inputs below -87.3 return exactly 0 (so -inf
// works in softmax), inputs above 88.3 saturate near FLT_MAX.
inline __m256 exp_ps(__m256 x) {
  const __m256 lo_cut = _mm256_set1_ps(-87.3f);
  const __m256 zero_mask = _mm256_cmp_ps(x, lo_cut, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo_cut), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 split in a part exact in few bits and a correction.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(zero_mask, res);
}

}  // namespace
}  // namespace frugal::kernels::avx2
