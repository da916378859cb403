// libFuzzer target for the GGUF reader. Any input must either be rejected
// with a Status or yield a file whose every view stays inside the input.
// Accepted files are also rewritten with GgufWriter and parsed again: the
// writer must produce something the reader accepts with the same content.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"

namespace {

using frugal::GgufFile;
using frugal::GgufValue;
using frugal::GgufValueType;

// Stops the run with a crash libFuzzer records, for property violations
// that are not memory errors.
[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  __builtin_trap();
}

volatile uint64_t g_sink;  // keeps the reads below from being optimized out

void touch_value(const GgufValue& v) {
  uint64_t acc = v.to_display_string(16).size();
  acc += v.as_int().value_or(0);
  acc += static_cast<uint64_t>(v.as_double().value_or(0.0) != 0.0);
  acc += v.str.size();
  if (!v.str.empty()) acc += static_cast<uint8_t>(v.str.front()) + static_cast<uint8_t>(v.str.back());
  if (v.type == GgufValueType::kArray) {
    // Numeric accessors over every element (cheap: bounded by the input size).
    for (uint64_t i = 0; i < v.count && v.elem_type != GgufValueType::kArray; ++i) {
      acc += static_cast<uint64_t>(v.array_number(i).value_or(0.0) != 0.0);
      acc += static_cast<uint64_t>(v.array_int(i).value_or(0));
    }
    for (std::string_view s : v.strings)
      if (!s.empty()) acc += static_cast<uint8_t>(s.front()) + static_cast<uint8_t>(s.back());
    if (v.elem_type == GgufValueType::kString && v.strings.size() != v.count)
      violation("string array count differs from decoded strings");
  }
  g_sink = g_sink + acc;
}

void touch_file(const GgufFile& f, const uint8_t* data, size_t size) {
  for (const auto& kv : f.metadata()) {
    touch_value(kv.value);
    (void)f.get_string(kv.key);
    (void)f.get_int(kv.key);
    (void)f.get_float(kv.key);
    (void)f.get_bool(kv.key);
    if (f.find(kv.key) == nullptr) violation("key not found by find()");
  }
  uint64_t sum = 0;
  for (const auto& t : f.tensors()) {
    if (t.data < data || t.n_bytes > size || t.data + t.n_bytes > data + size)
      violation("tensor data outside the input");
    for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
    sum += static_cast<uint64_t>(t.n_rows());
    if (f.find_tensor(t.name) == nullptr) violation("tensor not found by find_tensor()");
  }
  g_sink = g_sink + sum;
}

void check_rewrite(const GgufFile& f) {
  frugal::GgufWriter w;
  // Inputs the writer refuses (nested arrays, long names, non-u32 alignment)
  // are legal for the reader but out of scope for the round trip.
  for (const auto& kv : f.metadata())
    if (!w.add_value(kv.key, kv.value).ok()) return;
  for (const auto& t : f.tensors())
    if (!w.add_tensor_ref(t.name, t.dims, t.type, {t.data, static_cast<size_t>(t.n_bytes)}).ok()) return;
  auto bytes = w.write_to_buffer();
  if (!bytes.ok()) return;
  auto g = GgufFile::parse(bytes->data(), bytes->size());
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.status().to_string().c_str());
    violation("the reader rejects the writer's copy of an accepted file");
  }
  const GgufFile& h = **g;
  if (h.metadata().size() != f.metadata().size() || h.tensors().size() != f.tensors().size())
    violation("rewrite changed the counts");
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    const auto& a = f.metadata()[i];
    const auto& b = h.metadata()[i];
    if (a.key != b.key || a.value.type != b.value.type || a.value.str != b.value.str ||
        a.value.count != b.value.count || a.value.strings != b.value.strings ||
        a.value.to_display_string(4) != b.value.to_display_string(4))
      violation("rewrite changed a metadata value");
  }
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = h.tensors()[i];
    if (a.name != b.name || a.dims != b.dims || a.type != b.type || a.n_bytes != b.n_bytes ||
        std::memcmp(a.data, b.data, a.n_bytes) != 0)
      violation("rewrite changed a tensor");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = GgufFile::parse(data, size);
  if (!f.ok()) {
    if (f.status().message().empty()) violation("error without a message");
    return 0;
  }
  touch_file(**f, data, size);
  check_rewrite(**f);
  return 0;
}
