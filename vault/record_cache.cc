#include "vault/record_cache.h"

#include <sodium.h>

#include <utility>

#include "vault/protocol/sodium_init.h"

namespace pinvault::vault {

RecordIdCache::RecordIdCache(size_t capacity) : capacity_(capacity) {
  protocol::internal::EnsureSodiumInitialized();
  randombytes_buf(mac_key_.data(), mac_key_.size());
}

RecordIdCache::Key RecordIdCache::KeyOf(std::string_view tenant, std::string_view user) const {
  crypto_generichash_state state;
  crypto_generichash_init(&state, mac_key_.data(), mac_key_.size(), 32);
  auto absorb = [&](std::string_view part) {
    uint8_t length[8];
    uint64_t n = part.size();
    for (int i = 7; i >= 0; --i, n >>= 8) length[i] = static_cast<uint8_t>(n);
    crypto_generichash_update(&state, length, sizeof(length));
    crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(part.data()), part.size());
  };
  absorb(tenant);
  absorb(user);
  Key key;
  crypto_generichash_final(&state, key.data(), key.size());
  return key;
}

std::optional<RecordId> RecordIdCache::Lookup(std::string_view tenant, std::string_view user) {
  if (capacity_ == 0) return std::nullopt;
  Key key = KeyOf(tenant, user);
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void RecordIdCache::Put(std::string_view tenant, std::string_view user, const RecordId& id) {
  if (capacity_ == 0) return;
  Key key = KeyOf(tenant, user);
  std::lock_guard lock(mu_);
  if (!entries_.emplace(key, id).second) return;
  order_.push_back(key);
  while (entries_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

size_t RecordIdCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

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
