// `frugal bench`: prefill (ppN) and decode (tgN) speed, named and measured as
// llama-bench does (tgN generates N tokens one at a time from an empty
// context), with the achieved memory bandwidth against the machine's
// measured read bandwidth, or the GPU memory's peak with --device cuda (the
// decode roofline), and prefill GFLOP/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "cli_commands.h"
#include "engine/metrics.h"
#include "engine/scheduler.h"
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
  int parallel = 0;  // > 0: the batched test through the serving scheduler
  int batch_prompt = 128, batch_gen = 128;
  int batch_tokens = 0;  // tokens per forward pass of the batched test (0: max(512, parallel))
};

// The decode roofline's bandwidth and what it is: --membw-gbps when given;
// with every layer on the GPU, the GPU memory's peak (from its clock and
// bus width); else this machine's measured CPU read bandwidth.
struct Roofline {
  double gbps = 0;
  const char* what = "read";
};
Roofline roofline_bandwidth(const BenchArgs& a, const ModelInfo& info, int threads) {
  if (a.membw_gbps > 0) return {a.membw_gbps, "given"};
  if (a.device == "cuda") {
    const bool all_on_gpu = a.gpu_layers < 0 || a.gpu_layers >= info.n_layer;
    auto gpu = backend::cuda_backend();
    const double peak = all_on_gpu && gpu.ok() ? (*gpu)->peak_bandwidth_gbps() : 0;
    if (peak > 0) return {peak, "GPU memory"};
    std::fprintf(stderr, "note: the roofline uses this machine's CPU read bandwidth; pass --membw-gbps with the GPU's\n");
  }
  return {measure_read_bandwidth_gbps(threads, size_t{1} << 30, 3), "read"};
}

