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
  const WeightMatrix* w;
  const float* x;
  const void* act;
  int64_t n_tokens;
  float* out;
  GemmFn fn;
  const KernelTable* table;
  void* qbuf;
  size_t act_row_bytes;
  ActKind kind;
  int64_t chunk_rows;
  std::atomic<int64_t> next{0};
};

void quantize_rows(const Job& j, int64_t t0, int64_t t1) {
  const int64_t cols = j.w->cols;
  for (int64_t t = t0; t < t1; ++t) {
    void* dst = static_cast<uint8_t*>(j.qbuf) + t * j.act_row_bytes;
    if (j.kind == ActKind::kQ8x32)
      j.table->quant_q8x32(j.x + t * cols, static_cast<ActQ8*>(dst), cols);
    else
      j.table->quant_q8k(j.x + t * cols, static_cast<quant::BlockQ8_K*>(dst), cols);
  }
}

void abort_invalid(const Status& s) {
  std::fprintf(stderr, "frugal: matmul called with an unvalidated weight: %s\n", s.to_string().c_str());
  std::abort();
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* out, ThreadPool& pool,
            MatmulScratch& scratch) {
  if (n_tokens <= 0 || w.rows == 0) return;
  if (Status s = validate_weight(w); !s.ok()) abort_invalid(s);
  const KernelTable& table = kernel_table();
  Job job{};
  job.w = &w;
  job.x = x;
  job.n_tokens = n_tokens;
  job.out = out;
  job.table = &table;
  job.kind = act_kind(w.type);
  job.fn = table.gemm[static_cast<uint32_t>(w.type)];
  if (w.packed != nullptr && table.gemm_packed[static_cast<uint32_t>(w.type)] != nullptr &&
      n_tokens >= table.packed_min_tokens[static_cast<uint32_t>(w.type)])
    job.fn = table.gemm_packed[static_cast<uint32_t>(w.type)];
  job.act = x;

  const int64_t work = w.rows * w.cols * n_tokens;
  const bool parallel = pool.size() > 1 && work >= 32 * 1024;

  if (job.kind != ActKind::kF32) {
    job.act_row_bytes = job.kind == ActKind::kQ8x32
                            ? static_cast<size_t>(w.cols / 32) * sizeof(ActQ8)
                            : static_cast<size_t>(w.cols / 256) * sizeof(quant::BlockQ8_K);
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
    job.fn(w, job.act, n_tokens, out, 0, w.rows);
    return;
  }
  // Rows are handed out in chunks (multiples of 16, so every thread runs
  // whole register tiles and whole 8-row packed groups) from a shared
  // counter: on a machine shared with other work, a thread that gets
  // preempted does not leave the others idle at the end of the call.
  const int64_t n_thr = pool.size();
  const int64_t units = (w.rows + 15) / 16;
  const int64_t chunks = std::min<int64_t>(units, n_thr * 4);
  job.chunk_rows = ((units + chunks - 1) / chunks) * 16;
  Job* jp = &job;
  pool.run([jp](int, int) {
    const int64_t rows = jp->w->rows;
    for (;;) {
      const int64_t r0 = jp->next.fetch_add(jp->chunk_rows, std::memory_order_relaxed);
      if (r0 >= rows) break;
      const int64_t r1 = std::min(rows, r0 + jp->chunk_rows);
      jp->fn(*jp->w, jp->act, jp->n_tokens, jp->out, r0, r1);
    }
  });
}

}  // namespace frugal::kernels
