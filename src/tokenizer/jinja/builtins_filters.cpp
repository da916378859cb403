// Jinja2's built-in filters and tests (the ones chat templates use), Python
// arithmetic, and Hugging Face's tojson (json.dumps with ensure_ascii off
// and Python's default separators, instead of Jinja's HTML-safe variant).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "tokenizer/jinja/builtins_util.h"

namespace frugal::jinja {
namespace {

Status fail(const std::string& message) { return invalid_argument(message); }

int64_t as_int64(const Value& v) { return v.is_bool() ? static_cast<int64_t>(v.as_bool()) : v.as_int(); }

Expected<Value> repeat(Interpreter& in, const Value& seq, int64_t n, int line) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const size_t total = seq.as_string().size() * static_cast<size_t>(n);
    if (n > 0 && total / static_cast<size_t>(n) != seq.as_string().size())
      return in.check_string_size(SIZE_MAX, line);
    FRUGAL_RETURN_IF_ERROR(in.check_string_size(total, line));
    std::string out;
    out.reserve(total);
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  const auto& items = seq.list_data().items;
  const size_t total = items.size() * static_cast<size_t>(n);
  if (n > 0 && total / static_cast<size_t>(n) != items.size()) return in.check_container_size(SIZE_MAX, line);
  FRUGAL_RETURN_IF_ERROR(in.check_container_size(total, line));
  std::vector<Value> out;
  out.reserve(total);
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.list_data().is_tuple);
}

double python_floor_mod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

}  // namespace

