#include "formats/safetensors/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/half.h"
#include "core/mapped_file.h"

namespace frugal::st {
namespace {

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 1},       {Dtype::kU8, "U8", 1},     {Dtype::kI8, "I8", 1},
    {Dtype::kF8E4M3, "F8_E4M3", 1},  {Dtype::kF8E5M2, "F8_E5M2", 1},
    {Dtype::kU16, "U16", 2},         {Dtype::kI16, "I16", 2},   {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2},       {Dtype::kU32, "U32", 4},   {Dtype::kI32, "I32", 4},
    {Dtype::kF32, "F32", 4},         {Dtype::kU64, "U64", 8},   {Dtype::kI64, "I64", 8},
    {Dtype::kF64, "F64", 8},
};

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::string printable_name(std::string_view s) {
  // Names come from untrusted input: keep error messages short and printable.
  std::string r = "'";
  for (char c : s.substr(0, 120)) r += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 120) r += "...";
  return r + "'";
}

// Reads an unsigned integer JSON value (rejecting negatives, floats, strings).
std::optional<uint64_t> json_uint(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::string_view dtype_name(Dtype dt) {
  for (const auto& d : kDtypes)
    if (d.dtype == dt) return d.name;
  return "?";
}

uint64_t dtype_size(Dtype dt) {
  for (const auto& d : kDtypes)
    if (d.dtype == dt) return d.size;
  return 0;
}

bool is_float_weight_dtype(Dtype d) { return d == Dtype::kF32 || d == Dtype::kF16 || d == Dtype::kBF16; }

SafetensorsFile::~SafetensorsFile() = default;

Expected<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(auto mapping, MappedFile::open(path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->base_ = mapping->data();
  f->size_ = mapping->size();
  f->mapping_ = std::move(mapping);
  f->path_ = path;
  if (Status s = f->parse_all(); !s.ok()) return s.with_context(path);
  return f;
}

Expected<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data, size_t size) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->base_ = data;
  f->size_ = size;
  if (Status s = f->parse_all(); !s.ok()) return s;
  return f;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Status SafetensorsFile::parse_all() {
  if (size_ < 8)
    return corrupt_data("file of " + std::to_string(size_) + " bytes is too short for the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base_[i];
  if (header_len > kMaxHeaderBytes)
    return out_of_range("header length " + std::to_string(header_len) + " exceeds the limit of " +
                        std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_len > size_ - 8)
    return corrupt_data("header length " + std::to_string(header_len) + " runs past the end of the " +
                        std::to_string(size_) + "-byte file");
  if (header_len < 2) return corrupt_data("header of " + std::to_string(header_len) + " bytes cannot hold a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(base_ + 8), header_len);

  // nlohmann keeps the last of duplicate keys silently; a duplicate tensor
  // name is ambiguous, so top-level keys are collected during the parse.
  std::set<std::string> seen_keys;
  std::string duplicate;
  const nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                         nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen_keys.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  const nlohmann::json header = nlohmann::json::parse(text, on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) return corrupt_data("header is not valid JSON");
  if (!header.is_object()) return corrupt_data("header is JSON but not an object");
  if (!duplicate.empty()) return corrupt_data("header has duplicate key " + printable_name(duplicate));

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size_ - data_start;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return corrupt_data("__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) return corrupt_data("__metadata__ value " + printable_name(mk) + " is not a string");
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + printable_name(key);
    if (key.empty()) return corrupt_data("tensor with an empty name");
    if (!value.is_object()) return corrupt_data(where + ": entry is not an object");
    const auto dt = value.find("dtype");
    const auto sh = value.find("shape");
    const auto off = value.find("data_offsets");
    if (dt == value.end() || sh == value.end() || off == value.end())
      return corrupt_data(where + ": entry needs dtype, shape and data_offsets");
    if (!dt->is_string()) return corrupt_data(where + ": dtype is not a string");
    const auto dtype = dtype_from_name(dt->get<std::string>());
    if (!dtype) return unsupported(where + ": unknown dtype " + printable_name(dt->get<std::string>()));
    if (!sh->is_array()) return corrupt_data(where + ": shape is not an array");
    if (sh->size() > kMaxDims)
      return corrupt_data(where + ": shape has " + std::to_string(sh->size()) + " dimensions (at most " +
                          std::to_string(kMaxDims) + ")");
    TensorView t;
    t.name = key;
    t.dtype = *dtype;
    uint64_t n_elements = 1;
    for (const auto& d : *sh) {
      const auto dim = json_uint(d);
      if (!dim) return corrupt_data(where + ": shape entries must be non-negative integers");
      if (*dim > static_cast<uint64_t>(INT64_MAX) || mul_overflows(n_elements, *dim, &n_elements) ||
          n_elements > static_cast<uint64_t>(INT64_MAX))
        return corrupt_data(where + ": element count overflows");
      t.shape.push_back(static_cast<int64_t>(*dim));
    }
    uint64_t n_bytes = 0;
    if (mul_overflows(n_elements, dtype_size(*dtype), &n_bytes))
      return corrupt_data(where + ": byte size overflows");
    if (!off->is_array() || off->size() != 2)
      return corrupt_data(where + ": data_offsets must be an array of two integers");
    const auto begin = json_uint((*off)[0]);
    const auto end = json_uint((*off)[1]);
    if (!begin || !end) return corrupt_data(where + ": data_offsets must be non-negative integers");
    if (*begin > *end)
      return corrupt_data(where + ": data_offsets begin " + std::to_string(*begin) + " is after end " +
                          std::to_string(*end));
    if (*end > data_size)
      return corrupt_data(where + ": data_offsets end " + std::to_string(*end) +
                          " is past the data section of " + std::to_string(data_size) + " bytes");
    if (*end - *begin != n_bytes)
      return corrupt_data(where + ": data_offsets cover " + std::to_string(*end - *begin) + " bytes but " +
                          std::string(dtype_name(*dtype)) + " x " + std::to_string(n_elements) +
                          " elements need " + std::to_string(n_bytes));
    t.n_elements = static_cast<int64_t>(n_elements);
    t.n_bytes = n_bytes;
    t.data = base_ + data_start + *begin;
    tensors_.push_back(std::move(t));
  }

  // The byte ranges must tile the data section: no gaps, no overlaps.
  std::vector<const TensorView*> order;
  for (const auto& t : tensors_) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
    return a->data != b->data ? a->data < b->data : a->n_bytes < b->n_bytes;
  });
  uint64_t expected = 0;
  const TensorView* previous = nullptr;
  for (const TensorView* t : order) {
    const uint64_t begin = static_cast<uint64_t>(t->data - (base_ + data_start));
    if (begin < expected)
      return corrupt_data("tensor " + printable_name(t->name) + " overlaps tensor " + printable_name(previous->name));
    if (begin > expected)
      return corrupt_data("unused bytes " + std::to_string(expected) + ".." + std::to_string(begin) +
                          " of the data section before tensor " + printable_name(t->name));
    expected = begin + t->n_bytes;
    previous = t;
  }
  if (expected != data_size)
    return corrupt_data("data section has " + std::to_string(data_size - expected) +
                        " trailing bytes that no tensor uses");
  return Status::Ok();
}

namespace {

// Shard file names from an index must stay inside the checkpoint directory.
bool safe_shard_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name.find('\\') == std::string::npos &&
         name != "." && name != ".." && name.find('\0') == std::string::npos;
}

}  // namespace

