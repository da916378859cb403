// Continuous-batching scheduler: the only owner of the InferenceContext.
//
// Every step it takes new requests from its inbox, drops cancelled ones (their
// KV blocks are freed at once), admits waiting requests while sequence slots
// and KV blocks allow, and runs ONE forward pass holding the next token of
// every decoding sequence plus prompt chunks of sequences still in prefill, up
// to a per-step token budget (chunked prefill: a long prompt never stalls the
// others for more than one budget). Sequences join and leave every step.
//
// KV blocks: a request is admitted only when its prompt fits in the free
// blocks; full prompt blocks are published for prefix reuse. When a step
// needs more blocks than are free, the newest sequence is preempted: its
// blocks are released (kept as cached prefix blocks) and it is recomputed
// later from its prompt and the tokens it had generated.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/metrics.h"
#include "engine/request.h"
#include "frugal/model.h"

namespace frugal::engine {

struct SchedulerOptions {
  int max_waiting = 64;  // queued requests before submit() refuses with kResourceExhausted
};

class Scheduler {
 public:
  // `ctx` and `metrics` must outlive the scheduler; the scheduler thread is
  // their only user once start() has been called (metrics also allow readers).
  Scheduler(const Model& model, InferenceContext& ctx, EngineMetrics& metrics,
            SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start();
  // Finishes every request (kUnavailable-style error) and joins the thread.
  void stop();

  // Queues a request. kInvalidArgument if it can never run here (too many
  // choices, prompt plus max_tokens past the context), kResourceExhausted when
  // the waiting queue is full.
  Expected<std::shared_ptr<RequestStream>> submit(GenerationRequest request);
  // Cancels a request; its sequences leave the batch and free their KV blocks
  // before the next step.
  void cancel(const std::shared_ptr<RequestStream>& stream);

  // Requests submitted and not yet finished.
  int active_requests() const { return active_.load(); }

 private:
  struct Active;
  struct Sequence;
  class PhaseTimes;  // FRUGAL_SCHED_TIMES=1 diagnostics
  struct PlanItem {
    Sequence* seq;
    int32_t n_tokens;
  };

  void loop();
  void take_inbox(std::unique_lock<std::mutex>& lk);
  void drop_cancelled();
  void admit();
  void resume_preempted();
  bool plan_step();
  void preempt(Sequence& s);
  void run_step();
  PhaseTimes* phases_ = nullptr;  // the loop's, while it runs
  // `token` was sampled from `logits` (this sequence's row of the step).
  void on_logits(Sequence& s, const float* logits, int32_t token);
  void emit(Sequence& s, ChoiceEvent ev);
  void finish_sequence(Sequence& s, FinishReason reason);
  void fail_request(Active& a, Status status);
  void remove_finished();
  void publish_state();
  int blocks_for(int32_t n_tokens) const;

  const Model& model_;
  InferenceContext& ctx_;
  EngineMetrics& metrics_;
  SchedulerOptions options_;
  int n_vocab_;
  int block_tokens_;
  int max_context_;
  int max_batch_tokens_;

  // Shared with submitting threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Active>> inbox_;
  bool wake_ = false;
  bool stopping_ = false;
  int queued_ = 0;  // inbox + waiting, for the queue bound
  std::atomic<int> active_{0};
  std::thread thread_;

  // Scheduler-thread state.
  std::deque<std::shared_ptr<Active>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<int32_t> free_slots_;
  uint64_t next_order_ = 0;
  std::vector<PlanItem> plan_;
  struct ReadyRow {
    Sequence* seq;
    int32_t token;
    bool argmax_only;  // its batch entry asked for the argmax only
  };
  static bool argmax_suffices(const Sequence& s);
  std::vector<ReadyRow> ready_;  // sequences with a logits row this step, in row order
  std::vector<BatchEntry> batch_;
};

}  // namespace frugal::engine
