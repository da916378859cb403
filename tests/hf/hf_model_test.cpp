// Hugging Face directories loaded directly: both shared models against the
// transformers references (greedy ids, top-10 logits), the tokenizer.json
// cases, and the config.json / tokenizer readers on hand-written inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/hf/hf_config.h"
#include "formats/hf/hf_convert.h"
#include "formats/hf/hf_vocab.h"
#include "frugal/gguf.h"
#include "frugal/tokenizer.h"
#include "model/model_test_util.h"
#include "tokenizer/pre_tokenizer.h"

namespace frugal {
namespace {

using testing::shared_path;

nlohmann::json read_json(const std::string& rel) {
  std::ifstream in(shared_path(rel));
  return nlohmann::json::parse(in);
}

void check_prompts(const Model& model, const nlohmann::json& prompts, int32_t eos) {
  int checked = 0;
  for (const auto& p : prompts) {
    const auto prompt_ids = p.at("prompt_ids").get<std::vector<int32_t>>();
    const std::string text = p.at("prompt");
    const bool bos = model.tokenizer().add_bos_default();
    EXPECT_EQ(model.tokenizer().encode(text, {.add_bos = bos}), prompt_ids) << text;
    const auto logits = testing::last_logits(model, prompt_ids);
    const auto ids = p.at("last_logits_top10_ids").get<std::vector<int32_t>>();
    const auto values = p.at("last_logits_top10_values").get<std::vector<float>>();
    EXPECT_EQ(testing::top_k_ids(logits, 10), ids) << text;
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_NEAR(logits[ids[i]], values[i], 2e-3) << text << " rank " << i;
    const auto expected = p.at("greedy_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(testing::greedy(model, prompt_ids, static_cast<int>(expected.size()), eos), expected) << text;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(HfModel, TinyLlamaDirectoryMatchesReferences) {
  const Model& m = testing::cached_model("models/tiny-llama-target");
  EXPECT_EQ(m.info().architecture, "llama");
  EXPECT_EQ(m.info().n_head_kv, 2);
  EXPECT_EQ(m.tokenizer().bos_id(), 1);
  EXPECT_EQ(m.tokenizer().eos_id(), 2);
  ASSERT_TRUE(m.tokenizer().chat_template().has_value());
  check_prompts(m, read_json("refs/references.json").at("target").at("prompts").at("public"), 2);
}

TEST(HfModel, TinyQwen2DirectoryMatchesReferences) {
  const Model& m = testing::cached_model("models/tiny-qwen2-bpe");
  EXPECT_EQ(m.info().architecture, "qwen2");
  EXPECT_EQ(m.tokenizer().kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_FALSE(m.tokenizer().add_bos_default());
  EXPECT_TRUE(m.tokenizer().is_end_of_generation(0));
  EXPECT_TRUE(m.tokenizer().is_end_of_generation(2));
  const auto refs = read_json("refs/references-qwen2.json");
  check_prompts(m, refs.at("prompts").at("public"), refs.at("eot_id").get<int32_t>());
}

TEST(HfModel, TinyQwen2TokenizerReproducesEveryCase) {
  const Model& m = testing::cached_model("models/tiny-qwen2-bpe");
  const auto cases = read_json("refs/references-qwen2.json").at("tokenizer_cases");
  ASSERT_GE(cases.size(), 90u);
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    EXPECT_EQ(m.tokenizer().encode(text, {.add_bos = false}), c.at("ids").get<std::vector<int32_t>>()) << text;
  }
}

TEST(HfModel, ConvertedMetadataFollowsLlamaCppConventions) {
  std::vector<uint8_t> bytes;
  {
    auto b = hf::convert_to_gguf_buffer(shared_path("models/tiny-qwen2-bpe"), {.resolve_pre = tok::find_pre_tokenizer_name});
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    bytes = std::move(b).value();
  }
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(*f->get()->get_string("tokenizer.ggml.model").value(), "gpt2");
  // Llama-3 split regex without ignore_merges: llama.cpp's "dbrx" row.
  EXPECT_EQ(*f->get()->get_string("tokenizer.ggml.pre").value(), "dbrx");
  EXPECT_EQ(*f->get()->get_float("qwen2.rope.freq_base").value(), 1e6);
  EXPECT_NE(f->get()->find_tensor("blk.0.attn_q.bias"), nullptr);
  EXPECT_EQ(f->get()->find_tensor("output.weight"), nullptr) << "tied embeddings";
  EXPECT_EQ(f->get()->find("tokenizer.ggml.merges")->count, 7933u);
  EXPECT_TRUE(f->get()->get_string("tokenizer.chat_template").value().has_value());
}

TEST(HfModel, QkRowsArePermutedLikeTheLlamaCppFile) {
  // The bf16 GGUF in ../shared was made by llama.cpp's converter from the same
  // checkpoint: every tensor must be byte-identical.
  auto b = hf::convert_to_gguf_buffer(shared_path("models/tiny-llama-target"), {.resolve_pre = tok::find_pre_tokenizer_name});
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  auto ours = GgufFile::parse(b->data(), b->size());
  ASSERT_TRUE(ours.ok());
  auto theirs = GgufFile::open(shared_path("models/gguf/tiny-llama-target-bf16.gguf"));
  ASSERT_TRUE(theirs.ok());
  int compared = 0;
  for (const auto& t : (*theirs)->tensors()) {
    const GgufTensorInfo* o = (*ours)->find_tensor(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->dims, t.dims) << t.name;
    EXPECT_EQ(o->type, t.type) << t.name;
    if (o->n_bytes == t.n_bytes && o->type == t.type)
      EXPECT_EQ(std::memcmp(o->data, t.data, t.n_bytes), 0) << t.name;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>((*ours)->tensors().size()));
  for (const char* key : {"llama.block_count", "llama.attention.head_count_kv", "tokenizer.ggml.bos_token_id",
                          "tokenizer.ggml.eos_token_id", "llama.context_length"})
    EXPECT_EQ((*ours)->get_int(key).value(), (*theirs)->get_int(key).value()) << key;
  EXPECT_EQ((*ours)->find("tokenizer.ggml.tokens")->strings, (*theirs)->find("tokenizer.ggml.tokens")->strings);
}

TEST(HfConfig, ReadsBothRopeThetaForms) {
  const std::string base = R"("model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4)";
  auto old_form = hf::parse_config("{" + base + R"(,"rope_theta":500000.0})");
  ASSERT_TRUE(old_form.ok()) << old_form.status().to_string();
  EXPECT_EQ(old_form->rope_theta, 500000.0);
  EXPECT_EQ(old_form->num_key_value_heads, 4);
  EXPECT_EQ(old_form->head_dim, 16);
  auto new_form = hf::parse_config("{" + base + R"(,"rope_parameters":{"rope_theta":250000.0,"rope_type":"default"}})");
  ASSERT_TRUE(new_form.ok());
  EXPECT_EQ(new_form->rope_theta, 250000.0);
  auto llama3 = hf::parse_config("{" + base + R"(,"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,)"
                                 R"("low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})");
  ASSERT_TRUE(llama3.ok()) << llama3.status().to_string();
  EXPECT_EQ(llama3->rope_scaling, hf::RopeScalingType::kLlama3);
  EXPECT_EQ(llama3->rope_factor, 8.0);
  EXPECT_EQ(llama3->rope_original_context, 8192);
  auto mistral = hf::parse_config("{" + base + R"(,"model_type":"mistral","num_key_value_heads":2,"sliding_window":null})");
  ASSERT_TRUE(mistral.ok()) << mistral.status().to_string();
  EXPECT_EQ(mistral->gguf_arch, "llama");
  EXPECT_TRUE(mistral->permute_qk);
  auto qwen3 = hf::parse_config("{" + base + R"(,"model_type":"qwen3","head_dim":32,"tie_word_embeddings":true})");
  ASSERT_TRUE(qwen3.ok());
  EXPECT_EQ(qwen3->gguf_arch, "qwen3");
  EXPECT_FALSE(qwen3->permute_qk);
  EXPECT_EQ(qwen3->head_dim, 32);
  EXPECT_TRUE(qwen3->tie_word_embeddings);
}

TEST(HfConfig, RejectsBadConfigs) {
  const struct {
    const char* json;
    const char* expected;
  } cases[] = {
      {"[]", "not a JSON object"},
      {"{", "not valid JSON"},
      {R"({"model_type":"gpt_neox"})", "model_type 'gpt_neox'"},
      {R"({"model_type":"llama","hidden_size":64})", "missing 'intermediate_size'"},
      {R"({"model_type":"llama","hidden_size":"64","intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":1})", "not an integer"},
      {R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":5})", "multiple of num_attention_heads"},
      {R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3})", "must divide"},
      {R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":4,"rope_theta":-1})", "rope_theta"},
      {R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,"num_attention_heads":4,"rope_scaling":{"rope_type":"llama3","factor":8}})", "original_max_position_embeddings"},
      {R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":-2,"num_attention_heads":4})", "out of range"},
  };
  for (const auto& c : cases) {
    auto r = hf::parse_config(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos) << c.json << ": " << r.status().message();
  }
}

