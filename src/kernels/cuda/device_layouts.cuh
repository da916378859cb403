// Device layouts of the weight formats that the decode GEMVs read on 8-bit
// activations in 32-weight units (one unit per thread and step), so a thread
// fetches its quants in 8- or 16-byte loads:
//   Q4_0 / Q8_0: each row holds its blocks' quants back to back (16 / 32
//     bytes), then their fp16 scales, padded to 16 bytes. The GGUF blocks
//     (18 / 34 bytes) only keep 2-byte alignment.
//   Q4_K: per row, the blocks' 128 quant bytes, then their scales and mins
//     unpacked to bytes, then their fp16 d / dmin, padded to 16 bytes.
//   Q6_K: per row, the blocks' 192 quant bytes (ql then qh), then their 16
//     int8 sub-block scales, then their fp16 scales, padded to 16 bytes
//     (the GGUF block of 210 bytes keeps 2-byte alignment).
// Every layout has row_bytes(cols), repack_row() (host, GGUF row -> device
// row), load() / load_act() / dot() for the integer GEMV, kLoadsAhead (units
// whose loads a decode thread issues before using them), kWideRows (rows per
// block of single-token GEMVs over wide rows), and load_group()
// that returns group g of block b in its GGUF format's registers, so the
// prefill dequantizer shares the format's dequant().
#pragma once

#include "kernels/cuda/quant_formats.cuh"

#include <cstring>

