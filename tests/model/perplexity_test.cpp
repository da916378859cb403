// Perplexity on ../shared/data/valid.txt by the reference protocol
// (docs/REFERENCES.md), and quantization deltas no larger than llama.cpp's on
// the same files (../shared/refs/llamacpp.md: +0.02% / +0.48% / +1.25%).
#include <cstdio>
#include <map>

#include "core/mapped_file.h"
#include "frugal/perplexity.h"
#include "model_test_util.h"

namespace frugal::testing {
namespace {

const PerplexityResult& ppl_of(const std::string& file) {
  static std::map<std::string, PerplexityResult> cache;
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  auto text = read_file_to_string(shared_path("data/valid.txt"));
  EXPECT_TRUE(text.ok());
  auto r = compute_perplexity(cached_model("models/gguf/" + file), *text, {.n_ctx = 512});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  PerplexityResult res = r.ok() ? *r : PerplexityResult{};
  std::printf("%s: ppl_all=%.4f ppl_second_half=%.4f windows=%d\n", file.c_str(), res.ppl_all,
              res.ppl_second_half, res.windows);
  return cache.emplace(file, res).first->second;
}

void expect_delta_at_most(const std::string& file, double llamacpp_delta) {
  const double base = ppl_of("tiny-llama-target-bf16.gguf").ppl_all;
  const double q = ppl_of(file).ppl_all;
  const double delta = (q - base) / base;
  std::printf("%s: delta vs bf16 = %+.3f%% (llama.cpp on the same file: %+.2f%%)\n", file.c_str(),
              delta * 100, llamacpp_delta * 100);
  EXPECT_LE(delta, llamacpp_delta) << file;
}

// One test for all four files: ctest runs each test in its own process, and
// the bf16 run is the baseline of every delta.
TEST(Perplexity, Bf16ReferenceAndQuantizationDeltas) {
  const auto& target = references()["target"];
  const PerplexityResult& r = ppl_of("tiny-llama-target-bf16.gguf");
  EXPECT_EQ(r.windows, target["valid_windows"].get<int>());
  const double ref_all = target["ppl_valid_ctx512_all_positions"].get<double>();
  const double ref_half = target["ppl_valid_ctx512_second_half"].get<double>();
  EXPECT_NEAR(r.ppl_all, ref_all, ref_all * 1e-3);
  EXPECT_NEAR(r.ppl_second_half, ref_half, ref_half * 1e-3);
  expect_delta_at_most("tiny-llama-target-Q8_0.gguf", 0.0002);
  expect_delta_at_most("tiny-llama-target-Q4_K_M.gguf", 0.0048);
  expect_delta_at_most("tiny-llama-target-Q4_0.gguf", 0.0125);
}

}  // namespace
}  // namespace frugal::testing
