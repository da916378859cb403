#include "formats/hf/hf_config.h"

#include <nlohmann/json.hpp>

namespace frugal::hf {
namespace {

using nlohmann::json;

Expected<json> parse_object(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return corrupt_data(what + " is not valid JSON");
  if (!j.is_object()) return corrupt_data(what + " is not a JSON object");
  return j;
}

// Reads an integer field; absent or null leaves `out` unchanged.
Status get_int(const json& j, const char* key, int64_t* out, int64_t min, int64_t max) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer()) return corrupt_data(std::string("config.json: '") + key + "' is not an integer");
  const int64_t v = it->get<int64_t>();
  if (v < min || v > max)
    return out_of_range(std::string("config.json: '") + key + "' = " + std::to_string(v) + " is out of range");
  *out = v;
  return Status::Ok();
}

Status get_double(const json& j, const char* key, double* out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return corrupt_data(std::string("config.json: '") + key + "' is not a number");
  *out = it->get<double>();
  return Status::Ok();
}

Status get_bool(const json& j, const char* key, bool* out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return corrupt_data(std::string("config.json: '") + key + "' is not a boolean");
  *out = it->get<bool>();
  return Status::Ok();
}

// An integer or a list of integers (eos_token_id).
Expected<std::vector<int64_t>> int_or_list(const json& v, const std::string& what) {
  std::vector<int64_t> out;
  if (v.is_null()) return out;
  if (v.is_number_integer()) {
    out.push_back(v.get<int64_t>());
    return out;
  }
  if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) return corrupt_data(what + " list has a non-integer entry");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  return corrupt_data(what + " is neither an integer nor a list");
}

// rope_scaling (older) or rope_parameters (transformers 5) block.
Status read_rope_block(const json& r, HfConfig& c) {
  if (!r.is_object()) return corrupt_data("config.json: rope scaling block is not an object");
  FRUGAL_RETURN_IF_ERROR(get_double(r, "rope_theta", &c.rope_theta));
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    const auto it = r.find(key);
    if (it != r.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type == "default" || type == "none") {
    c.rope_scaling = RopeScalingType::kNone;
  } else if (type == "linear") {
    c.rope_scaling = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    c.rope_scaling = RopeScalingType::kLlama3;
  } else if (type == "yarn") {
    c.rope_scaling = RopeScalingType::kYarn;
  } else if (type == "dynamic") {
    c.rope_scaling = RopeScalingType::kDynamic;
  } else {
    return unsupported("config.json: rope type '" + type + "'");
  }
  FRUGAL_RETURN_IF_ERROR(get_double(r, "factor", &c.rope_factor));
  FRUGAL_RETURN_IF_ERROR(get_int(r, "original_max_position_embeddings", &c.rope_original_context, 0, 1ll << 31));
  FRUGAL_RETURN_IF_ERROR(get_double(r, "low_freq_factor", &c.rope_low_freq_factor));
  FRUGAL_RETURN_IF_ERROR(get_double(r, "high_freq_factor", &c.rope_high_freq_factor));
  if (c.rope_scaling != RopeScalingType::kNone && !(c.rope_factor > 0))
    return corrupt_data("config.json: rope scaling factor must be positive");
  if (c.rope_scaling == RopeScalingType::kLlama3 &&
      !(c.rope_high_freq_factor > c.rope_low_freq_factor && c.rope_low_freq_factor > 0))
    return corrupt_data("config.json: llama3 rope needs 0 < low_freq_factor < high_freq_factor");
  return Status::Ok();
}

