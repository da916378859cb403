// Token sampling: penalties, then top-k, top-p and min-p truncation, then
// temperature and a seeded draw. temperature <= 0 means greedy (argmax after
// penalties). The same seed and inputs give the same tokens on every run.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "frugal/status.h"

namespace frugal {

struct SamplerParams {
  float temperature = 0.8f;
  int top_k = 40;           // <= 0: disabled
  float top_p = 0.95f;      // >= 1: disabled
  float min_p = 0.05f;      // <= 0: disabled
  float repetition_penalty = 1.0f;  // 1: disabled (divides positive logits, multiplies negative)
  float presence_penalty = 0.0f;    // subtracted once from every token already seen
  float frequency_penalty = 0.0f;   // subtracted per occurrence
  int penalty_last_n = 64;          // window of recent tokens the penalties look at; -1: all
  uint64_t seed = 0;
};

// Checks ranges (temperature >= 0, top_p in (0, 1], ...); errors name the field.
Status validate_sampler_params(const SamplerParams& p);

class Sampler {
 public:
  Sampler(const SamplerParams& params, int n_vocab);

  // Picks the next token from raw logits (n_vocab values).
  int32_t sample(std::span<const float> logits);
  // True when sample() would return the argmax of the logits as they come
  // (greedy, no penalty moving them): a device may pick the token itself.
  bool argmax_suffices() const { return params_.temperature <= 0.0f && !penalties_change_logits(); }
  // Records a token (prompt or generated) for the penalties.
  void accept(int32_t token);
  void reset();
  const SamplerParams& params() const { return params_; }

 private:
  void apply_penalties(std::vector<std::pair<float, int32_t>>& cand);
  bool penalties_change_logits() const;

  SamplerParams params_;
  int n_vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reserved once
  std::vector<int32_t> counts_;                          // per token, within the window
};

}  // namespace frugal
