// `frugal bench`: prefill (ppN) and decode (tgN) speed, named and measured as
// llama-bench does (tgN generates N tokens one at a time from an empty
// context), with the achieved memory bandwidth against the machine's
// measured read bandwidth (the decode roofline) and prefill GFLOP/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli_commands.h"
#include "frugal/model.h"
#include "frugal/system.h"

namespace frugal::cli {
namespace {

struct BenchArgs {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 0;
  int reps = 5;
  bool fine_activations = false;
  bool json = false;
  bool membw = false;
  double membw_gbps = 0;
  std::string device = "cpu";
  int gpu_layers = -1;
};

struct TestResult {
  std::string test;
  int n_prompt = 0, n_gen = 0, threads = 0;
  double median = 0, min = 0, max = 0;
  double gbps = 0, roofline_frac = 0, gflops = 0;
};

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TestResult summarize(std::string name, std::vector<double> tok_s) {
  std::sort(tok_s.begin(), tok_s.end());
  TestResult r;
  r.test = std::move(name);
  const size_t n = tok_s.size();
  r.median = n % 2 ? tok_s[n / 2] : 0.5 * (tok_s[n / 2 - 1] + tok_s[n / 2]);
  r.min = tok_s.front();
  r.max = tok_s.back();
  return r;
}

int run(const BenchArgs& a) {
  const int threads = a.threads > 0 ? a.threads : default_threads();
  if (a.membw) {
    std::printf("cpu: %s\n", cpu_model_name().c_str());
    for (int t = 1; t <= threads; t *= 2)
      std::printf("read bandwidth, %d thread%s: %.1f GB/s\n", t, t > 1 ? "s" : "",
                  measure_read_bandwidth_gbps(t));
    if ((threads & (threads - 1)) != 0)
      std::printf("read bandwidth, %d threads: %.1f GB/s\n", threads, measure_read_bandwidth_gbps(threads));
    return 0;
  }
  if (a.model.empty()) {
    std::fprintf(stderr, "error: -m MODEL is required (or --membw)\n");
    return 1;
  }
  if (a.n_prompt < 0 || a.n_gen < 0 || a.reps < 1) {
    std::fprintf(stderr, "error: -p and -n must be >= 0 and -r >= 1\n");
    return 1;
  }
  auto model = Model::load(a.model, {.n_threads = threads, .fine_activations = a.fine_activations});
  if (!model.ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const Model& m = **model;
  const ModelInfo& info = m.info();
  if (a.device == "cuda" && a.membw_gbps <= 0)
    std::fprintf(stderr, "note: the roofline uses this machine's CPU read bandwidth; pass --membw-gbps with the GPU's\n");
  const double membw = a.membw_gbps > 0 ? a.membw_gbps : measure_read_bandwidth_gbps(threads, size_t{1} << 30, 3);
  const int ctx_len = std::max(16, a.n_prompt + a.n_gen + 1);
  auto ctx = InferenceContext::create(
      m, {.max_sequences = 1, .max_context = ctx_len, .max_batch_tokens = std::max(1, a.n_prompt),
          .device = *parse_device(a.device), .gpu_layers = a.gpu_layers});
  if (!ctx.ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().to_string().c_str());
    return 1;
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, info.n_vocab - 1);
  std::vector<float> logits;
  std::vector<TestResult> results;

  if (a.n_prompt > 0) {
    std::vector<BatchEntry> batch(a.n_prompt);
    std::vector<double> tok_s;
    for (int r = -1; r < a.reps; ++r) {  // one warm-up pass
      for (int i = 0; i < a.n_prompt; ++i)
        batch[i] = {.seq = 0, .pos = i, .token = tok(rng), .want_logits = i + 1 == a.n_prompt};
      (*ctx)->clear_sequence(0);
      const auto t0 = std::chrono::steady_clock::now();
      if (Status s = (*ctx)->forward(batch, logits); !s.ok()) {
        std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
        return 1;
      }
      if (r >= 0) tok_s.push_back(a.n_prompt / seconds(t0));
    }
    TestResult res = summarize("pp" + std::to_string(a.n_prompt), tok_s);
    res.n_prompt = a.n_prompt;
    res.gflops = 2.0 * info.matmul_params * res.median / 1e9;
    results.push_back(res);
  }
  if (a.n_gen > 0) {
    std::vector<double> tok_s;
    for (int r = -1; r < a.reps; ++r) {
      (*ctx)->clear_sequence(0);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < a.n_gen; ++i) {
        BatchEntry e{.seq = 0, .pos = i, .token = tok(rng), .want_logits = true};
        if (Status s = (*ctx)->forward({&e, 1}, logits); !s.ok()) {
          std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
          return 1;
        }
      }
      if (r >= 0) tok_s.push_back(a.n_gen / seconds(t0));
    }
    TestResult res = summarize("tg" + std::to_string(a.n_gen), tok_s);
    res.n_gen = a.n_gen;
    res.gbps = info.decode_bytes_per_token * res.median / 1e9;
    res.roofline_frac = membw > 0 ? res.gbps / membw : 0;
    results.push_back(res);
  }
  for (auto& r : results) r.threads = threads;