Expected<Value> binary_operation(Interpreter& in, const std::string& op, const Value& a, const Value& b, int line) {
  if (op == "~") {
    std::string s = to_display_string(a) + to_display_string(b);
    FRUGAL_RETURN_IF_ERROR(in.check_string_size(s.size(), line));
    return Value(std::move(s));
  }
  if (a.is_undefined()) return in.error(line, a.undefined_hint());
  if (b.is_undefined()) return in.error(line, b.undefined_hint());
  const bool numbers = a.is_number() && b.is_number();
  const bool floats = numbers && (a.is_float() || b.is_float());
  auto type_error = [&]() {
    return in.error(line, "unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
  };
  auto overflow = [&]() { return in.error(line, "integer overflow in '" + op + "'"); };
  if (op == "+") {
    if (floats) return Value(a.to_double() + b.to_double());
    if (numbers) {
      int64_t r;
      if (__builtin_add_overflow(as_int64(a), as_int64(b), &r)) return overflow();
      return Value(r);
    }
    if (a.is_string() && b.is_string()) {
      FRUGAL_RETURN_IF_ERROR(in.check_string_size(a.as_string().size() + b.as_string().size(), line));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.list_data().is_tuple == b.list_data().is_tuple) {
      FRUGAL_RETURN_IF_ERROR(in.check_container_size(a.list_data().items.size() + b.list_data().items.size(), line));
      std::vector<Value> items = a.list_data().items;
      items.insert(items.end(), b.list_data().items.begin(), b.list_data().items.end());
      return Value::list(std::move(items), a.list_data().is_tuple);
    }
    if (a.is_string() || b.is_string())
      return in.error(line, "can only concatenate str (not \"" + (a.is_string() ? b : a).type_name() + "\") to str");
    return type_error();
  }
  if (op == "-") {
    if (floats) return Value(a.to_double() - b.to_double());
    if (numbers) {
      int64_t r;
      if (__builtin_sub_overflow(as_int64(a), as_int64(b), &r)) return overflow();
      return Value(r);
    }
    return type_error();
  }
  if (op == "*") {
    if (floats) return Value(a.to_double() * b.to_double());
    if (numbers) {
      int64_t r;
      if (__builtin_mul_overflow(as_int64(a), as_int64(b), &r)) return overflow();
      return Value(r);
    }
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(in, a, as_int64(b), line);
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(in, b, as_int64(a), line);
    return type_error();
  }
  if (op == "/") {
    if (!numbers) return type_error();
    if (b.to_double() == 0.0) return in.error(line, "division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) {
      std::vector<Value> args;
      if (b.is_list() && b.list_data().is_tuple)
        args = b.list_data().items;
      else
        args.push_back(b);
      auto s = percent_format(a.as_string(), args);
      if (!s.ok()) return in.error(line, s.status().message());
      FRUGAL_RETURN_IF_ERROR(in.check_string_size(s->size(), line));
      return Value(std::move(*s));
    }
    if (!numbers) return type_error();
    if (b.to_double() == 0.0) return in.error(line, op == "//" ? "integer division or modulo by zero" : "modulo by zero");
    if (floats) {
      const double x = a.to_double(), y = b.to_double();
      if (op == "%") return Value(python_floor_mod(x, y));
      return Value(std::floor(x / y));
    }
    const int64_t x = as_int64(a), y = as_int64(b);
    if (x == INT64_MIN && y == -1) return overflow();
    int64_t q = x / y, r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward negative infinity
      --q;
      r += y;
    }
    return Value(op == "//" ? q : r);
  }
  if (op == "**") {
    if (!numbers) return type_error();
    if (!floats && as_int64(b) >= 0) {
      int64_t base = as_int64(a), exp = as_int64(b), r = 1;
      while (exp > 0) {
        if (exp & 1)
          if (__builtin_mul_overflow(r, base, &r)) return overflow();
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value(r);
    }
    if (a.to_double() == 0.0 && b.to_double() < 0) return in.error(line, "0.0 cannot be raised to a negative power");
    return Value(std::pow(a.to_double(), b.to_double()));
  }
  return in.error(line, "unknown operator '" + op + "'");
}

namespace {

using Args = std::vector<std::optional<Value>>;

// Sort key with Jinja's default case-insensitive comparison of strings.
Value fold_case(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(python_lower(v.as_string()));
  return v;
}

// "attribute" arguments may be dotted paths ("function.name") or integers.
Expected<Value> attribute_path(Interpreter& in, const Value& item, const Value& attribute, int line) {
  if (attribute.is_int()) return in.get_item(item, attribute, line);
  const std::string path = to_display_string(attribute);
  Value cur = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      key = Value(static_cast<int64_t>(std::strtoll(part.c_str(), nullptr, 10)));
    FRUGAL_ASSIGN_OR_RETURN(cur, in.get_item(cur, key, line));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Expected<std::vector<Value>> sorted_values(Interpreter& in, std::vector<Value> items, bool reverse, bool case_sensitive,
                                           const std::optional<Value>& attribute, int line) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    Value key = item;
    if (attribute && !attribute->is_none()) {
      FRUGAL_ASSIGN_OR_RETURN(key, attribute_path(in, item, *attribute, line));
    }
    keyed.emplace_back(fold_case(key, case_sensitive), std::move(item));
  }
  Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    auto less = reverse ? value_less(y.first, x.first) : value_less(x.first, y.first);
    if (!less.ok()) {
      if (error.ok()) error = less.status();
      return false;
    }
    return *less;
  });
  if (!error.ok()) return in.error(line, error.message());
  std::vector<Value> out;
  for (auto& [_, v] : keyed) out.push_back(std::move(v));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

#define BIND(params, fname) FRUGAL_ASSIGN_OR_RETURN(Args p, bind_args(a, params, fname))

Expected<Value> f_abs(Interpreter&, const Value& v, CallArgs&, int) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    const int64_t i = as_int64(v);
    if (i == INT64_MIN) return fail("integer overflow in abs");
    return Value(i < 0 ? -i : i);
  }
  return fail("bad operand type for abs(): '" + v.type_name() + "'");
}

Expected<Value> f_attr(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND({"name"}, "attr");
  if (!p[0] || !p[0]->is_string()) return fail("attr() needs an attribute name");
  return in.get_attribute(v, p[0]->as_string(), line);
}

Expected<Value> f_capitalize(Interpreter&, const Value& v, CallArgs&, int) { return Value(python_capitalize(to_display_string(v))); }

Expected<Value> f_center(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND({"width"}, "center");
  int64_t width = 80;
  if (p[0]) {
    FRUGAL_ASSIGN_OR_RETURN(width, int_arg(*p[0], "width"));
  }
  const std::string s = to_display_string(v);
  const int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return Value(s);
  FRUGAL_RETURN_IF_ERROR(in.check_string_size(static_cast<size_t>(width), line));
  const int64_t pad = width - len;
  const int64_t left = pad / 2 + (pad & width & 1);  // Python's centering rounds like this
  return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
}

