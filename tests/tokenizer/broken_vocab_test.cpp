// Inconsistent vocabulary metadata must give a Status that names the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/tokenizer.h"
#include "test_util.h"

namespace frugal {
namespace {

using test::GgufBuilder;

const std::vector<std::string> kTokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "a", "b"};

GgufBuilder valid_spm() {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", kTokens)
      .floats("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3})
      .ints("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  return b;
}

Status tokenizer_status(const GgufBuilder& b, std::vector<uint8_t>& storage) {
  storage = b.build();
  auto f = GgufFile::parse(storage.data(), storage.size());
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  if (!f.ok()) return f.status();
  auto t = Tokenizer::from_gguf(**f);
  return t.ok() ? Status::Ok() : t.status();
}

void expect_error(const GgufBuilder& b, ErrorCode code, const std::string& mentions) {
  std::vector<uint8_t> storage;
  const Status s = tokenizer_status(b, storage);
  ASSERT_FALSE(s.ok()) << "expected an error mentioning " << mentions;
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(mentions), std::string::npos) << s.to_string();
}

TEST(BrokenVocab, ValidMinimalVocabularyLoadsAndEncodes) {
  std::vector<uint8_t> storage = valid_spm().build();
  auto f = GgufFile::parse(storage.data(), storage.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto t = Tokenizer::from_gguf(**f);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)->encode("a b"), (std::vector<int32_t>{1, 3, 0, 5}))
      << "'▁b' is not a token and there are no byte tokens: '▁' falls back to <unk>";
}

TEST(BrokenVocab, ScoresCountMismatch) {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", kTokens).floats("tokenizer.ggml.scores", {0, 0});
  expect_error(b, ErrorCode::kCorruptData, "tokenizer.ggml.scores has 2 entries");
}

TEST(BrokenVocab, TokenTypeOutOfRange) {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", kTokens)
      .floats("tokenizer.ggml.scores", {0, 0, 0, 0, 0, 0})
      .ints("tokenizer.ggml.token_type", {2, 3, 3, 1, 9, 1});
  expect_error(b, ErrorCode::kOutOfRange, "token_type[4] = 9");
}

TEST(BrokenVocab, TokenTypeCountMismatch) {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", kTokens)
      .floats("tokenizer.ggml.scores", {0, 0, 0, 0, 0, 0})
      .ints("tokenizer.ggml.token_type", {1, 1});
  expect_error(b, ErrorCode::kCorruptData, "token_type has 2 entries");
}

TEST(BrokenVocab, BosBeyondVocabulary) {
  expect_error(valid_spm().u32("tokenizer.ggml.bos_token_id", 6), ErrorCode::kOutOfRange,
               "bos_token_id = 6 is outside the vocabulary");
}

TEST(BrokenVocab, MissingPieces) {
  GgufBuilder no_model;
  no_model.strings("tokenizer.ggml.tokens", kTokens);
  expect_error(no_model, ErrorCode::kNotFound, "tokenizer.ggml.model");

  GgufBuilder no_tokens;
  no_tokens.str("tokenizer.ggml.model", "llama");
  expect_error(no_tokens, ErrorCode::kNotFound, "tokenizer.ggml.tokens");

  GgufBuilder no_scores;
  no_scores.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", kTokens);
  expect_error(no_scores, ErrorCode::kNotFound, "tokenizer.ggml.scores");

  GgufBuilder no_merges;
  no_merges.str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", "gpt-2").strings("tokenizer.ggml.tokens", kTokens);
  expect_error(no_merges, ErrorCode::kNotFound, "tokenizer.ggml.merges");
}

TEST(BrokenVocab, UnknownModelAndPreTokenizer) {
  GgufBuilder model;
  model.str("tokenizer.ggml.model", "rwkv").strings("tokenizer.ggml.tokens", kTokens);
  expect_error(model, ErrorCode::kUnsupported, "'rwkv'");

  GgufBuilder pre;
  pre.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "mystery")
      .strings("tokenizer.ggml.tokens", {"a", "b", "ab"})
      .strings("tokenizer.ggml.merges", {"a b"});
  expect_error(pre, ErrorCode::kUnsupported, "'mystery'");
}

TEST(BrokenVocab, MalformedMergeAndWrongTypes) {
  GgufBuilder merge;
  merge.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "gpt-2")
      .strings("tokenizer.ggml.tokens", {"a", "b", "ab"})
      .strings("tokenizer.ggml.merges", {"ab"});
  expect_error(merge, ErrorCode::kCorruptData, "merges[0] = 'ab'");

  GgufBuilder tokens_not_strings;
  tokens_not_strings.str("tokenizer.ggml.model", "llama").ints("tokenizer.ggml.tokens", {1, 2});
  expect_error(tokens_not_strings, ErrorCode::kCorruptData, "array of strings");
}

TEST(BrokenVocab, MinimalByteLevelBpeMerges) {
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "gpt-2")
      .strings("tokenizer.ggml.tokens", {"a", "b", "c", "ab", "abc", "\xC4\xA0"})  // Ġ is the space
      .strings("tokenizer.ggml.merges", {"a b", "ab c"});
  std::vector<uint8_t> storage = b.build();
  auto f = GgufFile::parse(storage.data(), storage.size());
  ASSERT_TRUE(f.ok());
  auto t = Tokenizer::from_gguf(**f);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)->encode("abc abcb"), (std::vector<int32_t>{4, 5, 4, 1}));
  EXPECT_EQ((*t)->decode((*t)->encode("abc abcb")), "abc abcb");
}

}  // namespace
}  // namespace frugal
