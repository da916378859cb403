// libFuzzer target for the safetensors reader and the SentencePiece model
// reader. Any input must be rejected with a Status or yield tensors whose
// bytes lie inside the input and tile its data section.
#include <cstdint>
#include <cstdio>

#include "formats/hf/hf_vocab.h"
#include "formats/safetensors/safetensors.h"

namespace {

[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  __builtin_trap();
}

volatile uint64_t g_sink;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = frugal::st::SafetensorsFile::parse(data, size);
  if (!f.ok()) {
    if (f.status().message().empty()) violation("error without a message");
  } else {
    uint64_t total = 0, sum = 0;
    for (const auto& t : (*f)->tensors()) {
      if (t.data < data || t.n_bytes > size || t.data + t.n_bytes > data + size) violation("tensor outside the input");
      for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
      total += t.n_bytes;
      if (frugal::st::is_float_weight_dtype(t.dtype) && t.n_elements > 0) {
        float v;
        if (!frugal::st::read_as_f32(t, t.n_elements - 1, 1, &v).ok()) violation("last element unreadable");
      }
    }
    if (total > size) violation("tensors cover more bytes than the input");
    g_sink = g_sink + sum;
  }
  auto v = frugal::hf::parse_sentencepiece_model(data, size);
  if (v.ok() && (v->tokens.size() != v->scores.size() || v->tokens.size() != v->types.size()))
    violation("piece arrays differ in length");
  return 0;
}
