// Subcommand registration for the frugal CLI. Each cmd_*.cpp defines one
// add_<name>_command(); it parses its own flags and stores its exit code in
// the registry when it runs.
#pragma once

#include <CLI/CLI.hpp>

namespace frugal::cli {

struct CommandRegistry {
  int exit_code = 0;
};

void add_inspect_command(CLI::App& app, CommandRegistry& reg);
void add_tokenize_command(CLI::App& app, CommandRegistry& reg);
void add_run_command(CLI::App& app, CommandRegistry& reg);
void add_perplexity_command(CLI::App& app, CommandRegistry& reg);

inline void register_all(CLI::App& app, CommandRegistry& reg) {
  add_inspect_command(app, reg);
  add_tokenize_command(app, reg);
  add_run_command(app, reg);
  add_perplexity_command(app, reg);
}

}  // namespace frugal::cli
