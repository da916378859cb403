// frugal: command-line entry point. Each subcommand lives in its own file
// (cmd_*.cpp) and registers itself here.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"frugal: run open LLMs on affordable hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "frugal 0.1.0");
  frugal::cli::CommandRegistry registry;
  frugal::cli::register_all(app, registry);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return registry.exit_code;
}
