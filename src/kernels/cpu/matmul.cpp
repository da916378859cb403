#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <atomic>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/packed.h"
#include "quant/reference.h"

namespace frugal::kernels {

ActKind act_kind(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0: case TensorType::kQ4_1: case TensorType::kQ5_0:
    case TensorType::kQ5_1: case TensorType::kQ8_0:
      return ActKind::kQ8x32;
    case TensorType::kQ4_K: case TensorType::kQ5_K: case TensorType::kQ6_K:
      return ActKind::kQ8K;
    default:
      return ActKind::kF32;
  }
}

bool matmul_supported(TensorType type) {
  switch (type) {
    case TensorType::kF32: case TensorType::kF16: case TensorType::kBF16:
    case TensorType::kQ4_0: case TensorType::kQ4_1: case TensorType::kQ5_0:
    case TensorType::kQ5_1: case TensorType::kQ8_0: case TensorType::kQ4_K:
    case TensorType::kQ5_K: case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Status validate_weight(const WeightMatrix& w) {
  const std::string name(tensor_type_name(w.type));
  if (!matmul_supported(w.type)) return unsupported("matmul: weight type " + name + " not supported");
  const int64_t bs = quant::block_size(w.type);
  if (w.cols <= 0 || w.cols % bs != 0)
    return invalid_argument("matmul: " + name + " row length " + std::to_string(w.cols) +
                            " is not a positive multiple of " + std::to_string(bs));
  if (w.rows < 0) return invalid_argument("matmul: negative row count");
  if (w.rows > 0 && w.data == nullptr) return invalid_argument("matmul: null weight data");
  return Status::Ok();
}

Status prepare_weight(WeightMatrix& w, ThreadPool& pool) {
  FRUGAL_RETURN_IF_ERROR(validate_weight(w));
  const size_t block_bytes = packed_block_bytes(w.type);
  if (block_bytes == 0 || w.rows == 0 || w.packed != nullptr) return Status::Ok();
  if (kernel_table().gemm_packed[static_cast<uint32_t>(w.type)] == nullptr) return Status::Ok();
  const int64_t groups = (w.rows + kPackRows - 1) / kPackRows;
  const size_t bytes =
      static_cast<size_t>(groups) * static_cast<size_t>(w.cols / quant::block_size(w.type)) * block_bytes;
  void* buf = std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
  if (buf == nullptr)
    return Status(ErrorCode::kResourceExhausted,
                  "matmul: cannot allocate " + std::to_string(bytes) + " bytes for repacked weights");
  const WeightMatrix* wp = &w;
  pool.parallel_for(groups, [wp, buf](int64_t g0, int64_t g1) {
    pack_rows(wp->type, wp->data, wp->rows, wp->cols, buf, g0, g1);
  });
  w.packed_owner = std::shared_ptr<const void>(buf, [](const void* p) { std::free(const_cast<void*>(p)); });
  w.packed = buf;
  return Status::Ok();
}

MatmulScratch::~MatmulScratch() { std::free(buf_); }

MatmulScratch::MatmulScratch(MatmulScratch&& o) noexcept
    : buf_(o.buf_), capacity_(o.capacity_), allocations_(o.allocations_) {
  o.buf_ = nullptr;
  o.capacity_ = 0;
}

MatmulScratch& MatmulScratch::operator=(MatmulScratch&& o) noexcept {
  if (this != &o) {
    std::free(buf_);
    buf_ = o.buf_;
    capacity_ = o.capacity_;
    allocations_ = o.allocations_;
    o.buf_ = nullptr;
    o.capacity_ = 0;
  }
  return *this;
}

void* MatmulScratch::ensure(size_t bytes) {
  if (bytes <= capacity_ && buf_) return buf_;
  std::free(buf_);
  const size_t rounded = (std::max<size_t>(bytes, 64) + 63) & ~size_t(63);
  buf_ = std::aligned_alloc(64, rounded);
  if (!buf_) {
    std::fprintf(stderr, "frugal: out of memory allocating %zu bytes of matmul scratch\n", rounded);
    std::abort();
  }
  capacity_ = rounded;
  ++allocations_;
  return buf_;
}

void MatmulScratch::reserve(int64_t max_tokens, int64_t max_cols, int64_t max_fine_rows) {
  ensure(matmul_scratch_bytes(max_tokens, max_cols, max_fine_rows));
}

namespace {
// Bytes of one quantized activation row of `cols` elements in the larger of
// the two formats (ActQ8: 40 bytes per 32 elements, Q8_K: 292 per 256),
// rounding cols up to whole blocks of either.
size_t act_row_bytes_bound(int64_t cols) {
  const size_t b32 = static_cast<size_t>((cols + 31) / 32) * sizeof(ActQ8);
  const size_t b256 = static_cast<size_t>((cols + 255) / 256) * sizeof(quant::BlockQ8_K);
  return std::max(b32, b256);
}

// Tokens per pass of the fine path: bounds its scratch (products of
// 2 * kFineChunk tokens) while keeping whole GEMM tiles.
constexpr int64_t kFineChunk = 128;

// Scratch of the fine_activations path: 2 * n_tokens activation rows (each
// rounded to 64 bytes, so the products that follow stay aligned), then the
// fp32 products of both halves (2 * n_tokens * rows).
size_t fine_act_bytes(int64_t n_tokens, int64_t cols) {
  return static_cast<size_t>(2 * n_tokens) * ((act_row_bytes_bound(cols) + 63) & ~size_t(63));
}
size_t fine_scratch_bytes(int64_t n_tokens, int64_t cols, int64_t rows) {
  return fine_act_bytes(n_tokens, cols) + static_cast<size_t>(2 * n_tokens) * static_cast<size_t>(rows) * sizeof(float);
}
}  // namespace

size_t matmul_scratch_bytes(int64_t n_tokens, int64_t cols, int64_t fine_rows) {
  if (n_tokens <= 0 || cols <= 0) return 0;
  const size_t plain = static_cast<size_t>(n_tokens) * act_row_bytes_bound(cols);
  if (fine_rows <= 0) return plain;
  return std::max(plain, fine_scratch_bytes(std::min(n_tokens, kFineChunk), cols, fine_rows));
}

namespace {

// Everything a pool job needs, passed by one pointer so the std::function
// the pool takes stays within its small-object buffer (no allocation).
struct Job {
  std::span<const MatmulOp> ops;
  GemmFn fn[kMaxMatmulGroup];
  int64_t op_chunks[kMaxMatmulGroup];  // chunks of chunk_rows rows per op
  const float* x;
  const void* act;
  int64_t n_tokens;
  int64_t cols;
  const KernelTable* table;
  void* qbuf;
  size_t act_row_bytes;
  ActKind kind;
  int64_t chunk_rows;
  std::atomic<int64_t> next{0};
};

void quantize_rows(const Job& j, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t) {
    void* dst = static_cast<uint8_t*>(j.qbuf) + t * j.act_row_bytes;
    if (j.kind == ActKind::kQ8x32)
      j.table->quant_q8x32(j.x + t * j.cols, static_cast<ActQ8*>(dst), j.cols);
    else
      j.table->quant_q8k(j.x + t * j.cols, static_cast<quant::BlockQ8_K*>(dst), j.cols);
  }
}

void abort_invalid(const Status& s) {
  std::fprintf(stderr, "frugal: matmul called with an unvalidated weight: %s\n", s.to_string().c_str());
  std::abort();
}

GemmFn pick_kernel(const KernelTable& table, const WeightMatrix& w, int64_t n_tokens) {
  const auto t = static_cast<uint32_t>(w.type);
  if (w.packed != nullptr && table.gemm_packed[t] != nullptr && n_tokens >= table.packed_min_tokens[t])
    return table.gemm_packed[t];
  return table.gemm[t];
}


constexpr int64_t kFineChunksFromTokens = 16;  // see run_rows

bool is_parallel(const ThreadPool& pool, int64_t total_rows, int64_t cols, int64_t n_tokens) {
  return pool.size() > 1 && total_rows * cols * n_tokens >= 32 * 1024;
}

// Runs the kernels of `job` (activations already in job.act) over every row
// of every op.
void run_rows(Job& job, bool parallel, ThreadPool& pool) {
  const std::span<const MatmulOp> ops = job.ops;
  int64_t units = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    job.fn[i] = pick_kernel(*job.table, *ops[i].w, job.n_tokens);
    units += (ops[i].w->rows + 15) / 16;
  }
  if (!parallel) {
    for (size_t i = 0; i < ops.size(); ++i)
      job.fn[i](*ops[i].w, job.act, job.n_tokens, ops[i].out, 0, ops[i].w->rows);
    return;
  }
  // Rows are handed out in chunks (multiples of 16, so every thread runs
  // whole register tiles and whole 8-row packed groups) from a shared
  // counter that runs over the chunks of every matrix of the group: one
  // pass over the pool instead of one per matrix, and on a machine shared
  // with other work a thread that gets preempted does not leave the others
  // idle at the end of the call.
  // Prompt-sized batches take smaller chunks: a thread that finishes early
  // waits for at most one chunk of the others, and with four chunks per
  // thread that wait was several percent of a prefill.
  const int64_t n_thr = pool.size();
  const int64_t per_thread = job.n_tokens >= kFineChunksFromTokens ? 16 : 4;
  const int64_t chunks = std::min<int64_t>(units, n_thr * per_thread);
  job.chunk_rows = ((units + chunks - 1) / chunks) * 16;
  for (size_t i = 0; i < ops.size(); ++i) job.op_chunks[i] = (ops[i].w->rows + job.chunk_rows - 1) / job.chunk_rows;
  Job* jp = &job;
  pool.run([jp](int, int) {
    for (;;) {
      int64_t c = jp->next.fetch_add(1, std::memory_order_relaxed);
      size_t i = 0;
      while (i < jp->ops.size() && c >= jp->op_chunks[i]) c -= jp->op_chunks[i++];
      if (i == jp->ops.size()) break;
      const WeightMatrix& w = *jp->ops[i].w;
      const int64_t r0 = c * jp->chunk_rows;
      const int64_t r1 = std::min(w.rows, r0 + jp->chunk_rows);
      jp->fn[i](w, jp->act, jp->n_tokens, jp->ops[i].out, r0, r1);
    }
  });
}

// Bytes of one quantized activation row of `cols` elements.
size_t act_row_bytes(ActKind kind, int64_t cols) {
  return kind == ActKind::kQ8x32 ? static_cast<size_t>(cols / 32) * sizeof(ActQ8)
                                 : static_cast<size_t>(cols / 256) * sizeof(quant::BlockQ8_K);
}

// Token t's activations as two quantized rows: hi[t] = q8(x_t) and
// lo[t] = q8(x_t - hi[t]), each block with its own scale (ActQ8 blocks of
// 32 or Q8_K blocks of 256). The residual of a block is at most half a step
// of hi, so lo adds ~7 bits of precision.
struct FineRows {
  const KernelTable* table;
  ActKind kind;
  const float* x;
  int64_t cols;
  uint8_t* hi;
  uint8_t* lo;
};

void quantize_fine_rows(const FineRows& f, int64_t t0, int64_t t1) {
  const size_t row_bytes = act_row_bytes(f.kind, f.cols);
  alignas(64) float residual[256];
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = f.x + t * f.cols;
    uint8_t* h = f.hi + t * row_bytes;
    uint8_t* l = f.lo + t * row_bytes;
    if (f.kind == ActKind::kQ8x32) {
      auto* hb = reinterpret_cast<ActQ8*>(h);
      f.table->quant_q8x32(xt, hb, f.cols);
      for (int64_t b = 0; b < f.cols / 32; ++b) {
        for (int i = 0; i < 32; ++i) residual[i] = xt[b * 32 + i] - hb[b].d * static_cast<float>(hb[b].qs[i]);
        f.table->quant_q8x32(residual, reinterpret_cast<ActQ8*>(l) + b, 32);
      }
    } else {
      auto* hb = reinterpret_cast<quant::BlockQ8_K*>(h);
      f.table->quant_q8k(xt, hb, f.cols);
      for (int64_t b = 0; b < f.cols / 256; ++b) {
        for (int i = 0; i < 256; ++i) residual[i] = xt[b * 256 + i] - hb[b].d * static_cast<float>(hb[b].qs[i]);
        f.table->quant_q8k(residual, reinterpret_cast<quant::BlockQ8_K*>(l) + b, 256);
      }
    }
  }
}

