// Helpers shared by the tokenizer tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
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

}  // namespace frugal::test
