// Statement execution and expression evaluation. Scoping follows Jinja2:
// each for-loop iteration, macro call and with-block gets its own frame, so
// a {% set %} inside them is invisible outside (templates use namespace()
// to carry state out of loops); {% if %} shares the enclosing frame.
#include "tokenizer/jinja/interpreter.h"

#include <cmath>

namespace frugal::jinja {

const Value* Interpreter::Frame::find(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent.get())
    for (const auto& [k, v] : f->vars)
      if (k == name) return &v;
  return nullptr;
}

void Interpreter::Frame::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars) {
    if (k == name) {
      old = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

Interpreter::Interpreter(const RenderOptions& options, Value context) : options_(options) {
  globals_ = std::make_shared<Frame>();
  add_global_functions(globals_->vars);
  if (context.is_dict())
    for (const auto& [k, v] : context.dict_data().items)
      if (k.is_string()) globals_->set(k.as_string(), v);
  frame_ = std::make_shared<Frame>();
  frame_->parent = globals_;
}

namespace {

// "line N: message"; without a line (inside a built-in function) call()
// adds the caller's line instead.
std::string at_line(int line, const std::string& message) {
  if (line <= 0) return message;
  return "line " + std::to_string(line) + ": " + message;
}

Status exhausted(int line, const std::string& message) { return Status(ErrorCode::kResourceExhausted, at_line(line, message)); }

}  // namespace

Status Interpreter::error(int line, const std::string& message) const { return invalid_argument(at_line(line, message)); }

Status Interpreter::check_string_size(size_t bytes, int line) const {
  if (bytes > options_.limits.max_string_bytes)
    return exhausted(line, "a string of " +
                                                     std::to_string(bytes) + " bytes exceeds the limit of " +
                                                     std::to_string(options_.limits.max_string_bytes) + " bytes");
  return Status::Ok();
}

Status Interpreter::check_container_size(size_t items, int line) const {
  if (items > options_.limits.max_container_items)
    return exhausted(line, "a list of " +
                                                     std::to_string(items) + " items exceeds the limit of " +
                                                     std::to_string(options_.limits.max_container_items) + " items");
  return Status::Ok();
}

Status Interpreter::count_step(int line) {
  if (++steps_ > options_.limits.max_steps)
    return exhausted(line, "rendering took more than " +
                                                     std::to_string(options_.limits.max_steps) +
                                                     " steps (step limit)");
  return Status::Ok();
}

Expected<std::string> Interpreter::render(const Body& body) {
  FRUGAL_RETURN_IF_ERROR(exec_body(body));
  return std::move(out_);
}

Status Interpreter::append_output(const std::string& text, int line) {
  if (out_.size() + text.size() > options_.limits.max_output_bytes)
    return exhausted(line, "output exceeds the limit of " +
                                                     std::to_string(options_.limits.max_output_bytes) +
                                                     " bytes (output size limit)");
  out_ += text;
  return Status::Ok();
}

Expected<std::string> Interpreter::capture(const Body& body) {
  std::string saved;
  saved.swap(out_);
  Status st = exec_body(body);
  std::string captured;
  captured.swap(out_);
  out_.swap(saved);
  FRUGAL_RETURN_IF_ERROR(st);
  return captured;
}

Status Interpreter::exec_body(const Body& body) {
  for (const auto& s : body) {
    FRUGAL_RETURN_IF_ERROR(exec(*s));
    if (flow_ != Flow::kNormal) return Status::Ok();
  }
  return Status::Ok();
}

Status Interpreter::exec(const Stmt& s) {
  FRUGAL_RETURN_IF_ERROR(count_step(s.line));
  switch (s.kind) {
    case Stmt::Kind::kText: return append_output(s.text, s.line);
    case Stmt::Kind::kOutput: {
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
      return append_output(to_display_string(v), s.line);
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < s.conditions.size(); ++i) {
        FRUGAL_ASSIGN_OR_RETURN(Value cond, eval(*s.conditions[i]));
        if (cond.truthy()) return exec_body(s.bodies[i]);
      }
      if (s.has_else) return exec_body(s.bodies.back());
      return Status::Ok();
    case Stmt::Kind::kFor: return exec_for(s);
    case Stmt::Kind::kSet: return exec_set(s);
    case Stmt::Kind::kSetBlock: {
      FRUGAL_ASSIGN_OR_RETURN(std::string text, capture(s.bodies[0]));
      FRUGAL_ASSIGN_OR_RETURN(Value v, apply_filter_chain(s.filters, Value(std::move(text))));
      frame_->set(s.targets[0], std::move(v));
      return Status::Ok();
    }
    case Stmt::Kind::kMacro: return exec_macro_definition(s);
    case Stmt::Kind::kCallBlock: return exec_call_block(s);
    case Stmt::Kind::kFilterBlock: {
      FRUGAL_ASSIGN_OR_RETURN(std::string text, capture(s.bodies[0]));
      FRUGAL_ASSIGN_OR_RETURN(Value v, apply_filter_chain(s.filters, Value(std::move(text))));
      return append_output(to_display_string(v), s.line);
    }
    case Stmt::Kind::kWith: {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame_;
      for (size_t i = 0; i < s.targets.size(); ++i) {
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.values[i]));
        inner->set(s.targets[i], std::move(v));
      }
      FramePtr saved = frame_;
      frame_ = inner;
      Status st = exec_body(s.bodies[0]);
      frame_ = saved;
      return st;
    }
    case Stmt::Kind::kBreak: flow_ = Flow::kBreak; return Status::Ok();
    case Stmt::Kind::kContinue: flow_ = Flow::kContinue; return Status::Ok();
    case Stmt::Kind::kScope: return exec_body(s.bodies[0]);
  }
  return internal_error("unknown statement kind");
}

