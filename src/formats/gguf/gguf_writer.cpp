// GGUF v3 writer. Values are encoded to their on-disk bytes when added, so
// the write itself only concatenates and pads; all validation happens at
// add time and mirrors what the reader (gguf_reader.cpp) rejects.
#include "frugal/gguf_writer.h"

#include "core/utf8.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace frugal {
namespace {

// GGUF is little-endian; values are copied from memory as they are.
static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint32_t kVersion = 3;
constexpr uint64_t kMaxKeyBytes = 65535;  // the reader's limit on keys
constexpr uint64_t kMaxAlignment = 1u << 20;  // the reader's limit


class Bytes {
 public:
  explicit Bytes(std::vector<uint8_t>* out) : out_(out) {}
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_->insert(out_->end(), p, p + sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_->insert(out_->end(), s.begin(), s.end());
  }
  void put_raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_->insert(out_->end(), b, b + n);
  }
  uint64_t size() const { return out_->size(); }

 private:
  std::vector<uint8_t>* out_;
};

template <class T>
std::vector<uint8_t> encode_scalar(T v) {
  std::vector<uint8_t> e;
  Bytes(&e).put(v);
  return e;
}

Status check_array_count(std::string_view key, uint64_t n) {
  if (n > GgufLimits{}.max_array_elements)
    return out_of_range("metadata '" + std::string(key) + "': array of " + std::to_string(n) +
                        " elements exceeds the limit of " +
                        std::to_string(GgufLimits{}.max_array_elements));
  return Status::Ok();
}

Status check_string(std::string_view key, std::string_view s) {
  if (s.size() > GgufLimits{}.max_string_bytes)
    return out_of_range("metadata '" + std::string(key) + "': string of " + std::to_string(s.size()) +
                        " bytes exceeds the limit of " + std::to_string(GgufLimits{}.max_string_bytes));
  return Status::Ok();
}

template <class T>
std::vector<uint8_t> encode_array(GgufValueType elem, std::span<const T> v) {
  std::vector<uint8_t> e;
  Bytes b(&e);
  b.put<uint32_t>(static_cast<uint32_t>(elem));
  b.put<uint64_t>(v.size());
  b.put_raw(v.data(), v.size_bytes());
  return e;
}

template <class S>
Expected<std::vector<uint8_t>> encode_string_array(std::string_view key, std::span<const S> v) {
  FRUGAL_RETURN_IF_ERROR(check_array_count(key, v.size()));
  std::vector<uint8_t> e;
  Bytes b(&e);
  b.put<uint32_t>(static_cast<uint32_t>(GgufValueType::kString));
  b.put<uint64_t>(v.size());
  for (const auto& s : v) {
    FRUGAL_RETURN_IF_ERROR(check_string(key, s));
    b.put_string(s);
  }
  return e;
}


uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

// ---------------------------------------------------------------- metadata

Status GgufWriter::check_new_key(std::string_view key) const {
  if (key.empty()) return invalid_argument("metadata key is empty");
  if (key.size() > kMaxKeyBytes)
    return invalid_argument("metadata key of " + std::to_string(key.size()) + " bytes exceeds " +
                            std::to_string(kMaxKeyBytes));
  if (!is_valid_utf8(key)) return invalid_argument("metadata key is not valid UTF-8");
  if (has_key(key)) return invalid_argument("duplicate metadata key '" + std::string(key) + "'");
  return Status::Ok();
}

Status GgufWriter::add_encoded(std::string_view key, GgufValueType type,
                               std::vector<uint8_t> encoded) {
  FRUGAL_RETURN_IF_ERROR(check_new_key(key));
  if (key == "general.alignment") {
    // The alignment changes the layout of every tensor: accept exactly what
    // the reader and llama.cpp accept.
    if (type != GgufValueType::kUint32)
      return invalid_argument("general.alignment must be a u32, got " +
                              std::string(gguf_value_type_name(type)));
    uint32_t a = 0;
    std::memcpy(&a, encoded.data(), sizeof a);
    if (a == 0 || (a & (a - 1)) != 0 || a > kMaxAlignment)
      return invalid_argument("general.alignment must be a power of two in [1, " +
                              std::to_string(kMaxAlignment) + "], got " + std::to_string(a));
    alignment_ = a;
  }
  kvs_.push_back(Kv{std::string(key), type, std::move(encoded)});
  return Status::Ok();
}

