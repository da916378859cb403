// Python semantics of template values: truthiness, equality, ordering,
// str()/repr() and json.dumps().
#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace frugal::jinja {

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (values_equal(k, key)) return &v;
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (values_equal(k, key)) {
      depth = std::max(depth, value.nesting_depth() + 1);  // an upper bound: old values may have been deeper
      holds_namespace |= value.holds_namespace();
      v = std::move(value);
      return;
    }
  }
  append(std::move(key), std::move(value));
}

void DictData::append(Value key, Value value) {
  depth = std::max(depth, std::max(key.nesting_depth(), value.nesting_depth()) + 1);
  holds_namespace |= value.holds_namespace();
  items.emplace_back(std::move(key), std::move(value));
}

int Value::nesting_depth() const {
  if (is_list()) return list_data().depth;
  if (is_dict()) return dict_data().depth;
  return 0;
}

bool Value::holds_namespace() const {
  if (is_list()) return list_data().holds_namespace;
  if (is_dict()) return dict_data().is_namespace || dict_data().holds_namespace;
  return false;
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  for (const auto& item : items) {
    data->depth = std::max(data->depth, item.nesting_depth() + 1);
    data->holds_namespace |= item.holds_namespace();
  }
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  Value v;
  v.v_ = std::move(data);
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) {
  Value v;
  v.v_ = std::make_shared<DictData>();
  for (auto& [k, val] : items) v.dict_data().append(std::move(k), std::move(val));
  return v;
}

Value Value::namespace_object() {
  Value v;
  auto data = std::make_shared<DictData>();
  data->is_namespace = true;
  v.v_ = std::move(data);
  return v;
}

Value Value::callable(std::string name, NativeFunction fn) {
  Value v;
  v.v_ = std::make_shared<CallableData>(CallableData{std::move(name), std::move(fn)});
  return v;
}

double Value::to_double() const {
  switch (kind()) {
    case Kind::kBool: return as_bool() ? 1.0 : 0.0;
    case Kind::kInt: return static_cast<double>(as_int());
    case Kind::kFloat: return as_float();
    default: return 0.0;
  }
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0.0;
    case Kind::kString: return !as_string().empty();
    case Kind::kList: return !list_data().items.empty();
    case Kind::kDict: return dict_data().is_namespace || !dict_data().items.empty();
    case Kind::kCallable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return list_data().is_tuple ? "tuple" : "list";
    case Kind::kDict: return dict_data().is_namespace ? "Namespace" : "dict";
    case Kind::kCallable: return "function";
  }
  return "object";
}

bool values_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    const int64_t x = a.is_bool() ? (a.as_bool() ? 1 : 0) : a.as_int();
    const int64_t y = b.is_bool() ? (b.as_bool() ? 1 : 0) : b.as_int();
    return x == y;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone: return true;
    case K::kString: return a.as_string() == b.as_string();
    case K::kList: {
      const auto& x = a.list_data();
      const auto& y = b.list_data();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!values_equal(x.items[i], y.items[i])) return false;
      return true;
    }
    case K::kDict: {
      const auto& x = a.dict_data();
      const auto& y = b.dict_data();
      if (x.is_namespace || y.is_namespace) return &x == &y;  // compared by identity, like objects
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (other == nullptr || !values_equal(v, *other)) return false;
      }
      return true;
    }
    case K::kCallable: return &a.callable_data() == &b.callable_data();
    default: return false;
  }
}

Expected<bool> value_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() < b.to_double();
    const int64_t x = a.is_bool() ? (a.as_bool() ? 1 : 0) : a.as_int();
    const int64_t y = b.is_bool() ? (b.as_bool() ? 1 : 0) : b.as_int();
    return x < y;
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 byte order is code point order
  if (a.is_list() && b.is_list() && a.list_data().is_tuple == b.list_data().is_tuple) {
    const auto& x = a.list_data().items;
    const auto& y = b.list_data().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return value_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return invalid_argument("'<' not supported between instances of '" + a.type_name() + "' and '" +
                          b.type_name() + "'");
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: fixed notation for
  // exponents in [-4, 16), scientific with a two-digit exponent otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else {
      const size_t int_len = static_cast<size_t>(exponent) + 1;
      if (digits.size() <= int_len) {
        out = digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + out + exp_buf;
}

namespace {

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == static_cast<unsigned char>(quote)) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string to_repr_string(const Value& v) {
  using K = Value::Kind;
  switch (v.kind()) {
    case K::kString: return repr_string(v.as_string());
    case K::kList: {
      const auto& l = v.list_data();
      std::string out = l.is_tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += to_repr_string(l.items[i]);
      }
      if (l.is_tuple && l.items.size() == 1) out += ",";
      out += l.is_tuple ? ")" : "]";
      return out;
    }
    case K::kDict: {
      const auto& d = v.dict_data();
      std::string out = d.is_namespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < d.items.size(); ++i) {
        if (i) out += ", ";
        out += to_repr_string(d.items[i].first) + ": " + to_repr_string(d.items[i].second);
      }
      out += d.is_namespace ? "}>" : "}";
      return out;
    }
    default: return to_display_string(v);
  }
}

