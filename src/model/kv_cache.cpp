#include "model/kv_cache.h"

#include <algorithm>
#include <string>

namespace frugal {

Expected<KvCache> KvCache::create(const KvCacheShape& shape) {
  if (shape.n_layer <= 0 || shape.n_head_kv <= 0 || shape.head_dim <= 0 ||
      shape.block_tokens <= 0 || shape.n_blocks <= 0 || shape.max_sequences <= 0 ||
      shape.max_context <= 0)
    return invalid_argument("KV cache: every dimension must be positive");
  const uint64_t floats = static_cast<uint64_t>(shape.n_layer) * shape.n_blocks *
                          shape.block_tokens * shape.n_head_kv * shape.head_dim;
  if (floats > (uint64_t{1} << 36))
    return out_of_range("KV cache of " + std::to_string(floats * 8) + " bytes is too large");
  KvCache c;
  c.shape_ = shape;
  c.keys_.assign(floats, 0.0f);
  c.values_.assign(floats, 0.0f);
  c.tables_.resize(shape.max_sequences);
  c.lengths_.assign(shape.max_sequences, 0);
  c.ref_counts_.assign(shape.n_blocks, 0);
  c.free_list_.reserve(shape.n_blocks);
  for (int32_t b = shape.n_blocks - 1; b >= 0; --b) c.free_list_.push_back(b);
  const int blocks_per_seq = (shape.max_context + shape.block_tokens - 1) / shape.block_tokens;
  for (auto& t : c.tables_) t.reserve(blocks_per_seq);
  return c;
}

Status KvCache::reserve(int32_t seq, int32_t n_tokens) {
  if (seq < 0 || seq >= shape_.max_sequences)
    return invalid_argument("sequence id " + std::to_string(seq) + " out of range");
  if (n_tokens > shape_.max_context)
    return out_of_range("sequence needs " + std::to_string(n_tokens) +
                        " positions, the context holds " + std::to_string(shape_.max_context));
  auto& table = tables_[seq];
  const size_t need = (static_cast<size_t>(n_tokens) + shape_.block_tokens - 1) / shape_.block_tokens;
  if (need <= table.size()) return Status::Ok();
  if (need - table.size() > free_list_.size())
    return Status(ErrorCode::kResourceExhausted,
                  "KV cache full: need " + std::to_string(need - table.size()) + " more blocks, " +
                      std::to_string(free_list_.size()) + " free");
  while (table.size() < need) {
    const int32_t b = free_list_.back();
    free_list_.pop_back();
    ref_counts_[b] = 1;
    table.push_back(b);
  }
  return Status::Ok();
}

void KvCache::set_length(int32_t seq, int32_t n_tokens) { lengths_[seq] = n_tokens; }

void KvCache::truncate(int32_t seq, int32_t n_tokens) {
  if (seq < 0 || seq >= shape_.max_sequences) return;
  auto& table = tables_[seq];
  const size_t keep = (static_cast<size_t>(std::max(0, n_tokens)) + shape_.block_tokens - 1) /
                      shape_.block_tokens;
  while (table.size() > keep) {
    const int32_t b = table.back();
    table.pop_back();
    if (--ref_counts_[b] == 0) free_list_.push_back(b);
  }
  if (lengths_[seq] > n_tokens) lengths_[seq] = std::max(0, n_tokens);
}

}  // namespace frugal
