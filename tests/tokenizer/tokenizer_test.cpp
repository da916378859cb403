// Behaviour of the tokenizers beyond the shared vectors: the tiny Llama
// model's reference prompts, special tokens, piece decoding, streaming,
// arbitrary bytes, defaults and the pre-tokenizer table.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

using test::load_tokenizer;
using test::read_all;
using test::shared_path;

std::string vocab_path(const std::string& name) {
  return shared_path("tokenizer-vectors/ggml-vocab-" + name + ".gguf");
}
const char* kTinyLlama = "models/gguf/tiny-llama-target-bf16.gguf";

TEST(TinyLlamaTokenizer, EncodesReferencePromptsWithBos) {
  auto lt = load_tokenizer(shared_path(kTinyLlama));
  ASSERT_TRUE(lt.tokenizer);
  const auto refs = nlohmann::json::parse(read_all(shared_path("refs/references.json")));
  const auto& prompts = refs.at("target").at("prompts").at("public");
  ASSERT_FALSE(prompts.empty());
  for (const auto& p : prompts) {
    const std::string text = p.at("prompt");
    const auto expected = p.at("prompt_ids").get<std::vector<int32_t>>();
    ASSERT_EQ(expected.front(), 1) << "reference ids start with BOS";
    EXPECT_EQ(lt.tokenizer->encode(text), expected) << "default options (add_bos from metadata): " << text;
    EXPECT_EQ(lt.tokenizer->encode(text, {.add_bos = true}), expected) << text;
  }
}

