// Block layouts of the GGUF quantized tensor types. Every struct is the exact
// on-disk byte layout (little-endian, no padding); a row of n elements is
// n / block_size consecutive blocks. Sizes are checked against the type table
// in src/core/tensor_type.cpp.
//
// Conventions used below: fp16 fields hold IEEE half bits (src/core/half.h),
// "d" is a scale, "m"/"dmin" an offset, "qs" packed quants, "qh" packed high
// bits. Element order inside a block is described per type because nibble
// packing differs between the 32-element and the 256-element ("K") families.
#pragma once

#include <cstddef>
#include <cstdint>

namespace frugal::quant {

inline constexpr int kQK = 32;    // elements per block of the 32-element family
inline constexpr int kQKK = 256;  // elements per super-block of the K family
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales/mins of Q4_K and Q5_K

// x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8), j < 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};

// x[j] = d * (qs[j] & 15) + m, x[j + 16] = d * (qs[j] >> 4) + m.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};

// Five-bit quants: the low four bits are packed as in Q4_0; bit j of the
// little-endian 32-bit qh is bit 4 of element j. x = d * (q - 16).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// As Q5_0 with an offset: x = d * q + m.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// x[j] = d * qs[j].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// Q8_0 plus s = d * sum(qs), used as the activation side of Q4_1/Q5_1 dots.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};

// 8 sub-blocks of 32 with 6-bit scale sc[j] and 6-bit min m[j] packed in
// `scales` (see unpack_k_scale_min). Element order: for each 64-element
// chunk c (0..3), qs[32c + l] holds element 64c + l in its low nibble and
// element 64c + 32 + l in its high nibble (sub-blocks 2c and 2c+1).
// x = d * sc[j] * q - dmin * m[j].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};

// Q4_K plus a fifth bit: bit 2c of qh[l] is bit 4 of element 64c + l and
// bit 2c+1 of qh[l] is bit 4 of element 64c + 32 + l.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};

// 16 sub-blocks of 16 with signed 8-bit scales, 6-bit quants (offset 32).
// Each 128-element half h uses ql[64h..64h+63], qh[32h..32h+31] and
// scales[8h..8h+7]; inside a half, for l < 32:
//   element l      : low nibble of ql[l],      qh[l] bits 0-1
//   element l + 32 : low nibble of ql[l + 32], qh[l] bits 2-3
//   element l + 64 : high nibble of ql[l],     qh[l] bits 4-5
//   element l + 96 : high nibble of ql[l + 32],qh[l] bits 6-7
// and element e of the half uses scale e / 16. x = d * scale * (q - 32).
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

// Activation format of the K family: fp32 scale, 8-bit quants and the sums
// of each group of 16 quants (so offset terms cost one multiply per group).
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
// The structs are read straight out of the mapped file, which only
// guarantees 2-byte alignment for the fp16 fields (BlockQ8_K is never stored
// in files here, only built in aligned scratch memory).
static_assert(alignof(BlockQ4_0) == 2 && alignof(BlockQ6_K) == 2);

// Sub-block j (0..7) scale and min of a Q4_K / Q5_K super-block. The first
// four pairs are the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); the
// last four keep their low 4 bits in bytes 8..11 (scale low nibble, min high
// nibble) and their top 2 bits in the spare top bits of bytes 0..7.
inline void unpack_k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Inverse of unpack_k_scale_min for 8 (scale, min) pairs, each < 64.
inline void pack_k_scale_min(const uint8_t* sc, const uint8_t* m, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

}  // namespace frugal::quant
