#include "frugal/perplexity.h"

#include <cmath>
#include <memory>

#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal {

std::vector<int32_t> perplexity_token_stream(const Model& model, std::string_view text,
                                             std::string_view separator) {
  const Tokenizer& tok = model.tokenizer();
  std::vector<int32_t> stream;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = separator.empty() ? std::string_view::npos : text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view doc = text.substr(start, end - start);
    if (tok.bos_id() >= 0) stream.push_back(tok.bos_id());
    auto ids = tok.encode(doc, {.add_bos = false, .parse_special = false, .add_eos = false});
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (tok.eos_id() >= 0) stream.push_back(tok.eos_id());
    if (end == text.size()) break;
    start = end + separator.size();
  }
  return stream;
}

namespace {

// -log softmax(logits)[target], computed in double for a stable sum.
double negative_log_likelihood(const float* logits, int n_vocab, int32_t target) {
  float max_logit = logits[0];
  for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  return std::log(sum) + max_logit - logits[target];
}

}  // namespace

Expected<PerplexityResult> compute_perplexity(const Model& model, std::string_view text,
                                              const PerplexityOptions& options) {
  const int n_ctx = options.n_ctx;
  if (n_ctx < 4) return invalid_argument("perplexity context must be at least 4 tokens");
  const bool llamacpp = options.protocol == PerplexityProtocol::kLlamaCpp;
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> stream =
      llamacpp ? tok.encode(text, {.add_bos = tok.add_bos_default(), .parse_special = false, .add_eos = false})
               : perplexity_token_stream(model, text, options.document_separator);
  PerplexityResult result;
  result.n_tokens = static_cast<int64_t>(stream.size());
  int n_windows = stream.empty() ? 0
                                 : static_cast<int>(llamacpp ? stream.size() / n_ctx
                                                             : (stream.size() - 1) / n_ctx);
  if (options.max_windows > 0) n_windows = std::min(n_windows, options.max_windows);
  if (n_windows == 0)
    return invalid_argument("text has " + std::to_string(stream.size()) +
                            " tokens, fewer than one window of " + std::to_string(n_ctx) + " + 1");

  FRUGAL_ASSIGN_OR_RETURN(
      std::unique_ptr<InferenceContext> ctx,
      InferenceContext::create(model, {.max_sequences = 1, .max_context = n_ctx, .max_batch_tokens = n_ctx,
                                      .device = options.device, .gpu_layers = options.gpu_layers}));
  const int n_vocab = model.info().n_vocab;
  std::vector<BatchEntry> batch(n_ctx);
  std::vector<float> logits;
  double nll_all = 0, nll_half = 0;
  int64_t count_all = 0, count_half = 0;
  const int half = n_ctx / 2;
  for (int w = 0; w < n_windows; ++w) {
    const int32_t* tokens = stream.data() + static_cast<size_t>(w) * n_ctx;
    for (int i = 0; i < n_ctx; ++i)
      batch[i] = {.seq = 0, .pos = i, .token = tokens[i], .want_logits = i + 1 < n_ctx};
    if (llamacpp && tok.add_bos_default() && tok.bos_id() >= 0) batch[0].token = tok.bos_id();
    ctx->clear_sequence(0);
    FRUGAL_RETURN_IF_ERROR(ctx->forward(batch, logits));
    // Row i holds the prediction for token i + 1.
    for (int i = 0; i + 1 < n_ctx; ++i) {
      const double nll = negative_log_likelihood(logits.data() + static_cast<size_t>(i) * n_vocab,
                                                 n_vocab, tokens[i + 1]);
      if (llamacpp && i < half) continue;  // llama-perplexity scores the second half only
      nll_all += nll;
      ++count_all;
      if (i + 1 >= half) {
        nll_half += nll;
        ++count_half;
      }
    }
    result.windows = w + 1;
    if (options.on_window) options.on_window(w + 1, n_windows, std::exp(nll_all / count_all));
  }
  result.ppl_all = std::exp(nll_all / count_all);
  result.ppl_second_half = std::exp(nll_half / count_half);
  return result;
}

}  // namespace frugal
