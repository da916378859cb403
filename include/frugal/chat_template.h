// Chat prompt rendering for the template in tokenizer.chat_template.
//
// Until a Jinja engine exists, the common template families are recognised
// by their markers and rendered by hand exactly as Jinja renders those
// templates (Hugging Face settings: trim_blocks, lstrip_blocks). A template
// that matches no family is an error rather than a guess.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "frugal/status.h"

namespace frugal {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatTemplateFamily {
  kLlama2SystemBlock,  // system as its own "<<SYS>>" block, "[INST] u [/INST] a</s>" (TinyLlama target)
  kLlama2,             // Meta's Llama 2 chat: system folded into the first [INST]
  kMistral,            // "[INST] u [/INST]a</s>", no system role
  kChatMl,             // "<|im_start|>role\n...<|im_end|>\n" (Qwen, many fine-tunes)
  kLlama3,             // "<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>"
  kZephyr,             // "<|role|>\n...</s>\n"
  kPhi3,               // "<|role|>\n...<|end|>\n"
  kPhi3UserOpensAssistant,  // Phi-3 variant whose user turn also writes "<|assistant|>\n"
  kGemma,              // "<start_of_turn>role\n...<end_of_turn>\n"
};

std::string_view chat_template_family_name(ChatTemplateFamily family);

class ChatTemplate {
 public:
  // Recognises the family of a template source; unsupported() if none fits.
  static Expected<ChatTemplate> parse(std::string_view source);

  ChatTemplateFamily family() const { return family_; }

  // Renders the conversation. bos_token/eos_token are the texts the template
  // refers to as bos_token/eos_token (e.g. "<s>", "</s>"). Errors for roles
  // the template rejects (e.g. a system message for Mistral).
  Expected<std::string> render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                               std::string_view bos_token, std::string_view eos_token) const;

 private:
  ChatTemplate(ChatTemplateFamily family, bool emits_bos, bool default_system)
      : family_(family), emits_bos_(emits_bos), default_qwen_system_(default_system) {}
  ChatTemplateFamily family_;
  bool emits_bos_;            // the template writes {{ bos_token }}
  bool default_qwen_system_;  // ChatML templates that add Qwen's default system message
};

}  // namespace frugal
