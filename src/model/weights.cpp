#include "model/weights.h"

#include "frugal/gguf.h"
#include "quant/reference.h"

namespace frugal {
namespace {

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Expected<const GgufTensorInfo*> find_checked(const GgufFile& f, const std::string& name,
                                             std::vector<int64_t> expected, bool required) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (t == nullptr) {
    if (required) return not_found("missing tensor '" + name + "'");
    return static_cast<const GgufTensorInfo*>(nullptr);
  }
  // Trailing dimensions of size 1 are equivalent to their absence.
  std::vector<int64_t> dims = t->dims;
  while (dims.size() > expected.size() && dims.back() == 1) dims.pop_back();
  if (dims != expected)
    return corrupt_data("tensor '" + name + "' has shape " + shape_string(t->dims) +
                        ", expected " + shape_string(expected));
  return t;
}

Expected<WeightMatrix> bind_matrix(const GgufFile& f, const std::string& name, int64_t cols,
                                   int64_t rows) {
  FRUGAL_ASSIGN_OR_RETURN(const GgufTensorInfo* t, find_checked(f, name, {cols, rows}, true));
  if (!kernels::matmul_supported(t->type))
    return unsupported("tensor '" + name + "' has type " + std::string(tensor_type_name(t->type)) +
                       ", which the matmul kernels do not support");
  return WeightMatrix{.type = t->type, .data = t->data, .rows = rows, .cols = cols};
}

Expected<std::vector<float>> bind_vector(const GgufFile& f, const std::string& name, int64_t n,
                                         bool required) {
  FRUGAL_ASSIGN_OR_RETURN(const GgufTensorInfo* t, find_checked(f, name, {n}, required));
  std::vector<float> out;
  if (t == nullptr) return out;
  out.resize(n);
  Status s = quant::dequantize_row(t->type, t->data, out.data(), n);
  if (!s.ok()) return s.with_context("tensor '" + name + "'");
  return out;
}

}  // namespace

Expected<ModelWeights> bind_weights(const GgufFile& f, const HParams& hp,
                                    const BindOptions& options) {
  ModelWeights w;
  FRUGAL_ASSIGN_OR_RETURN(w.token_embd, bind_matrix(f, "token_embd.weight", hp.n_embd, hp.n_vocab));
  FRUGAL_ASSIGN_OR_RETURN(w.output_norm, bind_vector(f, "output_norm.weight", hp.n_embd, true));
  if (f.find_tensor("output.weight") != nullptr) {
    FRUGAL_ASSIGN_OR_RETURN(w.output, bind_matrix(f, "output.weight", hp.n_embd, hp.n_vocab));
  } else {
    w.output = w.token_embd;  // tied embeddings
  }
  w.layers.resize(hp.n_layer);
  for (int l = 0; l < hp.n_layer; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    FRUGAL_ASSIGN_OR_RETURN(L.attn_norm, bind_vector(f, p + "attn_norm.weight", hp.n_embd, true));
    FRUGAL_ASSIGN_OR_RETURN(L.wq, bind_matrix(f, p + "attn_q.weight", hp.n_embd, hp.q_dim()));
    FRUGAL_ASSIGN_OR_RETURN(L.wk, bind_matrix(f, p + "attn_k.weight", hp.n_embd, hp.kv_dim()));
    FRUGAL_ASSIGN_OR_RETURN(L.wv, bind_matrix(f, p + "attn_v.weight", hp.n_embd, hp.kv_dim()));
    FRUGAL_ASSIGN_OR_RETURN(L.wo, bind_matrix(f, p + "attn_output.weight", hp.q_dim(), hp.n_embd));
    FRUGAL_ASSIGN_OR_RETURN(L.bq, bind_vector(f, p + "attn_q.bias", hp.q_dim(), options.qkv_bias));
    FRUGAL_ASSIGN_OR_RETURN(L.bk, bind_vector(f, p + "attn_k.bias", hp.kv_dim(), options.qkv_bias));
    FRUGAL_ASSIGN_OR_RETURN(L.bv, bind_vector(f, p + "attn_v.bias", hp.kv_dim(), options.qkv_bias));
    FRUGAL_ASSIGN_OR_RETURN(L.q_norm, bind_vector(f, p + "attn_q_norm.weight", hp.head_dim, options.qk_norm));
    FRUGAL_ASSIGN_OR_RETURN(L.k_norm, bind_vector(f, p + "attn_k_norm.weight", hp.head_dim, options.qk_norm));
    FRUGAL_ASSIGN_OR_RETURN(L.ffn_norm, bind_vector(f, p + "ffn_norm.weight", hp.n_embd, true));
    FRUGAL_ASSIGN_OR_RETURN(L.w_gate, bind_matrix(f, p + "ffn_gate.weight", hp.n_embd, hp.n_ff));
    FRUGAL_ASSIGN_OR_RETURN(L.w_up, bind_matrix(f, p + "ffn_up.weight", hp.n_embd, hp.n_ff));
    FRUGAL_ASSIGN_OR_RETURN(L.w_down, bind_matrix(f, p + "ffn_down.weight", hp.n_ff, hp.n_embd));
  }
  return w;
}

Status read_matrix_row(const WeightMatrix& m, int64_t row, float* out) {
  if (row < 0 || row >= m.rows) return out_of_range("row " + std::to_string(row) + " out of range");
  const size_t rs = quant::row_size(m.type, m.cols);
  return quant::dequantize_row(m.type, static_cast<const uint8_t*>(m.data) + row * rs, out, m.cols);
}

}  // namespace frugal
