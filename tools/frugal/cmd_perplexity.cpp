// `frugal perplexity`: perplexity of a model on a text file (see
// include/frugal/perplexity.h for the protocol). The last line of output is
// "ppl_all=<v> ppl_second_half=<v> windows=<n>".
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli_commands.h"
#include "core/mapped_file.h"
#include "frugal/model.h"
#include "frugal/perplexity.h"

namespace frugal::cli {
namespace {

struct PerplexityArgs {
  std::string model;
  std::string file;
  int ctx = 512;
  int threads = 0;
  bool fine_activations = false;
  int max_windows = 0;
  bool quiet = false;
  std::string protocol = "reference";
  std::string device = "cpu";
  int gpu_layers = -1;
};

int run(const PerplexityArgs& a) {
  auto text = read_file_to_string(a.file);
  if (!text.ok()) {
    std::fprintf(stderr, "error: %s\n", text.status().to_string().c_str());
    return 1;
  }
  auto model = Model::load(a.model, {.n_threads = a.threads, .fine_activations = a.fine_activations});
  if (!model.ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityOptions opts{.n_ctx = a.ctx,
                         .protocol = a.protocol == "llamacpp" ? PerplexityProtocol::kLlamaCpp
                                                              : PerplexityProtocol::kReference,
                         .max_windows = a.max_windows,
                         .device = *parse_device(a.device),
                         .gpu_layers = a.gpu_layers};
  if (!a.quiet)
    opts.on_window = [](int done, int total, double ppl) {
      std::fprintf(stderr, "\r[%d/%d] ppl %.4f", done, total, ppl);
      if (done == total) std::fprintf(stderr, "\n");
    };
  auto r = compute_perplexity(**model, *text, opts);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.status().to_string().c_str());
    return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "%lld tokens in the stream, %d windows of %d in %.1f s (%.1f tok/s)\n",
               static_cast<long long>(r->n_tokens), r->windows, a.ctx, s,
               r->windows * double(a.ctx) / std::max(s, 1e-9));
  std::printf("ppl_all=%.4f ppl_second_half=%.4f windows=%d\n", r->ppl_all, r->ppl_second_half,
              r->windows);
  return 0;
}

}  // namespace

void add_perplexity_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<PerplexityArgs>();
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text file");
  cmd->add_option("-m,--model", a->model, "Model file (GGUF)")->required();
  cmd->add_option("-f,--file", a->file, "Text file (documents separated by \\n\\x1e\\n)")->required();
  cmd->add_option("-c,--ctx", a->ctx, "Window size in tokens")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("--fine-activations", a->fine_activations, "Quantized weights take ~15-bit activations (two 8-bit passes): fp32-activation quality, ~2x the integer work");
  cmd->add_option("--max-windows", a->max_windows, "Evaluate at most this many windows (0: all)");
  cmd->add_option("--device", a->device, "Where the layers run: cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--gpu-layers", a->gpu_layers, "With --device cuda: first N layers on the GPU, the rest on the CPU (-1: all)")->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->add_option("--protocol", a->protocol,
                  "reference: documents split on \\n\\x1e\\n, all positions scored; llamacpp: "
                  "llama-perplexity's windows (BOS first, second half scored)")
      ->check(CLI::IsMember({"reference", "llamacpp"}))
      ->capture_default_str();
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_perplexity_command);

}  // namespace frugal::cli