Expected<Value> f_default(Interpreter&, const Value& v, CallArgs& a, int) {
  BIND(std::vector<std::string_view>({"default_value", "boolean"}), "default");
  const bool boolean = p[1] && p[1]->truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return p[0] ? *p[0] : Value("");
  return v;
}

Expected<Value> f_dictsort(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"case_sensitive", "by", "reverse"}), "dictsort");
  if (!v.is_dict() || v.is_namespace()) return fail("dictsort: expected a dict, got " + v.type_name());
  const bool case_sensitive = p[0] && p[0]->truthy();
  const bool by_value = p[1] && p[1]->is_string() && p[1]->as_string() == "value";
  const bool reverse = p[2] && p[2]->truthy();
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.dict_data().items) pairs.push_back(Value::list({k, val}, true));
  FRUGAL_ASSIGN_OR_RETURN(auto sorted, sorted_values(in, std::move(pairs), reverse, case_sensitive, Value(int64_t{by_value ? 1 : 0}), line));
  return Value::list(std::move(sorted));
}

Expected<Value> f_escape(Interpreter&, const Value& v, CallArgs&, int) { return Value(html_escape(to_display_string(v))); }

Expected<Value> f_first(Interpreter& in, const Value& v, CallArgs&, int line) {
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Expected<Value> f_last(Interpreter& in, const Value& v, CallArgs&, int line) {
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Expected<Value> f_float(Interpreter&, const Value& v, CallArgs& a, int) {
  BIND({"default"}, "float");
  const Value def = p[0] ? *p[0] : Value(0.0);
  if (v.is_number()) return Value(v.to_double());
  if (v.is_string()) {
    const std::string s = python_strip(v.as_string(), nullptr, StripSide::kBoth);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value(d);
  }
  return def;
}

Expected<Value> f_int(Interpreter&, const Value& v, CallArgs& a, int) {
  BIND(std::vector<std::string_view>({"default", "base"}), "int");
  const Value def = p[0] ? *p[0] : Value(int64_t{0});
  int64_t base = 10;
  if (p[1]) {
    FRUGAL_ASSIGN_OR_RETURN(base, int_arg(*p[1], "base"));
  }
  if (v.is_int() || v.is_bool()) return Value(as_int64(v));
  if (v.is_float()) {
    if (!std::isfinite(v.as_float()) || std::fabs(v.as_float()) > 9.2e18) return def;
    return Value(static_cast<int64_t>(v.as_float()));
  }
  if (v.is_string()) {
    std::string s = python_strip(v.as_string(), nullptr, StripSide::kBoth);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (!s.empty() && base >= 2 && base <= 36) {
      char* end = nullptr;
      errno = 0;
      const long long i = std::strtoll(s.c_str(), &end, static_cast<int>(base));
      if (end == s.c_str() + s.size() && errno == 0) return Value(static_cast<int64_t>(i));
      const double d = std::strtod(s.c_str(), &end);  // Jinja falls back to int(float(s))
      if (end == s.c_str() + s.size() && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(static_cast<int64_t>(d));
    }
  }
  return def;
}

Expected<Value> f_indent(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"width", "first", "blank"}), "indent");
  std::string indentation = "    ";
  if (p[0]) {
    if (p[0]->is_string()) {
      indentation = p[0]->as_string();
    } else {
      FRUGAL_ASSIGN_OR_RETURN(int64_t w, int_arg(*p[0], "width"));
      FRUGAL_RETURN_IF_ERROR(in.check_string_size(static_cast<size_t>(std::max<int64_t>(w, 0)), line));
      indentation = std::string(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
    }
  }
  const bool first = p[1] && p[1]->truthy();
  const bool blank = p[2] && p[2]->truthy();
  // Jinja appends a newline before splitting so a trailing newline survives.
  const std::vector<std::string> lines = python_splitlines(to_display_string(v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indentation;
    }
    out += lines[i];
    FRUGAL_RETURN_IF_ERROR(in.check_string_size(out.size(), line));
  }
  if (first) out = indentation + out;
  return Value(std::move(out));
}

Expected<Value> f_items(Interpreter&, const Value& v, CallArgs&, int) {
  if (v.is_undefined()) return Value::list();
  if (!v.is_dict() || v.is_namespace()) return fail("can only get item pairs from a mapping, not " + v.type_name());
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict_data().items) out.push_back(Value::list({k, val}, true));
  return Value::list(std::move(out));
}

