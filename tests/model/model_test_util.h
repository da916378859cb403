// Shared helpers for the model tests: paths into ../shared, the reference
// JSON, and a greedy/logits driver built on the public API only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frugal/model.h"

namespace frugal::testing {

inline std::string shared_path(const std::string& rel) {
  return std::string(FRUGAL_SHARED_DIR) + "/" + rel;
}

inline const nlohmann::json& references() {
  static const nlohmann::json j = [] {
    std::ifstream in(shared_path("refs/references.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

// Loads a model once per test binary (loading is cheap, but tests share it).
inline const Model& cached_model(const std::string& rel) {
  static std::vector<std::pair<std::string, std::unique_ptr<Model>>> cache;
  for (auto& [k, m] : cache)
    if (k == rel) return *m;
  auto m = Model::load(shared_path(rel));
  if (!m.ok()) {
    ADD_FAILURE() << m.status().to_string();
    std::abort();  // test setup invariant: the shared models must load
  }
  cache.emplace_back(rel, std::move(m).value());
  return *cache.back().second;
}

// Logits of the last prompt position.
inline std::vector<float> last_logits(const Model& model, const std::vector<int32_t>& prompt) {
  auto ctx = InferenceContext::create(model, {.max_context = 256, .max_batch_tokens = 128});
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  std::vector<BatchEntry> batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.push_back({.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()});
  std::vector<float> logits;
  Status s = (*ctx)->forward(batch, logits);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return logits;
}

// Greedy continuation (argmax, lowest id on ties), stopping at `eos`.
inline std::vector<int32_t> greedy(const Model& model, const std::vector<int32_t>& prompt,
                                   int n_new, int32_t eos) {
  auto ctx = InferenceContext::create(model, {.max_context = 256, .max_batch_tokens = 128});
  EXPECT_TRUE(ctx.ok());
  std::vector<BatchEntry> batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.push_back({.seq = 0, .pos = int32_t(i), .token = prompt[i], .want_logits = i + 1 == prompt.size()});
  std::vector<float> logits;
  std::vector<int32_t> out;
  EXPECT_TRUE((*ctx)->forward(batch, logits).ok());
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < n_new; ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    if (next == eos) break;
    BatchEntry e{.seq = 0, .pos = pos++, .token = next, .want_logits = true};
    EXPECT_TRUE((*ctx)->forward({&e, 1}, logits).ok());
  }
  return out;
}

// Indices of the k largest values, largest first.
inline std::vector<int32_t> top_k_ids(const std::vector<float>& v, int k) {
  std::vector<int32_t> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  idx.resize(k);
  return idx;
}

inline double log_sum_exp(const std::vector<float>& v) {
  const float mx = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (float x : v) s += std::exp(double(x) - mx);
  return std::log(s) + mx;
}

// KL(p || q) of the softmax distributions of two logit vectors.
inline double kl_divergence(const std::vector<float>& p_logits, const std::vector<float>& q_logits) {
  const double lp = log_sum_exp(p_logits), lq = log_sum_exp(q_logits);
  double kl = 0;
  for (size_t i = 0; i < p_logits.size(); ++i) {
    const double lpi = p_logits[i] - lp, lqi = q_logits[i] - lq;
    kl += std::exp(lpi) * (lpi - lqi);
  }
  return kl;
}

}  // namespace frugal::testing
