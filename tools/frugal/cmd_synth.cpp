// `frugal synth`: random-weight models of real shapes for benchmarks.
#include <cstdio>
#include <memory>
#include <string>

#include "cli_commands.h"
#include "frugal/synth.h"

namespace frugal::cli {
namespace {

struct SynthArgs {
  std::string shape, type = "q4_0", vocab_from, output;
  uint64_t seed = 1;
  int threads = 0;
  int layers = 0;
  bool list = false;
};

int run(const SynthArgs& a) {
  if (a.list) {
    for (const auto& s : synth_shapes())
      std::printf("%-16s %-6s hidden %d, %d layers, %d heads (%d KV), FFN %d, ctx %d\n", s.name.c_str(),
                  s.arch.c_str(), s.n_embd, s.n_layer, s.n_head, s.n_head_kv, s.n_ff, s.n_ctx);
    return 0;
  }
  if (a.shape.empty() || a.vocab_from.empty() || a.output.empty()) {
    std::fprintf(stderr, "error: --shape, --vocab-from and -o are required (see --list)\n");
    return 1;
  }
  auto type = parse_synth_type(a.type);
  if (!type.ok()) {
    std::fprintf(stderr, "error: %s\n", type.status().message().c_str());
    return 1;
  }
  Status s = synthesize_model({.shape = a.shape, .type = *type, .vocab_from = a.vocab_from,
                               .output = a.output, .seed = a.seed, .n_threads = a.threads,
                               .n_layer_override = a.layers});
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s\n", a.output.c_str());
  return 0;
}

}  // namespace

void add_synth_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight model of a real shape");
  cmd->add_option("--shape", a->shape, "Shape name (see --list)");
  cmd->add_option("--type", a->type, "f16, bf16, q8_0, q4_0, q4_k_m, q6_k")->capture_default_str();
  cmd->add_option("--vocab-from", a->vocab_from, "GGUF whose tokenizer is copied");
  cmd->add_option("-o,--output", a->output, "Output GGUF");
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_option("--layers", a->layers, "Override the layer count (smaller test models)");
  cmd->add_flag("--list", a->list, "List the known shapes");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_synth_command);

}  // namespace frugal::cli
