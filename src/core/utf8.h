// UTF-8 well-formedness (shortest form, no surrogates, at most U+10FFFF),
// shared by the file readers/writers and the tokenizer.
#pragma once

#include <string_view>

namespace frugal {

bool is_valid_utf8(std::string_view s);

}  // namespace frugal
