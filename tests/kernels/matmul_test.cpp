// Differential tests of every matmul path (each ISA this CPU has) against a
// double-precision reference built from the scalar dequantizer.
//
// Two checks per output:
//  1. exactness given the activation quantization: the kernel must equal
//     sum_k W[r,k] * xq[t,k] (xq = the quantized activations, dequantized)
//     up to fp32 summation error, bounded by 2e-5 * sum_k |W[r,k] * xq[t,k]|;
//  2. the activation quantization itself: |sum_k W (x - xq)| is at most
//     sum over blocks of (d_a / 2) * sum_k |W[r,k]|, since every quant is
//     rounded to nearest with step d_a. For fp32/fp16/bf16 weights xq == x.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/packed.h"
#include "quant/reference.h"

namespace frugal::kernels {
namespace {

std::vector<CpuIsa> available_isas() {
  std::vector<CpuIsa> v;
  for (int i = 0; i <= static_cast<int>(detected_isa()); ++i) v.push_back(static_cast<CpuIsa>(i));
  return v;
}

// Restores the detected ISA when a test ends.
struct IsaGuard {
  CpuIsa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};

// The weight as bound (canonical rows) and, for types with an interleaved
// layout, as prepare_weight() leaves it under the detected ISA; every ISA
// must give the same results for both (ISAs without a packed kernel fall
// back to the canonical rows).
std::vector<std::pair<std::string, WeightMatrix>> weight_variants(const WeightMatrix& w) {
  std::vector<std::pair<std::string, WeightMatrix>> v{{"canonical", w}};
  IsaGuard guard;
  set_isa(detected_isa());
  ThreadPool pool(2);
  WeightMatrix p = w;
  EXPECT_TRUE(prepare_weight(p, pool).ok());
  if (p.packed != nullptr) v.emplace_back("packed", p);
  else EXPECT_TRUE(packed_block_bytes(w.type) == 0 || detected_isa() == CpuIsa::kGeneric);
  return v;
}

struct Problem {
  TensorType type;
  int64_t rows, cols, n_tokens;
  std::vector<uint8_t> wq;   // weights in `type`
  std::vector<float> wf;     // dequantized weights
  std::vector<float> x;      // activations
  std::vector<float> xq;     // activations as the kernel sees them
  std::vector<float> xstep;  // per element: quantization step of its block (0 for fp32 kinds)
};

Problem make_problem(TensorType type, int64_t rows, int64_t cols, int64_t n_tokens, uint32_t seed) {
  Problem p{type, rows, cols, n_tokens, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = nd(rng) * 0.1f;
  const size_t rs = quant::row_size(type, cols);
  p.wq.resize(rs * rows);
  p.wf.resize(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(quant::quantize_row(type, w.data() + r * cols, p.wq.data() + r * rs, cols).ok());
    EXPECT_TRUE(quant::dequantize_row(type, p.wq.data() + r * rs, p.wf.data() + r * cols, cols).ok());
  }
  p.x.resize(static_cast<size_t>(n_tokens * cols));
  for (auto& v : p.x) v = nd(rng);
  // Some structure: a zero block and a large outlier.
  if (cols >= 64) {
    for (int k = 32; k < 64; ++k) p.x[k] = 0.0f;
    p.x[cols - 1] = 9.0f;
  }
  p.xq = p.x;
  p.xstep.assign(p.x.size(), 0.0f);
  const ActKind kind = act_kind(type);
  for (int64_t t = 0; t < n_tokens && kind != ActKind::kF32; ++t) {
    const float* xt = p.x.data() + t * cols;
    if (kind == ActKind::kQ8x32) {
      std::vector<ActQ8> a(static_cast<size_t>(cols / 32));
      quant_q8x32_generic(xt, a.data(), cols);
      for (int64_t b = 0; b < cols / 32; ++b)
        for (int j = 0; j < 32; ++j) {
          p.xq[t * cols + b * 32 + j] = a[b].d * a[b].qs[j];
          p.xstep[t * cols + b * 32 + j] = a[b].d;
        }
    } else {
      std::vector<quant::BlockQ8_K> a(static_cast<size_t>(cols / 256));
      quant_q8k_generic(xt, a.data(), cols);
      for (int64_t b = 0; b < cols / 256; ++b)
        for (int j = 0; j < 256; ++j) {
          p.xq[t * cols + b * 256 + j] = a[b].d * a[b].qs[j];
          p.xstep[t * cols + b * 256 + j] = a[b].d;
        }
    }
  }
  return p;
}

void check(const Problem& p, const std::vector<float>& out, const std::string& what) {
  int bad = 0;
  for (int64_t t = 0; t < p.n_tokens; ++t)
    for (int64_t r = 0; r < p.rows; ++r) {
      double exact = 0, mag = 0, full = 0, qbound = 0;
      for (int64_t k = 0; k < p.cols; ++k) {
        const double w = p.wf[r * p.cols + k];
        exact += w * p.xq[t * p.cols + k];
        mag += std::fabs(w * p.xq[t * p.cols + k]);
        full += w * p.x[t * p.cols + k];
        qbound += std::fabs(w) * 0.5 * p.xstep[t * p.cols + k];
      }
      const double got = out[t * p.rows + r];
      const double tol = 2e-5 * mag + 1e-6;
      if (std::fabs(got - exact) > tol || std::fabs(got - full) > qbound * 1.001 + tol) {
        if (++bad <= 5)
          ADD_FAILURE() << what << " t=" << t << " r=" << r << " got " << got << " exact " << exact
                        << " (tol " << tol << ") fp32-x " << full << " (bound " << qbound << ")";
      }
    }
  EXPECT_EQ(bad, 0) << what;
}

struct Shape {
  int64_t rows, cols, n_tokens;
};

void run_type(TensorType type, const std::vector<Shape>& shapes) {
  IsaGuard guard;
  ThreadPool pool1(1), pool3(3);
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    const Problem p = make_problem(type, s.rows, s.cols, s.n_tokens, seed++);
    const WeightMatrix w0{type, p.wq.data(), s.rows, s.cols};
    ASSERT_TRUE(validate_weight(w0).ok());
    for (const auto& [layout, w] : weight_variants(w0)) {
      for (CpuIsa isa : available_isas()) {
        ASSERT_TRUE(set_isa(isa));
        for (ThreadPool* pool : {&pool1, &pool3}) {
          MatmulScratch scratch;
          std::vector<float> out(static_cast<size_t>(s.rows * s.n_tokens), NAN);
          matmul(w, p.x.data(), s.n_tokens, out.data(), *pool, scratch);
          check(p, out,
                std::string(tensor_type_name(type)) + " " + layout + " " + std::string(isa_name(isa)) +
                    " rows=" + std::to_string(s.rows) + " cols=" + std::to_string(s.cols) +
                    " tokens=" + std::to_string(s.n_tokens) + " threads=" + std::to_string(pool->size()));
        }
      }
    }
  }
}

// {300, ..., 20}: a prompt-sized batch over more row units than threads x 4
// (the finer chunks run_rows hands out from 16 tokens on).
const std::vector<Shape> kShapes32 = {{1, 32, 1},    {5, 64, 1},    {37, 96, 3},  {130, 384, 7}, {67, 160, 64},
                                      {16, 1024, 5}, {300, 384, 1}, {9, 32, 13},  {300, 384, 20}};
const std::vector<Shape> kShapes256 = {{1, 256, 1},   {5, 512, 1},    {37, 256, 3}, {130, 768, 7}, {67, 256, 64},
                                       {300, 512, 1}, {9, 256, 13},   {21, 512, 8}, {300, 512, 20}};
const std::vector<Shape> kShapesF = {{1, 1, 1},   {5, 7, 1},    {37, 33, 3},  {130, 384, 7},
                                     {67, 100, 64}, {300, 384, 1}, {9, 1000, 13}, {13, 8, 5}};

TEST(Matmul, F32) { run_type(TensorType::kF32, kShapesF); }
TEST(Matmul, F16) { run_type(TensorType::kF16, kShapesF); }
TEST(Matmul, BF16) { run_type(TensorType::kBF16, kShapesF); }
TEST(Matmul, Q4_0) { run_type(TensorType::kQ4_0, kShapes32); }
TEST(Matmul, Q4_1) { run_type(TensorType::kQ4_1, kShapes32); }
TEST(Matmul, Q5_0) { run_type(TensorType::kQ5_0, kShapes32); }
TEST(Matmul, Q5_1) { run_type(TensorType::kQ5_1, kShapes32); }
TEST(Matmul, Q8_0) { run_type(TensorType::kQ8_0, kShapes32); }
TEST(Matmul, Q4_K) { run_type(TensorType::kQ4_K, kShapes256); }
TEST(Matmul, Q5_K) { run_type(TensorType::kQ5_K, kShapes256); }
TEST(Matmul, Q6_K) { run_type(TensorType::kQ6_K, kShapes256); }

// Weights with extreme quants everywhere (all nibbles 0 or 15, all Q6 quants
// 0 or 63, scales at their limits) catch saturation in integer SIMD paths.
TEST(Matmul, ExtremeQuants) {
  IsaGuard guard;
  ThreadPool pool(1);
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ5_0, TensorType::kQ5_1,
                          TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    const int64_t rows = 6, cols = 512, nt = 5;
    Problem p = make_problem(type, rows, cols, nt, 99);
    std::mt19937 rng(4);
    // Random bytes everywhere except the fp16 scales, which must stay finite.
    const size_t rs = quant::row_size(type, cols);
    const size_t bsz = rs / (cols / quant::block_size(type));
    for (size_t i = 0; i < p.wq.size(); ++i) {
      const size_t off = i % bsz;
      const bool scale_field = (type == TensorType::kQ6_K) ? off >= 208
                               : (type == TensorType::kQ4_0 || type == TensorType::kQ5_0 || type == TensorType::kQ8_0) ? off < 2
                                                                                                                      : off < 4;
      if (!scale_field) p.wq[i] = (rng() & 1) ? 0xFF : (type == TensorType::kQ8_0 ? 0x81 : 0x00);
    }
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_TRUE(quant::dequantize_row(type, p.wq.data() + r * rs, p.wf.data() + r * cols, cols).ok());
    // Activations at +-full scale.
    for (int64_t i = 0; i < nt * cols; ++i) p.x[i] = (rng() & 1) ? 1.0f : -1.0f;
    p.xq = p.x;  // +-1 quantizes exactly (d = 1/127, q = +-127)
    for (auto& s : p.xstep) s = 1.0f / 127.0f;
    for (const auto& [layout, w] : weight_variants(WeightMatrix{type, p.wq.data(), rows, cols})) {
      for (CpuIsa isa : available_isas()) {
        ASSERT_TRUE(set_isa(isa));
        MatmulScratch scratch;
        std::vector<float> out(rows * nt);
        matmul(w, p.x.data(), nt, out.data(), pool, scratch);
        check(p, out, std::string(tensor_type_name(type)) + " extreme " + layout + " " + std::string(isa_name(isa)));
      }
    }
  }
}

// Q8_0 quants at both ends of int8 (127 and -128; the packed layout stores
// q + 128, 0..255) against activations of +-127, whole rows and tokens at
// once: the int16 sums of the AVX2 tile reach their largest magnitudes
// (all-127 rows against all -127 tokens) here.
TEST(Matmul, Q8_0AtInt8Limits) {
  IsaGuard guard;
  ThreadPool pool(1);
  const TensorType type = TensorType::kQ8_0;
  const int64_t rows = 11, cols = 256, nt = 6;
  Problem p = make_problem(type, rows, cols, nt, 7);
  std::mt19937 rng(5);
  const size_t rs = quant::row_size(type, cols);
  const uint8_t ends[2] = {0x7F, 0x80};
  for (int64_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < rs; ++i) {
      if (i % 34 < 2) continue;  // the fp16 scale of each 34-byte block
      const size_t k = i % 34 - 2;
      uint8_t& q = p.wq[r * rs + i];
      switch (r % 4) {
        case 0: q = 0x7F; break;
        case 1: q = 0x80; break;
        case 2: q = ends[k % 2]; break;
        default: q = ends[rng() & 1]; break;
      }
    }
  for (int64_t r = 0; r < rows; ++r)
    ASSERT_TRUE(quant::dequantize_row(type, p.wq.data() + r * rs, p.wf.data() + r * cols, cols).ok());
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t k = 0; k < cols; ++k) {
      const float sign = t == 0 ? 1.0f : t == 1 ? -1.0f : t == 2 ? (k % 2 ? 1.0f : -1.0f) : (rng() & 1) ? 1.0f : -1.0f;
      p.x[t * cols + k] = sign;
    }
  p.xq = p.x;  // +-1 quantizes exactly (d = 1/127, q = +-127)
  for (auto& s : p.xstep) s = 1.0f / 127.0f;
  for (const auto& [layout, w] : weight_variants(WeightMatrix{type, p.wq.data(), rows, cols})) {
    for (CpuIsa isa : available_isas()) {
      ASSERT_TRUE(set_isa(isa));
      for (int64_t n : {int64_t{1}, nt}) {  // the decode tile and the prefill tiles
        MatmulScratch scratch;
        std::vector<float> out(rows * n);
        matmul(w, p.x.data(), n, out.data(), pool, scratch);
        Problem first = p;
        first.n_tokens = n;
        check(first, out, "Q8_0 int8 limits " + layout + " " + std::string(isa_name(isa)) + " tokens=" + std::to_string(n));
      }
    }
  }
}