Expected<Value> f_join(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"d", "attribute"}), "join");
  const std::string sep = p[0] ? to_display_string(*p[0]) : "";
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (p[1] && !p[1]->is_none()) {
      FRUGAL_ASSIGN_OR_RETURN(item, attribute_path(in, item, *p[1], line));
    }
    if (i) out += sep;
    out += to_display_string(item);
    FRUGAL_RETURN_IF_ERROR(in.check_string_size(out.size(), line));
  }
  return Value(std::move(out));
}

Expected<Value> f_length(Interpreter&, const Value& v, CallArgs&, int) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return Value(int64_t{0});
    case Value::Kind::kString: return Value(static_cast<int64_t>(utf8_length(v.as_string())));
    case Value::Kind::kList: return Value(static_cast<int64_t>(v.list_data().items.size()));
    case Value::Kind::kDict:
      if (!v.is_namespace()) return Value(static_cast<int64_t>(v.dict_data().items.size()));
      break;
    default: break;
  }
  return fail("object of type '" + v.type_name() + "' has no len()");
}

Expected<Value> f_list(Interpreter& in, const Value& v, CallArgs&, int line) {
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  return Value::list(std::move(items));
}

Expected<Value> f_lower(Interpreter&, const Value& v, CallArgs&, int) { return Value(python_lower(to_display_string(v))); }
Expected<Value> f_upper(Interpreter&, const Value& v, CallArgs&, int) { return Value(python_upper(to_display_string(v))); }

Expected<Value> f_map(Interpreter& in, const Value& v, CallArgs& a, int line) {
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  std::vector<Value> out;
  std::optional<Value> attribute, def;
  for (const auto& [k, val] : a.keywords) {
    if (k == "attribute")
      attribute = val;
    else if (k == "default")
      def = val;
  }
  if (attribute) {
    for (const auto& item : items) {
      FRUGAL_ASSIGN_OR_RETURN(Value x, attribute_path(in, item, *attribute, line));
      if (x.is_undefined() && def) x = *def;
      out.push_back(std::move(x));
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) return fail("map() needs a filter name or attribute=");
  const std::string filter = a.positional[0].as_string();
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keywords = a.keywords;
  for (const auto& item : items) {
    CallArgs call_args = rest;
    FRUGAL_ASSIGN_OR_RETURN(Value x, in.apply_filter(filter, item, call_args, line));
    out.push_back(std::move(x));
  }
  return Value::list(std::move(out));
}

Expected<Value> min_max(Interpreter& in, const Value& v, CallArgs& a, int line, bool want_max) {
  BIND(std::vector<std::string_view>({"case_sensitive", "attribute"}), want_max ? "max" : "min");
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  FRUGAL_ASSIGN_OR_RETURN(auto sorted, sorted_values(in, std::move(items), false, p[0] && p[0]->truthy(), p[1], line));
  return want_max ? sorted.back() : sorted.front();
}
Expected<Value> f_max(Interpreter& in, const Value& v, CallArgs& a, int line) { return min_max(in, v, a, line, true); }
Expected<Value> f_min(Interpreter& in, const Value& v, CallArgs& a, int line) { return min_max(in, v, a, line, false); }

Expected<Value> f_pprint(Interpreter&, const Value& v, CallArgs&, int) { return Value(to_repr_string(v)); }

// select / reject / selectattr / rejectattr.
Expected<Value> select_items(Interpreter& in, const Value& v, CallArgs& a, int line, bool keep_matches, bool by_attribute) {
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  size_t next = 0;
  std::optional<Value> attribute;
  if (by_attribute) {
    if (a.positional.empty()) return fail("selectattr/rejectattr need an attribute name");
    attribute = a.positional[next++];
  }
  std::string test;
  if (next < a.positional.size()) {
    if (!a.positional[next].is_string()) return fail("the test name must be a string");
    test = a.positional[next++].as_string();
  }
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  std::vector<Value> out;
  for (const auto& item : items) {
    Value subject = item;
    if (attribute) {
      FRUGAL_ASSIGN_OR_RETURN(subject, attribute_path(in, item, *attribute, line));
    }
    bool match = false;
    if (test.empty()) {
      match = subject.truthy();
    } else {
      CallArgs call_args = test_args;
      FRUGAL_ASSIGN_OR_RETURN(match, in.apply_test(test, subject, call_args, line));
    }
    if (match == keep_matches) out.push_back(item);
  }
  return Value::list(std::move(out));
}
Expected<Value> f_select(Interpreter& in, const Value& v, CallArgs& a, int line) { return select_items(in, v, a, line, true, false); }
Expected<Value> f_reject(Interpreter& in, const Value& v, CallArgs& a, int line) { return select_items(in, v, a, line, false, false); }
Expected<Value> f_selectattr(Interpreter& in, const Value& v, CallArgs& a, int line) { return select_items(in, v, a, line, true, true); }
Expected<Value> f_rejectattr(Interpreter& in, const Value& v, CallArgs& a, int line) { return select_items(in, v, a, line, false, true); }

Expected<Value> f_replace(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"old", "new", "count"}), "replace");
  if (!p[0] || !p[1]) return fail("replace() needs old and new strings");
  int64_t count = -1;
  if (p[2] && !p[2]->is_none()) {
    FRUGAL_ASSIGN_OR_RETURN(count, int_arg(*p[2], "count"));
  }
  std::string r = python_replace(to_display_string(v), to_display_string(*p[0]), to_display_string(*p[1]), count);
  FRUGAL_RETURN_IF_ERROR(in.check_string_size(r.size(), line));
  return Value(std::move(r));
}

