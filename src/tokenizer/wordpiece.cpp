// WordPiece (tokenizer.ggml.model = "bert"), following BERT's BasicTokenizer:
// control characters are dropped, whitespace separates words, CJK ideographs
// and punctuation become words of their own, accents are stripped (NFD without
// nonspacing marks) and everything is lowercased. Each word is then cut
// greedily into the longest vocabulary entries; a word that cannot be cut
// completely becomes the unknown token.
#include <string>
#include <vector>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

// Hugging Face's limit: longer words are not split but become [UNK].
constexpr size_t kMaxCharsPerWord = 100;

bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_bert_punctuation(char32_t cp) {
  if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
                        (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
  return tok::is_punctuation_category(tok::category(cp));
}

bool is_bert_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return tok::is_other_category(tok::category(cp));
}

}  // namespace

void Tokenizer::Impl::encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const {
  // Normalise and split into words; each word is a vector of code points.
  std::vector<std::vector<char32_t>> words(1);
  auto end_word = [&] {
    if (!words.back().empty()) words.emplace_back();
  };
  auto add_normalised = [&](char32_t c) {
    if (is_bert_punctuation(c)) {
      end_word();
      words.back().push_back(c);
      end_word();
    } else {
      words.back().push_back(c);
    }
  };
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp;
    const size_t len = tok::decode_utf8(text, pos, &cp);
    pos += len ? len : 1;
    if (len == 0 || cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;  // invalid bytes too
    if (tok::is_white_space(cp)) {
      end_word();
      continue;
    }
    const bool cjk = is_cjk_ideograph(cp);
    if (cjk) end_word();
    tok::for_each_nfd(cp, [&](char32_t d) {
      if (tok::is_mark_nonspacing(d)) return;
      tok::for_each_lower(d, add_normalised);
    });
    if (cjk) end_word();
  }

  const std::string_view word_start = wordpiece_phantom_space ? "\xE2\x96\x81" : "";
  const std::string_view continuation = wordpiece_phantom_space ? "" : "##";
  std::string word_utf8;
  std::vector<size_t> boundaries;  // byte offset of each character start, plus the end
  std::string candidate;
  for (const auto& word : words) {
    if (word.empty()) continue;
    if (word.size() > kMaxCharsPerWord) {
      if (unk >= 0) out.push_back(unk);
      continue;
    }
    word_utf8.clear();
    boundaries.clear();
    for (char32_t c : word) {
      boundaries.push_back(word_utf8.size());
      tok::append_utf8(word_utf8, c);
    }
    boundaries.push_back(word_utf8.size());

    const size_t first_out = out.size();
    bool complete = true;
    for (size_t start = 0; start + 1 < boundaries.size();) {
      int32_t found = -1;
      size_t found_end = 0;
      for (size_t end = boundaries.size() - 1; end > start; --end) {
        candidate.assign(start == 0 ? word_start : continuation);
        candidate.append(word_utf8, boundaries[start], boundaries[end] - boundaries[start]);
        const int32_t id = find(candidate);
        if (id >= 0) {
          found = id;
          found_end = end;
          break;
        }
      }
      if (found < 0) {
        complete = false;
        break;
      }
      out.push_back(found);
      start = found_end;
    }
    if (!complete) {
      out.resize(first_out);
      if (unk >= 0) out.push_back(unk);
    }
  }
}

}  // namespace frugal
