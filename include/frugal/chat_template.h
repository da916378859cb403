// Chat prompt rendering for the template in tokenizer.chat_template.
//
// The template is compiled by a sandboxed Jinja2 engine and rendered the
// way Hugging Face transformers renders it (ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, loop controls, raise_exception, strftime_now,
// tojson as json.dumps), so any chat template renders byte for byte like
// tokenizer.apply_chat_template(). Rendering cannot touch files or the
// environment and is bounded in steps, loop iterations, nesting and output
// size; every failure is a Status, never a crash.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "frugal/status.h"

namespace frugal {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
};

// The conversation style a template writes, recognised by its markers.
// Informational only (logs, diagnostics): rendering always runs the
// template itself.
enum class ChatTemplateFamily {
  kLlama2SystemBlock,  // system as its own "<<SYS>>" block, "[INST] u [/INST] a</s>" (TinyLlama target)
  kLlama2,             // Meta's Llama 2 chat: system folded into the first [INST]
  kMistral,            // "[INST] u [/INST]a</s>"
  kChatMl,             // "<|im_start|>role\n...<|im_end|>\n" (Qwen, many fine-tunes)
  kLlama3,             // "<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>"
  kZephyr,             // "<|role|>\n...</s>\n"
  kPhi3,               // "<|role|>\n...<|end|>\n"
  kPhi3UserOpensAssistant,  // Phi-3 variant whose user turn also writes "<|assistant|>\n"
  kGemma,              // "<start_of_turn>role\n...<end_of_turn>\n"
  kOther,              // none of the above
};

std::string_view chat_template_family_name(ChatTemplateFamily family);

// Bounds on one render (see src/tokenizer/jinja/interpreter.h).
struct ChatTemplateLimits {
  int64_t max_steps = 1'000'000;
  int64_t max_loop_iterations = 100'000;
  size_t max_output_bytes = 1 << 20;
  size_t max_string_bytes = 1 << 20;
  size_t max_container_items = 100'000;
  int max_call_depth = 64;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token;  // the texts the template calls bos_token / eos_token, e.g. "<s>", "</s>"
  std::string eos_token;
  // The local time strftime_now() reports (templates such as Llama 3.2's
  // print today's date); the current local time when unset.
  std::optional<std::tm> now;
  ChatTemplateLimits limits;
};

class ChatTemplate {
 public:
  // Compiles the template; a syntax error (with its line) or a tag that
  // would reach outside the template (include, import, extends) fails.
  static Expected<ChatTemplate> parse(std::string_view source);

  ChatTemplateFamily family() const { return family_; }

  // Renders the conversation with the variables Hugging Face passes:
  // messages (list of {role, content}), add_generation_prompt, bos_token,
  // eos_token, tools = None, documents = None.
  // Errors: kInvalidArgument when the template rejects the conversation
  // (raise_exception, e.g. a system message for Mistral) or fails while
  // evaluating; kResourceExhausted when a limit is hit; kUnsupported when
  // the template uses a filter or feature this engine does not have.
  Expected<std::string> render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                               std::string_view bos_token, std::string_view eos_token) const;

  // Renders with a full context given as a JSON object: "messages" may carry
  // any fields (tool_calls, name, content parts), and any other key becomes
  // a template variable (tools, documents, date_string, enable_thinking...).
  // add_generation_prompt, bos_token and eos_token come from `options`
  // unless the object sets them.
  Expected<std::string> render_json(std::string_view context_json, const ChatRenderOptions& options) const;

 private:
  ChatTemplate(std::shared_ptr<const jinja::Template> compiled, ChatTemplateFamily family)
      : compiled_(std::move(compiled)), family_(family) {}
  std::shared_ptr<const jinja::Template> compiled_;
  ChatTemplateFamily family_;
};

}  // namespace frugal