// A token given as a string or as {"content": "..."} (AddedToken form).
std::optional<std::string> token_string(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Expected<HfConfig> parse_config(const std::string& text) {
  FRUGAL_ASSIGN_OR_RETURN(json j, parse_object(text, "config.json"));
  HfConfig c;
  const auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) return corrupt_data("config.json: missing 'model_type'");
  c.model_type = mt->get<std::string>();
  if (c.model_type == "llama" || c.model_type == "mistral") {
    c.gguf_arch = "llama";
    c.permute_qk = true;
  } else if (c.model_type == "qwen2") {
    c.gguf_arch = "qwen2";
    c.attention_bias = true;
  } else if (c.model_type == "qwen3") {
    c.gguf_arch = "qwen3";
  } else {
    return unsupported("config.json: model_type '" + c.model_type +
                       "' (supported: llama, mistral, qwen2, qwen3)");
  }
  if (const auto a = j.find("architectures"); a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string())
    c.architecture = (*a)[0].get<std::string>();

  constexpr int64_t kBig = 1ll << 31;
  FRUGAL_RETURN_IF_ERROR(get_int(j, "hidden_size", &c.hidden_size, 1, 1 << 20));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "intermediate_size", &c.intermediate_size, 1, 1 << 22));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "num_hidden_layers", &c.num_hidden_layers, 1, 4096));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "num_attention_heads", &c.num_attention_heads, 1, 4096));
  c.num_key_value_heads = 0;
  FRUGAL_RETURN_IF_ERROR(get_int(j, "num_key_value_heads", &c.num_key_value_heads, 1, 4096));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "head_dim", &c.head_dim, 1, 1 << 16));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "max_position_embeddings", &c.max_position_embeddings, 1, kBig));
  FRUGAL_RETURN_IF_ERROR(get_int(j, "vocab_size", &c.vocab_size, 1, kBig));
  FRUGAL_RETURN_IF_ERROR(get_double(j, "rms_norm_eps", &c.rms_norm_eps));
  FRUGAL_RETURN_IF_ERROR(get_bool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  FRUGAL_RETURN_IF_ERROR(get_bool(j, "attention_bias", &c.attention_bias));
  if (c.model_type == "qwen2") c.attention_bias = true;  // Qwen2 always has QKV bias
  for (const char* k : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"})
    if (!j.contains(k)) return corrupt_data(std::string("config.json: missing '") + k + "'");
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return corrupt_data("config.json: num_key_value_heads must divide num_attention_heads");
  c.head_dim_explicit = c.head_dim != 0;
  if (!c.head_dim_explicit) {
    if (c.hidden_size % c.num_attention_heads != 0)
      return corrupt_data("config.json: hidden_size is not a multiple of num_attention_heads");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.max_position_embeddings == 0) c.max_position_embeddings = 2048;

  // Older files keep rope_theta (and rope_scaling) at the top level;
  // transformers 5 moves both into rope_parameters.
  FRUGAL_RETURN_IF_ERROR(get_double(j, "rope_theta", &c.rope_theta));
  if (const auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null())
    FRUGAL_RETURN_IF_ERROR(read_rope_block(*rs, c));
  if (const auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null())
    FRUGAL_RETURN_IF_ERROR(read_rope_block(*rp, c));
  if (!(c.rope_theta > 0)) return corrupt_data("config.json: rope_theta must be positive");
  if (!(c.rms_norm_eps > 0)) return corrupt_data("config.json: rms_norm_eps must be positive");
  if (c.rope_scaling == RopeScalingType::kLlama3 && c.rope_original_context == 0)
    return corrupt_data("config.json: llama3 rope scaling needs original_max_position_embeddings");

  if (const auto b = j.find("bos_token_id"); b != j.end() && b->is_number_integer()) c.bos_token_id = b->get<int64_t>();
  if (const auto e = j.find("eos_token_id"); e != j.end()) {
    FRUGAL_ASSIGN_OR_RETURN(c.eos_token_ids, int_or_list(*e, "config.json: eos_token_id"));
  }
  return c;
}

Expected<std::vector<int64_t>> parse_generation_eos(const std::string& text) {
  FRUGAL_ASSIGN_OR_RETURN(json j, parse_object(text, "generation_config.json"));
  const auto e = j.find("eos_token_id");
  if (e == j.end()) return std::vector<int64_t>{};
  return int_or_list(*e, "generation_config.json: eos_token_id");
}

Expected<HfTokenizerConfig> parse_tokenizer_config(const std::string& text) {
  FRUGAL_ASSIGN_OR_RETURN(json j, parse_object(text, "tokenizer_config.json"));
  HfTokenizerConfig t;
  if (const auto ct = j.find("chat_template"); ct != j.end()) {
    if (ct->is_string()) {
      t.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      // Named templates: the "default" one is the chat template.
      for (const auto& e : *ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          t.chat_template = e["template"].get<std::string>();
    }
  }
  if (const auto b = j.find("add_bos_token"); b != j.end() && b->is_boolean()) t.add_bos_token = b->get<bool>();
  if (const auto e = j.find("add_eos_token"); e != j.end() && e->is_boolean()) t.add_eos_token = e->get<bool>();
  t.bos_token = token_string(j, "bos_token");
  t.eos_token = token_string(j, "eos_token");
  t.unk_token = token_string(j, "unk_token");
  t.pad_token = token_string(j, "pad_token");
  return t;
}

}  // namespace frugal::hf
