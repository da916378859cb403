#include "engine/scheduler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>

#include "core/thread_pool.h"
#include "frugal/tokenizer.h"

namespace frugal::engine {

using Clock = std::chrono::steady_clock;

struct Scheduler::Active {
  std::shared_ptr<RequestStream> stream;
  GenerationRequest request;
  Clock::time_point arrival;
  bool first_token_seen = false;
  bool done = false;
  int choices_left = 0;
};

struct Scheduler::Sequence {
  Sequence(const SamplerParams& params, int n_vocab, const Tokenizer& tok)
      : sampler(params, n_vocab), decoder(tok) {}
  std::shared_ptr<Active> owner;
  int choice = 0;
  int32_t slot = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t n_prompt = 0;
  int32_t n_cached = 0;  // leading tokens whose keys/values are in the KV cache
  int n_generated = 0;
  Sampler sampler;
  StreamingDecoder decoder;
  std::string held;  // decoded text held back because it may start a stop sequence
  uint64_t order = 0;
  bool preempted = false;
  bool finished = false;
  bool prompt_published = false;
  Clock::time_point last_token_at;
};

// FRUGAL_SCHED_TIMES=1: where the scheduler thread's time goes between and
// around forward passes, printed to stderr when its loop ends (mean
// milliseconds per loop turn that ran a step). Off: one branch per phase.
class Scheduler::PhaseTimes {
 public:
  enum Phase { kHousekeeping, kPlan, kBatch, kForward, kSample, kDeliver, kPublish, kPhases };
  PhaseTimes() {
    const char* v = std::getenv("FRUGAL_SCHED_TIMES");
    on_ = v && std::strcmp(v, "1") == 0;
  }
  ~PhaseTimes() {
    if (!on_ || steps_ == 0) return;
    static constexpr const char* kNames[kPhases] = {"housekeeping", "plan", "batch", "forward",
                                                    "sample", "deliver", "publish"};
    std::fprintf(stderr, "scheduler: %ld steps, mean ms per step:", steps_);
    for (int p = 0; p < kPhases; ++p) std::fprintf(stderr, " %s %.3f", kNames[p], ms_[p] / steps_);
    std::fprintf(stderr, "\n");
  }
  // Starts timing `p`, ending the phase before it.
  void mark(Phase p) {
    if (!on_) return;
    const auto now = Clock::now();
    if (current_ >= 0) turn_[current_] += std::chrono::duration<double, std::milli>(now - since_).count();
    current_ = p;
    since_ = now;
  }
  // Ends the loop turn: it counts when it ran a step.
  void end_turn(bool stepped) {
    if (!on_) return;
    mark(kPhases);
    current_ = -1;
    if (stepped) {
      for (int p = 0; p < kPhases; ++p) ms_[p] += turn_[p];
      ++steps_;
    }
    turn_.fill(0.0);
  }

 private:
  bool on_ = false;
  int current_ = -1;
  Clock::time_point since_;
  std::array<double, kPhases + 1> turn_{};
  std::array<double, kPhases + 1> ms_{};
  long steps_ = 0;
};

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

TokenLogprob token_logprob(const float* logits, int n_vocab, int32_t token, int top_n) {
  float max_logit = logits[0];
  for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  const float log_z = max_logit + static_cast<float>(std::log(sum));
  TokenLogprob lp{.token = token, .logprob = logits[token] - log_z, .top = {}};
  if (top_n > 0) {
    std::vector<std::pair<float, int32_t>> cand(n_vocab);
    for (int i = 0; i < n_vocab; ++i) cand[i] = {logits[i], i};
    const int k = std::min(top_n, n_vocab);
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int i = 0; i < k; ++i) lp.top.push_back({.token = cand[i].second, .logprob = cand[i].first - log_z});
  }
  return lp;
}

