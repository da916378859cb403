// Inconsistent vocabulary metadata must give a Status that names the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/tokenizer.h"

namespace frugal {
namespace {

// Builds a tensor-less GGUF v3 file in memory.
class GgufBuilder {
 public:
  GgufBuilder& str(const std::string& key, const std::string& v) {
    header(key, GgufValueType::kString);
    put_string(v);
    return *this;
  }
  GgufBuilder& u32(const std::string& key, uint32_t v) {
    header(key, GgufValueType::kUint32);
    put(v);
    return *this;
  }
  GgufBuilder& strings(const std::string& key, const std::vector<std::string>& v) {
    header(key, GgufValueType::kArray);
    put(static_cast<uint32_t>(GgufValueType::kString));
    put(static_cast<uint64_t>(v.size()));
    for (const auto& s : v) put_string(s);
    return *this;
  }
  GgufBuilder& floats(const std::string& key, const std::vector<float>& v) {
    header(key, GgufValueType::kArray);
    put(static_cast<uint32_t>(GgufValueType::kFloat32));
    put(static_cast<uint64_t>(v.size()));
    for (float f : v) put(f);
    return *this;
  }
  GgufBuilder& ints(const std::string& key, const std::vector<int32_t>& v) {
    header(key, GgufValueType::kArray);
    put(static_cast<uint32_t>(GgufValueType::kInt32));
    put(static_cast<uint64_t>(v.size()));
    for (int32_t i : v) put(i);
    return *this;
  }
  std::vector<uint8_t> build() const {
    std::vector<uint8_t> out;
    auto raw = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    raw("GGUF", 4);
    const uint32_t version = 3;
    const uint64_t n_tensors = 0;
    raw(&version, 4);
    raw(&n_tensors, 8);
    raw(&n_kv_, 8);
    out.insert(out.end(), body_.begin(), body_.end());
    while (out.size() % 32) out.push_back(0);
    return out;
  }

 private:
  template <class T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    body_.insert(body_.end(), b, b + sizeof(T));
  }
  void put_string(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    body_.insert(body_.end(), s.begin(), s.end());
  }
  void header(const std::string& key, GgufValueType t) {
    ++n_kv_;
    put_string(key);
    put(static_cast<uint32_t>(t));
  }
  std::vector<uint8_t> body_;
  uint64_t n_kv_ = 0;
};

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
