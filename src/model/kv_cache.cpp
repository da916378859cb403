#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
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
  c.published_.assign(shape.n_blocks, 0);
  c.block_hash_.assign(shape.n_blocks, 0);
  c.parent_hash_.assign(shape.n_blocks, 0);
  c.block_tokens_.assign(static_cast<size_t>(shape.n_blocks) * shape.block_tokens, 0);
  c.hash_to_block_.reserve(shape.n_blocks);
  c.lru_prev_.assign(shape.n_blocks, -1);
  c.lru_next_.assign(shape.n_blocks, -1);
  return c;
}

void KvCache::lru_remove(int32_t b) {
  const int32_t p = lru_prev_[b], n = lru_next_[b];
  (p >= 0 ? lru_next_[p] : lru_head_) = n;
  (n >= 0 ? lru_prev_[n] : lru_tail_) = p;
  lru_prev_[b] = lru_next_[b] = -1;
  --n_evictable_;
}

void KvCache::lru_push_back(int32_t b) {
  lru_prev_[b] = lru_tail_;
  lru_next_[b] = -1;
  (lru_tail_ >= 0 ? lru_next_[lru_tail_] : lru_head_) = b;
  lru_tail_ = b;
  ++n_evictable_;
}

void KvCache::unpublish(int32_t b) {
  if (!published_[b]) return;
  auto it = hash_to_block_.find(block_hash_[b]);
  if (it != hash_to_block_.end() && it->second == b) hash_to_block_.erase(it);
  published_[b] = 0;
}

int32_t KvCache::take_block() {
  int32_t b = -1;
  if (!free_list_.empty()) {
    b = free_list_.back();
    free_list_.pop_back();
  } else if (lru_head_ >= 0) {
    b = lru_head_;
    lru_remove(b);
    unpublish(b);
  }
  if (b >= 0) ref_counts_[b] = 1;
  return b;
}

void KvCache::release_block(int32_t b) {
  if (--ref_counts_[b] > 0) return;
  if (published_[b])
    lru_push_back(b);
  else
    free_list_.push_back(b);
}

void KvCache::copy_block(int32_t from, int32_t to) {
  const size_t per_block = static_cast<size_t>(shape_.block_tokens) * shape_.head_dim * shape_.n_head_kv;
  for (int l = 0; l < shape_.n_layer; ++l) {
    std::memcpy(keys_.data() + block_offset(l, to, 0), keys_.data() + block_offset(l, from, 0),
                per_block * sizeof(float));
    std::memcpy(values_.data() + block_offset(l, to, 0), values_.data() + block_offset(l, from, 0),
                per_block * sizeof(float));
  }
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
  if (need - table.size() > static_cast<size_t>(free_blocks()))
    return Status(ErrorCode::kResourceExhausted,
                  "KV cache full: need " + std::to_string(need - table.size()) + " more blocks, " +
                      std::to_string(free_blocks()) + " free");
  while (table.size() < need) table.push_back(take_block());
  return Status::Ok();
}

void KvCache::set_length(int32_t seq, int32_t n_tokens) { lengths_[seq] = n_tokens; }

void KvCache::truncate(int32_t seq, int32_t n_tokens) {
  if (seq < 0 || seq >= shape_.max_sequences) return;
  auto& table = tables_[seq];
  n_tokens = std::max(0, n_tokens);
  const size_t keep = (static_cast<size_t>(n_tokens) + shape_.block_tokens - 1) / shape_.block_tokens;
  while (table.size() > keep) {
    const int32_t b = table.back();
    table.pop_back();
    release_block(b);
  }
  if (lengths_[seq] > n_tokens) lengths_[seq] = n_tokens;
  // The kept last block is partial: the caller will overwrite its tail, so it
  // must not be visible to anyone else.
  if (n_tokens % shape_.block_tokens != 0 && table.size() == keep && keep > 0) {
    const int32_t b = table.back();
    if (ref_counts_[b] == 1) {
      unpublish(b);
    } else {
      const int32_t copy = take_block();
      if (copy >= 0) {
        copy_block(b, copy);
        table.back() = copy;
        release_block(b);
      } else {
        // No block for a private copy: give up the partial block instead.
        table.pop_back();
        release_block(b);
        lengths_[seq] = std::min<int32_t>(lengths_[seq], static_cast<int32_t>(table.size()) * shape_.block_tokens);
      }
    }
  }
}

uint64_t KvCache::chain_hash(uint64_t parent, std::span<const int32_t> toks) const {
  // FNV-1a over the parent hash and the token ids, then a final mix; the
  // stored tokens are compared on lookup, so a collision costs only a miss.
  uint64_t h = 1469598103934665603ull ^ parent;
  for (int32_t t : toks) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h == 0 ? 1 : h;
}

int32_t KvCache::attach_cached_prefix(int32_t seq, std::span<const int32_t> tokens) {
  if (seq < 0 || seq >= shape_.max_sequences || !tables_[seq].empty() || tokens.empty()) return 0;
  const int bt = shape_.block_tokens;
  const size_t max_blocks = std::min<size_t>((tokens.size() - 1) / bt, shape_.max_context / bt);
  auto& table = tables_[seq];
  uint64_t parent = 0;
  for (size_t i = 0; i < max_blocks; ++i) {
    const auto toks = tokens.subspan(i * bt, bt);
    const uint64_t h = chain_hash(parent, toks);
    auto it = hash_to_block_.find(h);
    if (it == hash_to_block_.end()) break;
    const int32_t b = it->second;
    if (parent_hash_[b] != parent ||
        !std::equal(toks.begin(), toks.end(), block_tokens_.begin() + static_cast<size_t>(b) * bt))
      break;
    if (ref_counts_[b] == 0) lru_remove(b);
    ++ref_counts_[b];
    table.push_back(b);
    parent = h;
  }
  lengths_[seq] = static_cast<int32_t>(table.size()) * bt;
  return lengths_[seq];
}

void KvCache::publish_prefix(int32_t seq, std::span<const int32_t> tokens) {
  if (seq < 0 || seq >= shape_.max_sequences) return;
  const int bt = shape_.block_tokens;
  const auto& table = tables_[seq];
  const size_t n_full = std::min({tokens.size() / bt, static_cast<size_t>(lengths_[seq]) / bt, table.size()});
  uint64_t parent = 0;
  for (size_t i = 0; i < n_full; ++i) {
    const auto toks = tokens.subspan(i * bt, bt);
    const uint64_t h = chain_hash(parent, toks);
    const int32_t b = table[i];
    if (!published_[b] && hash_to_block_.find(h) == hash_to_block_.end()) {
      published_[b] = 1;
      block_hash_[b] = h;
      parent_hash_[b] = parent;
      std::copy(toks.begin(), toks.end(), block_tokens_.begin() + static_cast<size_t>(b) * bt);
      hash_to_block_.emplace(h, b);
    }
    parent = h;
  }
}

}  // namespace frugal
