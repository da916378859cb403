// What a client asks the scheduler for, and the stream of results it gets
// back. HTTP threads create a GenerationRequest, hand it to the scheduler
// (Scheduler::submit) and read ChoiceEvents from the RequestStream; the
// scheduler thread is the only writer of a stream.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "frugal/sampler.h"
#include "frugal/status.h"

namespace frugal::engine {

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);

struct TopLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// Log-probability of a generated token under the model (before sampling
// penalties and truncation), with the most likely alternatives.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<TopLogprob> top;
};

// One sequence to generate: its prompt and its sampling seed.
struct ChoiceSpec {
  std::vector<int32_t> prompt;
  uint64_t seed = 0;
};

struct GenerationRequest {
  std::vector<ChoiceSpec> choices;  // all admitted together, one KV sequence each
  SamplerParams sampling;           // the seed comes from each choice
  int max_tokens = 16;              // generated tokens per choice
  std::vector<std::string> stop;    // generation ends before any of these texts
  bool ignore_eos = false;          // keep going past end-of-generation tokens
  int top_logprobs = -1;            // -1: no logprobs; else alternatives per token (0..20)
};

// New output of one choice. `text` is safe to show: it never ends inside a
// possible stop sequence or a UTF-8 character.
struct ChoiceEvent {
  int index = 0;
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;
  std::optional<FinishReason> finish;
};

class RequestStream {
 public:
  using Clock = std::chrono::steady_clock;
  enum class WaitResult { kEvents, kTimeout, kFinished };

  // Scheduler side.
  void push(ChoiceEvent event);
  void finish(Status status);
  void set_cached_prompt_tokens(int n) { cached_prompt_tokens_ = n; }

  // Reader side: moves pending events into `out`. kFinished once the stream
  // is finished and every event has been taken.
  WaitResult wait(std::vector<ChoiceEvent>& out, std::chrono::milliseconds timeout);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  Status status() const;
  int cached_prompt_tokens() const { return cached_prompt_tokens_; }

 private:
  friend class Scheduler;
  void mark_cancelled() { cancelled_.store(true, std::memory_order_release); }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ChoiceEvent> events_;
  bool finished_ = false;
  Status status_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> cached_prompt_tokens_{0};
};

}  // namespace frugal::engine
