// Qwen2 / Qwen2.5: the Llama block with biases on the Q, K and V projections
// and NeoX-style rotary pairs (the GGUF converter does not permute Q/K).
#include "model/arch.h"

namespace frugal {

const ArchSpec& qwen2_arch() {
  static const ArchSpec spec{
      .name = "qwen2",
      .rope_style = RopeStyle::kNeox,
      .bind = {.qkv_bias = true},
  };
  return spec;
}

}  // namespace frugal
