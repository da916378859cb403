// Tokenizer: vocabulary loading and validation, special-token splitting,
// dispatch to the model algorithm, and decoding.
#include "frugal/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "frugal/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace frugal {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // "▁"

// Turn-end markers of common chat formats; a token with one of these texts
// ends generation even when the metadata names only the plain eos.
constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "<|eom_id|>",
    "<|END_OF_TURN_TOKEN|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<|return|>", "<|call|>",
};

Expected<const GgufValue*> find_array(const GgufFile& f, std::string_view key, bool required) {
  const GgufValue* v = f.find(key);
  if (!v) {
    if (required) return not_found("tokenizer metadata: missing " + std::string(key));
    return static_cast<const GgufValue*>(nullptr);
  }
  if (v->type != GgufValueType::kArray)
    return corrupt_data("tokenizer metadata: " + std::string(key) + " is a " +
                        std::string(gguf_value_type_name(v->type)) + ", expected an array");
  return v;
}

// Reads an optional token id key and checks it against the vocabulary size.
Status read_token_id(const GgufFile& f, std::string_view key, size_t n_vocab, int32_t* id) {
  auto v = f.get_int(key);
  if (!v.ok()) return v.status().with_context("tokenizer metadata");
  if (!v->has_value()) return Status::Ok();
  const int64_t x = **v;
  // Some converters store "no such token" as -1 (or as 0xFFFFFFFF in a u32).
  if (x == -1 || x == 0xFFFFFFFFll) {
    *id = -1;
    return Status::Ok();
  }
  if (x < 0 || static_cast<uint64_t>(x) >= n_vocab)
    return out_of_range("tokenizer metadata: " + std::string(key) + " = " + std::to_string(x) +
                        " is outside the vocabulary of " + std::to_string(n_vocab) + " tokens");
  *id = static_cast<int32_t>(x);
  return Status::Ok();
}

Status read_bool(const GgufFile& f, std::string_view key, bool* out) {
  auto v = f.get_bool(key);
  if (!v.ok()) return v.status().with_context("tokenizer metadata");
  if (v->has_value()) *out = **v;
  return Status::Ok();
}

