#include "formats/hf/hf_vocab.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace frugal::hf {
namespace {

using nlohmann::json;

constexpr size_t kMaxVocab = 1u << 24;
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

// GPT-2's split regex: what a ByteLevel pre-tokenizer with use_regex applies.
constexpr const char* kGpt2Regex =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";

struct PreTokenizerShape {
  std::vector<std::string> regexes;
  bool byte_level = false;
  bool metaspace = false;
};

Status walk_pre_tokenizer(const json& p, PreTokenizerShape& out, int depth) {
  if (depth > 8) return corrupt_data("tokenizer.json: pre_tokenizer nested too deeply");
  if (p.is_null()) return Status::Ok();
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
    return corrupt_data("tokenizer.json: pre_tokenizer without a type");
  const std::string type = p["type"];
  if (type == "Sequence") {
    const auto it = p.find("pretokenizers");
    if (it == p.end() || !it->is_array()) return corrupt_data("tokenizer.json: Sequence without pretokenizers");
    for (const auto& e : *it) FRUGAL_RETURN_IF_ERROR(walk_pre_tokenizer(e, out, depth + 1));
  } else if (type == "Split") {
    const auto pat = p.find("pattern");
    if (pat == p.end() || !pat->is_object()) return corrupt_data("tokenizer.json: Split without a pattern");
    if (pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      out.regexes.push_back((*pat)["Regex"].get<std::string>());
    } else {
      return unsupported("tokenizer.json: Split on a literal string pattern");
    }
  } else if (type == "ByteLevel") {
    out.byte_level = true;
    if (p.value("use_regex", true)) out.regexes.push_back(kGpt2Regex);
  } else if (type == "Digits") {
    out.regexes.push_back(p.value("individual_digits", false) ? R"re(\p{N})re" : R"re(\p{N}+)re");
  } else if (type == "Metaspace") {
    out.metaspace = true;
  } else {
    return unsupported("tokenizer.json: pre-tokenizer type '" + type + "'");
  }
  return Status::Ok();
}

bool mentions_metaspace(const json& j) {
  // A normalizer/decoder that turns spaces into U+2581 marks SentencePiece-style BPE.
  const std::string s = j.dump();
  return s.find("\xe2\x96\x81") != std::string::npos || s.find("Metaspace") != std::string::npos ||
         s.find("\\u2581") != std::string::npos;
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

}  // namespace

std::optional<int64_t> HfVocab::find(const std::string& token) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == token) return static_cast<int64_t>(i);
  return std::nullopt;
}

void HfVocab::pad_to(size_t n) {
  for (size_t i = tokens.size(); i < n; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    types.push_back(kUnused);
    if (!scores.empty() || model == "llama") scores.push_back(-1e9f);
  }
}