Status GgufWriter::add_u8(std::string_view k, uint8_t v) { return add_encoded(k, GgufValueType::kUint8, encode_scalar(v)); }
Status GgufWriter::add_i8(std::string_view k, int8_t v) { return add_encoded(k, GgufValueType::kInt8, encode_scalar(v)); }
Status GgufWriter::add_u16(std::string_view k, uint16_t v) { return add_encoded(k, GgufValueType::kUint16, encode_scalar(v)); }
Status GgufWriter::add_i16(std::string_view k, int16_t v) { return add_encoded(k, GgufValueType::kInt16, encode_scalar(v)); }
Status GgufWriter::add_u32(std::string_view k, uint32_t v) { return add_encoded(k, GgufValueType::kUint32, encode_scalar(v)); }
Status GgufWriter::add_i32(std::string_view k, int32_t v) { return add_encoded(k, GgufValueType::kInt32, encode_scalar(v)); }
Status GgufWriter::add_u64(std::string_view k, uint64_t v) { return add_encoded(k, GgufValueType::kUint64, encode_scalar(v)); }
Status GgufWriter::add_i64(std::string_view k, int64_t v) { return add_encoded(k, GgufValueType::kInt64, encode_scalar(v)); }
Status GgufWriter::add_f32(std::string_view k, float v) { return add_encoded(k, GgufValueType::kFloat32, encode_scalar(v)); }
Status GgufWriter::add_f64(std::string_view k, double v) { return add_encoded(k, GgufValueType::kFloat64, encode_scalar(v)); }
Status GgufWriter::add_bool(std::string_view k, bool v) {
  return add_encoded(k, GgufValueType::kBool, encode_scalar<uint8_t>(v ? 1 : 0));
}
Status GgufWriter::add_string(std::string_view k, std::string_view v) {
  FRUGAL_RETURN_IF_ERROR(check_string(k, v));
  std::vector<uint8_t> e;
  Bytes(&e).put_string(v);
  return add_encoded(k, GgufValueType::kString, std::move(e));
}

#define FRUGAL_GGUF_ARRAY_ADDER(fn, T, elem)                                  \
  Status GgufWriter::fn(std::string_view k, std::span<const T> v) {           \
    FRUGAL_RETURN_IF_ERROR(check_array_count(k, v.size()));                   \
    return add_encoded(k, GgufValueType::kArray, encode_array<T>(elem, v));   \
  }
FRUGAL_GGUF_ARRAY_ADDER(add_array_u8, uint8_t, GgufValueType::kUint8)
FRUGAL_GGUF_ARRAY_ADDER(add_array_i8, int8_t, GgufValueType::kInt8)
FRUGAL_GGUF_ARRAY_ADDER(add_array_u16, uint16_t, GgufValueType::kUint16)
FRUGAL_GGUF_ARRAY_ADDER(add_array_i16, int16_t, GgufValueType::kInt16)
FRUGAL_GGUF_ARRAY_ADDER(add_array_u32, uint32_t, GgufValueType::kUint32)
FRUGAL_GGUF_ARRAY_ADDER(add_array_i32, int32_t, GgufValueType::kInt32)
FRUGAL_GGUF_ARRAY_ADDER(add_array_u64, uint64_t, GgufValueType::kUint64)
FRUGAL_GGUF_ARRAY_ADDER(add_array_i64, int64_t, GgufValueType::kInt64)
FRUGAL_GGUF_ARRAY_ADDER(add_array_f32, float, GgufValueType::kFloat32)
FRUGAL_GGUF_ARRAY_ADDER(add_array_f64, double, GgufValueType::kFloat64)
#undef FRUGAL_GGUF_ARRAY_ADDER

Status GgufWriter::add_array_bool(std::string_view k, std::span<const bool> v) {
  FRUGAL_RETURN_IF_ERROR(check_array_count(k, v.size()));
  // sizeof(bool) is not guaranteed to be 1: write each element as one byte.
  std::vector<uint8_t> bytes(v.size());
  for (size_t i = 0; i < v.size(); ++i) bytes[i] = v[i] ? 1 : 0;
  return add_encoded(k, GgufValueType::kArray,
                     encode_array<uint8_t>(GgufValueType::kBool, std::span<const uint8_t>(bytes)));
}

Status GgufWriter::add_array_string(std::string_view k, std::span<const std::string> v) {
  FRUGAL_ASSIGN_OR_RETURN(auto e, encode_string_array(k, v));
  return add_encoded(k, GgufValueType::kArray, std::move(e));
}

