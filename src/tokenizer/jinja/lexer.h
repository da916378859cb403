// Splits template source into tokens, applying Jinja's whitespace control
// the way Hugging Face configures it for chat templates: trim_blocks (the
// first newline after a block or comment tag is dropped), lstrip_blocks
// (spaces and tabs from the start of a line up to a block or comment tag are
// dropped), "-" on a tag strips all whitespace on that side, "+" keeps it.
// As in Jinja, newlines are normalised to "\n" and one trailing newline of
// the source is dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "frugal/status.h"

namespace frugal::jinja {

enum class TokenType {
  kText,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // value already unescaped
  kInteger,
  kFloat,
  kOperator,
  kEnd,
};

struct Token {
  TokenType type;
  std::string text;
  int line;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

Expected<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options = {});

}  // namespace frugal::jinja