// A group gives exactly what separate matmul() calls give: the same kernels
// on the same rows, whether the weights share an activation format (one
// quantization, one pass over the pool) or not (run one by one).
TEST(Matmul, GroupEqualsSeparateCalls) {
  const std::vector<std::vector<std::pair<TensorType, int64_t>>> groups = {
      {{TensorType::kQ4_0, 40}, {TensorType::kQ4_0, 24}, {TensorType::kQ4_0, 136}},
      {{TensorType::kQ4_K, 48}, {TensorType::kQ6_K, 17}},
      {{TensorType::kQ8_0, 33}, {TensorType::kQ6_K, 16}, {TensorType::kBF16, 8}},
      {{TensorType::kF32, 5}, {TensorType::kF16, 70}},
  };
  const int64_t cols = 512;
  ThreadPool pool1(1), pool3(3);
  for (const auto& g : groups) {
    std::vector<Problem> probs;
    std::vector<WeightMatrix> ws;
    for (size_t i = 0; i < g.size(); ++i) probs.push_back(make_problem(g[i].first, g[i].second, cols, 9, 40 + i));
    for (size_t i = 0; i < g.size(); ++i) {
      WeightMatrix w{g[i].first, probs[i].wq.data(), g[i].second, cols};
      ASSERT_TRUE(prepare_weight(w, pool3).ok());
      ws.push_back(w);
    }
    const std::vector<float>& x = probs[0].x;
    for (int64_t nt : {1, 9}) {
      for (ThreadPool* pool : {&pool1, &pool3}) {
        MatmulScratch scratch;
        std::vector<std::vector<float>> sep(g.size()), grp(g.size());
        std::vector<MatmulOp> ops;
        for (size_t i = 0; i < g.size(); ++i) {
          sep[i].assign(static_cast<size_t>(g[i].second * nt), NAN);
          grp[i].assign(static_cast<size_t>(g[i].second * nt), NAN);
          matmul(ws[i], x.data(), nt, sep[i].data(), *pool, scratch);
          ops.push_back({&ws[i], grp[i].data()});
        }
        matmul_group(ops, x.data(), nt, *pool, scratch);
        for (size_t i = 0; i < g.size(); ++i)
          for (size_t k = 0; k < sep[i].size(); ++k)
            ASSERT_EQ(sep[i][k], grp[i][k]) << tensor_type_name(g[i].first) << " op " << i << " element " << k
                                            << " tokens " << nt << " threads " << pool->size();
      }
    }
  }
}

