// Random-weight models of real shapes, for benchmarks: weights N(0, 0.02),
// norm weights 1, quantized to the requested type with the reference
// quantizers, and the tokenizer copied from another GGUF file so every engine
// (llama.cpp included) can load and run the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal {

struct SynthShape {
  std::string name;   // "tinyllama-1.1b"
  std::string arch;   // "llama" or "qwen2"
  int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
  float rope_theta;
  bool tied_output;   // no output.weight: the embeddings are reused
};

const std::vector<SynthShape>& synth_shapes();

// "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q6_k" (case-insensitive).
enum class SynthType { kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M, kQ6_K };
Expected<SynthType> parse_synth_type(const std::string& name);

struct SynthOptions {
  std::string shape;       // a name from synth_shapes()
  SynthType type = SynthType::kQ4_0;
  std::string vocab_from;  // GGUF whose tokenizer.* metadata is copied
  std::string output;      // path of the new GGUF
  uint64_t seed = 1;
  int n_threads = 0;
  int n_layer_override = 0;  // > 0: fewer layers (tests)
};

Status synthesize_model(const SynthOptions& options);

}  // namespace frugal
