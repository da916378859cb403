// `frugal tokenize` on a vocabulary-only file prints the reference ids.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "test_util.h"

namespace frugal {
namespace {

struct CommandResult {
  int status;
  std::string out;
};

CommandResult run(const std::string& cmd) {
  CommandResult r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

TEST(TokenizeCommand, PrintsIdsOnOneLine) {
  const std::string vocab = test::shared_path("tokenizer-vectors/ggml-vocab-llama-spm.gguf");
  auto r = run(std::string(FRUGAL_CLI) + " tokenize -m '" + vocab + "' -p ' Hello world' 2>/dev/null");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "29871 15043 3186\n");
  r = run(std::string(FRUGAL_CLI) + " tokenize -m '" + vocab + "' -p 'Hello world' --bos 2>/dev/null");
  EXPECT_EQ(r.out, "1 15043 3186\n");
}

TEST(TokenizeCommand, ReadsFileAndReportsErrors) {
  const std::string vocab = test::shared_path("tokenizer-vectors/ggml-vocab-gpt-2.gguf");
  const std::string file = test::shared_path("tokenizer-vectors/ggml-vocab-gpt-2.gguf.inp");
  auto r = run(std::string(FRUGAL_CLI) + " tokenize -m '" + vocab + "' -f '" + file + "' 2>/dev/null");
  EXPECT_EQ(r.status, 0);
  EXPECT_GT(r.out.size(), 100u);
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line";
  r = run(std::string(FRUGAL_CLI) + " tokenize -m /nonexistent.gguf -p hi 2>&1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("error"), std::string::npos);
}

}  // namespace
}  // namespace frugal
