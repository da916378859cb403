#include "calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "frugal/model.h"
#include "frugal/perplexity.h"

namespace frugal::cli {
namespace {

const char* input_name(LinearInput in) {
  switch (in) {
    case LinearInput::kAttnIn: return "attn_in";
    case LinearInput::kAttnOutputIn: return "attn_output_in";
    case LinearInput::kFfnIn: return "ffn_in";
    case LinearInput::kFfnDownIn: return "ffn_down_in";
  }
  return "unknown";
}

// Which weight matrices read each recorded input.
const std::map<std::string, std::vector<std::string>>& input_users() {
  static const std::map<std::string, std::vector<std::string>> users = {
      {"attn_in", {"attn_q", "attn_k", "attn_v"}},
      {"attn_output_in", {"attn_output"}},
      {"ffn_in", {"ffn_gate", "ffn_up"}},
      {"ffn_down_in", {"ffn_down"}}};
  return users;
}

class StatsRecorder : public LinearInputObserver {
 public:
  StatsRecorder(CalibrationStats& stats, ThreadPool& pool, bool keep_second_moments)
      : stats_(stats), pool_(pool), keep_(keep_second_moments) {}

  void observe(int layer, LinearInput input, const float* rows, int64_t n, int64_t width) override {
    if (layer < 0 || layer >= static_cast<int>(stats_.layers.size())) return;
    LayerInputStats& st = stats_.layers[layer][input_name(input)];
    if (st.mean_square.empty()) {
      st.mean_square.assign(static_cast<size_t>(width), 0.0);
      if (keep_) st.second_moment.assign(static_cast<size_t>(width * width), 0.0);
    }
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < width; ++j) st.mean_square[j] += double(rows[r * width + j]) * rows[r * width + j];
    if (!st.second_moment.empty()) accumulate_second_moment(st.second_moment, rows, n, width);
    if (layer == 0 && input == LinearInput::kAttnIn) stats_.tokens += n;
  }

 private:
  // second_moment += X^T X: row i of the result is sum_t x[t][i] * x[t], so
  // threads take disjoint rows and the inner loop runs along memory.
  void accumulate_second_moment(std::vector<double>& m, const float* rows, int64_t n, int64_t width) {
    pool_.parallel_for(width, [&](int64_t i0, int64_t i1) {
      std::vector<float> acc(static_cast<size_t>(width));
      for (int64_t i = i0; i < i1; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t t = 0; t < n; ++t) {
          const float a = rows[t * width + i];
          if (a == 0.0f) continue;
          const float* x = rows + t * width;
          for (int64_t j = 0; j < width; ++j) acc[j] += a * x[j];
        }
        double* out = &m[i * width];
        for (int64_t j = 0; j < width; ++j) out[j] += acc[j];
      }
    });
  }

  CalibrationStats& stats_;
  ThreadPool& pool_;
  bool keep_;
};

}  // namespace

Expected<CalibrationStats> collect_calibration_stats(const std::string& model_path, const std::string& text_path,
                                                     const CalibrationOptions& opt) {
  FRUGAL_ASSIGN_OR_RETURN(std::string text, read_file_to_string(text_path));
  FRUGAL_ASSIGN_OR_RETURN(auto model, Model::load(model_path, {.n_threads = opt.threads}));
  const ModelInfo& info = model->info();
  const int64_t d = info.n_embd, q_dim = int64_t{info.n_head} * info.head_dim, ff = info.n_ff;
  const int64_t second_moment_bytes = int64_t{info.n_layer} * (2 * d * d + q_dim * q_dim + ff * ff) * 4;
  const bool keep = second_moment_bytes <= opt.max_covariance_bytes;
  if (!keep && !opt.quiet)
    std::fprintf(stderr, "calibration: input second moments would take %.1f GB; keeping per-channel statistics only\n",
                 second_moment_bytes / 1e9);

  CalibrationStats stats;
  stats.layers.resize(static_cast<size_t>(info.n_layer));
  StatsRecorder recorder(stats, model->thread_pool(), keep);
  const std::vector<int32_t> stream = perplexity_token_stream(*model, text, "\n\x1e\n");
  const int window = 512;
  FRUGAL_ASSIGN_OR_RETURN(auto ctx, InferenceContext::create(*model, {.max_context = window,
                                                                      .max_batch_tokens = window,
                                                                      .observer = &recorder}));
  std::vector<float> logits;
  std::vector<BatchEntry> batch;
  for (size_t start = 0; start < stream.size() && stats.tokens < opt.max_tokens; start += window) {
    const size_t len =
        std::min<size_t>({window, stream.size() - start, static_cast<size_t>(opt.max_tokens - stats.tokens)});
    batch.clear();
    for (size_t i = 0; i < len; ++i)
      batch.push_back({.seq = 0, .pos = static_cast<int32_t>(i), .token = stream[start + i], .want_logits = i + 1 == len});
    ctx->clear_sequence(0);
    FRUGAL_RETURN_IF_ERROR(ctx->forward(batch, logits));
    if (!opt.quiet) std::fprintf(stderr, "\rcalibration: %lld tokens", static_cast<long long>(stats.tokens));
  }
  if (!opt.quiet) std::fprintf(stderr, "\n");
  if (stats.tokens == 0) return invalid_argument(text_path + ": no calibration tokens");
  for (const auto& layer : stats.layers)
    if (layer.size() != input_users().size())
      return unsupported("calibration: the model's layers do not report all their linear inputs");
  return stats;
}