TEST(HfConfig, GenerationAndTokenizerConfig) {
  auto eos = hf::parse_generation_eos(R"({"eos_token_id":[128001,128009]})");
  ASSERT_TRUE(eos.ok());
  EXPECT_EQ(*eos, (std::vector<int64_t>{128001, 128009}));
  auto tc = hf::parse_tokenizer_config(
      R"({"add_bos_token":false,"bos_token":{"content":"<s>"},"eos_token":"</s>","chat_template":[{"name":"tool_use","template":"x"},{"name":"default","template":"y"}]})");
  ASSERT_TRUE(tc.ok());
  EXPECT_EQ(tc->add_bos_token, false);
  EXPECT_EQ(tc->bos_token, "<s>");
  EXPECT_EQ(tc->eos_token, "</s>");
  EXPECT_EQ(tc->chat_template, "y");
}

// A SentencePiece model: pieces <unk>, <s>, ▁a with types and scores, and a
// trainer spec naming bos/eos.
std::vector<uint8_t> tiny_spm() {
  auto piece = [](const std::string& s, float score, int type) {
    std::vector<uint8_t> m = {0x0a, static_cast<uint8_t>(s.size())};
    m.insert(m.end(), s.begin(), s.end());
    m.push_back(0x15);
    uint8_t b[4];
    std::memcpy(b, &score, 4);
    m.insert(m.end(), b, b + 4);
    m.push_back(0x18);
    m.push_back(static_cast<uint8_t>(type));
    return m;
  };
  std::vector<uint8_t> out;
  for (const auto& p : {piece("<unk>", 0, 2), piece("<s>", 0, 3), piece("\xe2\x96\x81" "a", -1.5f, 1)}) {
    out.push_back(0x0a);
    out.push_back(static_cast<uint8_t>(p.size()));
    out.insert(out.end(), p.begin(), p.end());
  }
  // trainer_spec { model_type: BPE (field 3), bos_id: 1 (field 41), eos_id: -1 (field 42) }
  const std::vector<uint8_t> trainer = {0x18, 0x02, 0xc8, 0x02, 0x01, 0xd0, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  out.push_back(0x12);
  out.push_back(static_cast<uint8_t>(trainer.size()));
  out.insert(out.end(), trainer.begin(), trainer.end());
  return out;
}

TEST(SentencePieceModel, ReadsPiecesScoresTypesAndSpecialIds) {
  const auto bytes = tiny_spm();
  auto v = hf::parse_sentencepiece_model(bytes.data(), bytes.size());
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->tokens, (std::vector<std::string>{"<unk>", "<s>", "\xe2\x96\x81" "a"}));
  EXPECT_EQ(v->types, (std::vector<int32_t>{2, 3, 1}));
  EXPECT_EQ(v->scores[2], -1.5f);
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_FALSE(v->eos_id.has_value()) << "eos_id -1 means none";
  EXPECT_EQ(v->unk_id, 0);
}

