// `frugal quantize IN OUT TYPE`: re-types the weights of a GGUF file or a
// Hugging Face directory into a standard GGUF.
//
// TYPE is Q8_0, Q4_0, Q5_0, Q4_K_M, Q5_K_M or Q6_K (or F16/BF16/F32). The K
// mixes follow llama.cpp's: the output projection (the token embedding when
// tied) gets Q6_K, attn_v and ffn_down get Q6_K in the first and last eighth
// of the layers and every third one between; rows whose length is not a
// multiple of 256 fall back to Q5_0 (for Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K).
//
// Calibration (--calib TEXT, or --stats FILE from an earlier run) records the
// mean squared activation entering every input channel of every linear layer
// and uses it twice: (a) an AWQ-style per-channel scale s, chosen per layer
// among s_j = rms_j^alpha, multiplies the columns of q/k/v and gate/up and
// divides the RMSNorm weight before them, which leaves the function unchanged
// but lets the salient channels keep more precision; (b) every quantizer
// weighs its rounding error by that activation energy.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli_commands.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "formats/hf/hf_convert.h"
#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "frugal/model.h"
#include "frugal/perplexity.h"
#include "model/arch.h"
#include "model/model_impl.h"
#include "quant/reference.h"
#include "quant/search_quantize.h"
#include "tokenizer/pre_tokenizer.h"

namespace frugal::cli {

// Also used by `frugal convert --type q8_0` and `frugal compare`.
Expected<std::unique_ptr<GgufFile>> open_model_as_gguf(const std::string& path, std::vector<uint8_t>& storage);

namespace {

struct QuantizeArgs {
  std::string input, output, type;
  std::string calib, stats;
  int calib_tokens = 16384;
  int threads = 0;
  bool keep_output = false;
  bool pure = false;
  bool no_awq = false;
  bool no_importance = false;
  bool quiet = false;
};

// ---------------------------------------------------------------------------
// Calibration statistics: mean squared activation per input channel.

struct LayerStats {
  std::vector<double> attn_in, attn_output_in, ffn_in, ffn_down_in;
};

struct CalibrationStats {
  std::vector<LayerStats> layers;
  int64_t tokens = 0;
};

CalibrationStats* g_collecting = nullptr;  // set only while collect_stats runs

void accumulate(std::vector<double>& acc, const float* rows, int64_t n_rows, int64_t width) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t j = 0; j < width; ++j) acc[j] += double(rows[r * width + j]) * rows[r * width + j];
}

// standard_decoder_layer with the matmul inputs recorded.
void recording_decoder_layer(LayerContext& ctx) {
  const HParams& hp = ctx.hp;
  const LayerWeights& w = ctx.w;
  ForwardBuffers& b = ctx.buf;
  const int64_t n = static_cast<int64_t>(ctx.batch.size());
  const int64_t d = hp.n_embd;
  LayerStats& st = g_collecting->layers[ctx.layer];

  rmsnorm_rows(b.x.data(), w.attn_norm.data(), n, d, hp.rms_eps, b.h.data(), ctx.pool);
  accumulate(st.attn_in, b.h.data(), n, d);
  kernels::matmul(w.wq, b.h.data(), n, b.q.data(), ctx.pool, ctx.mm);
  kernels::matmul(w.wk, b.h.data(), n, b.k.data(), ctx.pool, ctx.mm);
  kernels::matmul(w.wv, b.h.data(), n, b.v.data(), ctx.pool, ctx.mm);
  auto add_bias = [n](float* rows, const std::vector<float>& bias) {
    const int64_t k = static_cast<int64_t>(bias.size());
    for (int64_t r = 0; r < n && k > 0; ++r)
      for (int64_t j = 0; j < k; ++j) rows[r * k + j] += bias[j];
  };
  add_bias(b.q.data(), w.bq);
  add_bias(b.k.data(), w.bk);
  add_bias(b.v.data(), w.bv);
  apply_rope(b.q.data(), n, hp.n_head, hp, ctx.rope_style, b.rope_cos.data(), b.rope_sin.data());
  apply_rope(b.k.data(), n, hp.n_head_kv, hp, ctx.rope_style, b.rope_cos.data(), b.rope_sin.data());
  paged_attention(ctx);
  accumulate(st.attn_output_in, b.attn.data(), n, hp.q_dim());
  kernels::matmul(w.wo, b.attn.data(), n, b.h.data(), ctx.pool, ctx.mm);
  for (int64_t i = 0; i < n * d; ++i) b.x[i] += b.h[i];

  rmsnorm_rows(b.x.data(), w.ffn_norm.data(), n, d, hp.rms_eps, b.h.data(), ctx.pool);
  accumulate(st.ffn_in, b.h.data(), n, d);
  kernels::matmul(w.w_gate, b.h.data(), n, b.gate.data(), ctx.pool, ctx.mm);
  kernels::matmul(w.w_up, b.h.data(), n, b.up.data(), ctx.pool, ctx.mm);
  for (int64_t i = 0; i < n * hp.n_ff; ++i) {
    const float g = b.gate[i];
    b.gate[i] = g / (1.0f + std::exp(-g)) * b.up[i];
  }
  accumulate(st.ffn_down_in, b.gate.data(), n, hp.n_ff);
  kernels::matmul(w.w_down, b.gate.data(), n, b.h.data(), ctx.pool, ctx.mm);
  for (int64_t i = 0; i < n * d; ++i) b.x[i] += b.h[i];
  if (ctx.layer == 0) g_collecting->tokens += n;
}

