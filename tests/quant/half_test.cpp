// Exhaustive checks of the scalar fp16/bf16 conversions in src/core/half.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace frugal {
namespace {

float bits_to_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(Half, AllF16ValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const bool nan = ((h >> 10) & 31) == 31 && (h & 0x3ff) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(f32_to_f16(f) & 0x3ff) << h;  // stays NaN
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "half bits " << h;
  }
}

TEST(Half, F16ValuesMatchDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t e = (h >> 10) & 31, m = h & 0x3ff;
    if (e == 31) continue;
    const double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1024.0 + m, int(e) - 25);
    const double want = (h & 0x8000) ? -mag : mag;
    ASSERT_EQ(double(f16_to_f32(static_cast<uint16_t>(h))), want) << h;
  }
}

TEST(Half, AllBf16ValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), h);
  }
}

// Nearest-even reference by exhaustive comparison with the two neighbours.
TEST(Half, F32ToBf16RoundsToNearestEven) {
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t bits = rng();
    const float f = bits_to_f32(bits);
    if (std::isnan(f)) continue;
    const uint16_t lo = static_cast<uint16_t>(bits >> 16);
    const uint32_t rem = bits & 0xffff;
    uint16_t want = lo;
    if (rem > 0x8000 || (rem == 0x8000 && (lo & 1))) want = static_cast<uint16_t>(lo + 1);
    ASSERT_EQ(f32_to_bf16(f), want) << std::hex << bits;
  }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t hw_f32_to_f16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST(Half, MatchesF16C) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = f16_to_f32(static_cast<uint16_t>(h)), b = hw_f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(a)) {
      ASSERT_TRUE(std::isnan(b));
      continue;
    }
    ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << h;
  }
  // Every float whose top 19 bits vary, with the low 13 (rounded-off) bits set
  // to the interesting patterns, plus random floats.
  const uint32_t lows[] = {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff};
  for (uint32_t hi = 0; hi < (1u << 19); ++hi)
    for (uint32_t low : lows) {
      const float f = bits_to_f32((hi << 13) | low);
      if (std::isnan(f)) continue;
      ASSERT_EQ(f32_to_f16(f), hw_f32_to_f16(f)) << std::hex << ((hi << 13) | low);
    }
  std::mt19937 rng(5);
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_to_f32(rng());
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), hw_f32_to_f16(f)) << f;
  }
}
#endif

}  // namespace
}  // namespace frugal
