#include "quant/block_levels.h"

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/reference.h"

namespace frugal::quant {

int ElementGrid::level_of(float x) const {
  if (!(step != 0.0f)) return std::clamp(0, kmin, kmax);
  // Clamp before rounding: nearest_int is exact only well inside 2^22.
  const float f = std::clamp((x - offset) / step, static_cast<float>(kmin) - 1.0f, static_cast<float>(kmax) + 1.0f);
  return std::clamp(nearest_int(f), kmin, kmax);
}

bool has_block_grid(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0: case TensorType::kQ5_0: case TensorType::kQ8_0: case TensorType::kQ4_K:
    case TensorType::kQ5_K: case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

namespace {

void symmetric_grids(float d, int kmin, int kmax, int n, ElementGrid* g) {
  for (int i = 0; i < n; ++i) g[i] = {d, 0.0f, kmin, kmax};
}

// Q4_K / Q5_K: x = d * sc[j] * k - dmin * m[j] for sub-block j of 32.
void k_affine_grids(uint16_t d16, uint16_t dmin16, const uint8_t* scales, int kmax, ElementGrid* g) {
  const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_k_scale_min(j, scales, &sc, &m);
    for (int i = 0; i < 32; ++i) g[32 * j + i] = {d * sc, -dmin * m, 0, kmax};
  }
}

// Low nibbles of the 32-element family: element j low, j + 16 high, biased levels.
void pack_nibbles_32(const int* k, int bias, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j)
    qs[j] = static_cast<uint8_t>(((k[j] + bias) & 0xF) | (((k[j + 16] + bias) & 0xF) << 4));
}

// Low nibbles of the K family: element 64c + l low, 64c + 32 + l high.
void pack_nibbles_k(const int* k, uint8_t* qs) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      qs[32 * c + l] = static_cast<uint8_t>((k[64 * c + l] & 0xF) | ((k[64 * c + 32 + l] & 0xF) << 4));
}

}  // namespace

void block_grids(TensorType type, const void* block, ElementGrid* g) {
  switch (type) {
    case TensorType::kQ4_0:
      symmetric_grids(f16_to_f32(static_cast<const BlockQ4_0*>(block)->d), -8, 7, kQK, g);
      break;
    case TensorType::kQ5_0:
      symmetric_grids(f16_to_f32(static_cast<const BlockQ5_0*>(block)->d), -16, 15, kQK, g);
      break;
    case TensorType::kQ8_0:
      symmetric_grids(f16_to_f32(static_cast<const BlockQ8_0*>(block)->d), -127, 127, kQK, g);
      break;
    case TensorType::kQ4_K: {
      const auto* b = static_cast<const BlockQ4_K*>(block);
      k_affine_grids(b->d, b->dmin, b->scales, 15, g);
      break;
    }
    case TensorType::kQ5_K: {
      const auto* b = static_cast<const BlockQ5_K*>(block);
      k_affine_grids(b->d, b->dmin, b->scales, 31, g);
      break;
    }
    case TensorType::kQ6_K: {
      const auto* b = static_cast<const BlockQ6_K*>(block);
      const float d = f16_to_f32(b->d);
      for (int e = 0; e < kQKK; ++e) g[e] = {d * b->scales[e / 16], 0.0f, -32, 31};
      break;
    }
    default:
      break;
  }
}

void pack_block_levels(TensorType type, void* block, const int* k) {
  switch (type) {
    case TensorType::kQ4_0:
      pack_nibbles_32(k, 8, static_cast<BlockQ4_0*>(block)->qs);
      break;
    case TensorType::kQ5_0: {
      auto* b = static_cast<BlockQ5_0*>(block);
      pack_nibbles_32(k, 16, b->qs);
      uint32_t qh = 0;
      for (int j = 0; j < kQK; ++j) qh |= static_cast<uint32_t>(((k[j] + 16) >> 4) & 1) << j;
      std::memcpy(b->qh, &qh, 4);
      break;
    }
    case TensorType::kQ8_0: {
      auto* b = static_cast<BlockQ8_0*>(block);
      for (int j = 0; j < kQK; ++j) b->qs[j] = static_cast<int8_t>(k[j]);
      break;
    }
    case TensorType::kQ4_K:
      pack_nibbles_k(k, static_cast<BlockQ4_K*>(block)->qs);
      break;
    case TensorType::kQ5_K: {
      auto* b = static_cast<BlockQ5_K*>(block);
      pack_nibbles_k(k, b->qs);
      std::memset(b->qh, 0, sizeof(b->qh));
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
          b->qh[l] |= static_cast<uint8_t>((((k[64 * c + l] >> 4) & 1) << (2 * c)) |
                                           (((k[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1)));
      break;
    }
    case TensorType::kQ6_K: {
      auto* b = static_cast<BlockQ6_K*>(block);
      for (int h = 0; h < 2; ++h) {
        uint8_t* ql = b->ql + 64 * h;
        uint8_t* qh = b->qh + 32 * h;
        const int* kk = k + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int q1 = kk[l] + 32, q2 = kk[l + 32] + 32, q3 = kk[l + 64] + 32, q4 = kk[l + 96] + 32;
          ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
          ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
          qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace frugal::quant