struct TestResult {
  std::string test;
  int n_prompt = 0, n_gen = 0, threads = 0;
  double median = 0, min = 0, max = 0;
  double gbps = 0, roofline_frac = 0, gflops = 0;
  int parallel = 1;
  int n_batch = 1;          // tokens per forward pass (llama-bench's n_batch)
  bool batched = false;     // the ppP+tgGxN test
  double decode_tok_s = 0;  // batched test: output tokens per second once every sequence has its first token
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

// The batched test: `parallel` requests submitted at once to the serving
// scheduler (continuous batching, chunked prefill), each a random
// batch_prompt-token prompt and batch_gen greedy tokens past any end token.
// tok/s counts output tokens over the whole run, prefill included, as
// serving benchmarks do; decode_tok_s only the steps after the last
// sequence's first token.
Expected<double> run_batched_once(const Model& m, InferenceContext& ctx, const BenchArgs& a, std::mt19937& rng,
                                  double& decode_tok_s) {
  engine::EngineMetrics metrics(m.info().name);
  engine::Scheduler sched(m, ctx, metrics, {.max_waiting = a.parallel});
  std::uniform_int_distribution<int32_t> tok(0, m.info().n_vocab - 1);
  std::vector<std::shared_ptr<engine::RequestStream>> streams;
  sched.start();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.parallel; ++i) {
    engine::GenerationRequest req;
    req.choices.push_back({.prompt = std::vector<int32_t>(a.batch_prompt), .seed = uint64_t(i)});
    for (auto& t : req.choices.back().prompt) t = tok(rng);
    req.sampling.temperature = 0.0f;
    req.max_tokens = a.batch_gen;
    req.ignore_eos = true;
    auto s = sched.submit(std::move(req));
    if (!s.ok()) return s.status();
    streams.push_back(*s);
  }
  // Every stream is polled in turn, so first tokens are timed as they come.
  double last_first_token = 0;
  std::vector<engine::ChoiceEvent> events;
  std::vector<bool> done(streams.size()), started(streams.size());
  int64_t generated = 0;
  for (size_t left = streams.size(); left > 0;) {
    bool progress = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      if (done[i]) continue;
      events.clear();
      const auto r = streams[i]->wait(events, std::chrono::milliseconds(0));
      for (const auto& e : events) {
        if (!started[i] && !e.tokens.empty()) started[i] = true, last_first_token = seconds(t0);
        generated += static_cast<int64_t>(e.tokens.size());
      }
      progress = progress || !events.empty();
      if (r == engine::RequestStream::WaitResult::kFinished) {
        if (!streams[i]->status().ok()) return streams[i]->status();
        done[i] = true, --left, progress = true;
      }
    }
    if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const double total = seconds(t0);
  sched.stop();
  if (generated != int64_t{a.parallel} * a.batch_gen)
    return internal_error("batched test generated " + std::to_string(generated) + " tokens, expected " +
                          std::to_string(int64_t{a.parallel} * a.batch_gen));
  decode_tok_s = total > last_first_token ? a.parallel * (a.batch_gen - 1) / (total - last_first_token) : 0;
  return generated / total;
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
  const int ctx_len = std::max(16, a.n_prompt + a.n_gen + 1);
  auto ctx = InferenceContext::create(
      m, {.max_sequences = 1, .max_context = ctx_len, .max_batch_tokens = std::max(1, a.n_prompt),
          .device = *parse_device(a.device), .gpu_layers = a.gpu_layers});
  if (!ctx.ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().to_string().c_str());
    return 1;
  }
  const Roofline roofline = roofline_bandwidth(a, info, threads);
  const double membw = roofline.gbps;
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
    res.n_batch = a.n_prompt;
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
  if (a.parallel > 0) {
    const int batch_tokens = a.batch_tokens > 0 ? a.batch_tokens : std::max(512, a.parallel);
    auto bctx = InferenceContext::create(
        m, {.max_sequences = a.parallel, .max_context = a.batch_prompt + a.batch_gen + 1,
            .max_batch_tokens = batch_tokens, .device = *parse_device(a.device), .gpu_layers = a.gpu_layers});
    if (!bctx.ok()) {
      std::fprintf(stderr, "error: %s\n", bctx.status().to_string().c_str());
      return 1;
    }
    std::vector<double> tok_s, decode;
    for (int r = -1; r < a.reps; ++r) {
      double d = 0;
      auto rate = run_batched_once(m, **bctx, a, rng, d);
      if (!rate.ok()) {
        std::fprintf(stderr, "error: %s\n", rate.status().to_string().c_str());
        return 1;
      }
      if (r >= 0) tok_s.push_back(*rate), decode.push_back(d);
    }
    TestResult res = summarize("pp" + std::to_string(a.batch_prompt) + "+tg" + std::to_string(a.batch_gen) + "x" +
                                   std::to_string(a.parallel),
                               tok_s);
    res.n_prompt = a.batch_prompt;
    res.n_gen = a.batch_gen;
    res.parallel = a.parallel;
    res.n_batch = batch_tokens;
    res.batched = true;
    res.decode_tok_s = summarize("", decode).median;
    // Each decode step streams the weights once for all sequences.
    res.gbps = info.decode_bytes_per_token * res.decode_tok_s / a.parallel / 1e9;
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
          "\"roofline_frac\": %.4f, \"gflops\": %.2f, \"membw_gbps\": %.2f, \"isa\": \"%s\", "
          "\"n_batch\": %d, \"parallel\": %d, \"decode_tok_s\": %.3f}%s\n",
          info.name.c_str(), info.weight_type.c_str(), (unsigned long long)info.weight_bytes,
          (long long)info.n_params, r.test.c_str(), r.n_prompt, r.n_gen, r.threads, a.reps, r.median,
          r.min, r.max, r.gbps, r.roofline_frac, r.gflops, membw, kernel_isa_name().c_str(), r.n_batch, r.parallel,
          r.decode_tok_s, i + 1 < results.size() ? "," : "");
    }
    std::printf("]\n");
    return 0;
  }
  std::printf("model: %s (%s, %.2f GiB, %.2fB params), %d threads, %s kernels, %s bandwidth %.1f GB/s\n",
              a.model.c_str(), info.weight_type.c_str(), info.weight_bytes / 1073741824.0,
              info.n_params / 1e9, threads, kernel_isa_name().c_str(), roofline.what, membw);
  std::printf("| test | tok/s (median) | min - max | GB/s | roofline | GFLOP/s |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::printf("| %s | %.2f | %.2f - %.2f | %s | %s | %s |\n", r.test.c_str(), r.median, r.min, r.max,
                r.n_gen ? std::to_string(r.gbps).substr(0, 5).c_str() : "-",
                r.n_gen ? (std::to_string(r.roofline_frac * 100).substr(0, 4) + "%").c_str() : "-",
                r.n_prompt && !r.batched ? std::to_string(r.gflops).substr(0, 6).c_str() : "-");
  }
  for (const auto& r : results)
    if (r.batched)
      std::printf("%s: %d requests at once; output tok/s over the whole run (prefill included); decode phase %.1f tok/s "
                  "(GB/s and roofline: weight streaming during decode)\n",
                  r.test.c_str(), r.parallel, r.decode_tok_s);
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
  cmd->add_option("--parallel", a->parallel,
                  "Also run N requests at once through the serving scheduler (the ppP+tgGxN test)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--batch-prompt", a->batch_prompt, "Prompt tokens per request of the batched test")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--batch-gen", a->batch_gen, "Generated tokens per request of the batched test")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--batch-tokens", a->batch_tokens,
                  "Tokens per forward pass of the batched test, the prefill chunk budget (0: max(512, N))")
      ->check(CLI::Range(0, 1 << 16))->capture_default_str();
  cmd->add_option("--membw-gbps", a->membw_gbps, "Use this read bandwidth for the roofline instead of measuring");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_bench_command);

}  // namespace frugal::cli
