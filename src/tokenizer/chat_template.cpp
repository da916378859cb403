// Chat templates through the Jinja engine in src/tokenizer/jinja, with the
// context Hugging Face's apply_chat_template() builds.
#include "frugal/chat_template.h"

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/template.h"

namespace frugal {
namespace {

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

ChatTemplateFamily classify(std::string_view src) {
  if (contains(src, "<|im_start|>")) return ChatTemplateFamily::kChatMl;
  if (contains(src, "<|start_header_id|>")) return ChatTemplateFamily::kLlama3;
  if (contains(src, "<start_of_turn>")) return ChatTemplateFamily::kGemma;
  if (contains(src, "<|user|>")) {
    if (!contains(src, "<|end|>")) return ChatTemplateFamily::kZephyr;
    if (contains(src, "'<|end|>' + '\\n' + '<|assistant|>'") || contains(src, "'<|end|>' + '\n' + '<|assistant|>'"))
      return ChatTemplateFamily::kPhi3UserOpensAssistant;
    return ChatTemplateFamily::kPhi3;
  }
  if (contains(src, "[INST]")) {
    if (!contains(src, "<<SYS>>")) return ChatTemplateFamily::kMistral;
    return contains(src, "messages[0]") ? ChatTemplateFamily::kLlama2 : ChatTemplateFamily::kLlama2SystemBlock;
  }
  return ChatTemplateFamily::kOther;
}

jinja::RenderOptions render_options(const ChatRenderOptions& o) {
  jinja::RenderOptions r;
  r.limits.max_steps = o.limits.max_steps;
  r.limits.max_loop_iterations = o.limits.max_loop_iterations;
  r.limits.max_output_bytes = o.limits.max_output_bytes;
  r.limits.max_string_bytes = o.limits.max_string_bytes;
  r.limits.max_container_items = o.limits.max_container_items;
  r.limits.max_call_depth = o.limits.max_call_depth;
  r.now = o.now;
  return r;
}

// The variables apply_chat_template() passes besides the caller's own.
void add_default_variables(jinja::Value& context, const ChatRenderOptions& o) {
  auto& d = context.dict_data();
  auto set_default = [&](const char* key, jinja::Value v) {
    if (d.find(std::string_view(key)) == nullptr) d.set(jinja::Value(key), std::move(v));
  };
  set_default("add_generation_prompt", jinja::Value(o.add_generation_prompt));
  set_default("bos_token", jinja::Value(o.bos_token));
  set_default("eos_token", jinja::Value(o.eos_token));
  set_default("tools", jinja::Value::none());
  set_default("documents", jinja::Value::none());
}

Status with_prefix(const Status& st) { return Status(st.code(), "chat template: " + st.message()); }

}  // namespace

std::string_view chat_template_family_name(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::kLlama2SystemBlock: return "llama2-system-block";
    case ChatTemplateFamily::kLlama2: return "llama2";
    case ChatTemplateFamily::kMistral: return "mistral";
    case ChatTemplateFamily::kChatMl: return "chatml";
    case ChatTemplateFamily::kLlama3: return "llama3";
    case ChatTemplateFamily::kZephyr: return "zephyr";
    case ChatTemplateFamily::kPhi3: return "phi3";
    case ChatTemplateFamily::kPhi3UserOpensAssistant: return "phi3-user-opens-assistant";
    case ChatTemplateFamily::kGemma: return "gemma";
    case ChatTemplateFamily::kOther: return "other";
  }
  return "unknown";
}

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  auto compiled = jinja::Template::compile(source);
  if (!compiled.ok()) return with_prefix(compiled.status());
  return ChatTemplate(std::make_shared<const jinja::Template>(std::move(*compiled)), classify(source));
}

Expected<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                           std::string_view bos_token, std::string_view eos_token) const {
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (const auto& m : messages)
    list.push_back(jinja::Value::dict({{jinja::Value("role"), jinja::Value(m.role)},
                                       {jinja::Value("content"), jinja::Value(m.content)}}));
  jinja::Value context = jinja::Value::dict({{jinja::Value("messages"), jinja::Value::list(std::move(list))}});
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  options.bos_token = std::string(bos_token);
  options.eos_token = std::string(eos_token);
  add_default_variables(context, options);
  auto out = compiled_->render(context, render_options(options));
  if (!out.ok()) return with_prefix(out.status());
  return out;
}

Expected<std::string> ChatTemplate::render_json(std::string_view context_json, const ChatRenderOptions& options) const {
  // value_from_json refuses documents nested too deeply to render safely.
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(context_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("chat template: the context must be a JSON object");
  auto context = jinja::value_from_json(j);
  if (!context.ok()) return with_prefix(context.status());
  add_default_variables(*context, options);
  auto out = compiled_->render(*context, render_options(options));
  if (!out.ok()) return with_prefix(out.status());
  return out;
}

}  // namespace frugal
