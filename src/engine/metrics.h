// Engine metrics in the Prometheus text format, named as vLLM names them
// with the prefix "frugal:" so existing dashboards and autoscalers (KEDA,
// the Gateway API inference extension) read them unchanged. The scheduler
// thread writes; any thread may render.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace frugal::engine {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count lines of `name` with the label set `labels`.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class EngineMetrics {
 public:
  explicit EngineMetrics(std::string model_name);

  void set_scheduler_state(int running, int waiting, double kv_usage);
  void add_prompt_tokens(int64_t n);
  void add_generation_tokens(int64_t n);
  void add_request_success(const std::string& finished_reason);
  void observe_time_to_first_token(double seconds);
  void observe_time_per_output_token(double seconds);
  void observe_e2e_latency(double seconds);
  // Prefix cache lookups, counted in tokens as vLLM does.
  void add_prefix_cache(int64_t queried_tokens, int64_t hit_tokens);
  void add_preemption();

  int num_running() const;
  int num_waiting() const;
  double kv_usage() const;
  int64_t prefix_cache_hits() const;

  std::string render_prometheus() const;

 private:
  mutable std::mutex mu_;
  std::string labels_;  // model_name="..."
  int running_ = 0;
  int waiting_ = 0;
  double kv_usage_ = 0.0;
  int64_t prompt_tokens_ = 0;
  int64_t generation_tokens_ = 0;
  std::map<std::string, int64_t> success_by_reason_;
  Histogram ttft_;
  Histogram tpot_;
  Histogram e2e_;
  int64_t prefix_queries_ = 0;
  int64_t prefix_hits_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace frugal::engine
