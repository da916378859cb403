// Recursive-descent parser following the structure of Jinja2's own parser
// (condexpr > or > and > not > compare > + - > ~ > * / // % > ** > unary >
// postfix > filters/tests), so precedence quirks match: filters bind tighter
// than arithmetic ("a + b | trim" trims b) and unary minus binds tighter
// than ** ("-2 ** 2" is 4).
#include "tokenizer/jinja/parser.h"

#include <charconv>
#include <cstdlib>

namespace frugal::jinja {
namespace {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Expected<Body> parse_template() {
    Body body;
    std::string end;
    FRUGAL_RETURN_IF_ERROR(parse_body({}, body, end));
    return body;
  }

 private:
  // ---- token helpers -------------------------------------------------------
  const Token& cur() const { return t_[pos_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(pos_ + n, t_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::kOperator && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& tok) {
    switch (tok.type) {
      case TokenType::kText: return "template text";
      case TokenType::kVarBegin: return "'{{'";
      case TokenType::kVarEnd: return "end of print statement";
      case TokenType::kBlockBegin: return "'{%'";
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kString: return "string";
      case TokenType::kInteger:
      case TokenType::kFloat: return "number " + tok.text;
      case TokenType::kEnd: return "end of template";
      default: return "'" + tok.text + "'";
    }
  }

  Status error_at(const Token& tok, const std::string& message) const {
    return invalid_argument("template syntax error at line " + std::to_string(tok.line) + ": " + message);
  }
  Status unexpected(const std::string& expected) const {
    return error_at(cur(), "expected " + expected + ", got " + describe(cur()));
  }
  Status expect_op(const char* op) {
    if (!skip_op(op)) return unexpected(std::string("'") + op + "'");
    return Status::Ok();
  }
  Status expect_block_end() {
    if (cur().type != TokenType::kBlockEnd) return unexpected("end of statement block");
    next();
    return Status::Ok();
  }
  Expected<std::string> expect_name() {
    if (cur().type != TokenType::kName) return unexpected("a name");
    std::string name = cur().text;
    next();
    return name;
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  Status check_depth() const {
    if (depth_ > kMaxNestingDepth)
      return error_at(cur(), "nesting deeper than " + std::to_string(kMaxNestingDepth) + " levels");
    return Status::Ok();
  }

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----------------------------------------------------------

  // Parses statements until a block tag whose keyword is in `ends`; leaves the
  // parser after that keyword and returns it in `end`.
  Status parse_body(const std::vector<std::string>& ends, Body& body, std::string& end) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    while (true) {
      const Token& tok = cur();
      switch (tok.type) {
        case TokenType::kEnd:
          if (ends.empty()) return Status::Ok();
          return error_at(tok, "unexpected end of template; expected '" + join(ends) + "'");
        case TokenType::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kText;
          s->line = tok.line;
          s->text = tok.text;
          body.push_back(std::move(s));
          next();
          break;
        }
        case TokenType::kVarBegin: {
          next();
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kOutput;
          s->line = tok.line;
          FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}));
          if (cur().type != TokenType::kVarEnd) return unexpected("end of print statement");
          next();
          body.push_back(std::move(s));
          break;
        }
        case TokenType::kBlockBegin: {
          next();
          if (cur().type == TokenType::kName) {
            for (const auto& e : ends) {
              if (cur().text == e) {
                end = e;
                next();
                return Status::Ok();
              }
            }
          }
          FRUGAL_ASSIGN_OR_RETURN(auto stmt, parse_statement(ends));
          if (stmt) body.push_back(std::move(stmt));
          break;
        }
        default: return unexpected("template text or a tag");
      }
    }
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : "' or '") + s;
    return out;
  }

  Expected<StmtPtr> parse_statement(const std::vector<std::string>& enclosing_ends) {
    if (cur().type != TokenType::kName) return unexpected("a statement name");
    const Token tok = cur();
    const std::string& kw = tok.text;
    if (kw == "include" || kw == "import" || kw == "from" || kw == "extends")
      return error_at(tok, "'" + kw + "' is not allowed: a chat template cannot load other templates");
    if (kw == "for") return parse_for();
    if (kw == "if") return parse_if();
    if (kw == "set") return parse_set();
    if (kw == "macro") return parse_macro();
    if (kw == "call") return parse_call_block();
    if (kw == "filter") return parse_filter_block();
    if (kw == "with") return parse_with();
    if (kw == "break" || kw == "continue") {
      next();
      if (loop_depth_ == 0) return error_at(tok, "'" + kw + "' outside of a loop");
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      auto s = std::make_unique<Stmt>();
      s->kind = kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      s->line = tok.line;
      return s;
    }
    if (kw == "print") {
      next();
      auto s = std::make_unique<Stmt>();
      s->kind = Stmt::Kind::kOutput;
      s->line = tok.line;
      FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    if (kw == "generation") {  // Hugging Face's tag marking assistant text; renders its body
      next();
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      auto s = std::make_unique<Stmt>();
      s->kind = Stmt::Kind::kScope;
      s->line = tok.line;
      s->bodies.emplace_back();
      std::string end;
      FRUGAL_RETURN_IF_ERROR(parse_body({"endgeneration"}, s->bodies[0], end));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    if (!enclosing_ends.empty())
      return error_at(tok, "encountered unknown tag '" + kw + "'; expected '" + join(enclosing_ends) + "'");
    return error_at(tok, "encountered unknown tag '" + kw + "'");
  }

  Expected<StmtPtr> parse_for() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kFor;
    s->line = cur().line;
    next();
    FRUGAL_RETURN_IF_ERROR(parse_target_names(s->targets));
    if (!skip_name("in")) return unexpected("'in'");
    FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, {"recursive"}));
    if (skip_name("if")) {
      FRUGAL_ASSIGN_OR_RETURN(s->condition, parse_expression(true));
    }
    if (is_name("recursive")) return error_at(cur(), "recursive loops are not supported");
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->bodies.emplace_back();
    std::string end;
    ++loop_depth_;
    Status st = parse_body({"endfor", "else"}, s->bodies[0], end);
    --loop_depth_;
    FRUGAL_RETURN_IF_ERROR(st);
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    if (end == "else") {
      s->has_else = true;
      s->bodies.emplace_back();
      FRUGAL_RETURN_IF_ERROR(parse_body({"endfor"}, s->bodies[1], end));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
    }
    return s;
  }

  // "x" or "a, b" or "(a, b)": the names a for loop or set assigns.
  Status parse_target_names(std::vector<std::string>& names) {
    const bool parenthesized = skip_op("(");
    while (true) {
      FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
      if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
          name == "None")
        return error_at(cur(), "cannot assign to '" + name + "'");
      names.push_back(std::move(name));
      if (!skip_op(",")) break;
      if (cur().type != TokenType::kName) break;  // trailing comma
    }
    if (parenthesized) FRUGAL_RETURN_IF_ERROR(expect_op(")"));
    return Status::Ok();
  }

  Expected<StmtPtr> parse_if() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kIf;
    s->line = cur().line;
    next();
    while (true) {
      FRUGAL_ASSIGN_OR_RETURN(auto cond, parse_tuple(false, {}));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      s->conditions.push_back(std::move(cond));
      s->bodies.emplace_back();
      std::string end;
      FRUGAL_RETURN_IF_ERROR(parse_body({"elif", "else", "endif"}, s->bodies.back(), end));
      if (end == "elif") continue;
      if (end == "else") {
        FRUGAL_RETURN_IF_ERROR(expect_block_end());
        s->has_else = true;
        s->bodies.emplace_back();
        FRUGAL_RETURN_IF_ERROR(parse_body({"endif"}, s->bodies.back(), end));
      }
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
  }

  Expected<StmtPtr> parse_set() {
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    next();
    // "ns.attr = value" assigns an attribute of a namespace object.
    if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == "." &&
        peek(2).type == TokenType::kName) {
      s->targets.push_back(cur().text);
      s->name = peek(2).text;
      next();
      next();
      next();
      if (!skip_op("=")) return unexpected("'='");
      s->kind = Stmt::Kind::kSet;
      FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    FRUGAL_RETURN_IF_ERROR(parse_target_names(s->targets));
    if (skip_op("=")) {
      s->kind = Stmt::Kind::kSet;
      FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, {}));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    if (s->targets.size() != 1) return unexpected("'='");
    s->kind = Stmt::Kind::kSetBlock;
    FRUGAL_RETURN_IF_ERROR(parse_filter_chain(s->filters, false));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->bodies.emplace_back();
    std::string end;
    FRUGAL_RETURN_IF_ERROR(parse_body({"endset"}, s->bodies[0], end));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  // "(a, b=default, ...)" of a macro or call block.
  Status parse_signature(Stmt& s) {
    FRUGAL_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!s.targets.empty()) FRUGAL_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;
      FRUGAL_ASSIGN_OR_RETURN(std::string param, expect_name());
      s.targets.push_back(std::move(param));
      if (skip_op("=")) {
        FRUGAL_ASSIGN_OR_RETURN(auto def, parse_expression(true));
        s.values.push_back(std::move(def));
      } else {
        s.values.push_back(nullptr);
      }
    }
    next();
    return Status::Ok();
  }

  Expected<StmtPtr> parse_macro() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kMacro;
    s->line = cur().line;
    next();
    FRUGAL_ASSIGN_OR_RETURN(s->name, expect_name());
    FRUGAL_RETURN_IF_ERROR(parse_signature(*s));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->bodies.emplace_back();
    std::string end;
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot reach a loop outside the macro
    Status st = parse_body({"endmacro"}, s->bodies[0], end);
    loop_depth_ = saved_loops;
    FRUGAL_RETURN_IF_ERROR(st);
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  Expected<StmtPtr> parse_call_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kCallBlock;
    s->line = cur().line;
    next();
    if (is_op("(")) FRUGAL_RETURN_IF_ERROR(parse_signature(*s));
    FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_expression(true));
    if (s->expr->kind != Expr::Kind::kCall) return error_at(cur(), "expected a call after 'call'");
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->bodies.emplace_back();
    std::string end;
    FRUGAL_RETURN_IF_ERROR(parse_body({"endcall"}, s->bodies[0], end));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  Expected<StmtPtr> parse_filter_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kFilterBlock;
    s->line = cur().line;
    next();
    FRUGAL_RETURN_IF_ERROR(parse_filter_chain(s->filters, true));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->bodies.emplace_back();
    std::string end;
    FRUGAL_RETURN_IF_ERROR(parse_body({"endfilter"}, s->bodies[0], end));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  Expected<StmtPtr> parse_with() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kWith;
    s->line = cur().line;
    next();
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->targets.empty()) FRUGAL_RETURN_IF_ERROR(expect_op(","));
      FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
      FRUGAL_RETURN_IF_ERROR(expect_op("="));
      FRUGAL_ASSIGN_OR_RETURN(auto value, parse_expression(true));
      s->targets.push_back(std::move(name));
      s->values.push_back(std::move(value));
    }
    next();
    s->bodies.emplace_back();
    std::string end;
    FRUGAL_RETURN_IF_ERROR(parse_body({"endwith"}, s->bodies[0], end));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  // "| f(args) | g" (or "f | g" right after {% filter %}): filter
  // expressions whose subject is filled in at render time.
  Status parse_filter_chain(std::vector<ExprPtr>& filters, bool start_inline) {
    while (start_inline || is_op("|")) {
      if (!start_inline) next();
      start_inline = false;
      FRUGAL_ASSIGN_OR_RETURN(auto f, parse_filter(nullptr));
      filters.push_back(std::move(f));
    }
    return Status::Ok();
  }

  // ---- expressions ---------------------------------------------------------

  // A comma-separated list becomes a tuple; a single item stays itself.
  Expected<ExprPtr> parse_tuple(bool with_condexpr, const std::vector<std::string>& extra_ends) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        saw_comma = true;
      }
      if (is_tuple_end(extra_ends)) break;
      FRUGAL_ASSIGN_OR_RETURN(auto item, parse_expression(with_condexpr));
      items.push_back(std::move(item));
    }
    if (!saw_comma) {
      if (items.empty()) return unexpected("an expression");
      return std::move(items[0]);
    }
    auto t = make(Expr::Kind::kTuple, line);
    t->args = std::move(items);
    return t;
  }

  bool is_tuple_end(const std::vector<std::string>& extra_ends) const {
    const Token& tok = cur();
    if (tok.type == TokenType::kVarEnd || tok.type == TokenType::kBlockEnd || tok.type == TokenType::kEnd)
      return true;
    if (tok.type == TokenType::kOperator && (tok.text == ")" || tok.text == "]" || tok.text == "}")) return true;
    if (tok.type == TokenType::kName)
      for (const auto& e : extra_ends)
        if (tok.text == e) return true;
    return false;
  }

  Expected<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    FRUGAL_ASSIGN_OR_RETURN(auto expr, parse_or());
    while (is_name("if")) {
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto cond, parse_or());
      ExprPtr otherwise;
      if (skip_name("else")) {
        FRUGAL_ASSIGN_OR_RETURN(otherwise, parse_expression(true));
      }
      auto c = make(Expr::Kind::kCondition, line);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(expr));
      c->args.push_back(std::move(otherwise));
      expr = std::move(c);
    }
    return expr;
  }

  Expected<ExprPtr> parse_or() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_and());
    while (is_name("or")) {
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_and());
      auto e = make(Expr::Kind::kOr, line);
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  Expected<ExprPtr> parse_and() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_not());
    while (is_name("and")) {
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_not());
      auto e = make(Expr::Kind::kAnd, line);
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  Expected<ExprPtr> parse_not() {
    if (is_name("not")) {
      DepthGuard guard(depth_);
      FRUGAL_RETURN_IF_ERROR(check_depth());
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto operand, parse_not());
      auto e = make(Expr::Kind::kNot, line);
      e->args.push_back(std::move(operand));
      return e;
    }
    return parse_compare();
  }

  Expected<ExprPtr> parse_compare() {
    const int line = cur().line;
    FRUGAL_ASSIGN_OR_RETURN(auto first, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      FRUGAL_ASSIGN_OR_RETURN(auto operand, parse_math1());
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(operand));
    }
    if (cmp) return cmp;
    return first;
  }

  ExprPtr binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    auto e = make(Expr::Kind::kBinary, line);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  Expected<ExprPtr> parse_math1() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_concat());
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_concat());
      left = binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  Expected<ExprPtr> parse_concat() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_math2());
    while (is_op("~")) {
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_math2());
      left = binary("~", std::move(left), std::move(right), line);
    }
    return left;
  }

  Expected<ExprPtr> parse_math2() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_pow());
      left = binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  Expected<ExprPtr> parse_pow() {
    FRUGAL_ASSIGN_OR_RETURN(auto left, parse_unary(true));
    while (is_op("**")) {
      const int line = cur().line;
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto right, parse_unary(true));
      left = binary("**", std::move(left), std::move(right), line);
    }
    return left;
  }

  Expected<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    const int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const bool minus = is_op("-");
      next();
      FRUGAL_ASSIGN_OR_RETURN(auto operand, parse_unary(false));
      node = make(minus ? Expr::Kind::kNegate : Expr::Kind::kPlus, line);
      node->args.push_back(std::move(operand));
    } else {
      FRUGAL_ASSIGN_OR_RETURN(node, parse_primary());
    }
    FRUGAL_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      FRUGAL_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    return node;
  }

  Expected<ExprPtr> parse_primary() {
    const Token& tok = cur();
    const int line = tok.line;
    switch (tok.type) {
      case TokenType::kName: {
        auto e = make(Expr::Kind::kLiteral, line);
        if (tok.text == "true" || tok.text == "True") {
          e->literal = Value(true);
        } else if (tok.text == "false" || tok.text == "False") {
          e->literal = Value(false);
        } else if (tok.text == "none" || tok.text == "None") {
          e->literal = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = tok.text;
        }
        next();
        return e;
      }
      case TokenType::kString: {
        std::string s = tok.text;
        next();
        while (cur().type == TokenType::kString) {  // adjacent literals concatenate
          s += cur().text;
          next();
        }
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value(std::move(s));
        return e;
      }
      case TokenType::kInteger: {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        if (ec != std::errc() || p != tok.text.data() + tok.text.size())
          return error_at(tok, "integer literal " + tok.text + " is out of range");
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value(v);
        next();
        return e;
      }
      case TokenType::kFloat: {
        auto e = make(Expr::Kind::kLiteral, line);
        e->literal = Value(std::strtod(tok.text.c_str(), nullptr));
        next();
        return e;
      }
      case TokenType::kOperator:
        if (tok.text == "(") {
          next();
          if (skip_op(")")) {  // "()" is the empty tuple
            auto e = make(Expr::Kind::kTuple, line);
            return e;
          }
          FRUGAL_ASSIGN_OR_RETURN(auto inner, parse_tuple(true, {}));
          FRUGAL_RETURN_IF_ERROR(expect_op(")"));
          return inner;
        }
        if (tok.text == "[") {
          next();
          auto e = make(Expr::Kind::kList, line);
          while (!is_op("]")) {
            if (!e->args.empty()) {
              FRUGAL_RETURN_IF_ERROR(expect_op(","));
              if (is_op("]")) break;
            }
            FRUGAL_ASSIGN_OR_RETURN(auto item, parse_expression(true));
            e->args.push_back(std::move(item));
          }
          next();
          return e;
        }
        if (tok.text == "{") {
          next();
          auto e = make(Expr::Kind::kDict, line);
          while (!is_op("}")) {
            if (!e->args.empty()) {
              FRUGAL_RETURN_IF_ERROR(expect_op(","));
              if (is_op("}")) break;
            }
            FRUGAL_ASSIGN_OR_RETURN(auto key, parse_expression(true));
            FRUGAL_RETURN_IF_ERROR(expect_op(":"));
            FRUGAL_ASSIGN_OR_RETURN(auto value, parse_expression(true));
            e->args.push_back(std::move(key));
            e->args.push_back(std::move(value));
          }
          next();
          return e;
        }
        break;
      default: break;
    }
    return error_at(tok, "unexpected " + describe(tok));
  }

  Expected<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Expected<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        FRUGAL_ASSIGN_OR_RETURN(node, parse_filter(std::move(node)));
      } else if (is_name("is")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op("(")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Expected<ExprPtr> parse_subscript(ExprPtr node) {
    const int line = cur().line;
    if (skip_op(".")) {
      if (cur().type == TokenType::kName) {
        auto e = make(Expr::Kind::kGetAttr, line);
        e->name = cur().text;
        e->args.push_back(std::move(node));
        next();
        return e;
      }
      if (cur().type == TokenType::kInteger) {
        FRUGAL_ASSIGN_OR_RETURN(auto index, parse_primary());
        auto e = make(Expr::Kind::kGetItem, line);
        e->args.push_back(std::move(node));
        e->args.push_back(std::move(index));
        return e;
      }
      return unexpected("an attribute name");
    }
    next();  // '['
    // A single index, or a slice start:stop:step with optional bounds.
    bool is_slice = false;
    ExprPtr bounds[3];
    if (!is_op(":")) {
      FRUGAL_ASSIGN_OR_RETURN(bounds[0], parse_expression(true));
    }
    if (skip_op(":")) {
      is_slice = true;
      if (!is_op("]") && !is_op(":")) {
        FRUGAL_ASSIGN_OR_RETURN(bounds[1], parse_expression(true));
      }
      if (skip_op(":") && !is_op("]")) {
        FRUGAL_ASSIGN_OR_RETURN(bounds[2], parse_expression(true));
      }
    }
    FRUGAL_RETURN_IF_ERROR(expect_op("]"));
    if (is_slice) {
      auto e = make(Expr::Kind::kSlice, line);
      e->args.push_back(std::move(node));
      for (auto& b : bounds) e->args.push_back(std::move(b));
      return e;
    }
    auto e = make(Expr::Kind::kGetItem, line);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(bounds[0]));
    return e;
  }

  Status parse_call_args(Expr& call) {
    FRUGAL_RETURN_IF_ERROR(expect_op("("));
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        FRUGAL_RETURN_IF_ERROR(expect_op(","));
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) return error_at(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        FRUGAL_ASSIGN_OR_RETURN(auto value, parse_expression(true));
        call.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!call.kwargs.empty()) return error_at(cur(), "positional argument follows keyword argument");
        FRUGAL_ASSIGN_OR_RETURN(auto value, parse_expression(true));
        call.args.push_back(std::move(value));
      }
    }
    next();
    return Status::Ok();
  }

  Expected<ExprPtr> parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::kCall, cur().line);
    e->args.push_back(std::move(callee));
    FRUGAL_RETURN_IF_ERROR(parse_call_args(*e));
    return e;
  }

  Expected<ExprPtr> parse_filter(ExprPtr subject) {
    const int line = cur().line;
    FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
    while (is_op(".") && peek().type == TokenType::kName) {  // dotted filter names
      next();
      name += "." + cur().text;
      next();
    }
    auto e = make(Expr::Kind::kFilter, line);
    e->name = std::move(name);
    e->args.push_back(std::move(subject));
    if (is_op("(")) FRUGAL_RETURN_IF_ERROR(parse_call_args(*e));
    return e;
  }

  Expected<ExprPtr> parse_test(ExprPtr subject) {
    const int line = cur().line;
    next();  // 'is'
    const bool negated = skip_name("not");
    FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
    auto e = make(Expr::Kind::kTest, line);
    e->name = std::move(name);
    e->negated = negated;
    e->args.push_back(std::move(subject));
    if (is_op("(")) {
      FRUGAL_RETURN_IF_ERROR(parse_call_args(*e));
    } else {
      // A single argument without parentheses: "x is divisibleby 3".
      const Token& tok = cur();
      const bool starts_primary =
          tok.type == TokenType::kName || tok.type == TokenType::kString || tok.type == TokenType::kInteger ||
          tok.type == TokenType::kFloat ||
          (tok.type == TokenType::kOperator && (tok.text == "(" || tok.text == "[" || tok.text == "{"));
      if (starts_primary && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) return error_at(tok, "you cannot chain multiple tests with is");
        FRUGAL_ASSIGN_OR_RETURN(auto arg, parse_primary());
        FRUGAL_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
        e->args.push_back(std::move(arg));
      }
    }
    return e;
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Expected<Body> parse(const std::vector<Token>& tokens) {
  Parser parser(tokens);
  return parser.parse_template();
}

}  // namespace frugal::jinja
