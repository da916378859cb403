// The byte-level BPE of tiny-qwen2-bpe (Llama-3-style split regex) against the
// 92 strings that Hugging Face `tokenizers` encoded with its tokenizer.json.
// The vocabulary is put into an in-memory GGUF the way a converter would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace frugal {
namespace {

TEST(Qwen2ByteLevelBpe, MatchesHuggingFaceTokenizerCases) {
  const auto tj = nlohmann::json::parse(test::read_all(test::shared_path("models/tiny-qwen2-bpe/tokenizer.json")));
  const auto& model = tj.at("model");
  size_t n = 0;
  for (const auto& [text, id] : model.at("vocab").items()) n = std::max<size_t>(n, id.get<size_t>() + 1);
  for (const auto& a : tj.at("added_tokens")) n = std::max<size_t>(n, a.at("id").get<size_t>() + 1);
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, 1);
  for (const auto& [text, id] : model.at("vocab").items()) tokens[id.get<size_t>()] = text;
  for (const auto& a : tj.at("added_tokens")) {
    tokens[a.at("id").get<size_t>()] = a.at("content").get<std::string>();
    types[a.at("id").get<size_t>()] = a.at("special").get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : model.at("merges"))
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());

  test::GgufBuilder b;
  b.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "llama-bpe")
      .strings("tokenizer.ggml.tokens", tokens)
      .ints("tokenizer.ggml.token_type", types)
      .strings("tokenizer.ggml.merges", merges);
  const auto bytes = b.build();
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto t = Tokenizer::from_gguf(**f);
  ASSERT_TRUE(t.ok()) << t.status().to_string();

  const auto refs = nlohmann::json::parse(test::read_all(test::shared_path("refs/references-qwen2.json")));
  const auto& cases = refs.at("tokenizer_cases");
  ASSERT_GE(cases.size(), 90u);
  size_t passed = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const auto expected = c.at("ids").get<std::vector<int32_t>>();
    const auto got = (*t)->encode(text, {.add_bos = false});
    if (got == expected) ++passed;
    else ADD_FAILURE() << "text '" << text << "'\n  expected " << test::ids_to_string(expected)
                       << "\n  got      " << test::ids_to_string(got);
    EXPECT_EQ((*t)->decode(expected), text);
  }
  std::printf("[ vectors  ] tiny-qwen2-bpe: %zu/%zu cases pass\n", passed, cases.size());
}

}  // namespace
}  // namespace frugal
