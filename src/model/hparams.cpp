#include "model/hparams.h"

#include <cmath>

#include "frugal/gguf.h"

namespace frugal {
namespace {

// Reads an integer key; `required` keys produce an error naming the key.
Status read_int(const GgufFile& f, const std::string& key, bool required, int* out) {
  auto v = f.get_int(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    if (required) return not_found("missing metadata key '" + key + "'");
    return Status::Ok();
  }
  const int64_t x = **v;
  if (x < 0 || x > (1ll << 31) - 1)
    return out_of_range("metadata '" + key + "' = " + std::to_string(x) + " is out of range");
  *out = static_cast<int>(x);
  return Status::Ok();
}

Status read_float(const GgufFile& f, const std::string& key, float* out) {
  auto v = f.get_float(key);
  if (!v.ok()) return v.status();
  if (v->has_value()) *out = static_cast<float>(**v);
  return Status::Ok();
}

}  // namespace

Expected<HParams> read_hparams(const GgufFile& f, const std::string& arch) {
  HParams hp;
  hp.arch = arch;
  const std::string p = arch + ".";
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "block_count", true, &hp.n_layer));
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "embedding_length", true, &hp.n_embd));
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "feed_forward_length", true, &hp.n_ff));
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "attention.head_count", true, &hp.n_head));
  hp.n_head_kv = hp.n_head;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "attention.head_count_kv", false, &hp.n_head_kv));
  hp.n_ctx_train = 2048;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "context_length", false, &hp.n_ctx_train));
  if (hp.n_head <= 0) return corrupt_data("metadata '" + p + "attention.head_count' must be positive");
  hp.head_dim = hp.n_embd / hp.n_head;
  const int derived_head_dim = hp.head_dim;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "attention.key_length", false, &hp.head_dim));
  // Without an explicit key length the head size is embedding / heads, which must divide.
  if (f.find(p + "attention.key_length") == nullptr && derived_head_dim * hp.n_head != hp.n_embd)
    return corrupt_data("metadata '" + p + "embedding_length' (" + std::to_string(hp.n_embd) +
                        ") is not divisible by '" + p + "attention.head_count' (" +
                        std::to_string(hp.n_head) + ")");
  int value_len = hp.head_dim;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "attention.value_length", false, &value_len));
  if (value_len != hp.head_dim)
    return unsupported("attention.value_length " + std::to_string(value_len) +
                       " differs from attention.key_length " + std::to_string(hp.head_dim));
  hp.n_rot = hp.head_dim;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "rope.dimension_count", false, &hp.n_rot));
  FRUGAL_RETURN_IF_ERROR(read_float(f, p + "attention.layer_norm_rms_epsilon", &hp.rms_eps));
  FRUGAL_RETURN_IF_ERROR(read_float(f, p + "rope.freq_base", &hp.rope_theta));

  int vocab = 0;
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "vocab_size", false, &vocab));
  if (vocab == 0)
    if (const GgufValue* toks = f.find("tokenizer.ggml.tokens")) vocab = static_cast<int>(toks->count);
  hp.n_vocab = vocab;

  auto scaling = f.get_string(p + "rope.scaling.type");
  if (!scaling.ok()) return scaling.status();
  if (scaling->has_value()) {
    const std::string& s = **scaling;
    if (s == "none") hp.rope_scaling = RopeScaling::kNone;
    else if (s == "linear") hp.rope_scaling = RopeScaling::kLinear;
    else if (s == "llama3") hp.rope_scaling = RopeScaling::kLlama3;
    else if (s == "yarn") hp.rope_scaling = RopeScaling::kYarn;
    else return unsupported("rope.scaling.type '" + s + "'");
  }
  FRUGAL_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.factor", &hp.rope_scale_factor));
  FRUGAL_RETURN_IF_ERROR(read_int(f, p + "rope.scaling.original_context_length", false,
                                  &hp.rope_original_ctx));
  if (hp.rope_scaling == RopeScaling::kYarn)
    return unsupported("rope.scaling.type 'yarn' is not implemented yet");
  return hp;
}

Status validate_hparams(const HParams& hp) {
  auto bad = [&](const std::string& what) { return corrupt_data(hp.arch + ": " + what); };
  if (hp.n_layer <= 0 || hp.n_layer > 1024) return bad("block_count must be in 1..1024");
  if (hp.n_embd <= 0 || hp.n_embd > 65536) return bad("embedding_length must be in 1..65536");
  if (hp.n_ff <= 0 || hp.n_ff > 1 << 20) return bad("feed_forward_length must be in 1..2^20");
  if (hp.n_head <= 0 || hp.n_head > 1024) return bad("attention.head_count must be in 1..1024");
  if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)
    return bad("attention.head_count_kv (" + std::to_string(hp.n_head_kv) +
               ") must divide attention.head_count (" + std::to_string(hp.n_head) + ")");
  if (hp.head_dim <= 0 || hp.head_dim > 1024 || hp.head_dim % 2 != 0)
    return bad("head size " + std::to_string(hp.head_dim) + " (embedding_length / head_count or "
               "attention.key_length) must be even and in 2..1024");
  if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    return bad("rope.dimension_count must be even and at most the head size");
  if (hp.n_vocab <= 0) return bad("vocabulary size is missing or zero");
  if (hp.n_ctx_train <= 0) return bad("context_length must be positive");
  if (!(hp.rms_eps > 0.0f) || !std::isfinite(hp.rms_eps))
    return bad("attention.layer_norm_rms_epsilon must be positive");
  if (!(hp.rope_theta > 0.0f) || !std::isfinite(hp.rope_theta))
    return bad("rope.freq_base must be positive");
  if (!(hp.rope_scale_factor > 0.0f)) return bad("rope.scaling.factor must be positive");
  if (!hp.rope_freq_factors.empty() &&
      hp.rope_freq_factors.size() != static_cast<size_t>(hp.n_rot / 2))
    return bad("rope_freqs.weight must have rope.dimension_count/2 entries");
  return Status::Ok();
}

std::vector<float> rope_inverse_frequencies(const HParams& hp) {
  const int half = hp.n_rot / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    double freq = std::pow(static_cast<double>(hp.rope_theta), -2.0 * i / hp.n_rot);
    if (!hp.rope_freq_factors.empty()) {
      freq /= hp.rope_freq_factors[i];
    } else if (hp.rope_scaling == RopeScaling::kLinear) {
      freq /= hp.rope_scale_factor;
    } else if (hp.rope_scaling == RopeScaling::kLlama3 && hp.rope_original_ctx > 0) {
      // Llama 3.1: keep high frequencies, divide low ones by the factor, blend between.
      const double old_ctx = hp.rope_original_ctx;
      const double low_wavelen = old_ctx / hp.rope_llama3_low_freq_factor;
      const double high_wavelen = old_ctx / hp.rope_llama3_high_freq_factor;
      const double wavelen = 2.0 * M_PI / freq;
      if (wavelen > low_wavelen) {
        freq /= hp.rope_scale_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - hp.rope_llama3_low_freq_factor) /
                              (hp.rope_llama3_high_freq_factor - hp.rope_llama3_low_freq_factor);
        freq = (1.0 - smooth) * freq / hp.rope_scale_factor + smooth * freq;
      }
    }
    inv[i] = static_cast<float>(freq);
  }
  return inv;
}

}  // namespace frugal
