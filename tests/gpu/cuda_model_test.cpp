// Whole-model checks of the CUDA backend through the public API: reference
// logits and greedy continuations (../shared/refs), agreement with the CPU
// path for the quantized files, perplexity, CPU+GPU layer splits, and errors
// reported as statuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include <cuda_runtime.h>

#include "backend/backend.h"
#include "frugal/model.h"
#include "engine/metrics.h"
#include "engine/scheduler.h"
#include "frugal/perplexity.h"

namespace frugal::testing {
namespace {

constexpr double kLogitTol = 0.1;   // top-10 logits against the reference
constexpr double kTieGap = 0.05;    // top-1/top-2 gaps below this are near-ties

// FRUGAL_SHARED_DIR in the environment overrides the configured folder (the
// GPU machine gets the files in a different place).
std::string shared_path(const std::string& rel) {
  const char* env = std::getenv("FRUGAL_SHARED_DIR");
  return std::string(env && *env ? env : FRUGAL_SHARED_DIR) + "/" + rel;
}

const nlohmann::json& refs(const std::string& file) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(file);
  if (it == cache.end()) {
    std::ifstream in(shared_path("refs/" + file));
    EXPECT_TRUE(in.good()) << "missing " << shared_path("refs/" + file);
    it = cache.emplace(file, in.good() ? nlohmann::json::parse(in) : nlohmann::json::object()).first;
  }
  return it->second;
}

// Loaded with fine CPU activations: the GPU kernels take fp32 activations,
// so the CPU side they are compared with must not add 8-bit activation
// rounding of its own (on the Q4_K_M file that alone moves top logits by
// more than 0.1).
const Model* load(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto it = cache.find(rel);
  if (it != cache.end()) return it->second.get();
  auto m = Model::load(shared_path(rel), {.fine_activations = true});
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  if (!m.ok()) return nullptr;
  return cache.emplace(rel, std::move(m).value()).first->second.get();
}

ContextOptions gpu(int layers = -1) {
  return {.max_context = 512, .max_batch_tokens = 128, .device = Device::kCuda, .gpu_layers = layers};
}
ContextOptions cpu() { return {.max_context = 512, .max_batch_tokens = 128}; }

std::vector<int32_t> ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

std::vector<float> last_logits(const Model& m, const ContextOptions& o, const std::vector<int32_t>& prompt) {
  auto ctx = InferenceContext::create(m, o);
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  if (!ctx.ok()) return {};
  std::vector<BatchEntry> batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.push_back({.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()});
  std::vector<float> logits;
  Status s = (*ctx)->forward(batch, logits);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return logits;
}

std::vector<int32_t> top_ids(const std::vector<float>& v, int k) {
  std::vector<int32_t> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[i] = int32_t(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  idx.resize(k);
  return idx;
}

double top_gap(const std::vector<float>& v) {
  const auto t = top_ids(v, 2);
  return double(v[t[0]]) - v[t[1]];
}

// Every public prompt: the reference's top-10 logits within kLogitTol, and the
// same top-1 wherever the reference's top-1/top-2 gap exceeds kTieGap.
void expect_reference_logits(const std::string& model_file, const std::string& ref_file, const std::string& key,
                             const ContextOptions& o) {
  const Model* m = load(model_file);
  ASSERT_NE(m, nullptr);
  const auto& section = key.empty() ? refs(ref_file) : refs(ref_file)[key];
  int n = 0;
  for (const auto& p : section["prompts"]["public"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto logits = last_logits(*m, o, ids(p["prompt_ids"]));
    ASSERT_EQ(logits.size(), size_t(m->info().n_vocab));
    const auto ref_ids = ids(p["last_logits_top10_ids"]);
    const auto ref_vals = p["last_logits_top10_values"].get<std::vector<double>>();
    double worst = 0;
    for (size_t i = 0; i < ref_ids.size(); ++i) {
      EXPECT_NEAR(logits[ref_ids[i]], ref_vals[i], kLogitTol) << "token " << ref_ids[i];
      worst = std::max(worst, std::abs(logits[ref_ids[i]] - ref_vals[i]));
    }
    if (ref_vals[0] - ref_vals[1] > kTieGap) {
      EXPECT_EQ(top_ids(logits, 1)[0], ref_ids[0]);
    }
    ::testing::Test::RecordProperty("max_abs_diff_" + std::to_string(n), std::to_string(worst));
    ++n;
  }
  EXPECT_GT(n, 0);
}

// got against want: want's top-10 logits within kLogitTol, and want's top-1
// wherever its top-1/top-2 gap exceeds kTieGap.
void expect_logits_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  const auto top = top_ids(want, 10);
  for (int32_t t : top) EXPECT_NEAR(got[t], want[t], kLogitTol) << "token " << t;
  if (top_gap(want) > kTieGap) {
    EXPECT_EQ(top_ids(got, 1)[0], top[0]);
  }
}

// The last logits of a prompt fed one token per step (the single-token
// decode path), with FRUGAL_CUDA_ROWS_GEMV set to rows_gemv ("0": the
// row-owning GEMVs off).
std::vector<float> stepwise_logits(const Model& m, const std::vector<int32_t>& prompt, const char* rows_gemv) {
  setenv("FRUGAL_CUDA_ROWS_GEMV", rows_gemv, 1);
  auto ctx = InferenceContext::create(m, gpu());
  unsetenv("FRUGAL_CUDA_ROWS_GEMV");
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  if (!ctx.ok()) return {};
  std::vector<float> logits;
  for (size_t i = 0; i < prompt.size(); ++i) {
    BatchEntry e{.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()};
    Status st = (*ctx)->forward({&e, 1}, logits);
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok()) return {};
  }
  return logits;
}

// Quantized files: the GPU must agree with our CPU path on the same file,
// the whole prompt in one step or (stepwise) one token per step -- on files
// whose layers all have split layouts the row-owning GEMVs with the norms
// and SwiGLU in their epilogues, and with those turned off.
void expect_matches_cpu(const std::string& model_file, const ContextOptions& o, bool stepwise = false) {
  const Model* m = load(model_file);
  ASSERT_NE(m, nullptr);
  int n = 0;
  for (const auto& p : refs("references.json")["target"]["prompts"]["public"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto prompt = ids(p["prompt_ids"]);
    const auto want = last_logits(*m, cpu(), prompt);
    if (!stepwise) {
      expect_logits_near(last_logits(*m, o, prompt), want);
    } else {
      for (const char* rows_gemv : {"1", "0"}) {
        SCOPED_TRACE(std::string("FRUGAL_CUDA_ROWS_GEMV=") + rows_gemv);
        expect_logits_near(stepwise_logits(*m, prompt, rows_gemv), want);
      }
    }
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(CudaModel, TargetBf16ReferenceLogits) {
  expect_reference_logits("models/gguf/tiny-llama-target-bf16.gguf", "references.json", "target", gpu());
}
TEST(CudaModel, DraftBf16ReferenceLogits) {
  expect_reference_logits("models/gguf/tiny-llama-draft-bf16.gguf", "references.json", "draft", gpu());
}
TEST(CudaModel, Qwen2ReferenceLogits) {  // NeoX RoPE pairing and QKV biases
  expect_reference_logits("models/tiny-qwen2-bpe", "references-qwen2.json", "", gpu());
}
TEST(CudaModel, TargetBf16SplitLayersReferenceLogits) {
  expect_reference_logits("models/gguf/tiny-llama-target-bf16.gguf", "references.json", "target", gpu(3));
  expect_reference_logits("models/gguf/tiny-llama-target-bf16.gguf", "references.json", "target", gpu(1));
}
TEST(CudaModel, TargetQ8_0MatchesCpu) { expect_matches_cpu("models/gguf/tiny-llama-target-Q8_0.gguf", gpu()); }
TEST(CudaModel, TargetQ4_K_MMatchesCpu) { expect_matches_cpu("models/gguf/tiny-llama-target-Q4_K_M.gguf", gpu()); }
TEST(CudaModel, TargetQ4_0MatchesCpu) { expect_matches_cpu("models/gguf/tiny-llama-target-Q4_0.gguf", gpu()); }
TEST(CudaModel, TargetQ4_K_MSplitMatchesCpu) {
  expect_matches_cpu("models/gguf/tiny-llama-target-Q4_K_M.gguf", gpu(4));
}

TEST(CudaModel, TargetQ8_0SingleTokenStepsMatchCpu) {
  expect_matches_cpu("models/gguf/tiny-llama-target-Q8_0.gguf", gpu(), true);
}
TEST(CudaModel, TargetQ4_0SingleTokenStepsMatchCpu) {
  expect_matches_cpu("models/gguf/tiny-llama-target-Q4_0.gguf", gpu(), true);
}
TEST(CudaModel, KQuantSingleTokenStepsMatchCpu) {  // Q4_K and Q6_K layers (256-wide rows)
  expect_matches_cpu("models/gguf/synth-kquant-256-Q4_K_M.gguf", gpu(), true);
}

// Greedy decoding one token per step (the graph-replayed decode path) equals
// the reference continuation up to the first near-tie.
void expect_greedy(const std::string& model_file, const nlohmann::json& prompts, int32_t eos,
                   const ContextOptions& o) {
  const Model* m = load(model_file);
  ASSERT_NE(m, nullptr);
  int compared = 0;
  for (const auto& p : prompts) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto prompt = ids(p["prompt_ids"]);
    const auto expected = ids(p["greedy_ids"]);
    auto ctx = InferenceContext::create(*m, o);
    ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
    std::vector<BatchEntry> batch;
    for (size_t i = 0; i < prompt.size(); ++i)
      batch.push_back({.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()});
    std::vector<float> logits;
    ASSERT_TRUE((*ctx)->forward(batch, logits).ok());
    int32_t pos = int32_t(prompt.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      if (top_gap(logits) < kTieGap) break;  // near-tie: the continuation may legitimately differ
      const int32_t next = top_ids(logits, 1)[0];
      ASSERT_EQ(next, expected[i]) << "step " << i;
      ++compared;
      if (next == eos) break;
      BatchEntry e{.seq = 0, .pos = pos++, .token = next, .want_logits = true};
      Status s = (*ctx)->forward({&e, 1}, logits);
      ASSERT_TRUE(s.ok()) << s.to_string();
    }
  }
  EXPECT_GT(compared, 20);
  ::testing::Test::RecordProperty("greedy_tokens_compared", std::to_string(compared));
}

TEST(CudaModel, TargetBf16GreedyContinuations) {
  expect_greedy("models/gguf/tiny-llama-target-bf16.gguf", refs("references.json")["target"]["prompts"]["public"], 2,
                gpu());
}
TEST(CudaModel, DraftBf16GreedyContinuations) {
  expect_greedy("models/gguf/tiny-llama-draft-bf16.gguf", refs("references.json")["draft"]["prompts"]["public"], 2,
                gpu());
}
TEST(CudaModel, TargetBf16SplitGreedyContinuations) {
  expect_greedy("models/gguf/tiny-llama-target-bf16.gguf", refs("references.json")["target"]["prompts"]["public"], 2,
                gpu(2));
}

std::string valid_text() {
  std::ifstream in(shared_path("data/valid.txt"));
  EXPECT_TRUE(in.good()) << "missing data/valid.txt";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void expect_reference_perplexity(int gpu_layers) {
  const Model* m = load("models/gguf/tiny-llama-target-bf16.gguf");
  ASSERT_NE(m, nullptr);
  auto r = compute_perplexity(*m, valid_text(),
                              {.n_ctx = 512, .device = Device::kCuda, .gpu_layers = gpu_layers});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const double ref = refs("references.json")["target"]["ppl_valid_ctx512_all_positions"].get<double>();
  std::printf("GPU (gpu_layers %d) ppl_all=%.4f reference=%.4f windows=%d\n", gpu_layers, r->ppl_all, ref, r->windows);
  ::testing::Test::RecordProperty("ppl_all", std::to_string(r->ppl_all));
  EXPECT_NEAR(r->ppl_all, ref, ref * 0.005);
}

TEST(CudaModel, TargetBf16PerplexityWithinHalfPercent) { expect_reference_perplexity(-1); }
TEST(CudaModel, TargetBf16SplitPerplexityWithinHalfPercent) { expect_reference_perplexity(3); }

// Several sequences in one batch, at different positions, equal each run alone.
TEST(CudaModel, MultiSequenceBatchMatchesSingleSequences) {
  const Model* m = load("models/gguf/tiny-llama-target-Q8_0.gguf");
  ASSERT_NE(m, nullptr);
  const std::vector<std::vector<int32_t>> prompts = {{1, 9038, 2501, 263, 931}, {1, 450, 4996}, {1, 306, 763, 304, 2}};
  ContextOptions o = gpu();
  o.max_sequences = 3;
  auto ctx = InferenceContext::create(*m, o);
  ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
  std::vector<BatchEntry> batch;
  for (int s = 0; s < 3; ++s)
    for (size_t i = 0; i < prompts[s].size(); ++i)
      batch.push_back({.seq = s, .pos = int32_t(i), .token = prompts[s][i], .want_logits = i + 1 == prompts[s].size()});
  std::vector<float> logits;
  ASSERT_TRUE((*ctx)->forward(batch, logits).ok());
  const size_t nv = m->info().n_vocab;
  ASSERT_EQ(logits.size(), 3 * nv);
  for (int s = 0; s < 3; ++s) {
    const auto alone = last_logits(*m, gpu(), prompts[s]);
    // The batch (13 rows) takes the cuBLAS path with fp16 operands, the single
    // prompts the GEMV on 8-bit activations (as llama.cpp's and the CPU's
    // quantized matmuls take them), so they agree to that rounding, not bit
    // for bit: the top-10 logits within the tolerance used against the CPU,
    // and the same top-1 where it is not a near-tie. A batching or position
    // error moves logits by whole units.
    const std::vector<float> batched(logits.begin() + s * nv, logits.begin() + (s + 1) * nv);
    for (int32_t t : top_ids(alone, 10)) EXPECT_NEAR(batched[t], alone[t], kLogitTol) << "seq " << s << " token " << t;
    if (top_gap(alone) > kTieGap) EXPECT_EQ(top_ids(batched, 1)[0], top_ids(alone, 1)[0]) << "seq " << s;
  }
}

// Decode steps of a batch of n_seq sequences (by default 12, larger than
// the GEMV path: cuBLAS GEMMs) of 60-93 positions, under the given
// environment settings (read when the context is created).
std::vector<std::vector<float>> batched_decode_logits(const Model& m,
                                                      std::initializer_list<std::pair<const char*, const char*>> env,
                                                      int n_seq = 12) {
  for (const auto& [k, v] : env) setenv(k, v, 1);
  ContextOptions o = gpu();
  o.max_sequences = n_seq;
  auto ctx = InferenceContext::create(m, o);
  for (const auto& [k, v] : env) unsetenv(k);
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  if (!ctx.ok()) return {};
  const size_t nv = m.info().n_vocab;
  std::vector<int32_t> pos(n_seq);
  std::vector<float> last;
  for (int s = 0; s < n_seq; ++s) {
    pos[s] = 60 + 3 * s;
    std::vector<BatchEntry> prompt;
    for (int32_t i = 0; i < pos[s]; ++i)
      prompt.push_back({.seq = s, .pos = i, .token = 100 + 37 * s + 11 * i, .want_logits = i + 1 == pos[s]});
    std::vector<float> logits;
    Status st = (*ctx)->forward(prompt, logits);
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok() || logits.size() != nv) return {};
  }
  std::vector<std::vector<float>> steps;
  for (int step = 0; step < 6; ++step) {
    std::vector<BatchEntry> batch;
    for (int s = 0; s < n_seq; ++s) {
      // Fixed tokens, not sampled ones: runs compared with each other stay on the same inputs.
      batch.push_back({.seq = s, .pos = pos[s]++, .token = 500 + 13 * s + 29 * step, .want_logits = true});
    }
    Status st = (*ctx)->forward(batch, last);
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok() || last.size() != size_t(n_seq) * nv) return steps;
    steps.push_back(last);
  }
  return steps;
}

// From the second step of a shape on, steps replay captured graphs: every
// step's logits equal those of plain launches bit for bit.
TEST(CudaModel, BatchedDecodeGraphsEqualPlainLaunches) {
  for (const char* file : {"models/gguf/tiny-llama-target-Q8_0.gguf", "models/gguf/tiny-llama-target-bf16.gguf"}) {
    SCOPED_TRACE(file);
    const Model* m = load(file);
    ASSERT_NE(m, nullptr);
    const auto plain = batched_decode_logits(*m, {{"FRUGAL_CUDA_GRAPHS", "0"}});
    const auto graphed = batched_decode_logits(*m, {});
    ASSERT_EQ(plain.size(), 6u);
    ASSERT_EQ(graphed.size(), 6u);
    for (size_t step = 0; step < plain.size(); ++step)
      EXPECT_TRUE(plain[step] == graphed[step]) << "step " << step;
  }
}

// Decode batches larger than the GEMV path take attention_decode (one-token
// entries, keys split over warps); the tile kernel computes the same
// attention with another order of additions: the logits agree to the
// reference tolerance, and the top-1 where it is not a near-tie.
TEST(CudaModel, DecodeBatchAttentionMatchesTheTileKernel) {
  const Model* m = load("models/gguf/tiny-llama-target-Q8_0.gguf");
  ASSERT_NE(m, nullptr);
  const auto tiles = batched_decode_logits(*m, {{"FRUGAL_CUDA_DECODE_ATTN", "0"}});
  const auto decode = batched_decode_logits(*m, {});
  ASSERT_EQ(tiles.size(), 6u);
  ASSERT_EQ(decode.size(), 6u);
  EXPECT_NE(tiles, decode) << "bit-equal logits: the switch did not change the kernel";
  const size_t nv = m->info().n_vocab;
  for (size_t step = 0; step < tiles.size(); ++step)
    for (size_t s = 0; s < 12; ++s) {
      const std::vector<float> a(tiles[step].begin() + s * nv, tiles[step].begin() + (s + 1) * nv);
      const std::vector<float> b(decode[step].begin() + s * nv, decode[step].begin() + (s + 1) * nv);
      for (int32_t t : top_ids(a, 10)) EXPECT_NEAR(b[t], a[t], kLogitTol) << "step " << step << " seq " << s;
      if (top_gap(a) > kTieGap) EXPECT_EQ(top_ids(b, 1)[0], top_ids(a, 1)[0]) << "step " << step << " seq " << s;
    }
}

// Small decode batches (5 sequences) on the GEMM path, as 16-bit models run
// them (FRUGAL_CUDA_GEMV_TOKENS=1: every step of more than one token), agree
// with the GEMV path. For 16-bit weights both take 16/32-bit activations:
// the reference tolerance. Q8_0's GEMVs take 8-bit activations and its GEMMs
// fp16 ones, each within kLogitTol of fp32 activations: twice that apart.
TEST(CudaModel, SmallDecodeBatchesOnTheGemmPathMatchTheGemvPath) {
  struct Case {
    const char* file;
    double tol, tie;  // logit tolerance; top-1/top-2 gaps below `tie` may swap
  };
  for (const Case& c : {Case{"models/gguf/tiny-llama-target-bf16.gguf", kLogitTol, kTieGap},
                        Case{"models/gguf/tiny-llama-target-Q8_0.gguf", 2 * kLogitTol, 2 * kLogitTol}}) {
    const char* file = c.file;
    const double tol = c.tol;
    SCOPED_TRACE(file);
    const Model* m = load(file);
    ASSERT_NE(m, nullptr);
    const auto gemv = batched_decode_logits(*m, {{"FRUGAL_CUDA_GEMV_TOKENS", "8"}}, 5);
    const auto gemm = batched_decode_logits(*m, {{"FRUGAL_CUDA_GEMV_TOKENS", "1"}}, 5);
    ASSERT_EQ(gemv.size(), 6u);
    ASSERT_EQ(gemm.size(), 6u);
    const size_t nv = m->info().n_vocab;
    for (size_t step = 0; step < gemv.size(); ++step)
      for (size_t s = 0; s < 5; ++s) {
        const std::vector<float> a(gemv[step].begin() + s * nv, gemv[step].begin() + (s + 1) * nv);
        const std::vector<float> b(gemm[step].begin() + s * nv, gemm[step].begin() + (s + 1) * nv);
        for (int32_t t : top_ids(a, 10)) EXPECT_NEAR(b[t], a[t], tol) << "step " << step << " seq " << s;
        if (top_gap(a) > c.tie) EXPECT_EQ(top_ids(b, 1)[0], top_ids(a, 1)[0]) << "step " << step << " seq " << s;
      }
  }
}

// Greedy rows: the device reports their argmax (the host's argmax of the same
// logits) and downloads only the rows still wanted, which equal forward()'s.
TEST(CudaModel, ArgmaxOnlyRowsComeDownAsTokenIds) {
  const Model* m = load("models/gguf/tiny-llama-target-Q8_0.gguf");
  ASSERT_NE(m, nullptr);
  ContextOptions o = gpu();
  o.max_sequences = 4;
  std::vector<BatchEntry> batch;
  for (int s = 0; s < 4; ++s)
    for (int32_t i = 0; i < 3 + s; ++i)
      batch.push_back(
          {.seq = s, .pos = i, .token = 200 + 31 * s + i, .want_logits = i == 2 + s, .argmax_only = s == 1 || s == 2});
  for (bool decode : {false, true}) {  // a prompt batch (cuBLAS), then one entry each (GEMV)
    SCOPED_TRACE(decode ? "decode step" : "prompt step");
    if (decode) {
      std::vector<BatchEntry> next;
      for (int s = 0; s < 4; ++s)
        next.push_back({.seq = s, .pos = 3 + s, .token = 900 + s, .want_logits = true, .argmax_only = s != 3});
      batch = next;
    }
    auto a = InferenceContext::create(*m, o);
    auto b = InferenceContext::create(*m, o);
    ASSERT_TRUE(a.ok() && b.ok());
    if (decode) {  // the same prompts first
      std::vector<BatchEntry> prompts;
      for (int s = 0; s < 4; ++s)
        for (int32_t i = 0; i < 3 + s; ++i)
          prompts.push_back({.seq = s, .pos = i, .token = 200 + 31 * s + i, .want_logits = i == 2 + s});
      std::vector<float> ignored;
      ASSERT_TRUE((*a)->forward(prompts, ignored).ok());
      ASSERT_TRUE((*b)->forward(prompts, ignored).ok());
    }
    std::vector<float> full;
    ASSERT_TRUE((*a)->forward(batch, full).ok());
    auto out = (*b)->step(batch);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const size_t nv = m->info().n_vocab;
    ASSERT_EQ(full.size(), 4 * nv);
    ASSERT_EQ(out->logits.size(), 4 * nv);
    ASSERT_EQ(out->argmax.size(), 4u);
    int row = 0;
    for (const BatchEntry& e : batch) {
      if (!e.want_logits) continue;
      const std::vector<float> want(full.begin() + row * nv, full.begin() + (row + 1) * nv);
      EXPECT_EQ(out->argmax[row], top_ids(want, 1)[0]) << "row " << row;
      if (!e.argmax_only)
        EXPECT_TRUE(std::equal(want.begin(), want.end(), out->logits.begin() + row * nv)) << "row " << row;
      ++row;
    }
  }
}

// Through the serving scheduler, greedy requests take the device's argmax
// (no logits rows come down): one request at a time runs the same kernels as
// forward(), so the tokens equal the host's argmax of forward()'s logits.
TEST(CudaModel, SchedulerGreedyTakesTheDeviceArgmax) {
  const Model* m = load("models/gguf/tiny-llama-target-bf16.gguf");
  ASSERT_NE(m, nullptr);
  auto ctx = InferenceContext::create(*m, gpu());
  ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
  engine::EngineMetrics metrics("test");
  engine::Scheduler sched(*m, **ctx, metrics, {.max_waiting = 1});
  sched.start();
  int compared = 0;
  for (const auto& p : refs("references.json")["target"]["prompts"]["public"]) {
    const auto prompt = ids(p["prompt_ids"]);
    engine::GenerationRequest req;
    req.choices.push_back({.prompt = prompt, .seed = 0});
    req.sampling.temperature = 0.0f;
    req.max_tokens = 16;
    req.ignore_eos = true;
    auto stream = sched.submit(std::move(req));
    ASSERT_TRUE(stream.ok()) << stream.status().to_string();
    std::vector<int32_t> got;
    std::vector<engine::ChoiceEvent> events;
    for (;;) {
      events.clear();
      const auto r = (*stream)->wait(events, std::chrono::milliseconds(100));
      for (const auto& e : events) got.insert(got.end(), e.tokens.begin(), e.tokens.end());
      if (r == engine::RequestStream::WaitResult::kFinished) break;
    }
    ASSERT_TRUE((*stream)->status().ok()) << (*stream)->status().to_string();
    // The same greedy loop on forward()'s logits.
    auto host = InferenceContext::create(*m, gpu());
    ASSERT_TRUE(host.ok());
    std::vector<BatchEntry> batch;
    for (size_t i = 0; i < prompt.size(); ++i)
      batch.push_back({.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()});
    std::vector<float> logits;
    std::vector<int32_t> want;
    ASSERT_TRUE((*host)->forward(batch, logits).ok());
    for (int32_t pos = int32_t(prompt.size()); want.size() < 16; ++pos) {
      want.push_back(top_ids(logits, 1)[0]);
      BatchEntry e{.seq = 0, .pos = pos, .token = want.back(), .want_logits = true};
      ASSERT_TRUE((*host)->forward({&e, 1}, logits).ok());
    }
    EXPECT_EQ(got, want);
    ++compared;
  }
  sched.stop();
  EXPECT_GT(compared, 0);
}

// The decode roofline of `frugal bench --device cuda`: a GPU reports its
// memory clock and bus width (every GPU we target has 300 GB/s to 5 TB/s).
TEST(CudaBackend, ReportsItsPeakMemoryBandwidth) {
  auto b = backend::cuda_backend();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  const double gbps = (*b)->peak_bandwidth_gbps();
  EXPECT_GT(gbps, 250.0);
  EXPECT_LT(gbps, 6000.0);
}

// With the GPU nearly full, loading fails with a status naming the bytes
// needed and free instead of crashing.
TEST(CudaModel, OutOfMemoryIsAStatusWithBytes) {
  auto m = Model::load(shared_path("models/gguf/tiny-llama-target-bf16.gguf"));  // a fresh, not yet uploaded model
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  // The hog is freed on every way out, so a failing check here cannot starve the tests after it.
  std::unique_ptr<void, decltype(&cudaFree)> hog(nullptr, &cudaFree);
  for (size_t leave = size_t{4} << 20; !hog && leave < free_b; leave *= 2) {
    void* p = nullptr;
    if (cudaMalloc(&p, free_b - leave) == cudaSuccess)
      hog.reset(p);
    else
      (void)cudaGetLastError();
  }
  ASSERT_TRUE(hog);
  auto ctx = InferenceContext::create(**m, gpu());
  hog.reset();
  ASSERT_FALSE(ctx.ok());
  const std::string msg = ctx.status().to_string();
  EXPECT_EQ(ctx.status().code(), ErrorCode::kResourceExhausted) << msg;
  EXPECT_NE(msg.find("bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free"), std::string::npos) << msg;
  // After the memory is back, the same model loads.
  auto again = InferenceContext::create(**m, gpu());
  EXPECT_TRUE(again.ok()) << again.status().to_string();
}

}  // namespace
}  // namespace frugal::testing
