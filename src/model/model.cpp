#include <algorithm>
#include <map>
#include <mutex>

#include "formats/hf/hf_convert.h"
#include "model/model_impl.h"
#include "tokenizer/pre_tokenizer.h"
#include "kernels/cpu/vec_ops.h"
#include "quant/reference.h"

namespace frugal {

Model::Model() : impl_(std::make_unique<ModelImpl>()) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
ThreadPool& Model::thread_pool() const { return *impl_->pool; }

namespace {

Status read_rope_freq_factors(const GgufFile& f, HParams& hp) {
  const GgufTensorInfo* t = f.find_tensor("rope_freqs.weight");
  if (t == nullptr) return Status::Ok();
  if (t->n_elements != hp.n_rot / 2)
    return corrupt_data("tensor 'rope_freqs.weight' has " + std::to_string(t->n_elements) +
                        " elements, expected rope.dimension_count/2 = " + std::to_string(hp.n_rot / 2));
  hp.rope_freq_factors.resize(t->n_elements);
  return quant::dequantize_row(t->type, t->data, hp.rope_freq_factors.data(), t->n_elements)
      .with_context("tensor 'rope_freqs.weight'");
}

void fill_info(ModelImpl& m) {
  ModelInfo& info = m.info;
  const HParams& hp = m.hp;
  info.architecture = hp.arch;
  if (auto name = m.file->get_string("general.name"); name.ok() && name->has_value()) info.name = **name;
  info.n_vocab = hp.n_vocab;
  info.n_embd = hp.n_embd;
  info.n_layer = hp.n_layer;
  info.n_head = hp.n_head;
  info.n_head_kv = hp.n_head_kv;
  info.head_dim = hp.head_dim;
  info.n_ff = hp.n_ff;
  info.n_ctx_train = hp.n_ctx_train;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const auto& t : m.file->tensors()) {
    info.n_params += t.n_elements;
    info.weight_bytes += t.n_bytes;
    // The dominant type of the repeated blocks names the file ("Q4_0"), as llama.cpp does.
    if (t.dims.size() >= 2 && t.name.rfind("blk.", 0) == 0)
      bytes_by_type[std::string(tensor_type_name(t.type))] += t.n_bytes;
  }
  auto count = [&](const WeightMatrix& w) {
    info.decode_bytes_per_token += quant::row_size(w.type, w.cols) * static_cast<uint64_t>(w.rows);
    info.matmul_params += w.rows * w.cols;
  };
  count(m.weights.output);
  for (const LayerWeights& l : m.weights.layers)
    for (const WeightMatrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) count(*w);
  uint64_t best = 0;
  for (const auto& [type, bytes] : bytes_by_type)
    if (bytes > best) {
      best = bytes;
      info.weight_type = type;
    }
}

// The model as the device backends see it: plain pointers into the weights.
backend::ModelDesc describe_for_device(const ModelImpl& m) {
  const HParams& hp = m.hp;
  backend::ModelDesc d{.n_embd = hp.n_embd, .n_head = hp.n_head, .n_head_kv = hp.n_head_kv,
                       .head_dim = hp.head_dim, .n_ff = hp.n_ff, .n_rot = hp.n_rot, .n_vocab = hp.n_vocab,
                       .rms_eps = hp.rms_eps, .rope_neox = hp.rope_style == RopeStyle::kNeox};
  auto opt = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  for (const LayerWeights& l : m.weights.layers)
    d.layers.push_back({.attn_norm = l.attn_norm.data(), .wq = l.wq, .wk = l.wk, .wv = l.wv, .wo = l.wo,
                        .bq = opt(l.bq), .bk = opt(l.bk), .bv = opt(l.bv), .ffn_norm = l.ffn_norm.data(),
                        .w_gate = l.w_gate, .w_up = l.w_up, .w_down = l.w_down});
  d.output_norm = m.weights.output_norm.data();
  d.output = m.weights.output;
  return d;
}

// Uploads (once per model, shared by its contexts) the weights of the GPU
// layers and creates the context's device state.
Status attach_device(const ModelImpl& m, ContextImpl& c) {
  for (const LayerWeights& l : m.weights.layers)
    if (!l.q_norm.empty())
      return unsupported("the CUDA backend does not run per-head Q/K norms (" + m.hp.arch +
                         ") yet; use --device cpu");
  FRUGAL_ASSIGN_OR_RETURN(backend::Backend * be, backend::cuda_backend());
  const backend::ModelDesc desc = describe_for_device(m);
  const bool output = c.gpu_layers == m.hp.n_layer;
  std::shared_ptr<backend::DeviceModel> weights;
  {
    std::lock_guard<std::mutex> lock(m.device_mutex);
    if (!m.device_model || m.device_model->n_layers() < c.gpu_layers || (output && !m.device_model->has_output())) {
      m.device_model.reset();  // free the smaller upload first
      FRUGAL_ASSIGN_OR_RETURN(m.device_model, be->upload(desc, c.gpu_layers, output));
    }
    weights = m.device_model;
  }
  const ContextOptions& o = c.options;
  FRUGAL_ASSIGN_OR_RETURN(c.device, be->create_context(weights, desc,
                                                       {.n_layers = c.gpu_layers,
                                                        .output_on_device = output,
                                                        .max_batch_tokens = o.max_batch_tokens,
                                                        .max_sequences = o.max_sequences,
                                                        .max_context = o.max_context,
                                                        .kv_block_tokens = o.kv_block_tokens,
                                                        .kv_blocks = o.kv_blocks}));
  return Status::Ok();
}

// KvCache::truncate may give a sequence a private copy of a shared partial
// block; the device cache mirrors that copy.
Status truncate_kv(ContextImpl& c, int32_t seq, int32_t n_tokens) {
  if (seq < 0 || seq >= c.options.max_sequences) return Status::Ok();
  const auto& table = c.kv.block_table(seq);
  const size_t keep = (static_cast<size_t>(std::max(0, n_tokens)) + c.options.kv_block_tokens - 1) /
                      c.options.kv_block_tokens;
  const int32_t before = keep > 0 && keep <= table.size() ? table[keep - 1] : -1;
  c.kv.truncate(seq, n_tokens);
  if (c.device && before >= 0 && keep <= table.size() && table[keep - 1] != before)
    return c.device->copy_kv_block(before, table[keep - 1]);
  return Status::Ok();
}

}  // namespace

