// Device-side readers of the GGUF weight formats (layouts in
// src/quant/blocks.h). Every format is read in "groups" of 8 weights that sit
// in two runs of 4 consecutive columns of one block: the runs start at block
// columns c0 and c1. Grouping by the packing (a nibble byte holds elements j
// and j + 16 in Q4_0) lets one 32-bit load feed 8 weights and lets the
// activations be read as two float4.
//
// Each format has load() (raw bytes of group g of a block into registers, so
// a caller can issue several loads before using them) and dequant().
#pragma once

#include "kernels/cuda/common.cuh"

namespace frugal::cuda {

// Small unsigned integers to float without I2F, which issues at a quarter of
// the FP32 rate and bounds the fused GEMVs: with v < 2^23 in the mantissa of
// 2^23 the float is exactly 2^23 + v, and one FADD takes 2^23 + bias away
// (exact: the result is a small integer). `bias` folds a format's offset.
__device__ __forceinline__ float small_uint_to_float(uint32_t v, float bias = 0.0f) {
  return __uint_as_float(0x4B000000u | v) - (8388608.0f + bias);
}

struct FormatF32 {
  static constexpr int kElems = 8, kBytes = 32, kGroups = 1;
  struct Raw { float4 a, b; };
  __device__ static Raw load(const uint8_t* blk, int) {
    const float4* p = reinterpret_cast<const float4*>(blk);
    return {p[0], p[1]};
  }
  __device__ static void dequant(const Raw& r, int, float* w, int& c0, int& c1) {
    w[0] = r.a.x; w[1] = r.a.y; w[2] = r.a.z; w[3] = r.a.w;
    w[4] = r.b.x; w[5] = r.b.y; w[6] = r.b.z; w[7] = r.b.w;
    c0 = 0; c1 = 4;
  }
};

struct FormatF16 {
  static constexpr int kElems = 8, kBytes = 16, kGroups = 1;
  struct Raw { uint4 v; };
  __device__ static Raw load(const uint8_t* blk, int) { return {*reinterpret_cast<const uint4*>(blk)}; }
  __device__ static void dequant(const Raw& r, int, float* w, int& c0, int& c1) {
    const uint32_t u[4] = {r.v.x, r.v.y, r.v.z, r.v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = half_bits_to_float(u[i] & 0xffff);
      w[2 * i + 1] = half_bits_to_float(u[i] >> 16);
    }
    c0 = 0; c1 = 4;
  }
};

struct FormatBF16 {
  static constexpr int kElems = 8, kBytes = 16, kGroups = 1;
  struct Raw { uint4 v; };
  __device__ static Raw load(const uint8_t* blk, int) { return {*reinterpret_cast<const uint4*>(blk)}; }
  __device__ static void dequant(const Raw& r, int, float* w, int& c0, int& c1) {
    const uint32_t u[4] = {r.v.x, r.v.y, r.v.z, r.v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = bf16_bits_to_float(u[i] & 0xffff);
      w[2 * i + 1] = bf16_bits_to_float(u[i] >> 16);
    }
    c0 = 0; c1 = 4;
  }
};

// x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8).
struct FormatQ4_0 {
  static constexpr int kElems = 32, kBytes = 18, kGroups = 4;
  struct Raw { uint32_t qs, d; };
  __device__ static Raw load(const uint8_t* blk, int g) {
    return {load_u32_align2(blk + 2 + 4 * g), load_u16(blk)};
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const float d = half_bits_to_float(r.d);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t b = (r.qs >> (8 * i)) & 0xff;
      w[i] = d * small_uint_to_float(b & 15, 8.0f);
      w[4 + i] = d * small_uint_to_float(b >> 4, 8.0f);
    }
    c0 = 4 * g; c1 = 4 * g + 16;
  }
};

// Q4_0 packing plus bit j of qh as bit 4 of element j; x = d * (q - 16).
struct FormatQ5_0 {
  static constexpr int kElems = 32, kBytes = 22, kGroups = 4;
  struct Raw { uint32_t qs, qh, d; };
  __device__ static Raw load(const uint8_t* blk, int g) {
    return {load_u32_align2(blk + 6 + 4 * g), load_u32_align2(blk + 2), load_u16(blk)};
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const float d = half_bits_to_float(r.d);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int j = 4 * g + i;
      const uint32_t b = (r.qs >> (8 * i)) & 0xff;
      const uint32_t lo = (b & 15) | (((r.qh >> j) & 1) << 4);
      const uint32_t hi = (b >> 4) | (((r.qh >> (j + 16)) & 1) << 4);
      w[i] = d * small_uint_to_float(lo, 16.0f);
      w[4 + i] = d * small_uint_to_float(hi, 16.0f);
    }
    c0 = 4 * g; c1 = 4 * g + 16;
  }
};

