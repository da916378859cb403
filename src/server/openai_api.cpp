#include "server/openai_api.h"

#include <cmath>
#include <set>

namespace frugal::server {
namespace {

ApiError bad(const std::string& param, std::string message, std::string code = "") {
  return ApiError{.http_status = 400, .message = std::move(message), .type = "invalid_request_error",
                  .param = param, .code = std::move(code)};
}

// Parameters every generation endpoint accepts and implements.
const std::set<std::string> kCommonParams = {
    "model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "stream", "stream_options",
    "user", "ignore_eos", "logprobs"};
const std::set<std::string> kChatParams = {"messages", "max_completion_tokens", "top_logprobs"};
const std::set<std::string> kCompletionParams = {"prompt", "echo", "best_of", "suffix"};
// Known OpenAI parameters that this server does not implement yet.
const std::set<std::string> kUnsupportedParams = {
    "tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias",
    "parallel_tool_calls", "audio", "modalities", "prediction", "web_search_options",
    "reasoning_effort", "service_tier", "store", "metadata"};

bool is_integer(const json& v) { return v.is_number_integer() || v.is_number_unsigned(); }

std::optional<ApiError> get_number(const json& body, const char* key, double lo, double hi,
                                   float& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return bad(key, std::string(key) + " must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return bad(key, std::string(key) + " must be between " + json(lo).dump() + " and " + json(hi).dump() +
                        ", got " + it->dump());
  out = static_cast<float>(v);
  return std::nullopt;
}

std::optional<ApiError> get_int(const json& body, const char* key, int64_t lo, int64_t hi,
                                std::optional<int64_t>& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!is_integer(*it)) return bad(key, std::string(key) + " must be an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return bad(key, std::string(key) + " is too large");
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    return bad(key, std::string(key) + " must be between " + std::to_string(lo) + " and " +
                        std::to_string(hi) + ", got " + std::to_string(v));
  out = v;
  return std::nullopt;
}

std::optional<ApiError> get_bool(const json& body, const char* key, bool& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return bad(key, std::string(key) + " must be a boolean");
  out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> message_content(const json& m, size_t i, std::string& out) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return bad(param, param + " is required");
  if (it->is_string()) {
    out = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array()) return bad(param, param + " must be a string or an array of text parts");
  bool first = true;
  for (const auto& part : *it) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return bad(param, param + " parts must be objects with a 'type'");
    const std::string type = part["type"].get<std::string>();
    if (type != "text") return bad(param, param + ": content parts of type '" + type + "' are not supported");
    if (!part.contains("text") || !part["text"].is_string())
      return bad(param, param + ": a text part needs a string 'text'");
    if (!first) out += "\n";
    out += part["text"].get<std::string>();
    first = false;
  }
  return std::nullopt;
}

std::optional<ApiError> chat_prompt(const json& body, const ModelContext& mc, std::vector<int32_t>& out) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return bad("messages", "messages is required");
  if (!it->is_array() || it->empty()) return bad("messages", "messages must be a non-empty array");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad(p, p + " must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return bad(p + ".role", p + ".role is required");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant")
      return bad(p + ".role", p + ".role '" + role->get<std::string>() + "' is not supported");
    for (const char* k : {"tool_calls", "function_call", "audio", "refusal"})
      if (m.contains(k) && !m[k].is_null()) return bad(p + "." + k, p + "." + k + " is not supported");
    ChatMessage cm{.role = r, .content = {}};
    if (auto e = message_content(m, i, cm.content)) return e;
    messages.push_back(std::move(cm));
  }
  if (mc.chat_template == nullptr)
    return ApiError{.http_status = 400,
                    .message = "this model has no chat template the server can render (" +
                               mc.chat_template_error + "); use /v1/completions",
                    .type = "invalid_request_error",
                    .param = "messages",
                    .code = ""};
  const Tokenizer& tok = *mc.tokenizer;
  const std::string bos(tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "");
  const std::string eos(tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "");
  auto text = mc.chat_template->render(messages, true, bos, eos);
  if (!text.ok()) {
    // A template that rejects the conversation (raise_exception, e.g. roles
    // that do not alternate) is the client's to fix; a template that breaks
    // (limits, unsupported features) is the server's: 500 for this request.
    if (text.status().code() == ErrorCode::kInvalidArgument)
      return bad("messages", "the chat template rejected the messages: " + text.status().message());
    return ApiError{.http_status = 500,
                    .message = "the chat template failed: " + text.status().message(),
                    .type = "server_error",
                    .param = "messages",
                    .code = ""};
  }
  const bool has_bos = !bos.empty() && text->rfind(bos, 0) == 0;
  out = tok.encode(*text, {.add_bos = has_bos ? false : tok.add_bos_default(), .parse_special = true, .add_eos = {}});
  return std::nullopt;
}

