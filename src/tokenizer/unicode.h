// Unicode helpers for the tokenizers: UTF-8 decoding that tolerates invalid
// input, general categories, canonical decomposition and lowercasing. The
// data comes from generated tables (unicode_tables.cpp) because PCRE2, which
// runs the pre-tokenizer regexes, does not expose these mappings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace frugal::tok {

// Same order as CATS in gen_unicode_tables.py.
enum class Category : uint8_t {
  Cn, Cc, Cf, Co, Cs, Ll, Lm, Lo, Lt, Lu, Mc, Me, Mn, Nd, Nl, No,
  Pc, Pd, Pe, Pf, Pi, Po, Ps, Sc, Sk, Sm, So, Zl, Zp, Zs,
};

namespace tables {
struct CategoryRange {
  char32_t first;
  uint8_t category;
};
struct MappingEntry {
  char32_t cp;
  uint32_t offset;  // into the matching *Data array
  uint32_t length;
};
extern const CategoryRange kCategoryRanges[];
extern const size_t kCategoryRangeCount;
extern const MappingEntry kNfd[];
extern const size_t kNfdCount;
extern const char32_t kNfdData[];
extern const MappingEntry kLower[];
extern const size_t kLowerCount;
extern const char32_t kLowerData[];
}  // namespace tables

// Decodes one code point at s[pos]. Returns the number of bytes it spans, or
// 0 when the bytes there are not valid UTF-8 (overlong, surrogate, truncated,
// stray continuation byte); callers then treat that single byte on its own.
size_t decode_utf8(std::string_view s, size_t pos, char32_t* cp);

// Length of the code point at s[pos], or 1 for an invalid byte: a safe step
// for walking arbitrary bytes character by character.
inline size_t utf8_step(std::string_view s, size_t pos) {
  char32_t cp;
  size_t n = decode_utf8(s, pos, &cp);
  return n == 0 ? 1 : n;
}

void append_utf8(std::string& out, char32_t cp);

// True when every byte of s belongs to a well-formed UTF-8 sequence.
bool is_valid_utf8(std::string_view s);

Category category(char32_t cp);
inline bool is_mark_nonspacing(char32_t cp) { return category(cp) == Category::Mn; }
inline bool is_punctuation_category(Category c) { return c >= Category::Pc && c <= Category::Ps; }
inline bool is_other_category(Category c) { return c <= Category::Cs; }  // Cn Cc Cf Co Cs
// The Unicode White_Space property.
bool is_white_space(char32_t cp);

// Calls fn(cp) for each code point of the canonical decomposition (NFD) of cp.
template <class Fn>
void for_each_nfd(char32_t cp, Fn&& fn);
// Calls fn(cp) for each code point of the full lowercase mapping of cp.
template <class Fn>
void for_each_lower(char32_t cp, Fn&& fn);

const tables::MappingEntry* find_mapping(const tables::MappingEntry* table, size_t count,
                                         char32_t cp);

template <class Fn>
void for_each_nfd(char32_t cp, Fn&& fn) {
  // Hangul syllables decompose algorithmically (Unicode 3.12).
  constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
  constexpr char32_t kVCount = 21, kTCount = 28, kSCount = 11172;
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    fn(kLBase + s / (kVCount * kTCount));
    fn(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount != 0) fn(kTBase + s % kTCount);
    return;
  }
  const auto* e = find_mapping(tables::kNfd, tables::kNfdCount, cp);
  if (!e) {
    fn(cp);
    return;
  }
  for (uint32_t i = 0; i < e->length; ++i) fn(tables::kNfdData[e->offset + i]);
}

template <class Fn>
void for_each_lower(char32_t cp, Fn&& fn) {
  if (cp < 0x80) {
    fn(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  const auto* e = find_mapping(tables::kLower, tables::kLowerCount, cp);
  if (!e) {
    fn(cp);
    return;
  }
  for (uint32_t i = 0; i < e->length; ++i) fn(tables::kLowerData[e->offset + i]);
}

}  // namespace frugal::tok
