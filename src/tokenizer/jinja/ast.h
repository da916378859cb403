// Syntax tree of a parsed template. Expressions and statements are plain
// tagged structs: the interpreter switches on the kind.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace frugal::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // args: items
    kTuple,      // args: items
    kDict,       // args: key, value, key, value, ...
    kGetAttr,    // args[0].name
    kGetItem,    // args[0][args[1]]
    kSlice,      // args[0][args[1]:args[2]:args[3]] (each bound may be null)
    kCall,       // args[0](args[1..], kwargs)
    kFilter,     // args[0] | name(args[1..], kwargs); args[0] is null inside {% filter %} / {% set x | f %}
    kTest,       // args[0] is [not] name(args[1..])
    kNegate,     // -args[0]
    kPlus,       // +args[0]
    kNot,        // not args[0]
    kBinary,     // args[0] <name> args[1]: + - * / // % ** ~
    kAnd,
    kOr,
    kCompare,    // args[0] ops[0] args[1] ops[1] args[2] ...  (==, !=, <, <=, >, >=, in, notin)
    kCondition,  // args[1] if args[0] else args[2] (args[2] may be null)
  };

  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;  // "is not"
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conditions[i] -> bodies[i]; bodies.size() == conditions.size() + 1 with an else
    kFor,          // for targets in expr [if condition] bodies[0] [else bodies[1]]
    kSet,          // set targets = expr, or set targets[0].attribute = expr
    kSetBlock,     // set targets[0] [| filters] bodies[0] endset
    kMacro,        // macro name(params = defaults) bodies[0]
    kCallBlock,    // call [(params)] expr bodies[0]: the body becomes the macro's caller()
    kFilterBlock,  // filter filters bodies[0]
    kWith,         // with targets = values bodies[0]
    kBreak,
    kContinue,
    kScope,        // bodies[0] rendered in place ({% generation %})
  };

  Kind kind;
  int line = 0;
  std::string text;
  std::string name;       // macro name; for kSet with an attribute target, the attribute
  ExprPtr expr;           // output / for iterable / set value / call-block call
  ExprPtr condition;      // for-loop filter
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  std::vector<std::string> targets;
  std::vector<ExprPtr> values;    // with-statement values / macro defaults (null: no default)
  std::vector<ExprPtr> filters;   // kFilter expressions with a null subject
  bool has_else = false;
};

}  // namespace frugal::jinja
