// Perplexity of a model on a text, by the protocol of the reference
// measurements: documents separated by "\n\x1e\n" each become
// [BOS] + encode(doc) + [EOS]; the concatenated stream is cut into
// non-overlapping windows of n_ctx tokens ((len - 1) / n_ctx of them, the
// remainder dropped); each window is evaluated from an empty cache with its
// own first token as given. ppl_all scores positions 1..n_ctx-1 of every
// window, ppl_second_half positions n_ctx/2..n_ctx-1.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "frugal/model.h"
#include "frugal/status.h"

namespace frugal {

class Model;

// kReference: the protocol above. kLlamaCpp: llama-perplexity's protocol, so
// quantization deltas can be compared with its published figures: the whole
// text is tokenized once (BOS first), cut into n_ctx windows (len / n_ctx of
// them), each window's first token is replaced by BOS, and only the second
// half is scored (positions n_ctx/2 .. n_ctx-2 predicting the next token).
enum class PerplexityProtocol { kReference, kLlamaCpp };

struct PerplexityOptions {
  int n_ctx = 512;
  PerplexityProtocol protocol = PerplexityProtocol::kReference;
  std::string_view document_separator = "\n\x1e\n";
  int max_windows = 0;  // 0: all
  Device device = Device::kCpu;  // see ContextOptions
  int gpu_layers = -1;
  // Called after each window with (windows done, total, running ppl_all).
  std::function<void(int, int, double)> on_window = {};
};

struct PerplexityResult {
  double ppl_all = 0;
  double ppl_second_half = 0;
  int windows = 0;
  int64_t n_tokens = 0;  // tokens in the whole stream
};

// Token stream of the protocol above (exposed for tests and tools).
std::vector<int32_t> perplexity_token_stream(const Model& model, std::string_view text,
                                             std::string_view separator);

Expected<PerplexityResult> compute_perplexity(const Model& model, std::string_view text,
                                              const PerplexityOptions& options = {});

}  // namespace frugal
