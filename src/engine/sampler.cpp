#include "frugal/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace frugal {

Status validate_sampler_params(const SamplerParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return invalid_argument("temperature must be a finite number >= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return invalid_argument("top_p must be in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return invalid_argument("min_p must be in [0, 1]");
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return invalid_argument("repetition_penalty must be > 0");
  if (!std::isfinite(p.presence_penalty) || std::fabs(p.presence_penalty) > 2.0f)
    return invalid_argument("presence_penalty must be in [-2, 2]");
  if (!std::isfinite(p.frequency_penalty) || std::fabs(p.frequency_penalty) > 2.0f)
    return invalid_argument("frequency_penalty must be in [-2, 2]");
  if (p.penalty_last_n < -1) return invalid_argument("penalty_last_n must be >= -1");
  return Status::Ok();
}

Sampler::Sampler(const SamplerParams& params, int n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  candidates_.reserve(n_vocab);
  counts_.assign(n_vocab, 0);
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(params_.seed);
}

void Sampler::accept(int32_t token) {
  if (token >= 0 && token < n_vocab_) history_.push_back(token);
}

bool Sampler::penalties_change_logits() const {
  const SamplerParams& p = params_;
  if (p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) return false;
  return p.penalty_last_n != 0 && !history_.empty();
}

void Sampler::apply_penalties(std::vector<std::pair<float, int32_t>>& cand) {
  const SamplerParams& p = params_;
  if (!penalties_change_logits()) return;
  const size_t window = p.penalty_last_n < 0 ? history_.size()
                                             : std::min<size_t>(history_.size(), p.penalty_last_n);
  auto& counts = counts_;
  for (size_t i = history_.size() - window; i < history_.size(); ++i) ++counts[history_[i]];
  for (size_t i = history_.size() - window; i < history_.size(); ++i) {
    const int32_t t = history_[i];
    if (counts[t] == 0) continue;  // already applied for this token
    float& logit = cand[t].first;  // cand is still indexed by token id here
    if (p.repetition_penalty != 1.0f)
      logit = logit > 0 ? logit / p.repetition_penalty : logit * p.repetition_penalty;
    logit -= p.frequency_penalty * counts[t] + p.presence_penalty;
    counts[t] = 0;
  }
}

namespace {

// Index of the largest logit, the lowest one among equals (the order the
// sorting paths below use). Eight running maxima keep the first pass off a
// single dependency chain; a batched server samples every sequence per step.
int32_t argmax(std::span<const float> x) {
  float best[8];
  std::fill(best, best + 8, -INFINITY);
  size_t i = 0;
  for (; i + 8 <= x.size(); i += 8)
    for (int j = 0; j < 8; ++j) best[j] = std::max(best[j], x[i + j]);
  float m = *std::max_element(best, best + 8);
  for (; i < x.size(); ++i) m = std::max(m, x[i]);
  for (size_t k = 0; k < x.size(); ++k)
    if (x[k] == m) return static_cast<int32_t>(k);
  return 0;  // no finite or infinite maximum (all NaN)
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits) {
  const int n = std::min<int>(n_vocab_, static_cast<int>(logits.size()));
  if (params_.temperature <= 0.0f && !penalties_change_logits()) return argmax(logits.first(n));
  auto& cand = candidates_;
  cand.resize(n);
  for (int i = 0; i < n; ++i) cand[i] = {logits[i], i};
  apply_penalties(cand);

  auto greater = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (params_.temperature <= 0.0f) {
    return std::min_element(cand.begin(), cand.end(), greater)->second;
  }

  // top-k: keep the k best, sorted.
  size_t keep = cand.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) keep = params_.top_k;
  if (keep < cand.size()) std::nth_element(cand.begin(), cand.begin() + (keep - 1), cand.end(), greater);
  std::sort(cand.begin(), cand.begin() + keep, greater);  // the top k are unique: ties go by token id
  cand.resize(keep);

  // Probabilities at temperature 1 decide top-p and min-p, as in llama.cpp.
  const float max_logit = cand.front().first;
  double sum = 0;
  for (auto& c : cand) sum += std::exp(static_cast<double>(c.first - max_logit));
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t k = 0;
    for (; k < cand.size(); ++k) {
      cum += std::exp(static_cast<double>(cand[k].first - max_logit)) / sum;
      if (cum >= params_.top_p) {
        ++k;
        break;
      }
    }
    cand.resize(std::max<size_t>(1, std::min(k, cand.size())));
  }
  if (params_.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p)
    const float threshold = max_logit + std::log(params_.min_p);
    size_t k = 1;
    while (k < cand.size() && cand[k].first >= threshold) ++k;
    cand.resize(k);
  }

  // Temperature, then a draw.
  double total = 0;
  for (auto& c : cand) total += std::exp(static_cast<double>(c.first - max_logit) / params_.temperature);
  std::uniform_real_distribution<double> uni(0.0, total);
  double r = uni(rng_);
  for (auto& c : cand) {
    r -= std::exp(static_cast<double>(c.first - max_logit) / params_.temperature);
    if (r <= 0) return c.second;
  }
  return cand.back().second;
}

}  // namespace frugal