// x[j] = d * qs[j].
struct FormatQ8_0 {
  static constexpr int kElems = 32, kBytes = 34, kGroups = 4;
  struct Raw { uint32_t q0, q1, d; };
  __device__ static Raw load(const uint8_t* blk, int g) {
    return {load_u32_align2(blk + 2 + 8 * g), load_u32_align2(blk + 6 + 8 * g), load_u16(blk)};
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const float d = half_bits_to_float(r.d);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      // Flipping the sign bit maps int8 q to the unsigned q + 128.
      w[i] = d * small_uint_to_float(((r.q0 >> (8 * i)) & 0xff) ^ 0x80, 128.0f);
      w[4 + i] = d * small_uint_to_float(((r.q1 >> (8 * i)) & 0xff) ^ 0x80, 128.0f);
    }
    c0 = 8 * g; c1 = 8 * g + 4;
  }
};

// Super-blocks of 256: 64-element chunk c packs elements 64c + l (low nibble)
// and 64c + 32 + l (high nibble) in qs[32c + l]; 6-bit scales and mins of the
// eight 32-element sub-blocks are packed in 12 bytes.
struct FormatQ4_K {
  static constexpr int kElems = 256, kBytes = 144, kGroups = 32;
  struct Raw { uint32_t qs, dd, s0, s1, s2; };
  __device__ static Raw load(const uint8_t* blk, int g) {
    const uint32_t* s = reinterpret_cast<const uint32_t*>(blk + 4);  // 4-aligned: 144-byte blocks
    const int c = g / 8, l = (g % 8) * 4;
    return {*reinterpret_cast<const uint32_t*>(blk + 16 + 32 * c + l),
            *reinterpret_cast<const uint32_t*>(blk), s[0], s[1], s[2]};
  }
  // Byte k of the 12 scale bytes, by selects and shifts: indexing a byte
  // view of registers with a run-time k would put them in local memory.
  __device__ static uint32_t scale_byte(const Raw& r, int k) {
    const uint32_t word = k < 4 ? r.s0 : (k < 8 ? r.s1 : r.s2);
    return (word >> (8 * (k & 3))) & 0xff;
  }
  __device__ static void scale_min(const Raw& r, int j, float& sc, float& m) {
    uint32_t s, n;
    if (j < 4) {
      s = scale_byte(r, j) & 63;
      n = scale_byte(r, j + 4) & 63;
    } else {
      s = (scale_byte(r, j + 4) & 0xF) | ((scale_byte(r, j - 4) >> 6) << 4);
      n = (scale_byte(r, j + 4) >> 4) | ((scale_byte(r, j) >> 6) << 4);
    }
    sc = small_uint_to_float(s);
    m = small_uint_to_float(n);
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const int c = g / 8;
    float sc0, m0, sc1, m1;
    scale_min(r, 2 * c, sc0, m0);
    scale_min(r, 2 * c + 1, sc1, m1);
    const float d = half_bits_to_float(r.dd & 0xffff), dmin = half_bits_to_float(r.dd >> 16);
    group(r.qs, d * sc0, dmin * m0, d * sc1, dmin * m1, g, w, c0, c1);
  }
  // Group g's 8 weights from its 4 quant bytes and the scale a / offset b of
  // its two sub-blocks (also the device layout's dequantizer).
  __device__ static void group(uint32_t qs, float a0, float b0, float a1, float b1, int g, float* w, int& c0,
                               int& c1) {
    const int c = g / 8, l = (g % 8) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t b = (qs >> (8 * i)) & 0xff;
      w[i] = a0 * small_uint_to_float(b & 15) - b0;
      w[4 + i] = a1 * small_uint_to_float(b >> 4) - b1;
    }
    c0 = 64 * c + l; c1 = 64 * c + 32 + l;
  }
};

