// Whole-model outputs against the Hugging Face transformers references in
// ../shared/refs/references.json (float32 from the bf16 weights).
#include <cstdio>

#include "model_test_util.h"

namespace frugal::testing {
namespace {

constexpr double kLogitTol = 2e-3;

std::vector<int32_t> ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

void expect_top10_match(const std::string& model_file, const std::string& ref_key) {
  const Model& model = cached_model(model_file);
  for (const auto& p : references()[ref_key]["prompts"]["public"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto logits = last_logits(model, ids(p["prompt_ids"]));
    ASSERT_EQ(logits.size(), 32000u);
    const auto ref_ids = ids(p["last_logits_top10_ids"]);
    const auto ref_vals = p["last_logits_top10_values"].get<std::vector<double>>();
    EXPECT_EQ(top_k_ids(logits, 10), ref_ids);
    for (size_t i = 0; i < ref_ids.size(); ++i)
      EXPECT_NEAR(logits[ref_ids[i]], ref_vals[i], kLogitTol) << "token " << ref_ids[i];
    EXPECT_NEAR(log_sum_exp(logits), p["last_logits_logsumexp"].get<double>(), kLogitTol);
  }
}

TEST(ReferenceOutputs, TargetBf16GreedyContinuations) {
  const Model& model = cached_model("models/gguf/tiny-llama-target-bf16.gguf");
  for (const auto& p : references()["target"]["prompts"]["public"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto expected = ids(p["greedy_ids"]);
    EXPECT_EQ(greedy(model, ids(p["prompt_ids"]), 48, /*eos=*/2), expected);
  }
}

TEST(ReferenceOutputs, TargetBf16Top10Logits) {
  expect_top10_match("models/gguf/tiny-llama-target-bf16.gguf", "target");
}

TEST(ReferenceOutputs, DraftBf16Top10Logits) {
  expect_top10_match("models/gguf/tiny-llama-draft-bf16.gguf", "draft");
}

// Q8_0 weights: the top-1 token must not move; the KL divergence to the bf16
// distribution is reported and bounded.
TEST(ReferenceOutputs, TargetQ8_0Top1AndKl) {
  const Model& bf16 = cached_model("models/gguf/tiny-llama-target-bf16.gguf");
  const Model& q8 = cached_model("models/gguf/tiny-llama-target-Q8_0.gguf");
  double kl_sum = 0;
  int n = 0;
  for (const auto& p : references()["target"]["prompts"]["public"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto prompt = ids(p["prompt_ids"]);
    const auto lq = last_logits(q8, prompt);
    const auto lb = last_logits(bf16, prompt);
    EXPECT_EQ(top_k_ids(lq, 1)[0], ids(p["last_logits_top10_ids"])[0]);
    kl_sum += kl_divergence(lb, lq);
    ++n;
  }
  const double mean_kl = kl_sum / n;
  std::printf("Q8_0 vs bf16: mean KL divergence at the last prompt position = %.6f over %d prompts\n",
              mean_kl, n);
  RecordProperty("mean_kl_q8_0", std::to_string(mean_kl));
  EXPECT_LT(mean_kl, 2e-3);
}

// step() views the rows forward() copies; on the CPU the argmax hint changes
// nothing (every row is computed, no argmax is reported).
TEST(ReferenceOutputs, StepViewEqualsForwardAndCpuIgnoresTheArgmaxHint) {
  const Model& model = cached_model("models/gguf/tiny-llama-target-Q8_0.gguf");
  const ContextOptions o{.max_sequences = 2, .max_context = 64, .max_batch_tokens = 16};
  std::vector<BatchEntry> batch;
  for (int s = 0; s < 2; ++s)
    for (int32_t i = 0; i < 4; ++i)
      batch.push_back({.seq = s, .pos = i, .token = 300 + 17 * s + i, .want_logits = i == 3, .argmax_only = s == 1});
  auto a = InferenceContext::create(model, o);
  auto b = InferenceContext::create(model, o);
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<float> copied;
  ASSERT_TRUE((*a)->forward(batch, copied).ok());
  auto out = (*b)->step(batch);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_TRUE(out->argmax.empty());
  ASSERT_EQ(out->logits.size(), copied.size());
  EXPECT_TRUE(std::equal(copied.begin(), copied.end(), out->logits.begin()));
  EXPECT_EQ(copied.size(), 2u * model.info().n_vocab);
}

}  // namespace
}  // namespace frugal::testing
