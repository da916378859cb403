// Qwen3: per-head Q/K RMSNorm, no QKV bias, head_dim != n_embd / n_head.
//
// No Qwen3 checkpoint ships with ../shared, so the test builds one from the
// trained tiny-qwen2-bpe weights: heads widened from 64 to 96 dimensions
// (zero rows in q/k/v, zero columns in o), the biases dropped, and q_norm /
// k_norm weights added. It is then a valid Qwen3 checkpoint with trained
// embeddings and MLPs. The expected token ids were produced by llama.cpp's
// llama-server (greedy, top_k 1) on `frugal convert` of this directory, so
// the reference is an independent implementation of the architecture
// (bench/convert-vs-llamacpp.sh does the same for the shipped models).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/hf/hf_convert.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"
#include "model/model_test_util.h"
#include "tokenizer/pre_tokenizer.h"

namespace frugal {
namespace {

using testing::shared_path;
namespace fs = std::filesystem;

constexpr int kHeadDim = 96;  // the source model's heads have 64

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

std::string slurp_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

struct Tensor {
  std::vector<int64_t> shape;
  std::string bytes;  // bf16, row-major
};

// Rows (dim 0) of a [heads * 64, cols] matrix spread to [heads * 96, cols].
Tensor widen_rows(const Tensor& t, int heads) {
  const int64_t cols = t.shape[1], old_hd = t.shape[0] / heads;
  Tensor out{{int64_t{heads} * kHeadDim, cols}, std::string(static_cast<size_t>(heads * kHeadDim * cols * 2), '\0')};
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < old_hd; ++i)
      std::memcpy(&out.bytes[((h * kHeadDim + i) * cols) * 2], &t.bytes[((h * old_hd + i) * cols) * 2], cols * 2);
  return out;
}

// Columns (dim 1) of a [rows, heads * 64] matrix spread to [rows, heads * 96].
Tensor widen_cols(const Tensor& t, int heads) {
  const int64_t rows = t.shape[0], old_hd = t.shape[1] / heads, new_cols = int64_t{heads} * kHeadDim;
  Tensor out{{rows, new_cols}, std::string(static_cast<size_t>(rows * new_cols * 2), '\0')};
  for (int64_t r = 0; r < rows; ++r)
    for (int h = 0; h < heads; ++h)
      std::memcpy(&out.bytes[(r * new_cols + h * kHeadDim) * 2], &t.bytes[(r * t.shape[1] + h * old_hd) * 2],
                  old_hd * 2);
  return out;
}

// Writes the Qwen3 variant of tiny-qwen2-bpe into `dir`.
void make_qwen3_dir(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path src = shared_path("models/tiny-qwen2-bpe");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    fs::copy_file(src / f, dir / f, fs::copy_options::overwrite_existing);
  std::ifstream cin_(src / "config.json");
  nlohmann::json config = nlohmann::json::parse(cin_);
  const int n_head = config["num_attention_heads"], n_kv = config["num_key_value_heads"];
  const int n_layer = config["num_hidden_layers"];
  config["model_type"] = "qwen3";
  config["architectures"] = {"Qwen3ForCausalLM"};
  config["head_dim"] = kHeadDim;
  config["attention_bias"] = false;
  std::ofstream(dir / "config.json") << config.dump(2);

  const std::string file = slurp_binary((src / "model.safetensors").string());
  uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  const auto header = nlohmann::json::parse(file.substr(8, header_len));
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__" || name.find("_proj.bias") != std::string::npos) continue;
    ASSERT_EQ(info["dtype"], "BF16") << name;
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    Tensor t{info["shape"].get<std::vector<int64_t>>(), file.substr(8 + header_len + begin, end - begin)};
    if (name.find("q_proj.weight") != std::string::npos) t = widen_rows(t, n_head);
    if (name.find("k_proj.weight") != std::string::npos || name.find("v_proj.weight") != std::string::npos)
      t = widen_rows(t, n_kv);
    if (name.find("o_proj.weight") != std::string::npos) t = widen_cols(t, n_head);
    tensors[name] = std::move(t);
  }
  for (int l = 0; l < n_layer; ++l)
    for (const char* which : {"q_norm", "k_norm"}) {
      Tensor t{{kHeadDim}, std::string(kHeadDim * 2, '\0')};
      for (int i = 0; i < kHeadDim; ++i) {
        const uint16_t v = to_bf16(1.0f + 0.25f * std::sin(0.7f * i + l + (which[0] == 'k' ? 2.0f : 0.0f)));
        std::memcpy(&t.bytes[i * 2], &v, 2);
      }
      tensors["model.layers." + std::to_string(l) + ".self_attn." + which + ".weight"] = std::move(t);
    }
  nlohmann::json out_header;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    out_header[name] = {{"dtype", "BF16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = out_header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h;
  for (const auto& [name, t] : tensors) out << t.bytes;
}

const fs::path& qwen3_dir() {
  static const fs::path dir = [] {
    const char* keep = std::getenv("FRUGAL_QWEN3_TEST_DIR");  // to run other engines on it
    fs::path d = keep ? fs::path(keep) : fs::temp_directory_path() / ("frugal-qwen3-" + std::to_string(::getpid()));
    make_qwen3_dir(d);
    return d;
  }();
  return dir;
}

struct Case {
  std::string prompt;
  // llama.cpp's greedy continuation, up to its first near-tie (top-1/top-2
  // log-probability gap < 0.05), where the two engines' rounding may differ.
  std::vector<int32_t> greedy;
  // llama.cpp's top-5 log-probabilities of the first generated token.
  std::vector<std::pair<int32_t, float>> top5;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"Once upon a time",
       {14, 271, 201, 259, 435},
       {{14, -1.5406f}, {201, -2.1756f}, {286, -2.4507f}, {29, -2.6686f}, {16, -3.0953f}}},
      {"def main():",
       {223, 23, 28, 223, 23, 28, 223, 23, 28, 223, 23, 223, 23, 21, 201, 373, 223, 23, 19, 201, 373, 990, 19, 16},
       {{223, -1.7983f}, {323, -2.0209f}, {63, -2.2085f}, {0, -3.2151f}, {463, -3.3423f}}},
  };
  return c;
}

