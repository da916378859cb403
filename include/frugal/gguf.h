// GGUF v2/v3 reader. The file is memory-mapped and validated once at open:
// every count, length, size and offset is checked with overflow-safe
// arithmetic against the file size, so the views handed out (strings, arrays,
// tensor data) always point inside the mapping. Malformed files produce a
// Status naming the problem and the byte offset; they never crash.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal {

class MappedFile;

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType t);
// Bytes of one scalar of type t (0 for strings and arrays).
size_t gguf_value_scalar_size(GgufValueType t);

// One metadata value. Scalars are decoded; strings and arrays are views into
// the mapping (valid while the GgufFile lives).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  // Scalar payloads (the one matching `type` is set; integers are also
  // mirrored into both u64 and i64 when they fit).
  uint64_t u64 = 0;
  int64_t i64 = 0;
  double f64 = 0.0;
  bool b = false;
  std::string_view str;
  // Arrays: element type, count and the raw little-endian element bytes.
  // String arrays are decoded into `strings`.
  GgufValueType elem_type = GgufValueType::kUint8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strings;

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64; }
  std::optional<int64_t> as_int() const;   // integer or bool scalar
  std::optional<double> as_double() const;  // any numeric scalar
  // Numeric array element i converted (nullopt if not a numeric array or out of range).
  std::optional<double> array_number(uint64_t i) const;
  std::optional<int64_t> array_int(uint64_t i) const;
  // Human-readable rendering for `frugal inspect` (arrays abbreviated).
  std::string to_display_string(size_t max_items = 8) const;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  // dims[0] is the innermost (row length), as in GGUF/ggml.
  std::vector<int64_t> dims;
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;    // relative to the start of the data section
  uint64_t n_bytes = 0;   // storage size of the whole tensor
  int64_t n_elements = 0;
  const uint8_t* data = nullptr;  // inside the mapping

  int64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  int64_t n_rows() const { return row_length() == 0 ? 0 : n_elements / row_length(); }
};

struct GgufLimits {
  uint64_t max_string_bytes = 1ull << 30;      // one string value or key
  uint64_t max_array_elements = 1ull << 28;
  uint64_t max_kv_count = 1ull << 20;
  uint64_t max_tensor_count = 1ull << 20;
  uint32_t max_dims = 4;
  uint32_t max_nesting = 4;  // arrays of arrays
};

class GgufFile {
 public:
  // Maps and validates `path`.
  static Expected<std::unique_ptr<GgufFile>> open(const std::string& path,
                                                  const GgufLimits& limits = {});
  // Validates a buffer the caller keeps alive (fuzzing, in-memory files).
  static Expected<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size,
                                                   const GgufLimits& limits = {});
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }
  const std::string& path() const { return path_; }

  const std::vector<GgufKeyValue>& metadata() const { return kvs_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(std::string_view key) const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // Typed lookups: nullopt when missing; an error Status when present with an
  // incompatible type.
  Expected<std::optional<std::string>> get_string(std::string_view key) const;
  Expected<std::optional<int64_t>> get_int(std::string_view key) const;
  Expected<std::optional<double>> get_float(std::string_view key) const;
  Expected<std::optional<bool>> get_bool(std::string_view key) const;

 private:
  GgufFile() = default;
  Status parse_all(const GgufLimits& limits);

  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> kvs_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace frugal