Expected<CalibrationStats> collect_stats(const std::string& model_path, const std::string& text_path, int max_tokens,
                                         int threads, bool quiet) {
  FRUGAL_ASSIGN_OR_RETURN(std::string text, read_file_to_string(text_path));
  FRUGAL_ASSIGN_OR_RETURN(auto model, Model::load(model_path, {.n_threads = threads}));
  ModelImpl& impl = const_cast<ModelImpl&>(model->impl());  // the Model is ours and not shared
  if (impl.arch->decoder_layer != standard_decoder_layer)
    return unsupported("calibration needs the standard decoder layer (architecture " + impl.hp.arch + ")");
  ArchSpec recording = *impl.arch;
  recording.decoder_layer = recording_decoder_layer;
  impl.arch = &recording;

  const HParams& hp = impl.hp;
  CalibrationStats stats;
  stats.layers.resize(hp.n_layer);
  for (auto& l : stats.layers) {
    l.attn_in.assign(hp.n_embd, 0);
    l.attn_output_in.assign(hp.q_dim(), 0);
    l.ffn_in.assign(hp.n_embd, 0);
    l.ffn_down_in.assign(hp.n_ff, 0);
  }
  const std::vector<int32_t> stream = perplexity_token_stream(*model, text, "\n\x1e\n");
  const int window = 512;
  FRUGAL_ASSIGN_OR_RETURN(auto ctx, InferenceContext::create(*model, {.max_context = window, .max_batch_tokens = window}));
  g_collecting = &stats;
  std::vector<float> logits;
  std::vector<BatchEntry> batch;
  Status status;
  for (size_t start = 0; start < stream.size() && stats.tokens < max_tokens; start += window) {
    const size_t len = std::min<size_t>({window, stream.size() - start, static_cast<size_t>(max_tokens - stats.tokens)});
    batch.clear();
    for (size_t i = 0; i < len; ++i)
      batch.push_back({.seq = 0, .pos = static_cast<int32_t>(i), .token = stream[start + i], .want_logits = i + 1 == len});
    ctx->clear_sequence(0);
    status = ctx->forward(batch, logits);
    if (!status.ok()) break;
    if (!quiet) std::fprintf(stderr, "\rcalibration: %lld tokens", static_cast<long long>(stats.tokens));
  }
  g_collecting = nullptr;
  if (!quiet) std::fprintf(stderr, "\n");
  impl.arch = find_arch(hp.arch);
  if (!status.ok()) return status;
  if (stats.tokens == 0) return invalid_argument(text_path + ": no calibration tokens");
  return stats;
}

// The stats file is a GGUF of F32 vectors (mean squared activation per input
// channel), one per layer input, so any GGUF tool can inspect it.
Status save_stats(const CalibrationStats& s, const std::string& path) {
  GgufWriter w;
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.type", "frugal.activation_stats"));
  FRUGAL_RETURN_IF_ERROR(w.add_u64("frugal.calibration.tokens", static_cast<uint64_t>(s.tokens)));
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const std::pair<const char*, const std::vector<double>*> parts[] = {
        {"attn_in", &s.layers[l].attn_in}, {"attn_output_in", &s.layers[l].attn_output_in},
        {"ffn_in", &s.layers[l].ffn_in}, {"ffn_down_in", &s.layers[l].ffn_down_in}};
    for (const auto& [name, v] : parts) {
      std::vector<float> mean(v->size());
      for (size_t j = 0; j < v->size(); ++j) mean[j] = static_cast<float>((*v)[j] / double(s.tokens));
      const int64_t dims[] = {static_cast<int64_t>(mean.size())};
      FRUGAL_RETURN_IF_ERROR(w.add_tensor(p + name, dims, TensorType::kF32,
                                          {reinterpret_cast<const uint8_t*>(mean.data()), mean.size() * 4}));
    }
  }
  return w.write_to_file(path);
}

