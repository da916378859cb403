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

void MatmulScratch::reserve(int64_t max_tokens, int64_t max_cols) {
  ensure(matmul_scratch_bytes(max_tokens, max_cols));
}

size_t matmul_scratch_bytes(int64_t n_tokens, int64_t cols) {
  if (n_tokens <= 0 || cols <= 0) return 0;
  // ActQ8 costs 40 bytes per 32 elements, Q8_K 292 per 256: size for the
  // larger, rounding cols up to whole blocks of either kind.
  const size_t b32 = static_cast<size_t>((cols + 31) / 32) * sizeof(ActQ8);
  const size_t b256 = static_cast<size_t>((cols + 255) / 256) * sizeof(quant::BlockQ8_K);
  return static_cast<size_t>(n_tokens) * std::max(b32, b256);
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
  for (const MatmulOp& op : ops) same = same && act_kind(op.w->type) == kind && op.w->cols == ops[0].w->cols;
  if (!same) {
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
  int64_t total_rows = 0, units = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (Status s = validate_weight(*ops[i].w); !s.ok()) abort_invalid(s);
    job.fn[i] = pick_kernel(table, *ops[i].w, n_tokens);
    total_rows += ops[i].w->rows;
    units += (ops[i].w->rows + 15) / 16;
  }
  if (total_rows == 0) return;

  const int64_t work = total_rows * job.cols * n_tokens;
  const bool parallel = pool.size() > 1 && work >= 32 * 1024;

  if (kind != ActKind::kF32) {
    job.act_row_bytes = kind == ActKind::kQ8x32
                            ? static_cast<size_t>(job.cols / 32) * sizeof(ActQ8)
                            : static_cast<size_t>(job.cols / 256) * sizeof(quant::BlockQ8_K);
    job.qbuf = scratch.ensure(job.act_row_bytes * static_cast<size_t>(n_tokens));
    job.act = job.qbuf;
    if (parallel && n_tokens >= 8) {
      const Job* jp = &job;
      pool.parallel_for(n_tokens, [jp](int64_t a, int64_t b) { quantize_rows(*jp, a, b); }, 4);
    } else {
      quantize_rows(job, 0, n_tokens);
    }
  }

  if (!parallel) {
    for (size_t i = 0; i < ops.size(); ++i) job.fn[i](*ops[i].w, job.act, n_tokens, ops[i].out, 0, ops[i].w->rows);
    return;
  }
  // Rows are handed out in chunks (multiples of 16, so every thread runs
  // whole register tiles and whole 8-row packed groups) from a shared
  // counter that runs over the chunks of every matrix of the group: one
  // pass over the pool instead of one per matrix, and on a machine shared
  // with other work a thread that gets preempted does not leave the others
  // idle at the end of the call.
  const int64_t n_thr = pool.size();
  const int64_t chunks = std::min<int64_t>(units, n_thr * 4);
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

}  // namespace frugal::kernels
