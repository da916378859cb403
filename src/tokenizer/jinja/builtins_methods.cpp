// Methods of str, dict and list values, Python string operations, and the
// global functions Hugging Face chat templates may call. Methods that would
// modify a list or dict are refused, as in Jinja's ImmutableSandboxedEnvironment.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "tokenizer/jinja/builtins_util.h"

namespace frugal::jinja {

Expected<std::vector<std::optional<Value>>> bind_args(const CallArgs& args, std::vector<std::string_view> names,
                                                      std::string_view function) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.positional.size() > names.size())
    return invalid_argument(std::string(function) + "() takes at most " + std::to_string(names.size()) +
                            " arguments (" + std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [k, v] : args.keywords) {
    size_t i = 0;
    while (i < names.size() && names[i] != k) ++i;
    if (i == names.size())
      return invalid_argument(std::string(function) + "() got an unexpected keyword argument '" + k + "'");
    if (out[i]) return invalid_argument(std::string(function) + "() got multiple values for argument '" + k + "'");
    out[i] = v;
  }
  return out;
}

Expected<int64_t> int_arg(const Value& v, std::string_view what) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return static_cast<int64_t>(v.as_bool());
  return invalid_argument(std::string(what) + " must be an integer, not " + v.type_name());
}

namespace {

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Case mapping for ASCII, Latin-1, Greek and Cyrillic: the scripts whose
// case a chat template might change. Other characters are left alone.
char32_t to_upper_cp(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
  if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
  if (c >= 0x430 && c <= 0x44f) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  return c;
}

char32_t to_lower_cp(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  return c;
}

bool is_cased(char32_t c) { return to_upper_cp(c) != c || to_lower_cp(c) != c; }

}  // namespace

std::string python_strip(std::string_view s, const std::string* chars, StripSide side) {
  const std::u32string cps = utf8_to_code_points(s);
  std::u32string set;
  if (chars) set = utf8_to_code_points(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_python_space(c); };
  size_t b = 0, e = cps.size();
  if (side != StripSide::kRight)
    while (b < e && strip_it(cps[b])) ++b;
  if (side != StripSide::kLeft)
    while (e > b && strip_it(cps[e - 1])) --e;
  if (b == 0 && e == cps.size()) return std::string(s);
  return code_points_to_utf8(std::u32string_view(cps).substr(b, e - b));
}

Expected<std::vector<std::string>> python_split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) return invalid_argument("empty separator");
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = s.find(*sep, start);
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(start, at - start));
      start = at + sep->size();
    }
    out.emplace_back(s.substr(start));
    return out;
  }
  const std::u32string cps = utf8_to_code_points(s);
  size_t i = 0;
  while (true) {
    while (i < cps.size() && is_python_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      size_t e = cps.size();
      while (e > i && is_python_space(cps[e - 1])) --e;
      out.push_back(code_points_to_utf8(std::u32string_view(cps).substr(i, e - i)));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_python_space(cps[j])) ++j;
    out.push_back(code_points_to_utf8(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::string python_upper(std::string_view s) {
  std::u32string out;
  for (char32_t c : utf8_to_code_points(s)) {
    if (c == 0xdf) {  // the German sharp s has no single upper-case letter
      out += U"SS";
      continue;
    }
    out += to_upper_cp(c);
  }
  return code_points_to_utf8(out);
}

std::string python_lower(std::string_view s) {
  std::u32string cps = utf8_to_code_points(s);
  for (auto& c : cps) c = to_lower_cp(c);
  return code_points_to_utf8(cps);
}

std::string python_capitalize(std::string_view s) {
  std::u32string cps = utf8_to_code_points(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? to_upper_cp(cps[i]) : to_lower_cp(cps[i]);
  return code_points_to_utf8(cps);
}

std::string python_title(std::string_view s) {
  std::u32string cps = utf8_to_code_points(s);
  bool previous_cased = false;
  for (auto& c : cps) {
    const bool cased = is_cased(c);
    c = previous_cased ? to_lower_cp(c) : to_upper_cp(c);
    previous_cased = cased;
  }
  return code_points_to_utf8(cps);
}

std::string python_replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts the replacement between characters
    const std::u32string cps = utf8_to_code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      if (i < cps.size()) out += code_points_to_utf8(std::u32string_view(cps).substr(i, 1));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old, start);
    if (at == std::string_view::npos) break;
    out.append(s.substr(start, at - start));
    out.append(replacement);
    start = at + old.size();
    ++done;
  }
  out.append(s.substr(start));
  return out;
}

std::vector<std::string> python_splitlines(std::string_view s) {
  std::vector<std::string> lines;
  const std::u32string cps = utf8_to_code_points(s);
  std::u32string cur;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const bool breaks = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) || c == 0x85 ||
                        c == 0x2028 || c == 0x2029;
    if (!breaks) {
      cur += c;
      continue;
    }
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    lines.push_back(code_points_to_utf8(cur));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(code_points_to_utf8(cur));
  return lines;
}

