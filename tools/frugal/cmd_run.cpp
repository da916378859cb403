// `frugal run`: generate text from one prompt (or one chat turn), streaming
// the text to stdout; diagnostics go to stderr.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli_commands.h"
#include "frugal/chat_template.h"
#include "frugal/model.h"
#include "frugal/sampler.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  std::string system;
  int n_predict = 128;
  int threads = 0;
  bool fine_activations = false;
  int ctx = 0;
  int batch = 512;
  bool chat = false;
  bool ignore_eos = false;
  bool verbose = false;
  std::string output = "text";
  SamplerParams sampling;
  std::string device = "cpu";
  int gpu_layers = -1;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const RunArgs& a) {
  if (Status s = validate_sampler_params(a.sampling); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }
  if (a.n_predict < 0) {
    std::fprintf(stderr, "error: -n must be >= 0\n");
    return 1;
  }
  const auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(a.model, {.n_threads = a.threads, .fine_activations = a.fine_activations});
  if (!model.ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const Model& m = **model;
  const Tokenizer& tok = m.tokenizer();
  if (a.verbose)
    std::fprintf(stderr, "loaded %s (%s, %s, %.1fM params) in %.3f s\n", a.model.c_str(),
                 m.info().architecture.c_str(), m.info().weight_type.c_str(),
                 m.info().n_params / 1e6, seconds_since(t_load));

  std::vector<int32_t> prompt;
  if (a.chat) {
    const auto source = tok.chat_template();
    if (!source) {
      std::fprintf(stderr, "error: --chat: the model has no chat template\n");
      return 1;
    }
    auto tmpl = ChatTemplate::parse(*source);
    if (!tmpl.ok()) {
      std::fprintf(stderr, "error: chat template: %s\n", tmpl.status().message().c_str());
      return 1;
    }
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({.role = "system", .content = a.system});
    messages.push_back({.role = "user", .content = a.prompt});
    const std::string bos = tok.bos_id() >= 0 ? std::string(tok.token_text(tok.bos_id())) : "";
    const std::string eos = tok.eos_id() >= 0 ? std::string(tok.token_text(tok.eos_id())) : "";
    auto text = tmpl->render(messages, /*add_generation_prompt=*/true, bos, eos);
    if (!text.ok()) {
      std::fprintf(stderr, "error: chat template: %s\n", text.status().message().c_str());
      return 1;
    }
    // The template writes BOS itself when it wants one; special tokens in it are parsed.
    prompt = tok.encode(*text, {.add_bos = false, .parse_special = true, .add_eos = false});
  } else {
    prompt = tok.encode(a.prompt, {.add_bos = tok.add_bos_default(), .parse_special = false, .add_eos = false});
  }
  if (prompt.empty()) {
    std::fprintf(stderr, "error: the prompt is empty after tokenization\n");
    return 1;
  }

  const int n_ctx = a.ctx > 0 ? a.ctx : m.info().n_ctx_train;
  if (static_cast<int>(prompt.size()) + a.n_predict > n_ctx) {
    std::fprintf(stderr, "error: prompt (%zu tokens) + -n %d exceeds the context of %d tokens\n",
                 prompt.size(), a.n_predict, n_ctx);
    return 1;
  }
  auto ctx = InferenceContext::create(
      m, {.max_sequences = 1, .max_context = n_ctx, .max_batch_tokens = std::max(1, a.batch),
          .device = *parse_device(a.device), .gpu_layers = a.gpu_layers});
  if (!ctx.ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().to_string().c_str());
    return 1;
  }

  Sampler sampler(a.sampling, m.info().n_vocab);
  for (int32_t t : prompt) sampler.accept(t);

  // Prefill in chunks of the batch size; only the last position needs logits.
  const auto t_prompt = std::chrono::steady_clock::now();
  std::vector<float> logits;
  std::vector<BatchEntry> batch;
  const int chunk = (*ctx)->options().max_batch_tokens;
  for (size_t i = 0; i < prompt.size(); i += chunk) {
    batch.clear();
    for (size_t j = i; j < std::min(prompt.size(), i + chunk); ++j)
      batch.push_back({.seq = 0, .pos = static_cast<int32_t>(j), .token = prompt[j],
                       .want_logits = j + 1 == prompt.size()});
    if (Status s = (*ctx)->forward(batch, logits); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  const double prompt_s = seconds_since(t_prompt);

  const bool ids_only = a.output == "ids";
  StreamingDecoder decoder(tok);
  std::vector<int32_t> generated;
  const auto t_gen = std::chrono::steady_clock::now();
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < a.n_predict; ++i) {
    const int32_t next = sampler.sample(logits);
    if (!a.ignore_eos && tok.is_end_of_generation(next)) break;
    generated.push_back(next);
    sampler.accept(next);
    if (!ids_only) {
      const std::string piece = decoder.push(next);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 == a.n_predict) break;
    BatchEntry e{.seq = 0, .pos = pos++, .token = next, .want_logits = true};
    if (Status s = (*ctx)->forward({&e, 1}, logits); !s.ok()) {
      std::fprintf(stderr, "\nerror: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  const double gen_s = seconds_since(t_gen);
  if (ids_only) {
    for (size_t i = 0; i < generated.size(); ++i) std::printf(i ? " %d" : "%d", generated[i]);
    std::printf("\n");
  } else {
    const std::string rest = decoder.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
  }
  std::fflush(stdout);
  std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.1f tok/s); generated: %zu tokens in %.3f s (%.1f tok/s)\n",
               prompt.size(), prompt_s, prompt.size() / std::max(prompt_s, 1e-9), generated.size(),
               gen_s, generated.size() / std::max(gen_s, 1e-9));
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt");
  cmd->add_option("-m,--model", a->model, "Model file (GGUF)")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", a->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temp", a->sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", a->sampling.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", a->sampling.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", a->sampling.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", a->sampling.repetition_penalty, "Repetition penalty")->capture_default_str();
  cmd->add_option("--presence-penalty", a->sampling.presence_penalty, "Presence penalty")->capture_default_str();
  cmd->add_option("--frequency-penalty", a->sampling.frequency_penalty, "Frequency penalty")->capture_default_str();
  cmd->add_option("--repeat-last-n", a->sampling.penalty_last_n, "Penalty window (-1: all)")->capture_default_str();
  cmd->add_option("-s,--seed", a->sampling.seed, "Random seed")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("--fine-activations", a->fine_activations, "Quantized weights take ~15-bit activations (two 8-bit passes): fp32-activation quality, ~2x the integer work");
  cmd->add_option("-c,--ctx", a->ctx, "Context size (0: the model's)");
  cmd->add_option("-b,--batch", a->batch, "Prompt tokens per forward pass")->capture_default_str();
  cmd->add_option("--device", a->device, "Where the layers run: cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--gpu-layers", a->gpu_layers, "With --device cuda: first N layers on the GPU, the rest on the CPU (-1: all)")->capture_default_str();
  cmd->add_flag("--chat", a->chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("--system", a->system, "System message (with --chat)");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Keep generating past end-of-generation tokens");
  cmd->add_flag("-v,--verbose", a->verbose, "Print load details to stderr");
  cmd->add_option("--output", a->output, "text: stream text; ids: print generated token ids")
      ->check(CLI::IsMember({"text", "ids"}))
      ->capture_default_str();
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_run_command);

}  // namespace frugal::cli
