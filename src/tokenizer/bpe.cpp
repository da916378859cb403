// Byte-level BPE (tokenizer.ggml.model = "gpt2"): the text is split by the
// pre-tokenizer regexes, each piece's bytes are mapped to printable code
// points (GPT-2's bytes_to_unicode), and the merges of
// tokenizer.ggml.merges are applied lowest rank first.
#include <array>
#include <queue>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

struct ByteMap {
  std::array<std::string, 256> utf8;
  std::array<char32_t, 256> cp;
  ByteMap() {
    // Printable Latin-1 bytes map to themselves; the rest are moved to 256+.
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      cp[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      tok::append_utf8(utf8[b], cp[b]);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

struct Symbol {
  int32_t id;  // -1: a character with no token of its own
  uint32_t begin;
  uint32_t length;
  int32_t prev;
  int32_t next;
};

struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t left_id;
  int32_t right_id;
  int32_t result;
  bool operator<(const Candidate& o) const {  // max-heap: lowest rank, then leftmost
    if (rank != o.rank) return rank > o.rank;
    return left > o.left;
  }
};

}  // namespace

const std::string& byte_to_unicode_utf8(uint8_t b) { return byte_map().utf8[b]; }

int byte_from_unicode(char32_t cp) {
  if (cp < 256) {
    const bool printable = (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE);
    return printable ? static_cast<int>(cp) : -1;
  }
  const auto& m = byte_map();
  if (cp >= 256 + 68) return -1;  // 68 bytes are remapped
  for (int b = 0; b < 256; ++b)
    if (m.cp[b] == cp) return b;
  return -1;
}

void Tokenizer::Impl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  const ByteMap& bm = byte_map();
  std::string word;
  std::vector<Symbol> symbols;
  std::priority_queue<Candidate> queue;

  for (const auto& [begin, length] : pre_tokenizer->split(text)) {
    word.clear();
    for (size_t i = begin; i < begin + length; ++i) word += bm.utf8[static_cast<uint8_t>(text[i])];

    if (ignore_merges) {
      const int32_t whole = find(word);
      if (whole >= 0) {
        out.push_back(whole);
        continue;
      }
    }

    symbols.clear();
    for (size_t pos = 0; pos < word.size();) {
      const size_t len = tok::utf8_step(word, pos);
      const int32_t index = static_cast<int32_t>(symbols.size());
      symbols.push_back({find(std::string_view(word).substr(pos, len)), static_cast<uint32_t>(pos),
                         static_cast<uint32_t>(len), index - 1, index + 1});
      pos += len;
    }
    if (symbols.empty()) continue;
    symbols.back().next = -1;

    auto try_pair = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const int32_t a = symbols[left].id, b = symbols[right].id;
      if (a < 0 || b < 0) return;
      auto it = merges.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
      if (it == merges.end()) return;
      queue.push({it->second.rank, left, a, b, it->second.result});
    };
    for (size_t i = 1; i < symbols.size(); ++i)
      try_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& left = symbols[c.left];
      if (left.length == 0 || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      // Skip pairs invalidated by an earlier merge of either side.
      if (left.id != c.left_id || right.id != c.right_id || right.length == 0) continue;
      left.id = c.result;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      try_pair(left.prev, c.left);
      try_pair(c.left, left.next);
    }

    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const Symbol& s = symbols[i];
      if (s.id >= 0)
        out.push_back(s.id);
      else if (unk >= 0)
        out.push_back(unk);
    }
  }
}

}  // namespace frugal
