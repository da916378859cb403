// Internal: interleaved weight layouts made by prepare_weight().
//
// Why: a GEMV over canonical rows needs one horizontal reduction per row and
// per-row scale conversions, and every row's quants must be widened with the
// activation in a different vector. Interleaving 8 rows so that each 32-bit
// lane of a 256-bit vector holds 4 consecutive quants of one row lets one
// broadcast activation word (4 int8) multiply all 8 rows at once: the 8 lanes
// of the integer accumulator are the 8 rows' dot products, the 8 row scales
// are one vector (vcvtph2ps), and no horizontal sums are needed at all.
//
// Layout of one group of 8 rows (rows 8g .. 8g+7), for each 32-element block b
// of the row length, one Pack* struct; groups follow each other, so group g
// block b is at index g * (cols / 32) + b. Rows past `rows` in the last group
// are zero (scale 0).
//
// Q4_0x8: qs holds 4 vectors of 32 bytes; byte 4r + i of vector p is byte
//   4p + i of row r's canonical qs (low nibble = element 4p + i, high nibble
//   = element 16 + 4p + i). So after masking, vector p's low nibbles are the
//   quants of elements 4p..4p+3 and its high nibbles those of 16+4p..16+4p+3.
// Q8_0x8: qs holds 8 vectors of 32 bytes; byte 4r + i of vector v is element
//   4v + i of row r, stored offset as an unsigned byte u = q + 128 (the sign
//   bit flipped): then the quants are the unsigned operand of maddubs /
//   dpbusd against signed activations directly, with no per-token sign
//   transfer, and the offset comes off once per block as 128 * sum(a).
// Q4_Kx8 (per 256-element super-block): the fp16 d and dmin of the 8 rows;
//   the 6-bit sub-block scales unpacked to bytes, scales[j][r] (one
//   zero-extension to int32 puts row r's scale in lane r); the mins, as
//   (min 2p, min 2p+1) byte pairs per row so one madd against a broadcast
//   pair of activation sums does two sub-blocks; and qs as 4 chunks of 8
//   vectors: byte 4r + i of vector v of chunk c is byte 32c + 4v + i of row
//   r's canonical qs (low nibble: sub-block 2c, high nibble: 2c + 1).
// Q6_Kx8 (per 256-element super-block): 64 vectors q_v (v < 64), byte
//   4r + i of q_v = unsigned 6-bit quant of element 4v + i of row r, one
//   byte each: this layout only feeds prefill tiles (decode reads the
//   canonical rows), where rebuilding quants from nibble and 2-bit planes
//   was a third of the integer work, so it trades 26% more bytes for none.
//   scales[j] holds sub-block j's (16 elements = q_{4j..4j+3}) int8 scale
//   of row r at bytes 2r and 2r + 1, as for Q4_K; scale_pairs[p] holds
//   (scale 2p, scale 2p+1) of row r at bytes 2r, 2r + 1 for the -32 offset
//   term.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/tensor_type.h"

namespace frugal::kernels {

inline constexpr int kPackRows = 8;

struct PackQ4_0x8 {
  uint16_t d[kPackRows];
  uint8_t qs[4 * 32];
};
struct PackQ8_0x8 {
  uint16_t d[kPackRows];
  uint8_t qs[8 * 32];  // q + 128
};
struct PackQ4_Kx8 {
  uint16_t d[kPackRows];
  uint16_t dmin[kPackRows];
  uint8_t scales[8][kPackRows];      // [sub-block][row]
  uint8_t mins[4][2 * kPackRows];    // [pair p][2r] = min 2p, [2r + 1] = min 2p + 1
  uint8_t qs[4][8][32];
};
struct PackQ6_Kx8 {
  uint16_t d[kPackRows];
  int8_t scales[16][2 * kPackRows];
  int8_t scale_pairs[8][2 * kPackRows];
  uint8_t q[64][32];
};
static_assert(sizeof(PackQ4_0x8) == 144);
static_assert(sizeof(PackQ6_Kx8) == 16 + 256 + 128 + 2048);
static_assert(sizeof(PackQ4_Kx8) == 1184);
static_assert(sizeof(PackQ8_0x8) == 272);

// Bytes of one packed group-block for `type`, 0 when the type has no packed
// layout (per group of 8 rows and one block of the type).
size_t packed_block_bytes(TensorType type);

// Packs canonical rows into the layout above (all of w.rows, padding the last
// group). `dst` holds ceil(rows / 8) * (cols / block size) packed blocks. Rows are
// split over [g0, g1) groups so callers can parallelize.
void pack_rows(TensorType type, const void* src, int64_t rows, int64_t cols, void* dst, int64_t g0,
               int64_t g1);

// Inverse of pack_rows for one row (tests check the round trip).
void unpack_row(TensorType type, const void* packed, int64_t rows, int64_t cols, int64_t row, void* dst);

}  // namespace frugal::kernels
