#include "tokenizer/jinja/template.h"

#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/parser.h"

namespace frugal::jinja {

Expected<Template> Template::compile(std::string_view source) {
  FRUGAL_ASSIGN_OR_RETURN(auto tokens, tokenize(source));
  FRUGAL_ASSIGN_OR_RETURN(Body body, parse(tokens));
  return Template(std::make_shared<const Body>(std::move(body)));
}

Expected<std::string> Template::render(const Value& context, const RenderOptions& options) const {
  Interpreter interpreter(options, context);
  return interpreter.render(*body_);
}

Expected<Value> value_from_json(const nlohmann::ordered_json& j, int depth) {
  using nlohmann::ordered_json;
  if (depth >= kMaxValueDepth)
    return invalid_argument("JSON nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  switch (j.type()) {
    case ordered_json::value_t::null: return Value::none();
    case ordered_json::value_t::boolean: return Value(j.get<bool>());
    case ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case ordered_json::value_t::number_float: return Value(j.get<double>());
    case ordered_json::value_t::string: return Value(j.get<std::string>());
    case ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) {
        FRUGAL_ASSIGN_OR_RETURN(Value v, value_from_json(x, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case ordered_json::value_t::object: {
      Value d = Value::dict();
      for (auto it = j.begin(); it != j.end(); ++it) {
        FRUGAL_ASSIGN_OR_RETURN(Value v, value_from_json(it.value(), depth + 1));
        d.dict_data().append(Value(it.key()), std::move(v));
      }
      return d;
    }
    default: return Value::none();
  }
}

}  // namespace frugal::jinja
