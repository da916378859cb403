// Hugging Face model directory metadata: config.json, generation_config.json
// and tokenizer_config.json, reduced to what a GGUF file records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frugal/status.h"

namespace frugal::hf {

enum class RopeScalingType { kNone, kLinear, kLlama3, kYarn, kDynamic };

struct HfConfig {
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3"
  std::string gguf_arch;     // "llama" (llama, mistral), "qwen2", "qwen3"
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  bool head_dim_explicit = false;
  int64_t max_position_embeddings = 0;
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  // Q/K rows are permuted from the rotate-half layout to interleaved pairs
  // for the GGUF "llama" architecture, as llama.cpp's converter does.
  bool permute_qk = false;

  RopeScalingType rope_scaling = RopeScalingType::kNone;
  double rope_factor = 1.0;
  int64_t rope_original_context = 0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json
};

struct HfTokenizerConfig {
  std::optional<std::string> chat_template;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
};

// Parses config.json text. Unknown model types are rejected with the list of
// supported ones.
Expected<HfConfig> parse_config(const std::string& json_text);
// eos_token_id of generation_config.json (an integer or a list).
Expected<std::vector<int64_t>> parse_generation_eos(const std::string& json_text);
Expected<HfTokenizerConfig> parse_tokenizer_config(const std::string& json_text);

}  // namespace frugal::hf
