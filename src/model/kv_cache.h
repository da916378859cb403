// Paged KV cache: storage is a pool of fixed-size blocks (block_tokens
// positions each, every layer and KV head); each sequence owns a block table
// mapping its positions to blocks. Blocks are reference-counted so full
// blocks can be shared between sequences (prefix reuse).
//
// Layout of one block in one layer: [kv_head][token_in_block][head_dim], so a
// head's keys for consecutive positions are contiguous inside a block.
//
// Prefix reuse: a full block can be published under a hash chained over every
// token up to its end. A later sequence starting with the same tokens attaches
// the published blocks instead of recomputing them. A published block whose
// last user leaves stays cached; it counts as free and is evicted (least
// recently released first) only when the pool has no plain free block left.
// Published blocks are never written again: a sequence that would overwrite
// positions inside a shared block gets a private copy first.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
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
  // Frees blocks past n_tokens (rounding up to whole blocks). A kept partial
  // block that other sequences share (or that is published) is replaced by a
  // private copy, so later writes cannot change what others read.
  void truncate(int32_t seq, int32_t n_tokens);
  void clear(int32_t seq) { truncate(seq, 0); }

  // Blocks a reservation can take: free ones plus cached ones nobody uses.
  int free_blocks() const { return static_cast<int>(free_list_.size()) + n_evictable_; }
  int total_blocks() const { return shape_.n_blocks; }
  const std::vector<int32_t>& block_table(int32_t seq) const { return tables_[seq]; }
  int32_t ref_count(int32_t block) const { return ref_counts_[block]; }

  // Attaches to the empty sequence `seq` the published blocks holding the
  // longest block-aligned prefix of `tokens`, leaving at least the last token
  // uncached (its logits must be computed). Returns the positions attached.
  int32_t attach_cached_prefix(int32_t seq, std::span<const int32_t> tokens);
  // Publishes the full blocks of `seq` whose positions hold `tokens` (the
  // sequence's tokens from position 0; only cached positions are used).
  void publish_prefix(int32_t seq, std::span<const int32_t> tokens);
  // Published blocks (in use or cached).
  int published_blocks() const { return static_cast<int>(hash_to_block_.size()); }

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

  // Takes a block from the free list, else evicts the least recently released
  // cached block. -1 when neither exists.
  int32_t take_block();
  // Drops one reference; the last one frees the block or parks it as cached.
  void release_block(int32_t block);
  void unpublish(int32_t block);
  void lru_remove(int32_t block);
  void lru_push_back(int32_t block);
  void copy_block(int32_t from, int32_t to);
  uint64_t chain_hash(uint64_t parent, std::span<const int32_t> block_tokens) const;

  KvCacheShape shape_;
  std::vector<float> keys_;
  std::vector<float> values_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int32_t> lengths_;
  std::vector<int32_t> free_list_;
  std::vector<int32_t> ref_counts_;

  // Prefix cache bookkeeping, per block.
  std::vector<uint8_t> published_;
  std::vector<uint64_t> block_hash_;     // chained hash of the block (valid when published)
  std::vector<uint64_t> parent_hash_;    // hash of the block before it (0 for the first)
  std::vector<int32_t> block_tokens_;    // the tokens a published block holds, to rule out collisions
  std::unordered_map<uint64_t, int32_t> hash_to_block_;
  // Intrusive list of cached blocks with no user, oldest release first.
  std::vector<int32_t> lru_prev_, lru_next_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  int n_evictable_ = 0;
};

}  // namespace frugal
