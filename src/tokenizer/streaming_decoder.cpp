// Incremental detokenisation that never splits a UTF-8 character.
#include <string>

#include "frugal/tokenizer.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Expected total length of a sequence from its lead byte; 0 if it cannot lead.
size_t lead_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// True when s (shorter than its lead byte announces) can still be completed
// into a valid character by more bytes.
bool is_viable_prefix(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  for (size_t i = 1; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return false;
    if (i == 1) {  // the second byte rules out overlongs and surrogates
      if (b0 == 0xE0 && b < 0xA0) return false;
      if (b0 == 0xED && b > 0x9F) return false;
      if (b0 == 0xF0 && b < 0x90) return false;
      if (b0 == 0xF4 && b > 0x8F) return false;
    }
  }
  return true;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(tokenizer), render_special_(render_special) {}

std::string StreamingDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_to_piece(id, render_special_);
  return take_complete();
}

std::string StreamingDecoder::take_complete() {
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    char32_t cp;
    const size_t n = tok::decode_utf8(pending_, pos, &cp);
    if (n > 0) {
      out.append(pending_, pos, n);
      pos += n;
      continue;
    }
    const size_t want = lead_length(static_cast<unsigned char>(pending_[pos]));
    const std::string_view rest = std::string_view(pending_).substr(pos);
    if (want > rest.size() && is_viable_prefix(rest)) break;  // wait for more bytes
    out += kReplacement;  // a byte that can never become valid
    pos += 1;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out = take_complete();
  if (!pending_.empty()) out += kReplacement;
  pending_.clear();
  return out;
}

}  // namespace frugal
