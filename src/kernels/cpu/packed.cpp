#include "kernels/cpu/packed.h"

#include <cstring>
#include <type_traits>

#include "quant/blocks.h"

namespace frugal::kernels {

size_t packed_block_bytes(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0: return sizeof(PackQ4_0x8);
    case TensorType::kQ8_0: return sizeof(PackQ8_0x8);
    case TensorType::kQ4_K: return sizeof(PackQ4_Kx8);
    case TensorType::kQ6_K: return sizeof(PackQ6_Kx8);
    default: return 0;
  }
}

namespace {

// Copies 4-byte words of `q` (the canonical quants of one row's block) into
// word slot r of each 32-byte vector of the packed block, each byte XORed
// with `flip` (0x80 turns Q8_0's signed quants into q + 128; see packed.h).
inline void scatter_words(const void* q, int n_words, int r, uint8_t* qs, uint8_t flip = 0) {
  const auto* src = static_cast<const uint8_t*>(q);
  for (int v = 0; v < n_words; ++v)
    for (int i = 0; i < 4; ++i) qs[32 * v + 4 * r + i] = src[4 * v + i] ^ flip;
}

inline void gather_words(const uint8_t* qs, int n_words, int r, void* q, uint8_t flip = 0) {
  auto* dst = static_cast<uint8_t*>(q);
  for (int v = 0; v < n_words; ++v)
    for (int i = 0; i < 4; ++i) dst[4 * v + i] = qs[32 * v + 4 * r + i] ^ flip;
}

// The byte flip of each 32-element layout: Q8_0's quants are stored offset.
template <class Pack>
constexpr uint8_t kQuantFlip = std::is_same_v<Pack, PackQ8_0x8> ? 0x80 : 0x00;

template <class Pack, class Block>
void pack_impl(const void* src, int64_t rows, int64_t cols, void* dst, int64_t g0, int64_t g1) {
  const int64_t nb = cols / 32;
  const auto* W = static_cast<const Block*>(src);
  auto* P = static_cast<Pack*>(dst);
  constexpr int kWords = sizeof(Block::qs) / 4;
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      Pack& p = P[g * nb + b];
      std::memset(&p, 0, sizeof(p));
      for (int r = 0; r < kPackRows; ++r) {
        const int64_t row = g * kPackRows + r;
        if (row >= rows) break;
        const Block& blk = W[row * nb + b];
        p.d[r] = blk.d;
        scatter_words(blk.qs, kWords, r, reinterpret_cast<uint8_t*>(p.qs), kQuantFlip<Pack>);
      }
    }
}

template <class Pack, class Block>
void unpack_impl(const void* packed, int64_t cols, int64_t row, void* dst) {
  const int64_t nb = cols / 32;
  const auto* P = static_cast<const Pack*>(packed);
  auto* out = static_cast<Block*>(dst);
  const int64_t g = row / kPackRows;
  const int r = static_cast<int>(row % kPackRows);
  constexpr int kWords = sizeof(Block::qs) / 4;
  for (int64_t b = 0; b < nb; ++b) {
    const Pack& p = P[g * nb + b];
    out[b].d = p.d[r];
    gather_words(reinterpret_cast<const uint8_t*>(p.qs), kWords, r, out[b].qs, kQuantFlip<Pack>);
  }
}

void pack_q4_k(const void* src, int64_t rows, int64_t cols, void* dst, int64_t g0, int64_t g1) {
  const int64_t nb = cols / 256;
  const auto* W = static_cast<const quant::BlockQ4_K*>(src);
  auto* P = static_cast<PackQ4_Kx8*>(dst);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      PackQ4_Kx8& p = P[g * nb + b];
      std::memset(&p, 0, sizeof(p));
      for (int r = 0; r < kPackRows; ++r) {
        const int64_t row = g * kPackRows + r;
        if (row >= rows) break;
        const quant::BlockQ4_K& blk = W[row * nb + b];
        p.d[r] = blk.d;
        p.dmin[r] = blk.dmin;
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) quant::unpack_k_scale_min(j, blk.scales, &sc[j], &mn[j]);
        for (int j = 0; j < 8; ++j) p.scales[j][r] = sc[j];
        for (int q = 0; q < 4; ++q) {
          p.mins[q][2 * r] = mn[2 * q];
          p.mins[q][2 * r + 1] = mn[2 * q + 1];
        }
        for (int c = 0; c < 4; ++c) scatter_words(blk.qs + 32 * c, 8, r, &p.qs[c][0][0]);
      }
    }
}

void unpack_q4_k(const void* packed, int64_t cols, int64_t row, void* dst) {
  const int64_t nb = cols / 256;
  const auto* P = static_cast<const PackQ4_Kx8*>(packed);
  auto* out = static_cast<quant::BlockQ4_K*>(dst);
  const int64_t g = row / kPackRows;
  const int r = static_cast<int>(row % kPackRows);
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ4_Kx8& p = P[g * nb + b];
    out[b].d = p.d[r];
    out[b].dmin = p.dmin[r];
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) sc[j] = p.scales[j][r];
    for (int q = 0; q < 4; ++q) {
      mn[2 * q] = p.mins[q][2 * r];
      mn[2 * q + 1] = p.mins[q][2 * r + 1];
    }
    quant::pack_k_scale_min(sc, mn, out[b].scales);
    for (int c = 0; c < 4; ++c) gather_words(&p.qs[c][0][0], 8, r, out[b].qs + 32 * c);
  }
}

