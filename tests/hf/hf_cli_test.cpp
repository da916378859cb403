// The conversion and quantization commands end to end, through the CLI:
// convert -> run gives the directory's greedy ids; our quantized files lose
// no more perplexity than llama.cpp's on the same windows; calibration
// statistics are saved and reused and cut the 4-bit perplexity delta;
// compare prints the quality report.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>

#include "cli/cli_test_util.h"

namespace frugal {
namespace {

using testing::run_cli;

std::string shared(const std::string& rel) { return std::string(FRUGAL_SHARED_DIR) + "/" + rel; }

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("frugal-hfcli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& n) const { return (path_ / n).string(); }

 private:
  std::filesystem::path path_;
};

const TempDir& temp() {
  static TempDir d;
  return d;
}

std::string greedy_ids(const std::string& model, const std::string& prompt) {
  const auto r = run_cli({"run", "-m", model, "-p", prompt, "-n", "24", "--temp", "0", "--output", "ids", "-t", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

TEST(HfCli, ConvertThenRunGivesTheDirectorysGreedyIds) {
  for (const char* name : {"tiny-llama-target", "tiny-qwen2-bpe"}) {
    const std::string dir = shared(std::string("models/") + name);
    for (const char* type : {"auto", "f32", "q8_0"}) {
      const std::string out = temp().file(std::string(name) + "-" + type + ".gguf");
      const auto r = run_cli({"convert", dir, "-o", out, "--type", type});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      if (std::string(type) == "q8_0") {
        // Quantized weights may diverge after a near-tie; the file must load and run.
        EXPECT_FALSE(greedy_ids(out, "Once upon a time").empty());
        continue;
      }
      for (const char* prompt : {"Once upon a time", "def main():"}) {
        const std::string expected = greedy_ids(dir, prompt);
        EXPECT_FALSE(expected.empty());
        EXPECT_EQ(greedy_ids(out, prompt), expected) << name << " " << type << " '" << prompt << "'";
      }
    }
  }
}

TEST(HfCli, ConvertRejectsBadInput) {
  auto r = run_cli({"convert", shared("models/gguf"), "-o", temp().file("x.gguf")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  r = run_cli({"convert", shared("models/tiny-llama-target"), "-o", temp().file("x.gguf"), "--type", "q4_0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.signaled);
  r = run_cli({"quantize", shared("models/tiny-llama-target"), temp().file("x.gguf"), "Q3_XX"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown type"), std::string::npos) << r.err;
}

// Same windows for every file: the first kWindows of valid.txt.
constexpr int kWindows = 12;

double perplexity(const std::string& model) {
  const auto r = run_cli({"perplexity", "-q", "-m", model, "-f", shared("data/valid.txt"), "--max-windows",
                          std::to_string(kWindows), "-t", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  const std::regex re("ppl_all=([0-9.]+)");
  if (!std::regex_search(r.out, m, re)) {
    ADD_FAILURE() << "no ppl in: " << r.out;
    return NAN;
  }
  return std::stod(m[1]);
}

double baseline_ppl() {
  static const double ppl = perplexity(shared("models/gguf/tiny-llama-target-bf16.gguf"));
  return ppl;
}

std::string quantize(const std::string& type, const std::vector<std::string>& extra = {}) {
  const std::string out = temp().file("tiny-" + type + (extra.empty() ? "" : "-x") + ".gguf");
  std::vector<std::string> args = {"quantize", "-q", shared("models/tiny-llama-target"), out, type, "-t", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

TEST(HfCli, OurQuantizationLosesNoMoreThanLlamaCpps) {
  const double base = baseline_ppl();
  for (const char* type : {"Q8_0", "Q4_K_M", "Q4_0"}) {
    const double ours = perplexity(quantize(type));
    const double theirs = perplexity(shared(std::string("models/gguf/tiny-llama-target-") + type + ".gguf"));
    const double d_ours = (ours - base) / base, d_theirs = (theirs - base) / base;
    std::printf("[ quality  ] %s: bf16 %.4f, ours %.4f (%+.3f%%), llama.cpp %.4f (%+.3f%%)\n", type, base, ours,
                100 * d_ours, theirs, 100 * d_theirs);
    EXPECT_LE(d_ours, std::max(d_theirs, 0.0) + 1e-4) << type;
  }
}

TEST(HfCli, MixesFollowLlamaCppForThe384WideTarget) {
  auto r = run_cli({"inspect", quantize("Q4_K_M")});
  ASSERT_EQ(r.exit_code, 0);
  // 384-wide rows fall back from Q4_K to Q5_0; 1024-wide ffn_down stays Q4_K, two layers get Q6_K.
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  std::map<std::string, int> count;
  for (const char* t : {"Q5_0", "Q4_K", "Q6_K", "Q8_0"}) {
    size_t pos = 0;
    const std::string needle = std::string(" ") + t + " ";
    while ((pos = r.out.find(needle, pos)) != std::string::npos) ++count[t], ++pos;
  }
  EXPECT_EQ(count["Q4_K"], 4);
  EXPECT_EQ(count["Q6_K"], 2);
  EXPECT_EQ(count["Q8_0"], 3) << "token_embd (tied output) and attn_v of two layers";
  r = run_cli({"inspect", quantize("Q4_0", {"--keep-output"})});
  EXPECT_TRUE(std::regex_search(r.out, std::regex("token_embd\\.weight +BF16"))) << r.out.substr(0, 2000);
}

TEST(HfCli, CalibrationStatisticsAreSavedAndReused) {
  // Calibration text: the start of the training set (disjoint from valid.txt).
  const std::string calib = temp().file("calib.txt");
  ASSERT_EQ(std::system(("xz -dc " + shared("data/train.txt.xz") + " | head -c 120000 > " + calib).c_str()), 0);
  const std::string stats = temp().file("stats.gguf");
  const std::string a = quantize("Q4_0", {"--calib", calib, "--calib-tokens", "4096", "--stats", stats});
  ASSERT_TRUE(std::filesystem::exists(stats));
  auto r = run_cli({"inspect", stats});
  EXPECT_NE(r.out.find("blk.5.ffn_down_in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blk.5.ffn_down_in_cov"), std::string::npos) << r.out;
  // Re-quantizing from the saved statistics gives the same file without a calibration run.
  const std::string b = temp().file("from-stats.gguf");
  r = run_cli({"quantize", "-q", shared("models/tiny-llama-target"), b, "Q4_0", "--stats", stats, "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::slurp(a), testing::slurp(b));
  // The calibrated file is a standard GGUF that loads and stays close to bf16.
  const double ppl = perplexity(a);
  EXPECT_LT((ppl - baseline_ppl()) / baseline_ppl(), 0.02);
  r = run_cli({"quantize", "-q", shared("models/tiny-llama-target"), b, "Q4_0", "--stats", shared("models/gguf/tiny-llama-target-Q4_0.gguf")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a frugal activation statistics file"), std::string::npos) << r.err;
}

// Perplexity over all of valid.txt with ~15-bit activations, so the deltas
// are the weights' own loss, not 8-bit activation rounding noise.
double full_perplexity(const std::string& model) {
  const auto r = run_cli({"perplexity", "-q", "-m", model, "-f", shared("data/valid.txt"), "--fine-activations", "-t", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  if (!std::regex_search(r.out, m, std::regex("ppl_all=([0-9.]+) .*windows=([0-9]+)"))) {
    ADD_FAILURE() << "no ppl in: " << r.out;
    return NAN;
  }
  EXPECT_GT(std::stoi(m[2]), 200) << "all of valid.txt";
  return std::stod(m[1]);
}

TEST(HfCli, CalibrationCutsTheQ4_0PerplexityDeltaByAtLeast30Percent) {
  // Calibration text: the start of the training set. It must share no
  // document with valid.txt: no 200-byte span from the start or the middle
  // of a valid document appears in it (single lines may: boilerplate such as
  // rulers recurs across documents).
  const std::string calib = temp().file("calib-large.txt");
  ASSERT_EQ(std::system(("xz -dc " + shared("data/train.txt.xz") + " | head -c 400000 > " + calib).c_str()), 0);
  const std::string calib_text = testing::slurp(calib), valid = testing::slurp(shared("data/valid.txt"));
  int checked = 0;
  for (size_t pos = 0; pos < valid.size();) {
    const size_t end = std::min(valid.find("\n\x1e\n", pos), valid.size());
    if (end - pos >= 400) {
      ++checked;
      for (size_t at : {pos, pos + (end - pos) / 2})
        EXPECT_EQ(calib_text.find(valid.substr(at, 200)), std::string::npos) << valid.substr(at, 80);
    }
    pos = end + 3;
  }
  EXPECT_GT(checked, 100);

  const double base = full_perplexity(shared("models/gguf/tiny-llama-target-bf16.gguf"));
  const double plain = full_perplexity(quantize("Q4_0"));
  const double calibrated = full_perplexity(quantize("Q4_0", {"--calib", calib, "--stats", temp().file("large.stats.gguf")}));
  const double d_plain = (plain - base) / base, d_cal = (calibrated - base) / base;
  std::printf("[ quality  ] Q4_0 on valid.txt: bf16 %.4f, uncalibrated %.4f (%+.3f%%), calibrated %.4f (%+.3f%%): "
              "delta %.1f%% smaller\n", base, plain, 100 * d_plain, calibrated, 100 * d_cal,
              100 * (1 - d_cal / d_plain));
  EXPECT_GT(d_plain, 0.0);
  EXPECT_LE(d_cal, 0.7 * d_plain);
}

TEST(HfCli, CompareReportsSizeAndDivergence) {
  const auto r = run_cli({"compare", shared("models/gguf/tiny-llama-target-bf16.gguf"),
                          shared("models/gguf/tiny-llama-target-Q4_0.gguf"), "-f", shared("data/valid.txt"),
                          "--max-windows", "2", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  const std::regex re("delta_ppl_pct=([-0-9.]+) kl_mean=([0-9.]+) kl_p99=([0-9.]+) top1_agreement=([0-9.]+)");
  ASSERT_TRUE(std::regex_search(r.out, m, re)) << r.out;
  EXPECT_GT(std::stod(m[1]), 0.0);
  EXPECT_GT(std::stod(m[2]), 0.0);
  EXPECT_GE(std::stod(m[3]), std::stod(m[2]));
  EXPECT_GT(std::stod(m[4]), 0.8);
  EXPECT_LT(std::stod(m[4]), 1.0);
  EXPECT_NE(r.out.find("bpw"), std::string::npos);
}

}  // namespace
}  // namespace frugal
