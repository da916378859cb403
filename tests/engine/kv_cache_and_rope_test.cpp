// Paged KV cache bookkeeping and RoPE frequency tables.
#include <gtest/gtest.h>

#include <cmath>

#include "model/hparams.h"
#include "model/kv_cache.h"

namespace frugal {
namespace {

KvCache make_cache(int blocks) {
  auto c = KvCache::create({.n_layer = 2, .n_head_kv = 2, .head_dim = 8, .block_tokens = 4,
                            .n_blocks = blocks, .max_sequences = 3, .max_context = 32});
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

TEST(KvCache, ReserveAllocatesWholeBlocksAndTruncateFreesThem) {
  KvCache c = make_cache(8);
  ASSERT_TRUE(c.reserve(0, 5).ok());  // 2 blocks
  EXPECT_EQ(c.block_table(0).size(), 2u);
  EXPECT_EQ(c.free_blocks(), 6);
  c.set_length(0, 5);
  c.truncate(0, 4);  // keeps 1 block
  EXPECT_EQ(c.block_table(0).size(), 1u);
  EXPECT_EQ(c.length(0), 4);
  c.clear(0);
  EXPECT_EQ(c.free_blocks(), 8);
}

TEST(KvCache, ExhaustionIsAnErrorAndChangesNothing) {
  KvCache c = make_cache(3);
  ASSERT_TRUE(c.reserve(0, 8).ok());  // 2 blocks
  Status s = c.reserve(1, 8);         // needs 2, 1 free
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);
  EXPECT_TRUE(c.block_table(1).empty());
  EXPECT_EQ(c.free_blocks(), 1);
  EXPECT_FALSE(c.reserve(0, 33).ok());  // past max_context
  EXPECT_FALSE(c.reserve(7, 1).ok());   // bad sequence id
}

TEST(KvCache, SlotsOfDifferentPositionsAndHeadsDoNotAlias) {
  KvCache c = make_cache(4);
  ASSERT_TRUE(c.reserve(0, 8).ok());
  ASSERT_TRUE(c.reserve(1, 8).ok());
  *c.key(1, 0, 5, 1) = 1.0f;
  *c.key(1, 1, 5, 1) = 2.0f;
  *c.value(1, 0, 5, 1) = 3.0f;
  EXPECT_EQ(*c.key(1, 0, 5, 1), 1.0f);
  EXPECT_EQ(*c.key(1, 1, 5, 1), 2.0f);
  EXPECT_EQ(*c.value(1, 0, 5, 1), 3.0f);
  EXPECT_EQ(*c.key(0, 0, 5, 1), 0.0f);
  // key_block + offset addresses the same slot as key().
  const int32_t block = c.block_table(0)[5 / 4];
  EXPECT_EQ(c.key_block(1, block, 1) + (5 % 4) * 8, c.key(1, 0, 5, 1));
}

TEST(Rope, PlainFrequenciesFollowTheta) {
  HParams hp;
  hp.n_rot = 8;
  hp.rope_theta = 10000.0f;
  auto inv = rope_inverse_frequencies(hp);
  ASSERT_EQ(inv.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(inv[i], std::pow(10000.0, -2.0 * i / 8), 1e-7);
}

TEST(Rope, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  HParams hp;
  hp.n_rot = 128;
  hp.rope_theta = 500000.0f;
  hp.rope_scaling = RopeScaling::kLlama3;
  hp.rope_scale_factor = 8.0f;
  hp.rope_llama3_low_freq_factor = 1.0f;
  hp.rope_llama3_high_freq_factor = 4.0f;
  hp.rope_original_ctx = 8192;
  auto scaled = rope_inverse_frequencies(hp);
  hp.rope_scaling = RopeScaling::kNone;
  auto plain = rope_inverse_frequencies(hp);
  EXPECT_FLOAT_EQ(scaled[0], plain[0]);              // wavelength 2*pi: untouched
  EXPECT_NEAR(scaled[63], plain[63] / 8.0f, 1e-12);  // longest wavelength: divided by the factor
  // In between, the blend lies between the two.
  for (int i = 0; i < 64; ++i) {
    EXPECT_LE(scaled[i], plain[i] * (1 + 1e-6));
    EXPECT_GE(scaled[i], plain[i] / 8.0f * (1 - 1e-6));
  }
}

TEST(Rope, FrequencyFactorsFromTheFileDivide) {
  HParams hp;
  hp.n_rot = 4;
  hp.rope_theta = 100.0f;
  hp.rope_freq_factors = {1.0f, 4.0f};
  auto inv = rope_inverse_frequencies(hp);
  EXPECT_NEAR(inv[1], std::pow(100.0, -0.5) / 4.0, 1e-7);
}

TEST(HParams, ValidationNamesTheProblem) {
  HParams hp;
  hp.arch = "llama";
  hp.n_layer = 2;
  hp.n_embd = 64;
  hp.n_ff = 128;
  hp.n_head = 4;
  hp.n_head_kv = 3;
  hp.head_dim = 16;
  hp.n_rot = 16;
  hp.n_vocab = 10;
  hp.n_ctx_train = 32;
  EXPECT_NE(validate_hparams(hp).message().find("head_count_kv"), std::string::npos);
  hp.n_head_kv = 2;
  EXPECT_TRUE(validate_hparams(hp).ok()) << validate_hparams(hp).message();
  hp.n_rot = 18;
  EXPECT_NE(validate_hparams(hp).message().find("rope.dimension_count"), std::string::npos);
}

}  // namespace
}  // namespace frugal
