// Hyper-parameters of a decoder-only transformer, read from GGUF metadata
// under the architecture's key prefix ("llama.block_count", ...) and
// validated before any tensor is bound.
#pragma once

#include <string>
#include <vector>

#include "frugal/status.h"

namespace frugal {

class GgufFile;

// How rotary embeddings pair the dimensions of a head.
enum class RopeStyle {
  kInterleaved,  // pairs (2i, 2i+1): GGUF llama layout (Q/K rows permuted by the converter)
  kNeox,         // pairs (i, i + n_rot/2): Hugging Face rotate_half layout, Qwen2 GGUF
};

enum class RopeScaling { kNone, kLinear, kLlama3, kYarn };

struct HParams {
  std::string arch;
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_ctx_train = 0;
  int n_rot = 0;  // dimensions of each head that RoPE rotates
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::kInterleaved;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_scale_factor = 1.0f;  // linear: positions are divided by it
  // Llama 3 frequency-dependent scaling (from metadata or derived into
  // rope_freq_factors): divide each frequency by its factor.
  float rope_llama3_low_freq_factor = 1.0f;
  float rope_llama3_high_freq_factor = 4.0f;
  int rope_original_ctx = 0;
  std::vector<float> rope_freq_factors;  // n_rot/2 entries or empty

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
};

// Reads `<arch>.*` keys. n_vocab falls back to the tokenizer's token count.
Expected<HParams> read_hparams(const GgufFile& file, const std::string& arch);

// Checks internal consistency (divisibility, ranges) with messages naming the key.
Status validate_hparams(const HParams& hp);

// Per-pair inverse frequencies theta_i (already scaled), n_rot/2 entries.
std::vector<float> rope_inverse_frequencies(const HParams& hp);

}  // namespace frugal
