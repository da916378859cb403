// Portable scalar kernels: the fallback for CPUs without AVX2 and the
// baseline the SIMD paths are compared with. Quantized types use the same
// integer dot products (and the same activation quantization) as the SIMD
// code, so results differ only in fp32 summation order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/kernel_table.h"
#include "quant/reference.h"

namespace frugal::kernels {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ4_K;
using quant::BlockQ5_0;
using quant::BlockQ5_1;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// ---- fp32 / fp16 / bf16 weights: 4 independent accumulators per dot so
// the compiler can keep several FMAs in flight even without SIMD.
template <class Load>
void gemm_float(const WeightMatrix& w, const float* x, int64_t n_tokens, float* out, int64_t r0,
                int64_t r1, size_t elem_bytes, Load load) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t K = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = base + static_cast<size_t>(r) * K * elem_bytes;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * K;
      float acc[4] = {0, 0, 0, 0};
      int64_t k = 0;
      for (; k + 4 <= K; k += 4)
        for (int u = 0; u < 4; ++u) acc[u] += load(wr, k + u) * xt[k + u];
      for (; k < K; ++k) acc[0] += load(wr, k) * xt[k];
      out[t * w.rows + r] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
  }
}

void gemm_f32(const WeightMatrix& w, const void* act, int64_t nt, float* out, int64_t r0, int64_t r1) {
  gemm_float(w, static_cast<const float*>(act), nt, out, r0, r1, 4, [](const uint8_t* p, int64_t k) {
    float v;
    std::memcpy(&v, p + 4 * k, 4);
    return v;
  });
}
void gemm_f16(const WeightMatrix& w, const void* act, int64_t nt, float* out, int64_t r0, int64_t r1) {
  gemm_float(w, static_cast<const float*>(act), nt, out, r0, r1, 2,
             [](const uint8_t* p, int64_t k) { return f16_to_f32(load_u16(p + 2 * k)); });
}
void gemm_bf16(const WeightMatrix& w, const void* act, int64_t nt, float* out, int64_t r0, int64_t r1) {
  gemm_float(w, static_cast<const float*>(act), nt, out, r0, r1, 2,
             [](const uint8_t* p, int64_t k) { return bf16_to_f32(load_u16(p + 2 * k)); });
}

// ---- 32-element blocks. Each block type yields its quants as 32 ints in
// element order plus (scale, min); the dot with an activation block is then
// d_w * d_a * sum(q * a) + m_w * d_a * sum(a).
struct Dec32 {
  int q[32];
  float d;
  float m;  // 0 for the symmetric types (their offset is folded into q)
};

inline void decode(const BlockQ4_0& b, Dec32& o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = (b.qs[j] & 0xF) - 8;
    o.q[j + 16] = (b.qs[j] >> 4) - 8;
  }
  o.d = f16_to_f32(b.d);
  o.m = 0;
}
inline void decode(const BlockQ4_1& b, Dec32& o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = b.qs[j] & 0xF;
    o.q[j + 16] = b.qs[j] >> 4;
  }
  o.d = f16_to_f32(b.d);
  o.m = f16_to_f32(b.m);
}
inline void decode(const BlockQ5_0& b, Dec32& o) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = ((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
    o.q[j + 16] = ((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
  }
  o.d = f16_to_f32(b.d);
  o.m = 0;
}
inline void decode(const BlockQ5_1& b, Dec32& o) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = (b.qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    o.q[j + 16] = (b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
  }
  o.d = f16_to_f32(b.d);
  o.m = f16_to_f32(b.m);
}
inline void decode(const BlockQ8_0& b, Dec32& o) {
  for (int j = 0; j < 32; ++j) o.q[j] = b.qs[j];
  o.d = f16_to_f32(b.d);
  o.m = 0;
}

template <class Block>
void gemm_q32(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
              int64_t r1) {
  const int64_t nb = w.cols / 32;
  const auto* W = static_cast<const Block*>(w.data);
  const auto* A = static_cast<const ActQ8*>(act);
  Dec32 dec;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) {
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        decode(W[r * nb + b], dec);
        const ActQ8& a = A[t * nb + b];
        int s = 0;
        for (int j = 0; j < 32; ++j) s += dec.q[j] * a.qs[j];
        acc += dec.d * a.d * static_cast<float>(s) + dec.m * a.d * static_cast<float>(a.sum);
      }
      out[t * w.rows + r] = acc;
    }
  }
}

// ---- K family against Q8_K activations.
void gemm_q4_k(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
               int64_t r1) {
  const int64_t nb = w.cols / 256;
  const auto* W = static_cast<const BlockQ4_K*>(w.data);
  const auto* A = static_cast<const BlockQ8_K*>(act);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n_tokens; ++t) {
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_K& x = W[r * nb + b];
        const BlockQ8_K& a = A[t * nb + b];
        int sum_q = 0, sum_m = 0;
        for (int c = 0; c < 4; ++c) {
          uint8_t sc0, m0, sc1, m1;
          quant::unpack_k_scale_min(2 * c, x.scales, &sc0, &m0);
          quant::unpack_k_scale_min(2 * c + 1, x.scales, &sc1, &m1);
          int s0 = 0, s1 = 0;
          for (int l = 0; l < 32; ++l) {
            s0 += (x.qs[32 * c + l] & 0xF) * a.qs[64 * c + l];
            s1 += (x.qs[32 * c + l] >> 4) * a.qs[64 * c + 32 + l];
          }
          sum_q += sc0 * s0 + sc1 * s1;
          sum_m += m0 * (a.bsums[4 * c] + a.bsums[4 * c + 1]) + m1 * (a.bsums[4 * c + 2] + a.bsums[4 * c + 3]);
        }
        acc += a.d * (f16_to_f32(x.d) * static_cast<float>(sum_q) -
                      f16_to_f32(x.dmin) * static_cast<float>(sum_m));
      }
      out[t * w.rows + r] = acc;
    }
}

