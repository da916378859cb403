#include "frugal/synth.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>

#include "core/thread_pool.h"
#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "quant/reference.h"

namespace frugal {

const std::vector<SynthShape>& synth_shapes() {
  static const std::vector<SynthShape> kShapes = {
      {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 2048, 10000.0f, false},
      {"llama2-7b", "llama", 4096, 32, 32, 32, 11008, 4096, 10000.0f, false},
      {"llama3-8b", "llama", 4096, 32, 32, 8, 14336, 8192, 500000.0f, false},
      {"mistral-7b", "llama", 4096, 32, 32, 8, 14336, 32768, 1000000.0f, false},
      {"qwen2.5-7b", "qwen2", 3584, 28, 28, 4, 18944, 32768, 1000000.0f, false},
  };
  return kShapes;
}

Expected<SynthType> parse_synth_type(const std::string& name) {
  std::string n = name;
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "f16") return SynthType::kF16;
  if (n == "bf16") return SynthType::kBF16;
  if (n == "q8_0") return SynthType::kQ8_0;
  if (n == "q4_0") return SynthType::kQ4_0;
  if (n == "q4_k_m") return SynthType::kQ4_K_M;
  if (n == "q6_k") return SynthType::kQ6_K;
  return invalid_argument("unknown type '" + name + "' (f16, bf16, q8_0, q4_0, q4_k_m, q6_k)");
}

