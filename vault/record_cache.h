// RecordCache: recently used records in plaintext, so that the requests of one recovery
// (Recover1, Recover2, Recover3) do not each pay an HSM unseal.
//
// An entry is keyed by record id and tagged with the hash of the sealed row it came from
// (the value the Merkle tree authenticates). Lookup hands it out only for a row with that
// same hash, i.e. the same ciphertext, so a cached record is exactly what unsealing the
// verified row would give; a changed, replayed or tampered row never matches. Plaintexts
// stay in SecretBytes (wiped on eviction); capacity bounds how many are held.
//
// Thread-safety: all methods are thread-safe.
#ifndef PINVAULT_VAULT_RECORD_CACHE_H_
#define PINVAULT_VAULT_RECORD_CACHE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vault/merkle.h"
#include "vault/record.h"
#include "vault/record_store.h"

namespace pinvault::vault {
namespace internal {

// BoundedMap holds at most `capacity` entries (0: none), dropping the oldest-inserted first;
// replacing a value keeps its place. Not thread-safe: the caches below lock around it.
template <typename Key, typename Value, typename Hash = std::hash<Key>>
class BoundedMap {
 public:
  explicit BoundedMap(size_t capacity) : capacity_(capacity) {}

  size_t capacity() const { return capacity_; }
  size_t size() const { return entries_.size(); }

  // Find returns the value of `key`, or null.
  const Value* Find(const Key& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }

  void Put(const Key& key, Value value) {
    if (capacity_ == 0) return;
    if (!entries_.insert_or_assign(key, std::move(value)).second) return;
    order_.push_back(key);
    while (entries_.size() > capacity_) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
  }

  void Clear() {
    entries_.clear();
    order_.clear();
  }

 private:
  const size_t capacity_;
  std::unordered_map<Key, Value, Hash> entries_;
  std::deque<Key> order_;  // insertion order
};

}  // namespace internal

class RecordCache {
 public:
  // RecordCache holds at most `capacity` records (0 disables it). Oldest-inserted go first.
  explicit RecordCache(size_t capacity) : entries_(capacity) {}

  // Lookup returns a copy of the record cached for `id` if it came from a row whose hash is
  // `row_hash`, and sets `key_id` to that row's sealing key.
  std::optional<Record> Lookup(const RecordId& id, const Digest& row_hash, uint32_t& key_id);

  // Put caches a copy of `record`, the plaintext of the row with hash `row_hash`.
  void Put(const RecordId& id, const Digest& row_hash, uint32_t key_id, const Record& record);

  // Clear drops every entry.
  void Clear();

  size_t size() const;

 private:
  struct Entry {
    Digest row_hash{};
    uint32_t key_id = 0;
    Record record;
  };

  mutable std::mutex mu_;
  internal::BoundedMap<RecordId, Entry, RecordIdHash> entries_;  // guarded by mu_
};

// RecordIdCache: recently computed record ids, so that the requests of one recovery do not
// each pay an HSM MAC for the same (tenant, user).
//
// The id is a deterministic function of (tenant, user) under the HSM's record-id key, so a
// cached id is exactly what the HSM would return. Entries are keyed by a BLAKE2b-256 MAC of
// the length-prefixed (tenant, user) under a random key drawn when the cache is made and
// never stored, so the cache holds no user names. Capacity bounds the entries
// (oldest-inserted go first).
//
// Thread-safety: all methods are thread-safe.
class RecordIdCache {
 public:
  // RecordIdCache holds at most `capacity` ids (0 disables it).
  explicit RecordIdCache(size_t capacity);

  std::optional<RecordId> Lookup(std::string_view tenant, std::string_view user);
  void Put(std::string_view tenant, std::string_view user, const RecordId& id);

  // Get returns the cached id of (tenant, user), or calls `compute` and caches its result.
  StatusOr<RecordId> Get(std::string_view tenant, std::string_view user,
                         const std::function<StatusOr<RecordId>()>& compute);

  size_t size() const;

 private:
  using Key = std::array<uint8_t, 32>;  // a MAC output, hashed like a record id
  Key KeyOf(std::string_view tenant, std::string_view user) const;

  std::array<uint8_t, 32> mac_key_{};
  mutable std::mutex mu_;
  internal::BoundedMap<Key, RecordId, RecordIdHash> entries_;  // guarded by mu_
};

// BucketCache: the verified contents of recently used Merkle buckets, so that a read of one
// record need not fetch and rehash every other row of its bucket.
//
// An entry is a bucket's (id, record_hash) list together with the bucket value it hashes to
// (MerkleTree::ComputeBucket, or built by the committer from such a list). Lookup hands it
// out only for the bucket value the caller currently trusts (the in-memory tree), and the
// value is a binding commitment to the list, so the list is exactly the authenticated set
// of leaves: a reader then only needs its own row and checks it against its own leaf. Rows
// of other records are not vouched for by a hit; each is checked when it is itself read.
//
// Thread-safety: all methods are thread-safe.
class BucketCache {
 public:
  // BucketCache holds at most `capacity` buckets (0 disables it). Oldest-inserted go first.
  explicit BucketCache(size_t capacity) : entries_(capacity) {}

  // Lookup returns a copy of the entries cached for `bucket` if they were verified against
  // (or built for) exactly `value`.
  std::optional<std::vector<BucketEntry>> Lookup(uint32_t bucket, const NodeValue& value);

  // Put caches `entries` of `bucket`; the caller guarantees they hash to `value`.
  void Put(uint32_t bucket, const NodeValue& value, std::vector<BucketEntry> entries);

  // Clear drops every entry.
  void Clear();

 private:
  struct Entry {
    NodeValue value;
    std::vector<BucketEntry> entries;
  };

  std::mutex mu_;
  internal::BoundedMap<uint32_t, Entry> entries_;  // guarded by mu_
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_RECORD_CACHE_H_