void gemm_q5_k(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
               int64_t r1) {
  const int64_t nb = w.cols / 256;
  const auto* W = static_cast<const BlockQ5_K*>(w.data);
  const auto* A = static_cast<const BlockQ8_K*>(act);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n_tokens; ++t) {
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ5_K& x = W[r * nb + b];
        const BlockQ8_K& a = A[t * nb + b];
        int sum_q = 0, sum_m = 0;
        for (int c = 0; c < 4; ++c) {
          uint8_t sc0, m0, sc1, m1;
          quant::unpack_k_scale_min(2 * c, x.scales, &sc0, &m0);
          quant::unpack_k_scale_min(2 * c + 1, x.scales, &sc1, &m1);
          int s0 = 0, s1 = 0;
          for (int l = 0; l < 32; ++l) {
            const int h0 = (x.qh[l] >> (2 * c)) & 1, h1 = (x.qh[l] >> (2 * c + 1)) & 1;
            s0 += ((x.qs[32 * c + l] & 0xF) | (h0 << 4)) * a.qs[64 * c + l];
            s1 += ((x.qs[32 * c + l] >> 4) | (h1 << 4)) * a.qs[64 * c + 32 + l];
          }
          sum_q += sc0 * s0 + sc1 * s1;
          sum_m += m0 * (a.bsums[4 * c] + a.bsums[4 * c + 1]) + m1 * (a.bsums[4 * c + 2] + a.bsums[4 * c + 3]);
        }
        acc += a.d * (f16_to_f32(x.d) * static_cast<float>(sum_q) -
                      f16_to_f32(x.dmin) * static_cast<float>(sum_m));
      }
      out[t * w.rows + r] = acc;
    }
}

void gemm_q6_k(const WeightMatrix& w, const void* act, int64_t n_tokens, float* out, int64_t r0,
               int64_t r1) {
  const int64_t nb = w.cols / 256;
  const auto* W = static_cast<const BlockQ6_K*>(w.data);
  const auto* A = static_cast<const BlockQ8_K*>(act);
  int8_t q[256];
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n_tokens; ++t) {
      float acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ6_K& x = W[r * nb + b];
        const BlockQ8_K& a = A[t * nb + b];
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = x.ql + 64 * h;
          const uint8_t* qh = x.qh + 32 * h;
          int8_t* qq = q + 128 * h;
          for (int l = 0; l < 32; ++l) {
            qq[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            qq[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            qq[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            qq[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
        }
        int sum = 0;
        for (int g = 0; g < 16; ++g) {
          int s = 0;
          for (int l = 0; l < 16; ++l) s += q[16 * g + l] * a.qs[16 * g + l];
          sum += x.scales[g] * s;
        }
        acc += a.d * f16_to_f32(x.d) * static_cast<float>(sum);
      }
      out[t * w.rows + r] = acc;
    }
}

}  // namespace

void quant_q8x32_generic(const float* x, ActQ8* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = quant::nearest_int(x[j] * id);
      y[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = d;
    y[b].sum = sum;
  }
}

void quant_q8k_generic(const float* x, quant::BlockQ8_K* y, int64_t n) {
  quant::quantize_row_q8_k(x, y, n);
}

void fill_generic(KernelTable& t) {
  t.gemm[static_cast<int>(TensorType::kF32)] = gemm_f32;
  t.gemm[static_cast<int>(TensorType::kF16)] = gemm_f16;
  t.gemm[static_cast<int>(TensorType::kBF16)] = gemm_bf16;
  t.gemm[static_cast<int>(TensorType::kQ4_0)] = gemm_q32<BlockQ4_0>;
  t.gemm[static_cast<int>(TensorType::kQ4_1)] = gemm_q32<BlockQ4_1>;
  t.gemm[static_cast<int>(TensorType::kQ5_0)] = gemm_q32<BlockQ5_0>;
  t.gemm[static_cast<int>(TensorType::kQ5_1)] = gemm_q32<BlockQ5_1>;
  t.gemm[static_cast<int>(TensorType::kQ8_0)] = gemm_q32<BlockQ8_0>;
  t.gemm[static_cast<int>(TensorType::kQ4_K)] = gemm_q4_k;
  t.gemm[static_cast<int>(TensorType::kQ5_K)] = gemm_q5_k;
  t.gemm[static_cast<int>(TensorType::kQ6_K)] = gemm_q6_k;
  t.quant_q8x32 = quant_q8x32_generic;
  t.quant_q8k = quant_q8k_generic;
}

}  // namespace frugal::kernels
