// Perplexity on ../shared/data/valid.txt.
// 1. The bf16 model by the reference protocol (docs/REFERENCES.md) lands
//    within 0.1% of the transformers figures.
// 2. Quantization deltas (Q8_0 / Q4_K_M / Q4_0 vs bf16) against llama.cpp's
//    on the same files (../shared/refs/llamacpp.md: +0.02% / +0.48% /
//    +1.25%). Those were measured with llama-perplexity's protocol
//    (documents joined by blank lines, BOS replacing each window's first
//    token, second half scored), so the deltas here are measured with the
//    same protocol; the bf16 figure of that protocol is also checked against
//    llama.cpp's 28.1365 to show the protocol is the same.
//
//    Two figures per file, both runs of the engine. (a) With fine
//    activations (ModelOptions::fine_activations: ~15-bit activations in the
//    quantized matmuls, as fp32 activations would give): this must lose no
//    more than llama.cpp's run. (b) The default, activations quantized to
//    8-bit blocks as llama.cpp's CPU kernels also do. The rounding of those
//    activations moves (b) by a few hundredths of a percent at random: two
//    of our kernels that differ only in fp32 summation order gave Q4_0
//    28.4929 and 28.4848 (0.029 points of delta apart). So (b) is held to
//    llama.cpp's delta plus that band; it is a tie, not a win, when it lands
//    inside it.
#include <cstdio>
#include <fstream>
#include <map>

#include "core/mapped_file.h"
#include "frugal/gguf.h"
#include "frugal/perplexity.h"
#include "model_test_util.h"

namespace frugal::testing {
namespace {

std::string valid_text() {
  auto text = read_file_to_string(shared_path("data/valid.txt"));
  EXPECT_TRUE(text.ok());
  return text.ok() ? *text : std::string();
}

std::string joined_by_blank_lines(const std::string& text) {
  std::string out;
  const std::string sep = "\n\x1e\n";
  size_t start = 0;
  for (;;) {
    const size_t end = text.find(sep, start);
    out += text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (end == std::string::npos) break;
    out += "\n\n";
    start = end + sep.size();
  }
  return out;
}

PerplexityResult ppl(const std::string& file, const std::string& text, PerplexityProtocol protocol,
                     bool fine_activations = false) {
  auto model = Model::load(shared_path("models/gguf/" + file), {.fine_activations = fine_activations});
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return {};
  PerplexityOptions options;
  options.protocol = protocol;
  auto r = compute_perplexity(**model, text, options);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  PerplexityResult res = r.ok() ? *r : PerplexityResult{};
  std::printf("%s%s (%s protocol): ppl_all=%.4f ppl_second_half=%.4f windows=%d\n", file.c_str(),
              fine_activations ? " fine activations" : "",
              protocol == PerplexityProtocol::kLlamaCpp ? "llama.cpp" : "reference", res.ppl_all,
              res.ppl_second_half, res.windows);
  return res;
}

TEST(Perplexity, Bf16MatchesTransformersWithin0_1Percent) {
  const auto& target = references()["target"];
  const PerplexityResult r =
      ppl("tiny-llama-target-bf16.gguf", valid_text(), PerplexityProtocol::kReference);
  EXPECT_EQ(r.windows, target["valid_windows"].get<int>());
  const double ref_all = target["ppl_valid_ctx512_all_positions"].get<double>();
  const double ref_half = target["ppl_valid_ctx512_second_half"].get<double>();
  EXPECT_NEAR(r.ppl_all, ref_all, ref_all * 1e-3);
  EXPECT_NEAR(r.ppl_second_half, ref_half, ref_half * 1e-3);
}

TEST(Perplexity, QuantizationDeltasAgainstLlamaCpp) {
  const std::string text = joined_by_blank_lines(valid_text());
  const double base = ppl("tiny-llama-target-bf16.gguf", text, PerplexityProtocol::kLlamaCpp).ppl_all;
  // Same protocol as llama-perplexity: its bf16 figure on this file is 28.1365 (± 0.39).
  EXPECT_NEAR(base, 28.1365, 28.1365 * 0.01);
  // llama.cpp's deltas from its table (bf16 28.1365): Q8_0 28.1430, Q4_K_M 28.2725, Q4_0 28.4894.
  const double llamacpp_bf16 = 28.1365;
  const std::map<std::string, double> llamacpp_delta = {
      {"tiny-llama-target-Q8_0.gguf", 28.1430 / llamacpp_bf16 - 1},
      {"tiny-llama-target-Q4_K_M.gguf", 28.2725 / llamacpp_bf16 - 1},
      {"tiny-llama-target-Q4_0.gguf", 28.4894 / llamacpp_bf16 - 1},
  };
  const double kRoundingBand = 0.0003;
  for (const auto& [file, limit] : llamacpp_delta) {
    const double fine = ppl(file, text, PerplexityProtocol::kLlamaCpp, true).ppl_all;
    const double q = ppl(file, text, PerplexityProtocol::kLlamaCpp).ppl_all;
    const double delta_fine = (fine - base) / base, delta = (q - base) / base;
    std::printf("%s: delta vs bf16 = %+.4f%% with fine activations, %+.4f%% with 8-bit activations "
                "(llama.cpp on the same file: %+.4f%%)\n",
                file.c_str(), delta_fine * 100, delta * 100, limit * 100);
    EXPECT_LE(delta_fine, limit) << file;
    EXPECT_LE(delta, limit + kRoundingBand) << file;
  }
}

}  // namespace
}  // namespace frugal::testing
