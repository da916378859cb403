// `frugal quantize IN OUT TYPE`: re-types the weights of a GGUF file or a
// Hugging Face directory into a standard GGUF.
//
// TYPE is Q8_0, Q4_0, Q5_0, Q4_K_M, Q5_K_M or Q6_K (or F16/BF16/F32). The K
// mixes follow llama.cpp's: the output projection (the token embedding when
// tied) gets Q6_K, attn_v and ffn_down get Q6_K in the first and last eighth
// of the layers and every third one between; rows whose length is not a
// multiple of 256 fall back to Q5_0 (for Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K).
//
// Calibration (--calib TEXT, or --stats FILE from an earlier run; see
// calibration.h) records what enters every input channel of every linear
// layer. With the input second moments recorded (the default whenever they
// fit in 1 GB), every matrix goes through the GPTQ sweep (quant/gptq.h):
// columns rounded in turn, each rounding error compensated on the columns
// not yet rounded, block scales chosen from the compensated weights. Without
// them (or with --no-gptq): (a) an AWQ-style per-channel scale s, chosen per
// layer among s_j = rms_j^alpha, multiplies the columns of q/k/v and gate/up
// and divides the RMSNorm weight before them, which leaves the function
// unchanged but lets the salient channels keep more precision; (b) every
// quantizer weighs its rounding error by the activation energy.
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

#include "calibration.h"
#include "cli_commands.h"
#include "core/thread_pool.h"
#include "formats/hf/hf_convert.h"
#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "quant/gptq.h"
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
  bool no_gptq = false;
  double gptq_damp = quant::GptqOptions{}.damp;
  bool quiet = false;
};

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

// Output error proxy of a sample of rows of W under the scales s:
// sum_r sum_j a_j (W_rj - deq(Q(W s))_rj / s_j)^2 with the per-row searched
// quantizer. Negative when quantization fails.
double sampled_output_error(const Matrix& m, const std::vector<float>& w, const std::vector<float>& act,
                            const std::vector<float>& s, bool weighted, ThreadPool& pool) {
  const int64_t cols = static_cast<int64_t>(s.size());
  const int64_t rows = m.info->n_rows();
  const int64_t stride = std::max<int64_t>(1, rows / 96);  // a sample of rows keeps the search cheap
  const int64_t n_sample = (rows + stride - 1) / stride;
  std::vector<float> imp(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) imp[j] = act[j] / (s[j] * s[j]);  // activation energy in the scaled domain
  std::atomic<bool> failed{false};
  std::vector<double> err(static_cast<size_t>(n_sample), 0.0);
  pool.parallel_for(n_sample, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(cols)), back(static_cast<size_t>(cols));
    std::vector<uint8_t> q(quant::row_size(m.type, cols));
    for (int64_t i = begin; i < end; ++i) {
      const float* wi = &w[i * stride * cols];
      for (int64_t j = 0; j < cols; ++j) row[j] = wi[j] * s[j];
      if (!quant::quantize_row_searched(m.type, row.data(), q.data(), cols, weighted ? imp.data() : nullptr).ok() ||
          !quant::dequantize_row(m.type, q.data(), back.data(), cols).ok()) {
        failed = true;
        return;
      }
      double e = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double d = double(back[j]) / s[j] - wi[j];
        e += act[j] * d * d;
      }
      err[i] = e;
    }
  });
  if (failed) return -1;
  double total = 0;
  for (double e : err) total += e;
  return total;
}

// AWQ-style scale search: s_j = (a_j)^(alpha/2) normalized to a geometric
// mean of 1, for the alpha whose sampled output error (above) is smallest
// over the group. Returns all ones when alpha 0 wins.
std::vector<float> search_awq_scales(const std::vector<Matrix>& group, const WeightCalibration& calib, bool weighted,
                                     ThreadPool& pool) {
  const std::vector<float>& act = *calib.mean_square;
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
    for (int64_t j = 0; j < cols; ++j) s[j] = std::clamp(s[j] * norm, 1e-2f, 1e2f);
    double total = 0;
    for (size_t g = 0; g < group.size() && total >= 0; ++g) {
      const double e = sampled_output_error(group[g], weights[g], act, s, weighted, pool);
      total = e < 0 ? -1 : total + e;
    }
    if (total < 0) break;
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
  const WeightCalibration* calib = nullptr;
  bool use_importance = false;  // weigh rounding by the mean squared activation
  bool use_gptq = false;        // error-compensating sweep over the input second moment
  quant::GptqOptions gptq;
};

