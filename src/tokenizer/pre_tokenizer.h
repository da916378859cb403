// Regex pre-tokenizers for byte-level BPE, described as data: each row of the
// table in pre_tokenizer.cpp lists, for one tokenizer.ggml.pre value, the
// regexes published in that model's tokenizer.json. They run with PCRE2 in
// UTF + UCP mode (JIT-compiled when available).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frugal/status.h"

namespace frugal::tok {

struct PreTokenizerSpec {
  std::vector<std::string_view> names;  // tokenizer.ggml.pre values that select this row
  std::vector<std::string_view> regexes;
  bool ignore_merges = false;  // whole word found in the vocabulary is taken as is
};

const std::vector<PreTokenizerSpec>& pre_tokenizer_table();
const PreTokenizerSpec* find_pre_tokenizer(std::string_view name);
// The tokenizer.ggml.pre name of the row whose regexes are exactly `regexes`
// (in order), preferring a row with the same ignore_merges; nullopt if none.
// Used to name the pre-tokenizer of a Hugging Face tokenizer.json.
std::optional<std::string> find_pre_tokenizer_name(const std::vector<std::string>& regexes, bool ignore_merges);

class PreTokenizer {
 public:
  static Expected<std::unique_ptr<PreTokenizer>> create(const PreTokenizerSpec& spec);
  ~PreTokenizer();

  // Splits text into pieces (offset, length). The regexes are applied one
  // after another: each splits every piece left by the previous one into its
  // matches and the unmatched stretches between them, so no byte is lost.
  // Invalid UTF-8 never matches and ends up in the unmatched stretches.
  std::vector<std::pair<size_t, size_t>> split(std::string_view text) const;

 private:
  PreTokenizer() = default;
  struct Compiled;
  std::vector<Compiled*> regexes_;
};

}  // namespace frugal::tok