// matmul() of a fine_activations weight: per chunk of tokens, one GEMM over
// 2 * n activation rows (hi rows, then lo rows), so the weights stream once
// per chunk, then out = hi products + lo products.
void matmul_fine(const WeightMatrix& w, ActKind kind, const float* x, int64_t n_tokens, float* out,
                 ThreadPool& pool, MatmulScratch& scratch) {
  const KernelTable& table = kernel_table();
  const int64_t chunk = std::min(n_tokens, kFineChunk);
  auto* buf = static_cast<uint8_t*>(scratch.ensure(fine_scratch_bytes(chunk, w.cols, w.rows)));
  auto* products = reinterpret_cast<float*>(buf + fine_act_bytes(chunk, w.cols));
  const size_t row_bytes = act_row_bytes(kind, w.cols);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += chunk) {
    const int64_t n = std::min(chunk, n_tokens - t0);
    // The GEMM reads 2n contiguous rows: hi, then lo.
    const FineRows f{&table, kind, x + t0 * w.cols, w.cols, buf, buf + n * row_bytes};
    const bool parallel = is_parallel(pool, w.rows, w.cols, 2 * n);
    if (parallel && n >= 8) {
      // One pointer in the closure keeps the pool's std::function from allocating.
      const FineRows* fp = &f;
      pool.parallel_for(n, [fp](int64_t a, int64_t b) { quantize_fine_rows(*fp, a, b); }, 4);
    } else {
      quantize_fine_rows(f, 0, n);
    }
    const MatmulOp op{&w, products};
    Job job{};
    job.ops = {&op, 1};
    job.act = buf;
    job.n_tokens = 2 * n;
    job.cols = w.cols;
    job.table = &table;
    job.kind = kind;
    run_rows(job, parallel, pool);
    table.add(out + t0 * w.rows, products, products + n * w.rows, n * w.rows);
  }
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* out, ThreadPool& pool,
            MatmulScratch& scratch) {
  const MatmulOp op{&w, out};
  matmul_group({&op, 1}, x, n_tokens, pool, scratch);
}