Expected<Value> f_reverse(Interpreter& in, const Value& v, CallArgs&, int line) {
  if (v.is_string()) {
    std::u32string cps = utf8_to_code_points(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(code_points_to_utf8(cps));
  }
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Expected<Value> f_round(Interpreter&, const Value& v, CallArgs& a, int) {
  BIND(std::vector<std::string_view>({"precision", "method"}), "round");
  int64_t precision = 0;
  if (p[0]) {
    FRUGAL_ASSIGN_OR_RETURN(precision, int_arg(*p[0], "precision"));
  }
  const std::string method = p[1] ? to_display_string(*p[1]) : "common";
  if (!v.is_number()) return fail("round() needs a number, not " + v.type_name());
  if (v.is_int() || v.is_bool()) return method == "common" ? Value(as_int64(v)) : Value(v.to_double());
  const double scale = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(precision, -300, 300)));
  const double x = v.as_float() * scale;
  double r;
  if (method == "common")
    r = std::nearbyint(x);  // Python's round(): ties to even
  else if (method == "ceil")
    r = std::ceil(x);
  else if (method == "floor")
    r = std::floor(x);
  else
    return fail("method must be common, ceil or floor");
  return Value(r / scale);
}

Expected<Value> f_safe(Interpreter&, const Value& v, CallArgs&, int) { return Value(to_display_string(v)); }

Expected<Value> f_sort(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"reverse", "case_sensitive", "attribute"}), "sort");
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  FRUGAL_ASSIGN_OR_RETURN(auto sorted, sorted_values(in, std::move(items), p[0] && p[0]->truthy(), p[1] && p[1]->truthy(), p[2], line));
  return Value::list(std::move(sorted));
}

Expected<Value> f_string(Interpreter&, const Value& v, CallArgs&, int) { return Value(to_display_string(v)); }

Expected<Value> f_sum(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"attribute", "start"}), "sum");
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  Value total = p[1] ? *p[1] : Value(int64_t{0});
  for (const auto& item : items) {
    Value x = item;
    if (p[0] && !p[0]->is_none()) {
      FRUGAL_ASSIGN_OR_RETURN(x, attribute_path(in, item, *p[0], line));
    }
    FRUGAL_ASSIGN_OR_RETURN(total, binary_operation(in, "+", total, x, line));
  }
  return total;
}

