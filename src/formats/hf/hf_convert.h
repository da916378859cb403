// A Hugging Face model directory (config.json, *.safetensors, tokenizer
// files) as a GGUF file with the metadata and tensor names llama.cpp's
// converter writes, so the rest of the engine, and other GGUF engines, can
// run it unchanged:
//   - {arch}.* hyper-parameters, general.*, tokenizer.ggml.*, chat template;
//   - tensor names token_embd / blk.N.attn_q / ... / output;
//   - for the GGUF "llama" architecture, Q and K rows permuted from
//     Hugging Face's rotate-half layout to interleaved pairs;
//   - Llama 3 rope scaling as a rope_freqs.weight tensor.
// Tensor data is produced on demand while the GGUF is written, one tensor at
// a time, so converting never holds more than the output plus one row.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "formats/hf/hf_config.h"
#include "formats/hf/hf_vocab.h"
#include "formats/safetensors/safetensors.h"
#include "frugal/gguf_writer.h"
#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal::hf {

// Encodes n floats as `type` into dst (row_size bytes); used for quantized
// output types, which the format layer does not implement itself.
using RowEncoder = std::function<Status(TensorType type, const float* src, void* dst, int64_t n)>;

struct ConvertOptions {
  // Type of the 2-D weights: F32, F16, BF16, or a quantized type handled by
  // `encode_row`. nullopt keeps the checkpoint's own dtype. 1-D tensors
  // (norms, biases) are always F32.
  std::optional<TensorType> weight_type;
  RowEncoder encode_row;
  PreTokenizerResolver resolve_pre;
};

// True when `path` is a directory holding a config.json.
bool is_hf_model_dir(const std::string& path);

class HfModelDir {
 public:
  static Expected<std::unique_ptr<HfModelDir>> open(const std::string& dir, const PreTokenizerResolver& resolve_pre);

  const HfConfig& config() const { return config_; }
  const HfTokenizerConfig& tokenizer_config() const { return tok_config_; }
  const HfVocab& vocab() const { return vocab_; }
  const st::SafetensorsCheckpoint& checkpoint() const { return *checkpoint_; }

  // A writer holding the metadata and tensors; tensor data is read from this
  // object's checkpoint at write time, so it must outlive every write.
  Expected<GgufWriter> make_gguf_writer(const ConvertOptions& options) const;

 private:
  std::string dir_;
  HfConfig config_;
  HfTokenizerConfig tok_config_;
  std::vector<int64_t> generation_eos_;
  HfVocab vocab_;
  std::unique_ptr<st::SafetensorsCheckpoint> checkpoint_;
};

// The whole conversion into memory (what loading a directory does).
Expected<std::vector<uint8_t>> convert_to_gguf_buffer(const std::string& dir, const ConvertOptions& options);

}  // namespace frugal::hf
