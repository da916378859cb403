// GGUF reader: a bounds-checked cursor walks the header, metadata and tensor
// table; every failure names what was being read and at which byte offset.
#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "core/mapped_file.h"
#include "core/utf8.h"
#include "frugal/gguf.h"

namespace frugal {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian

bool known_value_type(uint32_t t) { return t <= 12; }

class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size) : base_(base), size_(size) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Status need(size_t n, const char* what) const {
    if (n > remaining()) {
      std::ostringstream m;
      m << "truncated file: reading " << what << " at offset " << pos_ << " needs " << n
        << " bytes, only " << remaining() << " left";
      return corrupt_data(m.str());
    }
    return Status::Ok();
  }
  template <class T>
  Status read(T* out, const char* what) {
    FRUGAL_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status read_string(std::string_view* out, uint64_t max_len, const char* what) {
    uint64_t len = 0;
    const size_t at = pos_;
    FRUGAL_RETURN_IF_ERROR(read(&len, what));
    if (len > max_len) {
      std::ostringstream m;
      m << what << " at offset " << at << ": length " << len << " exceeds the limit of " << max_len;
      return out_of_range(m.str());
    }
    FRUGAL_RETURN_IF_ERROR(need(static_cast<size_t>(len), what));
    *out = std::string_view(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }
  const uint8_t* here() const { return base_ + pos_; }
  void skip(size_t n) { pos_ += n; }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
};

// Reads one value of `type` (already read) into *v.
Status read_value(Cursor& c, GgufValueType type, GgufValue* v, const GgufLimits& limits,
                  uint32_t depth) {
  v->type = type;
  switch (type) {
    case GgufValueType::kUint8: {
      uint8_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "uint8 value"));
      v->u64 = x;
      v->i64 = x;
      return Status::Ok();
    }
    case GgufValueType::kInt8: {
      int8_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "int8 value"));
      v->i64 = x;
      v->u64 = static_cast<uint64_t>(x);
      return Status::Ok();
    }
    case GgufValueType::kUint16: {
      uint16_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "uint16 value"));
      v->u64 = x;
      v->i64 = x;
      return Status::Ok();
    }
    case GgufValueType::kInt16: {
      int16_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "int16 value"));
      v->i64 = x;
      v->u64 = static_cast<uint64_t>(x);
      return Status::Ok();
    }
    case GgufValueType::kUint32: {
      uint32_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "uint32 value"));
      v->u64 = x;
      v->i64 = x;
      return Status::Ok();
    }
    case GgufValueType::kInt32: {
      int32_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "int32 value"));
      v->i64 = x;
      v->u64 = static_cast<uint64_t>(x);
      return Status::Ok();
    }
    case GgufValueType::kUint64: {
      uint64_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "uint64 value"));
      v->u64 = x;
      v->i64 = static_cast<int64_t>(x);
      return Status::Ok();
    }
    case GgufValueType::kInt64: {
      int64_t x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "int64 value"));
      v->i64 = x;
      v->u64 = static_cast<uint64_t>(x);
      return Status::Ok();
    }
    case GgufValueType::kFloat32: {
      float x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "float32 value"));
      v->f64 = x;
      return Status::Ok();
    }
    case GgufValueType::kFloat64: {
      double x;
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "float64 value"));
      v->f64 = x;
      return Status::Ok();
    }
    case GgufValueType::kBool: {
      uint8_t x;
      const size_t at = c.pos();
      FRUGAL_RETURN_IF_ERROR(c.read(&x, "bool value"));
      if (x > 1) {
        return corrupt_data("bool value at offset " + std::to_string(at) + " is " +
                            std::to_string(x) + ", expected 0 or 1");
      }
      v->b = x != 0;
      v->u64 = x;
      v->i64 = x;
      return Status::Ok();
    }
    case GgufValueType::kString:
      return c.read_string(&v->str, limits.max_string_bytes, "string value");
    case GgufValueType::kArray: {
      if (depth >= limits.max_nesting)
        return out_of_range("arrays nested deeper than " + std::to_string(limits.max_nesting));
      uint32_t et = 0;
      const size_t at = c.pos();
      FRUGAL_RETURN_IF_ERROR(c.read(&et, "array element type"));
      if (!known_value_type(et))
        return corrupt_data("array at offset " + std::to_string(at) + " has unknown element type " +
                            std::to_string(et));
      v->elem_type = static_cast<GgufValueType>(et);
      FRUGAL_RETURN_IF_ERROR(c.read(&v->count, "array length"));
      if (v->count > limits.max_array_elements) {
        return out_of_range("array at offset " + std::to_string(at) + " has " +
                            std::to_string(v->count) + " elements, above the limit of " +
                            std::to_string(limits.max_array_elements));
      }
      v->raw = c.here();
      const size_t es = gguf_value_scalar_size(v->elem_type);
      if (es != 0) {
        // count <= max_array_elements (2^28), so count*es cannot overflow.
        FRUGAL_RETURN_IF_ERROR(c.need(static_cast<size_t>(v->count) * es, "array data"));
        // Bool elements get the same 0/1 check as a bool scalar, so array_int
        // never hands out a "bool" of 2.
        if (v->elem_type == GgufValueType::kBool) {
          for (uint64_t i = 0; i < v->count; ++i) {
            if (v->raw[i] > 1)
              return corrupt_data("bool array at offset " + std::to_string(at) + ": element " +
                                  std::to_string(i) + " is " + std::to_string(v->raw[i]) +
                                  ", expected 0 or 1");
          }
        }
        c.skip(static_cast<size_t>(v->count) * es);
        return Status::Ok();
      }
      if (v->elem_type == GgufValueType::kString) {
        // Each string needs at least its 8-byte length: reject absurd counts before reserving.
        if (v->count > c.remaining() / 8)
          return corrupt_data("string array at offset " + std::to_string(at) + " claims " +
                              std::to_string(v->count) + " elements, more than the file can hold");
        v->strings.resize(static_cast<size_t>(v->count));
        for (auto& s : v->strings)
          FRUGAL_RETURN_IF_ERROR(c.read_string(&s, limits.max_string_bytes, "array string"));
        return Status::Ok();
      }
      // Nested arrays: validated and skipped (no current key uses them).
      if (v->count > c.remaining() / 12)
        return corrupt_data("nested array at offset " + std::to_string(at) + " claims " +
                            std::to_string(v->count) + " elements, more than the file can hold");
      for (uint64_t i = 0; i < v->count; ++i) {
        GgufValue inner;
        FRUGAL_RETURN_IF_ERROR(read_value(c, GgufValueType::kArray, &inner, limits, depth + 1));
      }
      return Status::Ok();
    }
  }
  return corrupt_data("unknown value type " + std::to_string(static_cast<uint32_t>(type)));
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

}  // namespace

