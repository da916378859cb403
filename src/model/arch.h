// Architecture registry. An architecture is a small spec: how its tensors
// bind, how RoPE pairs dimensions, and which decoder-layer function runs.
// Adding a model family = one file in src/model/archs/ + one line in
// arch_registry.cpp; no other code switches on the architecture name.
#pragma once

#include <span>
#include <string_view>

#include "frugal/status.h"
#include "model/blocks.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace frugal {

class GgufFile;

struct ArchSpec {
  std::string_view name;  // general.architecture value
  RopeStyle rope_style = RopeStyle::kInterleaved;
  BindOptions bind;
  // Optional: fix up hyper-parameters from architecture-specific keys.
  Status (*adjust_hparams)(const GgufFile& file, HParams& hp) = nullptr;
  // Runs one decoder layer over the batch, updating ctx.x in place.
  void (*decoder_layer)(LayerContext& ctx) = standard_decoder_layer;
};

const ArchSpec* find_arch(std::string_view name);
std::span<const ArchSpec* const> all_archs();

// One accessor per family, defined in src/model/archs/<family>.cpp.
const ArchSpec& llama_arch();
const ArchSpec& qwen2_arch();
const ArchSpec& qwen3_arch();

}  // namespace frugal
