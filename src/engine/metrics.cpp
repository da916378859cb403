#include "engine/metrics.h"

#include <cinttypes>
#include <cstdio>
#include <utility>

namespace frugal::engine {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name + "{" + labels + "} " + number(v) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum{" + labels + "} " + number(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

EngineMetrics::EngineMetrics(std::string model_name)
    : labels_("model_name=\"" + escape_label(model_name) + "\""),
      ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0}),
      tpot_({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0}),
      e2e_({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
            120.0}) {}

void EngineMetrics::set_scheduler_state(int running, int waiting, double kv_usage) {
  std::lock_guard lk(mu_);
  running_ = running;
  waiting_ = waiting;
  kv_usage_ = kv_usage;
}
void EngineMetrics::add_prompt_tokens(int64_t n) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += n;
}
void EngineMetrics::add_generation_tokens(int64_t n) {
  std::lock_guard lk(mu_);
  generation_tokens_ += n;
}
void EngineMetrics::add_request_success(const std::string& reason) {
  std::lock_guard lk(mu_);
  ++success_by_reason_[reason];
}
void EngineMetrics::observe_time_to_first_token(double s) {
  std::lock_guard lk(mu_);
  ttft_.observe(s);
}
void EngineMetrics::observe_time_per_output_token(double s) {
  std::lock_guard lk(mu_);
  tpot_.observe(s);
}
void EngineMetrics::observe_e2e_latency(double s) {
  std::lock_guard lk(mu_);
  e2e_.observe(s);
}
void EngineMetrics::add_prefix_cache(int64_t queried, int64_t hits) {
  std::lock_guard lk(mu_);
  prefix_queries_ += queried;
  prefix_hits_ += hits;
}
void EngineMetrics::add_preemption() {
  std::lock_guard lk(mu_);
  ++preemptions_;
}
int EngineMetrics::num_running() const {
  std::lock_guard lk(mu_);
  return running_;
}
int EngineMetrics::num_waiting() const {
  std::lock_guard lk(mu_);
  return waiting_;
}
double EngineMetrics::kv_usage() const {
  std::lock_guard lk(mu_);
  return kv_usage_;
}
int64_t EngineMetrics::prefix_cache_hits() const {
  std::lock_guard lk(mu_);
  return prefix_hits_;
}

std::string EngineMetrics::render_prometheus() const {
  std::lock_guard lk(mu_);
  std::string out;
  out.reserve(8192);
  header(out, "frugal:num_requests_running", "gauge", "Requests in the running batch.");
  sample(out, "frugal:num_requests_running", labels_, running_);
  header(out, "frugal:num_requests_waiting", "gauge", "Requests waiting to run (queued or preempted).");
  sample(out, "frugal:num_requests_waiting", labels_, waiting_);
  header(out, "frugal:kv_cache_usage_perc", "gauge", "Fraction of KV cache blocks in use (1 = full).");
  sample(out, "frugal:kv_cache_usage_perc", labels_, kv_usage_);
  header(out, "frugal:prompt_tokens_total", "counter", "Prompt tokens processed.");
  sample(out, "frugal:prompt_tokens_total", labels_, static_cast<double>(prompt_tokens_));
  header(out, "frugal:generation_tokens_total", "counter", "Tokens generated.");
  sample(out, "frugal:generation_tokens_total", labels_, static_cast<double>(generation_tokens_));
  header(out, "frugal:request_success_total", "counter", "Finished requests by finish reason.");
  for (const char* reason : {"stop", "length"})
    if (!success_by_reason_.count(reason))
      sample(out, "frugal:request_success_total", labels_ + ",finished_reason=\"" + reason + "\"", 0);
  for (const auto& [reason, n] : success_by_reason_)
    sample(out, "frugal:request_success_total",
           labels_ + ",finished_reason=\"" + escape_label(reason) + "\"", static_cast<double>(n));
  header(out, "frugal:time_to_first_token_seconds", "histogram", "Time to first token.");
  ttft_.render(out, "frugal:time_to_first_token_seconds", labels_);
  header(out, "frugal:time_per_output_token_seconds", "histogram", "Time between output tokens.");
  tpot_.render(out, "frugal:time_per_output_token_seconds", labels_);
  header(out, "frugal:e2e_request_latency_seconds", "histogram", "End-to-end request latency.");
  e2e_.render(out, "frugal:e2e_request_latency_seconds", labels_);
  header(out, "frugal:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.");
  sample(out, "frugal:prefix_cache_queries_total", labels_, static_cast<double>(prefix_queries_));
  header(out, "frugal:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.");
  sample(out, "frugal:prefix_cache_hits_total", labels_, static_cast<double>(prefix_hits_));
  header(out, "frugal:num_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.");
  sample(out, "frugal:num_preemptions_total", labels_, static_cast<double>(preemptions_));
  return out;
}

}  // namespace frugal::engine