std::optional<ApiError> completion_prompts(const json& body, const ModelContext& mc,
                                           std::vector<std::vector<int32_t>>& out) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad("prompt", "prompt is required");
  const Tokenizer& tok = *mc.tokenizer;
  auto encode = [&](const std::string& s) {
    return tok.encode(s, {.add_bos = tok.add_bos_default(), .parse_special = false, .add_eos = {}});
  };
  auto ids = [&](const json& arr, std::vector<int32_t>& v) -> bool {
    for (const auto& t : arr) {
      if (!is_integer(t)) return false;
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= tok.n_vocab()) return false;
      v.push_back(static_cast<int32_t>(id));
    }
    return true;
  };
  if (it->is_string()) {
    out.push_back(encode(it->get<std::string>()));
  } else if (it->is_array() && !it->empty()) {
    if ((*it)[0].is_string()) {
      for (const auto& p : *it) {
        if (!p.is_string()) return bad("prompt", "prompt arrays must hold only strings, or only token ids");
        out.push_back(encode(p.get<std::string>()));
      }
    } else if (is_integer((*it)[0])) {
      std::vector<int32_t> v;
      if (!ids(*it, v)) return bad("prompt", "prompt token ids must be integers inside the vocabulary");
      out.push_back(std::move(v));
    } else if ((*it)[0].is_array()) {
      for (const auto& p : *it) {
        std::vector<int32_t> v;
        if (!p.is_array() || p.empty() || !ids(p, v))
          return bad("prompt", "prompt token id lists must hold integers inside the vocabulary");
        out.push_back(std::move(v));
      }
    } else {
      return bad("prompt", "prompt must be a string, an array of strings or token ids");
    }
  } else {
    return bad("prompt", "prompt must be a non-empty string or array");
  }
  for (const auto& p : out)
    if (p.empty()) return bad("prompt", "the prompt is empty after tokenization");
  return std::nullopt;
}

}  // namespace