Expected<HfVocab> parse_tokenizer_json(const std::string& text, const PreTokenizerResolver& resolve_pre) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt_data("tokenizer.json is not a JSON object");
  const auto model = j.find("model");
  if (model == j.end() || !model->is_object()) return corrupt_data("tokenizer.json: missing 'model'");
  const std::string model_type = model->value("type", std::string("BPE"));
  if (model_type != "BPE")
    return unsupported("tokenizer.json: model type '" + model_type + "' (only BPE is read; " +
                       "SentencePiece Unigram models are read from tokenizer.model)");
  const auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object()) return corrupt_data("tokenizer.json: model.vocab is not an object");

  HfVocab v;
  size_t n = 0;
  for (const auto& [tok, id] : vocab->items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= kMaxVocab)
      return corrupt_data("tokenizer.json: vocab id of '" + tok.substr(0, 64) + "' is not a small non-negative integer");
    n = std::max<size_t>(n, id.get<size_t>() + 1);
  }
  const json added = j.value("added_tokens", json::array());
  if (!added.is_array()) return corrupt_data("tokenizer.json: added_tokens is not an array");
  for (const auto& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned() || !a.contains("content") ||
        !a["content"].is_string() || a["id"].get<uint64_t>() >= kMaxVocab)
      return corrupt_data("tokenizer.json: malformed added_tokens entry");
    n = std::max<size_t>(n, a["id"].get<size_t>() + 1);
  }
  v.tokens.assign(n, "");
  v.types.assign(n, kUnused);
  std::vector<bool> filled(n, false);
  for (const auto& [tok, id] : vocab->items()) {
    v.tokens[id.get<size_t>()] = tok;
    v.types[id.get<size_t>()] = kNormal;
    filled[id.get<size_t>()] = true;
  }
  for (const auto& a : added) {
    const size_t id = a["id"].get<size_t>();
    v.tokens[id] = a["content"].get<std::string>();
    v.types[id] = a.value("special", false) ? kControl : kUserDefined;
    filled[id] = true;
  }
  for (size_t i = 0; i < n; ++i)
    if (!filled[i]) v.tokens[i] = "[PAD" + std::to_string(i) + "]";

  const json merges = model->value("merges", json::array());
  if (!merges.is_array()) return corrupt_data("tokenizer.json: model.merges is not an array");
  std::vector<std::string> merge_list;
  merge_list.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) {
      merge_list.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merge_list.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return corrupt_data("tokenizer.json: malformed merge entry");
    }
  }

  PreTokenizerShape shape;
  FRUGAL_RETURN_IF_ERROR(walk_pre_tokenizer(j.value("pre_tokenizer", json()), shape, 0));
  const bool sentencepiece_style = shape.metaspace || (!shape.byte_level && mentions_metaspace(j.value("decoder", json())));
  if (sentencepiece_style) {
    // SentencePiece BPE: the "llama" tokenizer merges the pair whose result
    // scores highest, so a token made by merge rank r scores -r.
    v.model = "llama";
    v.pre = "default";
    v.scores.assign(n, -1e9f);
    std::unordered_map<std::string, size_t> id_of;
    for (size_t i = 0; i < n; ++i) id_of.emplace(v.tokens[i], i);
    for (size_t r = 0; r < merge_list.size(); ++r) {
      const std::string& m = merge_list[r];
      const size_t sp = m.find(' ');
      if (sp == std::string::npos) continue;
      const auto it = id_of.find(m.substr(0, sp) + m.substr(sp + 1));
      if (it != id_of.end() && v.scores[it->second] == -1e9f) v.scores[it->second] = -static_cast<float>(r);
    }
    for (size_t i = 0; i < n; ++i) {
      if (v.types[i] == kNormal && is_byte_token(v.tokens[i])) v.types[i] = kByte;
      if (v.scores[i] == -1e9f && v.types[i] == kNormal && v.tokens[i].size() <= 4) v.scores[i] = 0.0f;
    }
    if (const auto unk = model->find("unk_token"); unk != model->end() && unk->is_string())
      if (auto id = v.find(unk->get<std::string>())) {
        v.unk_id = *id;
        v.types[*id] = kUnknown;
      }
    v.add_space_prefix = shape.metaspace ? true : mentions_metaspace(j.value("normalizer", json()));
    return v;
  }

  v.model = "gpt2";
  v.merges = std::move(merge_list);
  if (shape.regexes.empty()) shape.regexes.push_back(kGpt2Regex);
  const bool ignore_merges = model->value("ignore_merges", false);
  std::optional<std::string> pre = resolve_pre ? resolve_pre(shape.regexes, ignore_merges) : std::nullopt;
  if (!pre) {
    std::string list;
    for (const auto& r : shape.regexes) list += "\n  " + r;
    return unsupported("tokenizer.json: no known pre-tokenizer uses these split regexes:" + list);
  }
  v.pre = *pre;
  return v;
}

// --- SentencePiece protobuf ---------------------------------------------------

namespace {

// Minimal bounded protobuf wire-format reader: every length is checked
// against the bytes left, so malformed input ends in an error.
class ProtoReader {
 public:
  ProtoReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }

