#include <array>

#include "model/arch.h"

namespace frugal {

std::span<const ArchSpec* const> all_archs() {
  static const std::array<const ArchSpec*, 3> kArchs = {
      &llama_arch(),
      &qwen2_arch(),
      &qwen3_arch(),
  };
  return kArchs;
}

const ArchSpec* find_arch(std::string_view name) {
  for (const ArchSpec* a : all_archs())
    if (a->name == name) return a;
  return nullptr;
}

}  // namespace frugal
