// Parses tokens into a syntax tree with Jinja2's grammar and operator
// precedence. Tags that reach outside the template (include, import,
// extends, from) are rejected here: templates render in a sandbox.
#pragma once

#include <vector>

#include "frugal/status.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace frugal::jinja {

// Nesting limit for expressions and blocks: keeps the recursive parser and
// interpreter far from the end of the stack on hostile input.
inline constexpr int kMaxNestingDepth = 200;

Expected<Body> parse(const std::vector<Token>& tokens);

}  // namespace frugal::jinja