std::string to_display_string(const Value& v) {
  using K = Value::Kind;
  switch (v.kind()) {
    case K::kUndefined: return "";
    case K::kNone: return "None";
    case K::kBool: return v.as_bool() ? "True" : "False";
    case K::kInt: return std::to_string(v.as_int());
    case K::kFloat: return python_float_repr(v.as_float());
    case K::kString: return v.as_string();
    case K::kList:
    case K::kDict: return to_repr_string(v);
    case K::kCallable: return "<function " + v.callable_data().name + ">";
  }
  return "";
}

std::u32string utf8_to_code_points(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = 1;
    char32_t cp = c;
    if (c >= 0xf0 && c < 0xf8) {
      len = 4;
      cp = c & 0x07;
    } else if (c >= 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xc0) {
      len = 2;
      cp = c & 0x1f;
    }
    if (c >= 0x80 && (c < 0xc0 || c >= 0xf8 || i + static_cast<size_t>(len) > s.size())) {
      out += static_cast<char32_t>(0xfffd);  // invalid byte: one replacement character
      ++i;
      continue;
    }
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out += cp;
    i += static_cast<size_t>(len);
  }
  return out;
}

std::string code_points_to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

namespace {

void json_escape(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  auto hex4 = [&](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", v);
    out += buf;
  };
  if (!ensure_ascii) {
    for (unsigned char c : s) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20)
            hex4(c);
          else
            out += static_cast<char>(c);
      }
    }
  } else {
    for (char32_t cp : utf8_to_code_points(s)) {
      switch (cp) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
            if (cp == 0x7f)
              out += static_cast<char>(cp);
            else
              hex4(static_cast<unsigned>(cp));
          } else if (cp >= 0x10000) {
            const unsigned v = static_cast<unsigned>(cp) - 0x10000;
            hex4(0xd800 + (v >> 10));
            hex4(0xdc00 + (v & 0x3ff));
          } else {
            out += static_cast<char>(cp);
          }
      }
    }
  }
  out += '"';
}

Expected<std::string> json_key(const Value& k) {
  if (k.is_string()) return k.as_string();
  if (k.is_bool()) return std::string(k.as_bool() ? "true" : "false");
  if (k.is_none()) return std::string("null");
  if (k.is_int()) return std::to_string(k.as_int());
  if (k.is_float()) return python_float_repr(k.as_float());
  return invalid_argument("keys must be str, int, float, bool or None, not " + k.type_name());
}

Status json_write(const Value& v, const JsonOptions& o, int depth, std::string& out) {
  using K = Value::Kind;
  if (depth > 512) return out_of_range("tojson: nesting deeper than 512 levels");
  auto newline_indent = [&](int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case K::kNone: out += "null"; return Status::Ok();
    case K::kBool: out += v.as_bool() ? "true" : "false"; return Status::Ok();
    case K::kInt: out += std::to_string(v.as_int()); return Status::Ok();
    case K::kFloat: {
      const double d = v.as_float();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d < 0 ? "-Infinity" : "Infinity";
      else
        out += python_float_repr(d);
      return Status::Ok();
    }
    case K::kString: json_escape(v.as_string(), o.ensure_ascii, out); return Status::Ok();
    case K::kList: {
      const auto& items = v.list_data().items;
      if (items.empty()) {
        out += "[]";
        return Status::Ok();
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.has_indent) newline_indent(depth + 1);
        FRUGAL_RETURN_IF_ERROR(json_write(items[i], o, depth + 1, out));
      }
      if (o.has_indent) newline_indent(depth);
      out += ']';
      return Status::Ok();
    }
    case K::kDict: {
      const auto& d = v.dict_data();
      if (d.is_namespace) return invalid_argument("Object of type Namespace is not JSON serializable");
      if (d.items.empty()) {
        out += "{}";
        return Status::Ok();
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, val] : d.items) {
        FRUGAL_ASSIGN_OR_RETURN(std::string key, json_key(k));
        entries.emplace_back(std::move(key), &val);
      }
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.has_indent) newline_indent(depth + 1);
        json_escape(entries[i].first, o.ensure_ascii, out);
        out += o.key_separator;
        FRUGAL_RETURN_IF_ERROR(json_write(*entries[i].second, o, depth + 1, out));
      }
      if (o.has_indent) newline_indent(depth);
      out += '}';
      return Status::Ok();
    }
    case K::kUndefined: return invalid_argument("Object of type Undefined is not JSON serializable");
    case K::kCallable: return invalid_argument("Object of type function is not JSON serializable");
  }
  return internal_error("tojson: unknown value kind");
}

}  // namespace

Expected<std::string> to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  FRUGAL_RETURN_IF_ERROR(json_write(v, options, 0, out));
  return out;
}

}  // namespace frugal::jinja
