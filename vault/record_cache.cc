#include "vault/record_cache.h"

#include <utility>

namespace pinvault::vault {

std::optional<Record> RecordCache::Lookup(const RecordId& id, const Digest& row_hash,
                                          uint32_t& key_id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.row_hash != row_hash) return std::nullopt;
  key_id = it->second.key_id;
  return CloneRecord(it->second.record);
}

void RecordCache::Put(const RecordId& id, const Digest& row_hash, uint32_t key_id,
                      const Record& record) {
  if (capacity_ == 0) return;
  Record copy = CloneRecord(record);
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    it->second = Entry{row_hash, key_id, std::move(copy)};
    return;
  }
  while (entries_.size() >= capacity_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  entries_.emplace(id, Entry{row_hash, key_id, std::move(copy)});
  order_.push_back(id);
}

void RecordCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
  order_.clear();
}

size_t RecordCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::optional<std::vector<BucketEntry>> BucketCache::Lookup(uint32_t bucket,
                                                            const NodeValue& value) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(bucket);
  if (it == entries_.end() || !(it->second.value == value)) return std::nullopt;
  return it->second.entries;
}

void BucketCache::Put(uint32_t bucket, const NodeValue& value, std::vector<BucketEntry> entries) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mu_);
  auto it = entries_.find(bucket);
  if (it != entries_.end()) {
    it->second = Entry{value, std::move(entries)};
    return;
  }
  while (entries_.size() >= capacity_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  entries_.emplace(bucket, Entry{value, std::move(entries)});
  order_.push_back(bucket);
}

void BucketCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
  order_.clear();
}

}  // namespace pinvault::vault