TEST(Matmul, NoAllocationAfterReserve) {
  ThreadPool pool(2);
  MatmulScratch scratch;
  scratch.reserve(64, 1024);
  const int before = scratch.allocations();
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kBF16}) {
    for (int64_t nt : {1, 17, 64}) {
      Problem p = make_problem(type, 20, 1024, nt, 5);
      std::vector<float> out(20 * nt);
      matmul(WeightMatrix{type, p.wq.data(), 20, 1024}, p.x.data(), nt, out.data(), pool, scratch);
    }
  }
  EXPECT_EQ(scratch.allocations(), before);
}

// fine_activations: the two-pass (hi + residual) activations must bring the
// product to within ~1/100 of the 8-bit error against fp32 activations, on
// every ISA and layout, across a token-chunk boundary, without allocating
// once the scratch is reserved for it. Activations are heavy-tailed (a few
// 30x outliers) as the FFN down projection's inputs are.
TEST(Matmul, FineActivationsApproachFp32Activations) {
  const int64_t rows = 40, cols = 256;
  ThreadPool pool(3);
  IsaGuard guard;
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ5_1, TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    for (int64_t nt : {1, 5, 130}) {
      Problem p = make_problem(type, rows, cols, nt, 77);
      std::mt19937 rng(9);
      for (size_t i = 0; i < p.x.size(); ++i)
        if (rng() % 41 == 0) p.x[i] *= 30.0f;
      std::vector<double> exact(static_cast<size_t>(rows * nt));
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double acc = 0;
          for (int64_t k = 0; k < cols; ++k) acc += double(p.wf[r * cols + k]) * p.x[t * cols + k];
          exact[t * rows + r] = acc;
        }
      for (const auto& [layout, w0] : weight_variants(WeightMatrix{type, p.wq.data(), rows, cols})) {
        for (CpuIsa isa : available_isas()) {
          ASSERT_TRUE(set_isa(isa));
          WeightMatrix wf = w0;
          wf.fine_activations = true;
          MatmulScratch scratch;
          scratch.reserve(nt, cols, rows);
          const int allocs = scratch.allocations();
          std::vector<float> coarse(rows * nt, NAN), fine(rows * nt, NAN);
          matmul(wf, p.x.data(), nt, fine.data(), pool, scratch);
          EXPECT_EQ(scratch.allocations(), allocs);
          matmul(w0, p.x.data(), nt, coarse.data(), pool, scratch);
          double err_coarse = 0, err_fine = 0;
          for (size_t i = 0; i < exact.size(); ++i) {
            err_coarse = std::max(err_coarse, std::abs(coarse[i] - exact[i]));
            err_fine = std::max(err_fine, std::abs(fine[i] - exact[i]));
          }
          const std::string what = std::string(tensor_type_name(type)) + " " + layout + " " +
                                   std::string(isa_name(isa)) + " tokens " + std::to_string(nt);
          EXPECT_GT(err_coarse, 1e-3) << what;  // the 8-bit path does lose precision here
          EXPECT_LT(err_fine, err_coarse / 50) << what << ": fine " << err_fine << " coarse " << err_coarse;
        }
      }
    }
  }
}

