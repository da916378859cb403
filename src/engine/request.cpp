#include "engine/request.h"

namespace frugal::engine {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
    case FinishReason::kError: return "error";
  }
  return "error";
}

void RequestStream::push(ChoiceEvent event) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void RequestStream::finish(Status status) {
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
    finished_ = true;
    status_ = std::move(status);
  }
  cv_.notify_all();
}

RequestStream::WaitResult RequestStream::wait(std::vector<ChoiceEvent>& out,
                                              std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !events_.empty() || finished_; });
  if (!events_.empty()) {
    while (!events_.empty()) {
      out.push_back(std::move(events_.front()));
      events_.pop_front();
    }
    return WaitResult::kEvents;
  }
  return finished_ ? WaitResult::kFinished : WaitResult::kTimeout;
}

Status RequestStream::status() const {
  std::lock_guard lk(mu_);
  return status_;
}

}  // namespace frugal::engine