// Jinja's title filter: words start after "-", whitespace, "(", "{", "[", "<".
Expected<Value> f_title(Interpreter&, const Value& v, CallArgs&, int) {
  const std::u32string cps = utf8_to_code_points(to_display_string(v));
  std::u32string out;
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || (c >= 0x09 && c <= 0x0d) ||
           (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 || c == 0x3000;
  };
  bool word_start = true;
  for (char32_t c : cps) {
    const std::string one = code_points_to_utf8(std::u32string(1, c));
    const std::string mapped = word_start ? python_upper(one) : python_lower(one);
    out += utf8_to_code_points(mapped);
    // A run of separators is one item of Jinja's split; its first character
    // is upper-cased (a no-op) and the next item starts a new word.
    word_start = is_sep(c);
  }
  return Value(code_points_to_utf8(out));
}

Expected<Value> f_tojson(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"ensure_ascii", "indent", "separators", "sort_keys"}), "tojson");
  JsonOptions o;
  o.ensure_ascii = p[0] && p[0]->truthy();
  if (p[1] && !p[1]->is_none()) {
    o.has_indent = true;
    if (p[1]->is_string()) {
      o.indent = p[1]->as_string();
    } else {
      FRUGAL_ASSIGN_OR_RETURN(int64_t n, int_arg(*p[1], "indent"));
      o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(n, 0, 64)), ' ');
    }
    o.item_separator = ",";  // json.dumps drops the trailing space when indenting
  }
  if (p[2] && !p[2]->is_none()) {
    if (!p[2]->is_list() || p[2]->list_data().items.size() != 2) return fail("tojson: separators must be a pair of strings");
    o.item_separator = to_display_string(p[2]->list_data().items[0]);
    o.key_separator = to_display_string(p[2]->list_data().items[1]);
  }
  o.sort_keys = p[3] && p[3]->truthy();
  auto json = to_json(v, o);
  if (!json.ok()) return in.error(line, json.status().message());
  FRUGAL_RETURN_IF_ERROR(in.check_string_size(json->size(), line));
  return Value(std::move(*json));
}

Expected<Value> f_trim(Interpreter&, const Value& v, CallArgs& a, int) {
  BIND({"chars"}, "trim");
  const std::string s = to_display_string(v);
  if (p[0] && !p[0]->is_none()) {
    const std::string chars = to_display_string(*p[0]);
    return Value(python_strip(s, &chars, StripSide::kBoth));
  }
  return Value(python_strip(s, nullptr, StripSide::kBoth));
}

Expected<Value> f_unique(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"case_sensitive", "attribute"}), "unique");
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  const bool case_sensitive = p[0] && p[0]->truthy();
  std::vector<Value> seen, out;
  for (const auto& item : items) {
    Value key = item;
    if (p[1] && !p[1]->is_none()) {
      FRUGAL_ASSIGN_OR_RETURN(key, attribute_path(in, item, *p[1], line));
    }
    key = fold_case(key, case_sensitive);
    bool dup = false;
    for (const auto& s : seen) dup |= values_equal(s, key);
    if (dup) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Expected<Value> f_wordcount(Interpreter&, const Value& v, CallArgs&, int) {
  // Python's \w+: runs of letters, digits and underscores (any non-ASCII
  // character is counted as a word character).
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : to_display_string(v)) {
    const bool word = c >= 0x80 || std::isalnum(c) || c == '_';
    if (word && !in_word) ++n;
    in_word = word;
  }
  return Value(n);
}

Expected<Value> f_format(Interpreter& in, const Value& v, CallArgs& a, int line) {
  auto s = percent_format(to_display_string(v), a.positional);
  if (!s.ok()) return in.error(line, s.status().message());
  return Value(std::move(*s));
}

