// Files that are valid GGUF but wrong for their architecture. The reader
// accepts them; the model loader must refuse them with a message naming the
// offending tensor or key, and `frugal run` must exit cleanly (no crash, no
// sanitizer report). Each file is the tiny llama draft model copied through
// GgufWriter with exactly one change.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "gguf_test_util.h"

namespace frugal {
namespace {

const std::string kDraft = std::string(FRUGAL_SHARED_DIR) + "/models/gguf/tiny-llama-draft-bf16.gguf";

// Describes one change to the copy: keys to drop or replace, tensors to drop
// or reshape. Replacements are added after the copied metadata.
struct Edit {
  std::vector<std::string> drop_keys;
  std::function<Status(GgufWriter&)> add_keys;
  std::vector<std::string> drop_tensors;
  // Called for each tensor; returning true means "handled here, do not copy".
  std::function<bool(const GgufTensorInfo&, GgufWriter&)> tensor_hook;
};

class GgufModelShape : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto f = GgufFile::open(kDraft);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    draft_ = std::move(f).value().release();
  }
  static void TearDownTestSuite() {
    delete draft_;
    draft_ = nullptr;
  }

  // Writes the edited copy to `path`.
  static void write_copy(const std::string& path, const Edit& e) {
    ASSERT_NE(draft_, nullptr);
    GgufWriter w;
    auto dropped = [](const std::vector<std::string>& list, const std::string& x) {
      for (const auto& s : list)
        if (s == x) return true;
      return false;
    };
    for (const auto& kv : draft_->metadata()) {
      if (dropped(e.drop_keys, kv.key)) continue;
      ASSERT_TRUE(w.add_value(kv.key, kv.value).ok()) << kv.key;
    }
    if (e.add_keys) {
      ASSERT_TRUE(e.add_keys(w).ok());
    }
    for (const auto& t : draft_->tensors()) {
      if (dropped(e.drop_tensors, t.name)) continue;
      if (e.tensor_hook && e.tensor_hook(t, w)) continue;
      ASSERT_TRUE(w.add_tensor_ref(t.name, t.dims, t.type, {t.data, t.n_bytes}).ok()) << t.name;
    }
    Status s = w.write_to_file(path);
    ASSERT_TRUE(s.ok()) << s.to_string();
    // The edit must still be a well-formed GGUF file: only the loader can object.
    auto reread = GgufFile::open(path);
    ASSERT_TRUE(reread.ok()) << reread.status().to_string();
  }

  // Runs `frugal run -m FILE -p hi -n 1` on the edited copy and checks the
  // loader's refusal names `needle`.
  static void expect_refused(const std::string& tag, const Edit& e, const std::string& needle) {
    testing::ScratchDir dir("shape-" + tag);
    const std::string path = dir.file(tag + ".gguf");
    write_copy(path, e);
    if (::testing::Test::HasFatalFailure()) return;
    auto r = testing::run_cli({"run", "-m", path, "-p", "hi", "-n", "1"}, dir, tag);
    ASSERT_TRUE(r.started) << "could not start " << FRUGAL_CLI;
    EXPECT_FALSE(r.timed_out);
    EXPECT_FALSE(r.signaled) << "killed by signal " << r.signal << "\n" << r.err;
    EXPECT_TRUE(r.exited);
    EXPECT_NE(r.exit_code, 0) << "the loader accepted the file; stdout:\n" << r.out;
    EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "want '" << needle << "' in: " << r.err;
    EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << r.err;
  }

  static GgufFile* draft_;
};
GgufFile* GgufModelShape::draft_ = nullptr;

// Half of a tensor's rows, declared with the matching smaller shape.
bool halve_rows(const GgufTensorInfo& t, const std::string& name, GgufWriter& w) {
  if (t.name != name) return false;
  std::vector<int64_t> dims = t.dims;
  dims.back() /= 2;
  const uint64_t bytes = t.n_bytes / 2;
  EXPECT_TRUE(w.add_tensor_ref(t.name, dims, t.type, {t.data, bytes}).ok()) << t.name;
  return true;
}