// Mean squared activation per input column, keyed by GGUF weight name.
using ImportanceMap = std::map<std::string, std::vector<float>>;

Expected<ImportanceMap> load_stats(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(auto f, GgufFile::open(path));
  auto type = f->get_string("general.type");
  if (!type.ok() || !type->has_value() || **type != "frugal.activation_stats")
    return corrupt_data(path + ": not a frugal activation statistics file");
  ImportanceMap m;
  const std::map<std::string, std::vector<std::string>> users = {
      {"attn_in", {"attn_q", "attn_k", "attn_v"}},
      {"attn_output_in", {"attn_output"}},
      {"ffn_in", {"ffn_gate", "ffn_up"}},
      {"ffn_down_in", {"ffn_down"}}};
  for (const auto& t : f->tensors()) {
    if (t.type != TensorType::kF32 || t.dims.size() != 1) return corrupt_data(path + ": tensor " + t.name + " is not a F32 vector");
    const size_t dot = t.name.rfind('.');
    if (dot == std::string::npos) continue;
    const auto it = users.find(t.name.substr(dot + 1));
    if (it == users.end()) continue;
    std::vector<float> v(static_cast<size_t>(t.n_elements));
    std::memcpy(v.data(), t.data, v.size() * 4);
    for (float& x : v)
      if (!std::isfinite(x) || x < 0) x = 0;
    for (const auto& u : it->second) m[t.name.substr(0, dot + 1) + u + ".weight"] = v;
  }
  return m;
}

// ---------------------------------------------------------------------------
// Type selection.

struct Recipe {
  TensorType base;
  bool k_mix = false;  // Q4_K_M / Q5_K_M: more bits for attn_v / ffn_down
  uint32_t file_type = 0;
};

std::optional<Recipe> recipe_for(std::string name) {
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name == "Q8_0") return Recipe{TensorType::kQ8_0, false, 7};
  if (name == "Q4_0") return Recipe{TensorType::kQ4_0, false, 2};
  if (name == "Q5_0") return Recipe{TensorType::kQ5_0, false, 8};
  if (name == "Q4_K_M" || name == "Q4_K") return Recipe{TensorType::kQ4_K, true, 15};
  if (name == "Q5_K_M" || name == "Q5_K") return Recipe{TensorType::kQ5_K, true, 17};
  if (name == "Q6_K") return Recipe{TensorType::kQ6_K, false, 18};
  if (name == "F16") return Recipe{TensorType::kF16, false, 1};
  if (name == "BF16") return Recipe{TensorType::kBF16, false, 32};
  if (name == "F32") return Recipe{TensorType::kF32, false, 0};
  return std::nullopt;
}

bool use_more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::atoi(name.c_str() + 4);
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

TensorType fallback_for_row(TensorType t, int64_t cols) {
  if (cols % 256 == 0) return t;
  switch (t) {
    case TensorType::kQ4_K: return TensorType::kQ5_0;
    case TensorType::kQ5_K: return TensorType::kQ5_1;
    case TensorType::kQ6_K: return TensorType::kQ8_0;
    default: break;
  }
  return t;
}

// Type of one tensor under the recipe, or nullopt to copy it unchanged.
std::optional<TensorType> choose_type(const GgufTensorInfo& t, const Recipe& r, const QuantizeArgs& a, int n_layer,
                                      bool has_output) {
  if (t.dims.size() < 2) return std::nullopt;  // norms, biases, rope factors stay as they are
  const std::string& name = t.name;
  const bool is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
  const bool quantized_base = r.base != TensorType::kF32 && r.base != TensorType::kF16 && r.base != TensorType::kBF16;
  TensorType type = r.base;
  if (is_output && a.keep_output) return std::nullopt;
  if (!a.pure && quantized_base) {
    if (is_output && r.base != TensorType::kQ8_0) type = TensorType::kQ6_K;
    if (r.k_mix && (contains(name, "attn_v.weight") || contains(name, "ffn_down.weight")) &&
        use_more_bits(layer_of(name), n_layer))
      type = TensorType::kQ6_K;
  }
  type = fallback_for_row(type, t.dims[0]);
  // Rows that fit no block size of the target stay in their own type.
  if (t.dims[0] % quant::block_size(type) != 0) return std::nullopt;
  return type;
}

