#include "formats/hf/hf_convert.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/half.h"
#include "core/mapped_file.h"

namespace frugal::hf {
namespace {

namespace fs = std::filesystem;

// llama.cpp's LLAMA_FTYPE numbering for general.file_type.
uint32_t file_type_of(TensorType t) {
  switch (t) {
    case TensorType::kF32: return 0;
    case TensorType::kF16: return 1;
    case TensorType::kQ4_0: return 2;
    case TensorType::kQ4_1: return 3;
    case TensorType::kQ8_0: return 7;
    case TensorType::kQ5_0: return 8;
    case TensorType::kQ5_1: return 9;
    case TensorType::kQ4_K: return 15;  // Q4_K_M
    case TensorType::kQ5_K: return 17;  // Q5_K_M
    case TensorType::kQ6_K: return 18;
    case TensorType::kBF16: return 32;
    default: return 0;
  }
}

Expected<std::optional<std::string>> read_optional(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::optional<std::string>();
  FRUGAL_ASSIGN_OR_RETURN(std::string text, read_file_to_string(p.string()));
  return std::optional<std::string>(std::move(text));
}

// One output tensor and how to produce it from a checkpoint tensor.
struct TensorPlan {
  std::string gguf_name;
  const st::TensorView* source = nullptr;
  int64_t rows = 0, cols = 0;  // cols = innermost
  int64_t permute_heads = 0;   // >0: interleave Q/K rows per head
  TensorType type = TensorType::kF32;
  std::vector<float> generated;  // tensors computed here (rope_freqs), when source is null
};

int64_t permuted_source_row(int64_t r, int64_t n_heads, int64_t rows) {
  const int64_t hd = rows / n_heads;
  const int64_t h = r / hd, rem = r % hd;
  return h * hd + (rem % 2) * (hd / 2) + rem / 2;
}

Status encode_row(TensorType type, const float* src, uint8_t* dst, int64_t n, const RowEncoder& enc) {
  switch (type) {
    case TensorType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return Status::Ok();
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return Status::Ok();
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return Status::Ok();
    default:
      if (!enc) return unsupported("no encoder for output type " + std::string(tensor_type_name(type)));
      return enc(type, src, dst, n);
  }
}

Status fill_tensor(const TensorPlan& p, const RowEncoder& enc, std::span<uint8_t> out) {
  const auto traits = tensor_type_traits(p.type);
  if (!traits || p.cols % traits->block_size != 0) return internal_error("bad plan for " + p.gguf_name);
  const size_t row_bytes = static_cast<size_t>(p.cols / traits->block_size) * traits->type_size;
  if (out.size() != row_bytes * static_cast<size_t>(p.rows)) return internal_error("size mismatch for " + p.gguf_name);
  std::vector<float> row(static_cast<size_t>(p.cols));
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t src_row = p.permute_heads > 0 ? permuted_source_row(r, p.permute_heads, p.rows) : r;
    if (p.source != nullptr) {
      FRUGAL_RETURN_IF_ERROR(st::read_as_f32(*p.source, src_row * p.cols, p.cols, row.data()));
    } else {
      std::memcpy(row.data(), p.generated.data() + src_row * p.cols, static_cast<size_t>(p.cols) * 4);
    }
    FRUGAL_RETURN_IF_ERROR(encode_row(p.type, row.data(), out.data() + r * row_bytes, p.cols, enc)
                               .with_context("tensor '" + p.gguf_name + "'"));
  }
  return Status::Ok();
}

std::string shape_string(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Llama 3.1 frequency factors, stored as rope_freqs.weight like llama.cpp does.
std::vector<float> llama3_rope_factors(const HfConfig& c) {
  std::vector<float> f(static_cast<size_t>(c.head_dim / 2));
  const double old_ctx = static_cast<double>(c.rope_original_context);
  const double low_wavelen = old_ctx / c.rope_low_freq_factor;
  const double high_wavelen = old_ctx / c.rope_high_freq_factor;
  for (size_t i = 0; i < f.size(); ++i) {
    const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * i / c.head_dim);
    const double wavelen = 2.0 * M_PI / freq;
    double factor;
    if (wavelen < high_wavelen) {
      factor = 1.0;
    } else if (wavelen > low_wavelen) {
      factor = c.rope_factor;
    } else {
      const double smooth = (old_ctx / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / c.rope_factor + smooth);
    }
    f[i] = static_cast<float>(factor);
  }
  return f;
}

}  // namespace