TEST(SentencePieceModel, TruncationsAndGarbageAreErrors) {
  const auto bytes = tiny_spm();
  for (size_t n = 1; n < bytes.size(); ++n) {
    auto v = hf::parse_sentencepiece_model(bytes.data(), n);
    if (v.ok()) continue;  // some prefixes are complete messages
    EXPECT_FALSE(v.status().message().empty());
  }
  const std::vector<uint8_t> bad_wire = {0x0f, 0x00};
  EXPECT_FALSE(hf::parse_sentencepiece_model(bad_wire.data(), bad_wire.size()).ok());
  const std::vector<uint8_t> long_len = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  auto v = hf::parse_sentencepiece_model(long_len.data(), long_len.size());
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("past the end"), std::string::npos) << v.status().message();
  EXPECT_FALSE(hf::parse_sentencepiece_model(nullptr, 0).ok()) << "no pieces";
}

TEST(TokenizerJson, UnknownPreTokenizerRegexIsNamedInTheError) {
  const std::string tj = R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},
    "pre_tokenizer":{"type":"Split","pattern":{"Regex":"[a-z]+"},"behavior":"Isolated"}})";
  auto v = hf::parse_tokenizer_json(tj, tok::find_pre_tokenizer_name);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("[a-z]+"), std::string::npos) << v.status().message();
  const std::string gpt2 = R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
    "added_tokens":[{"id":3,"content":"<|end|>","special":true}]})";
  auto g = hf::parse_tokenizer_json(gpt2, tok::find_pre_tokenizer_name);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->pre, "gpt-2");
  EXPECT_EQ(g->merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(g->types[3], 3);
}

}  // namespace
}  // namespace frugal