// ---------------------------------------------------------------------------
// AWQ-style scale search for one norm -> {matrices} group.

struct Matrix {
  const GgufTensorInfo* info;
  TensorType type;
};

Expected<std::vector<float>> dequantize_tensor(const GgufTensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements));
  FRUGAL_RETURN_IF_ERROR(quant::dequantize_row(t.type, t.data, out.data(), t.n_elements).with_context(t.name));
  return out;
}

// Output error proxy: sum_j a_j * sum_r (W_rj - deq(Q(W s)/s)_rj)^2 over a
// sample of rows, for the scale s_j = (a_j)^(alpha/2) normalized to a
// geometric mean of 1. Returns the best alpha's scales (all ones for alpha 0).
std::vector<float> search_awq_scales(const std::vector<Matrix>& group, const std::vector<float>& act, bool weighted,
                                     ThreadPool& pool) {
  const int64_t cols = static_cast<int64_t>(act.size());
  std::vector<std::vector<float>> weights;
  for (const auto& m : group) {
    auto w = dequantize_tensor(*m.info);
    if (!w.ok()) return std::vector<float>(cols, 1.0f);
    weights.push_back(std::move(w).value());
  }
  double best_err = -1;
  std::vector<float> best(cols, 1.0f);
  for (float alpha : {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}) {
    std::vector<float> s(cols);
    double log_sum = 0;
    for (int64_t j = 0; j < cols; ++j) {
      s[j] = std::pow(std::max(act[j], 1e-10f), alpha / 2.0f);
      log_sum += std::log(s[j]);
    }
    const float norm = static_cast<float>(std::exp(-log_sum / cols));
    std::vector<float> imp(cols);
    for (int64_t j = 0; j < cols; ++j) {
      s[j] = std::clamp(s[j] * norm, 1e-2f, 1e2f);
      imp[j] = act[j] / (s[j] * s[j]);  // activation energy in the scaled domain
    }
    std::atomic<bool> failed{false};
    std::vector<double> err_per_matrix(group.size(), 0.0);
    for (size_t g = 0; g < group.size(); ++g) {
      const int64_t rows = group[g].info->n_rows();
      const int64_t stride = std::max<int64_t>(1, rows / 96);  // a sample of rows keeps the search cheap
      const int64_t n_sample = (rows + stride - 1) / stride;
      std::vector<double> err(n_sample, 0.0);
      const TensorType type = group[g].type;
      pool.parallel_for(n_sample, [&](int64_t begin, int64_t end) {
        std::vector<float> row(cols), back(cols);
        std::vector<uint8_t> q(quant::row_size(type, cols));
        for (int64_t i = begin; i < end; ++i) {
          const float* w = weights[g].data() + i * stride * cols;
          for (int64_t j = 0; j < cols; ++j) row[j] = w[j] * s[j];
          if (!quant::quantize_row_searched(type, row.data(), q.data(), cols, weighted ? imp.data() : nullptr).ok() ||
              !quant::dequantize_row(type, q.data(), back.data(), cols).ok()) {
            failed = true;
            return;
          }
          double e = 0;
          for (int64_t j = 0; j < cols; ++j) {
            const double diff = back[j] / s[j] - w[j];
            e += act[j] * diff * diff;
          }
          err[i] = e;
        }
      });
      for (double e : err) err_per_matrix[g] += e;
    }
    if (failed) break;
    double total = 0;
    for (double e : err_per_matrix) total += e;
    if (best_err < 0 || total < best_err) {
      best_err = total;
      best = s;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------

struct TensorJob {
  const GgufTensorInfo* info = nullptr;
  std::optional<TensorType> type;       // nullopt: copy
  std::vector<float> column_scale;      // AWQ: multiply columns
  std::vector<float> divide_by;         // AWQ: norm weights divided elementwise
  const std::vector<float>* importance = nullptr;
};

Status quantize_tensor(const TensorJob& job, std::span<uint8_t> out, ThreadPool& pool) {
  const GgufTensorInfo& t = *job.info;
  if (!job.type) {
    if (!job.divide_by.empty()) {  // a norm weight the AWQ scales were folded into
      FRUGAL_ASSIGN_OR_RETURN(std::vector<float> v, dequantize_tensor(t));
      if (v.size() != job.divide_by.size() || t.type != TensorType::kF32)
        return internal_error("cannot fold scales into " + t.name);
      for (size_t i = 0; i < v.size(); ++i) v[i] /= job.divide_by[i];
      std::memcpy(out.data(), v.data(), out.size());
      return Status::Ok();
    }
    std::memcpy(out.data(), t.data, out.size());
    return Status::Ok();
  }
  const TensorType type = *job.type;
  const int64_t cols = t.row_length(), rows = t.n_rows();
  const size_t in_row = quant::row_size(t.type, cols), out_row = quant::row_size(type, cols);
  const float* imp = job.importance ? job.importance->data() : nullptr;
  std::vector<float> imp_scaled;
  if (imp && !job.column_scale.empty()) {
    imp_scaled.resize(cols);
    for (int64_t j = 0; j < cols; ++j) imp_scaled[j] = imp[j] / (job.column_scale[j] * job.column_scale[j]);
    imp = imp_scaled.data();
  }
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    std::vector<float> row(cols);
    for (int64_t r = begin; r < end && !failed; ++r) {
      Status s = quant::dequantize_row(t.type, t.data + r * in_row, row.data(), cols);
      if (s.ok()) {
        if (!job.column_scale.empty())
          for (int64_t j = 0; j < cols; ++j) row[j] *= job.column_scale[j];
        s = quant::can_search_quantize(type)
                ? quant::quantize_row_searched(type, row.data(), out.data() + r * out_row, cols, imp)
                : quant::quantize_row(type, row.data(), out.data() + r * out_row, cols);
      }
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed) first_error = s.with_context(t.name);
        failed = true;
      }
    }
  }, 8);
  return failed ? first_error : Status::Ok();
}