// The unmodified copy runs: the failures below come from the one change.
TEST_F(GgufModelShape, UnmodifiedCopyRuns) {
  testing::ScratchDir dir("shape-control");
  const std::string path = dir.file("copy.gguf");
  write_copy(path, Edit{});
  if (HasFatalFailure()) return;
  auto r = testing::run_cli({"run", "-m", path, "-p", "hi", "-n", "1"}, dir, "control");
  ASSERT_TRUE(r.started);
  EXPECT_FALSE(r.signaled) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(GgufModelShape, AttnQWrongShape) {
  Edit e;
  e.tensor_hook = [](const GgufTensorInfo& t, GgufWriter& w) { return halve_rows(t, "blk.0.attn_q.weight", w); };
  expect_refused("attn_q", e, "blk.0.attn_q.weight");
}

TEST_F(GgufModelShape, TokenEmbeddingWrongVocab) {
  Edit e;
  e.tensor_hook = [](const GgufTensorInfo& t, GgufWriter& w) { return halve_rows(t, "token_embd.weight", w); };
  expect_refused("token_embd", e, "token_embd.weight");
}

TEST_F(GgufModelShape, OutputNormWrongLength) {
  Edit e;
  e.tensor_hook = [](const GgufTensorInfo& t, GgufWriter& w) { return halve_rows(t, "output_norm.weight", w); };
  expect_refused("output_norm", e, "output_norm.weight");
}

TEST_F(GgufModelShape, MissingTensor) {
  Edit e;
  e.drop_tensors = {"blk.1.ffn_down.weight"};
  expect_refused("missing_tensor", e, "blk.1.ffn_down.weight");
}

TEST_F(GgufModelShape, BlockCountBeyondTensors) {
  Edit e;
  e.drop_keys = {"llama.block_count"};
  e.add_keys = [](GgufWriter& w) { return w.add_u32("llama.block_count", 3); };
  expect_refused("block_count_3", e, "blk.2.");
}

TEST_F(GgufModelShape, MissingBlockCount) {
  Edit e;
  e.drop_keys = {"llama.block_count"};
  expect_refused("no_block_count", e, "llama.block_count");
}

TEST_F(GgufModelShape, EmbeddingLengthWrongType) {
  Edit e;
  e.drop_keys = {"llama.embedding_length"};
  e.add_keys = [](GgufWriter& w) { return w.add_string("llama.embedding_length", "128"); };
  expect_refused("embd_string", e, "llama.embedding_length");
}

// 128 / 5 heads: without attention.key_length the head size is not an integer.
TEST_F(GgufModelShape, HeadCountNotDividingEmbedding5) {
  Edit e;
  e.drop_keys = {"llama.attention.head_count", "llama.attention.head_count_kv",
                 "llama.attention.key_length", "llama.attention.value_length",
                 "llama.rope.dimension_count"};
  e.add_keys = [](GgufWriter& w) {
    FRUGAL_RETURN_IF_ERROR(w.add_u32("llama.attention.head_count", 5));
    return w.add_u32("llama.attention.head_count_kv", 1);
  };
  expect_refused("heads_5", e, "head_count");
}

// 128 / 3 heads truncates to an even 42: the loader must still name the key
// rather than only the q/k/v shapes that disagree with it.
TEST_F(GgufModelShape, HeadCountNotDividingEmbedding3) {
  Edit e;
  e.drop_keys = {"llama.attention.head_count", "llama.attention.head_count_kv",
                 "llama.attention.key_length", "llama.attention.value_length",
                 "llama.rope.dimension_count"};
  e.add_keys = [](GgufWriter& w) {
    FRUGAL_RETURN_IF_ERROR(w.add_u32("llama.attention.head_count", 3));
    return w.add_u32("llama.attention.head_count_kv", 1);
  };
  expect_refused("heads_3", e, "head_count");
}

TEST_F(GgufModelShape, UnknownArchitecture) {
  Edit e;
  e.drop_keys = {"general.architecture"};
  e.add_keys = [](GgufWriter& w) { return w.add_string("general.architecture", "gpt9"); };
  expect_refused("arch", e, "gpt9");
}

}  // namespace
}  // namespace frugal