namespace {

// One "[[fill]align][sign][0][width][.precision][type]" conversion of a
// number or string, shared by %-formatting and str.format().
struct FormatSpec {
  char fill = ' ';
  char align = '\0';
  char sign = '\0';
  bool zero = false;
  int width = -1;
  int precision = -1;
  char type = '\0';
};

Expected<std::string> format_one(const Value& v, const FormatSpec& spec) {
  std::string body;
  char type = spec.type;
  if (type == '\0') type = v.is_string() ? 's' : (v.is_float() ? 'r' : (v.is_number() ? 'd' : 's'));
  if (v.is_bool() && spec.type == '\0') type = 's';
  char buf[512];
  switch (type) {
    case 's':
    case 'r':
      if (type == 'r' && !v.is_float()) {
        body = to_repr_string(v);
      } else {
        body = to_display_string(v);
        if (spec.precision >= 0 && v.is_string()) {
          const std::u32string cps = utf8_to_code_points(body);
          if (cps.size() > static_cast<size_t>(spec.precision))
            body = code_points_to_utf8(std::u32string_view(cps).substr(0, static_cast<size_t>(spec.precision)));
        }
      }
      break;
    case 'd':
    case 'i':
    case 'x':
    case 'X':
    case 'o': {
      if (!v.is_number()) return invalid_argument("a number is required, not " + v.type_name());
      const long long i = v.is_float() ? static_cast<long long>(v.as_float())
                                       : (v.is_bool() ? v.as_bool() : static_cast<long long>(v.as_int()));
      const char* f = type == 'x' ? "%llx" : type == 'X' ? "%llX" : type == 'o' ? "%llo" : "%lld";
      std::snprintf(buf, sizeof buf, f, i);
      body = buf;
      break;
    }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G': {
      if (!v.is_number()) return invalid_argument("a number is required, not " + v.type_name());
      const char fmt[] = {'%', '.', '*', type, '\0'};
      std::snprintf(buf, sizeof buf, fmt, spec.precision >= 0 ? std::min(spec.precision, 100) : 6, v.to_double());
      body = buf;
      break;
    }
    case 'c':
      if (v.is_int() && v.as_int() >= 0 && v.as_int() <= 0x10ffff)
        body = code_points_to_utf8(std::u32string(1, static_cast<char32_t>(v.as_int())));
      else
        body = to_display_string(v);
      break;
    default: return Status(ErrorCode::kUnsupported, std::string("unsupported format character '") + type + "'");
  }
  if (spec.sign == '+' && v.is_number() && !body.empty() && body[0] != '-') body = "+" + body;
  const size_t len = utf8_length(body);
  if (spec.width > 0 && len < static_cast<size_t>(spec.width)) {
    const size_t pad = static_cast<size_t>(spec.width) - len;
    char align = spec.align;
    if (align == '\0') align = (v.is_number() && !v.is_bool()) ? '>' : '<';
    if (spec.zero && v.is_number() && spec.align == '\0') {
      const size_t at = (!body.empty() && (body[0] == '-' || body[0] == '+')) ? 1 : 0;
      body.insert(at, pad, '0');
    } else if (align == '<') {
      body.append(pad, spec.fill);
    } else if (align == '^') {
      body = std::string(pad / 2, spec.fill) + body + std::string(pad - pad / 2, spec.fill);
    } else {
      body = std::string(pad, spec.fill) + body;
    }
  }
  return body;
}