Expected<std::vector<Value>> Interpreter::iterate(const Value& v, int line) {
  std::vector<Value> items;
  switch (v.kind()) {
    case Value::Kind::kUndefined: return items;  // Undefined iterates as empty
    case Value::Kind::kList: return v.list_data().items;
    case Value::Kind::kDict:
      if (v.is_namespace()) break;
      for (const auto& [k, _] : v.dict_data().items) items.push_back(k);
      return items;
    case Value::Kind::kString:
      for (char32_t cp : utf8_to_code_points(v.as_string())) items.emplace_back(code_points_to_utf8(std::u32string(1, cp)));
      return items;
    default: break;
  }
  return error(line, "'" + v.type_name() + "' object is not iterable");
}

namespace {

Status unpack(Interpreter& in, const std::vector<std::string>& targets, const Value& v, int line,
              std::vector<std::pair<std::string, Value>>& out) {
  if (targets.size() == 1) {
    out.emplace_back(targets[0], v);
    return Status::Ok();
  }
  FRUGAL_ASSIGN_OR_RETURN(auto items, in.iterate(v, line));
  if (items.size() != targets.size())
    return in.error(line, items.size() < targets.size()
                              ? "not enough values to unpack (expected " + std::to_string(targets.size()) + ", got " +
                                    std::to_string(items.size()) + ")"
                              : "too many values to unpack (expected " + std::to_string(targets.size()) + ")");
  for (size_t i = 0; i < targets.size(); ++i) out.emplace_back(targets[i], items[i]);
  return Status::Ok();
}

}  // namespace