Status GgufWriter::add_array_string(std::string_view k, std::span<const std::string_view> v) {
  FRUGAL_ASSIGN_OR_RETURN(auto e, encode_string_array(k, v));
  return add_encoded(k, GgufValueType::kArray, std::move(e));
}

Status GgufWriter::add_value(std::string_view key, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::kUint8: return add_u8(key, static_cast<uint8_t>(v.u64));
    case GgufValueType::kInt8: return add_i8(key, static_cast<int8_t>(v.i64));
    case GgufValueType::kUint16: return add_u16(key, static_cast<uint16_t>(v.u64));
    case GgufValueType::kInt16: return add_i16(key, static_cast<int16_t>(v.i64));
    case GgufValueType::kUint32: return add_u32(key, static_cast<uint32_t>(v.u64));
    case GgufValueType::kInt32: return add_i32(key, static_cast<int32_t>(v.i64));
    case GgufValueType::kUint64: return add_u64(key, v.u64);
    case GgufValueType::kInt64: return add_i64(key, v.i64);
    case GgufValueType::kFloat32: return add_f32(key, static_cast<float>(v.f64));
    case GgufValueType::kFloat64: return add_f64(key, v.f64);
    case GgufValueType::kBool: return add_bool(key, v.b);
    case GgufValueType::kString: return add_string(key, v.str);
    case GgufValueType::kArray: {
      if (v.elem_type == GgufValueType::kString) {
        if (v.strings.size() != v.count)
          return invalid_argument("metadata '" + std::string(key) + "': string array has " +
                                  std::to_string(v.strings.size()) + " decoded strings for count " +
                                  std::to_string(v.count));
        return add_array_string(key, std::span<const std::string_view>(v.strings));
      }
      const size_t es = gguf_value_scalar_size(v.elem_type);
      if (es == 0)
        return unsupported("metadata '" + std::string(key) + "': arrays of " +
                           std::string(gguf_value_type_name(v.elem_type)) + " cannot be written");
      FRUGAL_RETURN_IF_ERROR(check_array_count(key, v.count));
      if (v.count != 0 && v.raw == nullptr)
        return invalid_argument("metadata '" + std::string(key) + "': array without data");
      std::vector<uint8_t> e;
      Bytes b(&e);
      b.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
      b.put<uint64_t>(v.count);
      if (v.elem_type == GgufValueType::kBool) {
        // Normalize so the result always passes the reader's 0/1 check.
        for (uint64_t i = 0; i < v.count; ++i) b.put<uint8_t>(v.raw[i] != 0 ? 1 : 0);
      } else if (v.count != 0) {
        b.put_raw(v.raw, static_cast<size_t>(v.count) * es);
      }
      return add_encoded(key, GgufValueType::kArray, std::move(e));
    }
  }
  return invalid_argument("metadata '" + std::string(key) + "': unknown value type " +
                          std::to_string(static_cast<uint32_t>(v.type)));
}

bool GgufWriter::has_key(std::string_view key) const {
  return std::any_of(kvs_.begin(), kvs_.end(), [&](const Kv& kv) { return kv.key == key; });
}

bool GgufWriter::remove_key(std::string_view key) {
  auto it = std::find_if(kvs_.begin(), kvs_.end(), [&](const Kv& kv) { return kv.key == key; });
  if (it == kvs_.end()) return false;
  kvs_.erase(it);
  if (key == "general.alignment") alignment_ = kDefaultAlignment;
  return true;
}

// ----------------------------------------------------------------- tensors

Expected<uint64_t> GgufWriter::tensor_bytes(std::span<const int64_t> dims, TensorType type) {
  auto traits = tensor_type_traits(type);
  if (!traits)
    return invalid_argument("unknown tensor type " + std::to_string(static_cast<uint32_t>(type)));
  if (dims.empty() || dims.size() > GgufLimits{}.max_dims)
    return invalid_argument(std::to_string(dims.size()) + " dimensions (expected 1.." +
                            std::to_string(GgufLimits{}.max_dims) + ")");
  uint64_t n = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] <= 0)
      return invalid_argument("dimension " + std::to_string(d) + " is " + std::to_string(dims[d]));
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(dims[d]), &n) ||
        n > static_cast<uint64_t>(INT64_MAX))
      return invalid_argument("element count overflows");
  }
  if (static_cast<uint64_t>(dims[0]) % traits->block_size != 0)
    return invalid_argument("row length " + std::to_string(dims[0]) + " is not a multiple of the " +
                            std::string(traits->name) + " block size " +
                            std::to_string(traits->block_size));
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(n / traits->block_size, uint64_t{traits->type_size}, &bytes))
    return invalid_argument("byte size overflows");
  return bytes;
}

