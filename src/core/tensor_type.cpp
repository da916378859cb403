#include "frugal/tensor_type.h"

#include <array>
#include <cctype>

namespace frugal {
namespace {

struct Row {
  uint32_t id;
  TensorTypeTraits traits;
};

// Sizes follow the GGUF block definitions (see src/quant/blocks.h, which
// static_asserts the same numbers against the structs).
constexpr std::array<Row, 20> kTypes = {{
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},
    {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},
    {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},
    {9, {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", 256, 84, false}},
    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, true}},
    {13, {"Q5_K", 256, 176, true}},
    {14, {"Q6_K", 256, 210, true}},
    {15, {"Q8_K", 256, 292, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {30, {"BF16", 1, 2, true}},
}};

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t raw_type) {
  for (const Row& r : kTypes)
    if (r.id == raw_type) return r.traits;
  return std::nullopt;
}

std::string_view tensor_type_name(TensorType t) {
  auto tr = tensor_type_traits(t);
  return tr ? tr->name : std::string_view("unknown");
}

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  for (const Row& r : kTypes) {
    if (r.traits.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size(); ++i)
      if (std::toupper(static_cast<unsigned char>(name[i])) != r.traits.name[i]) eq = false;
    if (eq) return static_cast<TensorType>(r.id);
  }
  return std::nullopt;
}

}  // namespace frugal