Status load_vocab(const GgufFile& f, Tokenizer::Impl& t) {
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.status().with_context("tokenizer metadata");
  if (!model->has_value()) return not_found("tokenizer metadata: missing tokenizer.ggml.model");
  t.model_name = **model;
  if (t.model_name == "llama") {
    t.kind = TokenizerKind::kSentencePiece;
  } else if (t.model_name == "gpt2") {
    t.kind = TokenizerKind::kByteLevelBpe;
  } else if (t.model_name == "bert") {
    t.kind = TokenizerKind::kWordPiece;
  } else {
    return unsupported("tokenizer.ggml.model '" + t.model_name +
                       "' is not supported (supported: llama, gpt2, bert)");
  }

  FRUGAL_ASSIGN_OR_RETURN(const GgufValue* tokens, find_array(f, "tokenizer.ggml.tokens", true));
  if (tokens->elem_type != GgufValueType::kString)
    return corrupt_data("tokenizer metadata: tokenizer.ggml.tokens must be an array of strings");
  const size_t n = tokens->strings.size();
  if (n == 0) return corrupt_data("tokenizer metadata: tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX))
    return out_of_range("tokenizer metadata: too many tokens (" + std::to_string(n) + ")");
  t.tokens.reserve(n);
  t.token_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    t.tokens.emplace_back(tokens->strings[i]);
    // A repeated string maps to its last id, as in llama.cpp.
    t.token_to_id[t.tokens.back()] = static_cast<int32_t>(i);
  }

  FRUGAL_ASSIGN_OR_RETURN(const GgufValue* scores,
                          find_array(f, "tokenizer.ggml.scores",
                                     t.kind == TokenizerKind::kSentencePiece));
  t.scores.assign(n, 0.0f);
  if (scores) {
    if (scores->count != n)
      return corrupt_data("tokenizer metadata: tokenizer.ggml.scores has " +
                          std::to_string(scores->count) + " entries but tokenizer.ggml.tokens has " +
                          std::to_string(n));
    for (size_t i = 0; i < n; ++i) {
      auto s = scores->array_number(i);
      if (!s) return corrupt_data("tokenizer metadata: tokenizer.ggml.scores is not numeric");
      t.scores[i] = static_cast<float>(*s);
    }
  }

  FRUGAL_ASSIGN_OR_RETURN(const GgufValue* types, find_array(f, "tokenizer.ggml.token_type", false));
  t.types.assign(n, TokenType::kNormal);
  if (types) {
    if (types->count != n)
      return corrupt_data("tokenizer metadata: tokenizer.ggml.token_type has " +
                          std::to_string(types->count) +
                          " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    for (size_t i = 0; i < n; ++i) {
      auto v = types->array_int(i);
      if (!v) return corrupt_data("tokenizer metadata: tokenizer.ggml.token_type is not an integer array");
      if (*v < 0 || *v > 6)
        return out_of_range("tokenizer metadata: tokenizer.ggml.token_type[" + std::to_string(i) +
                            "] = " + std::to_string(*v) + " is not a known token type (0..6)");
      t.types[i] = static_cast<TokenType>(*v);
    }
  }

  // Family defaults, then the metadata's word.
  switch (t.kind) {
    case TokenizerKind::kSentencePiece:
      t.bos = n > 1 ? 1 : -1, t.eos = n > 2 ? 2 : -1, t.unk = 0;
      t.add_bos = true;
      break;
    case TokenizerKind::kByteLevelBpe:
      t.add_bos = false;
      break;
    case TokenizerKind::kWordPiece:
      t.add_bos = true;
      t.add_space_prefix = false;
      break;
  }
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.bos_token_id", n, &t.bos));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.eos_token_id", n, &t.eos));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.unknown_token_id", n, &t.unk));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.seperator_token_id", n, &t.sep));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.cls_token_id", n, &t.cls));
  int32_t pad = -1, eot = -1, eom = -1;
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.padding_token_id", n, &pad));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.eot_token_id", n, &eot));
  FRUGAL_RETURN_IF_ERROR(read_token_id(f, "tokenizer.ggml.eom_token_id", n, &eom));
  FRUGAL_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_bos_token", &t.add_bos));
  FRUGAL_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_eos_token", &t.add_eos));
  FRUGAL_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_space_prefix", &t.add_space_prefix));
  if (t.kind == TokenizerKind::kWordPiece) {
    // BERT's sequence markers: [CLS] opens, [SEP] closes.
    if (t.cls < 0) t.cls = t.bos >= 0 ? t.bos : t.find("[CLS]");
    if (t.sep < 0) t.sep = t.eos >= 0 ? t.eos : t.find("[SEP]");
    t.bos = t.cls;
    t.eos = t.sep;
    if (t.unk < 0) t.unk = t.find("[UNK]");
  }

  for (int32_t id : {t.eos, eot, eom})
    if (id >= 0) t.end_of_generation.insert(id);
  for (std::string_view text : kEndOfGenerationTexts) {
    const int32_t id = t.find(text);
    if (id >= 0 && (t.type_of(id) == TokenType::kControl || t.type_of(id) == TokenType::kUserDefined))
      t.end_of_generation.insert(id);
  }

  auto tmpl = f.get_string("tokenizer.chat_template");
  if (!tmpl.ok()) return tmpl.status().with_context("tokenizer metadata");
  t.chat_template = *tmpl;

  // Special tokens, bucketed by first byte and longest first so the scan in
  // encode() takes the longest one that matches at a position.
  for (size_t i = 0; i < n; ++i) {
    const TokenType ty = t.types[i];
    if ((ty == TokenType::kControl || ty == TokenType::kUserDefined || ty == TokenType::kUnknown) &&
        !t.tokens[i].empty())
      t.special_by_first_byte[static_cast<uint8_t>(t.tokens[i][0])].push_back(static_cast<int32_t>(i));
  }
  for (auto& bucket : t.special_by_first_byte)
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
      return t.tokens[a].size() > t.tokens[b].size();
    });

  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    t.byte_token[b] = t.find(buf);
  }

  if (t.kind == TokenizerKind::kByteLevelBpe) {
    FRUGAL_ASSIGN_OR_RETURN(const GgufValue* merges, find_array(f, "tokenizer.ggml.merges", true));
    if (merges->elem_type != GgufValueType::kString)
      return corrupt_data("tokenizer metadata: tokenizer.ggml.merges must be an array of strings");
    t.merges.reserve(merges->strings.size());
    for (size_t i = 0; i < merges->strings.size(); ++i) {
      std::string_view m = merges->strings[i];
      // "left right"; the halves are byte-level symbols, which never contain a
      // plain space, but a left half may begin with one in odd vocabularies.
      const size_t sp = m.find(' ', 1);
      if (sp == std::string_view::npos)
        return corrupt_data("tokenizer metadata: tokenizer.ggml.merges[" + std::to_string(i) +
                            "] = '" + std::string(m) + "' is not of the form 'left right'");
      const int32_t left = t.find(m.substr(0, sp));
      const int32_t right = t.find(m.substr(sp + 1));
      std::string joined(m.substr(0, sp));
      joined.append(m.substr(sp + 1));
      const int32_t result = t.find(joined);
      // A merge whose parts or result are not tokens can never be applied.
      if (left < 0 || right < 0 || result < 0) continue;
      const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
      t.merges.try_emplace(key, Tokenizer::Impl::Merge{static_cast<int32_t>(i), result});
    }
    auto pre = f.get_string("tokenizer.ggml.pre");
    if (!pre.ok()) return pre.status().with_context("tokenizer metadata");
    if (pre->has_value()) {
      t.pre_name = **pre;
    } else {
      std::fprintf(stderr, "warning: tokenizer.ggml.pre is missing; using the default pre-tokenizer\n");
      t.pre_name = "default";
    }
    const tok::PreTokenizerSpec* spec = tok::find_pre_tokenizer(t.pre_name);
    if (!spec)
      return unsupported("tokenizer.ggml.pre '" + t.pre_name +
                         "' names no known pre-tokenizer (see the table in pre_tokenizer.cpp)");
    t.ignore_merges = spec->ignore_merges;
    FRUGAL_ASSIGN_OR_RETURN(t.pre_tokenizer, tok::PreTokenizer::create(*spec));
  } else {
    auto pre = f.get_string("tokenizer.ggml.pre");
    if (pre.ok() && pre->has_value()) t.pre_name = **pre;
  }

  if (t.kind == TokenizerKind::kWordPiece) {
    // Decide the continuation convention from the vocabulary itself.
    size_t hash_prefixed = 0, space_prefixed = 0;
    for (const auto& s : t.tokens) {
      if (s.starts_with("##")) ++hash_prefixed;
      if (s.starts_with(kSpmSpace)) ++space_prefixed;
    }
    t.wordpiece_phantom_space = space_prefixed >= hash_prefixed;
  }
  return Status::Ok();
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& file) {
  auto impl = std::make_unique<Impl>();
  Status s = load_vocab(file, *impl);
  if (!s.ok()) return s;
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  const bool add_bos = opts.add_bos.value_or(t.add_bos);
  const bool add_eos = opts.add_eos.value_or(t.add_eos);
  if (add_bos && t.bos >= 0) out.push_back(t.bos);

  bool after_special = true;  // SentencePiece adds its dummy prefix at the start and after specials
  auto emit_text = [&](size_t begin, size_t end) {
    if (end <= begin) return;
    const std::string_view fragment = text.substr(begin, end - begin);
    switch (t.kind) {
      case TokenizerKind::kSentencePiece: t.encode_spm(fragment, after_special, out); break;
      case TokenizerKind::kByteLevelBpe: t.encode_bpe(fragment, out); break;
      case TokenizerKind::kWordPiece: t.encode_wordpiece(fragment, out); break;
    }
    after_special = false;
  };

  // Cut special tokens out of the text (leftmost, then longest), encoding the
  // plain text between them.
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = t.special_by_first_byte[static_cast<uint8_t>(text[pos])];
    int32_t hit = -1;
    for (int32_t id : bucket) {
      const TokenType ty = t.types[id];
      if (!opts.parse_special && ty != TokenType::kUserDefined) continue;
      if (text.substr(pos).starts_with(t.tokens[id])) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    emit_text(plain_start, pos);
    out.push_back(hit);
    after_special = true;
    pos += t.tokens[hit].size();
    plain_start = pos;
  }
  emit_text(plain_start, text.size());

  if (add_eos && t.eos >= 0) out.push_back(t.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  const Impl& t = *impl_;
  if (id < 0 || id >= n_vocab()) return {};
  const std::string& text = t.tokens[id];
  const TokenType ty = t.types[id];
  switch (ty) {
    case TokenType::kControl:
      return render_special ? text : std::string();
    case TokenType::kUnused:
      return {};
    case TokenType::kUnknown:
      return text;
    case TokenType::kByte:
      if (text.size() == 6 && text.starts_with("<0x") && text.back() == '>') {
        unsigned v = 0;
        if (std::sscanf(text.c_str() + 3, "%2x", &v) == 1) return std::string(1, static_cast<char>(v));
      }
      return text;
    case TokenType::kUserDefined:
      // Added tokens are stored as the literal text they stand for.
      if (t.kind != TokenizerKind::kSentencePiece) return text;
      break;
    default:
      break;
  }
  switch (t.kind) {
    case TokenizerKind::kSentencePiece: {
      std::string out;
      out.reserve(text.size());
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
          out.push_back(' ');
          i += kSpmSpace.size();
        } else {
          out.push_back(text[i++]);
        }
      }
      return out;
    }
    case TokenizerKind::kByteLevelBpe: {
      std::string out;
      out.reserve(text.size());
      for (size_t i = 0; i < text.size();) {
        char32_t cp;
        const size_t len = tok::decode_utf8(text, i, &cp);
        const int b = len ? byte_from_unicode(cp) : -1;
        if (b >= 0) {
          out.push_back(static_cast<char>(b));
        } else {  // not a byte-level symbol: keep the text as it is
          out.append(text, i, len ? len : 1);
        }
        i += len ? len : 1;
      }
      return out;
    }
    case TokenizerKind::kWordPiece: {
      if (t.wordpiece_phantom_space) {
        if (text.starts_with(kSpmSpace)) return " " + text.substr(kSpmSpace.size());
        return text;
      }
      if (text.starts_with("##")) return text.substr(2);
      return " " + text;
    }
  }
  return text;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  const Impl& t = *impl_;
  std::string out;
  bool strip_space = t.kind == TokenizerKind::kWordPiece ||
                     (t.kind == TokenizerKind::kSentencePiece && t.add_space_prefix);
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (piece.empty()) continue;
    // Only the first piece carries the dummy-prefix space.
    if (strip_space && piece[0] == ' ' && token_type(id) != TokenType::kByte) piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  return out;
}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(impl_->tokens.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::unk_id() const { return impl_->unk; }
bool Tokenizer::add_bos_default() const { return impl_->add_bos; }
bool Tokenizer::add_eos_default() const { return impl_->add_eos; }
bool Tokenizer::is_end_of_generation(int32_t id) const {
  return impl_->end_of_generation.count(id) != 0;
}
bool Tokenizer::is_control(int32_t id) const { return token_type(id) == TokenType::kControl; }
TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenType::kUndefined;
  return impl_->types[id];
}
std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return impl_->tokens[id];
}
std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  const int32_t id = impl_->find(text);
  if (id < 0) return std::nullopt;
  return id;
}
TokenizerKind Tokenizer::kind() const { return impl_->kind; }
const std::string& Tokenizer::pre_tokenizer_name() const { return impl_->pre_name; }
std::optional<std::string> Tokenizer::chat_template() const { return impl_->chat_template; }

}  // namespace frugal