Status GgufWriter::check_new_tensor(std::string_view name, std::span<const int64_t> dims,
                                    TensorType type, uint64_t* n_bytes) const {
  if (name.empty()) return invalid_argument("tensor name is empty");
  const std::string tw = "tensor '" + std::string(name) + "'";
  if (name.size() > kMaxNameBytes)
    return invalid_argument(tw + ": name longer than " + std::to_string(kMaxNameBytes) + " bytes");
  if (!is_valid_utf8(name)) return invalid_argument("tensor name is not valid UTF-8");
  if (has_tensor(name)) return invalid_argument("duplicate tensor name '" + std::string(name) + "'");
  auto bytes = tensor_bytes(dims, type);
  if (!bytes.ok()) return bytes.status().with_context(tw);
  *n_bytes = *bytes;
  return Status::Ok();
}

Status GgufWriter::add_tensor(std::string_view name, std::span<const int64_t> dims,
                              TensorType type, std::span<const uint8_t> data) {
  FRUGAL_RETURN_IF_ERROR(add_tensor_ref(name, dims, type, data));
  Tensor& t = tensors_.back();
  t.owned.assign(data.begin(), data.end());
  t.ref = std::span<const uint8_t>(t.owned);
  return Status::Ok();
}

Status GgufWriter::add_tensor_ref(std::string_view name, std::span<const int64_t> dims,
                                  TensorType type, std::span<const uint8_t> data) {
  uint64_t n_bytes = 0;
  FRUGAL_RETURN_IF_ERROR(check_new_tensor(name, dims, type, &n_bytes));
  if (data.size() != n_bytes) {
    std::string shape;
    for (size_t i = 0; i < dims.size(); ++i) shape += (i ? " x " : "") + std::to_string(dims[i]);
    return invalid_argument("tensor '" + std::string(name) + "': " + std::to_string(data.size()) +
                            " bytes given, " + std::string(tensor_type_name(type)) + " [" + shape +
                            "] needs " + std::to_string(n_bytes));
  }
  tensors_.push_back(Tensor{std::string(name), std::vector<int64_t>(dims.begin(), dims.end()), type,
                            n_bytes, {}, data, {}});
  return Status::Ok();
}

Status GgufWriter::add_tensor_fill(std::string_view name, std::span<const int64_t> dims,
                                   TensorType type, GgufTensorFill fill) {
  if (!fill) return invalid_argument("tensor '" + std::string(name) + "': empty fill function");
  uint64_t n_bytes = 0;
  FRUGAL_RETURN_IF_ERROR(check_new_tensor(name, dims, type, &n_bytes));
  tensors_.push_back(Tensor{std::string(name), std::vector<int64_t>(dims.begin(), dims.end()), type,
                            n_bytes, {}, {}, std::move(fill)});
  return Status::Ok();
}

bool GgufWriter::has_tensor(std::string_view name) const {
  return std::any_of(tensors_.begin(), tensors_.end(), [&](const Tensor& t) { return t.name == name; });
}

bool GgufWriter::remove_tensor(std::string_view name) {
  auto it = std::find_if(tensors_.begin(), tensors_.end(),
                         [&](const Tensor& t) { return t.name == name; });
  if (it == tensors_.end()) return false;
  tensors_.erase(it);
  return true;
}

// ------------------------------------------------------------------- write

