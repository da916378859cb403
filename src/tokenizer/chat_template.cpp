// Hand renderers for the common chat template families. Each mirrors what
// Jinja produces for the family's published template, including where
// content is trimmed and which roles are accepted.
#include "frugal/chat_template.h"

#include <string>

namespace frugal {
namespace {

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

// Jinja's |trim: strips leading and trailing whitespace.
std::string_view trim(std::string_view s) {
  const std::string_view ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

Status bad_role(std::string_view family, const ChatMessage& m) {
  return invalid_argument("chat template (" + std::string(family) + "): role '" + m.role +
                          "' is not supported by this template");
}

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
  }
  return "unknown";
}

Expected<ChatTemplate> ChatTemplate::parse(std::string_view src) {
  const bool bos = contains(src, "bos_token");
  if (contains(src, "<|im_start|>"))
    return ChatTemplate(ChatTemplateFamily::kChatMl, bos, contains(src, "You are a helpful assistant"));
  if (contains(src, "<|start_header_id|>")) return ChatTemplate(ChatTemplateFamily::kLlama3, bos, false);
  if (contains(src, "<start_of_turn>")) return ChatTemplate(ChatTemplateFamily::kGemma, bos, false);
  if (contains(src, "<|user|>")) {
    if (contains(src, "<|end|>")) {
      // Phi-3 releases whose user branch writes the assistant header itself.
      if (contains(src, "'<|end|>' + '\\n' + '<|assistant|>'") ||
          contains(src, "'<|end|>' + '\n' + '<|assistant|>'"))
        return ChatTemplate(ChatTemplateFamily::kPhi3UserOpensAssistant, bos, false);
      return ChatTemplate(ChatTemplateFamily::kPhi3, bos, false);
    }
    return ChatTemplate(ChatTemplateFamily::kZephyr, bos, false);
  }
  if (contains(src, "[INST]")) {
    if (contains(src, "<<SYS>>")) {
      // Meta's template picks the system message out of messages[0] and folds
      // it into the first [INST]; others give it a block of its own.
      if (contains(src, "messages[0]"))
        return ChatTemplate(ChatTemplateFamily::kLlama2, bos, false);
      return ChatTemplate(ChatTemplateFamily::kLlama2SystemBlock, bos, false);
    }
    return ChatTemplate(ChatTemplateFamily::kMistral, bos, false);
  }
  return unsupported("chat template not recognised (known families: [INST]/<<SYS>>, ChatML, "
                     "Llama 3, Zephyr, Phi-3, Gemma); a Jinja engine is needed for it");
}

Expected<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                           bool add_generation_prompt, std::string_view bos_token,
                                           std::string_view eos_token) const {
  std::string out;
  const std::string_view name = chat_template_family_name(family_);
  switch (family_) {
    case ChatTemplateFamily::kLlama2SystemBlock:
      // {{ bos_token }}{% for m in messages %}{% if system %}<<SYS>>\n..\n<</SYS>>\n\n
      // {% elif user %}[INST] .. [/INST]{% else %} ..{{ eos_token }}{% endif %}{% endfor %}
      if (emits_bos_) out += bos_token;
      for (const auto& m : messages) {
        if (m.role == "system") {
          out += "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
        } else if (m.role == "user") {
          out += "[INST] " + m.content + " [/INST]";
        } else {
          out += " " + m.content;
          out += eos_token;
        }
      }
      return out;

    case ChatTemplateFamily::kLlama2: {
      // Meta's llama-2-chat: the system message goes inside the first user
      // turn; every user turn opens with bos; content is trimmed.
      size_t first = 0;
      std::string system;
      if (!messages.empty() && messages[0].role == "system") {
        system = "<<SYS>>\n" + std::string(trim(messages[0].content)) + "\n<</SYS>>\n\n";
        first = 1;
      }
      for (size_t i = first; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const bool expect_user = (i - first) % 2 == 0;
        if ((m.role == "user") != expect_user)
          return invalid_argument("chat template (llama2): roles must alternate user/assistant/user/...");
        if (m.role == "user") {
          out += bos_token;
          out += "[INST] " + (i == first ? system : std::string()) + std::string(trim(m.content)) + " [/INST]";
        } else if (m.role == "assistant") {
          out += " " + std::string(trim(m.content)) + " ";
          out += eos_token;
        } else {
          return bad_role(name, m);
        }
      }
      return out;
    }

    case ChatTemplateFamily::kMistral:
      if (emits_bos_) out += bos_token;
      for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if ((m.role == "user") != (i % 2 == 0))
          return invalid_argument("chat template (mistral): roles must alternate user/assistant/user/...");
        if (m.role == "user") {
          out += "[INST] " + m.content + " [/INST]";
        } else if (m.role == "assistant") {
          out += m.content;
          out += eos_token;
        } else {
          return bad_role(name, m);
        }
      }
      return out;

    case ChatTemplateFamily::kChatMl:
      if (emits_bos_) out += bos_token;
      if (default_qwen_system_ && (messages.empty() || messages[0].role != "system"))
        out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;

    case ChatTemplateFamily::kLlama3:
      out += bos_token;  // Llama 3 templates prepend bos_token to the first message
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + std::string(trim(m.content)) +
               "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;

    case ChatTemplateFamily::kZephyr:
      if (emits_bos_) out += bos_token;
      for (const auto& m : messages) {
        if (m.role != "user" && m.role != "assistant" && m.role != "system") return bad_role(name, m);
        out += "<|" + m.role + "|>\n" + m.content;
        out += eos_token;
        out += "\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;

    case ChatTemplateFamily::kPhi3:
      if (emits_bos_) out += bos_token;
      for (const auto& m : messages) {
        if (m.role != "user" && m.role != "assistant" && m.role != "system") return bad_role(name, m);
        out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;

    case ChatTemplateFamily::kPhi3UserOpensAssistant:
      // The template only has user and assistant branches: other roles vanish.
      if (emits_bos_) out += bos_token;
      for (const auto& m : messages) {
        if (m.role == "user")
          out += "<|user|>\n" + m.content + "<|end|>\n<|assistant|>\n";
        else if (m.role == "assistant")
          out += m.content + "<|end|>\n";
      }
      return out;

    case ChatTemplateFamily::kGemma: {
      out += bos_token;  // Gemma templates start with bos_token
      std::string system_prefix;
      for (const auto& m : messages) {
        if (m.role == "system") {  // folded into the next user turn, as Gemma 3 does
          system_prefix = std::string(trim(m.content)) + "\n\n";
          continue;
        }
        if (m.role != "user" && m.role != "assistant" && m.role != "model") return bad_role(name, m);
        const std::string role = m.role == "assistant" ? "model" : m.role;
        std::string content(trim(m.content));
        if (role == "user" && !system_prefix.empty()) {
          content = system_prefix + content;
          system_prefix.clear();
        }
        out += "<start_of_turn>" + role + "\n" + content + "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      return out;
    }
  }
  return internal_error("chat template: unhandled family");
}

}  // namespace frugal