json error_body(const ApiError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool keys_equal(const std::string& presented, const std::string& expected) {
  // Touches every byte of the expected key whatever the input, so timing
  // reveals neither a matching prefix nor the key length.
  unsigned diff = presented.size() == expected.size() ? 0u : 1u;
  const size_t n = expected.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= p ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

std::optional<ApiError> parse_generation_request(const std::string& text, Endpoint endpoint,
                                                 const ModelContext& mc, uint64_t random_seed,
                                                 ParsedRequest& out) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded())
    return ApiError{.http_status = 400, .message = "the request body is not valid JSON",
                    .type = "invalid_request_error", .param = "", .code = ""};
  if (!body.is_object())
    return ApiError{.http_status = 400, .message = "the request body must be a JSON object",
                    .type = "invalid_request_error", .param = "", .code = ""};
  const bool chat = endpoint == Endpoint::kChat;
  out.endpoint = endpoint;
  for (const auto& [key, value] : body.items()) {
    if (kCommonParams.count(key) || (chat ? kChatParams : kCompletionParams).count(key)) continue;
    if (kUnsupportedParams.count(key)) {
      if (value.is_null()) continue;
      if (key == "response_format" && value.is_object() && value.value("type", "") == "text") continue;
      if (key == "logit_bias" && value.is_object() && value.empty()) continue;
      return bad(key, "the parameter '" + key + "' is not supported by this server yet", "unsupported_parameter");
    }
    return bad(key, "Unrecognized request argument supplied: " + key, "unrecognized_parameter");
  }

  auto model = body.find("model");
  if (model == body.end() || model->is_null()) return bad("model", "model is required");
  if (!model->is_string()) return bad("model", "model must be a string");
  if (model->get<std::string>() != mc.model_id)
    return ApiError{.http_status = 404,
                    .message = "The model `" + model->get<std::string>() + "` does not exist",
                    .type = "invalid_request_error",
                    .param = "model",
                    .code = "model_not_found"};

  engine::GenerationRequest& g = out.generation;
  SamplerParams& sp = g.sampling;
  sp = SamplerParams{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                     .repetition_penalty = 1.0f, .presence_penalty = 0.0f, .frequency_penalty = 0.0f,
                     .penalty_last_n = 64, .seed = 0};
  if (auto e = get_number(body, "temperature", 0.0, 2.0, sp.temperature)) return e;
  if (auto e = get_number(body, "top_p", 1e-9, 1.0, sp.top_p)) return e;
  if (auto e = get_number(body, "min_p", 0.0, 1.0, sp.min_p)) return e;
  if (auto e = get_number(body, "presence_penalty", -2.0, 2.0, sp.presence_penalty)) return e;
  if (auto e = get_number(body, "frequency_penalty", -2.0, 2.0, sp.frequency_penalty)) return e;
  if (auto e = get_number(body, "repetition_penalty", 1e-6, 100.0, sp.repetition_penalty)) return e;
  std::optional<int64_t> top_k, n, seed, max_tokens, max_completion_tokens, best_of;
  if (auto e = get_int(body, "top_k", -1, 1 << 20, top_k)) return e;
  if (top_k) sp.top_k = static_cast<int>(*top_k);
  if (auto e = get_int(body, "n", 1, 128, n)) return e;
  out.n = static_cast<int>(n.value_or(1));
  if (auto e = get_int(body, "seed", INT64_MIN, INT64_MAX, seed)) return e;
  if (auto e = get_int(body, "max_tokens", 1, 1 << 30, max_tokens)) return e;
  if (chat) {
    if (auto e = get_int(body, "max_completion_tokens", 1, 1 << 30, max_completion_tokens)) return e;
    if (max_completion_tokens) max_tokens = max_completion_tokens;
  }
  if (auto e = get_bool(body, "ignore_eos", g.ignore_eos)) return e;
  if (auto e = get_bool(body, "stream", out.stream)) return e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!out.stream) return bad("stream_options", "stream_options is only allowed when stream is true");
    if (!it->is_object()) return bad("stream_options", "stream_options must be an object");
    for (const auto& [k, v] : it->items())
      if (k != "include_usage") return bad("stream_options." + k, "stream_options." + k + " is not supported");
    if (auto e = get_bool(*it, "include_usage", out.include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  if (auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
    return bad("user", "user must be a string");

  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      if (!it->get<std::string>().empty()) g.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > 4) return bad("stop", "stop takes at most 4 sequences");
      for (const auto& s : *it) {
        if (!s.is_string()) return bad("stop", "stop must be a string or an array of strings");
        if (!s.get<std::string>().empty()) g.stop.push_back(s.get<std::string>());
      }
    } else {
      return bad("stop", "stop must be a string or an array of strings");
    }
  }

  // logprobs: a boolean plus top_logprobs for chat, a count for completions.
  if (chat) {
    if (auto e = get_bool(body, "logprobs", out.logprobs)) return e;
    std::optional<int64_t> top;
    if (auto e = get_int(body, "top_logprobs", 0, 20, top)) return e;
    if (top && !out.logprobs) return bad("top_logprobs", "top_logprobs requires logprobs to be true");
    g.top_logprobs = out.logprobs ? static_cast<int>(top.value_or(0)) : -1;
  } else {
    std::optional<int64_t> lp;
    if (auto e = get_int(body, "logprobs", 0, 20, lp)) return e;
    out.logprobs = lp.has_value();
    g.top_logprobs = lp ? static_cast<int>(*lp) : -1;
    bool echo = false;
    if (auto e = get_bool(body, "echo", echo)) return e;
    if (echo) return bad("echo", "echo is not supported by this server yet", "unsupported_parameter");
    if (auto e = get_int(body, "best_of", 1, 128, best_of)) return e;
    if (best_of && *best_of != out.n)
      return bad("best_of", "best_of other than n is not supported by this server yet", "unsupported_parameter");
    if (auto it = body.find("suffix"); it != body.end() && !it->is_null())
      return bad("suffix", "suffix is not supported by this server yet", "unsupported_parameter");
  }

  std::vector<std::vector<int32_t>> prompts;
  if (chat) {
    std::vector<int32_t> p;
    if (auto e = chat_prompt(body, mc, p)) return e;
    prompts.push_back(std::move(p));
  } else {
    if (auto e = completion_prompts(body, mc, prompts)) return e;
  }
  if (static_cast<int64_t>(prompts.size()) * out.n > mc.max_choices)
    return bad(prompts.size() > 1 ? "prompt" : "n",
               "this server generates at most " + std::to_string(mc.max_choices) +
                   " sequences per request (its --parallel); asked for " +
                   std::to_string(prompts.size() * out.n));

  const char* prompt_param = chat ? "messages" : "prompt";
  const char* max_param = chat && max_completion_tokens ? "max_completion_tokens" : "max_tokens";
  int longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, static_cast<int>(p.size()));
  if (longest >= mc.max_context)
    return bad(prompt_param,
               "This model's maximum context length is " + std::to_string(mc.max_context) +
                   " tokens. However, your " + (chat ? "messages resulted in " : "prompt has ") +
                   std::to_string(longest) + " tokens. Please reduce the length of the " +
                   (chat ? "messages." : "prompt."),
               "context_length_exceeded");
  if (max_tokens && longest + *max_tokens > mc.max_context)
    return bad(max_param,
               "This model's maximum context length is " + std::to_string(mc.max_context) +
                   " tokens. However, you requested " + std::to_string(longest + *max_tokens) +
                   " tokens (" + std::to_string(longest) + " in the " + prompt_param + ", " +
                   std::to_string(*max_tokens) + " in the completion). Please reduce the length of the " +
                   prompt_param + " or completion.",
               "context_length_exceeded");
  // Defaults as OpenAI's: 16 tokens for completions, the rest of the context for chat.
  g.max_tokens = static_cast<int>(max_tokens.value_or(chat ? mc.max_context - longest
                                                           : std::min(16, mc.max_context - longest)));

  const uint64_t base_seed = seed ? static_cast<uint64_t>(*seed) : random_seed;
  for (const auto& p : prompts) {
    out.prompt_tokens.push_back(static_cast<int>(p.size()));
    for (int j = 0; j < out.n; ++j)
      g.choices.push_back({.prompt = p, .seed = base_seed + static_cast<uint64_t>(j) * 0x9E3779B97F4A7C15ull});
  }
  return std::nullopt;
}

json chat_logprobs(const std::vector<engine::TokenLogprob>& lps, const Tokenizer& tok) {
  auto entry = [&](int32_t id, float lp) {
    const std::string piece = tok.token_to_piece(id, true);
    json bytes = json::array();
    for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
    return json{{"token", piece}, {"logprob", lp}, {"bytes", bytes}};
  };
  json content = json::array();
  for (const auto& lp : lps) {
    json e = entry(lp.token, lp.logprob);
    json top = json::array();
    for (const auto& t : lp.top) top.push_back(entry(t.token, t.logprob));
    e["top_logprobs"] = top;
    content.push_back(std::move(e));
  }
  return json{{"content", content}};
}

json completion_logprobs(const std::vector<engine::TokenLogprob>& lps, const Tokenizer& tok,
                         size_t text_offset_start) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = text_offset_start;
  for (const auto& lp : lps) {
    const std::string piece = tok.token_to_piece(lp.token, true);
    tokens.push_back(piece);
    token_lps.push_back(lp.logprob);
    json top = json::object();
    for (const auto& t : lp.top) top[tok.token_to_piece(t.token, true)] = t.logprob;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += piece.size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops},
              {"text_offset", offsets}};
}

}  // namespace frugal::server