Expected<Device> parse_device(std::string_view name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  return invalid_argument("unknown device '" + std::string(name) + "' (expected cpu or cuda)");
}

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelOptions& options) {
  std::unique_ptr<Model> model(new Model());
  ModelImpl& m = *model->impl_;
  if (hf::is_hf_model_dir(path)) {
    // A Hugging Face directory becomes an in-memory GGUF, then loads like a file.
    FRUGAL_ASSIGN_OR_RETURN(m.owned_gguf, hf::convert_to_gguf_buffer(path, {.resolve_pre = tok::find_pre_tokenizer_name}));
    FRUGAL_ASSIGN_OR_RETURN(m.file, GgufFile::parse(m.owned_gguf.data(), m.owned_gguf.size()));
  } else {
    FRUGAL_ASSIGN_OR_RETURN(m.file, GgufFile::open(path));
  }
  auto fail = [&](const Status& s) { return s.with_context(path); };

  auto arch_name = m.file->get_string("general.architecture");
  if (!arch_name.ok()) return fail(arch_name.status());
  if (!arch_name->has_value()) return fail(not_found("missing metadata key 'general.architecture'"));
  m.arch = find_arch(**arch_name);
  if (m.arch == nullptr) return fail(unsupported("architecture '" + **arch_name + "'"));

  auto hp = read_hparams(*m.file, **arch_name);
  if (!hp.ok()) return fail(hp.status());
  m.hp = std::move(hp).value();
  m.hp.rope_style = m.arch->rope_style;
  if (m.arch->adjust_hparams) {
    Status s = m.arch->adjust_hparams(*m.file, m.hp);
    if (!s.ok()) return fail(s);
  }
  if (Status s = read_rope_freq_factors(*m.file, m.hp); !s.ok()) return fail(s);
  if (Status s = validate_hparams(m.hp); !s.ok()) return fail(s);

  auto weights = bind_weights(*m.file, m.hp, m.arch->bind);
  if (!weights.ok()) return fail(weights.status());
  m.weights = std::move(weights).value();

  auto tok = Tokenizer::from_gguf(*m.file);
  if (!tok.ok()) return fail(tok.status());
  m.tokenizer = std::move(tok).value();
  if (m.tokenizer->n_vocab() > m.hp.n_vocab)
    return fail(corrupt_data("tokenizer has " + std::to_string(m.tokenizer->n_vocab()) +
                             " tokens but token_embd.weight only " + std::to_string(m.hp.n_vocab) +
                             " rows"));

  m.pool = std::make_unique<ThreadPool>(options.n_threads);
  // Interleaved copies of the matmul weights for the CPU kernels (types
  // without one stay as mapped).
  for (LayerWeights& l : m.weights.layers)
    for (WeightMatrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      w->fine_activations = options.fine_activations;
      if (Status s = kernels::prepare_weight(*w, *m.pool); !s.ok()) return fail(s);
    }
  m.weights.output.fine_activations = options.fine_activations;
  if (Status s = kernels::prepare_weight(m.weights.output, *m.pool); !s.ok()) return fail(s);
  fill_info(m);
  return model;
}

