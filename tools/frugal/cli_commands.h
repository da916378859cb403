// Subcommand registration for the frugal CLI. Each cmd_*.cpp adds one
// subcommand through a static CommandRegistration, so adding a command is
// adding a file. The callback stores its exit code in the registry.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace frugal::cli {

struct CommandRegistry {
  int exit_code = 0;
};

using AddCommandFn = void (*)(CLI::App& app, CommandRegistry& reg);

inline std::vector<AddCommandFn>& command_table() {
  static std::vector<AddCommandFn> table;
  return table;
}

struct CommandRegistration {
  explicit CommandRegistration(AddCommandFn fn) { command_table().push_back(fn); }
};

inline void register_all(CLI::App& app, CommandRegistry& reg) {
  for (AddCommandFn fn : command_table()) fn(app, reg);
}

void add_inspect_command(CLI::App& app, CommandRegistry& reg);
void add_tokenize_command(CLI::App& app, CommandRegistry& reg);
void add_run_command(CLI::App& app, CommandRegistry& reg);
void add_perplexity_command(CLI::App& app, CommandRegistry& reg);

}  // namespace frugal::cli

// In each cmd_*.cpp, after defining add_<name>_command:
//   FRUGAL_REGISTER_COMMAND(add_<name>_command);
#define FRUGAL_REGISTER_COMMAND(fn) \
  static const ::frugal::cli::CommandRegistration FRUGAL_CONCAT(frugal_cmd_reg_, __LINE__)(fn)
