// Chat templates of published models rendered through ChatTemplate and
// compared byte for byte with the real Jinja2 output (templates.json,
// written by chat_templates/generate.py with Hugging Face's settings).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/chat_template.h"
#include "test_util.h"

namespace frugal {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(__FILE__).parent_path() / "chat_templates";

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::tm pinned_now() {  // generate.py's PINNED_NOW
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 9;
  tm.tm_hour = 14;
  tm.tm_min = 30;
  tm.tm_sec = 5;
  tm.tm_yday = 67;
  return tm;
}

// Messages that are plain {role, content} strings can also go through the
// span-of-ChatMessage API.
bool as_plain_messages(const nlohmann::ordered_json& variables, std::vector<ChatMessage>& out) {
  if (variables.size() != 1 || !variables.contains("messages")) return false;
  for (const auto& m : variables.at("messages")) {
    if (m.size() != 2 || !m.contains("role") || !m.contains("content") || !m.at("content").is_string()) return false;
    out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  }
  return true;
}

TEST(ChatTemplate, PublishedTemplatesRenderLikeJinja2) {
  const auto fixtures = nlohmann::ordered_json::parse(read_file(kFixtures / "templates.json"));
  const auto& cases = fixtures.at("cases");
  ASSERT_GE(cases.size(), 150u);
  std::set<std::string> templates_seen;
  int matched = 0, rejected = 0, via_span = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const std::string file = c.at("template").get<std::string>();
    templates_seen.insert(file);
    auto tmpl = ChatTemplate::parse(read_file(kFixtures / "templates" / file));
    ASSERT_TRUE(tmpl.ok()) << file << ": " << tmpl.status().to_string();

    ChatRenderOptions options;
    options.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
    options.bos_token = c.at("bos_token").get<std::string>();
    options.eos_token = c.at("eos_token").get<std::string>();
    options.now = pinned_now();
    auto out = tmpl->render_json(c.at("variables").dump(), options);

    std::vector<ChatMessage> plain;
    const bool span_api = as_plain_messages(c.at("variables"), plain) && file != "llama-3.2-instruct.jinja";
    Expected<std::string> out_span = std::string();
    if (span_api) out_span = tmpl->render(plain, options.add_generation_prompt, options.bos_token, options.eos_token);

    if (c.contains("expected")) {
      const std::string expected = c.at("expected").get<std::string>();
      ASSERT_TRUE(out.ok()) << name << ": " << out.status().to_string();
      EXPECT_EQ(*out, expected) << name;
      matched += *out == expected;
      if (span_api) {
        ASSERT_TRUE(out_span.ok()) << name << ": " << out_span.status().to_string();
        EXPECT_EQ(*out_span, expected) << name << " (ChatMessage API)";
        ++via_span;
      }
    } else {
      // The template rejects this conversation (raise_exception): the
      // message must reach the caller.
      const std::string error = c.at("error").get<std::string>();
      ASSERT_FALSE(out.ok()) << name << " rendered, but Jinja2 failed with: " << error;
      EXPECT_EQ(out.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(out.status().message().find(error), std::string::npos) << out.status().message();
      if (span_api) EXPECT_FALSE(out_span.ok());
      ++rejected;
    }
  }
  EXPECT_GE(templates_seen.size(), 16u);
  EXPECT_GE(matched, 150);
  EXPECT_GE(rejected, 10);
  EXPECT_GE(via_span, 100);
}

TEST(ChatTemplate, Llama32PrintsTodaysDateFromTheClock) {
  auto tmpl = ChatTemplate::parse(read_file(kFixtures / "templates" / "llama-3.2-instruct.jinja"));
  ASSERT_TRUE(tmpl.ok());
  ChatRenderOptions options;
  options.bos_token = "<|begin_of_text|>";
  options.now = pinned_now();
  auto out = tmpl->render_json(R"({"messages": [{"role": "user", "content": "hi"}]})", options);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_NE(out->find("Today Date: 09 Mar 2025\n"), std::string::npos) << *out;
  // Without a pinned clock it is today's date, in the same format.
  const std::vector<ChatMessage> one = {{"user", "hi"}};
  auto live = tmpl->render(one, true, "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(live.ok()) << live.status().to_string();
  EXPECT_NE(live->find("Today Date: "), std::string::npos);
  EXPECT_EQ(live->size(), out->size());
}

TEST(ChatTemplate, TinyLlamaTemplateFromTheModel) {
  auto lt = test::load_tokenizer(test::shared_path("models/gguf/tiny-llama-target-bf16.gguf"));
  ASSERT_TRUE(lt.tokenizer);
  auto source = lt.tokenizer->chat_template();
  ASSERT_TRUE(source.has_value());
  auto tmpl = ChatTemplate::parse(*source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().to_string();
  EXPECT_EQ(tmpl->family(), ChatTemplateFamily::kLlama2SystemBlock);

  const std::vector<ChatMessage> conversation = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
  auto full = tmpl->render(conversation, true, "<s>", "</s>");
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_EQ(*full, "<s><<SYS>>\nBe brief.\n<</SYS>>\n\n[INST] Hi [/INST] Hello!</s>[INST] Bye [/INST]");

  // The GGUF carries the same text as tokenizer_config.json of the checkpoint,
  // which is the fixture generate.py renders.
  EXPECT_EQ(read_file(kFixtures / "templates" / "tiny-llama-target.jinja"), *source);
}

TEST(ChatTemplate, Phi3TemplateFromVocabFile) {
  auto lt = test::load_tokenizer(test::shared_path("tokenizer-vectors/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(lt.tokenizer);
  const std::string source = lt.tokenizer->chat_template().value_or("");
  EXPECT_EQ(read_file(kFixtures / "templates" / "phi-3-mini-4k-instruct.jinja"), source);
  auto tmpl = ChatTemplate::parse(source);
  ASSERT_TRUE(tmpl.ok());
  EXPECT_EQ(tmpl->family(), ChatTemplateFamily::kPhi3UserOpensAssistant);
  // The template has no system branch: the system message vanishes.
  const std::vector<ChatMessage> conversation = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
  auto out = tmpl->render(conversation, true, "<s>", "<|endoftext|>");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, FamiliesAreRecognised) {
  const std::pair<const char*, ChatTemplateFamily> expected[] = {
      {"llama-2-chat.jinja", ChatTemplateFamily::kLlama2},
      {"tiny-llama-target.jinja", ChatTemplateFamily::kLlama2SystemBlock},
      {"mistral-7b-instruct-v0.2.jinja", ChatTemplateFamily::kMistral},
      {"qwen2.5-instruct.jinja", ChatTemplateFamily::kChatMl},
      {"chatml.jinja", ChatTemplateFamily::kChatMl},
      {"llama-3.1-instruct.jinja", ChatTemplateFamily::kLlama3},
      {"gemma-2-it.jinja", ChatTemplateFamily::kGemma},
      {"phi-3.5-mini-instruct.jinja", ChatTemplateFamily::kPhi3},
      {"deepseek-llm-chat.jinja", ChatTemplateFamily::kOther},
  };
  for (const auto& [file, family] : expected) {
    auto tmpl = ChatTemplate::parse(read_file(kFixtures / "templates" / file));
    ASSERT_TRUE(tmpl.ok()) << file;
    EXPECT_EQ(tmpl->family(), family) << file << " is " << chat_template_family_name(tmpl->family());
  }
}

TEST(ChatTemplate, AnyTemplateRendersNotOnlyKnownFamilies) {
  auto t = ChatTemplate::parse("{% for m in messages %}{{ m.role|upper }}: {{ m.content }}\n{% endfor %}");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->family(), ChatTemplateFamily::kOther);
  const std::vector<ChatMessage> two = {{"user", "a"}, {"assistant", "b"}};
  EXPECT_EQ(t->render(two, false, "", "").value(), "USER: a\nASSISTANT: b\n");
}

TEST(ChatTemplate, ToolsIsNoneUnlessGiven) {
  auto t = ChatTemplate::parse("{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ tools|length if tools }}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->render(std::vector<ChatMessage>{}, true, "", "").value(), "True|True|True|");
  ChatRenderOptions o;
  o.add_generation_prompt = false;
  EXPECT_EQ(t->render_json(R"({"messages": [], "tools": [{"type": "function"}]})", o).value(), "False|True|False|1");
}

TEST(ChatTemplate, ErrorsAreStatuses) {
  // Syntax error at parse time.
  auto bad = ChatTemplate::parse("{% for m in messages %}{{ m.content }");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("chat template: "), std::string::npos);

  // A template that rejects the conversation.
  auto mistral = ChatTemplate::parse(read_file(kFixtures / "templates" / "mistral-7b-instruct-v0.2.jinja"));
  ASSERT_TRUE(mistral.ok());
  const std::vector<ChatMessage> with_system = {{"system", "s"}, {"user", "u"}};
  auto rejected = mistral->render(with_system, true, "<s>", "</s>");
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(rejected.status().message().find("roles must alternate"), std::string::npos);

  // A runaway template hits a limit.
  auto runaway = ChatTemplate::parse("{% for i in range(100000) %}{% for m in range(100000) %}x{% endfor %}{% endfor %}");
  ASSERT_TRUE(runaway.ok());
  auto limited = runaway->render(std::vector<ChatMessage>{}, true, "", "");
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), ErrorCode::kResourceExhausted);

  // Unknown filter.
  auto unknown = ChatTemplate::parse("{{ messages|frobnicate }}");
  ASSERT_TRUE(unknown.ok());
  auto unsupported_filter = unknown->render(std::vector<ChatMessage>{}, true, "", "");
  ASSERT_FALSE(unsupported_filter.ok());
  EXPECT_EQ(unsupported_filter.status().code(), ErrorCode::kUnsupported);

  // Context that is not a JSON object.
  EXPECT_FALSE(mistral->render_json("[1, 2]", {}).ok());
  EXPECT_FALSE(mistral->render_json("{not json", {}).ok());
}

}  // namespace
}  // namespace frugal
