// Tokenizer mirroring Jinja2's lexer rules (see lexer.h for the whitespace
// semantics). Jinja decides whether lstrip_blocks applies by whether the
// previous token ended a line ("line_starting"); that state is tracked here
// the same way so templates that put several tags on one line render alike.
#include "tokenizer/jinja/lexer.h"

#include <cctype>

namespace frugal::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view rstrip_whitespace(std::string_view s) {
  size_t n = s.size();
  while (n > 0 && is_space(s[n - 1])) --n;
  return s.substr(0, n);
}

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options) : src_(std::move(source)), options_(options) {}

  Expected<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      FRUGAL_RETURN_IF_ERROR(lex_text_and_tag());
    }
    tokens_.push_back({TokenType::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  Status error(const std::string& message) const {
    return invalid_argument("template syntax error at line " + std::to_string(line_) + ": " + message);
  }

  void advance_to(size_t new_pos) {
    for (size_t i = pos_; i < new_pos && i < src_.size(); ++i)
      if (src_[i] == '\n') ++line_;
    pos_ = new_pos;
  }

  // The text up to the next tag, and then the tag itself.
  Status lex_text_and_tag() {
    size_t tag = pos_;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= src_.size()) {
        emit_text(std::string_view(src_).substr(pos_));
        advance_to(src_.size());
        return Status::Ok();
      }
      const char kind = src_[tag + 1];
      if (kind == '{' || kind == '%' || kind == '#') break;
      ++tag;
    }
    const char kind = src_[tag + 1];
    const char control = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
    const char strip = (control == '-' || control == '+') ? control : '\0';
    std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);

    size_t raw_body = std::string::npos;  // where a {% raw %} body starts
    bool raw_minus = false;
    if (kind == '%') raw_body = match_raw_begin(tag, raw_minus);

    if (strip == '-') {
      text = rstrip_whitespace(text);
    } else if (strip != '+' && options_.lstrip_blocks && kind != '{') {
      text = lstrip_line(text);
    }
    emit_text(text);
    advance_to(tag + 2 + (strip ? 1 : 0));

    if (raw_body != std::string::npos) return lex_raw(raw_body, raw_minus);
    if (kind == '#') return lex_comment();
    return lex_tag(kind == '{');
  }

  // lstrip_blocks: drop the spaces between the start of the line and a tag.
  std::string_view lstrip_line(std::string_view text) const {
    const size_t nl = text.rfind('\n');
    const size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
    if (line_start == 0 && !line_starting_) return text;
    if (line_start == text.size()) return text;
    for (size_t i = line_start; i < text.size(); ++i)
      if (!is_space(text[i])) return text;
    return text.substr(0, line_start);
  }

  void emit_text(std::string_view text) {
    if (!text.empty()) tokens_.push_back({TokenType::kText, std::string(text), line_});
    line_starting_ = false;
  }

  // "{%-? raw -?%}" at tag; returns the index after it, or npos.
  size_t match_raw_begin(size_t tag, bool& minus) const {
    size_t i = tag + 2;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
    while (i < src_.size() && is_space(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0) return std::string::npos;
    i += 3;
    if (i < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[i])) || src_[i] == '_'))
      return std::string::npos;
    while (i < src_.size() && is_space(src_[i])) ++i;
    minus = false;
    if (src_.compare(i, 3, "-%}") == 0) {
      minus = true;
      i += 3;
      while (i < src_.size() && is_space(src_[i])) ++i;
      return i;
    }
    if (src_.compare(i, 2, "%}") == 0) return i + 2;
    return std::string::npos;
  }

  Status lex_raw(size_t body, bool /*minus_already_consumed*/) {
    advance_to(body);
    size_t search = pos_;
    while (true) {
      const size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) return error("missing end of raw directive");
      size_t i = tag + 2;
      char strip = '\0';
      if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) strip = src_[i++];
      while (i < src_.size() && is_space(src_[i])) ++i;
      if (src_.compare(i, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      i += 6;
      while (i < src_.size() && is_space(src_[i])) ++i;
      size_t end;
      if (src_.compare(i, 3, "-%}") == 0) {
        end = i + 3;
        while (end < src_.size() && is_space(src_[end])) ++end;
      } else if (src_.compare(i, 3, "+%}") == 0) {
        end = i + 3;
      } else if (src_.compare(i, 2, "%}") == 0) {
        end = i + 2;
        if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
      } else {
        search = tag + 2;
        continue;
      }
      std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);
      if (strip == '-')
        text = rstrip_whitespace(text);
      else if (strip != '+' && options_.lstrip_blocks)
        text = lstrip_line(text);
      emit_text(text);
      line_starting_ = src_[end - 1] == '\n';
      advance_to(end);
      return Status::Ok();
    }
  }

  Status lex_comment() {
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) return error("missing end of comment tag");
    size_t end = close + 2;
    const char before = close > pos_ ? src_[close - 1] : '\0';
    if (before == '-') {
      while (end < src_.size() && is_space(src_[end])) ++end;
    } else if (before != '+' && options_.trim_blocks && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    line_starting_ = src_[end - 1] == '\n';
    advance_to(end);
    return Status::Ok();
  }

  // Expression tokens up to the closing "}}" or "%}" (a closing brace inside
  // an open bracket belongs to the expression, as in "{{ {'a': {}} }}").
  Status lex_tag(bool is_variable) {
    tokens_.push_back({is_variable ? TokenType::kVarBegin : TokenType::kBlockBegin, "", line_});
    std::vector<char> brackets;
    const char closer = is_variable ? '}' : '%';
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance_to(pos_ + 1);
      if (pos_ >= src_.size()) return error(is_variable ? "unexpected end of template, expected '}}'"
                                                        : "unexpected end of template, expected '%}'");
      if (brackets.empty()) {
        size_t end = 0;
        bool trim_all = false;
        if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, std::string{closer, '}'}) == 0) {
          end = pos_ + 3;
          trim_all = true;
        } else if (!is_variable && src_.compare(pos_, 3, "+%}") == 0) {
          end = pos_ + 3;
        } else if (src_.compare(pos_, 2, std::string{closer, '}'}) == 0) {
          end = pos_ + 2;
          if (!is_variable && options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
        }
        if (end != 0) {
          if (trim_all)
            while (end < src_.size() && is_space(src_[end])) ++end;
          tokens_.push_back({is_variable ? TokenType::kVarEnd : TokenType::kBlockEnd, "", line_});
          line_starting_ = src_[end - 1] == '\n';
          advance_to(end);
          return Status::Ok();
        }
      }
      FRUGAL_RETURN_IF_ERROR(lex_expression_token(brackets));
    }
  }

  Status lex_expression_token(std::vector<char>& brackets) {
    const char c = src_[pos_];
    const int line = line_;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos_ + 1;
      while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
      tokens_.push_back({TokenType::kName, src_.substr(pos_, end - pos_), line});
      advance_to(end);
      return Status::Ok();
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number();
    if (c == '\'' || c == '"') return lex_string(c);
    static const char* const kTwoCharOps[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwoCharOps) {
      if (src_.compare(pos_, 2, op) == 0) {
        tokens_.push_back({TokenType::kOperator, op, line});
        advance_to(pos_ + 2);
        return Status::Ok();
      }
    }
    static const std::string_view kOneCharOps = "+-*/%~[](){}<>=.:|,;";
    if (kOneCharOps.find(c) == std::string_view::npos) return error(std::string("unexpected char '") + c + "'");
    if (c == '(' || c == '[' || c == '{') {
      if (brackets.size() >= 256) return error("brackets nested deeper than 256 levels");
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) return error(std::string("unexpected '") + c + "'");
      if (brackets.back() != c)
        return error(std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      brackets.pop_back();
    }
    tokens_.push_back({TokenType::kOperator, std::string(1, c), line});
    advance_to(pos_ + 1);
    return Status::Ok();
  }

  Status lex_number() {
    auto digits = [&](size_t i) {
      // \d+(_\d+)*
      size_t j = i;
      while (j < src_.size() && std::isdigit(static_cast<unsigned char>(src_[j]))) ++j;
      while (j + 1 < src_.size() && src_[j] == '_' && std::isdigit(static_cast<unsigned char>(src_[j + 1]))) {
        ++j;
        while (j < src_.size() && std::isdigit(static_cast<unsigned char>(src_[j]))) ++j;
      }
      return j;
    };
    size_t end = digits(pos_);
    bool is_float = false;
    // A number right after "." is an attribute index ("x.0"), never a float.
    const bool after_dot = !tokens_.empty() && tokens_.back().type == TokenType::kOperator && tokens_.back().text == ".";
    if (!after_dot) {
      if (end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
        end = digits(end + 1);
        is_float = true;
      }
      if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
        size_t e = end + 1;
        if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
        if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
          end = digits(e);
          is_float = true;
        }
      }
    }
    std::string text;
    for (size_t i = pos_; i < end; ++i)
      if (src_[i] != '_') text += src_[i];
    tokens_.push_back({is_float ? TokenType::kFloat : TokenType::kInteger, text, line_});
    advance_to(end);
    return Status::Ok();
  }

  // String literal with Python's unicode-escape rules (Jinja decodes string
  // literals that way): \n \t \\ \' \" \xhh \uhhhh \Uhhhhhhhh, octal; an
  // unknown escape keeps its backslash.
  Status lex_string(char quote) {
    const int line = line_;
    std::string value;
    size_t i = pos_ + 1;
    auto append_code_point = [&](uint32_t cp) {
      if (cp > 0x10ffff) return false;
      value += code_point_utf8(cp);
      return true;
    };
    while (true) {
      if (i >= src_.size()) return error("unterminated string literal");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) return error("unterminated string literal");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n > src_.size()) return error("truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const char h = src_[i + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) return error("truncated \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          i += n;
          if (!append_code_point(cp)) return error("illegal Unicode character in escape");
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + static_cast<uint32_t>(src_[i] - '0');
            append_code_point(cp);
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    tokens_.push_back({TokenType::kString, std::move(value), line});
    advance_to(i + 1);
    return Status::Ok();
  }

  static std::string code_point_utf8(uint32_t cp) {
    std::string out;
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
    return out;
  }

  std::string src_;
  LexerOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

// Jinja normalises "\r\n" and "\r" to "\n" everywhere and drops one
// trailing newline (keep_trailing_newline is off).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Expected<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options) {
  Lexer lexer(normalize_newlines(source), options);
  return lexer.run();
}

}  // namespace frugal::jinja