Status Interpreter::exec_for(const Stmt& s) {
  FRUGAL_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr));
  FRUGAL_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(iterable, s.line));
  const FramePtr outer = frame_;

  if (s.condition) {  // "for x in xs if cond": filter before looping, so loop.length counts the kept items
    std::vector<Value> kept;
    for (auto& item : items) {
      FRUGAL_RETURN_IF_ERROR(count_step(s.line));
      auto f = std::make_shared<Frame>();
      f->parent = outer;
      std::vector<std::pair<std::string, Value>> bound;
      FRUGAL_RETURN_IF_ERROR(unpack(*this, s.targets, item, s.line, bound));
      for (auto& [k, v] : bound) f->set(k, std::move(v));
      frame_ = f;
      auto cond = eval(*s.condition);
      frame_ = outer;
      if (!cond.ok()) return cond.status();
      if (cond->truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }

  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    if (++loop_iterations_ > options_.limits.max_loop_iterations)
      return exhausted(s.line, "more than " +
                                                       std::to_string(options_.limits.max_loop_iterations) +
                                                       " loop iterations (loop iteration limit)");
    auto f = std::make_shared<Frame>();
    f->parent = outer;
    std::vector<std::pair<std::string, Value>> bound;
    FRUGAL_RETURN_IF_ERROR(unpack(*this, s.targets, items[static_cast<size_t>(i)], s.line, bound));
    for (auto& [k, v] : bound) f->set(k, std::move(v));
    Value loop = Value::dict();
    auto& d = loop.dict_data();
    d.set("index", Value(i + 1));
    d.set("index0", Value(i));
    d.set("revindex", Value(n - i));
    d.set("revindex0", Value(n - i - 1));
    d.set("first", Value(i == 0));
    d.set("last", Value(i == n - 1));
    d.set("length", Value(n));
    d.set("depth", Value(1));
    d.set("depth0", Value(0));
    d.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    d.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    d.set("cycle", Value::callable("loop.cycle", [i](Interpreter& in, CallArgs& a) -> Expected<Value> {
            if (a.positional.empty()) return in.error(0, "no items for cycling given");
            return a.positional[static_cast<size_t>(i) % a.positional.size()];
          }));
    f->set("loop", std::move(loop));
    frame_ = f;
    Status st = exec_body(s.bodies[0]);
    frame_ = outer;
    FRUGAL_RETURN_IF_ERROR(st);
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  if (n == 0 && s.has_else) return exec_body(s.bodies[1]);
  return Status::Ok();
}

Status Interpreter::exec_set(const Stmt& s) {
  FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
  if (!s.name.empty()) {  // {% set ns.attr = v %}
    const Value* target = frame_->find(s.targets[0]);
    if (target == nullptr || !target->is_namespace())
      return error(s.line, "cannot assign attribute on non-namespace object");
    // Only namespaces change after creation, so refusing namespaces inside
    // them rules out reference cycles (which could not be printed or freed).
    if (v.holds_namespace()) return error(s.line, "a namespace attribute cannot hold a namespace object");
    Value ns = *target;  // shares the namespace's storage
    ns.dict_data().set(Value(s.name), std::move(v));
    return Status::Ok();
  }
  std::vector<std::pair<std::string, Value>> bound;
  FRUGAL_RETURN_IF_ERROR(unpack(*this, s.targets, v, s.line, bound));
  for (auto& [k, val] : bound) frame_->set(k, std::move(val));
  return Status::Ok();
}

Status Interpreter::exec_macro_definition(const Stmt& s) {
  const Stmt* macro = &s;
  // The frame holds the macro and the macro refers to the frame: a weak
  // reference keeps that from being a reference cycle (a leak).
  std::weak_ptr<Frame> closure = frame_;
  frame_->set(s.name, Value::callable(s.name, [macro, closure](Interpreter& in, CallArgs& args) -> Expected<Value> {
                FramePtr scope = closure.lock();
                if (!scope) return in.error(macro->line, "macro '" + macro->name + "' was called after its scope ended");
                return in.call_macro(*macro, scope, args, macro->line);
              }));
  return Status::Ok();
}

Expected<Value> Interpreter::call_macro(const Stmt& macro, const FramePtr& closure, CallArgs& args, int line) {
  if (call_depth_ >= options_.limits.max_call_depth)
    return exhausted(line, "macro calls nested deeper than " +
                                                     std::to_string(options_.limits.max_call_depth) + " levels");
  auto f = std::make_shared<Frame>();
  f->parent = closure;
  const auto& params = macro.targets;
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < params.size())
      f->set(params[i], args.positional[i]);
    else
      varargs.push_back(args.positional[i]);
  }
  Value kwargs = Value::dict();
  for (auto& [k, v] : args.keywords) {
    bool is_param = false;
    for (const auto& p : params) is_param |= p == k;
    if (is_param || k == "caller")
      f->set(k, v);
    else
      kwargs.dict_data().set(Value(k), v);
  }
  const FramePtr saved = frame_;
  frame_ = f;
  for (size_t i = 0; i < params.size(); ++i) {
    bool bound = false;
    for (const auto& [k, _] : f->vars) bound |= k == params[i];
    if (bound) continue;
    if (macro.values[i]) {
      auto def = eval(*macro.values[i]);  // defaults see the earlier parameters
      if (!def.ok()) {
        frame_ = saved;
        return def.status();
      }
      f->set(params[i], std::move(*def));
    } else {
      f->set(params[i], Value::undefined("parameter '" + params[i] + "' was not provided"));
    }
  }
  f->set("varargs", Value::list(std::move(varargs)));
  f->set("kwargs", std::move(kwargs));
  ++call_depth_;
  auto out = capture(macro.bodies[0]);
  --call_depth_;
  frame_ = saved;
  flow_ = Flow::kNormal;
  if (!out.ok()) return out.status();
  return Value(std::move(*out));
}