// Element e (< 256) of a canonical Q6_K block as an unsigned 6-bit quant.
inline uint8_t q6_get(const quant::BlockQ6_K& b, int e) {
  const int h = e / 128, l = e % 128, l32 = l % 32, part = l / 32;
  const uint8_t* ql = b.ql + 64 * h;
  const uint8_t* qh = b.qh + 32 * h;
  const uint8_t lo = part == 0 ? ql[l32] & 0xF : part == 1 ? ql[l32 + 32] & 0xF : part == 2 ? ql[l32] >> 4 : ql[l32 + 32] >> 4;
  return static_cast<uint8_t>(lo | (((qh[l32] >> (2 * part)) & 3) << 4));
}

inline void q6_set(quant::BlockQ6_K& b, int e, uint8_t q) {
  const int h = e / 128, l = e % 128, l32 = l % 32, part = l / 32;
  uint8_t* ql = b.ql + 64 * h;
  uint8_t* qh = b.qh + 32 * h;
  uint8_t& byte = (part & 1) ? ql[l32 + 32] : ql[l32];
  byte = part < 2 ? static_cast<uint8_t>((byte & 0xF0) | (q & 0xF)) : static_cast<uint8_t>((byte & 0x0F) | (q << 4));
  qh[l32] = static_cast<uint8_t>((qh[l32] & ~(3 << (2 * part))) | (((q >> 4) & 3) << (2 * part)));
}

void pack_q6_k(const void* src, int64_t rows, int64_t cols, void* dst, int64_t g0, int64_t g1) {
  const int64_t nb = cols / 256;
  const auto* W = static_cast<const quant::BlockQ6_K*>(src);
  auto* P = static_cast<PackQ6_Kx8*>(dst);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      PackQ6_Kx8& p = P[g * nb + b];
      std::memset(&p, 0, sizeof(p));
      for (int r = 0; r < kPackRows; ++r) {
        const int64_t row = g * kPackRows + r;
        if (row >= rows) break;
        const quant::BlockQ6_K& blk = W[row * nb + b];
        p.d[r] = blk.d;
        for (int j = 0; j < 16; ++j) p.scales[j][2 * r] = p.scales[j][2 * r + 1] = blk.scales[j];
        for (int q = 0; q < 8; ++q) {
          p.scale_pairs[q][2 * r] = blk.scales[2 * q];
          p.scale_pairs[q][2 * r + 1] = blk.scales[2 * q + 1];
        }
        for (int e = 0; e < 256; ++e) p.q[e / 4][4 * r + e % 4] = q6_get(blk, e);
      }
    }
}

void unpack_q6_k(const void* packed, int64_t cols, int64_t row, void* dst) {
  const int64_t nb = cols / 256;
  const auto* P = static_cast<const PackQ6_Kx8*>(packed);
  auto* out = static_cast<quant::BlockQ6_K*>(dst);
  const int64_t g = row / kPackRows;
  const int r = static_cast<int>(row % kPackRows);
  for (int64_t b = 0; b < nb; ++b) {
    const PackQ6_Kx8& p = P[g * nb + b];
    quant::BlockQ6_K& blk = out[b];
    std::memset(&blk, 0, sizeof(blk));
    blk.d = p.d[r];
    for (int j = 0; j < 16; ++j) blk.scales[j] = p.scales[j][2 * r];
    for (int e = 0; e < 256; ++e) q6_set(blk, e, p.q[e / 4][4 * r + e % 4]);
  }
}

}  // namespace

void pack_rows(TensorType type, const void* src, int64_t rows, int64_t cols, void* dst, int64_t g0,
               int64_t g1) {
  switch (type) {
    case TensorType::kQ4_0: pack_impl<PackQ4_0x8, quant::BlockQ4_0>(src, rows, cols, dst, g0, g1); break;
    case TensorType::kQ8_0: pack_impl<PackQ8_0x8, quant::BlockQ8_0>(src, rows, cols, dst, g0, g1); break;
    case TensorType::kQ4_K: pack_q4_k(src, rows, cols, dst, g0, g1); break;
    case TensorType::kQ6_K: pack_q6_k(src, rows, cols, dst, g0, g1); break;
    default: break;
  }
}

void unpack_row(TensorType type, const void* packed, int64_t /*rows*/, int64_t cols, int64_t row, void* dst) {
  switch (type) {
    case TensorType::kQ4_0: unpack_impl<PackQ4_0x8, quant::BlockQ4_0>(packed, cols, row, dst); break;
    case TensorType::kQ8_0: unpack_impl<PackQ8_0x8, quant::BlockQ8_0>(packed, cols, row, dst); break;
    case TensorType::kQ4_K: unpack_q4_k(packed, cols, row, dst); break;
    case TensorType::kQ6_K: unpack_q6_k(packed, cols, row, dst); break;
    default: break;
  }
}

}  // namespace frugal::kernels
