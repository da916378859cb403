// Chat template rendering, checked against strings derived by hand from the
// Jinja source of each template.
#include <gtest/gtest.h>

#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/chat_template.h"
#include "test_util.h"

namespace frugal {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

TEST(ChatTemplate, TinyLlamaTemplateFromTheModel) {
  auto lt = test::load_tokenizer(test::shared_path("models/gguf/tiny-llama-target-bf16.gguf"));
  ASSERT_TRUE(lt.tokenizer);
  auto source = lt.tokenizer->chat_template();
  ASSERT_TRUE(source.has_value());
  auto tmpl = ChatTemplate::parse(*source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().to_string();
  EXPECT_EQ(tmpl->family(), ChatTemplateFamily::kLlama2SystemBlock);

  auto full = tmpl->render(kConversation, true, "<s>", "</s>");
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_EQ(*full, "<s><<SYS>>\nBe brief.\n<</SYS>>\n\n[INST] Hi [/INST] Hello!</s>[INST] Bye [/INST]");

  const std::vector<ChatMessage> one = {{"user", "What is a dictionary?"}};
  auto single = tmpl->render(one, false, "<s>", "</s>");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(*single, "<s>[INST] What is a dictionary? [/INST]");

  // The same template text as tokenizer_config.json of the Hugging Face checkpoint.
  const auto config = nlohmann::json::parse(
      test::read_all(test::shared_path("models/tiny-llama-target/tokenizer_config.json")));
  EXPECT_EQ(config.at("chat_template").get<std::string>(), *source);
}

TEST(ChatTemplate, ChatMlFromQwen2Config) {
  const auto config = nlohmann::json::parse(
      test::read_all(test::shared_path("models/tiny-qwen2-bpe/tokenizer_config.json")));
  auto tmpl = ChatTemplate::parse(config.at("chat_template").get<std::string>());
  ASSERT_TRUE(tmpl.ok());
  EXPECT_EQ(tmpl->family(), ChatTemplateFamily::kChatMl);
  auto out = tmpl->render(kConversation, true, "", "<|endoftext|>");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  auto no_prompt = tmpl->render(std::vector<ChatMessage>{{"user", "x"}}, false, "", "");
  ASSERT_TRUE(no_prompt.ok());
  EXPECT_EQ(*no_prompt, "<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplate, Phi3VariantFromVocabFile) {
  auto lt = test::load_tokenizer(test::shared_path("tokenizer-vectors/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(lt.tokenizer);
  auto tmpl = ChatTemplate::parse(lt.tokenizer->chat_template().value_or(""));
  ASSERT_TRUE(tmpl.ok());
  EXPECT_EQ(tmpl->family(), ChatTemplateFamily::kPhi3UserOpensAssistant);
  auto out = tmpl->render(kConversation, true, "<s>", "<|endoftext|>");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, OtherFamilies) {
  const std::vector<ChatMessage> turn = {{"user", " Hi "}};
  auto llama3 = ChatTemplate::parse(
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
      "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}");
  ASSERT_TRUE(llama3.ok());
  EXPECT_EQ(llama3->render(turn, true, "<|begin_of_text|>", "").value(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");

  auto gemma = ChatTemplate::parse("{{ bos_token }}...<start_of_turn>...");
  ASSERT_TRUE(gemma.ok());
  EXPECT_EQ(gemma->render(turn, true, "<bos>", "").value(),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");

  auto mistral = ChatTemplate::parse("{{ bos_token }}{% for message in messages %}[INST]...");
  ASSERT_TRUE(mistral.ok());
  EXPECT_EQ(mistral->family(), ChatTemplateFamily::kMistral);
  const std::vector<ChatMessage> two = {{"user", "a"}, {"assistant", "b"}};
  EXPECT_EQ(mistral->render(two, false, "<s>", "</s>").value(), "<s>[INST] a [/INST]b</s>");
  auto with_system = mistral->render(kConversation, false, "<s>", "</s>");
  EXPECT_FALSE(with_system.ok());

  auto zephyr = ChatTemplate::parse("{% for message in messages %}<|user|>...");
  ASSERT_TRUE(zephyr.ok());
  EXPECT_EQ(zephyr->family(), ChatTemplateFamily::kZephyr);
  EXPECT_EQ(zephyr->render(two, true, "", "</s>").value(), "<|user|>\na</s>\n<|assistant|>\nb</s>\n<|assistant|>\n");
}

TEST(ChatTemplate, UnknownTemplateIsAnError) {
  auto t = ChatTemplate::parse("{% for m in messages %}{{ m.content }}{% endfor %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(t.status().message().find("not recognised"), std::string::npos);
}

}  // namespace
}  // namespace frugal
