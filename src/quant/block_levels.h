// The representable values of each element of a quantized block, and packing
// of chosen integer levels back into the block.
//
// Every searched/calibrated quantizer decides a block's scales first and the
// integer level of each element second. Error-compensating quantization
// (gptq.h) needs the two steps apart: it fixes the scales of a block, then
// picks levels one column at a time while earlier rounding errors are pushed
// onto the columns not yet rounded. This header gives it (and the searched
// quantizers) one description of every format's grid.
#pragma once

#include <cstdint>

#include "frugal/tensor_type.h"

namespace frugal::quant {

// Element value = offset + step * k for an integer level k in [kmin, kmax].
struct ElementGrid {
  float step = 0.0f;
  float offset = 0.0f;
  int kmin = 0, kmax = 0;

  int level_of(float x) const;  // nearest level, clamped (kmin's zero-ish level when step is 0)
  float value(int k) const { return offset + step * static_cast<float>(k); }
};

// Types with a grid description: Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K.
bool has_block_grid(TensorType type);

// The grid of each of the block_size(type) elements of one block whose
// scale fields are already set (the quants are ignored).
void block_grids(TensorType type, const void* block, ElementGrid* grids);

// Writes levels k[0..block_size) into the quant fields of one block; the
// scale fields are left as they are. Levels must lie in their grid's range.
void pack_block_levels(TensorType type, void* block, const int* k);

}  // namespace frugal::quant
