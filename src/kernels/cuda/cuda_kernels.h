// Host entry points of the CUDA kernels. Every function enqueues work on
// `stream` and returns the launch status; nothing here synchronizes. Weight
// pointers address GGUF rows stored on the device in their file layout
// (row r at r * row_size(type, cols) bytes).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "frugal/tensor_type.h"

namespace frugal::cuda {

// Programmatic dependent launch: off by default; the backend turns it on for
// devices of compute capability 9.0 and later. While it is on, every kernel
// here may start before the previous one in its stream has finished and
// waits for it on the device (griddepcontrol), hiding launch latency.
void set_programmatic_launch(bool on);
bool programmatic_launch();

// Largest batch the fused dequantize-GEMV handles; larger batches go through
// dequantize-to-fp16 + cuBLAS.
inline constexpr int kGemvMaxRows = 8;

// Types the GEMV / dequantizer understand.
bool weight_type_supported(TensorType type);

// y[t * rows + r] (+)= sum_k W[r, k] * x[t * cols + k] for t < n_tokens
// (n_tokens <= kGemvMaxRows); accumulate adds to y instead of overwriting.
cudaError_t gemv(TensorType type, const void* w, int64_t rows, int64_t cols, const float* x,
                 int n_tokens, float* y, bool accumulate, cudaStream_t stream);

// Decode GEMVs on 8-bit activations (Q4_0, Q5_0, Q8_0): x is first
// quantized per 32-value block (q[t * cols + k] int8, d[t * cols / 32 + b]
// the block's scale amax / 127, quants rounded to nearest even), then
// y (+)= W x with integer dot products. Same shapes as gemv(); cols % 32 == 0.
bool int8_gemv_supported(TensorType type);
cudaError_t quantize_activations_q8(const float* x, int n_tokens, int64_t cols, int8_t* q, float* d,
                                    cudaStream_t stream);
cudaError_t gemv_int8(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                      const float* xd, int n_tokens, float* y, bool accumulate, cudaStream_t stream);

// Device layouts of Q4_0, Q8_0, Q4_K and Q6_K for the decode GEMVs on
// 8-bit activations (device_layouts.cuh): Q4_0 / Q8_0 / Q6_K rows hold their
// quants first and their scales after them, padded to 16 bytes; Q4_K keeps
// its GGUF layout. split_row_bytes() gives the row stride (0: no device
// layout for the type or width). The GGUF blocks of Q4_0 / Q8_0 / Q6_K only
// keep 2-byte alignment; these layouts let a thread fetch its quants in 8-
// and 16-byte loads.
bool split_layout_supported(TensorType type);
uint64_t split_row_bytes(TensorType type, int64_t cols);
// Host-side repacking of `rows` GGUF rows into dst (rows * split_row_bytes).
bool repack_split_rows(TensorType type, const void* src, int64_t rows, int64_t cols, void* dst);
cudaError_t gemv_int8_split(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                            const float* xd, int n_tokens, float* y, bool accumulate, cudaStream_t stream);
cudaError_t dequantize_split_to_f16(TensorType type, const void* w, int64_t rows, int64_t cols, __half* out,
                                    cudaStream_t stream);

// One matrix of a grouped GEMV: y (+)= W x for the `rows` rows of W.
struct GemvOutput {
  const void* w = nullptr;
  int64_t rows = 0;
  float* y = nullptr;
};
inline constexpr int kGemvMaxOutputs = 3;
// Up to kGemvMaxOutputs matrices of one type and width that read the same
// input (q/k/v, gate/up) in one launch, each row computed exactly as a lone
// gemv() on fp32 activations x or, with `split` (device layout, 8-bit
// activations xq / xd), as gemv_int8_split(). One launch instead of three
// keeps the GPU busy between small matrices during decode.
cudaError_t gemv_group(TensorType type, bool split, const GemvOutput* outs, int n_outs, int64_t cols,
                       const float* x, const int8_t* xq, const float* xd, int n_tokens, bool accumulate,
                       cudaStream_t stream);

// One token, split layouts of two types in one launch: outs[0, n_a) of
// type_a, outs[n_a, n_outs) of type_b, each row computed as
// gemv_int8_split() computes it (cols <= 8192). A Q4_K_M layer's Q4_K q / k
// and Q6_K v go in one launch instead of two.
cudaError_t gemv_group_split2(TensorType type_a, int n_a, TensorType type_b, const GemvOutput* outs, int n_outs,
                              int64_t cols, const int8_t* xq, const float* xd, cudaStream_t stream);

// Where a producer kernel also writes its output as 8-bit activations (the
// layout of quantize_activations_q8, bit-identical quants); null: not wanted.
struct Q8Out {
  int8_t* q = nullptr;
  float* d = nullptr;
};

// Single-token gate/up GEMV on fp32 activations with the SwiGLU in its
// epilogue: hidden[i] = silu(W_gate x)[i] * (W_up x)[i] for i < n_ff (even),
// the bits of gemv_group + silu_mul for rows of up to 8192 columns. (On
// 8-bit activations gemv_group's blocks hold 2 hidden values: quantizing
// them needs a 32-value block from 16 blocks, and a cross-block handshake
// measured slower than the separate kernel on an H200; gemv_rows_swiglu's
// blocks hold 32.)
cudaError_t gemv_swiglu(TensorType type, const void* w_gate, const void* w_up, int64_t n_ff, int64_t cols,
                        const float* x, float* hidden, cudaStream_t stream);

// Single-token GEMVs on 8-bit activations over the split layouts in which
// each block owns 32 whole output rows (8 warps x 4 rows, a warp's lanes
// across its rows), so a block holds a whole 32-value activation block of
// its output and quantizes it for the next matmul itself: a decode layer's
// RMSNorms and SwiGLU need no kernel of their own.
//
// Deferred RMSNorm: a residual GEMV leaves the quants of x * weight -- not
// yet divided by rms(x): a block's scale absorbs any common factor, so they
// are the quants of the normalized values up to rounding -- and, per block,
// the sum of squares of its 32 values of x. The GEMV that reads them scales
// its row sums by rsqrt(sum of the partials / cols + eps).
struct DeferredNorm {
  const float* sum_sq = nullptr;  // `count` partial sums; null: the input needs no scaling
  int count = 0;
  int64_t cols = 0;
  float eps = 0.0f;
};
// What a residual GEMV leaves for the next layer's RMSNorm (weight null:
// nothing, only the residual update).
struct NormQuantsOut {
  const float* weight = nullptr;
  Q8Out q8;
  float* sum_sq = nullptr;  // rows / 32 partial sums of squares
};
// y = r * W a for up to kGemvMaxOutputs matrices of one type and width
// (q/k/v), r = 1 or the deferred norm's factor.
cudaError_t gemv_rows(TensorType type, const GemvOutput* outs, int n_outs, int64_t cols, const int8_t* xq,
                      const float* xd, const DeferredNorm& norm, cudaStream_t stream);
// x += W a (the o and FFN down projections into the residual stream, rows a
// multiple of 32), then the next RMSNorm's deferred quants from x.
cudaError_t gemv_rows_residual(TensorType type, const void* w, int64_t rows, int64_t cols, const int8_t* xq,
                               const float* xd, float* x, const NormQuantsOut& next, cudaStream_t stream);
// hidden = silu(r * W_gate a) * (r * W_up a) as 8-bit activations (n_ff a
// multiple of 32); hidden_f32, when not null, also gets the fp32 values.
cudaError_t gemv_rows_swiglu(TensorType type, const void* w_gate, const void* w_up, int64_t n_ff, int64_t cols,
                             const int8_t* xq, const float* xd, const DeferredNorm& norm, Q8Out hidden,
                             float* hidden_f32, cudaStream_t stream);

// Where a producer kernel also writes its output as the 16-bit activations
// of a cuBLAS GEMM (bf16 for bf16 weights, else fp16; same layout as the
// fp32 output, round to nearest); null: not wanted.
struct Act16Out {
  void* data = nullptr;
  bool bf16 = false;
};

// Dequantizes rows [0, rows) of W to row-major fp16 (out[r * cols + k]).
cudaError_t dequantize_to_f16(TensorType type, const void* w, int64_t rows, int64_t cols,
                              __half* out, cudaStream_t stream);

// fp32 -> fp16 / bf16 element-wise conversion of n values.
cudaError_t convert_f32_to_f16(const float* x, __half* out, int64_t n, cudaStream_t stream);
cudaError_t convert_f32_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream);

