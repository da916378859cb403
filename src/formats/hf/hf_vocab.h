// Tokenizer vocabularies of Hugging Face directories, turned into the data
// the GGUF tokenizer keys hold (tokenizer.ggml.model/pre/tokens/scores/
// token_type/merges):
//   - tokenizer.json with a byte-level BPE model -> "gpt2" with merges; the
//     pre-tokenizer name comes from matching the split regexes against the
//     engine's table (the resolver below);
//   - tokenizer.json with a SentencePiece-style BPE (Metaspace, byte
//     fallback) -> "llama" with scores derived from the merge ranks;
//   - tokenizer.model (SentencePiece protobuf) -> "llama" with the model's
//     scores and piece types.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "frugal/status.h"

namespace frugal::hf {

// Returns the tokenizer.ggml.pre name whose regexes equal `regexes` (applied
// in order), preferring a row with the same ignore_merges setting.
using PreTokenizerResolver =
    std::function<std::optional<std::string>(const std::vector<std::string>& regexes, bool ignore_merges)>;

struct HfVocab {
  std::string model;  // "llama" or "gpt2"
  std::string pre;    // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<float> scores;    // "llama" only
  std::vector<int32_t> types;   // TokenType numbering (1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte)
  std::vector<std::string> merges;  // "gpt2" only: "left right"
  std::optional<bool> add_space_prefix;
  // Ids the tokenizer file itself declares (SentencePiece trainer spec).
  std::optional<int64_t> unk_id, bos_id, eos_id, pad_id;

  std::optional<int64_t> find(const std::string& token) const;
  // Pads the vocabulary to n entries with "[PAD<i>]" unused tokens (the
  // embedding matrix may have more rows than the tokenizer has tokens).
  void pad_to(size_t n);
};

Expected<HfVocab> parse_tokenizer_json(const std::string& json_text, const PreTokenizerResolver& resolve_pre);
Expected<HfVocab> parse_sentencepiece_model(const uint8_t* data, size_t size);

}  // namespace frugal::hf