Status Interpreter::exec_call_block(const Stmt& s) {
  const Expr& call = *s.expr;
  FRUGAL_ASSIGN_OR_RETURN(Value callee, eval(*call.args[0]));
  FRUGAL_ASSIGN_OR_RETURN(CallArgs args, eval_args(call, 1));
  const Stmt* block = &s;
  std::weak_ptr<Frame> closure = frame_;  // weak for the same reason as macros
  args.keywords.emplace_back("caller", Value::callable("caller", [block, closure](Interpreter& in, CallArgs& a) -> Expected<Value> {
                               FramePtr scope = closure.lock();
                               if (!scope) return in.error(block->line, "caller() was called after its scope ended");
                               return in.call_macro(*block, scope, a, block->line);
                             }));
  FRUGAL_ASSIGN_OR_RETURN(Value result, this->call(callee, args, s.line));
  return append_output(to_display_string(result), s.line);
}

Expected<Value> Interpreter::apply_filter_chain(const std::vector<ExprPtr>& filters, Value subject) {
  for (const auto& f : filters) {
    FRUGAL_ASSIGN_OR_RETURN(CallArgs args, eval_args(*f, 1));
    FRUGAL_ASSIGN_OR_RETURN(subject, apply_filter(f->name, subject, args, f->line));
  }
  return subject;
}

Expected<Value> Interpreter::call(const Value& callee, CallArgs& args, int line) {
  if (callee.is_callable()) {
    auto result = callee.callable_data().fn(*this, args);
    if (!result.ok()) {
      const Status& st = result.status();
      if (st.message().rfind("line ", 0) == 0) return st;  // already says where
      return Status(st.code(), "line " + std::to_string(line) + ": " + st.message());
    }
    return result;
  }
  if (callee.is_undefined()) return error(line, callee.undefined_hint());
  return error(line, "'" + callee.type_name() + "' object is not callable");
}

Expected<Value> Interpreter::apply_filter(const std::string& name, const Value& subject, CallArgs& args, int line) {
  FilterFn fn = find_filter(name);
  if (fn == nullptr) return Status(ErrorCode::kUnsupported, "line " + std::to_string(line) + ": no filter named '" + name + "'");
  return fn(*this, subject, args, line);
}

Expected<bool> Interpreter::apply_test(const std::string& name, const Value& subject, CallArgs& args, int line) {
  TestFn fn = find_test(name);
  if (fn == nullptr) return Status(ErrorCode::kUnsupported, "line " + std::to_string(line) + ": no test named '" + name + "'");
  return fn(*this, subject, args, line);
}

Expected<Value> Interpreter::get_attribute(const Value& object, const std::string& name, int line) {
  if (object.is_undefined()) return error(line, object.undefined_hint());
  if (name.rfind("_", 0) == 0)  // the sandbox hides private and dunder attributes
    return Value::undefined("access to attribute '" + name + "' of '" + object.type_name() + "' object is unsafe");
  if (object.is_namespace()) {
    if (const Value* v = object.dict_data().find(name)) return *v;
    return Value::undefined("'Namespace' object has no attribute '" + name + "'");
  }
  if (auto method = find_method(object, name)) return *method;
  if (object.is_dict()) {
    if (const Value* v = object.dict_data().find(name)) return *v;
    return Value::undefined("'dict object' has no attribute '" + name + "'");
  }
  return Value::undefined("'" + object.type_name() + " object' has no attribute '" + name + "'");
}

Expected<Value> Interpreter::get_item(const Value& object, const Value& key, int line) {
  if (object.is_undefined()) return error(line, object.undefined_hint());
  if (object.is_dict() && !object.is_namespace()) {
    if (const Value* v = object.dict_data().find(key)) return *v;
  } else if (object.is_list() || object.is_string()) {
    if (key.is_int() || key.is_bool()) {
      int64_t i = key.is_bool() ? (key.as_bool() ? 1 : 0) : key.as_int();
      if (object.is_list()) {
        const auto& items = object.list_data().items;
        const int64_t n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
      } else {
        const std::u32string cps = utf8_to_code_points(object.as_string());
        const int64_t n = static_cast<int64_t>(cps.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value(code_points_to_utf8(cps.substr(static_cast<size_t>(i), 1)));
      }
      return Value::undefined("'" + object.type_name() + " object' has no element " + std::to_string(key.as_int()));
    }
  }
  if (key.is_string()) return get_attribute(object, key.as_string(), line);
  return Value::undefined("'" + object.type_name() + " object' has no element " + to_repr_string(key));
}

Expected<CallArgs> Interpreter::eval_args(const Expr& e, size_t first_positional) {
  CallArgs args;
  for (size_t i = first_positional; i < e.args.size(); ++i) {
    FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.args[i]));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [k, expr] : e.kwargs) {
    FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*expr));
    args.keywords.emplace_back(k, std::move(v));
  }
  return args;
}