int run(const QuantizeArgs& a) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
    return 1;
  };
  const auto recipe = recipe_for(a.type);
  if (!recipe) return fail(invalid_argument("unknown type '" + a.type + "' (Q8_0, Q4_0, Q5_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16, F32)"));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<uint8_t> storage;
  auto file = open_model_as_gguf(a.input, storage);
  if (!file.ok()) return fail(file.status());
  const GgufFile& f = **file;
  auto arch = f.get_string("general.architecture");
  if (!arch.ok() || !arch->has_value()) return fail(corrupt_data(a.input + ": no general.architecture"));
  auto n_layer_v = f.get_int(**arch + ".block_count");
  const int n_layer = n_layer_v.ok() && n_layer_v->has_value() ? static_cast<int>(**n_layer_v) : 0;

  // Calibration statistics: collected now, or read from an earlier run.
  ImportanceMap importance;
  if (!a.calib.empty()) {
    auto stats = collect_stats(a.input, a.calib, a.calib_tokens, a.threads, a.quiet);
    if (!stats.ok()) return fail(stats.status());
    const std::string stats_path = a.stats.empty() ? a.output + ".stats.gguf" : a.stats;
    if (Status s = save_stats(*stats, stats_path); !s.ok()) return fail(s);
    if (!a.quiet) std::fprintf(stderr, "activation statistics of %lld tokens saved to %s\n",
                               static_cast<long long>(stats->tokens), stats_path.c_str());
    auto m = load_stats(stats_path);
    if (!m.ok()) return fail(m.status());
    importance = std::move(m).value();
  } else if (!a.stats.empty()) {
    auto m = load_stats(a.stats);
    if (!m.ok()) return fail(m.status());
    importance = std::move(m).value();
  }
  const bool calibrated = !importance.empty();

  ThreadPool pool(a.threads);
  const bool has_output = f.find_tensor("output.weight") != nullptr;
  std::vector<TensorJob> jobs(f.tensors().size());
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    jobs[i].info = &t;
    jobs[i].type = choose_type(t, *recipe, a, n_layer, has_output);
    index[t.name] = i;
    if (calibrated && !a.no_importance) {
      const auto it = importance.find(t.name);
      if (it != importance.end() && static_cast<int64_t>(it->second.size()) == t.row_length())
        jobs[i].importance = &it->second;
    }
  }

  // (a) AWQ: per layer, one scale vector for attn_norm -> q/k/v and one for ffn_norm -> gate/up.
  if (calibrated && !a.no_awq) {
    for (int l = 0; l < n_layer; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const std::pair<std::string, std::vector<std::string>> groups[] = {
          {"attn_norm.weight", {"attn_q.weight", "attn_k.weight", "attn_v.weight"}},
          {"ffn_norm.weight", {"ffn_gate.weight", "ffn_up.weight"}}};
      for (const auto& [norm, mats] : groups) {
        const auto ni = index.find(p + norm);
        if (ni == index.end() || f.tensors()[ni->second].type != TensorType::kF32) continue;
        std::vector<Matrix> group;
        const std::vector<float>* act = nullptr;
        for (const auto& m : mats) {
          const auto mi = index.find(p + m);
          if (mi == index.end() || !jobs[mi->second].type || !jobs[mi->second].importance) {
            group.clear();
            break;
          }
          group.push_back({jobs[mi->second].info, *jobs[mi->second].type});
          act = jobs[mi->second].importance;
        }
        if (group.empty() || act == nullptr) continue;
        const std::vector<float> s = search_awq_scales(group, *act, !a.no_importance, pool);
        if (std::all_of(s.begin(), s.end(), [](float x) { return x == 1.0f; })) continue;
        jobs[ni->second].divide_by = s;
        for (const auto& m : mats) jobs[index[p + m]].column_scale = s;
      }
    }
  }

  GgufWriter w;
  for (const auto& kv : f.metadata()) {
    if (kv.key == "general.file_type" || kv.key == "general.quantization_version" || kv.key == "general.alignment")
      continue;
    if (Status s = w.add_value(kv.key, kv.value); !s.ok()) return fail(s);
  }
  (void)w.add_u32("general.file_type", recipe->file_type);
  (void)w.add_u32("general.quantization_version", 2);
  std::map<std::string, int> type_counts;
  for (const auto& job : jobs) {
    const GgufTensorInfo& t = *job.info;
    const TensorType out_type = job.type.value_or(t.type);
    type_counts[std::string(tensor_type_name(out_type))]++;
    const TensorJob* jp = &job;
    ThreadPool* pp = &pool;
    Status s = w.add_tensor_fill(t.name, t.dims, out_type,
                                 [jp, pp](std::span<uint8_t> out) { return quantize_tensor(*jp, out, *pp); });
    if (!s.ok()) return fail(s);
  }
  if (Status s = w.write_to_file(a.output); !s.ok()) return fail(s);

  std::error_code ec;
  const auto in_bytes = f.file_size();
  const auto out_bytes = std::filesystem::file_size(a.output, ec);
  std::string mix;
  for (const auto& [type, n] : type_counts) mix += " " + type + "x" + std::to_string(n);
  std::fprintf(stderr, "%s: %.2f MB -> %.2f MB (%s%s) in %.1f s; tensors:%s\n", a.output.c_str(), in_bytes / 1e6,
               out_bytes / 1e6, a.type.c_str(), calibrated ? ", calibrated" : "",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), mix.c_str());
  return 0;
}

}  // namespace

