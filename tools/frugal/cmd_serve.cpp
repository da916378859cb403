// `frugal serve`: the OpenAI-compatible HTTP server.
#include <cstdio>
#include <memory>

#include "cli_commands.h"
#include "frugal/server.h"

namespace frugal::cli {

void add_serve_command(CLI::App& app, CommandRegistry& reg) {
  auto o = std::make_shared<ServerOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("-m,--model", o->model_path, "Model file (GGUF)")->required();
  cmd->add_option("--alias", o->model_alias, "Model id clients use (default: file name)");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port, printed at start)")->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY'");
  cmd->add_option("--parallel", o->parallel, "Sequences decoded together")->capture_default_str();
  cmd->add_option("-c,--ctx", o->ctx, "Context tokens per sequence (0: min(model, 4096))");
  cmd->add_option("--max-queue", o->max_queue, "Waiting requests before 429")->capture_default_str();
  cmd->add_option("-b,--batch", o->batch_tokens, "Tokens per forward pass")->capture_default_str();
  cmd->add_option("--kv-blocks", o->kv_blocks, "KV cache blocks of 16 tokens (0: --parallel full contexts)");
  cmd->add_option("-t,--threads", o->threads, "Compute threads (0: all available)");
  cmd->add_flag("--fine-activations", o->fine_activations, "Quantized weights take ~15-bit activations (two 8-bit passes): fp32-activation quality, ~2x the integer work");
  cmd->add_option("--http-threads", o->http_threads, "HTTP worker threads (0: automatic)");
  cmd->add_option("--max-body-bytes", o->max_body_bytes, "Largest request body")->capture_default_str();
  cmd->add_option("--drain-timeout", o->drain_timeout_s, "Seconds to finish in-flight requests on SIGTERM")
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "Log requests to stderr");
  cmd->callback([o, &reg] {
    Status s = run_server(*o);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
      reg.exit_code = 1;
    }
  });
}

FRUGAL_REGISTER_COMMAND(add_serve_command);

}  // namespace frugal::cli
