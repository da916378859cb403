// Writes the seed corpus for fuzz_gguf into the directory given as argv[1]:
// small valid GGUF files covering every value type, arrays of strings, and
// tensors of plain and block-quantized types at several alignments.
#include <cstdio>
#include <string>
#include <vector>

#include "frugal/gguf_writer.h"

using frugal::GgufWriter;
using frugal::Status;
using frugal::TensorType;

namespace {

std::vector<uint8_t> bytes_of(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + 7);
  return v;
}

bool emit(const std::string& dir, const std::string& name, const GgufWriter& w) {
  Status s = w.write_to_file(dir + "/" + name + ".gguf");
  if (!s.ok()) std::fprintf(stderr, "%s: %s\n", name.c_str(), s.to_string().c_str());
  return s.ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  {
    GgufWriter w;
    ok &= emit(dir, "empty", w);
  }
  {
    GgufWriter w;
    ok &= w.add_u8("s.u8", 200).ok() && w.add_i8("s.i8", -3).ok() && w.add_u16("s.u16", 9).ok() &&
          w.add_i16("s.i16", -9).ok() && w.add_u32("s.u32", 70000).ok() && w.add_i32("s.i32", -70000).ok() &&
          w.add_u64("s.u64", 1ull << 40).ok() && w.add_i64("s.i64", -(1ll << 40)).ok() &&
          w.add_f32("s.f32", 0.5f).ok() && w.add_f64("s.f64", 1e100).ok() && w.add_bool("s.bool", true).ok() &&
          w.add_string("s.str", "text \xe2\x96\x81").ok();
    ok &= emit(dir, "scalars", w);
  }
  {
    GgufWriter w;
    const std::vector<std::string> toks{"<unk>", "<s>", "</s>", "\xe2\x96\x81the", "a"};
    const std::vector<float> scores{0, 0, 0, -1.5f, -2.5f};
    const std::vector<int32_t> types{2, 3, 3, 1, 1};
    const bool flags[] = {true, false};
    const std::vector<uint64_t> big{1, 1ull << 63};
    ok &= w.add_string("general.architecture", "llama").ok() &&
          w.add_array_string("tokenizer.ggml.tokens", toks).ok() &&
          w.add_array_f32("tokenizer.ggml.scores", scores).ok() &&
          w.add_array_i32("tokenizer.ggml.token_type", types).ok() && w.add_array_bool("a.bool", flags).ok() &&
          w.add_array_u64("a.u64", big).ok();
    ok &= emit(dir, "arrays", w);
  }
  for (uint32_t align : {1u, 32u, 64u}) {
    GgufWriter w;
    const std::vector<int64_t> d_f32{4, 2}, d_q8{32}, d_q4k{256}, d_bf16{3, 1, 2};
    ok &= w.set_alignment(align).ok() && w.add_u32("llama.block_count", 1).ok() &&
          w.add_tensor("a.weight", d_f32, TensorType::kF32, bytes_of(32)).ok() &&
          w.add_tensor("b.q8", d_q8, TensorType::kQ8_0, bytes_of(34)).ok() &&
          w.add_tensor("c.q4k", d_q4k, TensorType::kQ4_K, bytes_of(144)).ok() &&
          w.add_tensor("d.bf16", d_bf16, TensorType::kBF16, bytes_of(12)).ok();
    ok &= emit(dir, "tensors_align" + std::to_string(align), w);
  }
  return ok ? 0 : 1;
}
