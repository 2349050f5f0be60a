#include "vault/record_cache.h"

#include <sodium.h>

#include <utility>

#include "vault/protocol/sodium_init.h"

namespace pinvault::vault {

RecordIdCache::RecordIdCache(size_t capacity) : entries_(capacity) {
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
  if (entries_.capacity() == 0) return std::nullopt;  // spare the key derivation
  Key key = KeyOf(tenant, user);
  std::lock_guard lock(mu_);
  const RecordId* id = entries_.Find(key);
  return id ? std::optional<RecordId>(*id) : std::nullopt;
}

void RecordIdCache::Put(std::string_view tenant, std::string_view user, const RecordId& id) {
  if (entries_.capacity() == 0) return;
  Key key = KeyOf(tenant, user);
  std::lock_guard lock(mu_);
  entries_.Put(key, id);
}

StatusOr<RecordId> RecordIdCache::Get(std::string_view tenant, std::string_view user,
                                      const std::function<StatusOr<RecordId>()>& compute) {
  if (entries_.capacity() == 0) return compute();
  Key key = KeyOf(tenant, user);  // once, for the lookup and the insertion
  {
    std::lock_guard lock(mu_);
    if (const RecordId* id = entries_.Find(key)) return *id;
  }
  ASSIGN_OR_RETURN(RecordId id, compute());
  std::lock_guard lock(mu_);
  entries_.Put(key, id);
  return id;
}

size_t RecordIdCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::optional<Record> RecordCache::Lookup(const RecordId& id, const Digest& row_hash,
                                          uint32_t& key_id) {
  std::lock_guard lock(mu_);
  const Entry* entry = entries_.Find(id);
  if (entry == nullptr || entry->row_hash != row_hash) return std::nullopt;
  key_id = entry->key_id;
  return CloneRecord(entry->record);
}

void RecordCache::Put(const RecordId& id, const Digest& row_hash, uint32_t key_id,
                      const Record& record) {
  if (entries_.capacity() == 0) return;
  Entry entry{row_hash, key_id, CloneRecord(record)};  // the copy is made outside the lock
  std::lock_guard lock(mu_);
  entries_.Put(id, std::move(entry));
}

void RecordCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.Clear();
}

size_t RecordCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::optional<std::vector<BucketEntry>> BucketCache::Lookup(uint32_t bucket,
                                                            const NodeValue& value) {
  std::lock_guard lock(mu_);
  const Entry* entry = entries_.Find(bucket);
  if (entry == nullptr || !(entry->value == value)) return std::nullopt;
  return entry->entries;
}

void BucketCache::Put(uint32_t bucket, const NodeValue& value, std::vector<BucketEntry> entries) {
  std::lock_guard lock(mu_);
  entries_.Put(bucket, Entry{value, std::move(entries)});
}

void BucketCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.Clear();
}

}  // namespace pinvault::vault