  Status varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return corrupt_data("tokenizer.model: truncated varint");
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return Status::Ok();
      }
    }
    return corrupt_data("tokenizer.model: varint longer than 10 bytes");
  }
  Status bytes(const uint8_t** data, size_t* size) {
    uint64_t len = 0;
    FRUGAL_RETURN_IF_ERROR(varint(&len));
    if (len > static_cast<uint64_t>(end_ - p_)) return corrupt_data("tokenizer.model: field length past the end");
    *data = p_;
    *size = static_cast<size_t>(len);
    p_ += len;
    return Status::Ok();
  }
  Status fixed32(uint32_t* out) {
    if (end_ - p_ < 4) return corrupt_data("tokenizer.model: truncated fixed32");
    std::memcpy(out, p_, 4);
    p_ += 4;
    return Status::Ok();
  }
  Status skip(uint32_t wire_type) {
    uint64_t v;
    const uint8_t* d;
    size_t s;
    switch (wire_type) {
      case 0: return varint(&v);
      case 1:
        if (end_ - p_ < 8) return corrupt_data("tokenizer.model: truncated fixed64");
        p_ += 8;
        return Status::Ok();
      case 2: return bytes(&d, &s);
      case 5:
        if (end_ - p_ < 4) return corrupt_data("tokenizer.model: truncated fixed32");
        p_ += 4;
        return Status::Ok();
      default: return corrupt_data("tokenizer.model: unsupported wire type " + std::to_string(wire_type));
    }
  }
  Status key(uint32_t* field, uint32_t* wire_type) {
    uint64_t k = 0;
    FRUGAL_RETURN_IF_ERROR(varint(&k));
    *field = static_cast<uint32_t>(k >> 3);
    *wire_type = static_cast<uint32_t>(k & 7);
    if (*field == 0) return corrupt_data("tokenizer.model: field number 0");
    return Status::Ok();
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

Status parse_piece(const uint8_t* data, size_t size, HfVocab& v) {
  ProtoReader r(data, size);
  std::string piece;
  float score = 0.0f;
  int32_t type = kNormal;
  while (!r.done()) {
    uint32_t field, wt;
    FRUGAL_RETURN_IF_ERROR(r.key(&field, &wt));
    if (field == 1 && wt == 2) {
      const uint8_t* d;
      size_t s;
      FRUGAL_RETURN_IF_ERROR(r.bytes(&d, &s));
      piece.assign(reinterpret_cast<const char*>(d), s);
    } else if (field == 2 && wt == 5) {
      uint32_t bits = 0;
      FRUGAL_RETURN_IF_ERROR(r.fixed32(&bits));
      std::memcpy(&score, &bits, 4);
    } else if (field == 3 && wt == 0) {
      uint64_t t;
      FRUGAL_RETURN_IF_ERROR(r.varint(&t));
      if (t < 1 || t > 6) return corrupt_data("tokenizer.model: piece type " + std::to_string(t) + " is unknown");
      type = static_cast<int32_t>(t);  // SentencePiece's numbering is GGUF's
    } else {
      FRUGAL_RETURN_IF_ERROR(r.skip(wt));
    }
  }
  v.tokens.push_back(std::move(piece));
  v.scores.push_back(score);
  v.types.push_back(type);
  return Status::Ok();
}

// Reads a signed int32 field stored as a varint (negative values take 10 bytes).
int64_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

}  // namespace

Expected<HfVocab> parse_sentencepiece_model(const uint8_t* data, size_t size) {
  HfVocab v;
  v.model = "llama";
  v.pre = "default";
  // TrainerSpec defaults, used when the fields are absent.
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  ProtoReader r(data, size);
  int64_t model_type = 1;  // UNIGRAM unless the trainer spec says otherwise
  while (!r.done()) {
    uint32_t field, wt;
    FRUGAL_RETURN_IF_ERROR(r.key(&field, &wt));
    if (wt != 2 || field > 3) {
      FRUGAL_RETURN_IF_ERROR(r.skip(wt));
      continue;
    }
    const uint8_t* d;
    size_t s;
    FRUGAL_RETURN_IF_ERROR(r.bytes(&d, &s));
    if (field == 1) {
      if (v.tokens.size() >= kMaxVocab) return out_of_range("tokenizer.model: more than 2^24 pieces");
      FRUGAL_RETURN_IF_ERROR(parse_piece(d, s, v));
    } else {
      ProtoReader sub(d, s);
      while (!sub.done()) {
        uint32_t f2, w2;
        FRUGAL_RETURN_IF_ERROR(sub.key(&f2, &w2));
        if (w2 != 0) {
          FRUGAL_RETURN_IF_ERROR(sub.skip(w2));
          continue;
        }
        uint64_t x;
        FRUGAL_RETURN_IF_ERROR(sub.varint(&x));
        if (field == 2) {  // TrainerSpec
          if (f2 == 3) model_type = static_cast<int64_t>(x);
          if (f2 == 40) v.unk_id = as_int32(x);
          if (f2 == 41) v.bos_id = as_int32(x);
          if (f2 == 42) v.eos_id = as_int32(x);
          if (f2 == 43) v.pad_id = as_int32(x);
        } else if (f2 == 3) {  // NormalizerSpec.add_dummy_prefix
          v.add_space_prefix = x != 0;
        }
      }
    }
  }
  if (v.tokens.empty()) return corrupt_data("tokenizer.model: no pieces");
  if (model_type != 1 && model_type != 2)
    return unsupported("tokenizer.model: model type " + std::to_string(model_type) + " (only Unigram and BPE)");
  const auto n = static_cast<int64_t>(v.tokens.size());
  for (auto* id : {&v.unk_id, &v.bos_id, &v.eos_id, &v.pad_id})
    if (id->has_value() && (**id < 0 || **id >= n)) id->reset();  // -1 means "none"
  return v;
}

}  // namespace frugal::hf