// Super-blocks of 256 in two halves of 128: for l < 32, ql[l] low/high nibbles
// are elements l / l + 64, ql[l + 32] low/high are l + 32 / l + 96, and qh[l]
// holds their bits 4-5 in bit pairs 0, 4, 2, 6. Element e uses scale e / 16.
struct FormatQ6_K {
  static constexpr int kElems = 256, kBytes = 210, kGroups = 32;
  struct Raw { uint32_t ql, qh, d; int s0, s1; };
  __device__ static Raw load(const uint8_t* blk, int g) {
    const int h = g / 16, p = (g / 8) % 2, l = (g % 8) * 4;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192 + 8 * h);
    const int e0 = 32 * p + l;  // element of the half for the first run
    return {load_u32_align2(blk + 64 * h + 32 * p + l), load_u32_align2(blk + 128 + 32 * h + l),
            load_u16(blk + 208), sc[e0 / 16], sc[(e0 + 64) / 16]};
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const int h = g / 16, p = (g / 8) % 2, l = (g % 8) * 4;
    const float d = half_bits_to_float(r.d);
    const float a0 = d * r.s0, a1 = d * r.s1;
    const int shift_lo = 2 * p, shift_hi = 2 * p + 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t lb = (r.ql >> (8 * i)) & 0xff, hb = (r.qh >> (8 * i)) & 0xff;
      const uint32_t lo = (lb & 15) | (((hb >> shift_lo) & 3) << 4);
      const uint32_t hi = (lb >> 4) | (((hb >> shift_hi) & 3) << 4);
      w[i] = a0 * small_uint_to_float(lo, 32.0f);
      w[4 + i] = a1 * small_uint_to_float(hi, 32.0f);
    }
    c0 = 128 * h + 32 * p + l; c1 = c0 + 64;
  }
};

// Integer-dot views of the 32-element formats for the 8-bit-activation
// GEMV: dot() is the integer sum over the group's 8 weights times the
// activation quants a0 (block columns col0..col0+3) and a1 (col1..col1+3);
// scale() the weight block's scale.
struct IntQ8_0 {
  static constexpr int kElems = 32, kBytes = 34, kGroups = 4;
  using Raw = FormatQ8_0::Raw;
  __device__ static Raw load(const uint8_t* blk, int g) { return FormatQ8_0::load(blk, g); }
  __device__ static float scale(const Raw& r) { return half_bits_to_float(r.d); }
  __device__ static int col0(int g) { return 8 * g; }
  __device__ static int col1(int g) { return 8 * g + 4; }
  __device__ static int dot(const Raw& r, int, int a0, int a1) {
    return __dp4a(static_cast<int>(r.q0), a0, __dp4a(static_cast<int>(r.q1), a1, 0));
  }
};

// Byte sum of a0 and a1 (the offset term of the biased formats).
__device__ __forceinline__ int act_sum(int a0, int a1) { return __dp4a(0x01010101, a0, __dp4a(0x01010101, a1, 0)); }

struct IntQ4_0 {
  static constexpr int kElems = 32, kBytes = 18, kGroups = 4;
  using Raw = FormatQ4_0::Raw;
  __device__ static Raw load(const uint8_t* blk, int g) { return FormatQ4_0::load(blk, g); }
  __device__ static float scale(const Raw& r) { return half_bits_to_float(r.d); }
  __device__ static int col0(int g) { return 4 * g; }
  __device__ static int col1(int g) { return 4 * g + 16; }
  __device__ static int dot(const Raw& r, int, int a0, int a1) {
    const int lo = static_cast<int>(r.qs & 0x0F0F0F0Fu), hi = static_cast<int>((r.qs >> 4) & 0x0F0F0F0Fu);
    return __dp4a(lo, a0, __dp4a(hi, a1, 0)) - 8 * act_sum(a0, a1);
  }
};

struct IntQ5_0 {
  static constexpr int kElems = 32, kBytes = 22, kGroups = 4;
  using Raw = FormatQ5_0::Raw;
  __device__ static Raw load(const uint8_t* blk, int g) { return FormatQ5_0::load(blk, g); }
  __device__ static float scale(const Raw& r) { return half_bits_to_float(r.d); }
  __device__ static int col0(int g) { return 4 * g; }
  __device__ static int col1(int g) { return 4 * g + 16; }
  // Bits j..j+3 of qh moved to bit 4 of bytes 0..3.
  __device__ static uint32_t high_bits(uint32_t qh, int j) {
    const uint32_t b = qh >> j;
    return ((b & 1) << 4) | ((b & 2) << 11) | ((b & 4) << 18) | ((b & 8) << 25);
  }
  __device__ static int dot(const Raw& r, int g, int a0, int a1) {
    const int lo = static_cast<int>((r.qs & 0x0F0F0F0Fu) | high_bits(r.qh, 4 * g));
    const int hi = static_cast<int>(((r.qs >> 4) & 0x0F0F0F0Fu) | high_bits(r.qh, 4 * g + 16));
    return __dp4a(lo, a0, __dp4a(hi, a1, 0)) - 16 * act_sum(a0, a1);
  }
};

}  // namespace frugal::cuda