// pack_rows / unpack_row are exact inverses, including a partial last group.
TEST(Matmul, PackRoundTrip) {
  for (TensorType type : {TensorType::kQ4_0, TensorType::kQ8_0, TensorType::kQ4_K, TensorType::kQ6_K}) {
    const int64_t rows = 13, cols = quant::block_size(type) == 256 ? 512 : 96;
    const Problem p = make_problem(type, rows, cols, 1, 3);
    const size_t rs = quant::row_size(type, cols);
    const int64_t groups = (rows + kPackRows - 1) / kPackRows;
    std::vector<uint8_t> packed(groups * (cols / quant::block_size(type)) * packed_block_bytes(type));
    pack_rows(type, p.wq.data(), rows, cols, packed.data(), 0, groups);
    std::vector<uint8_t> row(rs);
    for (int64_t r = 0; r < rows; ++r) {
      unpack_row(type, packed.data(), rows, cols, r, row.data());
      EXPECT_EQ(std::memcmp(row.data(), p.wq.data() + r * rs, rs), 0) << tensor_type_name(type) << " row " << r;
    }
  }
}

TEST(Matmul, ValidateWeight) {
  uint8_t buf[64] = {};
  EXPECT_TRUE(validate_weight({TensorType::kQ4_0, buf, 1, 32}).ok());
  EXPECT_FALSE(validate_weight({TensorType::kQ4_0, buf, 1, 48}).ok());
  EXPECT_FALSE(validate_weight({TensorType::kQ4_K, buf, 1, 384}).ok());
  EXPECT_FALSE(validate_weight({TensorType::kQ2_K, buf, 1, 256}).ok());
  EXPECT_FALSE(validate_weight({TensorType::kF32, nullptr, 1, 8}).ok());
  EXPECT_TRUE(matmul_supported(TensorType::kQ6_K));
  EXPECT_FALSE(matmul_supported(TensorType::kQ8_K));
}