Expected<std::vector<uint8_t>> GgufWriter::build_header(GgufLayout* layout) const {
  std::vector<uint8_t> out;
  Bytes b(&out);
  b.put<uint32_t>(kMagic);
  b.put<uint32_t>(kVersion);
  b.put<uint64_t>(tensors_.size());
  b.put<uint64_t>(kvs_.size());
  layout->alignment = alignment_;
  layout->kvs.clear();
  layout->tensors.clear();
  for (const Kv& kv : kvs_) {
    GgufKvLayout l;
    l.key = kv.key;
    l.type = kv.type;
    l.key_offset = b.size();
    b.put_string(kv.key);
    l.type_offset = b.size();
    b.put<uint32_t>(static_cast<uint32_t>(kv.type));
    l.value_offset = b.size();
    b.put_raw(kv.encoded.data(), kv.encoded.size());
    l.end_offset = b.size();
    layout->kvs.push_back(std::move(l));
  }
  // Relative offsets: each tensor starts on an aligned offset after the previous one.
  uint64_t rel = 0;
  for (const Tensor& t : tensors_) {
    GgufTensorLayout l;
    l.name = t.name;
    l.name_offset = b.size();
    b.put_string(t.name);
    l.n_dims_offset = b.size();
    b.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    l.dims_offset = b.size();
    for (int64_t d : t.dims) b.put<uint64_t>(static_cast<uint64_t>(d));
    l.type_offset = b.size();
    b.put<uint32_t>(static_cast<uint32_t>(t.type));
    l.offset_field_offset = b.size();
    b.put<uint64_t>(rel);
    l.data_offset = rel;  // made absolute below
    l.n_bytes = t.n_bytes;
    if (__builtin_add_overflow(rel, t.n_bytes, &rel) || rel > UINT64_MAX - alignment_)
      return out_of_range("tensor data exceeds 2^64 bytes");
    rel = align_up(rel, alignment_);
    layout->tensors.push_back(std::move(l));
  }
  layout->header_end = b.size();
  layout->data_offset = align_up(layout->header_end, alignment_);
  for (auto& l : layout->tensors) l.data_offset += layout->data_offset;
  layout->file_size = tensors_.empty() ? layout->header_end : layout->data_offset + rel;
  out.resize(static_cast<size_t>(tensors_.empty() ? layout->header_end : layout->data_offset), 0);
  return out;
}

Status GgufWriter::produce(const Tensor& t, std::span<uint8_t> out) const {
  if (t.fill) {
    Status s = t.fill(out);
    if (!s.ok()) return s.with_context("tensor '" + t.name + "'");
    return Status::Ok();
  }
  std::memcpy(out.data(), t.ref.data(), out.size());
  return Status::Ok();
}

Expected<std::vector<uint8_t>> GgufWriter::write_to_buffer(GgufLayout* layout) const {
  GgufLayout local;
  GgufLayout& l = layout ? *layout : local;
  FRUGAL_ASSIGN_OR_RETURN(std::vector<uint8_t> out, build_header(&l));
  if (l.file_size > SIZE_MAX) return out_of_range("file of " + std::to_string(l.file_size) + " bytes does not fit in memory");
  out.resize(static_cast<size_t>(l.file_size), 0);  // zero padding included
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& tl = l.tensors[i];
    FRUGAL_RETURN_IF_ERROR(produce(tensors_[i], std::span<uint8_t>(out.data() + tl.data_offset,
                                                                   static_cast<size_t>(tl.n_bytes))));
  }
  return out;
}

Status GgufWriter::write_to_file(const std::string& path, GgufLayout* layout) const {
  GgufLayout local;
  GgufLayout& l = layout ? *layout : local;
  FRUGAL_ASSIGN_OR_RETURN(std::vector<uint8_t> header, build_header(&l));
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return io_error(tmp + ": cannot create: " + std::strerror(errno));
  auto fail = [&](Status s) {
    std::fclose(f);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return s;
  };
  auto put = [&](const uint8_t* p, size_t n) -> Status {
    if (n != 0 && std::fwrite(p, 1, n, f) != n)
      return io_error(tmp + ": write failed: " + std::strerror(errno));
    return Status::Ok();
  };
  Status s = put(header.data(), header.size());
  if (!s.ok()) return fail(s);
  uint64_t pos = header.size();
  std::vector<uint8_t> scratch;
  const std::vector<uint8_t> zeros(static_cast<size_t>(alignment_), 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    const auto& tl = l.tensors[i];
    // Padding before this tensor (at most alignment - 1 bytes).
    s = put(zeros.data(), static_cast<size_t>(tl.data_offset - pos));
    if (!s.ok()) return fail(s);
    if (t.fill) {
      scratch.assign(static_cast<size_t>(t.n_bytes), 0);
      s = produce(t, std::span<uint8_t>(scratch));
      if (s.ok()) s = put(scratch.data(), scratch.size());
    } else {
      s = put(t.ref.data(), t.ref.size());
    }
    if (!s.ok()) return fail(s);
    pos = tl.data_offset + tl.n_bytes;
  }
  s = put(zeros.data(), static_cast<size_t>(l.file_size - pos));
  if (!s.ok()) return fail(s);
  if (std::fflush(f) != 0) return fail(io_error(tmp + ": flush failed: " + std::strerror(errno)));
  if (std::fclose(f) != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return io_error(tmp + ": close failed: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return io_error(path + ": cannot rename from " + tmp + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace frugal