namespace {

// llama.cpp's Q4_K_M spends more bits on some layers' attn_v / ffn_down.
bool use_more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

enum class Role { kEmbedding, kOutput, kAttnV, kFfnDown, kOther };

TensorType pick_type(SynthType t, Role role, int layer, int n_layer, int64_t row_len) {
  TensorType want;
  switch (t) {
    case SynthType::kF16: return TensorType::kF16;
    case SynthType::kBF16: return TensorType::kBF16;
    case SynthType::kQ8_0: want = TensorType::kQ8_0; break;
    case SynthType::kQ4_0: want = role == Role::kOutput ? TensorType::kQ6_K : TensorType::kQ4_0; break;
    case SynthType::kQ6_K: want = TensorType::kQ6_K; break;
    case SynthType::kQ4_K_M:
      want = TensorType::kQ4_K;
      if (role == Role::kOutput) want = TensorType::kQ6_K;
      if ((role == Role::kAttnV || role == Role::kFfnDown) && use_more_bits(layer, n_layer))
        want = TensorType::kQ6_K;
      break;
  }
  // K-quants need rows that are whole 256-blocks; fall back like llama-quantize.
  if ((want == TensorType::kQ4_K || want == TensorType::kQ6_K) && row_len % 256 != 0)
    want = want == TensorType::kQ6_K ? TensorType::kQ8_0 : TensorType::kQ5_0;
  return want;
}

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fills a row with N(0, sigma) values (Box-Muller), deterministic per seed.
void gaussian_row(float* out, int64_t n, uint64_t seed, float sigma) {
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(splitmix64(s) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * sigma;
    out[i] = static_cast<float>(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
  }
}

}  // namespace

Status synthesize_model(const SynthOptions& o) {
  const SynthShape* shape = nullptr;
  for (const auto& s : synth_shapes())
    if (s.name == o.shape) shape = &s;
  if (shape == nullptr) {
    std::string names;
    for (const auto& s : synth_shapes()) names += (names.empty() ? "" : ", ") + s.name;
    return invalid_argument("unknown shape '" + o.shape + "' (known: " + names + ")");
  }
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> vocab, GgufFile::open(o.vocab_from));
  const GgufValue* tokens = vocab->find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->count == 0)
    return invalid_argument(o.vocab_from + ": no tokenizer.ggml.tokens to copy");
  const int64_t n_vocab = static_cast<int64_t>(tokens->count);
  const int n_layer = o.n_layer_override > 0 ? o.n_layer_override : shape->n_layer;
  const std::string a = shape->arch;
  const int head_dim = shape->n_embd / shape->n_head;

  GgufWriter w;
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.architecture", a));
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.name", "synthetic " + shape->name));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".block_count", n_layer));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".context_length", shape->n_ctx));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".embedding_length", shape->n_embd));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".feed_forward_length", shape->n_ff));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".attention.head_count", shape->n_head));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".attention.head_count_kv", shape->n_head_kv));
  FRUGAL_RETURN_IF_ERROR(w.add_f32(a + ".rope.freq_base", shape->rope_theta));
  FRUGAL_RETURN_IF_ERROR(w.add_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".rope.dimension_count", head_dim));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(a + ".vocab_size", static_cast<uint32_t>(n_vocab)));
  for (const auto& kv : vocab->metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) FRUGAL_RETURN_IF_ERROR(w.add_value(kv.key, kv.value));

  auto pool = std::make_shared<ThreadPool>(o.n_threads);
  uint64_t tensor_seed = o.seed * 0x100000001b3ull;
  // Adds a matrix [cols x rows] filled with random rows quantized to `type`.
  auto add_matrix = [&](const std::string& name, int64_t cols, int64_t rows, TensorType type) {
    const uint64_t seed = tensor_seed += 0x9e3779b97f4a7c15ull;
    const int64_t dims[2] = {cols, rows};
    const size_t row_bytes = quant::row_size(type, cols);
    return w.add_tensor_fill(name, dims, type, [=](std::span<uint8_t> out) -> Status {
      std::vector<Status> errors(pool->size());
      pool->run([&](int t, int nt) {
        std::vector<float> row(cols);
        for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; ++r) {
          gaussian_row(row.data(), cols, seed ^ (static_cast<uint64_t>(r) * 0xff51afd7ed558ccdull), 0.02f);
          Status s = quant::quantize_row(type, row.data(), out.data() + r * row_bytes, cols);
          if (!s.ok()) errors[t] = s;
        }
      });
      for (auto& e : errors) FRUGAL_RETURN_IF_ERROR(e);
      return Status::Ok();
    });
  };
  auto add_ones = [&](const std::string& name, int64_t n) {
    std::vector<float> ones(n, 1.0f);
    const int64_t dims[1] = {n};
    return w.add_tensor(name, dims, TensorType::kF32,
                        {reinterpret_cast<const uint8_t*>(ones.data()), ones.size() * 4});
  };
  auto add_zeros = [&](const std::string& name, int64_t n) {
    std::vector<float> z(n, 0.0f);
    const int64_t dims[1] = {n};
    return w.add_tensor(name, dims, TensorType::kF32,
                        {reinterpret_cast<const uint8_t*>(z.data()), z.size() * 4});
  };

  const int64_t d = shape->n_embd, q_dim = d, kv_dim = int64_t(shape->n_head_kv) * head_dim;
  FRUGAL_RETURN_IF_ERROR(add_matrix("token_embd.weight", d, n_vocab,
                                    pick_type(o.type, Role::kEmbedding, 0, n_layer, d)));
  FRUGAL_RETURN_IF_ERROR(add_ones("output_norm.weight", d));
  if (!shape->tied_output)
    FRUGAL_RETURN_IF_ERROR(add_matrix("output.weight", d, n_vocab,
                                      pick_type(o.type, Role::kOutput, 0, n_layer, d)));
  for (int l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto t = [&](Role r, int64_t row_len) { return pick_type(o.type, r, l, n_layer, row_len); };
    FRUGAL_RETURN_IF_ERROR(add_ones(p + "attn_norm.weight", d));
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "attn_q.weight", d, q_dim, t(Role::kOther, d)));
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "attn_k.weight", d, kv_dim, t(Role::kOther, d)));
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "attn_v.weight", d, kv_dim, t(Role::kAttnV, d)));
    if (a == "qwen2") {
      FRUGAL_RETURN_IF_ERROR(add_zeros(p + "attn_q.bias", q_dim));
      FRUGAL_RETURN_IF_ERROR(add_zeros(p + "attn_k.bias", kv_dim));
      FRUGAL_RETURN_IF_ERROR(add_zeros(p + "attn_v.bias", kv_dim));
    }
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "attn_output.weight", q_dim, d, t(Role::kOther, q_dim)));
    FRUGAL_RETURN_IF_ERROR(add_ones(p + "ffn_norm.weight", d));
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "ffn_gate.weight", d, shape->n_ff, t(Role::kOther, d)));
    FRUGAL_RETURN_IF_ERROR(add_matrix(p + "ffn_up.weight", d, shape->n_ff, t(Role::kOther, d)));
    FRUGAL_RETURN_IF_ERROR(
        add_matrix(p + "ffn_down.weight", shape->n_ff, d, t(Role::kFfnDown, shape->n_ff)));
  }
  // general.file_type as llama.cpp numbers it (informational).
  static constexpr uint32_t kFileType[] = {1, 32, 7, 2, 15, 18};
  FRUGAL_RETURN_IF_ERROR(w.add_u32("general.file_type", kFileType[static_cast<int>(o.type)]));
  return w.write_to_file(o.output);
}

}  // namespace frugal
