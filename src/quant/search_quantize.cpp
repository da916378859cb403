#include "quant/search_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "quant/block_levels.h"
#include "quant/blocks.h"
#include "quant/reference.h"

namespace frugal::quant {
namespace {

// Per-element weights of one block: importance * sqrt(sigma2 + x^2).
void block_weights(const float* x, const float* importance, int n, float sigma2, float* w) {
  for (int i = 0; i < n; ++i) {
    const float base = std::sqrt(sigma2 + x[i] * x[i]);
    w[i] = importance ? base * std::max(importance[i], 1e-12f) : base;
  }
}

// Symmetric quants q in [-nmax, nmax - 1] with x ~ d * q. Returns d; q gets
// the chosen quants. Candidate inverse scales map the largest-magnitude
// element near -nmax; each is refined by the closed-form optimal d.
float search_symmetric(const float* x, const float* w, int n, int nmax, int* q) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < 1e-30f) {
    std::fill(q, q + n, 0);
    return 0.0f;
  }
  float best_d = 0.0f, best_score = -1.0f;
  std::vector<int> l(n);
  for (int step = -10; step <= 10; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * step) / max;
    double sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      l[i] = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      sumlx += double(w[i]) * x[i] * l[i];
      suml2 += double(w[i]) * l[i] * l[i];
    }
    if (suml2 <= 0) continue;
    // err = sum w x^2 - sumlx^2 / suml2 for the optimal d = sumlx / suml2.
    const double score = sumlx * sumlx / suml2;
    if (score > best_score) {
      best_score = score;
      best_d = static_cast<float>(sumlx / suml2);
    }
  }
  // A few rounds of: round against d, re-solve d.
  for (int it = 0; it < 3 && best_d != 0.0f; ++it) {
    double sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      l[i] = std::clamp(nearest_int(x[i] / best_d), -nmax, nmax - 1);
      sumlx += double(w[i]) * x[i] * l[i];
      suml2 += double(w[i]) * l[i] * l[i];
    }
    if (suml2 <= 0) break;
    const float d = static_cast<float>(sumlx / suml2);
    if (d == best_d) break;
    best_d = d;
  }
  return best_d;
}

// Rounds x against a stored scale.
void round_symmetric(const float* x, int n, float d, int nmax, int* q) {
  for (int i = 0; i < n; ++i) q[i] = d != 0.0f ? std::clamp(nearest_int(x[i] / d), -nmax, nmax - 1) : 0;
}

// Affine quants q in [0, nmax] with x ~ scale * q - min (min >= 0).
void search_affine(const float* x, const float* w, int n, int nmax, float* scale_out, float* min_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (lo > 0) lo = 0;
  if (hi <= lo) {
    *scale_out = 0.0f;
    *min_out = -lo;
    return;
  }
  float best_scale = (hi - lo) / nmax, best_min = lo;
  double best_err = 0;
  {
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int((x[i] - lo) / best_scale), 0, nmax);
      const double e = best_scale * l + lo - x[i];
      best_err += w[i] * e * e;
    }
  }
  std::vector<int> l(n);
  for (int step = 0; step <= 20; ++step) {
    const float iscale = (static_cast<float>(nmax) - 1.0f + 0.1f * step) / (hi - lo);
    double sw = 0, sl = 0, sl2 = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; ++i) {
      l[i] = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      sw += w[i];
      sl += w[i] * l[i];
      sl2 += double(w[i]) * l[i] * l[i];
      sx += w[i] * x[i];
      slx += double(w[i]) * l[i] * x[i];
    }
    const double det = sw * sl2 - sl * sl;
    if (det <= 0) continue;
    double s = (sw * slx - sx * sl) / det;
    double m = (sl2 * sx - sl * slx) / det;  // offset (x ~ s*l + m)
    if (m > 0) {  // the format stores a non-negative min, i.e. m <= 0
      m = 0;
      s = sl2 > 0 ? slx / sl2 : 0;
    }
    if (s <= 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * l[i] + m - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = static_cast<float>(s);
      best_min = static_cast<float>(m);
    }
  }
  *scale_out = best_scale;
  *min_out = -best_min;
}


void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb, const float* imp, float sigma2) {
  float w[kQK];
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    block_weights(x, imp ? imp + b * kQK : nullptr, kQK, sigma2, w);
    const float d = search_symmetric(x, w, kQK, 8, q);
    y[b].d = f32_to_f16(d);
    round_symmetric(x, kQK, f16_to_f32(y[b].d), 8, q);
    pack_block_levels(TensorType::kQ4_0, &y[b], q);
  }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb, const float* imp, float sigma2) {
  float w[kQK];
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    block_weights(x, imp ? imp + b * kQK : nullptr, kQK, sigma2, w);
    const float d = search_symmetric(x, w, kQK, 16, q);
    y[b].d = f32_to_f16(d);
    round_symmetric(x, kQK, f16_to_f32(y[b].d), 16, q);
    pack_block_levels(TensorType::kQ5_0, &y[b], q);
  }
}

// Q4_K / Q5_K: sub-block (scale, min) search, 6-bit sub-scales under fp16
// super-scales, then every quant rounded against the stored values.
template <int kNmax>
void quantize_k_affine_searched(const float* x, const float* imp, float sigma2, uint16_t* d_out, uint16_t* dmin_out,
                                uint8_t* scales_out, int* q) {
  float w[kQKK];
  block_weights(x, imp, kQKK, sigma2, w);
  float sc[8], mn[8];
  float max_sc = 0, max_mn = 0;
  for (int j = 0; j < 8; ++j) {
    search_affine(x + 32 * j, w + 32 * j, 32, kNmax, &sc[j], &mn[j]);
    max_sc = std::max(max_sc, sc[j]);
    max_mn = std::max(max_mn, mn[j]);
  }
  const float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f;
  const float inv_mn = max_mn > 0 ? 63.0f / max_mn : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::clamp(nearest_int(inv_sc * sc[j]), 0, 63));
    lm[j] = static_cast<uint8_t>(std::clamp(nearest_int(inv_mn * mn[j]), 0, 63));
  }
  pack_k_scale_min(ls, lm, scales_out);
  *d_out = f32_to_f16(max_sc / 63.0f);
  *dmin_out = f32_to_f16(max_mn / 63.0f);
  const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float ds = d * ls[j], dm = dmin * lm[j];
    for (int i = 0; i < 32; ++i)
      q[32 * j + i] = ds > 0 ? std::clamp(nearest_int((x[32 * j + i] + dm) / ds), 0, kNmax) : 0;
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb, const float* imp, float sigma2) {
  int q[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    quantize_k_affine_searched<15>(x, imp ? imp + b * kQKK : nullptr, sigma2, &y[b].d, &y[b].dmin, y[b].scales, q);
    pack_block_levels(TensorType::kQ4_K, &y[b], q);
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb, const float* imp, float sigma2) {
  int q[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    quantize_k_affine_searched<31>(x, imp ? imp + b * kQKK : nullptr, sigma2, &y[b].d, &y[b].dmin, y[b].scales, q);
    pack_block_levels(TensorType::kQ5_K, &y[b], q);
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb, const float* imp, float sigma2) {
  float w[kQKK];
  int q[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    block_weights(x, imp ? imp + b * kQKK : nullptr, kQKK, sigma2, w);
    float sub[16];
    float max_scale = 0, amax = 0;
    for (int g = 0; g < 16; ++g) {
      sub[g] = search_symmetric(x + 16 * g, w + 16 * g, 16, 32, q + 16 * g);
      if (std::fabs(sub[g]) > amax) {
        amax = std::fabs(sub[g]);
        max_scale = sub[g];
      }
    }
    if (amax == 0) {
      std::memset(&y[b], 0, sizeof(BlockQ6_K));
      std::fill(q, q + kQKK, 0);
    } else {
      const float iscale = -128.0f / max_scale;
      y[b].d = f32_to_f16(1.0f / iscale);
      const float d = f16_to_f32(y[b].d);
      for (int g = 0; g < 16; ++g) {
        const int s = std::clamp(nearest_int(iscale * sub[g]), -128, 127);
        y[b].scales[g] = static_cast<int8_t>(s);
        round_symmetric(x + 16 * g, 16, d * s, 32, q + 16 * g);
      }
    }
    pack_block_levels(TensorType::kQ6_K, &y[b], q);
  }
}

}  // namespace

bool can_search_quantize(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0: case TensorType::kQ5_0: case TensorType::kQ8_0: case TensorType::kQ4_K:
    case TensorType::kQ5_K: case TensorType::kQ6_K: case TensorType::kF32: case TensorType::kF16:
    case TensorType::kBF16:
      return true;
    default:
      return false;
  }
}

float row_sigma2(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return n > 0 ? static_cast<float>(2.0 * s / static_cast<double>(n)) : 0.0f;
}

Status quantize_row_searched(TensorType type, const float* x, void* dst, int64_t n, const float* importance,
                             float sigma2) {
  const int64_t bs = block_size(type);
  if (!can_search_quantize(type) || bs <= 0)
    return unsupported("searched quantization of type " + std::string(tensor_type_name(type)));
  if (n <= 0 || n % bs != 0)
    return invalid_argument("row of " + std::to_string(n) + " elements is not a multiple of the " +
                            std::string(tensor_type_name(type)) + " block size " + std::to_string(bs));
  if (sigma2 < 0) sigma2 = row_sigma2(x, n);
  switch (type) {
    case TensorType::kQ4_0: quantize_q4_0(x, static_cast<BlockQ4_0*>(dst), n / kQK, importance, sigma2); break;
    case TensorType::kQ5_0: quantize_q5_0(x, static_cast<BlockQ5_0*>(dst), n / kQK, importance, sigma2); break;
    case TensorType::kQ4_K: quantize_q4_k(x, static_cast<BlockQ4_K*>(dst), n / kQKK, importance, sigma2); break;
    case TensorType::kQ5_K: quantize_q5_k(x, static_cast<BlockQ5_K*>(dst), n / kQKK, importance, sigma2); break;
    case TensorType::kQ6_K: quantize_q6_k(x, static_cast<BlockQ6_K*>(dst), n / kQKK, importance, sigma2); break;
    default: return quantize_row(type, x, dst, n);  // Q8_0 and plain types: round to nearest is already optimal enough
  }
  return Status::Ok();
}

Expected<double> weighted_row_error(TensorType type, const float* x, const void* q, int64_t n, const float* importance) {
  std::vector<float> back(static_cast<size_t>(n));
  FRUGAL_RETURN_IF_ERROR(dequantize_row(type, q, back.data(), n));
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = double(back[i]) - x[i];
    err += (importance ? importance[i] : 1.0) * e * e;
  }
  return err;
}

}  // namespace frugal::quant