// Appends `piece` to the held-back text and moves out what can be shown.
// Returns true when a stop sequence was found; `out` then ends right before it.
bool take_text(std::string& held, const std::string& piece, const std::vector<std::string>& stops,
               std::string& out) {
  held += piece;
  size_t first_stop = std::string::npos;
  for (const auto& stop : stops)
    if (!stop.empty()) first_stop = std::min(first_stop, held.find(stop));
  if (first_stop != std::string::npos) {
    out += held.substr(0, first_stop);
    held.clear();
    return true;
  }
  // Hold back the longest tail that could still grow into a stop sequence.
  size_t keep = 0;
  for (const auto& stop : stops) {
    for (size_t k = std::min(stop.size() - 1, held.size()); k > keep; --k) {
      if (held.compare(held.size() - k, k, stop, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  out += held.substr(0, held.size() - keep);
  held.erase(0, held.size() - keep);
  return false;
}

}  // namespace

Scheduler::Scheduler(const Model& model, InferenceContext& ctx, EngineMetrics& metrics,
                     SchedulerOptions options)
    : model_(model),
      ctx_(ctx),
      metrics_(metrics),
      options_(options),
      n_vocab_(model.info().n_vocab),
      block_tokens_(ctx.options().kv_block_tokens),
      max_context_(ctx.options().max_context),
      max_batch_tokens_(ctx.options().max_batch_tokens) {
  for (int32_t s = ctx.options().max_sequences - 1; s >= 0; --s) free_slots_.push_back(s);
  batch_.reserve(max_batch_tokens_);
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Expected<std::shared_ptr<RequestStream>> Scheduler::submit(GenerationRequest request) {
  const int max_sequences = ctx_.options().max_sequences;
  if (request.choices.empty()) return invalid_argument("request has no choices");
  if (static_cast<int>(request.choices.size()) > max_sequences)
    return invalid_argument("request asks for " + std::to_string(request.choices.size()) +
                            " sequences; the server runs at most " + std::to_string(max_sequences) +
                            " at once");
  if (request.max_tokens < 1) return invalid_argument("max_tokens must be at least 1");
  if (request.top_logprobs > 20) return invalid_argument("top_logprobs must be at most 20");
  FRUGAL_RETURN_IF_ERROR(validate_sampler_params(request.sampling));
  for (const auto& c : request.choices) {
    if (c.prompt.empty()) return invalid_argument("the prompt is empty");
    if (static_cast<int64_t>(c.prompt.size()) + request.max_tokens > max_context_)
      return out_of_range("prompt of " + std::to_string(c.prompt.size()) + " tokens plus " +
                          std::to_string(request.max_tokens) +
                          " generated tokens exceeds the context of " + std::to_string(max_context_));
    for (int32_t t : c.prompt)
      if (t < 0 || t >= n_vocab_)
        return invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary");
  }
  auto active = std::make_shared<Active>();
  active->stream = std::make_shared<RequestStream>();
  active->arrival = Clock::now();
  active->choices_left = static_cast<int>(request.choices.size());
  active->request = std::move(request);
  {
    std::lock_guard lk(mu_);
    if (stopping_) return Status(ErrorCode::kResourceExhausted, "the server is shutting down");
    if (queued_ >= options_.max_waiting)
      return Status(ErrorCode::kResourceExhausted,
                    "the waiting queue is full (" + std::to_string(options_.max_waiting) + " requests)");
    ++queued_;
    ++active_;
    inbox_.push_back(active);
  }
  cv_.notify_all();
  return active->stream;
}

void Scheduler::cancel(const std::shared_ptr<RequestStream>& stream) {
  if (!stream) return;
  stream->mark_cancelled();
  {
    std::lock_guard lk(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

int Scheduler::blocks_for(int32_t n_tokens) const {
  return (n_tokens + block_tokens_ - 1) / block_tokens_;
}

void Scheduler::loop() {
  PhaseTimes phases;
  phases_ = &phases;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] {
        return stopping_ || wake_ || !inbox_.empty() || !running_.empty() || !waiting_.empty();
      });
      if (stopping_) break;
      phases.mark(PhaseTimes::kHousekeeping);
      take_inbox(lk);
    }
    drop_cancelled();
    resume_preempted();
    admit();
    phases.mark(PhaseTimes::kPlan);
    const bool stepped = plan_step();
    if (stepped) run_step();
    phases.mark(PhaseTimes::kPublish);
    remove_finished();
    publish_state();
    phases.end_turn(stepped);
  }
  phases_ = nullptr;
  // Shutdown: nothing more will run; tell every reader.
  const Status gone(ErrorCode::kResourceExhausted, "the server is shutting down");
  {
    std::lock_guard lk(mu_);
    for (auto& a : inbox_) waiting_.push_back(a);
    inbox_.clear();
  }
  for (auto& a : waiting_) fail_request(*a, gone);
  waiting_.clear();
  for (auto& s : running_)
    if (!s->finished) fail_request(*s->owner, gone);
  remove_finished();
  publish_state();
}

void Scheduler::take_inbox(std::unique_lock<std::mutex>&) {
  wake_ = false;
  while (!inbox_.empty()) {
    waiting_.push_back(std::move(inbox_.front()));
    inbox_.pop_front();
  }
}

void Scheduler::drop_cancelled() {
  for (auto& s : running_)
    if (!s->finished && s->owner->stream->cancelled()) finish_sequence(*s, FinishReason::kCancelled);
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->stream->cancelled()) {
      {
        std::lock_guard lk(mu_);
        --queued_;
      }
      fail_request(**it, Status(ErrorCode::kInvalidArgument, "cancelled"));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  remove_finished();
}

void Scheduler::resume_preempted() {
  std::vector<Sequence*> preempted;
  int n_active = 0;
  for (auto& s : running_) {
    if (s->finished) continue;
    if (s->preempted)
      preempted.push_back(s.get());
    else
      ++n_active;
  }
  std::sort(preempted.begin(), preempted.end(), [](auto* a, auto* b) { return a->order < b->order; });
  for (Sequence* s : preempted) {
    const int need = blocks_for(static_cast<int32_t>(s->tokens.size())) + n_active;
    if (n_active > 0 && need > ctx_.kv_free_blocks()) break;
    s->n_cached = ctx_.attach_cached_prefix(s->slot, s->tokens);
    s->preempted = false;
    ++n_active;
  }
}

void Scheduler::admit() {
  int n_active = 0;
  for (auto& s : running_) {
    if (s->finished) continue;
    if (s->preempted) return;  // preempted sequences come back before anyone new
    ++n_active;
  }
  const Tokenizer& tok = model_.tokenizer();
  while (!waiting_.empty()) {
    std::shared_ptr<Active> a = waiting_.front();
    const auto& choices = a->request.choices;
    if (free_slots_.size() < choices.size()) break;
    int need = n_active;  // one block of growth per running sequence
    for (const auto& c : choices) need += blocks_for(static_cast<int32_t>(c.prompt.size()));
    if (n_active > 0 && need > ctx_.kv_free_blocks()) break;
    waiting_.pop_front();
    {
      std::lock_guard lk(mu_);
      --queued_;
    }
    int cached_total = 0;
    for (size_t i = 0; i < choices.size(); ++i) {
      SamplerParams params = a->request.sampling;
      params.seed = choices[i].seed;
      auto s = std::make_unique<Sequence>(params, n_vocab_, tok);
      s->owner = a;
      s->choice = static_cast<int>(i);
      s->slot = free_slots_.back();
      free_slots_.pop_back();
      s->tokens = choices[i].prompt;
      s->tokens.reserve(choices[i].prompt.size() + a->request.max_tokens);
      s->n_prompt = static_cast<int32_t>(s->tokens.size());
      s->n_cached = ctx_.attach_cached_prefix(s->slot, s->tokens);
      for (int32_t t : s->tokens) s->sampler.accept(t);
      s->order = next_order_++;
      metrics_.add_prefix_cache(s->n_prompt, s->n_cached);
      metrics_.add_prompt_tokens(s->n_prompt);
      cached_total += s->n_cached;
      running_.push_back(std::move(s));
      ++n_active;
    }
    a->stream->set_cached_prompt_tokens(cached_total);
  }
}

bool Scheduler::plan_step() {
  std::vector<Sequence*> order;
  for (;;) {
    order.clear();
    for (auto& s : running_)
      if (!s->finished && !s->preempted) order.push_back(s.get());
    if (order.empty()) return false;
    // Decoding sequences first, then prompts in admission order.
    std::sort(order.begin(), order.end(), [](Sequence* a, Sequence* b) {
      const bool a_prefill = a->tokens.size() - a->n_cached > 1;
      const bool b_prefill = b->tokens.size() - b->n_cached > 1;
      if (a_prefill != b_prefill) return !a_prefill;
      return a->order < b->order;
    });
    plan_.clear();
    int budget = max_batch_tokens_;
    int blocks = 0;
    for (Sequence* s : order) {
      const int32_t remaining = static_cast<int32_t>(s->tokens.size()) - s->n_cached;
      const int32_t take = std::min<int32_t>(remaining, budget);
      if (take <= 0) continue;
      blocks += blocks_for(s->n_cached + take) - blocks_for(s->n_cached);
      plan_.push_back({s, take});
      budget -= take;
    }
    if (plan_.empty()) return false;
    if (blocks <= ctx_.kv_free_blocks()) return true;
    Sequence* newest = *std::max_element(order.begin(), order.end(),
                                         [](Sequence* a, Sequence* b) { return a->order < b->order; });
    if (order.size() == 1) {
      fail_request(*newest->owner, Status(ErrorCode::kResourceExhausted,
                                          "the KV cache cannot hold this sequence"));
      continue;
    }
    preempt(*newest);
  }
}

void Scheduler::preempt(Sequence& s) {
  // Publishing first keeps the computed blocks as cached prefix blocks, so
  // the recomputation can often reattach them instead of recomputing.
  ctx_.publish_prefix(s.slot, s.tokens);
  ctx_.clear_sequence(s.slot);
  s.n_cached = 0;
  s.preempted = true;
  metrics_.add_preemption();
}

// Greedy sequences without logprobs need only the argmax, which a GPU
// computes itself (a token id comes down instead of a row of logits).
bool Scheduler::argmax_suffices(const Sequence& s) {
  return s.sampler.argmax_suffices() && s.owner->request.top_logprobs < 0;
}

void Scheduler::run_step() {
  phases_->mark(PhaseTimes::kBatch);
  batch_.clear();
  for (const PlanItem& item : plan_) {
    Sequence& s = *item.seq;
    const bool argmax_only = argmax_suffices(s);
    for (int32_t i = 0; i < item.n_tokens; ++i) {
      const int32_t pos = s.n_cached + i;
      const bool last = pos + 1 == static_cast<int32_t>(s.tokens.size());
      batch_.push_back({.seq = s.slot,
                        .pos = pos,
                        .token = s.tokens[pos],
                        .want_logits = last,
                        .argmax_only = last && argmax_only});
    }
  }
  phases_->mark(PhaseTimes::kForward);
  const Expected<StepOutput> step = ctx_.step(batch_);
  phases_->mark(PhaseTimes::kSample);
  if (!step.ok()) {
    for (const PlanItem& item : plan_)
      if (!item.seq->finished) fail_request(*item.seq->owner, step.status().with_context("forward pass"));
    return;
  }
  const float* logits = step->logits.data();
  const std::span<const int32_t> argmax = step->argmax;
  ready_.clear();
  for (const PlanItem& item : plan_) {
    Sequence& s = *item.seq;
    s.n_cached += item.n_tokens;
    if (s.n_cached == static_cast<int32_t>(s.tokens.size())) ready_.push_back({&s, 0, argmax_suffices(s)});
  }
  // Every sequence samples independently, so a step with many rows to
  // sample does it on the model's threads (idle between forward passes);
  // the results are handed out in batch order. Rows the device reduced to
  // token ids need no sampling, and waking the pool for them alone cost
  // 0.1-0.25 ms per 64-sequence GPU step.
  auto sample_rows = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      ready_[i].token = !argmax.empty() && ready_[i].argmax_only
                            ? argmax[i]
                            : ready_[i].seq->sampler.sample(
                                  {logits + static_cast<size_t>(i) * n_vocab_, static_cast<size_t>(n_vocab_)});
  };
  const auto n_ready = static_cast<int64_t>(ready_.size());
  int64_t n_sampled = n_ready;
  if (!argmax.empty())
    n_sampled = std::count_if(ready_.begin(), ready_.end(), [](const ReadyRow& r) { return !r.argmax_only; });
  if (n_sampled >= 8)
    model_.thread_pool().parallel_for(n_ready, sample_rows, 2);
  else
    sample_rows(0, n_ready);
  phases_->mark(PhaseTimes::kDeliver);
  for (int64_t i = 0; i < n_ready; ++i)
    on_logits(*ready_[i].seq, logits + static_cast<size_t>(i) * n_vocab_, ready_[i].token);
}

void Scheduler::on_logits(Sequence& s, const float* logits, int32_t token) {
  Active& a = *s.owner;
  const GenerationRequest& req = a.request;
  const Tokenizer& tok = model_.tokenizer();
  if (!s.prompt_published) {
    ctx_.publish_prefix(s.slot, std::span<const int32_t>(s.tokens.data(), s.n_prompt));
    s.prompt_published = true;
  }
  const auto now = Clock::now();
  if (!a.first_token_seen) {
    a.first_token_seen = true;
    metrics_.observe_time_to_first_token(seconds_between(a.arrival, now));
  } else if (s.n_generated > 0) {
    metrics_.observe_time_per_output_token(seconds_between(s.last_token_at, now));
  }
  s.last_token_at = now;
  ++s.n_generated;
  metrics_.add_generation_tokens(1);

  ChoiceEvent ev{.index = s.choice, .text = {}, .tokens = {token}, .logprobs = {}, .finish = {}};
  if (req.top_logprobs >= 0) ev.logprobs.push_back(token_logprob(logits, n_vocab_, token, req.top_logprobs));

  if (!req.ignore_eos && tok.is_end_of_generation(token)) {
    take_text(s.held, s.decoder.flush(), req.stop, ev.text);
    ev.text += s.held;
    s.held.clear();
    ev.finish = FinishReason::kStop;
  } else {
    s.sampler.accept(token);
    s.tokens.push_back(token);
    if (take_text(s.held, s.decoder.push(token), req.stop, ev.text)) {
      ev.finish = FinishReason::kStop;
    } else if (s.n_generated >= req.max_tokens ||
               static_cast<int>(s.tokens.size()) >= max_context_) {
      if (!take_text(s.held, s.decoder.flush(), req.stop, ev.text)) ev.text += s.held;
      s.held.clear();
      ev.finish = FinishReason::kLength;
    }
  }
  const std::optional<FinishReason> finish = ev.finish;
  a.stream->push(std::move(ev));
  if (finish) finish_sequence(s, *finish);
}

void Scheduler::finish_sequence(Sequence& s, FinishReason reason) {
  if (s.finished) return;
  s.finished = true;
  if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
    ctx_.publish_prefix(s.slot, s.tokens);
    metrics_.add_request_success(finish_reason_name(reason));
  }
  ctx_.clear_sequence(s.slot);
  free_slots_.push_back(s.slot);
  Active& a = *s.owner;
  if (--a.choices_left == 0 && !a.done) {
    a.done = true;
    metrics_.observe_e2e_latency(seconds_between(a.arrival, Clock::now()));
    a.stream->finish(reason == FinishReason::kCancelled
                         ? Status(ErrorCode::kInvalidArgument, "cancelled")
                         : Status::Ok());
    --active_;
  }
}

void Scheduler::fail_request(Active& a, Status status) {
  for (auto& s : running_) {
    if (s->owner.get() != &a || s->finished) continue;
    s->finished = true;
    ctx_.clear_sequence(s->slot);
    free_slots_.push_back(s->slot);
  }
  if (!a.done) {
    a.done = true;
    a.stream->finish(std::move(status));
    --active_;
  }
}

void Scheduler::remove_finished() {
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->finished; }),
                 running_.end());
}

void Scheduler::publish_state() {
  std::unordered_set<const Active*> running, preempted;
  for (const auto& s : running_) {
    if (s->finished) continue;
    (s->preempted ? preempted : running).insert(s->owner.get());
  }
  int queued;
  {
    std::lock_guard lk(mu_);
    queued = queued_;
  }
  metrics_.set_scheduler_state(static_cast<int>(running.size()),
                               queued + static_cast<int>(preempted.size()), ctx_.kv_usage());
}

}  // namespace frugal::engine
