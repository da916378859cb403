// Paged KV cache: storage is a pool of fixed-size blocks (block_tokens
// positions each, every layer and KV head); each sequence owns a block table
// mapping its positions to blocks. Blocks are reference-counted so a later
// prefix cache can share full blocks between sequences.
//
// Layout of one block in one layer: [kv_head][token_in_block][head_dim], so a
// head's keys for consecutive positions are contiguous inside a block.
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/status.h"

namespace frugal {

struct KvCacheShape {
  int n_layer = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int block_tokens = 16;
  int n_blocks = 0;
  int max_sequences = 1;
  int max_context = 0;  // positions per sequence
};

class KvCache {
 public:
  static Expected<KvCache> create(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }

  // Makes room for positions [0, n_tokens) of `seq` (allocating blocks).
  // Fails with kResourceExhausted when the pool is empty; nothing changes then.
  Status reserve(int32_t seq, int32_t n_tokens);
  // Marks positions [0, n_tokens) as holding data (after reserve).
  void set_length(int32_t seq, int32_t n_tokens);
  int32_t length(int32_t seq) const { return lengths_[seq]; }
  // Frees blocks past n_tokens (rounding up to whole blocks).
  void truncate(int32_t seq, int32_t n_tokens);
  void clear(int32_t seq) { truncate(seq, 0); }

  int free_blocks() const { return static_cast<int>(free_list_.size()); }
  int total_blocks() const { return shape_.n_blocks; }
  const std::vector<int32_t>& block_table(int32_t seq) const { return tables_[seq]; }

  // Address of the key / value vector of (layer, seq, pos, kv_head). pos must
  // be reserved.
  float* key(int layer, int32_t seq, int32_t pos, int kv_head) {
    return slot(keys_, layer, seq, pos, kv_head);
  }
  float* value(int layer, int32_t seq, int32_t pos, int kv_head) {
    return slot(values_, layer, seq, pos, kv_head);
  }
  // Start of the contiguous run of `kv_head` keys in the block holding `pos`.
  const float* key_block(int layer, int32_t block, int kv_head) const {
    return keys_.data() + block_offset(layer, block, kv_head);
  }
  const float* value_block(int layer, int32_t block, int kv_head) const {
    return values_.data() + block_offset(layer, block, kv_head);
  }

 private:
  size_t block_offset(int layer, int32_t block, int kv_head) const {
    const size_t per_head = static_cast<size_t>(shape_.block_tokens) * shape_.head_dim;
    const size_t per_block = per_head * shape_.n_head_kv;
    const size_t per_layer = per_block * shape_.n_blocks;
    return layer * per_layer + block * per_block + kv_head * per_head;
  }
  float* slot(std::vector<float>& store, int layer, int32_t seq, int32_t pos, int kv_head) {
    const int32_t block = tables_[seq][pos / shape_.block_tokens];
    return store.data() + block_offset(layer, block, kv_head) +
           static_cast<size_t>(pos % shape_.block_tokens) * shape_.head_dim;
  }

  KvCacheShape shape_;
  std::vector<float> keys_;
  std::vector<float> values_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int32_t> lengths_;
  std::vector<int32_t> free_list_;
  std::vector<int32_t> ref_counts_;
};

}  // namespace frugal