size_t gguf_value_scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    default: return 0;
  }
}

std::string_view gguf_value_type_name(GgufValueType t) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",   "u16",  "i16", "u32",
                                                "i32", "f32",  "bool", "str", "arr",
                                                "u64", "i64",  "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : std::string_view("?");
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64: return true;
    default: return false;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  if (type == GgufValueType::kBool) return b ? 1 : 0;
  if (!is_integer()) return std::nullopt;
  if (type == GgufValueType::kUint64 && u64 > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return i64;
}

std::optional<double> GgufValue::as_double() const {
  if (is_float()) return f64;
  if (type == GgufValueType::kUint64) return static_cast<double>(u64);
  if (is_integer() || type == GgufValueType::kBool) return static_cast<double>(*as_int());
  return std::nullopt;
}

std::optional<double> GgufValue::array_number(uint64_t i) const {
  if (type != GgufValueType::kArray || i >= count) return std::nullopt;
  const size_t es = gguf_value_scalar_size(elem_type);
  if (es == 0) return std::nullopt;
  const uint8_t* p = raw + i * es;
  switch (elem_type) {
    case GgufValueType::kUint8: return static_cast<double>(p[0]);
    case GgufValueType::kBool: return static_cast<double>(p[0] != 0);
    case GgufValueType::kInt8: return static_cast<double>(static_cast<int8_t>(p[0]));
    case GgufValueType::kUint16: { uint16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufValueType::kInt16: { int16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufValueType::kUint32: { uint32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufValueType::kInt32: { int32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufValueType::kFloat32: { float x; std::memcpy(&x, p, 4); return x; }
    case GgufValueType::kUint64: { uint64_t x; std::memcpy(&x, p, 8); return static_cast<double>(x); }
    case GgufValueType::kInt64: { int64_t x; std::memcpy(&x, p, 8); return static_cast<double>(x); }
    case GgufValueType::kFloat64: { double x; std::memcpy(&x, p, 8); return x; }
    default: return std::nullopt;
  }
}

std::optional<int64_t> GgufValue::array_int(uint64_t i) const {
  if (type != GgufValueType::kArray || i >= count) return std::nullopt;
  const size_t es = gguf_value_scalar_size(elem_type);
  const uint8_t* p = raw + i * es;
  switch (elem_type) {
    case GgufValueType::kUint8:
    case GgufValueType::kBool: return p[0];
    case GgufValueType::kInt8: return static_cast<int8_t>(p[0]);
    case GgufValueType::kUint16: { uint16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufValueType::kInt16: { int16_t x; std::memcpy(&x, p, 2); return x; }
    case GgufValueType::kUint32: { uint32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufValueType::kInt32: { int32_t x; std::memcpy(&x, p, 4); return x; }
    case GgufValueType::kUint64: { uint64_t x; std::memcpy(&x, p, 8); return static_cast<int64_t>(x); }
    case GgufValueType::kInt64: { int64_t x; std::memcpy(&x, p, 8); return x; }
    default: return std::nullopt;
  }
}

std::string GgufValue::to_display_string(size_t max_items) const {
  std::ostringstream o;
  auto quote = [](std::string_view s) {
    std::string r = "\"";
    for (unsigned char ch : s.substr(0, 200)) {
      if (ch == '\n') r += "\\n";
      else if (ch == '"') r += "\\\"";
      else if (ch < 0x20) r += "\\x" + std::string(1, "0123456789abcdef"[ch >> 4]) + "0123456789abcdef"[ch & 15];
      else r += static_cast<char>(ch);
    }
    if (s.size() > 200) r += "...";
    return r + "\"";
  };
  switch (type) {
    case GgufValueType::kString: o << quote(str); break;
    case GgufValueType::kBool: o << (b ? "true" : "false"); break;
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64: o << f64; break;
    case GgufValueType::kUint64: o << u64; break;
    case GgufValueType::kArray: {
      o << "[" << gguf_value_type_name(elem_type) << " x " << count << "] [";
      const uint64_t n = std::min<uint64_t>(count, max_items);
      for (uint64_t i = 0; i < n; ++i) {
        if (i) o << ", ";
        if (elem_type == GgufValueType::kString) o << quote(strings[i]);
        else if (elem_type == GgufValueType::kArray) o << "[...]";
        else if (auto d = array_number(i)) o << *d;
      }
      if (count > n) o << ", ...";
      o << "]";
      break;
    }
    default: o << i64; break;
  }
  return o.str();
}

GgufFile::~GgufFile() = default;

Expected<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path,
                                                   const GgufLimits& limits) {
  auto mapped = MappedFile::open(path);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->mapping_ = std::move(mapped).value();
  f->base_ = f->mapping_->data();
  f->size_ = f->mapping_->size();
  f->path_ = path;
  Status s = f->parse_all(limits);
  if (!s.ok()) return s.with_context(path);
  return f;
}

Expected<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size,
                                                    const GgufLimits& limits) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->base_ = data;
  f->size_ = size;
  f->path_ = "<memory>";
  Status s = f->parse_all(limits);
  if (!s.ok()) return s;
  return f;
}

Status GgufFile::parse_all(const GgufLimits& limits) {
  Cursor c(base_, size_);
  uint32_t magic = 0;
  FRUGAL_RETURN_IF_ERROR(c.read(&magic, "magic"));
  if (magic != kMagic) return corrupt_data("not a GGUF file (bad magic)");
  FRUGAL_RETURN_IF_ERROR(c.read(&version_, "version"));
  if (version_ != 2 && version_ != 3)
    return unsupported("GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
  uint64_t n_tensors = 0, n_kv = 0;
  FRUGAL_RETURN_IF_ERROR(c.read(&n_tensors, "tensor count"));
  FRUGAL_RETURN_IF_ERROR(c.read(&n_kv, "metadata count"));
  if (n_kv > limits.max_kv_count || n_kv > c.remaining() / 12)
    return corrupt_data("metadata count " + std::to_string(n_kv) + " is impossible for this file");
  if (n_tensors > limits.max_tensor_count || n_tensors > c.remaining() / 24)
    return corrupt_data("tensor count " + std::to_string(n_tensors) +
                        " is impossible for this file");

  std::unordered_set<std::string_view> keys;
  kvs_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string_view key;
    FRUGAL_RETURN_IF_ERROR(c.read_string(&key, 65535, "metadata key"));
    const std::string where = "metadata #" + std::to_string(i) + " (offset " + std::to_string(at) + ")";
    if (key.empty()) return corrupt_data(where + ": empty key");
    if (!is_valid_utf8(key)) return corrupt_data(where + ": key is not valid UTF-8");
    if (!keys.insert(key).second) return corrupt_data(where + ": duplicate key '" + std::string(key) + "'");
    uint32_t raw_type = 0;
    FRUGAL_RETURN_IF_ERROR(c.read(&raw_type, "metadata value type"));
    if (!known_value_type(raw_type))
      return corrupt_data(where + " '" + std::string(key) + "': unknown value type " +
                          std::to_string(raw_type));
    GgufKeyValue kv;
    kv.key = std::string(key);
    Status s = read_value(c, static_cast<GgufValueType>(raw_type), &kv.value, limits, 0);
    if (!s.ok()) return s.with_context("metadata '" + kv.key + "'");
    kvs_.push_back(std::move(kv));
  }

  if (const GgufValue* a = find("general.alignment")) {
    auto v = a->as_int();
    if (!a->is_integer() || !v || *v <= 0 || (*v & (*v - 1)) != 0 || *v > (1 << 20))
      return corrupt_data("general.alignment must be a power of two integer (got " +
                          a->to_display_string() + ")");
    alignment_ = static_cast<uint64_t>(*v);
  }

  std::unordered_set<std::string_view> names;
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    const std::string where = "tensor #" + std::to_string(i) + " (offset " + std::to_string(at) + ")";
    std::string_view name;
    FRUGAL_RETURN_IF_ERROR(c.read_string(&name, 65535, "tensor name").with_context(where));
    if (name.empty()) return corrupt_data(where + ": empty name");
    if (!is_valid_utf8(name)) return corrupt_data(where + ": name is not valid UTF-8");
    if (!names.insert(name).second)
      return corrupt_data(where + ": duplicate tensor name '" + std::string(name) + "'");
    GgufTensorInfo t;
    t.name = std::string(name);
    const std::string tw = "tensor '" + t.name + "'";
    uint32_t n_dims = 0;
    FRUGAL_RETURN_IF_ERROR(c.read(&n_dims, "tensor dimension count").with_context(tw));
    if (n_dims == 0 || n_dims > limits.max_dims)
      return corrupt_data(tw + ": " + std::to_string(n_dims) + " dimensions (expected 1.." +
                          std::to_string(limits.max_dims) + ")");
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      FRUGAL_RETURN_IF_ERROR(c.read(&dim, "tensor dimension").with_context(tw));
      if (dim == 0 || dim > static_cast<uint64_t>(INT64_MAX))
        return corrupt_data(tw + ": dimension " + std::to_string(d) + " is " + std::to_string(dim));
      if (!checked_mul(n_elements, dim, &n_elements) || n_elements > static_cast<uint64_t>(INT64_MAX))
        return corrupt_data(tw + ": element count overflows");
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    t.n_elements = static_cast<int64_t>(n_elements);
    uint32_t raw_type = 0;
    FRUGAL_RETURN_IF_ERROR(c.read(&raw_type, "tensor type").with_context(tw));
    auto traits = tensor_type_traits(raw_type);
    if (!traits) return unsupported(tw + ": unknown tensor type " + std::to_string(raw_type));
    t.type = static_cast<TensorType>(raw_type);
    if (t.dims[0] % traits->block_size != 0)
      return corrupt_data(tw + ": row length " + std::to_string(t.dims[0]) +
                          " is not a multiple of the " + std::string(traits->name) +
                          " block size " + std::to_string(traits->block_size));
    uint64_t n_blocks = n_elements / traits->block_size;
    if (!checked_mul(n_blocks, traits->type_size, &t.n_bytes))
      return corrupt_data(tw + ": byte size overflows");
    FRUGAL_RETURN_IF_ERROR(c.read(&t.offset, "tensor offset").with_context(tw));
    if (t.offset % alignment_ != 0)
      return corrupt_data(tw + ": data offset " + std::to_string(t.offset) +
                          " is not a multiple of the alignment " + std::to_string(alignment_));
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t header_end = c.pos();
  uint64_t data_offset = 0;
  if (!checked_add(header_end, alignment_ - 1, &data_offset))
    return corrupt_data("header size overflows");
  data_offset -= data_offset % alignment_;
  if (data_offset > size_ && !tensors_.empty())
    return corrupt_data("data section starts at " + std::to_string(data_offset) +
                        ", past the end of the file (" + std::to_string(size_) + " bytes)");
  data_offset_ = data_offset;

  // Bounds and overlap: sort by offset and check each range ends before the next starts.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  uint64_t prev_end = 0;
  const GgufTensorInfo* prev = nullptr;
  for (size_t idx : order) {
    GgufTensorInfo& t = tensors_[idx];
    uint64_t begin = 0, end = 0;
    if (!checked_add(data_offset_, t.offset, &begin) || !checked_add(begin, t.n_bytes, &end) ||
        end > size_) {
      return corrupt_data("tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", +" +
                          std::to_string(t.n_bytes) + ") lies outside the file (" +
                          std::to_string(size_) + " bytes, data section at " +
                          std::to_string(data_offset_) + ")");
    }
    if (prev != nullptr && t.offset < prev_end)
      return corrupt_data("tensor '" + t.name + "' overlaps tensor '" + prev->name + "'");
    prev_end = t.offset + t.n_bytes;
    prev = &t;
    t.data = base_ + begin;
  }
  return Status::Ok();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Expected<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != GgufValueType::kString)
    return corrupt_data("metadata '" + std::string(key) + "' should be a string, is " +
                        std::string(gguf_value_type_name(v->type)));
  return std::optional<std::string>(std::string(v->str));
}

Expected<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<int64_t>();
  auto i = v->as_int();
  if (!v->is_integer() || !i)
    return corrupt_data("metadata '" + std::string(key) + "' should be an integer, is " +
                        v->to_display_string());
  return std::optional<int64_t>(*i);
}

Expected<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<double>();
  auto d = v->as_double();
  if (!d || v->type == GgufValueType::kBool)
    return corrupt_data("metadata '" + std::string(key) + "' should be a number, is " +
                        v->to_display_string());
  return std::optional<double>(*d);
}

Expected<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  if (v->type != GgufValueType::kBool)
    return corrupt_data("metadata '" + std::string(key) + "' should be a bool, is " +
                        std::string(gguf_value_type_name(v->type)));
  return std::optional<bool>(v->b);
}

}  // namespace frugal
