// Tree-walking interpreter for parsed templates, with hard limits so that a
// hostile or buggy template fails with a Status instead of hanging the
// server or exhausting memory.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace frugal::jinja {

// How deeply lists and dicts may nest. Printing, comparing and freeing
// values recurse over their nesting, so it is bounded (Python itself stops
// near 1000).
inline constexpr int kMaxValueDepth = 256;

struct RenderLimits {
  int64_t max_steps = 1'000'000;          // expression evaluations + statement executions
  int64_t max_loop_iterations = 100'000;  // all loop iterations of one render together
  size_t max_output_bytes = 1 << 20;      // the rendered text, and any captured block
  size_t max_string_bytes = 1 << 20;      // any string built while rendering
  size_t max_container_items = 100'000;   // any list built while rendering (range(), l * n, ...)
  int max_call_depth = 64;                // nested macro calls
};

struct RenderOptions {
  RenderLimits limits;
  // The local time strftime_now() formats; the current local time when unset
  // (tests pin it so that date-dependent templates render reproducibly).
  std::optional<std::tm> now;
};

// Error codes of a failed render:
//   kInvalidArgument    the template called raise_exception(), or evaluation
//                       failed (undefined value used, wrong types)
//   kResourceExhausted  a RenderLimits bound was hit
//   kUnsupported        the template needs a feature this engine lacks
class Interpreter {
 public:
  Interpreter(const RenderOptions& options, Value context);

  Expected<std::string> render(const Body& body);

  // Services for built-in filters, tests and functions.
  Expected<Value> call(const Value& callee, CallArgs& args, int line);
  Expected<Value> apply_filter(const std::string& name, const Value& subject, CallArgs& args, int line);
  Expected<bool> apply_test(const std::string& name, const Value& subject, CallArgs& args, int line);
  // Attribute access as Jinja's sandbox does it: "x.name" (attribute first,
  // then item) and "x[key]" (item first, then attribute).
  Expected<Value> get_attribute(const Value& object, const std::string& name, int line);
  Expected<Value> get_item(const Value& object, const Value& key, int line);
  // The elements a for loop over `v` visits (dict: keys; str: characters).
  Expected<std::vector<Value>> iterate(const Value& v, int line);

  Status error(int line, const std::string& message) const;
  Status check_string_size(size_t bytes, int line) const;
  Status check_container_size(size_t items, int line) const;
  const RenderOptions& options() const { return options_; }

 private:
  struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    std::shared_ptr<Frame> parent;
    const Value* find(const std::string& name) const;
    void set(const std::string& name, Value v);
  };
  using FramePtr = std::shared_ptr<Frame>;
  enum class Flow { kNormal, kBreak, kContinue };

  Status exec_body(const Body& body);
  Status exec(const Stmt& s);
  Status exec_for(const Stmt& s);
  Status exec_set(const Stmt& s);
  Status exec_macro_definition(const Stmt& s);
  Status exec_call_block(const Stmt& s);
  Status append_output(const std::string& text, int line);
  // Renders body into a string instead of the output.
  Expected<std::string> capture(const Body& body);
  Expected<Value> apply_filter_chain(const std::vector<ExprPtr>& filters, Value subject);
  Expected<Value> call_macro(const Stmt& macro, const FramePtr& closure, CallArgs& args, int line);

  Expected<Value> eval(const Expr& e);
  Expected<Value> eval_node(const Expr& e);
  Expected<Value> eval_binary(const Expr& e);
  Expected<Value> eval_compare(const Expr& e);
  Expected<Value> eval_slice(const Expr& e);
  Expected<CallArgs> eval_args(const Expr& e, size_t first_positional);
  Status count_step(int line);

  RenderOptions options_;
  FramePtr globals_;
  FramePtr frame_;
  std::string out_;
  Flow flow_ = Flow::kNormal;
  int64_t steps_ = 0;
  int64_t loop_iterations_ = 0;
  int call_depth_ = 0;
};

// Binary operators with Python semantics (+ - * / // % ** ~), shared with
// filters such as sum.
Expected<Value> binary_operation(Interpreter& in, const std::string& op, const Value& a, const Value& b, int line);

// Built-in filters, tests, methods of str/dict/list values, and global
// functions (range, namespace, dict, raise_exception, strftime_now).
using FilterFn = Expected<Value> (*)(Interpreter&, const Value&, CallArgs&, int line);
using TestFn = Expected<bool> (*)(Interpreter&, const Value&, CallArgs&, int line);
FilterFn find_filter(const std::string& name);
TestFn find_test(const std::string& name);
// A bound method of a str/dict/list value, or nullopt if the type has none by
// that name.
std::optional<Value> find_method(const Value& object, const std::string& name);
void add_global_functions(std::vector<std::pair<std::string, Value>>& globals);

}  // namespace frugal::jinja