Expected<Value> f_batch(Interpreter& in, const Value& v, CallArgs& a, int line) {
  BIND(std::vector<std::string_view>({"linecount", "fill_with"}), "batch");
  if (!p[0]) return fail("batch() needs a line count");
  FRUGAL_ASSIGN_OR_RETURN(int64_t n, int_arg(*p[0], "linecount"));
  if (n <= 0) return fail("batch() needs a positive line count");
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  std::vector<Value> out, cur;
  for (auto& item : items) {
    cur.push_back(std::move(item));
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (p[1])
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*p[1]);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> table = {
      {"abs", f_abs},           {"attr", f_attr},         {"batch", f_batch},       {"capitalize", f_capitalize},
      {"center", f_center},     {"count", f_length},      {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},     {"first", f_first},
      {"float", f_float},       {"forceescape", f_escape}, {"format", f_format},    {"indent", f_indent},
      {"int", f_int},           {"items", f_items},       {"join", f_join},         {"last", f_last},
      {"length", f_length},     {"list", f_list},         {"lower", f_lower},       {"map", f_map},
      {"max", f_max},           {"min", f_min},           {"pprint", f_pprint},     {"reject", f_reject},
      {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round},
      {"safe", f_safe},         {"select", f_select},     {"selectattr", f_selectattr}, {"sort", f_sort},
      {"string", f_string},     {"sum", f_sum},           {"title", f_title},       {"tojson", f_tojson},
      {"trim", f_trim},         {"unique", f_unique},     {"upper", f_upper},       {"wordcount", f_wordcount},
  };
  return table;
}

// ---- tests -----------------------------------------------------------------

Expected<Value> one_arg(const CallArgs& a, const char* test) {
  if (a.positional.size() != 1 || !a.keywords.empty())
    return fail(std::string("test '") + test + "' takes exactly one argument");
  return a.positional[0];
}

