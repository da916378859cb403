// Safetensors reader (single files and sharded checkpoints).
//
// A safetensors file is: u64 little-endian header length N, N bytes of JSON
// (an object mapping tensor names to {dtype, shape, data_offsets}, plus an
// optional "__metadata__" object of strings), then the data section. The file
// is checked once at open, before any tensor is handed out:
//   - the header length is at most kMaxHeaderBytes and inside the file;
//   - the header is a JSON object without duplicate keys;
//   - every dtype is known, every shape is a list of non-negative integers and
//     dtype size x elements is computed with overflow checks and must equal
//     the byte range given by data_offsets;
//   - byte ranges lie inside the data section and tile it exactly: sorted by
//     offset they are contiguous, never overlap and leave no unused bytes.
// Errors name the file, the tensor and the problem; nothing here aborts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/status.h"

namespace frugal {

class MappedFile;

namespace st {

inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB, as the reference implementation
inline constexpr size_t kMaxDims = 8;

enum class Dtype {
  kBool, kU8, kI8, kF8E4M3, kF8E5M2, kU16, kI16, kF16, kBF16, kU32, kI32, kF32, kU64, kI64, kF64,
};

std::optional<Dtype> dtype_from_name(std::string_view name);
std::string_view dtype_name(Dtype d);
uint64_t dtype_size(Dtype d);
// Whether read_as_f32 converts this dtype (floating point types used for weights).
bool is_float_weight_dtype(Dtype d);

struct TensorView {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;  // outermost first, as written by PyTorch
  int64_t n_elements = 1;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the owning file's buffer

  int64_t rows() const { return shape.empty() ? 1 : n_elements / std::max<int64_t>(shape.back(), 1); }
  int64_t row_length() const { return shape.empty() ? 1 : shape.back(); }
};

class SafetensorsFile {
 public:
  // Maps and validates a file.
  static Expected<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // Validates a buffer the caller keeps alive (tests, fuzzing).
  static Expected<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, size_t size);
  ~SafetensorsFile();

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  Status parse_all();

  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards
// listed by model.safetensors.index.json (each shard validated as above; the
// index's weight_map must name exactly the tensors the shards hold).
class SafetensorsCheckpoint {
 public:
  static Expected<std::unique_ptr<SafetensorsCheckpoint>> open_dir(const std::string& dir);
  // A single file (no index).
  static Expected<std::unique_ptr<SafetensorsCheckpoint>> open_file(const std::string& path);

  const TensorView* find(std::string_view name) const;
  // Every tensor, in name order.
  std::vector<const TensorView*> tensors() const;
  size_t shard_count() const { return shards_.size(); }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// Converts `n` elements of a floating point tensor starting at element
// `first` to fp32.
Status read_as_f32(const TensorView& t, int64_t first, int64_t n, float* out);

}  // namespace st
}  // namespace frugal
