// Calibration statistics for `frugal quantize`: what enters each input
// channel of every linear layer over a calibration text.
//
// Recorded per layer input (attn_in feeds q/k/v, attn_output_in feeds
// attn_output, ffn_in feeds gate/up, ffn_down_in feeds ffn_down):
//  - the mean squared activation of each channel (importance weights and
//    the AWQ scale search);
//  - when it fits in memory, the full second moment E[x x^T] (the
//    error-compensating GPTQ sweep).
// The statistics file is a GGUF of F32 tensors (`blk.N.<input>` vectors and
// `blk.N.<input>_cov` square matrices), so any GGUF tool can inspect it and
// re-quantizing to another type needs no second calibration run.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frugal/status.h"

namespace frugal::cli {

struct CalibrationOptions {
  int max_tokens = 16384;
  int threads = 0;
  bool quiet = false;
  // Full second moments are kept only while their fp32 size stays under this.
  int64_t max_covariance_bytes = int64_t{1} << 30;
};

struct LayerInputStats {
  std::vector<double> mean_square;  // per channel, summed over tokens
  std::vector<double> second_moment;  // width x width, summed over tokens; empty when not kept
};

struct CalibrationStats {
  // Per layer: attn_in, attn_output_in, ffn_in, ffn_down_in.
  std::vector<std::map<std::string, LayerInputStats>> layers;
  int64_t tokens = 0;
};

Expected<CalibrationStats> collect_calibration_stats(const std::string& model_path, const std::string& text_path,
                                                     const CalibrationOptions& opt);

Status save_calibration_stats(const CalibrationStats& s, const std::string& path);

// What the quantizer needs per weight matrix (keyed by GGUF weight name, e.g.
// "blk.3.attn_q.weight"): the mean squared activation of each input column
// and, when recorded, the input second moment (row-major, width x width).
struct WeightCalibration {
  std::shared_ptr<const std::vector<float>> mean_square;
  std::shared_ptr<const std::vector<float>> second_moment;
};
using CalibrationMap = std::map<std::string, WeightCalibration>;

Expected<CalibrationMap> load_calibration_stats(const std::string& path);

}  // namespace frugal::cli