namespace frugal::cuda {

constexpr int kActBlock = 32;  // values per scale of the 8-bit activations

constexpr uint64_t pad16(uint64_t bytes) { return (bytes + 15) / 16 * 16; }

// A 32-value block of 8-bit activations: quants in two int4, scale, byte sum.
struct Act32 {
  int4 a0, a1;
  float d;
  int sum;
};
__device__ __forceinline__ Act32 load_act32(const int8_t* xq, const float* xd, int u, bool with_sum) {
  const int4* p = reinterpret_cast<const int4*>(xq + static_cast<int64_t>(u) * kActBlock);
  Act32 a{__ldg(p), __ldg(p + 1), __ldg(xd + u), 0};
  if (with_sum) a.sum = act_sum(a.a0.x, a.a0.y) + act_sum(a.a0.z, a.a0.w) + act_sum(a.a1.x, a.a1.y) +
                        act_sum(a.a1.z, a.a1.w);
  return a;
}

// Q4_0 / Q8_0 split rows: quants of block b at b * kQuantBytes, scales after all quants.
template <int kQuantBytes>
struct SplitRows {
  static constexpr int kLoadsAhead = kQuantBytes == 32 ? 2 : 1;  // Q8_0: 2
  static constexpr int kWideRows = 4;                              // rows per block over wide rows (matmul.cu)
  static constexpr uint64_t row_bytes(int64_t cols) {
    return pad16(static_cast<uint64_t>(cols / kActBlock) * (kQuantBytes + 2));
  }
  static void repack_row(const uint8_t* in, int64_t cols, uint8_t* out) {
    const int64_t nb = cols / kActBlock;
    std::memset(out, 0, row_bytes(cols));
    for (int64_t b = 0; b < nb; ++b) {
      std::memcpy(out + b * kQuantBytes, in + b * (kQuantBytes + 2) + 2, kQuantBytes);  // GGUF: scale, then quants
      std::memcpy(out + nb * kQuantBytes + 2 * b, in + b * (kQuantBytes + 2), 2);
    }
  }
  __device__ static float scale(const uint8_t* row, int64_t cols, int64_t b) {
    const auto* s = reinterpret_cast<const unsigned short*>(row + cols / kActBlock * kQuantBytes);
    return half_bits_to_float(__ldg(s + b));
  }
};

struct SplitQ4_0 : SplitRows<16> {
  using Format = FormatQ4_0;
  struct Raw { uint4 q; float d; };
  using Act = Act32;
  __device__ static Raw load(const uint8_t* row, int64_t cols, int u) {
    return {__ldg(reinterpret_cast<const uint4*>(row) + u), scale(row, cols, u)};
  }
  __device__ static Act load_act(const int8_t* xq, const float* xd, int u) { return load_act32(xq, xd, u, true); }
  // Byte k of word i holds element 4i + k (low nibble) and 4i + k + 16 (high).
  __device__ static float dot(const Raw& r, const Act& a) {
    const uint32_t q[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
    const int lo_a[4] = {a.a0.x, a.a0.y, a.a0.z, a.a0.w}, hi_a[4] = {a.a1.x, a.a1.y, a.a1.z, a.a1.w};
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s = __dp4a(static_cast<int>(q[i] & 0x0F0F0F0Fu), lo_a[i], s);
      s = __dp4a(static_cast<int>((q[i] >> 4) & 0x0F0F0F0Fu), hi_a[i], s);
    }
    return r.d * a.d * static_cast<float>(s - 8 * a.sum);
  }
  __device__ static Format::Raw load_group(const uint8_t* row, int64_t cols, int64_t b, int g) {
    return {*reinterpret_cast<const uint32_t*>(row + b * 16 + 4 * g),
            load_u16(row + cols / kActBlock * 16 + 2 * b)};
  }
};

struct SplitQ8_0 : SplitRows<32> {
  using Format = FormatQ8_0;
  struct Raw { uint4 q0, q1; float d; };
  using Act = Act32;
  __device__ static Raw load(const uint8_t* row, int64_t cols, int u) {
    const uint4* p = reinterpret_cast<const uint4*>(row) + 2 * u;
    return {__ldg(p), __ldg(p + 1), scale(row, cols, u)};
  }
  __device__ static Act load_act(const int8_t* xq, const float* xd, int u) { return load_act32(xq, xd, u, false); }
  __device__ static float dot(const Raw& r, const Act& a) {
    int s = __dp4a(static_cast<int>(r.q0.x), a.a0.x, 0);
    s = __dp4a(static_cast<int>(r.q0.y), a.a0.y, s);
    s = __dp4a(static_cast<int>(r.q0.z), a.a0.z, s);
    s = __dp4a(static_cast<int>(r.q0.w), a.a0.w, s);
    s = __dp4a(static_cast<int>(r.q1.x), a.a1.x, s);
    s = __dp4a(static_cast<int>(r.q1.y), a.a1.y, s);
    s = __dp4a(static_cast<int>(r.q1.z), a.a1.z, s);
    s = __dp4a(static_cast<int>(r.q1.w), a.a1.w, s);
    return r.d * a.d * static_cast<float>(s);
  }
  __device__ static Format::Raw load_group(const uint8_t* row, int64_t cols, int64_t b, int g) {
    const uint32_t* q = reinterpret_cast<const uint32_t*>(row + b * 32 + 8 * g);
    return {q[0], q[1], load_u16(row + cols / kActBlock * 32 + 2 * b)};
  }
};

// Q4_K split rows: per row the super-blocks' 128 quant bytes, then their
// 6-bit scales and mins unpacked to bytes (16 per super-block, chunk c at
// 4c: sc[2c], sc[2c + 1], m[2c], m[2c + 1]), then their fp16 d and dmin,
// padded to 16 bytes: 148 bytes per 256 weights instead of 144, and a
// unit's scales are one 4-byte load and four byte conversions instead of
// unpacking the GGUF's 12 packed bytes (which bounded the GEMV by
// instruction issue: 44-58% of the H200's bandwidth).
// Unit u = 16 quant bytes of super-block u / 8: chunk c = (u % 8) / 2, half
// p = u % 2, i.e. elements 64c + 16p + [0, 16) (low nibbles, sub-block 2c)
// and the same + 32 (high nibbles, sub-block 2c + 1).
// x = d * sc * q - dmin * m per sub-block.
struct FormatQ4_KUnpacked {
  static constexpr int kElems = 256, kBytes = 144, kGroups = 32;  // kBytes: the GGUF block (repacking reads it)
  struct Raw { uint32_t qs, dd, sm; };  // sm: the chunk's 4 scale / min bytes
  __device__ static void dequant(const Raw& r, int g, float* w, int& c0, int& c1) {
    const float d = half_bits_to_float(r.dd & 0xffff), dmin = half_bits_to_float(r.dd >> 16);
    FormatQ4_K::group(r.qs, d * small_uint_to_float(r.sm & 0xff), dmin * small_uint_to_float((r.sm >> 16) & 0xff),
                      d * small_uint_to_float((r.sm >> 8) & 0xff), dmin * small_uint_to_float(r.sm >> 24), g, w, c0,
                      c1);
  }
};

struct SplitQ4_K {
  using Format = FormatQ4_KUnpacked;
  static constexpr int kLoadsAhead = 1;
  static constexpr int kWideRows = 2;
  static constexpr uint64_t row_bytes(int64_t cols) { return pad16(static_cast<uint64_t>(cols / 256) * 148); }
  static void repack_row(const uint8_t* in, int64_t cols, uint8_t* out) {
    const int64_t nsb = cols / 256;
    std::memset(out, 0, row_bytes(cols));
    for (int64_t b = 0; b < nsb; ++b) {  // GGUF block: d, dmin, scales[12], qs[128]
      const uint8_t* blk = in + b * 144;
      const uint8_t* sc = blk + 4;
      std::memcpy(out + b * 128, blk + 16, 128);
      uint8_t* u = out + nsb * 128 + b * 16;
      for (int j = 0; j < 8; ++j) {
        const uint8_t s = j < 4 ? sc[j] & 63 : (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
        const uint8_t m = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        u[4 * (j / 2) + j % 2] = s;
        u[4 * (j / 2) + 2 + j % 2] = m;
      }
      std::memcpy(out + nsb * 144 + b * 4, blk, 4);
    }
  }
  struct Raw { uint4 q; float a0, b0, a1, b1; };  // sub-block scale d*sc and offset dmin*m of the two runs
  struct Act { int4 lo, hi; float d_lo, d_hi; int sum_lo, sum_hi; };
  __device__ static Raw load(const uint8_t* row, int64_t cols, int u) {
    const int64_t nsb = cols / 256, sb = u / 8;
    const int c = (u % 8) / 2, p = u % 2;
    const uint32_t sm = __ldg(reinterpret_cast<const uint32_t*>(row + nsb * 128 + sb * 16 + 4 * c));
    const uint32_t dd = __ldg(reinterpret_cast<const uint32_t*>(row + nsb * 144 + sb * 4));
    const float d = half_bits_to_float(dd & 0xffff), dmin = half_bits_to_float(dd >> 16);
    return {__ldg(reinterpret_cast<const uint4*>(row + sb * 128 + 32 * c + 16 * p)),
            d * small_uint_to_float(sm & 0xff), dmin * small_uint_to_float((sm >> 16) & 0xff),
            d * small_uint_to_float((sm >> 8) & 0xff), dmin * small_uint_to_float(sm >> 24)};
  }
  __device__ static Act load_act(const int8_t* xq, const float* xd, int u) {
    const int sb = u / 8, c = (u % 8) / 2, p = u % 2;
    const int8_t* base = xq + static_cast<int64_t>(sb) * 256 + 64 * c + 16 * p;
    Act a{__ldg(reinterpret_cast<const int4*>(base)), __ldg(reinterpret_cast<const int4*>(base + 32)),
          __ldg(xd + sb * 8 + 2 * c), __ldg(xd + sb * 8 + 2 * c + 1), 0, 0};
    a.sum_lo = act_sum(a.lo.x, a.lo.y) + act_sum(a.lo.z, a.lo.w);
    a.sum_hi = act_sum(a.hi.x, a.hi.y) + act_sum(a.hi.z, a.hi.w);
    return a;
  }
  __device__ static float dot(const Raw& r, const Act& a) {
    const uint32_t q[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
    const int lo_a[4] = {a.lo.x, a.lo.y, a.lo.z, a.lo.w}, hi_a[4] = {a.hi.x, a.hi.y, a.hi.z, a.hi.w};
    int lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo = __dp4a(static_cast<int>(q[i] & 0x0F0F0F0Fu), lo_a[i], lo);
      hi = __dp4a(static_cast<int>((q[i] >> 4) & 0x0F0F0F0Fu), hi_a[i], hi);
    }
    return a.d_lo * (r.a0 * static_cast<float>(lo) - r.b0 * static_cast<float>(a.sum_lo)) +
           a.d_hi * (r.a1 * static_cast<float>(hi) - r.b1 * static_cast<float>(a.sum_hi));
  }
  __device__ static Format::Raw load_group(const uint8_t* row, int64_t cols, int64_t b, int g) {
    const int64_t nsb = cols / 256;
    const int c = g / 8, l = (g % 8) * 4;
    return {*reinterpret_cast<const uint32_t*>(row + b * 128 + 32 * c + l),
            *reinterpret_cast<const uint32_t*>(row + nsb * 144 + b * 4),
            *reinterpret_cast<const uint32_t*>(row + nsb * 128 + b * 16 + 4 * c)};
  }
};

// Q6_K split rows. Unit u = half h = (u % 8) / 4 of super-block u / 8 and
// l0 = 8 * (u % 4): elements 128h + l0 + 32k + [0, 8) for k = 0..3, from ql
// bytes 64h + l0 (k = 0, 2: low / high nibbles) and 64h + 32 + l0 (k = 1, 3)
// and qh bytes 32h + l0 (bit pairs 0, 2, 4, 6 for k = 0..3); run k uses
// sub-block scale 8h + l0 / 16 + 2k. x = d * sc * (q - 32).
struct SplitQ6_K {
  using Format = FormatQ6_K;
  static constexpr int kLoadsAhead = 1;
  static constexpr int kWideRows = 2;
  static constexpr uint64_t row_bytes(int64_t cols) { return pad16(static_cast<uint64_t>(cols / 256) * 210); }
  static void repack_row(const uint8_t* in, int64_t cols, uint8_t* out) {
    const int64_t nsb = cols / 256;
    std::memset(out, 0, row_bytes(cols));
    for (int64_t b = 0; b < nsb; ++b) {  // GGUF block: ql[128], qh[64], scales[16], d
      std::memcpy(out + b * 192, in + b * 210, 192);
      std::memcpy(out + nsb * 192 + b * 16, in + b * 210 + 192, 16);
      std::memcpy(out + nsb * 208 + b * 2, in + b * 210 + 208, 2);
    }
  }
  struct Raw { uint2 qa, qb, qh; float s[4]; };  // s[k] = d * scale of run k
  struct Act { int2 a[4]; float d[4]; int sum[4]; };
  __device__ static Raw load(const uint8_t* row, int64_t cols, int u) {
    const int64_t nsb = cols / 256, sb = u / 8;
    const int h = (u % 8) / 4, l0 = 8 * (u % 4);
    const uint8_t* q = row + sb * 192;
    const uint2 sc = __ldg(reinterpret_cast<const uint2*>(row + nsb * 192 + sb * 16 + 8 * h));
    const float d = half_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(row + nsb * 208) + sb));
    const int sh = 8 * (l0 / 16);
    Raw r{__ldg(reinterpret_cast<const uint2*>(q + 64 * h + l0)), __ldg(reinterpret_cast<const uint2*>(q + 64 * h + 32 + l0)),
          __ldg(reinterpret_cast<const uint2*>(q + 128 + 32 * h + l0)), {}};
    r.s[0] = d * static_cast<float>(static_cast<int8_t>(sc.x >> sh));
    r.s[1] = d * static_cast<float>(static_cast<int8_t>(sc.x >> (sh + 16)));
    r.s[2] = d * static_cast<float>(static_cast<int8_t>(sc.y >> sh));
    r.s[3] = d * static_cast<float>(static_cast<int8_t>(sc.y >> (sh + 16)));
    return r;
  }
  __device__ static Act load_act(const int8_t* xq, const float* xd, int u) {
    const int sb = u / 8, h = (u % 8) / 4, l0 = 8 * (u % 4);
    const int8_t* base = xq + static_cast<int64_t>(sb) * 256 + 128 * h + l0;
    Act a;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      a.a[k] = __ldg(reinterpret_cast<const int2*>(base + 32 * k));
      a.d[k] = __ldg(xd + sb * 8 + 4 * h + k);
      a.sum[k] = act_sum(a.a[k].x, a.a[k].y);
    }
    return a;
  }
  // Quants of run k (0..63) in the bytes of one word of ql and qh.
  __device__ static int quants(uint32_t ql, uint32_t qh, int k) {
    const uint32_t low = (k < 2 ? ql : ql >> 4) & 0x0F0F0F0Fu;
    const int shift = 4 - 2 * k;  // bits 2k..2k+1 of each qh byte to bits 4..5
    const uint32_t high = (shift >= 0 ? qh << shift : qh >> -shift) & 0x30303030u;
    return static_cast<int>(low | high);
  }
  __device__ static float dot(const Raw& r, const Act& a) {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint2 ql = k % 2 == 0 ? r.qa : r.qb;
      const int run = __dp4a(quants(ql.x, r.qh.x, k), a.a[k].x, __dp4a(quants(ql.y, r.qh.y, k), a.a[k].y, 0));
      s += r.s[k] * a.d[k] * static_cast<float>(run - 32 * a.sum[k]);
    }
    return s;
  }
  __device__ static Format::Raw load_group(const uint8_t* row, int64_t cols, int64_t b, int g) {
    const int64_t nsb = cols / 256;
    const int h = g / 16, p = (g / 8) % 2, l = (g % 8) * 4;
    const int8_t* sc = reinterpret_cast<const int8_t*>(row + nsb * 192 + b * 16 + 8 * h);
    const int e0 = 32 * p + l;
    const uint8_t* q = row + b * 192;
    return {*reinterpret_cast<const uint32_t*>(q + 64 * h + 32 * p + l),
            *reinterpret_cast<const uint32_t*>(q + 128 + 32 * h + l), load_u16(row + nsb * 208 + 2 * b),
            sc[e0 / 16], sc[(e0 + 64) / 16]};
  }
};

// Calls fn(F{}) with the split layout of `type`; false when there is none.
template <class Fn>
bool with_split_format(TensorType type, Fn&& fn) {
  switch (type) {
    case TensorType::kQ4_0: fn(SplitQ4_0{}); return true;
    case TensorType::kQ8_0: fn(SplitQ8_0{}); return true;
    case TensorType::kQ4_K: fn(SplitQ4_K{}); return true;
    case TensorType::kQ6_K: fn(SplitQ6_K{}); return true;
    default: return false;
  }
}

}  // namespace frugal::cuda