void expect_llama_cpp_outputs(const Model& m) {
  for (const Case& c : cases()) {
    const auto prompt = m.tokenizer().encode(c.prompt, {.add_bos = m.tokenizer().add_bos_default()});
    const auto logits = testing::last_logits(m, prompt);
    double max = logits[0], sum = 0;
    for (float l : logits) max = std::max<double>(max, l);
    for (float l : logits) sum += std::exp(l - max);
    const double log_z = max + std::log(sum);
    // llama.cpp's CPU BF16 matmuls round the activations to bf16 too (about
    // 0.4% each); the engines differ by up to ~0.011 here.
    for (const auto& [id, logprob] : c.top5) EXPECT_NEAR(logits[id] - log_z, logprob, 0.03) << c.prompt << " id " << id;
    const auto ids = testing::greedy(m, prompt, static_cast<int>(c.greedy.size()), m.tokenizer().eos_id());
    EXPECT_EQ(ids, c.greedy) << c.prompt;
  }
}

TEST(Qwen3, DirectoryRunsLikeLlamaCpp) {
  auto m = Model::load(qwen3_dir().string());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ((*m)->info().architecture, "qwen3");
  EXPECT_EQ((*m)->info().head_dim, kHeadDim);
  expect_llama_cpp_outputs(**m);
}

TEST(Qwen3, ConvertedFileRunsLikeLlamaCpp) {
  auto gguf = hf::convert_to_gguf_buffer(qwen3_dir().string(), {.resolve_pre = tok::find_pre_tokenizer_name});
  ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
  const fs::path path = qwen3_dir().string() + ".gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(gguf->data()), gguf->size());
  auto file = GgufFile::open(path.string());
  ASSERT_TRUE(file.ok());
  ASSERT_NE((*file)->find_tensor("blk.3.attn_k_norm.weight"), nullptr);
  auto m = Model::load(path.string());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  expect_llama_cpp_outputs(**m);
  fs::remove(path);
}

TEST(Qwen3, MissingHeadNormIsAnError) {
  const fs::path dir = qwen3_dir().string() + "-nonorm";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(qwen3_dir()))
    fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  // Rename layer 1's k_norm so the checkpoint lacks it.
  std::string st = slurp_binary((dir / "model.safetensors").string());
  const size_t pos = st.find("model.layers.1.self_attn.k_norm.weight");
  ASSERT_NE(pos, std::string::npos);
  st[pos + 25] = 'x';  // "k_norm" -> "x_norm"
  std::ofstream(dir / "model.safetensors", std::ios::binary) << st;
  auto m = Model::load(dir.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().to_string().find("k_norm"), std::string::npos) << m.status().to_string();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal
