#include "quant/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/half.h"
#include "quant/blocks.h"

namespace frugal::quant {
namespace {

// Largest-magnitude value of x[0..n) with its sign (the symmetric formats map
// it to the most negative quant so the full range is used).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      max = x[i];
    }
  }
  return max;
}

// Reads the 32 high bits of a Q5 block (stored unaligned, little-endian).
uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequant_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    const uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4;
      const int h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>(((b[i].qs[j] & 0xF) | h0) - 16) * d;
      y[j + 16] = static_cast<float>(((b[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequant_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    const uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4;
      const int h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>((b[i].qs[j] & 0xF) | h0) * d + m;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequant_q8_1(const BlockQ8_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequant_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      uint8_t sc, m;
      unpack_k_scale_min(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequant_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    const uint8_t* qh = b[i].qh;
    for (int c = 0; c < 4; ++c, q += 32) {
      uint8_t sc, m;
      unpack_k_scale_min(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      const uint8_t u1 = static_cast<uint8_t>(1u << (2 * c)), u2 = static_cast<uint8_t>(2u << (2 * c));
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int h = 0; h < 2; ++h, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequant_q8_k(const BlockQ8_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK)
    for (int j = 0; j < kQKK; ++j) y[j] = b[i].d * static_cast<float>(b[i].qs[j]);
}

// Shared by Q4_K and Q5_K: per sub-block of 32 an affine range [min, max]
// (min clamped to <= 0 because the format stores only a subtracted offset),
// then 6-bit quantization of the sub-block scales and mins against fp16
// super-block scales, then each value rounded against its effective scale.
template <int kMaxQ>
void quantize_k_affine(const float* x, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                       uint8_t* q /* 256 values 0..kMaxQ, in element order */) {
  float sub_scale[8], sub_min[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float mn = xs[0], mx = xs[0];
    for (int l = 1; l < 32; ++l) {
      mn = std::min(mn, xs[l]);
      mx = std::max(mx, xs[l]);
    }
    mn = std::min(mn, 0.0f);
    sub_scale[j] = (mx - mn) / kMaxQ;
    sub_min[j] = -mn;
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  const uint16_t dh = f32_to_f16(max_scale / 63.0f), dminh = f32_to_f16(max_min / 63.0f);
  const float d = f16_to_f32(dh), dmin = f16_to_f32(dminh);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d > 0 ? static_cast<uint8_t>(std::clamp(nearest_int(sub_scale[j] / d), 0, 63)) : 0;
    m[j] = dmin > 0 ? static_cast<uint8_t>(std::clamp(nearest_int(sub_min[j] / dmin), 0, 63)) : 0;
  }
  pack_k_scale_min(sc, m, scales);
  *d_out = dh;
  *dmin_out = dminh;
  for (int j = 0; j < 8; ++j) {
    const float ds = d * sc[j], dm = dmin * m[j];
    for (int l = 0; l < 32; ++l) {
      const int v = ds > 0 ? nearest_int((x[32 * j + l] + dm) / ds) : 0;
      q[32 * j + l] = static_cast<uint8_t>(std::clamp(v, 0, kMaxQ));
    }
  }
}

}  // namespace

void quantize_row_q4_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float max = signed_absmax(x, kQK);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      // x * id lies in [-8, 8]; +8.5 and truncation rounds to nearest.
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < kQK; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float max = signed_absmax(x, kQK);
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(x[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(x[j + 16] * id + 16.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void quantize_row_q5_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < kQK; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(31, static_cast<int>((x[j + 16] - mn) * id + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void quantize_row_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

void quantize_row_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      const int q = nearest_int(x[j] * id);
      y[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[i].d = f32_to_f16(d);
    y[i].s = f32_to_f16(d * static_cast<float>(sum));
  }
}

void quantize_row_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float amax = 0.0f;
    for (int j = 0; j < kQKK; ++j) amax = std::max(amax, std::fabs(x[j]));
    // Symmetric +-127 (never -128) so SIMD kernels may negate quants freely.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = d;
    for (int j = 0; j < kQKK; ++j) y[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
    for (int g = 0; g < kQKK / 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[i].qs[16 * g + l];
      y[i].bsums[g] = static_cast<int16_t>(s);
    }
  }
}

void quantize_row_q4_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  uint8_t q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    quantize_k_affine<15>(x, &y[i].d, &y[i].dmin, y[i].scales, q);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

void quantize_row_q5_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  uint8_t q[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    quantize_k_affine<31>(x, &y[i].d, &y[i].dmin, y[i].scales, q);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
        y[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

void quantize_row_q6_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    // Sub-block scales map each group's extreme to -32 (full signed range).
    float sub[16];
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      sub[g] = signed_absmax(x + 16 * g, 16) / -32.0f;
      if (std::fabs(sub[g]) > amax_scale) {
        amax_scale = std::fabs(sub[g]);
        max_scale = sub[g];
      }
    }
    uint8_t q[kQKK];
    if (max_scale == 0.0f) {
      std::memset(y[i].scales, 0, sizeof(y[i].scales));
      y[i].d = 0;
      std::memset(q, 32, sizeof(q));
    } else {
      const float iscale = -128.0f / max_scale;
      y[i].d = f32_to_f16(1.0f / iscale);
      const float d = f16_to_f32(y[i].d);
      for (int g = 0; g < 16; ++g) {
        const int s = std::min(127, nearest_int(iscale * sub[g]));
        y[i].scales[g] = static_cast<int8_t>(s);
        const float ds = d * static_cast<float>(s);
        for (int l = 0; l < 16; ++l) {
          const int v = ds != 0.0f ? nearest_int(x[16 * g + l] / ds) : 0;
          q[16 * g + l] = static_cast<uint8_t>(std::clamp(v, -32, 31) + 32);
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const uint8_t* qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int q1 = qq[l], q2 = qq[l + 32], q3 = qq[l + 64], q4 = qq[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

int64_t block_size(TensorType type) {
  auto tr = tensor_type_traits(type);
  return tr ? tr->block_size : 0;
}

size_t row_size(TensorType type, int64_t n) {
  auto tr = tensor_type_traits(type);
  if (!tr || n < 0 || n % tr->block_size != 0) return 0;
  return static_cast<size_t>(n / tr->block_size) * tr->type_size;
}

bool can_dequantize(TensorType type) {
  switch (type) {
    case TensorType::kF32: case TensorType::kF16: case TensorType::kBF16:
    case TensorType::kQ4_0: case TensorType::kQ4_1: case TensorType::kQ5_0:
    case TensorType::kQ5_1: case TensorType::kQ8_0: case TensorType::kQ8_1:
    case TensorType::kQ4_K: case TensorType::kQ5_K: case TensorType::kQ6_K:
    case TensorType::kQ8_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(TensorType type) { return can_dequantize(type); }

Status dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  if (!can_dequantize(type))
    return unsupported("dequantize: type " + std::string(tensor_type_name(type)) + " not supported");
  const int64_t bs = block_size(type);
  if (n < 0 || n % bs != 0)
    return invalid_argument("dequantize " + std::string(tensor_type_name(type)) + ": " +
                            std::to_string(n) + " elements is not a multiple of the block size " +
                            std::to_string(bs));
  const int64_t nb = n / bs;
  switch (type) {
    case TensorType::kF32:
      if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case TensorType::kF16: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    }
    case TensorType::kBF16: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      break;
    }
    case TensorType::kQ4_0: dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb); break;
    case TensorType::kQ4_1: dequant_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb); break;
    case TensorType::kQ5_0: dequant_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb); break;
    case TensorType::kQ5_1: dequant_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb); break;
    case TensorType::kQ8_0: dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb); break;
    case TensorType::kQ8_1: dequant_q8_1(static_cast<const BlockQ8_1*>(src), dst, nb); break;
    case TensorType::kQ4_K: dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb); break;
    case TensorType::kQ5_K: dequant_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb); break;
    case TensorType::kQ6_K: dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb); break;
    case TensorType::kQ8_K: dequant_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb); break;
    default: return unsupported("dequantize: unhandled type");
  }
  return Status::Ok();
}

Status quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  if (!can_quantize(type))
    return unsupported("quantize: type " + std::string(tensor_type_name(type)) + " not supported");
  const int64_t bs = block_size(type);
  if (n < 0 || n % bs != 0)
    return invalid_argument("quantize " + std::string(tensor_type_name(type)) + ": " +
                            std::to_string(n) + " elements is not a multiple of the block size " +
                            std::to_string(bs));
  switch (type) {
    case TensorType::kF32:
      if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case TensorType::kF16:
    case TensorType::kBF16: {
      auto* d = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type == TensorType::kF16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      break;
    }
    case TensorType::kQ4_0: quantize_row_q4_0(src, dst, n); break;
    case TensorType::kQ4_1: quantize_row_q4_1(src, dst, n); break;
    case TensorType::kQ5_0: quantize_row_q5_0(src, dst, n); break;
    case TensorType::kQ5_1: quantize_row_q5_1(src, dst, n); break;
    case TensorType::kQ8_0: quantize_row_q8_0(src, dst, n); break;
    case TensorType::kQ8_1: quantize_row_q8_1(src, dst, n); break;
    case TensorType::kQ4_K: quantize_row_q4_k(src, dst, n); break;
    case TensorType::kQ5_K: quantize_row_q5_k(src, dst, n); break;
    case TensorType::kQ6_K: quantize_row_q6_k(src, dst, n); break;
    case TensorType::kQ8_K: quantize_row_q8_k(src, dst, n); break;
    default: return unsupported("quantize: unhandled type");
  }
  return Status::Ok();
}

}  // namespace frugal::quant
