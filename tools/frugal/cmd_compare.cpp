// `frugal compare A B -f TEXT`: what a quantized file costs in quality.
// Prints size and bits per weight of both, perplexity of both on TEXT (the
// reference protocol of include/frugal/perplexity.h), the relative change,
// and per-token KL divergence KL(A || B) (mean and 99th percentile) and
// top-1 agreement over the same windows. A is the reference.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_commands.h"
#include "core/mapped_file.h"
#include "frugal/model.h"
#include "frugal/perplexity.h"

namespace frugal::cli {
namespace {

struct CompareArgs {
  std::string a, b, file;
  int ctx = 512;
  int max_windows = 0;
  int threads = 0;
  bool fine_activations = false;
};

// log-softmax of one logit row, in double.
void log_softmax(const float* logits, int n, std::vector<double>& out) {
  const float mx = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = std::log(sum) + mx;
  out.resize(n);
  for (int i = 0; i < n; ++i) out[i] = logits[i] - lse;
}

int run(const CompareArgs& args) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
    return 1;
  };
  auto text = read_file_to_string(args.file);
  if (!text.ok()) return fail(text.status());
  auto ma = Model::load(args.a, {.n_threads = args.threads, .fine_activations = args.fine_activations});
  if (!ma.ok()) return fail(ma.status());
  auto mb = Model::load(args.b, {.n_threads = args.threads, .fine_activations = args.fine_activations});
  if (!mb.ok()) return fail(mb.status());
  const Model& A = **ma;
  const Model& B = **mb;
  if (A.info().n_vocab != B.info().n_vocab) return fail(invalid_argument("the two models have different vocabularies"));
  const int n_vocab = A.info().n_vocab;
  const int n_ctx = args.ctx;
  const std::vector<int32_t> stream = perplexity_token_stream(A, *text, "\n\x1e\n");
  if (stream != perplexity_token_stream(B, *text, "\n\x1e\n"))
    return fail(invalid_argument("the two models tokenize the text differently"));
  int windows = stream.empty() ? 0 : static_cast<int>((stream.size() - 1) / n_ctx);
  if (args.max_windows > 0) windows = std::min(windows, args.max_windows);
  if (windows == 0) return fail(invalid_argument("text is shorter than one window"));

  auto ca = InferenceContext::create(A, {.max_context = n_ctx, .max_batch_tokens = n_ctx});
  auto cb = InferenceContext::create(B, {.max_context = n_ctx, .max_batch_tokens = n_ctx});
  if (!ca.ok()) return fail(ca.status());
  if (!cb.ok()) return fail(cb.status());
  std::vector<BatchEntry> batch(n_ctx);
  std::vector<float> la, lb;
  std::vector<double> pa, pb, kls;
  double nll_a = 0, nll_b = 0;
  int64_t scored = 0, agree = 0;
  for (int w = 0; w < windows; ++w) {
    for (int i = 0; i < n_ctx; ++i)
      batch[i] = {.seq = 0, .pos = i, .token = stream[size_t(w) * n_ctx + i], .want_logits = i + 1 < n_ctx};
    (*ca)->clear_sequence(0);
    (*cb)->clear_sequence(0);
    if (Status s = (*ca)->forward(batch, la); !s.ok()) return fail(s);
    if (Status s = (*cb)->forward(batch, lb); !s.ok()) return fail(s);
    for (int i = 0; i + 1 < n_ctx; ++i) {
      const float* ra = la.data() + size_t(i) * n_vocab;
      const float* rb = lb.data() + size_t(i) * n_vocab;
      log_softmax(ra, n_vocab, pa);
      log_softmax(rb, n_vocab, pb);
      const int32_t target = batch[i + 1].token;
      nll_a -= pa[target];
      nll_b -= pb[target];
      double kl = 0;
      for (int v = 0; v < n_vocab; ++v) kl += std::exp(pa[v]) * (pa[v] - pb[v]);
      kls.push_back(std::max(kl, 0.0));
      agree += (std::max_element(ra, ra + n_vocab) - ra) == (std::max_element(rb, rb + n_vocab) - rb);
      ++scored;
    }
    std::fprintf(stderr, "\r[%d/%d]", w + 1, windows);
  }
  std::fprintf(stderr, "\n");
  const double ppl_a = std::exp(nll_a / scored), ppl_b = std::exp(nll_b / scored);
  double mean_kl = 0;
  for (double k : kls) mean_kl += k;
  mean_kl /= kls.size();
  std::sort(kls.begin(), kls.end());
  const double p99 = kls[std::min(kls.size() - 1, static_cast<size_t>(0.99 * kls.size()))];
  auto bpw = [](const Model& m) { return m.info().n_params ? 8.0 * m.info().weight_bytes / m.info().n_params : 0.0; };
  std::printf("%-6s %-40s %10s %8s %10s\n", "", "file", "MB", "bpw", "ppl");
  std::printf("%-6s %-40s %10.2f %8.3f %10.4f\n", "A", args.a.c_str(), A.info().weight_bytes / 1e6, bpw(A), ppl_a);
  std::printf("%-6s %-40s %10.2f %8.3f %10.4f\n", "B", args.b.c_str(), B.info().weight_bytes / 1e6, bpw(B), ppl_b);
  std::printf("delta_ppl_pct=%.4f kl_mean=%.6f kl_p99=%.6f top1_agreement=%.4f tokens=%lld windows=%d\n",
              100.0 * (ppl_b - ppl_a) / ppl_a, mean_kl, p99, double(agree) / scored, static_cast<long long>(scored),
              windows);
  return 0;
}

}  // namespace

void add_compare_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<CompareArgs>();
  auto* cmd = app.add_subcommand("compare", "Quality of model B against reference A on a text");
  cmd->add_option("a", a->a, "Reference model (GGUF or Hugging Face directory)")->required();
  cmd->add_option("b", a->b, "Model to judge")->required();
  cmd->add_option("-f,--file", a->file, "Text file (documents separated by \\n\\x1e\\n)")->required();
  cmd->add_option("-c,--ctx", a->ctx, "Window size in tokens")->capture_default_str();
  cmd->add_option("--max-windows", a->max_windows, "Evaluate at most this many windows (0: all)");
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("--fine-activations", a->fine_activations, "Quantized weights take ~15-bit activations (two 8-bit passes): fp32-activation quality, ~2x the integer work");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_compare_command);

}  // namespace frugal::cli
