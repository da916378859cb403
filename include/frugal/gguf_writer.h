// GGUF v3 writer. Collects metadata and tensors, validates them as they are
// added (so a bad call fails where it is made, not at write time), then lays
// the file out as: header, metadata, tensor table, padding to the alignment,
// tensor data (each tensor starting on an aligned offset, in insertion order).
//
// Everything the writer accepts is something GgufFile (the reader) accepts
// with default limits, and that llama.cpp accepts: tensor names are at most
// 63 bytes, general.alignment is a u32 power of two.
//
// Tensor bytes can be copied in, referenced (the caller keeps them alive
// until the write), or produced on demand by a callback, so converting or
// quantizing a large model does not need every tensor in memory at once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/status.h"
#include "frugal/tensor_type.h"

namespace frugal {

// Where each piece landed in the written file (absolute byte offsets). Tools
// print it; tests use it to corrupt one field of an otherwise valid file.
struct GgufKvLayout {
  std::string key;
  GgufValueType type = GgufValueType::kUint8;
  uint64_t key_offset = 0;    // the key's u64 length field
  uint64_t type_offset = 0;   // the u32 value type
  uint64_t value_offset = 0;  // first byte after the type (string length, array elem type...)
  uint64_t end_offset = 0;    // one past the value
};

struct GgufTensorLayout {
  std::string name;
  uint64_t name_offset = 0;         // the name's u64 length field
  uint64_t n_dims_offset = 0;       // u32
  uint64_t dims_offset = 0;         // n_dims x u64
  uint64_t type_offset = 0;         // u32
  uint64_t offset_field_offset = 0;  // u64, relative data offset
  uint64_t data_offset = 0;          // absolute position of the first data byte
  uint64_t n_bytes = 0;
};

struct GgufLayout {
  uint64_t header_end = 0;   // one past the tensor table
  uint64_t data_offset = 0;  // start of the data section (header_end rounded up)
  uint64_t file_size = 0;
  uint64_t alignment = 0;
  std::vector<GgufKvLayout> kvs;
  std::vector<GgufTensorLayout> tensors;
};

// Fills `out` (exactly the tensor's byte size) with the tensor's data.
using GgufTensorFill = std::function<Status(std::span<uint8_t> out)>;

class GgufWriter {
 public:
  static constexpr uint32_t kDefaultAlignment = 32;
  static constexpr size_t kMaxNameBytes = 63;  // llama.cpp's GGML_MAX_NAME - 1

  GgufWriter() = default;
  // Copying would leave copied tensors pointing at the source's owned bytes.
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;
  GgufWriter(GgufWriter&&) = default;
  GgufWriter& operator=(GgufWriter&&) = default;

  // --- metadata: each key may be added once (remove_key first to replace) ---
  Status add_u8(std::string_view key, uint8_t v);
  Status add_i8(std::string_view key, int8_t v);
  Status add_u16(std::string_view key, uint16_t v);
  Status add_i16(std::string_view key, int16_t v);
  Status add_u32(std::string_view key, uint32_t v);
  Status add_i32(std::string_view key, int32_t v);
  Status add_u64(std::string_view key, uint64_t v);
  Status add_i64(std::string_view key, int64_t v);
  Status add_f32(std::string_view key, float v);
  Status add_f64(std::string_view key, double v);
  Status add_bool(std::string_view key, bool v);
  Status add_string(std::string_view key, std::string_view v);

  Status add_array_u8(std::string_view key, std::span<const uint8_t> v);
  Status add_array_i8(std::string_view key, std::span<const int8_t> v);
  Status add_array_u16(std::string_view key, std::span<const uint16_t> v);
  Status add_array_i16(std::string_view key, std::span<const int16_t> v);
  Status add_array_u32(std::string_view key, std::span<const uint32_t> v);
  Status add_array_i32(std::string_view key, std::span<const int32_t> v);
  Status add_array_u64(std::string_view key, std::span<const uint64_t> v);
  Status add_array_i64(std::string_view key, std::span<const int64_t> v);
  Status add_array_f32(std::string_view key, std::span<const float> v);
  Status add_array_f64(std::string_view key, std::span<const double> v);
  Status add_array_bool(std::string_view key, std::span<const bool> v);
  Status add_array_string(std::string_view key, std::span<const std::string> v);
  Status add_array_string(std::string_view key, std::span<const std::string_view> v);

  // Copies a value decoded by GgufFile (scalars, strings, arrays of scalars
  // and of strings). Arrays of arrays are not representable here: unsupported.
  Status add_value(std::string_view key, const GgufValue& v);

  // Sets general.alignment (u32). Must be a power of two in [1, 2^20].
  Status set_alignment(uint32_t alignment) { return add_u32("general.alignment", alignment); }
  uint64_t alignment() const { return alignment_; }

  // Returns whether the key was present. Removing general.alignment restores
  // the default alignment.
  bool remove_key(std::string_view key);
  bool has_key(std::string_view key) const;

  // --- tensors: dims[0] is the innermost (row length) ---
  // Copies `data`, which must be exactly the storage size of type x dims.
  Status add_tensor(std::string_view name, std::span<const int64_t> dims, TensorType type,
                    std::span<const uint8_t> data);
  // Like add_tensor without copying: `data` must stay valid until the last write.
  Status add_tensor_ref(std::string_view name, std::span<const int64_t> dims, TensorType type,
                        std::span<const uint8_t> data);
  // The data is produced by `fill` at write time (called once per write).
  Status add_tensor_fill(std::string_view name, std::span<const int64_t> dims, TensorType type,
                         GgufTensorFill fill);
  bool remove_tensor(std::string_view name);
  bool has_tensor(std::string_view name) const;

  size_t kv_count() const { return kvs_.size(); }
  size_t tensor_count() const { return tensors_.size(); }

  // Storage size of a tensor of `type` and `dims`, after the same checks
  // add_tensor makes (dims count 1..4, every dim > 0, no overflow, row length
  // a multiple of the block size).
  static Expected<uint64_t> tensor_bytes(std::span<const int64_t> dims, TensorType type);

  // Lays out and serializes the whole file. `layout`, when given, receives
  // the offsets of every field.
  Expected<std::vector<uint8_t>> write_to_buffer(GgufLayout* layout = nullptr) const;
  // Writes to `path` through a temporary file renamed into place, so a failed
  // write never leaves a truncated file under the final name.
  Status write_to_file(const std::string& path, GgufLayout* layout = nullptr) const;

 private:
  struct Kv {
    std::string key;
    GgufValueType type;
    std::vector<uint8_t> encoded;  // the value's bytes as they appear after the type field
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    TensorType type;
    uint64_t n_bytes;
    std::vector<uint8_t> owned;
    std::span<const uint8_t> ref;  // points into `owned` or the caller's memory
    GgufTensorFill fill;           // set instead of `ref` for generated data
  };

  Status check_new_key(std::string_view key) const;
  Status add_encoded(std::string_view key, GgufValueType type, std::vector<uint8_t> encoded);
  Status check_new_tensor(std::string_view name, std::span<const int64_t> dims, TensorType type,
                          uint64_t* n_bytes) const;
  // Serializes the header and tensor table, fills `layout` (data offsets included).
  Expected<std::vector<uint8_t>> build_header(GgufLayout* layout) const;
  Status produce(const Tensor& t, std::span<uint8_t> out) const;

  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  uint64_t alignment_ = kDefaultAlignment;
};

}  // namespace frugal
