// The OpenAI request and response schema: parsing and validating request
// bodies into engine requests, and building response bodies and stream
// chunks. Nothing here knows about HTTP connections or about a model
// family: prompts come from the tokenizer and the model's chat template.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "frugal/chat_template.h"
#include "frugal/tokenizer.h"

namespace frugal::server {

using json = nlohmann::json;

// An OpenAI error: HTTP status plus the body fields.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
};
json error_body(const ApiError& e);
// Serialises without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const json& j);

enum class Endpoint { kChat, kCompletions };

// What the parsed request needs beyond the engine request.
struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  engine::GenerationRequest generation;
  int n = 1;                      // choices per prompt
  std::vector<int> prompt_tokens; // per distinct prompt, for usage
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;          // chat: logprobs; completions: logprobs != null
};

struct ModelContext {
  std::string model_id;
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;  // null: the model has none that we can render
  std::string chat_template_error;
  int max_context = 0;
  int max_choices = 1;  // parallel sequences
};

// Parses and validates a /v1/chat/completions or /v1/completions body.
// `random_seed` seeds choices when the request has no "seed".
std::optional<ApiError> parse_generation_request(const std::string& body, Endpoint endpoint,
                                                 const ModelContext& mc, uint64_t random_seed,
                                                 ParsedRequest& out);

// Builds the logprobs object of one choice from its token logprobs.
json chat_logprobs(const std::vector<engine::TokenLogprob>& lps, const Tokenizer& tok);
json completion_logprobs(const std::vector<engine::TokenLogprob>& lps, const Tokenizer& tok,
                         size_t text_offset_start);

// Constant-time comparison of a presented key with the configured one.
bool keys_equal(const std::string& presented, const std::string& expected);

}  // namespace frugal::server