bool is_hf_model_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec);
}

Expected<std::unique_ptr<HfModelDir>> HfModelDir::open(const std::string& dir, const PreTokenizerResolver& resolve_pre) {
  auto m = std::unique_ptr<HfModelDir>(new HfModelDir());
  m->dir_ = dir;
  const fs::path root(dir);
  FRUGAL_ASSIGN_OR_RETURN(std::string config_text, read_file_to_string((root / "config.json").string()));
  FRUGAL_ASSIGN_OR_RETURN(m->config_, parse_config(config_text));

  FRUGAL_ASSIGN_OR_RETURN(auto gen_text, read_optional(root / "generation_config.json"));
  if (gen_text) {
    FRUGAL_ASSIGN_OR_RETURN(m->generation_eos_, parse_generation_eos(*gen_text));
  }
  FRUGAL_ASSIGN_OR_RETURN(auto tc_text, read_optional(root / "tokenizer_config.json"));
  if (tc_text) {
    FRUGAL_ASSIGN_OR_RETURN(m->tok_config_, parse_tokenizer_config(*tc_text));
  }
  if (!m->tok_config_.chat_template) {
    FRUGAL_ASSIGN_OR_RETURN(auto jinja, read_optional(root / "chat_template.jinja"));
    if (jinja) m->tok_config_.chat_template = std::move(jinja);
  }

  // tokenizer.json for byte-level BPE; tokenizer.model (the SentencePiece
  // original) when present for SentencePiece-style vocabularies.
  FRUGAL_ASSIGN_OR_RETURN(auto tj_text, read_optional(root / "tokenizer.json"));
  std::error_code ec;
  const bool have_spm = fs::exists(root / "tokenizer.model", ec);
  bool have_vocab = false;
  if (tj_text) {
    auto v = parse_tokenizer_json(*tj_text, resolve_pre);
    if (v.ok() && (v->model == "gpt2" || !have_spm)) {
      m->vocab_ = std::move(v).value();
      have_vocab = true;
    } else if (!v.ok() && !have_spm) {
      return v.status().with_context(dir);
    }
  }
  if (!have_vocab) {
    if (!have_spm) return not_found(dir + ": no tokenizer.json or tokenizer.model");
    FRUGAL_ASSIGN_OR_RETURN(auto mapping, MappedFile::open((root / "tokenizer.model").string()));
    auto v = parse_sentencepiece_model(mapping->data(), mapping->size());
    if (!v.ok()) return v.status().with_context((root / "tokenizer.model").string());
    m->vocab_ = std::move(v).value();
  }

  auto ck = st::SafetensorsCheckpoint::open_dir(dir);
  if (!ck.ok()) return ck.status();
  m->checkpoint_ = std::move(ck).value();
  return m;
}