int parse_int(std::string_view s, size_t& i) {
  int n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && n < 10000) n = n * 10 + (s[i++] - '0');
  return n;
}

Expected<FormatSpec> parse_format_spec(std::string_view s) {
  FormatSpec spec;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill = s[0];
    spec.align = s[1];
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) spec.sign = s[i++];
  if (i < s.size() && s[i] == '0') {
    spec.zero = true;
    ++i;
  }
  if (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) spec.width = parse_int(s, i);
  if (i < s.size() && s[i] == '.') {
    ++i;
    spec.precision = parse_int(s, i);
  }
  if (i < s.size()) spec.type = s[i++];
  if (i != s.size()) return invalid_argument("invalid format specifier '" + std::string(s) + "'");
  return spec;
}

// Python's str.format() with positional ({} / {0}) and keyword ({name})
// fields, attribute-free.
Expected<std::string> brace_format(std::string_view fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string_view::npos) return invalid_argument("single '{' encountered in format string");
    std::string_view field = fmt.substr(i + 1, close - i - 1);
    std::string_view spec_text;
    if (const size_t colon = field.find(':'); colon != std::string_view::npos) {
      spec_text = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_index >= args.positional.size()) return invalid_argument("Replacement index out of range");
      v = &args.positional[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t k = 0;
      const size_t index = static_cast<size_t>(parse_int(field, k));
      if (k != field.size() || index >= args.positional.size()) return invalid_argument("Replacement index out of range");
      v = &args.positional[index];
    } else {
      for (const auto& [name, val] : args.keywords)
        if (name == field) v = &val;
      if (v == nullptr) return invalid_argument("format: no argument named '" + std::string(field) + "'");
    }
    FRUGAL_ASSIGN_OR_RETURN(FormatSpec spec, parse_format_spec(spec_text));
    FRUGAL_ASSIGN_OR_RETURN(std::string piece, format_one(*v, spec));
    out += piece;
    i = close;
  }
  return out;
}

}  // namespace

Expected<std::string> percent_format(std::string_view fmt, const std::vector<Value>& args) {
  std::string out;
  size_t next_arg = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) return invalid_argument("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    FormatSpec spec;
    while (i < fmt.size() && (fmt[i] == '-' || fmt[i] == '+' || fmt[i] == '0' || fmt[i] == ' ')) {
      if (fmt[i] == '-') spec.align = '<';
      if (fmt[i] == '+') spec.sign = '+';
      if (fmt[i] == '0') spec.zero = true;
      ++i;
    }
    if (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec.width = parse_int(fmt, i);
    if (spec.align == '\0') spec.align = '>';
    if (spec.zero && spec.align == '>') spec.align = '\0';
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      spec.precision = parse_int(fmt, i);
    }
    if (i >= fmt.size()) return invalid_argument("incomplete format");
    spec.type = fmt[i];
    if (next_arg >= args.size()) return invalid_argument("not enough arguments for format string");
    FRUGAL_ASSIGN_OR_RETURN(std::string piece, format_one(args[next_arg++], spec));
    out += piece;
  }
  if (next_arg < args.size()) return invalid_argument("not all arguments converted during string formatting");
  return out;
}