Expected<Value> Interpreter::eval(const Expr& e) {
  FRUGAL_RETURN_IF_ERROR(count_step(e.line));
  FRUGAL_ASSIGN_OR_RETURN(Value v, eval_node(e));
  if (v.nesting_depth() > kMaxValueDepth)
    return exhausted(e.line, "lists or dicts nested deeper than " +
                                                     std::to_string(kMaxValueDepth) + " levels");
  return v;
}

Expected<Value> Interpreter::eval_node(const Expr& e) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::kLiteral: return e.literal;
    case K::kName: {
      if (const Value* v = frame_->find(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case K::kList:
    case K::kTuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) {
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*a));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items), e.kind == K::kTuple);
    }
    case K::kDict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        FRUGAL_ASSIGN_OR_RETURN(Value k, eval(*e.args[i]));
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1]));
        if (k.is_list() || k.is_dict() || k.is_undefined()) return error(e.line, "unhashable type: '" + k.type_name() + "'");
        d.dict_data().set(std::move(k), std::move(v));
      }
      return d;
    }
    case K::kGetAttr: {
      FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
      return get_attribute(obj, e.name, e.line);
    }
    case K::kGetItem: {
      FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
      FRUGAL_ASSIGN_OR_RETURN(Value key, eval(*e.args[1]));
      return get_item(obj, key, e.line);
    }
    case K::kSlice: return eval_slice(e);
    case K::kCall: {
      FRUGAL_ASSIGN_OR_RETURN(Value callee, eval(*e.args[0]));
      FRUGAL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
      return call(callee, args, e.line);
    }
    case K::kFilter: {
      FRUGAL_ASSIGN_OR_RETURN(Value subject, eval(*e.args[0]));
      FRUGAL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
      return apply_filter(e.name, subject, args, e.line);
    }
    case K::kTest: {
      FRUGAL_ASSIGN_OR_RETURN(Value subject, eval(*e.args[0]));
      FRUGAL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1));
      FRUGAL_ASSIGN_OR_RETURN(bool r, apply_test(e.name, subject, args, e.line));
      return Value(r != e.negated);
    }
    case K::kNegate:
    case K::kPlus: {
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
      if (v.is_undefined()) return error(e.line, v.undefined_hint());
      if (!v.is_number()) return error(e.line, "bad operand type for unary " + std::string(e.kind == K::kNegate ? "-" : "+") + ": '" + v.type_name() + "'");
      if (e.kind == K::kPlus) return v.is_bool() ? Value(static_cast<int64_t>(v.as_bool())) : v;
      if (v.is_float()) return Value(-v.as_float());
      const int64_t i = v.is_bool() ? static_cast<int64_t>(v.as_bool()) : v.as_int();
      if (i == INT64_MIN) return error(e.line, "integer overflow");
      return Value(-i);
    }
    case K::kNot: {
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
      return Value(!v.truthy());
    }
    case K::kAnd: {
      FRUGAL_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
      if (!left.truthy()) return left;
      return eval(*e.args[1]);
    }
    case K::kOr: {
      FRUGAL_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
      if (left.truthy()) return left;
      return eval(*e.args[1]);
    }
    case K::kBinary: return eval_binary(e);
    case K::kCompare: return eval_compare(e);
    case K::kCondition: {
      FRUGAL_ASSIGN_OR_RETURN(Value cond, eval(*e.args[0]));
      if (cond.truthy()) return eval(*e.args[1]);
      if (e.args[2]) return eval(*e.args[2]);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  return internal_error("unknown expression kind");
}

Expected<Value> Interpreter::eval_binary(const Expr& e) {
  FRUGAL_ASSIGN_OR_RETURN(Value a, eval(*e.args[0]));
  FRUGAL_ASSIGN_OR_RETURN(Value b, eval(*e.args[1]));
  return binary_operation(*this, e.name, a, b, e.line);
}

