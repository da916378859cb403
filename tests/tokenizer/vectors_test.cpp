// The tokenizer-vectors of ../shared: every case of every .inp/.out pair must
// give exactly the reference ids (encoded without BOS and without parsing
// special tokens, as llama.cpp's test-tokenizer-0 does).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace frugal {
namespace {

using test::ids_to_string;
using test::load_tokenizer;
using test::read_all;
using test::shared_path;

struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: each case followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per case.
std::vector<VectorCase> read_cases(const std::string& base) {
  const std::string inp = read_all(base + ".inp");
  const std::string outp = read_all(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VectorCase> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) next = inp.size();
    cases.push_back({inp.substr(pos, next - pos), {}});
    pos = next + sep.size();
  }
  std::istringstream lines(outp);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (i < cases.size()) {
      std::istringstream ids(line);
      int32_t id;
      while (ids >> id) cases[i].ids.push_back(id);
    }
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << base << ": .out line count differs from the .inp case count";
  return cases;
}

class TokenizerVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerVectors, EveryCaseMatches) {
  const std::string base = shared_path("tokenizer-vectors/ggml-vocab-" + GetParam() + ".gguf");
  auto cases = read_cases(base);
  ASSERT_GE(cases.size(), 40u);
  auto lt = load_tokenizer(base);
  ASSERT_TRUE(lt.tokenizer);
  size_t passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto got = lt.tokenizer->encode(cases[i].text, {.add_bos = false, .parse_special = false, .add_eos = false});
    if (got == cases[i].ids) {
      ++passed;
    } else {
      ADD_FAILURE() << GetParam() << " case " << i << " text '" << cases[i].text << "'\n  expected: "
                    << ids_to_string(cases[i].ids) << "\n  got:      " << ids_to_string(got);
    }
  }
  std::printf("[ vectors  ] %s: %zu/%zu cases pass\n", GetParam().c_str(), passed, cases.size());
}

// Decoding the reference ids gives back the input text for the lossless
// vocabularies (WordPiece lowercases and strips accents, so bert is not one).
class LosslessVectors : public TokenizerVectors {};

TEST_P(LosslessVectors, DecodeRoundTrip) {
  const std::string base = shared_path("tokenizer-vectors/ggml-vocab-" + GetParam() + ".gguf");
  auto cases = read_cases(base);
  auto lt = load_tokenizer(base);
  ASSERT_TRUE(lt.tokenizer);
  ASSERT_NE(lt.tokenizer->kind(), TokenizerKind::kWordPiece);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string decoded = lt.tokenizer->decode(cases[i].ids);
    EXPECT_EQ(decoded, cases[i].text) << GetParam() << " case " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, TokenizerVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "starcoder",
                                           "deepseek-coder", "bert-bge"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

INSTANTIATE_TEST_SUITE_P(Shared, LosslessVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "starcoder",
                                           "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace frugal
