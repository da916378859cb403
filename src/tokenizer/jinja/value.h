// Values of the template language. They follow Python's data model as far
// as chat templates can observe it (Jinja2 evaluates templates as Python):
// None/bool/int/float/str/list/dict with Python truthiness, equality,
// printing (str() and repr()) and JSON encoding (json.dumps), plus Jinja's
// Undefined, namespace objects and callables (macros, built-in functions,
// bound methods).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "frugal/status.h"

namespace frugal::jinja {

class Value;
class Interpreter;

// Arguments of a call: positional values and keyword pairs in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;
};

// A list, or a tuple (same behaviour, but printed with parentheses).
struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  // Cached at construction (lists never change afterwards): how deeply
  // containers nest in it, and whether a namespace object is inside.
  int depth = 1;
  bool holds_namespace = false;
};

// An insertion-ordered dict (Python 3.7+ dicts keep insertion order, and
// templates print and JSON-encode dicts in that order). Lookups are linear:
// dicts in chat templates hold a handful of keys.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  bool is_namespace = false;  // Jinja's namespace(): attributes settable with {% set ns.x = ... %}
  int depth = 1;                 // see ListData; kept up to date by set() and append()
  bool holds_namespace = false;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);
  // Adds a key known not to be present yet.
  void append(Value key, Value value);
};

using NativeFunction = std::function<Expected<Value>(Interpreter&, CallArgs&)>;

struct CallableData {
  std::string name;
  NativeFunction fn;
};

// Jinja's Undefined: what a missing variable, attribute or key evaluates to.
// It prints as nothing and is falsy; most other uses are errors, reported
// with the hint saying what was missing.
struct UndefinedData {
  std::string hint;  // e.g. "'x' is undefined", "'dict object' has no attribute 'y'"
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() : v_(UndefinedData{}) {}
  static Value undefined(std::string hint) { return Value(UndefinedData{std::move(hint)}); }
  static Value none() { return Value(nullptr); }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  static Value list(std::vector<Value> items = {}, bool is_tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items = {});
  static Value namespace_object();
  static Value callable(std::string name, NativeFunction fn);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return is_dict() && dict_data().is_namespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  // Numbers (bool, int, float) as double, for mixed arithmetic.
  double to_double() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const ListData& list_data() const { return *std::get<std::shared_ptr<ListData>>(v_); }
  ListData& list_data() { return *std::get<std::shared_ptr<ListData>>(v_); }
  const DictData& dict_data() const { return *std::get<std::shared_ptr<DictData>>(v_); }
  DictData& dict_data() { return *std::get<std::shared_ptr<DictData>>(v_); }
  const CallableData& callable_data() const { return *std::get<std::shared_ptr<CallableData>>(v_); }
  const std::string& undefined_hint() const { return std::get<UndefinedData>(v_).hint; }

  // 0 for scalars, 1 for a flat list or dict, and so on.
  int nesting_depth() const;
  // Whether this is, or contains, a namespace object.
  bool holds_namespace() const;

  // Python truthiness (Undefined is falsy).
  bool truthy() const;
  // Python's type name, for error messages ("str", "list", "dict", ...).
  std::string type_name() const;

 private:
  explicit Value(UndefinedData u) : v_(std::move(u)) {}
  explicit Value(std::nullptr_t) : v_(nullptr) {}
  std::variant<UndefinedData, std::nullptr_t, bool, int64_t, double, std::string, std::shared_ptr<ListData>,
               std::shared_ptr<DictData>, std::shared_ptr<CallableData>>
      v_;
};

// Python ==, with Jinja's Undefined equal only to Undefined.
bool values_equal(const Value& a, const Value& b);

// Python's <, for sorting and comparisons; an error for unorderable types.
Expected<bool> value_less(const Value& a, const Value& b);

// str(value) as Jinja prints it: Undefined prints empty, None as "None".
std::string to_display_string(const Value& v);

// repr(value): strings quoted the way Python quotes them.
std::string to_repr_string(const Value& v);

// Python's repr() of a float ("1.0", "0.1", "1e+20").
std::string python_float_repr(double d);

struct JsonOptions {
  std::string indent;        // empty with has_indent=false: one line
  bool has_indent = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};

// json.dumps(value, ...) byte for byte; Undefined and callables are errors.
Expected<std::string> to_json(const Value& v, const JsonOptions& options);

// Python's str.title(), str.capitalize() etc. work on code points; these
// helpers split UTF-8 text into code points and back.
std::u32string utf8_to_code_points(std::string_view s);
std::string code_points_to_utf8(std::u32string_view s);
size_t utf8_length(std::string_view s);

}  // namespace frugal::jinja