namespace {

Expected<bool> contains(Interpreter& in, const Value& container, const Value& item, int line) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string())
        return in.error(line, "'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.list_data().items)
        if (values_equal(v, item)) return true;
      return false;
    case Value::Kind::kDict:
      if (container.is_namespace()) break;
      return container.dict_data().find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: break;
  }
  return in.error(line, "argument of type '" + container.type_name() + "' is not iterable");
}

}  // namespace

Expected<Value> Interpreter::eval_compare(const Expr& e) {
  FRUGAL_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    FRUGAL_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1]));
    const std::string& op = e.ops[i];
    bool r = false;
    if (op == "==") {
      r = values_equal(left, right);
    } else if (op == "!=") {
      r = !values_equal(left, right);
    } else if (op == "in" || op == "notin") {
      FRUGAL_ASSIGN_OR_RETURN(bool c, contains(*this, right, left, e.line));
      r = (op == "in") == c;
    } else {
      if (left.is_undefined()) return error(e.line, left.undefined_hint());
      if (right.is_undefined()) return error(e.line, right.undefined_hint());
      Expected<bool> less = (op == "<" || op == ">=") ? value_less(left, right) : value_less(right, left);
      if (!less.ok()) return error(e.line, less.status().message());
      if (op == "<" || op == ">")
        r = *less;
      else  // a <= b is not (b < a)
        r = !*less;
    }
    if (!r) return Value(false);  // chained comparisons stop at the first false one
    left = std::move(right);
  }
  return Value(true);
}

namespace {

// Python's slice.indices(): clamps bounds for a sequence of length n.
Status slice_indices(Interpreter& in, const Value* start_v, const Value* stop_v, const Value* step_v, int64_t n,
                     int line, int64_t& start, int64_t& stop, int64_t& step) {
  auto to_int = [&](const Value* v, int64_t& out) -> Status {
    if (v == nullptr || v->is_none()) return Status(ErrorCode::kNotFound, "");
    if (v->is_int()) {
      out = v->as_int();
      return Status::Ok();
    }
    if (v->is_bool()) {
      out = v->as_bool();
      return Status::Ok();
    }
    return in.error(line, "slice indices must be integers or None");
  };
  step = 1;
  Status st = to_int(step_v, step);
  if (!st.ok() && st.code() != ErrorCode::kNotFound) return st;
  if (step == 0) return in.error(line, "slice step cannot be zero");
  const int64_t lower = step < 0 ? -1 : 0;
  const int64_t upper = step < 0 ? n - 1 : n;
  auto clamp = [&](const Value* v, int64_t def, int64_t& out) -> Status {
    int64_t x = 0;
    Status s = to_int(v, x);
    if (s.code() == ErrorCode::kNotFound) {
      out = def;
      return Status::Ok();
    }
    FRUGAL_RETURN_IF_ERROR(s);
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    out = x;
    return Status::Ok();
  };
  FRUGAL_RETURN_IF_ERROR(clamp(start_v, step < 0 ? upper : lower, start));
  FRUGAL_RETURN_IF_ERROR(clamp(stop_v, step < 0 ? lower : upper, stop));
  return Status::Ok();
}

}  // namespace

Expected<Value> Interpreter::eval_slice(const Expr& e) {
  FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
  Value bounds[3];
  const Value* ptrs[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    if (e.args[static_cast<size_t>(i) + 1]) {
      FRUGAL_ASSIGN_OR_RETURN(bounds[i], eval(*e.args[static_cast<size_t>(i) + 1]));
      ptrs[i] = &bounds[i];
    }
  }
  if (obj.is_undefined()) return error(e.line, obj.undefined_hint());
  if (!obj.is_list() && !obj.is_string()) return error(e.line, "'" + obj.type_name() + "' object is not subscriptable");
  std::u32string cps;
  int64_t n = 0;
  if (obj.is_string()) {
    cps = utf8_to_code_points(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else {
    n = static_cast<int64_t>(obj.list_data().items.size());
  }
  int64_t start = 0, stop = 0, step = 1;
  FRUGAL_RETURN_IF_ERROR(slice_indices(*this, ptrs[0], ptrs[1], ptrs[2], n, e.line, start, stop, step));
  std::vector<size_t> picked;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picked.push_back(static_cast<size_t>(i));
  if (obj.is_string()) {
    std::u32string out;
    for (size_t i : picked) out += cps[i];
    return Value(code_points_to_utf8(out));
  }
  std::vector<Value> items;
  for (size_t i : picked) items.push_back(obj.list_data().items[i]);
  return Value::list(std::move(items), obj.list_data().is_tuple);
}

}  // namespace frugal::jinja