Status save_calibration_stats(const CalibrationStats& s, const std::string& path) {
  GgufWriter w;
  FRUGAL_RETURN_IF_ERROR(w.add_string("general.type", "frugal.activation_stats"));
  FRUGAL_RETURN_IF_ERROR(w.add_u64("frugal.calibration.tokens", static_cast<uint64_t>(s.tokens)));
  const double inv_tokens = 1.0 / static_cast<double>(std::max<int64_t>(s.tokens, 1));
  auto add = [&](const std::string& name, const std::vector<double>& sums, std::vector<int64_t> dims) {
    std::vector<float> mean(sums.size());
    for (size_t j = 0; j < sums.size(); ++j) mean[j] = static_cast<float>(sums[j] * inv_tokens);
    return w.add_tensor(name, dims, TensorType::kF32,
                        {reinterpret_cast<const uint8_t*>(mean.data()), mean.size() * 4});
  };
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const auto& [name, st] : s.layers[l]) {
      const int64_t width = static_cast<int64_t>(st.mean_square.size());
      FRUGAL_RETURN_IF_ERROR(add(p + name, st.mean_square, {width}));
      if (!st.second_moment.empty()) FRUGAL_RETURN_IF_ERROR(add(p + name + "_cov", st.second_moment, {width, width}));
    }
  }
  return w.write_to_file(path);
}

Expected<CalibrationMap> load_calibration_stats(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(auto f, GgufFile::open(path));
  auto type = f->get_string("general.type");
  if (!type.ok() || !type->has_value() || **type != "frugal.activation_stats")
    return corrupt_data(path + ": not a frugal activation statistics file");
  CalibrationMap m;
  for (const auto& t : f->tensors()) {
    const bool matrix = t.name.size() > 4 && t.name.compare(t.name.size() - 4, 4, "_cov") == 0;
    const std::string name = matrix ? t.name.substr(0, t.name.size() - 4) : t.name;
    const bool shape_ok = matrix ? t.dims.size() == 2 && t.dims[0] == t.dims[1] : t.dims.size() == 1;
    if (t.type != TensorType::kF32 || !shape_ok)
      return corrupt_data(path + ": tensor " + t.name + (matrix ? " is not a square F32 matrix" : " is not a F32 vector"));
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) continue;
    const auto it = input_users().find(name.substr(dot + 1));
    if (it == input_users().end()) continue;
    auto v = std::make_shared<std::vector<float>>(static_cast<size_t>(t.n_elements));
    std::memcpy(v->data(), t.data, v->size() * 4);
    for (float& x : *v)
      if (!std::isfinite(x) || (!matrix && x < 0)) x = 0;
    for (const auto& user : it->second) {
      WeightCalibration& wc = m[name.substr(0, dot + 1) + user + ".weight"];
      (matrix ? wc.second_moment : wc.mean_square) = v;
    }
  }
  for (const auto& [name, wc] : m)
    if (!wc.mean_square || (wc.second_moment && wc.second_moment->size() != wc.mean_square->size() * wc.mean_square->size()))
      return corrupt_data(path + ": statistics of " + name + " are incomplete or mismatched");
  return m;
}

}  // namespace frugal::cli
