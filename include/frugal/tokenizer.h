// Tokenizers built from the vocabulary stored in a GGUF file.
//
// tokenizer.ggml.model selects the algorithm:
//   "llama" SentencePiece-style BPE over tokenizer.ggml.scores with byte fallback
//           and the "▁" dummy prefix (Llama 1/2, Mistral v0.1, Phi-3, TinyLlama);
//   "gpt2"  byte-level BPE over tokenizer.ggml.merges, with the pre-tokenizer
//           regexes picked by tokenizer.ggml.pre (GPT-2, Llama 3, Qwen2, ...);
//   "bert"  WordPiece with BERT's basic normalisation (lowercase, accent
//           stripping, punctuation and CJK splitting).
// Special tokens (control and user-defined types) can be recognised in the
// text as whole units. Encoding accepts any bytes, invalid UTF-8 included.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/status.h"

namespace frugal {

class GgufFile;

enum class TokenizerKind {
  kSentencePiece,  // "llama"
  kByteLevelBpe,   // "gpt2"
  kWordPiece,      // "bert"
};

// Values of tokenizer.ggml.token_type (llama.cpp's numbering).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct EncodeOptions {
  // Prepend the begin-of-sequence token (WordPiece: wrap in [CLS] ... [SEP]).
  // nullopt follows tokenizer.ggml.add_bos_token, or the model family's
  // default when that key is absent (llama: true, gpt2: false, bert: true).
  std::optional<bool> add_bos;
  // Recognise control tokens written in the text ("<s>", "<|im_end|>").
  // User-defined tokens are always recognised, as llama.cpp does.
  bool parse_special = false;
  // Append the end-of-sequence token; nullopt follows tokenizer.ggml.add_eos_token.
  std::optional<bool> add_eos;
};

class Tokenizer {
 public:
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& file);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Thread-safe: encode/decode keep no state between calls.
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts = {}) const;

  // The bytes the token contributes to output text: byte-fallback tokens
  // ("<0x0A>") give their byte, "▁" becomes a space, byte-level BPE symbols map
  // back to raw bytes. Control tokens give "" unless render_special is set.
  // Out-of-range ids give "".
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  // Concatenated pieces. For SentencePiece and WordPiece the space that the
  // dummy prefix put in front of the first word is removed, as
  // llama.cpp/Hugging Face do.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const;
  int32_t bos_id() const;  // -1 if none (WordPiece: [CLS])
  int32_t eos_id() const;  // -1 if none (WordPiece: [SEP])
  int32_t unk_id() const;  // -1 if none
  bool add_bos_default() const;
  bool add_eos_default() const;
  // eos, eot/eom ids from the metadata and the usual turn-end tokens
  // (<|im_end|>, <|eot_id|>, <|endoftext|>, <|end|>, <end_of_turn>, ...).
  bool is_end_of_generation(int32_t id) const;
  bool is_control(int32_t id) const;
  TokenType token_type(int32_t id) const;      // kUndefined for out-of-range ids
  std::string_view token_text(int32_t id) const;  // the vocabulary string; "" out of range
  std::optional<int32_t> find_token(std::string_view text) const;

  TokenizerKind kind() const;
  const std::string& pre_tokenizer_name() const;  // tokenizer.ggml.pre as used
  std::optional<std::string> chat_template() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns generated ids into text incrementally. A multi-byte character split
// over several byte-fallback tokens is held back until it is complete, so
// every returned string is valid UTF-8. Pieces are emitted as they are (no
// leading-space removal), which is what a continuation of a prompt needs.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool render_special = false);
  // Text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back; an incomplete tail becomes U+FFFD.
  std::string flush();

 private:
  std::string take_complete();

  const Tokenizer& tokenizer_;
  bool render_special_;
  std::string pending_;
};

}  // namespace frugal
