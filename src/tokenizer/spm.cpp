// SentencePiece-style BPE (tokenizer.ggml.model = "llama"): spaces become "▁",
// a "▁" dummy prefix starts the text, and adjacent symbols are merged greedily
// by the score of the token they form (highest first, leftmost on ties) until
// no pair forms a token. Characters with no token fall back to <0xNN> tokens.
// The pair queue keeps this O(n log n) in the length of the text.
#include <queue>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

struct Symbol {
  uint32_t begin;
  uint32_t length;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Candidate {
  float score;
  int32_t left;
  int32_t right;
  uint32_t length;  // combined length when queued; a changed length means stale
  bool operator<(const Candidate& o) const {  // max-heap: best score, then leftmost
    if (score != o.score) return score < o.score;
    return left > o.left;
  }
};

bool mergeable(TokenType t) {
  // Control, unknown, byte and unused pieces are never produced by merging,
  // as in SentencePiece.
  return t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined;
}

}  // namespace

void Tokenizer::Impl::encode_spm(std::string_view text, bool after_special,
                                 std::vector<int32_t>& out) const {
  std::string escaped;
  escaped.reserve(text.size() + 3 + text.size() / 4);
  if (add_space_prefix && after_special) escaped.append("\xE2\x96\x81");
  for (char c : text) {
    if (c == ' ')
      escaped.append("\xE2\x96\x81");
    else
      escaped.push_back(c);
  }
  if (escaped.size() > UINT32_MAX) return;  // cannot happen for real inputs; offsets are 32-bit

  std::vector<Symbol> symbols;
  symbols.reserve(escaped.size());
  for (size_t pos = 0; pos < escaped.size();) {
    const size_t len = tok::utf8_step(escaped, pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1, index + 1});
    pos += len;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Candidate> queue;
  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t len = symbols[left].length + symbols[right].length;
    const int32_t id = find(std::string_view(escaped).substr(symbols[left].begin, len));
    if (id < 0 || !mergeable(type_of(id))) return;
    queue.push({scores[id], left, right, len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    // Skip pairs invalidated by an earlier merge of either side.
    if (left.length == 0 || right.length == 0 || left.next != c.right ||
        left.length + right.length != c.length)
      continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    try_pair(left.prev, c.left);
    try_pair(c.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = std::string_view(escaped).substr(s.begin, s.length);
    const int32_t id = find(piece);
    if (id >= 0 && mergeable(type_of(id))) {
      out.push_back(id);
      continue;
    }
    bool have_bytes = true;
    for (char c : piece) have_bytes = have_bytes && byte_token[static_cast<uint8_t>(c)] >= 0;
    if (have_bytes) {
      for (char c : piece) out.push_back(byte_token[static_cast<uint8_t>(c)]);
    } else if (unk >= 0) {  // no byte fallback: one <unk> per character, as SentencePiece does
      out.push_back(unk);
    }
  }
}

}  // namespace frugal
