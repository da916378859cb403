// A compiled template: the entry point of the engine. Compile once, render
// many times (rendering does not modify the template, so one template can
// serve concurrent requests).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "frugal/status.h"
#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interpreter.h"

namespace frugal::jinja {

class Template {
 public:
  // Lexes and parses; a syntax error names its line.
  static Expected<Template> compile(std::string_view source);

  // Renders with the variables of `context` (a dict value).
  Expected<std::string> render(const Value& context, const RenderOptions& options = {}) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;
};

// JSON to template values; object key order is kept (ordered_json).
// Documents nested deeper than kMaxValueDepth are refused.
Expected<Value> value_from_json(const nlohmann::ordered_json& j, int depth = 0);

}  // namespace frugal::jinja