Expected<bool> t_defined(Interpreter&, const Value& v, CallArgs&, int) { return !v.is_undefined(); }
Expected<bool> t_undefined(Interpreter&, const Value& v, CallArgs&, int) { return v.is_undefined(); }
Expected<bool> t_none(Interpreter&, const Value& v, CallArgs&, int) { return v.is_none(); }
Expected<bool> t_boolean(Interpreter&, const Value& v, CallArgs&, int) { return v.is_bool(); }
Expected<bool> t_true(Interpreter&, const Value& v, CallArgs&, int) { return v.is_bool() && v.as_bool(); }
Expected<bool> t_false(Interpreter&, const Value& v, CallArgs&, int) { return v.is_bool() && !v.as_bool(); }
Expected<bool> t_string(Interpreter&, const Value& v, CallArgs&, int) { return v.is_string(); }
Expected<bool> t_number(Interpreter&, const Value& v, CallArgs&, int) { return v.is_number(); }
Expected<bool> t_integer(Interpreter&, const Value& v, CallArgs&, int) { return v.is_int(); }
Expected<bool> t_float(Interpreter&, const Value& v, CallArgs&, int) { return v.is_float(); }
Expected<bool> t_mapping(Interpreter&, const Value& v, CallArgs&, int) { return v.is_dict() && !v.is_namespace(); }
Expected<bool> t_callable(Interpreter&, const Value& v, CallArgs&, int) { return v.is_callable(); }
Expected<bool> t_escaped(Interpreter&, const Value&, CallArgs&, int) { return false; }
Expected<bool> t_iterable(Interpreter&, const Value& v, CallArgs&, int) {
  return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
}
Expected<bool> t_sequence(Interpreter&, const Value& v, CallArgs&, int) {
  return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
}
Expected<bool> t_lower(Interpreter&, const Value& v, CallArgs&, int) {
  const std::string s = to_display_string(v);
  return python_lower(s) == s;
}
Expected<bool> t_upper(Interpreter&, const Value& v, CallArgs&, int) {
  const std::string s = to_display_string(v);
  return python_upper(s) == s;
}
Expected<bool> parity(const Value& v, int want) {
  if (!v.is_int() && !v.is_bool()) return fail("odd/even tests need an integer, not " + v.type_name());
  return ((as_int64(v) % 2) + 2) % 2 == want;
}
Expected<bool> t_odd(Interpreter&, const Value& v, CallArgs&, int) { return parity(v, 1); }
Expected<bool> t_even(Interpreter&, const Value& v, CallArgs&, int) { return parity(v, 0); }
Expected<bool> t_divisibleby(Interpreter&, const Value& v, CallArgs& a, int) {
  FRUGAL_ASSIGN_OR_RETURN(Value n, one_arg(a, "divisibleby"));
  if (!v.is_number() || !n.is_number()) return fail("divisibleby needs numbers");
  if (n.to_double() == 0) return fail("integer division or modulo by zero");
  if (v.is_float() || n.is_float()) return std::fmod(v.to_double(), n.to_double()) == 0;
  return as_int64(v) % as_int64(n) == 0;
}
Expected<bool> t_eq(Interpreter&, const Value& v, CallArgs& a, int) {
  FRUGAL_ASSIGN_OR_RETURN(Value o, one_arg(a, "eq"));
  return values_equal(v, o);
}
Expected<bool> t_ne(Interpreter&, const Value& v, CallArgs& a, int) {
  FRUGAL_ASSIGN_OR_RETURN(Value o, one_arg(a, "ne"));
  return !values_equal(v, o);
}
Expected<bool> ordered(Interpreter& in, const Value& v, CallArgs& a, int line, const char* op) {
  FRUGAL_ASSIGN_OR_RETURN(Value o, one_arg(a, op));
  const std::string s(op);
  Expected<bool> less = (s == "<" || s == ">=") ? value_less(v, o) : value_less(o, v);
  if (!less.ok()) return in.error(line, less.status().message());
  return (s == "<" || s == ">") ? *less : !*less;
}
Expected<bool> t_lt(Interpreter& in, const Value& v, CallArgs& a, int line) { return ordered(in, v, a, line, "<"); }
Expected<bool> t_le(Interpreter& in, const Value& v, CallArgs& a, int line) { return ordered(in, v, a, line, "<="); }
Expected<bool> t_gt(Interpreter& in, const Value& v, CallArgs& a, int line) { return ordered(in, v, a, line, ">"); }
Expected<bool> t_ge(Interpreter& in, const Value& v, CallArgs& a, int line) { return ordered(in, v, a, line, ">="); }
Expected<bool> t_in(Interpreter& in, const Value& v, CallArgs& a, int line) {
  FRUGAL_ASSIGN_OR_RETURN(Value container, one_arg(a, "in"));
  if (container.is_string()) {
    if (!v.is_string()) return in.error(line, "'in <string>' requires string as left operand");
    return container.as_string().find(v.as_string()) != std::string::npos;
  }
  if (container.is_dict() && !container.is_namespace()) return container.dict_data().find(v) != nullptr;
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(container, line));
  for (const auto& x : items)
    if (values_equal(x, v)) return true;
  return false;
}
Expected<bool> t_sameas(Interpreter&, const Value& v, CallArgs& a, int) {
  FRUGAL_ASSIGN_OR_RETURN(Value o, one_arg(a, "sameas"));
  if (v.is_list() && o.is_list()) return &v.list_data() == &o.list_data();
  if (v.is_dict() && o.is_dict()) return &v.dict_data() == &o.dict_data();
  if (v.kind() != o.kind()) return false;
  return values_equal(v, o);  // None, True, False and small values are singletons in Python
}
Expected<bool> t_filter(Interpreter&, const Value& v, CallArgs&, int) {
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}
Expected<bool> t_test(Interpreter&, const Value& v, CallArgs&, int) {
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> table = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined}, {"divisibleby", t_divisibleby},
      {"eq", t_eq},           {"equalto", t_eq},        {"==", t_eq},           {"escaped", t_escaped},
      {"even", t_even},       {"false", t_false},       {"filter", t_filter},   {"float", t_float},
      {"ge", t_ge},           {">=", t_ge},             {"gt", t_gt},           {">", t_gt},
      {"greaterthan", t_gt},  {"in", t_in},             {"integer", t_integer}, {"iterable", t_iterable},
      {"le", t_le},           {"<=", t_le},             {"lower", t_lower},     {"lt", t_lt},
      {"<", t_lt},            {"lessthan", t_lt},       {"mapping", t_mapping}, {"ne", t_ne},
      {"!=", t_ne},           {"none", t_none},         {"number", t_number},   {"odd", t_odd},
      {"sameas", t_sameas},   {"sequence", t_sequence}, {"string", t_string},   {"test", t_test},
      {"true", t_true},       {"undefined", t_undefined}, {"upper", t_upper},
  };
  return table;
}

}  // namespace

FilterFn find_filter(const std::string& name) {
  const auto& t = filters();
  auto it = t.find(name);
  return it == t.end() ? nullptr : it->second;
}

TestFn find_test(const std::string& name) {
  const auto& t = tests();
  auto it = t.find(name);
  return it == t.end() ? nullptr : it->second;
}

}  // namespace frugal::jinja