InferenceContext::InferenceContext() : impl_(std::make_unique<ContextImpl>()) {}
InferenceContext::~InferenceContext() = default;
const ContextOptions& InferenceContext::options() const { return impl_->options; }
void InferenceContext::clear_sequence(int32_t seq) { (void)truncate_kv(*impl_, seq, 0); }
void InferenceContext::truncate_sequence(int32_t seq, int32_t n) { (void)truncate_kv(*impl_, seq, n); }
int32_t InferenceContext::sequence_length(int32_t seq) const {
  if (seq < 0 || seq >= impl_->options.max_sequences) return 0;
  return impl_->kv.length(seq);
}
double InferenceContext::kv_usage() const {
  const int total = impl_->kv.total_blocks();
  return total == 0 ? 0.0 : double(total - impl_->kv.free_blocks()) / total;
}

int InferenceContext::kv_free_blocks() const { return impl_->kv.free_blocks(); }
int32_t InferenceContext::attach_cached_prefix(int32_t seq, std::span<const int32_t> tokens) {
  return impl_->kv.attach_cached_prefix(seq, tokens);
}
void InferenceContext::publish_prefix(int32_t seq, std::span<const int32_t> tokens) {
  impl_->kv.publish_prefix(seq, tokens);
}

Expected<std::unique_ptr<InferenceContext>> InferenceContext::create(const Model& model,
                                                                     const ContextOptions& options) {
  const ModelImpl& m = model.impl();
  const HParams& hp = m.hp;
  std::unique_ptr<InferenceContext> ctx(new InferenceContext());
  ContextImpl& c = *ctx->impl_;
  c.model = &m;
  c.options = options;
  ContextOptions& o = c.options;
  if (o.max_context <= 0) o.max_context = hp.n_ctx_train;
  if (o.max_sequences <= 0 || o.max_batch_tokens <= 0 || o.kv_block_tokens <= 0)
    return invalid_argument("context options must be positive");
  const int blocks_per_seq = (o.max_context + o.kv_block_tokens - 1) / o.kv_block_tokens;
  if (o.kv_blocks <= 0) o.kv_blocks = blocks_per_seq * o.max_sequences;
  if (o.device == Device::kCuda)
    c.gpu_layers = o.gpu_layers < 0 ? hp.n_layer : std::min(o.gpu_layers, hp.n_layer);
  // The CPU cache keeps the block bookkeeping for every layer but storage
  // only for the CPU layers (at least one layer, as KvCache requires).
  FRUGAL_ASSIGN_OR_RETURN(c.kv, KvCache::create({.n_layer = std::max(1, hp.n_layer - c.gpu_layers),
                                                 .n_head_kv = hp.n_head_kv,
                                                 .head_dim = hp.head_dim,
                                                 .block_tokens = o.kv_block_tokens,
                                                 .n_blocks = o.kv_blocks,
                                                 .max_sequences = o.max_sequences,
                                                 .max_context = o.max_context}));
  const size_t n = o.max_batch_tokens;
  ForwardBuffers& b = c.buf;
  b.x.resize(n * hp.n_embd);
  b.h.resize(n * hp.n_embd);
  b.q.resize(n * hp.q_dim());
  b.k.resize(n * hp.kv_dim());
  b.v.resize(n * hp.kv_dim());
  b.attn.resize(n * hp.q_dim());
  b.gate.resize(n * hp.n_ff);
  b.up.resize(n * hp.n_ff);
  b.rope_cos.resize(n * (hp.n_rot / 2));
  b.rope_sin.resize(n * (hp.n_rot / 2));
  b.rope_inv_freq = rope_inverse_frequencies(hp);
  b.scores.assign(m.pool->size(), std::vector<float>(static_cast<size_t>(o.max_context) * (hp.n_head / hp.n_head_kv)));
  const int64_t max_cols = std::max({hp.n_embd, hp.n_ff, hp.q_dim()});
  // The fine-activation path also keeps fp32 products of up to a whole
  // output head (n_vocab rows) per chunk of tokens.
  const bool fine = m.weights.output.fine_activations;
  c.mm.reserve(static_cast<int64_t>(n), max_cols, fine ? std::max<int64_t>(max_cols, hp.n_vocab) : 0);
  c.first_pos.assign(o.max_sequences, -1);
  c.last_pos.assign(o.max_sequences, -1);
  if (c.gpu_layers > 0) FRUGAL_RETURN_IF_ERROR(attach_device(m, c));
  return ctx;
}