TEST(TinyLlamaTokenizer, DecodesReferenceContinuations) {
  auto lt = load_tokenizer(shared_path(kTinyLlama));
  ASSERT_TRUE(lt.tokenizer);
  const auto refs = nlohmann::json::parse(read_all(shared_path("refs/references.json")));
  for (const auto& p : refs.at("target").at("prompts").at("public")) {
    const auto ids = p.at("greedy_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(lt.tokenizer->decode(ids), p.at("greedy_text").get<std::string>());
  }
}

TEST(TinyLlamaTokenizer, MetadataAndDefaults) {
  auto lt = load_tokenizer(shared_path(kTinyLlama));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(t.n_vocab(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_FALSE(t.add_eos_default());
  EXPECT_TRUE(t.is_end_of_generation(2));
  EXPECT_FALSE(t.is_end_of_generation(1));
  EXPECT_FALSE(t.is_end_of_generation(13));
  ASSERT_TRUE(t.chat_template().has_value());
  EXPECT_NE(t.chat_template()->find("[INST]"), std::string::npos);
  EXPECT_EQ(t.token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(t.token_to_piece(15043), " Hello");
  EXPECT_EQ(t.token_to_piece(1), "");
  EXPECT_EQ(t.token_to_piece(1, /*render_special=*/true), "<s>");
  EXPECT_EQ(t.token_to_piece(-5), "");
  EXPECT_EQ(t.token_to_piece(32000), "");
  EXPECT_EQ(t.find_token("<s>"), std::optional<int32_t>(1));
  EXPECT_EQ(t.token_type(3), TokenType::kByte);
}

TEST(TinyLlamaTokenizer, EncodesValidationTextQuickly) {
  auto lt = load_tokenizer(shared_path(kTinyLlama));
  ASSERT_TRUE(lt.tokenizer);
  const std::string text = read_all(shared_path("data/valid.txt"));
  ASSERT_GT(text.size(), 100000u);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = lt.tokenizer->encode(text, {.add_bos = false});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ perf     ] %zu bytes -> %zu tokens in %.3f s\n", text.size(), ids.size(), seconds);
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_LT(seconds, 20.0);  // generous: a quadratic merge loop would take minutes
  EXPECT_EQ(lt.tokenizer->decode(ids), text);
}

TEST(SpecialTokens, ControlTokensNeedParseSpecial) {
  auto lt = load_tokenizer(vocab_path("llama-spm"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  const auto with = t.encode("<s>Hello</s>", {.add_bos = false, .parse_special = true});
  ASSERT_GE(with.size(), 3u);
  EXPECT_EQ(with.front(), 1);
  EXPECT_EQ(with.back(), 2);
  // The text after a special token gets the dummy prefix, as after the start.
  EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end() - 1), t.encode("Hello", {.add_bos = false}));
  const auto without = t.encode("<s>Hello</s>", {.add_bos = false, .parse_special = false});
  for (int32_t id : without) {
    EXPECT_NE(id, 1);
    EXPECT_NE(id, 2);
  }
  EXPECT_EQ(t.decode(without), "<s>Hello</s>");
}

TEST(SpecialTokens, ByteLevelBpeEndOfText) {
  auto lt = load_tokenizer(vocab_path("gpt-2"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  const auto ids = t.encode("Hi<|endoftext|>there", {.parse_special = true});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 50256);
  EXPECT_TRUE(t.is_end_of_generation(50256));
  const auto plain = t.encode("Hi<|endoftext|>there");
  EXPECT_GT(plain.size(), 3u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_FALSE(t.add_bos_default());
  EXPECT_EQ(t.token_to_piece(t.find_token("\xC4\xA0the").value_or(-1)), " the");  // "Ġthe"
  EXPECT_EQ(t.decode(t.encode("Hi<|endoftext|>there", {.parse_special = true}), true), "Hi<|endoftext|>there");
}

TEST(SpecialTokens, Phi3TurnMarkersEndGeneration) {
  auto lt = load_tokenizer(vocab_path("phi-3"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  const auto end = t.find_token("<|end|>");
  ASSERT_TRUE(end.has_value());
  EXPECT_TRUE(t.is_end_of_generation(*end));
  EXPECT_TRUE(t.is_end_of_generation(t.eos_id()));
  const auto ids = t.encode("<|user|>\nHi<|end|>", {.add_bos = false, .parse_special = true});
  EXPECT_EQ(ids.back(), *end);
}

TEST(WordPiece, ClsAndSepWrapTheSequence) {
  auto lt = load_tokenizer(vocab_path("bert-bge"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  EXPECT_EQ(t.bos_id(), 101);
  EXPECT_EQ(t.eos_id(), 102);
  const auto ids = t.encode("Hello world", {.add_bos = true, .add_eos = true});
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  EXPECT_EQ(t.decode(ids), "hello world");
  // Accents stripped, lowercased.
  EXPECT_EQ(t.encode("HÉLLO", {.add_bos = false}), t.encode("hello", {.add_bos = false}));
}

// Every tokenizer must accept arbitrary bytes; the lossless ones must give
// them back exactly.
TEST(ArbitraryBytes, NeverCrashAndRoundTrip) {
  std::mt19937 rng(1234);
  std::vector<std::string> inputs = {std::string("\xFF\xFE\x80", 3), std::string("a\xC3", 2),
                                     std::string("\xE2\x96", 2), std::string("\xED\xA0\x80", 3),
                                     std::string("\0x\0", 3), std::string("\xF4\x90\x80\x80", 4)};
  for (int i = 0; i < 60; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? 'a' + rng() % 26 : rng() % 256);
    inputs.push_back(s);
  }
  for (const std::string name : {"llama-spm", "phi-3", "gpt-2", "falcon", "starcoder", "deepseek-coder", "bert-bge"}) {
    auto lt = load_tokenizer(vocab_path(name));
    ASSERT_TRUE(lt.tokenizer);
    const Tokenizer& t = *lt.tokenizer;
    for (const auto& s : inputs) {
      const auto ids = t.encode(s, {.add_bos = false});
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.n_vocab()) << name;
      // These vocabularies hold every byte; falcon, starcoder and deepseek-coder
      // lack some byte symbols, so bytes such as 0x13 or 0xFF cannot survive there.
      if (name == "llama-spm" || name == "phi-3" || name == "gpt-2") EXPECT_EQ(t.decode(ids), s) << name;
    }
  }
}

std::vector<int32_t> byte_tokens(const Tokenizer& t, std::string_view bytes) {
  std::vector<int32_t> ids;
  for (unsigned char c : bytes) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", c);
    ids.push_back(t.find_token(name).value_or(-1));
  }
  return ids;
}

TEST(StreamingDecoder, HoldsBackPartialCharacters) {
  auto lt = load_tokenizer(vocab_path("llama-spm"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  const std::string text = "a\xF0\x9F\xA6\x99\xE2\x82\xAC\xC3\xA9z";  // a🦙€éz
  std::vector<int32_t> ids = {t.find_token("a").value()};
  for (int32_t id : byte_tokens(t, "\xF0\x9F\xA6\x99\xE2\x82\xAC\xC3\xA9")) ids.push_back(id);
  ids.push_back(t.find_token("z").value());
  StreamingDecoder dec(t);
  std::string all;
  std::vector<std::string> chunks;
  for (int32_t id : ids) {
    ASSERT_GE(id, 0);
    std::string piece = dec.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(piece)) << "chunk " << chunks.size();
    chunks.push_back(piece);
    all += piece;
  }
  all += dec.flush();
  EXPECT_EQ(all, text);
  // The first three bytes of the llama emoji produce nothing; the fourth the whole character.
  EXPECT_EQ(chunks[1], "");
  EXPECT_EQ(chunks[2], "");
  EXPECT_EQ(chunks[3], "");
  EXPECT_EQ(chunks[4], "\xF0\x9F\xA6\x99");
}

TEST(StreamingDecoder, InvalidBytesBecomeReplacementCharacters) {
  auto lt = load_tokenizer(vocab_path("llama-spm"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  StreamingDecoder dec(t);
  EXPECT_EQ(dec.push(byte_tokens(t, "\xFF")[0]), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.push(byte_tokens(t, "\xE2")[0]), "");
  // A lead byte followed by ASCII can never complete.
  EXPECT_EQ(dec.push(t.find_token("z").value()), "\xEF\xBF\xBDz");
  EXPECT_EQ(dec.push(byte_tokens(t, "\xF0")[0]), "");
  EXPECT_EQ(dec.push(byte_tokens(t, "\x9F")[0]), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.flush(), "");
}

TEST(StreamingDecoder, ByteLevelBpeSplitCharacter) {
  auto lt = load_tokenizer(vocab_path("gpt-2"));
  ASSERT_TRUE(lt.tokenizer);
  const Tokenizer& t = *lt.tokenizer;
  const std::string text = "\xF0\x9F\xA6\x99 llama";
  const auto ids = t.encode(text);
  StreamingDecoder dec(t);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = dec.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(piece));
    all += piece;
  }
  all += dec.flush();
  EXPECT_EQ(all, text);
}

TEST(PreTokenizerTable, EveryRowCompiles) {
  for (const auto& spec : tok::pre_tokenizer_table()) {
    auto pt = tok::PreTokenizer::create(spec);
    EXPECT_TRUE(pt.ok()) << spec.names.front() << ": " << pt.status().to_string();
  }
  for (std::string_view name : {"default", "gpt-2", "llama3", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder",
                                "falcon", "starcoder", "mpt", "refact", "command-r", "gpt-4o", "stablelm2", "olmo",
                                "dbrx", "smaug-bpe", "poro", "chatglm4", "viking", "jais", "tekken", "bloom",
                                "chameleon"})
    EXPECT_NE(tok::find_pre_tokenizer(name), nullptr) << name;
  EXPECT_EQ(tok::find_pre_tokenizer("no-such-pre"), nullptr);
}

std::vector<std::string> split_with(std::string_view pre, std::string_view text) {
  auto pt = tok::PreTokenizer::create(*tok::find_pre_tokenizer(pre));
  std::vector<std::string> out;
  if (!pt.ok()) return out;
  for (auto [b, n] : (*pt)->split(text)) out.emplace_back(text.substr(b, n));
  return out;
}

TEST(PreTokenizerTable, Llama3SplitsDigitsInThreesAndContractions) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_with("llama3", "Hello world 1234567"), (V{"Hello", " world", " ", "123", "456", "7"}));
  EXPECT_EQ(split_with("llama3", "I'M here"), (V{"I", "'M", " here"}));
  EXPECT_EQ(split_with("qwen2", "ab 12"), (V{"ab", " ", "1", "2"}));
  EXPECT_EQ(split_with("gpt-2", "a  b\n"), (V{"a", " ", " b", "\n"}));
  // Invalid UTF-8 survives as its own piece.
  const std::string bad = "ab\xFF" "cd";
  EXPECT_EQ(split_with("gpt-2", bad), (V{"ab", "\xFF", "cd"}));
}

}  // namespace
}  // namespace frugal
