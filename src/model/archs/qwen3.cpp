// Qwen3 (dense): the Llama block with an RMSNorm over each head of Q and K
// (learned weights of head_dim, applied before RoPE), no QKV bias, NeoX-style
// rotary pairs; head_dim comes from attention.key_length and need not equal
// n_embd / n_head.
#include "model/arch.h"

namespace frugal {

const ArchSpec& qwen3_arch() {
  static const ArchSpec spec{
      .name = "qwen3",
      .rope_style = RopeStyle::kNeox,
      .bind = {.qk_norm = true},
  };
  return spec;
}

}  // namespace frugal