void matmul_group(std::span<const MatmulOp> ops, const float* x, int64_t n_tokens, ThreadPool& pool,
                  MatmulScratch& scratch) {
  if (n_tokens <= 0 || ops.empty()) return;
  // One activation quantization serves the group only when every weight
  // reads the same format; otherwise each runs on its own.
  const ActKind kind = act_kind(ops[0].w->type);
  bool same = ops.size() <= kMaxMatmulGroup;
  for (const MatmulOp& op : ops)
    same = same && act_kind(op.w->type) == kind && op.w->cols == ops[0].w->cols && !op.w->fine_activations;
  if (ops.size() == 1 && ops[0].w->fine_activations && kind != ActKind::kF32) {
    if (Status s = validate_weight(*ops[0].w); !s.ok()) abort_invalid(s);
    if (ops[0].w->rows > 0) matmul_fine(*ops[0].w, kind, x, n_tokens, ops[0].out, pool, scratch);
    return;
  }
  if (!same && ops.size() > 1) {
    for (const MatmulOp& op : ops) matmul(*op.w, x, n_tokens, op.out, pool, scratch);
    return;
  }
  const KernelTable& table = kernel_table();
  Job job{};
  job.ops = ops;
  job.x = x;
  job.n_tokens = n_tokens;
  job.cols = ops[0].w->cols;
  job.table = &table;
  job.kind = kind;
  job.act = x;
  int64_t total_rows = 0;
  for (const MatmulOp& op : ops) {
    if (Status s = validate_weight(*op.w); !s.ok()) abort_invalid(s);
    total_rows += op.w->rows;
  }
  if (total_rows == 0) return;
  const bool parallel = is_parallel(pool, total_rows, job.cols, n_tokens);

  if (kind != ActKind::kF32) {
    job.act_row_bytes = act_row_bytes(kind, job.cols);
    job.qbuf = scratch.ensure(job.act_row_bytes * static_cast<size_t>(n_tokens));
    job.act = job.qbuf;
    if (parallel && n_tokens >= 8) {
      const Job* jp = &job;
      pool.parallel_for(n_tokens, [jp](int64_t a, int64_t b) { quantize_rows(*jp, a, b); }, 4);
    } else {
      quantize_rows(job, 0, n_tokens);
    }
  }
  run_rows(job, parallel, pool);
}

}  // namespace frugal::kernels