Expected<GgufWriter> HfModelDir::make_gguf_writer(const ConvertOptions& options) const {
  const HfConfig& c = config_;
  const st::SafetensorsCheckpoint& ck = *checkpoint_;
  const std::string arch = c.gguf_arch;

  // --- tensor plan ---
  std::vector<std::unique_ptr<TensorPlan>> plans;
  std::set<std::string> used;
  std::optional<TensorType> source_type;
  auto add = [&](const std::string& hf_name, const std::string& gguf_name, std::vector<int64_t> shape,
                 bool required, int64_t permute_heads) -> Status {
    const st::TensorView* t = ck.find(hf_name);
    if (t == nullptr) return required ? not_found("checkpoint has no tensor '" + hf_name + "'") : Status::Ok();
    if (t->shape != shape)
      return corrupt_data("tensor '" + hf_name + "' has shape " + shape_string(t->shape) + ", config.json implies " +
                          shape_string(shape));
    if (!st::is_float_weight_dtype(t->dtype))
      return unsupported("tensor '" + hf_name + "' has dtype " + std::string(st::dtype_name(t->dtype)) +
                         " (F32, F16 and BF16 are converted)");
    used.insert(hf_name);
    auto p = std::make_unique<TensorPlan>();
    p->gguf_name = gguf_name;
    p->source = t;
    p->cols = shape.back();
    p->rows = t->n_elements / std::max<int64_t>(p->cols, 1);
    p->permute_heads = permute_heads;
    if (shape.size() == 1) {
      p->cols = shape[0];
      p->rows = 1;
      if (permute_heads > 0) {  // a permuted bias: every element is its own row
        p->rows = shape[0];
        p->cols = 1;
      }
      p->type = TensorType::kF32;
    } else {
      const TensorType src = t->dtype == st::Dtype::kBF16 ? TensorType::kBF16
                             : t->dtype == st::Dtype::kF16 ? TensorType::kF16
                                                            : TensorType::kF32;
      if (!source_type) source_type = src;
      p->type = options.weight_type.value_or(src);
      const auto traits = tensor_type_traits(p->type);
      if (!traits) return invalid_argument("unknown output type");
      // Rows that do not fit the block size stay in half precision, as llama.cpp does.
      if (p->cols % traits->block_size != 0) p->type = TensorType::kF16;
    }
    plans.push_back(std::move(p));
    return Status::Ok();
  };

  const int64_t d = c.hidden_size, hd = c.head_dim;
  const int64_t q_dim = c.num_attention_heads * hd, kv_dim = c.num_key_value_heads * hd;
  const st::TensorView* embd = ck.find("model.embed_tokens.weight");
  if (embd == nullptr) return not_found("checkpoint has no tensor 'model.embed_tokens.weight'");
  if (embd->shape.size() != 2 || embd->shape[1] != d)
    return corrupt_data("tensor 'model.embed_tokens.weight' has shape " + shape_string(embd->shape) +
                        ", expected [vocab, " + std::to_string(d) + "]");
  const int64_t n_vocab = embd->shape[0];
  if (c.vocab_size != 0 && c.vocab_size != n_vocab)
    return corrupt_data("config.json vocab_size " + std::to_string(c.vocab_size) + " differs from the " +
                        std::to_string(n_vocab) + " rows of model.embed_tokens.weight");
  FRUGAL_RETURN_IF_ERROR(add("model.embed_tokens.weight", "token_embd.weight", {n_vocab, d}, true, 0));
  if (c.rope_scaling == RopeScalingType::kLlama3) {
    auto p = std::make_unique<TensorPlan>();
    p->gguf_name = "rope_freqs.weight";
    p->generated = llama3_rope_factors(c);
    p->rows = 1;
    p->cols = static_cast<int64_t>(p->generated.size());
    plans.push_back(std::move(p));
  }
  const int64_t qh = c.permute_qk ? c.num_attention_heads : 0;
  const int64_t kh = c.permute_qk ? c.num_key_value_heads : 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    const std::string g = "blk." + std::to_string(l) + ".";
    FRUGAL_RETURN_IF_ERROR(add(h + "input_layernorm.weight", g + "attn_norm.weight", {d}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.q_proj.weight", g + "attn_q.weight", {q_dim, d}, true, qh));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.k_proj.weight", g + "attn_k.weight", {kv_dim, d}, true, kh));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.v_proj.weight", g + "attn_v.weight", {kv_dim, d}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.q_proj.bias", g + "attn_q.bias", {q_dim}, c.attention_bias, qh));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.k_proj.bias", g + "attn_k.bias", {kv_dim}, c.attention_bias, kh));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.v_proj.bias", g + "attn_v.bias", {kv_dim}, c.attention_bias, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {hd}, c.model_type == "qwen3", 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {hd}, c.model_type == "qwen3", 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "self_attn.o_proj.weight", g + "attn_output.weight", {d, q_dim}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", {d}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", {c.intermediate_size, d}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "mlp.up_proj.weight", g + "ffn_up.weight", {c.intermediate_size, d}, true, 0));
    FRUGAL_RETURN_IF_ERROR(add(h + "mlp.down_proj.weight", g + "ffn_down.weight", {d, c.intermediate_size}, true, 0));
  }
  FRUGAL_RETURN_IF_ERROR(add("model.norm.weight", "output_norm.weight", {d}, true, 0));
  if (!c.tie_word_embeddings) {
    FRUGAL_RETURN_IF_ERROR(add("lm_head.weight", "output.weight", {n_vocab, d}, false, 0));
  } else if (ck.find("lm_head.weight") != nullptr) {
    used.insert("lm_head.weight");  // a saved copy of the tied embedding
  }
  for (const st::TensorView* t : ck.tensors()) {
    if (used.count(t->name)) continue;
    if (t->name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // recomputed from rope_theta
    return unsupported("checkpoint tensor '" + t->name + "' has no GGUF counterpart for model_type '" +
                       c.model_type + "'");
  }

  // --- metadata ---
  GgufWriter w;
  const TensorType main_type = options.weight_type.value_or(source_type.value_or(TensorType::kF32));
  const bool quantized = main_type != TensorType::kF32 && main_type != TensorType::kF16 && main_type != TensorType::kBF16;
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.architecture", arch));
  std::string name = fs::path(dir_).filename().string();
  if (name.empty()) name = fs::path(dir_).parent_path().filename().string();
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.name", name));
  FRUGAL_RETURN_IF_ERROR(w.add_u32("general.file_type", file_type_of(main_type)));
  if (quantized) FRUGAL_RETURN_IF_ERROR(w.add_u32("general.quantization_version", 2));
  const std::string p = arch + ".";
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "vocab_size", static_cast<uint32_t>(n_vocab)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "context_length", static_cast<uint32_t>(c.max_position_embeddings)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "embedding_length", static_cast<uint32_t>(d)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "block_count", static_cast<uint32_t>(c.num_hidden_layers)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "rope.dimension_count", static_cast<uint32_t>(hd)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "attention.head_count", static_cast<uint32_t>(c.num_attention_heads)));
  FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads)));
  FRUGAL_RETURN_IF_ERROR(w.add_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta)));
  FRUGAL_RETURN_IF_ERROR(w.add_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps)));
  if (c.head_dim_explicit) {
    FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "attention.key_length", static_cast<uint32_t>(hd)));
    FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "attention.value_length", static_cast<uint32_t>(hd)));
  }
  if (c.rope_scaling == RopeScalingType::kLinear) {
    FRUGAL_RETURN_IF_ERROR(w.add_string(p + "rope.scaling.type", "linear"));
    FRUGAL_RETURN_IF_ERROR(w.add_f32(p + "rope.scaling.factor", static_cast<float>(c.rope_factor)));
  } else if (c.rope_scaling == RopeScalingType::kYarn) {
    FRUGAL_RETURN_IF_ERROR(w.add_string(p + "rope.scaling.type", "yarn"));
    FRUGAL_RETURN_IF_ERROR(w.add_f32(p + "rope.scaling.factor", static_cast<float>(c.rope_factor)));
    if (c.rope_original_context > 0)
      FRUGAL_RETURN_IF_ERROR(w.add_u32(p + "rope.scaling.original_context_length",
                                       static_cast<uint32_t>(c.rope_original_context)));
  }

  // --- tokenizer ---
  HfVocab v = vocab_;
  if (static_cast<int64_t>(v.tokens.size()) > n_vocab)
    return corrupt_data("tokenizer has " + std::to_string(v.tokens.size()) + " tokens but the embedding only " +
                        std::to_string(n_vocab) + " rows");
  v.pad_to(static_cast<size_t>(n_vocab));
  FRUGAL_RETURN_IF_ERROR(w.add_string("tokenizer.ggml.model", v.model));
  FRUGAL_RETURN_IF_ERROR(w.add_string("tokenizer.ggml.pre", v.pre));
  FRUGAL_RETURN_IF_ERROR(w.add_array_string("tokenizer.ggml.tokens", std::span<const std::string>(v.tokens)));
  if (v.model == "llama") FRUGAL_RETURN_IF_ERROR(w.add_array_f32("tokenizer.ggml.scores", v.scores));
  FRUGAL_RETURN_IF_ERROR(w.add_array_i32("tokenizer.ggml.token_type", v.types));
  if (v.model == "gpt2")
    FRUGAL_RETURN_IF_ERROR(w.add_array_string("tokenizer.ggml.merges", std::span<const std::string>(v.merges)));
  if (v.add_space_prefix) FRUGAL_RETURN_IF_ERROR(w.add_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix));

  // Special tokens: tokenizer_config.json first, then config.json /
  // generation_config.json, then the tokenizer file itself (llama.cpp's order).
  const HfTokenizerConfig& tc = tok_config_;
  auto by_text = [&](const std::optional<std::string>& s) -> std::optional<int64_t> {
    return s ? v.find(*s) : std::nullopt;
  };
  std::optional<int64_t> bos = by_text(tc.bos_token);
  if (!bos) bos = c.bos_token_id;
  if (!bos) bos = v.bos_id;
  std::optional<int64_t> eos = by_text(tc.eos_token);
  if (!eos && !c.eos_token_ids.empty()) eos = c.eos_token_ids[0];
  if (!eos && !generation_eos_.empty()) eos = generation_eos_[0];
  if (!eos) eos = v.eos_id;
  std::optional<int64_t> unk = by_text(tc.unk_token);
  if (!unk) unk = v.unk_id;
  std::optional<int64_t> pad = by_text(tc.pad_token);
  if (!pad) pad = v.pad_id;
  // A further end id the generation config stops on (Qwen: <|endoftext|> next to <|im_end|>).
  std::optional<int64_t> eot;
  for (int64_t e : generation_eos_)
    if (!eos || e != *eos) {
      eot = e;
      break;
    }
  auto add_id = [&](const char* key, const std::optional<int64_t>& id) -> Status {
    if (!id) return Status::Ok();
    if (*id < 0 || *id >= n_vocab)
      return corrupt_data(std::string(key) + " " + std::to_string(*id) + " is outside the vocabulary");
    return w.add_u32(key, static_cast<uint32_t>(*id));
  };
  FRUGAL_RETURN_IF_ERROR(add_id("tokenizer.ggml.bos_token_id", bos));
  FRUGAL_RETURN_IF_ERROR(add_id("tokenizer.ggml.eos_token_id", eos));
  FRUGAL_RETURN_IF_ERROR(add_id("tokenizer.ggml.unknown_token_id", unk));
  FRUGAL_RETURN_IF_ERROR(add_id("tokenizer.ggml.padding_token_id", pad));
  FRUGAL_RETURN_IF_ERROR(add_id("tokenizer.ggml.eot_token_id", eot));
  if (tc.add_bos_token) FRUGAL_RETURN_IF_ERROR(w.add_bool("tokenizer.ggml.add_bos_token", *tc.add_bos_token));
  if (tc.add_eos_token) FRUGAL_RETURN_IF_ERROR(w.add_bool("tokenizer.ggml.add_eos_token", *tc.add_eos_token));
  if (tc.chat_template) FRUGAL_RETURN_IF_ERROR(w.add_string("tokenizer.chat_template", *tc.chat_template));

  // --- tensors, filled at write time ---
  for (auto& plan : plans) {
    // 1-D tensors (norms, biases, rope factors) keep one dimension; matrices are [cols, rows].
    const bool one_dim = plan->source == nullptr || plan->source->shape.size() == 1;
    const std::vector<int64_t> dims =
        one_dim ? std::vector<int64_t>{plan->rows * plan->cols} : std::vector<int64_t>{plan->cols, plan->rows};
    std::shared_ptr<const TensorPlan> shared(std::move(plan));
    const RowEncoder enc = options.encode_row;
    FRUGAL_RETURN_IF_ERROR(w.add_tensor_fill(shared->gguf_name, dims, shared->type,
                                             [shared, enc](std::span<uint8_t> out) { return fill_tensor(*shared, enc, out); }));
  }
  return w;
}

Expected<std::vector<uint8_t>> convert_to_gguf_buffer(const std::string& dir, const ConvertOptions& options) {
  FRUGAL_ASSIGN_OR_RETURN(auto model, HfModelDir::open(dir, options.resolve_pre));
  FRUGAL_ASSIGN_OR_RETURN(GgufWriter w, model->make_gguf_writer(options));
  auto bytes = w.write_to_buffer();
  if (!bytes.ok()) return bytes.status().with_context(dir);
  return bytes;
}

}  // namespace frugal::hf