namespace {

Value method(const std::string& name, NativeFunction fn) { return Value::callable(name, std::move(fn)); }

Value refused_method(const Value& object, const std::string& name) {
  const std::string message =
      "access to attribute '" + name + "' of '" + object.type_name() + "' object is unsafe (templates cannot modify values)";
  return method(name, [message](Interpreter&, CallArgs&) -> Expected<Value> { return invalid_argument(message); });
}

Expected<std::vector<std::optional<Value>>> bind(const CallArgs& a, std::vector<std::string_view> names,
                                                 std::string_view fn) {
  return bind_args(a, std::move(names), fn);
}

std::optional<Value> string_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const StripSide side = name == "strip" ? StripSide::kBoth : name == "lstrip" ? StripSide::kLeft : StripSide::kRight;
    return method(name, [s, side, name](Interpreter&, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(auto p, bind(a, {"chars"}, name));
      if (p[0] && !p[0]->is_none()) {
        if (!p[0]->is_string()) return invalid_argument(name + " arg must be None or str");
        return Value(python_strip(s, &p[0]->as_string(), side));
      }
      return Value(python_strip(s, nullptr, side));
    });
  }
  if (name == "split" || name == "rsplit") {
    return method(name, [s, name](Interpreter& in, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(auto p, bind(a, {"sep", "maxsplit"}, name));
      int64_t maxsplit = -1;
      if (p[1]) {
        FRUGAL_ASSIGN_OR_RETURN(maxsplit, int_arg(*p[1], "maxsplit"));
      }
      const std::string* sep = nullptr;
      if (p[0] && !p[0]->is_none()) {
        if (!p[0]->is_string()) return invalid_argument("must be str or None, not " + p[0]->type_name());
        sep = &p[0]->as_string();
      }
      std::vector<std::string> parts;
      if (name == "rsplit" && maxsplit >= 0) {
        // Split from the right: reverse, split, reverse back.
        std::u32string r = utf8_to_code_points(s);
        std::reverse(r.begin(), r.end());
        std::string rsep;
        if (sep) {
          std::u32string rs = utf8_to_code_points(*sep);
          std::reverse(rs.begin(), rs.end());
          rsep = code_points_to_utf8(rs);
        }
        FRUGAL_ASSIGN_OR_RETURN(parts, python_split(code_points_to_utf8(r), sep ? &rsep : nullptr, maxsplit));
        std::reverse(parts.begin(), parts.end());
        for (auto& part : parts) {
          std::u32string cps = utf8_to_code_points(part);
          std::reverse(cps.begin(), cps.end());
          part = code_points_to_utf8(cps);
        }
      } else {
        FRUGAL_ASSIGN_OR_RETURN(parts, python_split(s, sep, maxsplit));
      }
      FRUGAL_RETURN_IF_ERROR(in.check_container_size(parts.size(), 0));
      std::vector<Value> items;
      for (auto& part : parts) items.emplace_back(std::move(part));
      return Value::list(std::move(items));
    });
  }
  if (name == "splitlines") {
    return method(name, [s](Interpreter&, CallArgs&) -> Expected<Value> {
      std::vector<Value> items;
      for (auto& line : python_splitlines(s)) items.emplace_back(std::move(line));
      return Value::list(std::move(items));
    });
  }
  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return method(name, [s, starts, name](Interpreter&, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(auto p, bind(a, {"prefix"}, name));
      if (!p[0]) return invalid_argument(name + "() takes at least 1 argument (0 given)");
      std::vector<Value> options;
      if (p[0]->is_list() && p[0]->list_data().is_tuple)
        options = p[0]->list_data().items;
      else
        options.push_back(*p[0]);
      for (const auto& o : options) {
        if (!o.is_string())
          return invalid_argument(name + " first arg must be str or a tuple of str, not " + o.type_name());
        const std::string& x = o.as_string();
        if (x.size() <= s.size() && (starts ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
          return Value(true);
      }
      return Value(false);
    });
  }
  if (name == "upper") return method(name, [s](Interpreter&, CallArgs&) -> Expected<Value> { return Value(python_upper(s)); });
  if (name == "lower") return method(name, [s](Interpreter&, CallArgs&) -> Expected<Value> { return Value(python_lower(s)); });
  if (name == "title") return method(name, [s](Interpreter&, CallArgs&) -> Expected<Value> { return Value(python_title(s)); });
  if (name == "capitalize")
    return method(name, [s](Interpreter&, CallArgs&) -> Expected<Value> { return Value(python_capitalize(s)); });
  if (name == "replace") {
    return method(name, [s](Interpreter& in, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(auto p, bind(a, {"old", "new", "count"}, "replace"));
      if (!p[0] || !p[1] || !p[0]->is_string() || !p[1]->is_string())
        return invalid_argument("replace() arguments must be str");
      int64_t count = -1;
      if (p[2]) {
        FRUGAL_ASSIGN_OR_RETURN(count, int_arg(*p[2], "count"));
      }
      std::string r = python_replace(s, p[0]->as_string(), p[1]->as_string(), count);
      FRUGAL_RETURN_IF_ERROR(in.check_string_size(r.size(), 0));
      return Value(std::move(r));
    });
  }
  if (name == "format") {
    return method(name, [s](Interpreter& in, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(std::string r, brace_format(s, a));
      FRUGAL_RETURN_IF_ERROR(in.check_string_size(r.size(), 0));
      return Value(std::move(r));
    });
  }
  if (name == "join") {
    return method(name, [s](Interpreter& in, CallArgs& a) -> Expected<Value> {
      if (a.positional.size() != 1) return invalid_argument("join() takes exactly one argument");
      FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(a.positional[0], 0));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string())
          return invalid_argument("sequence item " + std::to_string(i) + ": expected str instance, " +
                                  items[i].type_name() + " found");
        if (i) out += s;
        out += items[i].as_string();
        FRUGAL_RETURN_IF_ERROR(in.check_string_size(out.size(), 0));
      }
      return Value(std::move(out));
    });
  }
  if (name == "find" || name == "rfind" || name == "count") {
    return method(name, [s, name](Interpreter&, CallArgs& a) -> Expected<Value> {
      if (a.positional.size() != 1 || !a.positional[0].is_string())
        return invalid_argument(name + "() takes one str argument");
      const std::string& sub = a.positional[0].as_string();
      if (name == "count") {
        if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
        int64_t n = 0;
        for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
        return Value(n);
      }
      const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
      if (at == std::string::npos) return Value(int64_t{-1});
      return Value(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, at))));
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    return method(name, [s, name](Interpreter&, CallArgs&) -> Expected<Value> {
      const std::u32string cps = utf8_to_code_points(s);
      if (cps.empty()) return Value(false);
      bool any_cased = false;
      for (char32_t c : cps) {
        const bool ascii = c < 0x80;
        const bool digit = ascii && std::isdigit(static_cast<int>(c));
        const bool alpha = (ascii && std::isalpha(static_cast<int>(c))) || (!ascii && is_cased(c));
        if (name == "isdigit" && !digit) return Value(false);
        if (name == "isalpha" && !alpha) return Value(false);
        if (name == "isalnum" && !alpha && !digit) return Value(false);
        if (name == "isspace" && !is_python_space(c)) return Value(false);
        if (name == "islower" && to_lower_cp(c) != c) return Value(false);
        if (name == "isupper" && to_upper_cp(c) != c) return Value(false);
        any_cased |= is_cased(c);
      }
      if (name == "islower" || name == "isupper") return Value(any_cased);
      return Value(true);
    });
  }
  return std::nullopt;
}

