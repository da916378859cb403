// The GGUF reader on the real files in ../shared (written by llama.cpp's tools).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"

namespace frugal {
namespace {

std::string shared(const std::string& rel) { return std::string(FRUGAL_SHARED_DIR) + "/" + rel; }

TEST(GgufRealFiles, Bf16TargetMetadataAndTensors) {
  auto f = GgufFile::open(shared("models/gguf/tiny-llama-target-bf16.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  auto arch = g.get_string("general.architecture");
  ASSERT_TRUE(arch.ok());
  ASSERT_TRUE(arch->has_value());
  EXPECT_EQ(**arch, "llama");
  auto n_layer = g.get_int("llama.block_count");
  ASSERT_TRUE(n_layer.ok() && n_layer->has_value());
  EXPECT_EQ(**n_layer, 6);
  const GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->count, 32000u);
  EXPECT_EQ(tokens->strings.size(), 32000u);
  EXPECT_EQ(tokens->strings[1], "<s>");
  const GgufTensorInfo* q = g.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::kBF16);
  ASSERT_EQ(q->dims.size(), 2u);
  EXPECT_EQ(q->dims[0], 384);
  EXPECT_EQ(q->dims[1], 384);
  EXPECT_EQ(q->n_bytes, 384u * 384u * 2u);
  // Every tensor lies inside the file.
  for (const auto& t : g.tensors()) {
    EXPECT_NE(t.data, nullptr) << t.name;
    EXPECT_LE(g.data_offset() + t.offset + t.n_bytes, g.file_size()) << t.name;
  }
}

TEST(GgufRealFiles, EveryModelFileOpens) {
  for (const auto& e : std::filesystem::directory_iterator(shared("models/gguf"))) {
    auto f = GgufFile::open(e.path().string());
    EXPECT_TRUE(f.ok()) << e.path() << ": " << f.status().to_string();
    if (f.ok()) {
      EXPECT_GT((*f)->tensors().size(), 0u);
    }
  }
}

TEST(GgufRealFiles, TypedGetterRejectsWrongType) {
  auto f = GgufFile::open(shared("models/gguf/tiny-llama-target-Q8_0.gguf"));
  ASSERT_TRUE(f.ok());
  auto s = (*f)->get_int("general.architecture");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("general.architecture"), std::string::npos);
  auto missing = (*f)->get_int("no.such.key");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

// Every llama.cpp-written file here, read and written back through
// GgufWriter, comes out byte for byte identical: the writer's encoding,
// alignment and padding match the files the rest of the ecosystem produces.
TEST(GgufRealFiles, WriterReproducesEveryFile) {
  size_t n = 0;
  for (const char* sub : {"models/gguf", "tokenizer-vectors"}) {
    for (const auto& e : std::filesystem::directory_iterator(shared(sub))) {
      if (e.path().extension() != ".gguf") continue;
      SCOPED_TRACE(e.path().string());
      auto f = GgufFile::open(e.path().string());
      ASSERT_TRUE(f.ok()) << f.status().to_string();
      GgufWriter w;
      for (const auto& kv : (*f)->metadata()) ASSERT_TRUE(w.add_value(kv.key, kv.value).ok()) << kv.key;
      for (const auto& t : (*f)->tensors())
        ASSERT_TRUE(w.add_tensor_ref(t.name, t.dims, t.type, {t.data, t.n_bytes}).ok()) << t.name;
      auto bytes = w.write_to_buffer();
      ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
      std::ifstream in(e.path(), std::ios::binary);
      const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ASSERT_EQ(bytes->size(), original.size());
      EXPECT_EQ(std::memcmp(bytes->data(), original.data(), original.size()), 0);
      ++n;
    }
  }
  EXPECT_GE(n, 8u);
}

}  // namespace
}  // namespace frugal