// GPTQ over the whole matrix; its input second moment is taken into the
// AWQ-scaled domain (x / s), where the matrix is quantized.
Status quantize_tensor_gptq(const TensorJob& job, TensorType type, std::span<uint8_t> out, ThreadPool& pool) {
  const GgufTensorInfo& t = *job.info;
  const int64_t cols = t.row_length(), rows = t.n_rows();
  FRUGAL_ASSIGN_OR_RETURN(std::vector<float> w, dequantize_tensor(t));
  std::vector<float> h = *job.calib->second_moment;
  if (!job.column_scale.empty()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) w[r * cols + j] *= job.column_scale[j];
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) h[i * cols + j] /= job.column_scale[i] * job.column_scale[j];
  }
  return quant::gptq_quantize(type, w.data(), rows, cols, h, out.data(), pool, job.gptq).with_context(t.name);
}

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
  if (job.use_gptq && quant::can_gptq_quantize(type)) return quantize_tensor_gptq(job, type, out, pool);
  const int64_t cols = t.row_length(), rows = t.n_rows();
  const size_t in_row = quant::row_size(t.type, cols), out_row = quant::row_size(type, cols);
  const float* imp = job.use_importance ? job.calib->mean_square->data() : nullptr;
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
  CalibrationMap calibration;
  if (!a.calib.empty()) {
    auto stats = collect_calibration_stats(a.input, a.calib,
                                           {.max_tokens = a.calib_tokens, .threads = a.threads, .quiet = a.quiet});
    if (!stats.ok()) return fail(stats.status());
    const std::string stats_path = a.stats.empty() ? a.output + ".stats.gguf" : a.stats;
    if (Status s = save_calibration_stats(*stats, stats_path); !s.ok()) return fail(s);
    if (!a.quiet) std::fprintf(stderr, "activation statistics of %lld tokens saved to %s\n",
                               static_cast<long long>(stats->tokens), stats_path.c_str());
  }
  if (!a.calib.empty() || !a.stats.empty()) {
    auto m = load_calibration_stats(a.stats.empty() ? a.output + ".stats.gguf" : a.stats);
    if (!m.ok()) return fail(m.status());
    calibration = std::move(m).value();
  }
  const bool calibrated = !calibration.empty();

  ThreadPool pool(a.threads);
  const bool has_output = f.find_tensor("output.weight") != nullptr;
  std::vector<TensorJob> jobs(f.tensors().size());
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    jobs[i].info = &t;
    jobs[i].type = choose_type(t, *recipe, a, n_layer, has_output);
    index[t.name] = i;
    const auto it = calibration.find(t.name);
    if (it != calibration.end() && static_cast<int64_t>(it->second.mean_square->size()) == t.row_length()) {
      jobs[i].calib = &it->second;
      jobs[i].use_importance = !a.no_importance;
      jobs[i].use_gptq = !a.no_gptq && it->second.second_moment != nullptr;
      jobs[i].gptq.damp = a.gptq_damp;
    }
  }

  // (a) AWQ: per layer, one scale vector for attn_norm -> q/k/v and one for
  // ffn_norm -> gate/up. Not for groups the GPTQ sweep quantizes: measured on
  // the bundled model, scales chosen for rounding alone made the sweep's
  // result worse (Q4_0 delta +0.71% with them, +0.63% without).
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
        const WeightCalibration* calib = nullptr;
        for (const auto& m : mats) {
          const auto mi = index.find(p + m);
          if (mi == index.end() || !jobs[mi->second].type || !jobs[mi->second].calib || jobs[mi->second].use_gptq) {
            group.clear();
            break;
          }
          group.push_back({jobs[mi->second].info, *jobs[mi->second].type});
          calib = jobs[mi->second].calib;
        }
        if (group.empty() || calib == nullptr) continue;
        const std::vector<float> s = search_awq_scales(group, *calib, !a.no_importance, pool);
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
  cmd->add_flag("--no-gptq", a->no_gptq, "With statistics: round each weight alone (no error compensation)");
  cmd->add_option("--gptq-damp", a->gptq_damp, "GPTQ: damping added to the input second moment's diagonal, "
                  "as a fraction of its mean")->capture_default_str()->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("-t,--threads", a->threads, "Threads (0: all available)");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_quantize_command);

}  // namespace frugal::cli
