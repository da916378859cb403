// The OpenAI-compatible HTTP server behind `frugal serve`.
#pragma once

#include <string>

#include "frugal/status.h"

namespace frugal {

struct ServerOptions {
  std::string model_path;
  std::string model_alias;  // the id clients send as "model"; "": the file name without .gguf
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;          // "": no authentication
  int parallel = 4;             // sequences decoded together
  int ctx = 0;                  // tokens per sequence; 0: min(training context, 4096)
  int max_queue = 64;           // waiting requests before 429
  int batch_tokens = 256;       // tokens per forward pass (prefill chunk budget)
  int kv_blocks = 0;            // KV cache blocks of 16 tokens; 0: parallel full contexts
  int threads = 0;              // 0: all available
  bool fine_activations = false;  // ModelOptions::fine_activations
  int http_threads = 0;         // 0: enough for parallel + max_queue clients
  size_t max_body_bytes = 8u << 20;
  double drain_timeout_s = 30.0;
  bool verbose = false;
};

// Loads the model, serves until SIGTERM/SIGINT, drains in-flight requests
// (up to drain_timeout_s) and returns. Errors: model load, bind failure.
Status run_server(const ServerOptions& options);

}  // namespace frugal
