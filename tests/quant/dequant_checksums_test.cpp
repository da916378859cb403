// Dequantization of real GGUF tensors against checksums computed by an
// independent implementation of the block formats (../shared/refs).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "quant/reference.h"

namespace frugal::quant {
namespace {

const std::string kShared = FRUGAL_SHARED_DIR;

bool rel_close(double got, double want, double rel, double abs_floor = 0.0) {
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_floor;
}

TEST(DequantChecksums, MatchesIndependentImplementation) {
  const std::string refs_path = kShared + "/refs/dequant-checksums.json";
  std::ifstream in(refs_path);
  ASSERT_TRUE(in) << "missing " << refs_path;
  const nlohmann::json refs = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& [file, types] : refs.at("files").items()) {
    const std::string path = kShared + "/models/gguf/" + file;
    auto gguf = GgufFile::open(path);
    ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
    for (const auto& [type_name, e] : types.items()) {
      SCOPED_TRACE(file + " " + type_name);
      const std::string tensor = e.at("tensor");
      const GgufTensorInfo* t = (*gguf)->find_tensor(tensor);
      ASSERT_NE(t, nullptr) << tensor;
      EXPECT_EQ(tensor_type_name(t->type), type_name);
      const int64_t n = e.at("n");
      ASSERT_EQ(t->n_elements, n);
      ASSERT_EQ(row_size(t->type, n), t->n_bytes);
      std::vector<float> out(static_cast<size_t>(n));
      ASSERT_TRUE(dequantize_row(t->type, t->data, out.data(), n).ok());
      const auto& first16 = e.at("first16");
      for (size_t i = 0; i < first16.size(); ++i) {
        const double want = first16[i];
        EXPECT_TRUE(rel_close(out[i], want, 1e-6, 1e-9)) << "element " << i << ": " << out[i]
                                                         << " vs " << want;
      }
      double sum = 0, sum_sq = 0, max_abs = 0;
      for (float v : out) {
        sum += v;
        sum_sq += static_cast<double>(v) * v;
        max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
      }
      // sum can cancel to a small number; scale its tolerance by sqrt(sum_sq).
      const double want_sum = e.at("sum"), want_sq = e.at("sum_sq"), want_max = e.at("max_abs");
      EXPECT_TRUE(rel_close(sum, want_sum, 1e-5, 1e-7 * std::sqrt(want_sq * n))) << sum << " vs " << want_sum;
      EXPECT_TRUE(rel_close(sum_sq, want_sq, 1e-5)) << sum_sq << " vs " << want_sq;
      EXPECT_TRUE(rel_close(max_abs, want_max, 1e-6)) << max_abs << " vs " << want_max;
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

TEST(Dequant, RejectsPartialBlocks) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(512);
  EXPECT_FALSE(dequantize_row(TensorType::kQ4_0, buf.data(), out.data(), 33).ok());
  EXPECT_FALSE(dequantize_row(TensorType::kQ4_K, buf.data(), out.data(), 128).ok());
  EXPECT_FALSE(dequantize_row(TensorType::kQ2_K, buf.data(), out.data(), 256).ok());
  EXPECT_TRUE(dequantize_row(TensorType::kQ6_K, buf.data(), out.data(), 256).ok());
  EXPECT_EQ(row_size(TensorType::kQ4_K, 512), 288u);
  EXPECT_EQ(row_size(TensorType::kQ4_K, 500), 0u);
  EXPECT_EQ(row_size(TensorType::kBF16, 7), 14u);
}

}  // namespace
}  // namespace frugal::quant