// out[i] = x[src_row(i)] / rms(x[src_row(i)]) * weight for i < n_rows, where
// src_row(i) = rows ? rows[i] : i (the gather picks the rows that want logits).
// With q8, out is also quantized to 8 bits per 32 values (n % 32 == 0).
// With a16 (and no q8) out is also written as 16-bit activations.
cudaError_t rmsnorm(const float* x, const float* weight, const int32_t* rows, int n_rows, int n,
                    float eps, float* out, cudaStream_t stream, Q8Out q8 = {}, Act16Out a16 = {});

// gate[i] = silu(gate[i]) * up[i]; with q8 also quantized (n % 32 == 0).
cudaError_t silu_mul(float* gate, const float* up, int64_t n, cudaStream_t stream, Q8Out q8 = {});
// Rows of a fused gate/up output: for r < n_rows, j < n_ff,
// v = silu(gate[r * stride + j]) * up[r * stride + j], written to out[r * n_ff + j]
// when out is set and to a16 when that is set (n_ff % 4 == 0, stride % 4 == 0).
cudaError_t silu_mul_rows(const float* gate, const float* up, int n_rows, int64_t n_ff, int64_t stride, float* out,
                          Act16Out a16, cudaStream_t stream);

// out[r] = the index of the largest of x[r * n .. r * n + n), the lowest
// among equals; NaNs never win (a row of NaNs gives 0). Greedy sampling on
// the device: a step then downloads token ids instead of logits rows.
cudaError_t argmax_rows(const float* x, int n_rows, int64_t n, int32_t* out, cudaStream_t stream);

