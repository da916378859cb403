#include "tokenizer/unicode.h"

#include "core/utf8.h"

#include <algorithm>

namespace frugal::tok {

size_t decode_utf8(std::string_view s, size_t pos, char32_t* cp) {
  const size_t n = s.size();
  if (pos >= n) return 0;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t v;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, v = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, v = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, v = b0 & 0x07, min = 0x10000;
  } else {
    return 0;  // continuation byte or 0xF8.. lead
  }
  if (pos + len > n) return 0;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) { return frugal::is_valid_utf8(s); }

Category category(char32_t cp) {
  const auto* begin = tables::kCategoryRanges;
  const auto* end = begin + tables::kCategoryRangeCount;
  // Last range whose first code point is <= cp.
  const auto* it = std::upper_bound(begin, end, cp, [](char32_t c, const tables::CategoryRange& r) {
    return c < r.first;
  });
  if (it == begin) return Category::Cn;
  return static_cast<Category>((it - 1)->category);
}

bool is_white_space(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

const tables::MappingEntry* find_mapping(const tables::MappingEntry* table, size_t count,
                                         char32_t cp) {
  const auto* end = table + count;
  const auto* it = std::lower_bound(table, end, cp, [](const tables::MappingEntry& e, char32_t c) {
    return e.cp < c;
  });
  return (it != end && it->cp == cp) ? it : nullptr;
}

}  // namespace frugal::tok
