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
      w[i] = d * (static_cast<int>(b & 15) - 8);
      w[4 + i] = d * (static_cast<int>(b >> 4) - 8);
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
      const int lo = static_cast<int>((b & 15) | (((r.qh >> j) & 1) << 4));
      const int hi = static_cast<int>((b >> 4) | (((r.qh >> (j + 16)) & 1) << 4));
      w[i] = d * (lo - 16);
      w[4 + i] = d * (hi - 16);
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
      w[i] = d * static_cast<int8_t>((r.q0 >> (8 * i)) & 0xff);
      w[4 + i] = d * static_cast<int8_t>((r.q1 >> (8 * i)) & 0xff);
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
  __device__ static void scale_min(int j, const uint8_t* q, float& sc, float& m) {
    if (j < 4) {
      sc = q[j] & 63;
      m = q[j + 4] & 63;
    } else {
      sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
      m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
  }
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const uint32_t words[3] = {r.s0, r.s1, r.s2};
    const uint8_t* q = reinterpret_cast<const uint8_t*>(words);
    const int c = g / 8, l = (g % 8) * 4;
    float sc0, m0, sc1, m1;
    scale_min(2 * c, q, sc0, m0);
    scale_min(2 * c + 1, q, sc1, m1);
    const float d = half_bits_to_float(r.dd & 0xffff), dmin = half_bits_to_float(r.dd >> 16);
    const float a0 = d * sc0, b0 = dmin * m0, a1 = d * sc1, b1 = dmin * m1;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t b = (r.qs >> (8 * i)) & 0xff;
      w[i] = a0 * static_cast<float>(b & 15) - b0;
      w[4 + i] = a1 * static_cast<float>(b >> 4) - b1;
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
      const int lo = static_cast<int>((lb & 15) | (((hb >> shift_lo) & 3) << 4)) - 32;
      const int hi = static_cast<int>((lb >> 4) | (((hb >> shift_hi) & 3) << 4)) - 32;
      w[i] = a0 * lo;
      w[4 + i] = a1 * hi;
    }
    c0 = 128 * h + 32 * p + l; c1 = c0 + 64;
  }
};

}  // namespace frugal::cuda