Expected<std::unique_ptr<GgufFile>> open_model_as_gguf(const std::string& path, std::vector<uint8_t>& storage) {
  if (hf::is_hf_model_dir(path)) {
    FRUGAL_ASSIGN_OR_RETURN(storage, hf::convert_to_gguf_buffer(path, {.resolve_pre = tok::find_pre_tokenizer_name}));
    return GgufFile::parse(storage.data(), storage.size());
  }
  return GgufFile::open(path);
}

void add_quantize_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a GGUF file or Hugging Face directory");
  cmd->add_option("input", a->input, "Input GGUF file or Hugging Face directory")->required();
  cmd->add_option("output", a->output, "Output GGUF file")->required();
  cmd->add_option("type", a->type, "Q8_0, Q4_0, Q5_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16, F32")->required();
  cmd->add_option("--calib", a->calib, "Calibration text (documents separated by \\n\\x1e\\n)");
  cmd->add_option("--calib-tokens", a->calib_tokens, "Calibration tokens to use")->capture_default_str();
  cmd->add_option("--stats", a->stats,
                  "Activation statistics file: written by a --calib run (default OUT.stats.gguf), read otherwise");
  cmd->add_flag("--keep-output", a->keep_output, "Leave the output projection (tied embedding) unquantized");
  cmd->add_flag("--pure", a->pure, "One type for every matrix (no mixes)");
  cmd->add_flag("--no-awq", a->no_awq, "With statistics: skip the per-channel scale search");
  cmd->add_flag("--no-importance", a->no_importance, "With statistics: skip importance-weighted rounding");
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_quantize_command);

}  // namespace frugal::cli
