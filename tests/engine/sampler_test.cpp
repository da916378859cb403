// Sampler chain: each stage checked on small hand-made distributions where
// the allowed set of tokens is known exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "frugal/sampler.h"

namespace frugal {
namespace {

// Logits whose softmax (at temperature 1) is the given probabilities.
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::set<int32_t> drawn_set(const SamplerParams& p, const std::vector<float>& logits, int n = 2000) {
  Sampler s(p, static_cast<int>(logits.size()));
  std::set<int32_t> seen;
  for (int i = 0; i < n; ++i) seen.insert(s.sample(logits));
  return seen;
}

SamplerParams plain(float temp) {
  return {.temperature = temp, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 42};
}

TEST(Sampler, GreedyPicksArgmaxAndLowestIdOnTies) {
  Sampler s(plain(0.0f), 5);
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, 2.0f, 3.0f, -1.0f}), 1);
}

// The greedy path scans the logits in eight lanes plus a tail: ties placed in
// different lanes and in the tail must still give the lowest id.
TEST(Sampler, GreedyOnAVocabularyMatchesAScalarArgmax) {
  const int n = 32003;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> logits(n);
    for (float& v : logits) v = nd(rng);
    const float top = 40.0f + trial;
    for (int k : {n - 1 - trial, 5 + 3 * trial, 1000 * trial + 1}) logits[k] = top;  // three tied maxima
    if (trial % 4 == 0) logits[0] = -INFINITY;
    int ref = 0;
    for (int i = 1; i < n; ++i)
      if (logits[i] > logits[ref]) ref = i;
    Sampler s(plain(0.0f), n);
    EXPECT_EQ(s.sample(logits), ref) << "trial " << trial;
  }
}

TEST(Sampler, TopKBreaksTiesAtTheBoundaryByLowestId) {
  auto p = plain(0.05f);  // near-greedy within the kept set
  p.top_k = 2;
  EXPECT_EQ(drawn_set(p, {1.0f, 5.0f, 5.0f, 5.0f, 0.0f}), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, TopKKeepsOnlyKBest) {
  auto p = plain(1.0f);
  p.top_k = 2;
  EXPECT_EQ(drawn_set(p, logits_for({0.1, 0.4, 0.3, 0.2})), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  auto p = plain(1.0f);
  p.top_p = 0.65f;  // 0.4 + 0.3 >= 0.65: tokens 1 and 2
  EXPECT_EQ(drawn_set(p, logits_for({0.1, 0.4, 0.3, 0.2})), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, MinPDropsTokensBelowFractionOfBest) {
  auto p = plain(1.0f);
  p.min_p = 0.6f;  // threshold 0.24: tokens 1 (0.4) and 2 (0.3)
  EXPECT_EQ(drawn_set(p, logits_for({0.1, 0.4, 0.3, 0.2})), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  Sampler s(plain(1.0f), 3);
  const auto logits = logits_for({0.2, 0.5, 0.3});
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  EXPECT_NEAR(counts[0] / double(n), 0.2, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.5, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.3, 0.02);
}

TEST(Sampler, LowTemperatureSharpens) {
  Sampler s(plain(0.05f), 3);
  const auto logits = logits_for({0.3, 0.4, 0.3});
  int best = 0;
  for (int i = 0; i < 1000; ++i) best += s.sample(logits) == 1;
  EXPECT_GT(best, 990);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  const auto logits = logits_for({0.25, 0.25, 0.25, 0.25});
  auto run = [&](uint64_t seed) {
    auto p = plain(1.0f);
    p.seed = seed;
    Sampler s(p, 4);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, RepetitionPenaltyChangesGreedyChoice) {
  auto p = plain(0.0f);
  p.repetition_penalty = 2.0f;
  Sampler s(p, 3);
  s.accept(0);
  // Token 0 (logit 3) is divided by 2 -> 1.5, below token 1 (2.0).
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 1);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  auto p = plain(0.0f);
  p.frequency_penalty = 0.6f;
  Sampler s(p, 3);
  s.accept(0);
  s.accept(0);  // 3.0 - 2 * 0.6 = 1.8 < 2.0
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 1);

  auto q = plain(0.0f);
  q.presence_penalty = 1.5f;
  Sampler t(q, 3);
  t.accept(0);  // 3.0 - 1.5 = 1.5 < 2.0
  EXPECT_EQ(t.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 1);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
  auto p = plain(0.0f);
  p.presence_penalty = 1.5f;
  p.penalty_last_n = 1;
  Sampler s(p, 3);
  s.accept(0);
  s.accept(2);  // token 0 is outside the window of 1
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 0);
}

TEST(Sampler, ValidationNamesTheField) {
  SamplerParams p;
  p.temperature = -1;
  EXPECT_NE(validate_sampler_params(p).message().find("temperature"), std::string::npos);
  p = {};
  p.top_p = 0;
  EXPECT_NE(validate_sampler_params(p).message().find("top_p"), std::string::npos);
  p = {};
  p.min_p = 1.5f;
  EXPECT_NE(validate_sampler_params(p).message().find("min_p"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_NE(validate_sampler_params(p).message().find("repetition_penalty"), std::string::npos);
  EXPECT_TRUE(validate_sampler_params(SamplerParams{}).ok());
}

}  // namespace
}  // namespace frugal