// Geometry of the paged KV cache of one layer: [block][kv_head][token][head_dim] fp16.
struct KvLayout {
  __half* keys = nullptr;
  __half* values = nullptr;
  int n_head_kv = 0;
  int head_dim = 0;
  int block_tokens = 0;
};

// Per-entry batch description on the device: position and the offset of the
// entry's sequence block table inside `tables`.
struct BatchDevice {
  const int32_t* pos = nullptr;
  const int32_t* table_offset = nullptr;
  const int32_t* tables = nullptr;
};

// Adds the optional biases to q/k/v, rotates the first n_rot dimensions of
// every q and k head (neox: pairs (i, i + n_rot/2), else (2i, 2i+1)) with the
// per-entry cos/sin tables ([n][n_rot/2]), writes q to q_out ([n][n_head *
// head_dim]; null: in place) and stores k, v into the cache slot of each
// entry. Row e of q / k / v starts at e * q_stride / e * kv_stride floats
// (0: packed rows; a fused [q | k | v] output has both at its row width).
cudaError_t rope_and_store_kv(float* q, const float* k, const float* v, const float* bq,
                              const float* bk, const float* bv, const float* cos_table,
                              const float* sin_table, int n_tokens, int n_head, int n_rot,
                              bool neox, const KvLayout& kv, const BatchDevice& batch,
                              cudaStream_t stream, float* q_out = nullptr, int64_t q_stride = 0,
                              int64_t kv_stride = 0);

// Causal attention of every (entry, head) over positions [0, pos] of its
// sequence. splits > 1 divides each sequence into chunks of kAttnSplitTokens
// handled by separate blocks (flash-decoding) and merges them; partial must
// then hold n_tokens * n_head * splits * (head_dim + 2) floats. With q8 the
// output ([n_tokens][n_head * head_dim]) is also quantized.
//
// With rope.k set (one token, n_rot == head_dim), q, rope.k and rope.v are
// the projections before RoPE: the kernel does rope_and_store_kv's work
// itself (biases, rotation, the key and value stored at the token's
// position) and attends with them, one launch instead of two.
//
// One token (head sizes up to 128) takes a kernel that reads the cache rows
// of earlier positions before waiting for the previous kernel, a block per
// query head and split; given split_counters (n_head zeroed values, left
// zeroed) the last block of each head also merges the splits, without the
// second launch.
struct RopeIn {
  const float* k = nullptr;
  const float* v = nullptr;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const float *cos = nullptr, *sin = nullptr;  // the token's n_rot / 2 angles
  int n_rot = 0;
  bool neox = false;
};
inline constexpr int kAttnSplitTokens = 64;
cudaError_t attention(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_tokens,
                      int n_head, float scale, int splits, float* partial, float* out,
                      cudaStream_t stream, Q8Out q8 = {}, const RopeIn& rope = {},
                      unsigned* split_counters = nullptr);

// The same attention on tensor cores for prefill and large batches: entries
// go in tiles of consecutive entries of one sequence (positions increasing),
// at most 64 / group entries each. attention_prefill_tiles() fills tiles
// with (first entry, count) pairs (room for 2 * entries) from each entry's
// sequence id and returns their number. fp16 queries and probabilities,
// fp32 accumulation. Head sizes 64 and 128. With out16 the output also (or,
// with out null, only) goes out as the 16-bit input of the next GEMM.
int attention_prefill_tiles(const int32_t* seq_of_entry, int n_entries, int group, int32_t* tiles);
bool attention_prefill_supported(int head_dim, int group);
cudaError_t attention_prefill(const float* q, const KvLayout& kv, const BatchDevice& batch, const int32_t* tiles,
                              int n_tiles, int n_head, float scale, float* out, cudaStream_t stream,
                              Act16Out out16 = {});

// The same attention for a batch of one-token entries (decode; each entry
// attends to its own sequence's positions [0, pos]): one block per (entry,
// kv head), keys and values read straight into tensor-core fragments. fp16
// queries and probabilities, fp32 accumulation, outputs as attention_prefill.
// Head sizes 64 and 128, up to 8 query heads per kv head.
bool attention_decode_supported(int head_dim, int group);
cudaError_t attention_decode(const float* q, const KvLayout& kv, const BatchDevice& batch, int n_entries, int n_head,
                             float scale, float* out, cudaStream_t stream, Act16Out out16 = {});

// True when attention() has a kernel for this head size.
bool attention_head_dim_supported(int head_dim);

// Copies one KV block (every kv head) from `from` to `to` in a layer.
cudaError_t copy_kv_block(const KvLayout& kv, int32_t from, int32_t to, cudaStream_t stream);

}  // namespace frugal::cuda