TEST(Matmul, ActivationQuantizersMatchAcrossIsas) {
  IsaGuard guard;
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(2048);
  for (auto& v : x) v = nd(rng);
  for (int i = 0; i < 32; ++i) x[i] = 0.0f;
  std::vector<ActQ8> a0(64), a1(64);
  std::vector<quant::BlockQ8_K> k0(8), k1(8);
  quant_q8x32_generic(x.data(), a0.data(), 2048);
  quant_q8k_generic(x.data(), k0.data(), 2048);
  for (CpuIsa isa : available_isas()) {
    ASSERT_TRUE(set_isa(isa));
    kernel_table().quant_q8x32(x.data(), a1.data(), 2048);
    kernel_table().quant_q8k(x.data(), k1.data(), 2048);
    EXPECT_EQ(std::memcmp(a0.data(), a1.data(), a0.size() * sizeof(ActQ8)), 0) << isa_name(isa);
    EXPECT_EQ(std::memcmp(k0.data(), k1.data(), k0.size() * sizeof(quant::BlockQ8_K)), 0) << isa_name(isa);
  }
}

// Software prefetch (on or off by CPU vendor, cpu_isa.h) only moves data
// between cache levels: single-token GEMVs give the same bits either way and
// stay within the reference tolerance, on every ISA and layout.
TEST(Matmul, WeightPrefetchLeavesResultsUnchanged) {
  IsaGuard guard;
  const bool saved = weight_prefetch();
  ThreadPool pool(2);
  uint32_t seed = 500;
  for (TensorType type : {TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
                          TensorType::kQ4_K, TensorType::kQ6_K}) {
    const int64_t rows = 77, cols = 1024;  // 77: a partial row tile and a partial 8-row group
    const Problem p = make_problem(type, rows, cols, 1, seed++);
    for (const auto& [layout, w] : weight_variants({type, p.wq.data(), rows, cols})) {
      for (CpuIsa isa : available_isas()) {
        ASSERT_TRUE(set_isa(isa));
        std::vector<float> out[2];
        for (int on = 0; on < 2; ++on) {
          set_weight_prefetch(on == 1);
          EXPECT_EQ(weight_prefetch(), on == 1);
          MatmulScratch scratch;
          out[on].assign(rows, NAN);
          matmul(w, p.x.data(), 1, out[on].data(), pool, scratch);
        }
        const std::string what = std::string(tensor_type_name(type)) + " " + layout + " " + std::string(isa_name(isa));
        check(p, out[1], what + " prefetch on");
        EXPECT_EQ(0, std::memcmp(out[0].data(), out[1].data(), rows * sizeof(float))) << what;
      }
    }
  }
  set_weight_prefetch(saved);
}

TEST(CpuIsa, SetIsaRefusesUnsupported) {
  IsaGuard guard;
  EXPECT_TRUE(set_isa(CpuIsa::kGeneric));
  EXPECT_EQ(active_isa(), CpuIsa::kGeneric);
  if (detected_isa() < CpuIsa::kAvx512) EXPECT_FALSE(set_isa(CpuIsa::kAvx512));
}

}  // namespace
}  // namespace frugal::kernels