Expected<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::open_file(const std::string& path) {
  auto ck = std::make_unique<SafetensorsCheckpoint>();
  FRUGAL_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(path));
  for (const auto& t : f->tensors()) ck->by_name_[t.name] = &t;
  ck->shards_.push_back(std::move(f));
  return ck;
}

Expected<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  std::error_code ec;
  const fs::path index_path = root / "model.safetensors.index.json";
  if (!fs::exists(index_path, ec)) {
    if (fs::exists(root / "model.safetensors", ec)) return open_file((root / "model.safetensors").string());
    // Some checkpoints use another single file name.
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(root, ec))
      if (e.path().extension() == ".safetensors") found.push_back(e.path());
    if (found.size() == 1) return open_file(found[0].string());
    if (found.empty()) return not_found(dir + ": no model.safetensors or model.safetensors.index.json");
    return invalid_argument(dir + ": several .safetensors files and no model.safetensors.index.json");
  }
  const std::string where = index_path.string();
  FRUGAL_ASSIGN_OR_RETURN(std::string text, read_file_to_string(where));
  if (text.size() > kMaxHeaderBytes) return out_of_range(where + ": index file too large");
  const nlohmann::json index = nlohmann::json::parse(text, nullptr, false);
  if (index.is_discarded() || !index.is_object()) return corrupt_data(where + ": not a JSON object");
  const auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) return corrupt_data(where + ": missing weight_map object");

  auto ck = std::make_unique<SafetensorsCheckpoint>();
  std::map<std::string, SafetensorsFile*> shard_by_name;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) return corrupt_data(where + ": weight_map value of " + printable_name(tensor) + " is not a string");
    const std::string shard_name = shard.get<std::string>();
    if (!safe_shard_name(shard_name))
      return corrupt_data(where + ": shard name " + printable_name(shard_name) + " is not a plain file name");
    if (!shard_by_name.count(shard_name)) {
      FRUGAL_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open((root / shard_name).string()));
      shard_by_name[shard_name] = f.get();
      ck->shards_.push_back(std::move(f));
    }
    const TensorView* t = shard_by_name[shard_name]->find(tensor);
    if (t == nullptr)
      return corrupt_data(where + ": tensor " + printable_name(tensor) + " is mapped to " + shard_name +
                          ", which does not contain it");
    ck->by_name_[tensor] = t;
  }
  for (const auto& f : ck->shards_)
    for (const auto& t : f->tensors()) {
      const auto it = ck->by_name_.find(t.name);
      if (it == ck->by_name_.end())
        return corrupt_data(f->path() + ": tensor " + printable_name(t.name) + " is not listed in the index");
      if (it->second != &t)
        return corrupt_data(f->path() + ": tensor " + printable_name(t.name) + " also appears in another shard");
    }
  return ck;
}

const TensorView* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const TensorView*> SafetensorsCheckpoint::tensors() const {
  std::vector<const TensorView*> out;
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

Status read_as_f32(const TensorView& t, int64_t first, int64_t n, float* out) {
  if (first < 0 || n < 0 || first > t.n_elements || n > t.n_elements - first)
    return out_of_range("tensor " + printable_name(t.name) + ": element range outside the tensor");
  const uint8_t* p = t.data + static_cast<uint64_t>(first) * dtype_size(t.dtype);
  switch (t.dtype) {
    case Dtype::kF32:
      std::memcpy(out, p, static_cast<size_t>(n) * 4);
      return Status::Ok();
    case Dtype::kF16:
    case Dtype::kBF16: {
      const bool bf = t.dtype == Dtype::kBF16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
      }
      return Status::Ok();
    }
    default:
      return unsupported("tensor " + printable_name(t.name) + ": dtype " + std::string(dtype_name(t.dtype)) +
                         " is not a supported weight type (F32, F16, BF16)");
  }
}

}  // namespace frugal::st