std::optional<Value> dict_method(const Value& d, const std::string& name) {
  if (name == "get") {
    return method(name, [d](Interpreter&, CallArgs& a) -> Expected<Value> {
      FRUGAL_ASSIGN_OR_RETURN(auto p, bind(a, {"key", "default"}, "get"));
      if (!p[0]) return invalid_argument("get expected at least 1 argument, got 0");
      if (const Value* v = d.dict_data().find(*p[0])) return *v;
      return p[1] ? *p[1] : Value::none();
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    return method(name, [d, name](Interpreter&, CallArgs&) -> Expected<Value> {
      std::vector<Value> out;
      for (const auto& [k, v] : d.dict_data().items) {
        if (name == "items")
          out.push_back(Value::list({k, v}, true));
        else
          out.push_back(name == "keys" ? k : v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear")
    return refused_method(d, name);
  return std::nullopt;
}

std::optional<Value> list_method(const Value& l, const std::string& name) {
  if (name == "index" || name == "count") {
    return method(name, [l, name](Interpreter&, CallArgs& a) -> Expected<Value> {
      if (a.positional.size() != 1) return invalid_argument(name + "() takes exactly one argument");
      int64_t n = 0, i = 0;
      for (const auto& v : l.list_data().items) {
        if (values_equal(v, a.positional[0])) {
          if (name == "index") return Value(i);
          ++n;
        }
        ++i;
      }
      if (name == "index") return invalid_argument(to_repr_string(a.positional[0]) + " is not in list");
      return Value(n);
    });
  }
  if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
      name == "reverse" || name == "sort" || name == "clear")
    return refused_method(l, name);
  return std::nullopt;
}

}  // namespace

std::optional<Value> find_method(const Value& object, const std::string& name) {
  if (object.is_string()) return string_method(object.as_string(), name);
  if (object.is_dict() && !object.is_namespace()) return dict_method(object, name);
  if (object.is_list()) return list_method(object, name);
  return std::nullopt;
}

void add_global_functions(std::vector<std::pair<std::string, Value>>& globals) {
  globals.emplace_back("range", Value::callable("range", [](Interpreter& in, CallArgs& a) -> Expected<Value> {
    if (!a.keywords.empty()) return invalid_argument("range() takes no keyword arguments");
    if (a.positional.empty() || a.positional.size() > 3)
      return invalid_argument("range expected 1 to 3 arguments, got " + std::to_string(a.positional.size()));
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < a.positional.size(); ++i) {
      FRUGAL_ASSIGN_OR_RETURN(v[i], int_arg(a.positional[i], "range() argument"));
    }
    int64_t start = 0, stop = 0, step = 1;
    if (a.positional.size() == 1) {
      stop = v[0];
    } else {
      start = v[0];
      stop = v[1];
      step = a.positional.size() == 3 ? v[2] : 1;
    }
    if (step == 0) return invalid_argument("range() arg 3 must not be zero");
    // Count first so that range(10**12) is refused before anything is built.
    const __int128 lo = start, hi = stop, st = step;
    __int128 count = 0;
    if (st > 0 && hi > lo) count = (hi - lo - 1) / st + 1;
    if (st < 0 && lo > hi) count = (lo - hi - 1) / -st + 1;
    if (count > static_cast<__int128>(SIZE_MAX / 2)) count = SIZE_MAX / 2;
    FRUGAL_RETURN_IF_ERROR(in.check_container_size(static_cast<size_t>(count), 0));
    std::vector<Value> items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.emplace_back(i);
    return Value::list(std::move(items));
  }));
  globals.emplace_back("namespace", Value::callable("namespace", [](Interpreter&, CallArgs& a) -> Expected<Value> {
    Value ns = Value::namespace_object();
    for (const auto& p : a.positional) {
      if (!p.is_dict() || p.is_namespace()) return invalid_argument("namespace() positional argument must be a dict");
      for (const auto& [k, v] : p.dict_data().items) ns.dict_data().set(k, v);
    }
    for (const auto& [k, v] : a.keywords) ns.dict_data().set(Value(k), v);
    return ns;
  }));
  globals.emplace_back("dict", Value::callable("dict", [](Interpreter&, CallArgs& a) -> Expected<Value> {
    Value d = Value::dict();
    for (const auto& p : a.positional) {
      if (!p.is_dict() || p.is_namespace()) return invalid_argument("dict() positional argument must be a dict");
      for (const auto& [k, v] : p.dict_data().items) d.dict_data().set(k, v);
    }
    for (const auto& [k, v] : a.keywords) d.dict_data().set(Value(k), v);
    return d;
  }));
  globals.emplace_back("raise_exception", Value::callable("raise_exception", [](Interpreter&, CallArgs& a) -> Expected<Value> {
    const std::string message = a.positional.empty() ? std::string() : to_display_string(a.positional[0]);
    return invalid_argument("the template raised an error: " + message);
  }));
  globals.emplace_back("strftime_now", Value::callable("strftime_now", [](Interpreter& in, CallArgs& a) -> Expected<Value> {
    if (a.positional.size() != 1 || !a.positional[0].is_string())
      return invalid_argument("strftime_now() takes one format string");
    const std::string& fmt = a.positional[0].as_string();
    if (fmt.size() > 256) return invalid_argument("strftime_now(): format string longer than 256 bytes");
    std::tm tm{};
    if (in.options().now) {
      tm = *in.options().now;
    } else {
      const std::time_t now = std::time(nullptr);
      localtime_r(&now, &tm);
    }
    std::string buf(1024, '\0');
    const size_t n = fmt.empty() ? 0 : std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n == 0 && !fmt.empty()) return invalid_argument("strftime_now(): the formatted date is empty or too long");
    buf.resize(n);
    return Value(std::move(buf));
  }));
}

}  // namespace frugal::jinja
