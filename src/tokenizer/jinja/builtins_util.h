// Helpers shared by the built-in filters, tests, methods and functions:
// Python-style argument binding and the string operations of Python's str.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/value.h"

namespace frugal::jinja {

// Binds call arguments to parameter names the way Python does (positional
// first, then keywords); a parameter not given is nullopt. Unknown keywords
// and surplus positionals are errors naming the function.
Expected<std::vector<std::optional<Value>>> bind_args(const CallArgs& args, std::vector<std::string_view> names,
                                                      std::string_view function);

// An integer argument (bool counts, as in Python).
Expected<int64_t> int_arg(const Value& v, std::string_view what);

// Python's str.strip family. chars == nullptr strips Unicode whitespace.
enum class StripSide { kBoth, kLeft, kRight };
std::string python_strip(std::string_view s, const std::string* chars, StripSide side);

// Python's str.split(sep, maxsplit); sep == nullptr splits on whitespace runs.
Expected<std::vector<std::string>> python_split(std::string_view s, const std::string* sep, int64_t maxsplit);

std::string python_upper(std::string_view s);
std::string python_lower(std::string_view s);
std::string python_capitalize(std::string_view s);
// Python's str.title(): a letter after a non-letter starts a word.
std::string python_title(std::string_view s);
// Python's str.replace(old, new, count).
std::string python_replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count);
// Python's str.splitlines() (without keepends).
std::vector<std::string> python_splitlines(std::string_view s);

// "%s %d" % args (printf-style formatting of Python strings).
Expected<std::string> percent_format(std::string_view format, const std::vector<Value>& args);

}  // namespace frugal::jinja