Status InferenceContext::forward(std::span<const BatchEntry> batch, std::vector<float>& logits) {
  // Every row is filled here: argmax_only is a hint for step() callers.
  std::vector<BatchEntry> full;
  const bool hinted = std::any_of(batch.begin(), batch.end(), [](const BatchEntry& e) { return e.argmax_only; });
  if (hinted) {
    full.assign(batch.begin(), batch.end());
    for (BatchEntry& e : full) e.argmax_only = false;
    batch = full;
  }
  FRUGAL_ASSIGN_OR_RETURN(const StepOutput out, step(batch));
  logits.assign(out.logits.begin(), out.logits.end());
  return Status::Ok();
}

Expected<StepOutput> InferenceContext::step(std::span<const BatchEntry> batch) {
  ContextImpl& c = *impl_;
  const ModelImpl& m = *c.model;
  const HParams& hp = m.hp;
  const int64_t n = static_cast<int64_t>(batch.size());
  if (n == 0) return invalid_argument("empty batch");
  if (n > c.options.max_batch_tokens)
    return invalid_argument("batch of " + std::to_string(n) + " tokens exceeds max_batch_tokens " +
                            std::to_string(c.options.max_batch_tokens));

  // Validate entries and find each sequence's position range.
  std::fill(c.first_pos.begin(), c.first_pos.end(), -1);
  std::fill(c.last_pos.begin(), c.last_pos.end(), -1);
  for (int64_t e = 0; e < n; ++e) {
    const BatchEntry& be = batch[e];
    if (be.seq < 0 || be.seq >= c.options.max_sequences)
      return invalid_argument("batch entry " + std::to_string(e) + ": sequence id " +
                              std::to_string(be.seq) + " out of range");
    if (be.token < 0 || be.token >= hp.n_vocab)
      return invalid_argument("batch entry " + std::to_string(e) + ": token id " +
                              std::to_string(be.token) + " outside the vocabulary");
    if (be.pos < 0 || be.pos >= c.options.max_context)
      return out_of_range("batch entry " + std::to_string(e) + ": position " +
                          std::to_string(be.pos) + " outside the context of " +
                          std::to_string(c.options.max_context));
    int32_t& first = c.first_pos[be.seq];
    int32_t& last = c.last_pos[be.seq];
    if (first < 0) {
      if (be.pos > c.kv.length(be.seq))
        return invalid_argument("batch entry " + std::to_string(e) + ": position " +
                                std::to_string(be.pos) + " leaves a gap after the " +
                                std::to_string(c.kv.length(be.seq)) + " cached tokens of sequence " +
                                std::to_string(be.seq));
      first = last = be.pos;
    } else {
      if (be.pos != last + 1)
        return invalid_argument("batch entry " + std::to_string(e) +
                                ": positions of a sequence must be consecutive");
      last = be.pos;
    }
  }
  for (int32_t s = 0; s < c.options.max_sequences; ++s) {
    if (c.first_pos[s] < 0) continue;
    FRUGAL_RETURN_IF_ERROR(truncate_kv(c, s, c.first_pos[s]));
    Status st = c.kv.reserve(s, c.last_pos[s] + 1);
    if (!st.ok()) {
      for (int32_t r = 0; r <= s; ++r)
        if (c.first_pos[r] >= 0) FRUGAL_RETURN_IF_ERROR(truncate_kv(c, r, c.first_pos[r]));
      return st;
    }
  }

  ForwardBuffers& b = c.buf;
  const bool output_on_device = c.gpu_layers == hp.n_layer;
  // With every layer on the device the inputs go straight into the memory it
  // uploads from (no CPU layer reads them here).
  const backend::StepStaging staging = output_on_device ? c.device->staging(static_cast<int>(n)) : backend::StepStaging{};
  float* x_in = staging.x ? staging.x : b.x.data();
  float* cos_in = staging.x ? staging.rope_cos : b.rope_cos.data();
  float* sin_in = staging.x ? staging.rope_sin : b.rope_sin.data();
  // Embedding rows (converted from the file's type) and RoPE tables (sines in
  // double precision) cost milliseconds per 512-token chunk on one core, which
  // a GPU step would wait for: large batches use the pool.
  const int half = hp.n_rot / 2;
  std::mutex embed_mutex;
  Status embed_status;
  auto stage_inputs = [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      Status st = read_matrix_row(m.weights.token_embd, batch[e].token, x_in + e * hp.n_embd);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(embed_mutex);
        if (embed_status.ok()) embed_status = std::move(st);
      }
    }
    rope_tables(hp, b.rope_inv_freq, batch.subspan(begin, end - begin), cos_in + begin * half, sin_in + begin * half);
  };
  if (n >= 64)
    m.pool->parallel_for(n, stage_inputs, 16);
  else
    stage_inputs(0, n);
  FRUGAL_RETURN_IF_ERROR(embed_status);

  StepOutput device_out;
  if (c.gpu_layers > 0) {
    const backend::StepInput in{
        .batch = batch,
        .x = x_in,
        .rope_cos = cos_in,
        .rope_sin = sin_in,
        .block_table = [](const void* kv, int32_t seq) {
          return std::span<const int32_t>(static_cast<const KvCache*>(kv)->block_table(seq));
        },
        .table_owner = &c.kv};
    FRUGAL_RETURN_IF_ERROR(c.device->forward(in, b.x.data(), output_on_device ? &device_out : nullptr));
  }
  for (int l = c.gpu_layers; l < hp.n_layer; ++l) {
    LayerContext lc{.hp = hp,
                    .rope_style = m.hp.rope_style,
                    .w = m.weights.layers[l],
                    .layer = l - c.gpu_layers,
                    .batch = batch,
                    .kv = c.kv,
                    .buf = b,
                    .pool = *m.pool,
                    .mm = c.mm,
                    .observer = c.options.observer,
                    .model_layer = l};
    m.arch->decoder_layer(lc);
  }
  for (int32_t s = 0; s < c.options.max_sequences; ++s)
    if (c.first_pos[s] >= 0) c.kv.set_length(s, c.last_pos[s] + 1);

  if (output_on_device) return device_out;

  // Final norm and output projection for the rows that want logits.
  int64_t n_out = 0;
  for (int64_t e = 0; e < n; ++e) {
    if (!batch[e].want_logits) continue;
    kernels::rmsnorm(b.h.data() + n_out * hp.n_embd, b.x.data() + e * hp.n_embd,
                     m.weights.output_norm.data(), hp.n_embd, hp.rms_eps);
    ++n_out;
  }
  std::vector<float>& logits = c.logits;
  logits.resize(static_cast<size_t>(n_out) * hp.n_vocab);
  if (n_out > 0) kernels::matmul(m.weights.output, b.h.data(), n_out, logits.data(), *m.pool, c.mm);
  return StepOutput{.logits = logits, .argmax = {}};
}

}  // namespace frugal
