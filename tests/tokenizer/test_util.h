// Helpers shared by the tokenizer tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/tokenizer.h"

namespace frugal::test {

inline std::string shared_path(const std::string& rel) { return std::string(FRUGAL_SHARED_DIR) + "/" + rel; }

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct LoadedTokenizer {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tokenizer;
};

// Opens a GGUF file and builds its tokenizer, failing the test on error.
inline LoadedTokenizer load_tokenizer(const std::string& path) {
  LoadedTokenizer lt;
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << path << ": " << f.status().to_string();
  if (!f.ok()) return lt;
  lt.file = std::move(f).value();
  auto t = Tokenizer::from_gguf(*lt.file);
  EXPECT_TRUE(t.ok()) << path << ": " << t.status().to_string();
  if (t.ok()) lt.tokenizer = std::move(t).value();
  return lt;
}

inline std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

}  // namespace frugal::test
