#include "model/blocks.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "kernels/cpu/vec_ops.h"
#include "model/weights.h"

namespace frugal {

void rmsnorm_rows(const float* x, const float* weight, int64_t n_rows, int64_t n, float eps,
                  float* out, ThreadPool& pool) {
  pool.parallel_for(
      n_rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) kernels::rmsnorm(out + r * n, x + r * n, weight, n, eps);
      },
      8);
}

void rope_tables(const HParams& hp, const std::vector<float>& inv,
                 std::span<const BatchEntry> batch, float* cos_out, float* sin_out) {
  const int half = hp.n_rot / 2;
  for (size_t e = 0; e < batch.size(); ++e) {
    for (int i = 0; i < half; ++i) {
      // Angles in double: positions up to 1e5 times frequencies near 1 lose
      // precision in float before the sine is taken.
      const double angle = static_cast<double>(batch[e].pos) * inv[i];
      cos_out[e * half + i] = static_cast<float>(std::cos(angle));
      sin_out[e * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void apply_rope(float* rows, int64_t n_rows, int n_heads, const HParams& hp, RopeStyle style,
                const float* cos_table, const float* sin_table) {
  const int half = hp.n_rot / 2;
  const int hd = hp.head_dim;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* c = cos_table + r * half;
    const float* s = sin_table + r * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = rows + (r * n_heads + h) * hd;
      if (style == RopeStyle::kInterleaved) {
        for (int i = 0; i < half; ++i) {
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c[i] - b * s[i];
          v[2 * i + 1] = a * s[i] + b * c[i];
        }
      } else {
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = a * s[i] + b * c[i];
        }
      }
    }
  }
}

void paged_attention(LayerContext& ctx) {
  const HParams& hp = ctx.hp;
  const int64_t n = static_cast<int64_t>(ctx.batch.size());
  const int hd = hp.head_dim;
  const int n_kv = hp.n_head_kv;
  const int group = hp.n_head / hp.n_head_kv;
  const int bt = ctx.kv.shape().block_tokens;

  // Store this batch's keys and values first, so entries later in the batch
  // see the earlier ones (a prompt is one batch).
  for (int64_t e = 0; e < n; ++e) {
    const BatchEntry& be = ctx.batch[e];
    for (int h = 0; h < n_kv; ++h) {
      std::copy_n(ctx.buf.k.data() + (e * n_kv + h) * hd, hd, ctx.kv.key(ctx.layer, be.seq, be.pos, h));
      std::copy_n(ctx.buf.v.data() + (e * n_kv + h) * hd, hd,
                  ctx.kv.value(ctx.layer, be.seq, be.pos, h));
    }
  }

  // One task per (entry, KV head): the `group` query heads sharing that KV
  // head are handled together, so each key and value row is fetched from
  // the cache once per group (and then reused from L1 by every head) rather
  // than once per query head. With a per-thread score buffer too small for
  // a whole group (a caller that sized it for one head) heads go one at a
  // time.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t tasks = n * n_kv;
  // Tasks are handed out from a shared counter: in a prompt, later entries
  // attend to more positions, so contiguous ranges per thread would leave
  // the thread with the first half of the prompt idle for most of the call.
  std::atomic<int64_t> next_task{0};
  ctx.pool.run([&](int thread, int) {
    std::vector<float>& sbuf = ctx.buf.scores[thread];
    for (int64_t task = next_task.fetch_add(1, std::memory_order_relaxed); task < tasks;
         task = next_task.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t e = task / n_kv;
      const int kvh = static_cast<int>(task % n_kv);
      const BatchEntry& be = ctx.batch[e];
      const auto& table = ctx.kv.block_table(be.seq);
      const int32_t len = be.pos + 1;
      const int heads_at_once = sbuf.size() >= static_cast<size_t>(group) * len ? group : 1;
      for (int g0 = 0; g0 < group; g0 += heads_at_once) {
        const int h0 = kvh * group + g0;
        const float* q = ctx.buf.q.data() + (e * hp.n_head + h0) * hd;
        float* out = ctx.buf.attn.data() + (e * hp.n_head + h0) * hd;
        float* scores = sbuf.data();
        for (int32_t t0 = 0; t0 < len; t0 += bt) {
          const float* kb = ctx.kv.key_block(ctx.layer, table[t0 / bt], kvh);
          const int32_t cnt = std::min(bt, len - t0);
          for (int g = 0; g < heads_at_once; ++g)
            kernels::dot_rows(q + g * hd, kb, cnt, hd, scale, scores + g * len + t0);
        }
        for (int g = 0; g < heads_at_once; ++g) {
          kernels::softmax(scores + g * len, len);
          std::fill_n(out + g * hd, hd, 0.0f);
        }
        for (int32_t t0 = 0; t0 < len; t0 += bt) {
          const float* vb = ctx.kv.value_block(ctx.layer, table[t0 / bt], kvh);
          const int32_t cnt = std::min(bt, len - t0);
          for (int g = 0; g < heads_at_once; ++g)
            kernels::axpy_rows(scores + g * len + t0, vb, cnt, hd, out + g * hd);
        }
      }
    }
  });
}

namespace {

void add_bias_rows(float* rows, const std::vector<float>& bias, int64_t n_rows) {
  if (bias.empty()) return;
  const int64_t d = static_cast<int64_t>(bias.size());
  for (int64_t r = 0; r < n_rows; ++r) kernels::add(rows + r * d, rows + r * d, bias.data(), d);
}

}  // namespace

void standard_decoder_layer(LayerContext& ctx) {
  const HParams& hp = ctx.hp;
  const LayerWeights& w = ctx.w;
  ForwardBuffers& b = ctx.buf;
  const int64_t n = static_cast<int64_t>(ctx.batch.size());
  const int64_t d = hp.n_embd;

  rmsnorm_rows(b.x.data(), w.attn_norm.data(), n, d, hp.rms_eps, b.h.data(), ctx.pool);
  ctx.observe(LinearInput::kAttnIn, b.h.data(), n, d);
  const kernels::MatmulOp qkv[] = {{&w.wq, b.q.data()}, {&w.wk, b.k.data()}, {&w.wv, b.v.data()}};
  kernels::matmul_group(qkv, b.h.data(), n, ctx.pool, ctx.mm);
  add_bias_rows(b.q.data(), w.bq, n);
  add_bias_rows(b.k.data(), w.bk, n);
  add_bias_rows(b.v.data(), w.bv, n);
  if (!w.q_norm.empty()) {
    rmsnorm_rows(b.q.data(), w.q_norm.data(), n * hp.n_head, hp.head_dim, hp.rms_eps, b.q.data(), ctx.pool);
    rmsnorm_rows(b.k.data(), w.k_norm.data(), n * hp.n_head_kv, hp.head_dim, hp.rms_eps, b.k.data(), ctx.pool);
  }
  apply_rope(b.q.data(), n, hp.n_head, hp, ctx.rope_style, b.rope_cos.data(), b.rope_sin.data());
  apply_rope(b.k.data(), n, hp.n_head_kv, hp, ctx.rope_style, b.rope_cos.data(), b.rope_sin.data());
  paged_attention(ctx);
  ctx.observe(LinearInput::kAttnOutputIn, b.attn.data(), n, hp.q_dim());
  kernels::matmul(w.wo, b.attn.data(), n, b.h.data(), ctx.pool, ctx.mm);
  kernels::add(b.x.data(), b.x.data(), b.h.data(), n * d);

  rmsnorm_rows(b.x.data(), w.ffn_norm.data(), n, d, hp.rms_eps, b.h.data(), ctx.pool);
  ctx.observe(LinearInput::kFfnIn, b.h.data(), n, d);
  const kernels::MatmulOp gate_up[] = {{&w.w_gate, b.gate.data()}, {&w.w_up, b.up.data()}};
  kernels::matmul_group(gate_up, b.h.data(), n, ctx.pool, ctx.mm);
  kernels::silu_mul(b.gate.data(), b.gate.data(), b.up.data(), n * hp.n_ff);
  ctx.observe(LinearInput::kFfnDownIn, b.gate.data(), n, hp.n_ff);
  kernels::matmul(w.w_down, b.gate.data(), n, b.h.data(), ctx.pool, ctx.mm);
  kernels::add(b.x.data(), b.x.data(), b.h.data(), n * d);
}

}  // namespace frugal
