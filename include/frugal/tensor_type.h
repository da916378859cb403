// Tensor element types, numbered as in the GGUF format (ggml_type ids), and
// their storage geometry: a row of `block_size` elements occupies `type_size`
// bytes. Block layouts themselves live in src/quant/blocks.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace frugal {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct TensorTypeTraits {
  std::string_view name;  // "Q4_K", as llama.cpp prints it
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t type_size;     // bytes per block
  bool supported;         // this build can dequantize / compute with it
};

// Traits of a raw GGUF type id, or nullopt when the id is unknown.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t raw_type);
inline std::optional<TensorTypeTraits> tensor_type_traits(TensorType t) {
  return tensor_type_traits(static_cast<uint32_t>(t));
}
std::string_view tensor_type_name(TensorType t);
// Parses "q4_0", "Q4_K", "bf16"... (case-insensitive).
std::optional<TensorType> tensor_type_from_name(std::string_view name);

}  // namespace frugal
