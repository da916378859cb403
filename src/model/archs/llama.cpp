// Llama family (Llama 1/2/3, Mistral, TinyLlama, and everything the GGUF
// converter writes as "llama"): RMSNorm, rotary embeddings on interleaved
// pairs (the converter permutes Q/K rows for this), grouped-query attention,
// SwiGLU feed-forward, optional tied output.
#include "model/arch.h"

namespace frugal {

const ArchSpec& llama_arch() {
  static const ArchSpec spec{
      .name = "llama",
      .rope_style = RopeStyle::kInterleaved,
      .bind = {.qkv_bias = false},
  };
  return spec;
}

}  // namespace frugal