  if (a.json) {
    std::printf("[\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::printf(
          "  {\"model\": \"%s\", \"type\": \"%s\", \"size_bytes\": %llu, \"n_params\": %lld, "
          "\"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"threads\": %d, \"reps\": %d, "
          "\"tok_s_median\": %.3f, \"tok_s_min\": %.3f, \"tok_s_max\": %.3f, \"gbps\": %.3f, "
          "\"roofline_frac\": %.4f, \"gflops\": %.2f, \"membw_gbps\": %.2f, \"isa\": \"%s\"}%s\n",
          info.name.c_str(), info.weight_type.c_str(), (unsigned long long)info.weight_bytes,
          (long long)info.n_params, r.test.c_str(), r.n_prompt, r.n_gen, r.threads, a.reps, r.median,
          r.min, r.max, r.gbps, r.roofline_frac, r.gflops, membw, kernel_isa_name().c_str(),
          i + 1 < results.size() ? "," : "");
    }
    std::printf("]\n");
    return 0;
  }
  std::printf("model: %s (%s, %.2f GiB, %.2fB params), %d threads, %s kernels, read bandwidth %.1f GB/s\n",
              a.model.c_str(), info.weight_type.c_str(), info.weight_bytes / 1073741824.0,
              info.n_params / 1e9, threads, kernel_isa_name().c_str(), membw);
  std::printf("| test | tok/s (median) | min - max | GB/s | roofline | GFLOP/s |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::printf("| %s | %.2f | %.2f - %.2f | %s | %s | %s |\n", r.test.c_str(), r.median, r.min, r.max,
                r.n_gen ? std::to_string(r.gbps).substr(0, 5).c_str() : "-",
                r.n_gen ? (std::to_string(r.roofline_frac * 100).substr(0, 4) + "%").c_str() : "-",
                r.n_prompt ? std::to_string(r.gflops).substr(0, 6).c_str() : "-");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Prefill and decode speed with the memory roofline");
  cmd->add_option("-m,--model", a->model, "Model file");
  cmd->add_option("-p,--n-prompt", a->n_prompt, "Prompt tokens for the ppN test (0: skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", a->n_gen, "Tokens for the tgN test (0: skip)")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("--fine-activations", a->fine_activations, "Quantized weights take ~15-bit activations (two 8-bit passes): fp32-activation quality, ~2x the integer work");
  cmd->add_option("-r,--reps", a->reps, "Repetitions per test")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON array on stdout");
  cmd->add_flag("--membw", a->membw, "Measure this machine's read bandwidth and exit");
  cmd->add_option("--device", a->device, "Where the layers run: cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--gpu-layers", a->gpu_layers, "With --device cuda: first N layers on the GPU, the rest on the CPU (-1: all)")->capture_default_str();
  cmd->add_option("--membw-gbps", a->membw_gbps, "Use this read bandwidth for the roofline instead of measuring");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_bench_command);

}  // namespace frugal::cli
