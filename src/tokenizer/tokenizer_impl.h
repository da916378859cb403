// Internal state shared by the tokenizer algorithms (not a public header).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "frugal/tokenizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace frugal {

// Hash/equality that let unordered_map<std::string, ...> be searched with a
// string_view without building a std::string per lookup.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Tokenizer::Impl {
  TokenizerKind kind = TokenizerKind::kSentencePiece;
  std::string model_name;  // tokenizer.ggml.model
  std::string pre_name;    // tokenizer.ggml.pre as used

  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id;

  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  int32_t sep = -1;  // WordPiece [SEP]
  int32_t cls = -1;  // WordPiece [CLS]
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SentencePiece dummy prefix
  std::unordered_set<int32_t> end_of_generation;
  std::optional<std::string> chat_template;

  // Special tokens matched in the text, grouped by first byte, longest first.
  std::vector<int32_t> special_by_first_byte[256];

  // SentencePiece: "<0xNN>" token of each byte (-1 if absent).
  int32_t byte_token[256];

  // Byte-level BPE.
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  std::unordered_map<uint64_t, Merge> merges;  // key: (left id << 32) | right id
  bool ignore_merges = false;                  // whole-word vocabulary hit wins (Llama 3)
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;

  // WordPiece: vocabularies converted by llama.cpp mark word starts with "▁"
  // and store continuations bare; Hugging Face ones use "##" continuations.
  bool wordpiece_phantom_space = true;

  int32_t find(std::string_view text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
  TokenType type_of(int32_t id) const { return types[static_cast<size_t>(id)]; }

  // Algorithms over one fragment of plain text (special tokens already cut out).
  void encode_spm(std::string_view text, bool after_special, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const;
};

// Byte-level BPE's reversible byte <-> printable code point mapping.
const std::string& byte_to_unicode_utf8(uint8_t b);
// -1 when cp is not the image of a byte.
int byte_from_unicode(char32_t cp);

}  // namespace frugal
