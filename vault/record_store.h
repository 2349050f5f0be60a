// RecordStore: the untrusted storage seam of the core.
//
// The core (vault/realm.h) keeps every user record sealed by the HSM and authenticated by a
// sparse Merkle tree (vault/merkle.h) whose root is anchored in the HSM (vault/anchor.h).
// Storage only ever sees:
//   - records: (record id, version, record hash, sealed bytes); the record id is an HSM MAC
//     of (tenant, user), so the store cannot tell whose row it holds;
//   - tree nodes: the persisted frontier of each partition's Merkle tree (one hash per
//     id-prefix bucket), so that start-up does not have to rehash every record;
//   - one head per partition (vault/partition.h): its current epoch and the core's MAC'd
//     commit certificate.
// Records are keyed by id alone (an id's partition is its top bits); tree nodes and heads
// by partition, so that partitions commit independently.
// Nothing the store returns is trusted: the core checks every row against the in-memory tree
// before it unseals or uses it, and checks the head against the HSM anchor at start.
//
// Implementations: backup/store/sqlite_record_store.h (SQLite, the embedded default) and an
// in-memory store for tests (tests/testing/memory_record_store.h).
//
// Errors: UNAVAILABLE when storage cannot be reached or is busy (retry later; no effect),
// ABORTED when a compare-and-swap precondition of Commit does not hold (no effect),
// DATA_LOSS when the backing data is unreadable or corrupt, FAILED_PRECONDITION when the
// storage format is newer than this code.
//
// Thread-safety: implementations must be safe for concurrent use. The core issues reads
// from many threads and commits from one thread at a time.
#ifndef PINVAULT_VAULT_RECORD_STORE_H_
#define PINVAULT_VAULT_RECORD_STORE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::vault {

inline constexpr size_t kRecordIdSize = 32;
inline constexpr size_t kDigestSize = 32;

// RecordId is the opaque 256-bit key of a record: HMAC-SHA256(record-id key, tenant, user).
using RecordId = std::array<uint8_t, kRecordIdSize>;

// Digest is a 32-byte hash (BLAKE2b-256 as the core uses it).
using Digest = std::array<uint8_t, kDigestSize>;

// RecordIdHash hashes a record id (or any other 32-byte MAC output) for unordered
// containers: its first 8 bytes, which are uniformly distributed.
struct RecordIdHash {
  size_t operator()(const RecordId& id) const noexcept {
    size_t h = 0;
    for (size_t i = 0; i < sizeof(h); ++i) h = h << 8 | id[i];
    return h;
  }
};

// StoredRecord is one record row exactly as storage holds it.
struct StoredRecord {
  RecordId id{};
  uint64_t version = 0;  // the core's per-record write counter, >= 1
  Digest record_hash{};  // the core's hash of (version, sealed); checked on every read
  Bytes sealed;          // the encoded SealedBlob (vault/record.h)
  friend bool operator==(const StoredRecord&, const StoredRecord&) = default;
};

// BucketEntry is the part of a row the Merkle tree covers.
struct BucketEntry {
  RecordId id{};
  Digest record_hash{};
  friend bool operator==(const BucketEntry&, const BucketEntry&) = default;
};

// BucketScan is what ScanBucket returns: one consistent snapshot of a bucket.
struct BucketScan {
  std::vector<BucketEntry> entries;    // every row with lo <= id <= hi, ascending by id
  std::optional<StoredRecord> target;  // the full row whose id == target, if present
};

// TreeNode is one persisted node of the Merkle frontier. `kind` and `hash` are the core's;
// the store keeps them verbatim.
struct TreeNode {
  uint32_t index = 0;
  uint8_t kind = 0;
  Digest hash{};
  friend bool operator==(const TreeNode&, const TreeNode&) = default;
};

// StoreHead is the store's current epoch and the core's commit certificate for it.
struct StoreHead {
  uint64_t epoch = 0;
  Bytes certificate;
  friend bool operator==(const StoreHead&, const StoreHead&) = default;
};

// TreeSnapshot is one partition's head and every persisted tree node of it, read in one
// snapshot.
struct TreeSnapshot {
  std::optional<StoreHead> head;  // nullopt: the store has never been committed to
  std::vector<TreeNode> nodes;    // ascending by index
};

// RecordPut writes `record` if the row's current version equals `expected_version`
// (0: no row with that id may exist).
struct RecordPut {
  StoredRecord record;
  uint64_t expected_version = 0;
};

// LeaseFence names the lease a commit is made under (several nodes, DESIGN.md section 8): the
// store applies the batch only while `owner` holds the partition's lease at `term`, checked
// inside the commit's own transaction, so a stale owner (paused, partitioned, slow) can never
// commit after another node took the partition.
struct LeaseFence {
  std::string owner;
  uint64_t term = 0;
  friend bool operator==(const LeaseFence&, const LeaseFence&) = default;
};

// CommitBatch is one atomic transaction on one partition: records (all in the partition),
// its tree nodes and its new head.
struct CommitBatch {
  uint32_t partition = 0;
  // fence: the lease the commit is made under; nullopt on a single node. A store without
  // leases refuses a fenced batch (INVALID_ARGUMENT); a store with leases answers ABORTED,
  // with nothing applied, when the lease is no longer held at that term.
  std::optional<LeaseFence> fence;
  // expected_epoch: the head's epoch must equal this (nullopt: the store must have no head).
  std::optional<uint64_t> expected_epoch;
  StoreHead head;                      // the head after this commit
  std::vector<RecordPut> records;      // at most one per id
  std::vector<TreeNode> nodes;         // insert or replace, by index
  std::vector<uint32_t> erased_nodes;  // indices to remove (absent ones are ignored)
};

class RecordStore {
 public:
  virtual ~RecordStore() = default;

  // ReadTree returns the head and all tree nodes of `partition` from one consistent snapshot.
  virtual StatusOr<TreeSnapshot> ReadTree(uint32_t partition) = 0;

  // ScanBucket returns, from one consistent snapshot, the (id, record_hash) of every record
  // with lo <= id <= hi (bytewise order) and the full row of `target` if it exists.
  virtual StatusOr<BucketScan> ScanBucket(const RecordId& lo, const RecordId& hi,
                                          const RecordId& target) = 0;

  // ReadRecord returns the row with `id`, or nullopt. The core uses it only when it already
  // holds the bucket's verified (id, record_hash) list for the current tree (the bucket
  // cache); otherwise it reads through ScanBucket so that the row comes with its proof.
  virtual StatusOr<std::optional<StoredRecord>> ReadRecord(const RecordId& id) = 0;

  // Commit applies `batch` atomically and durably: when it returns OK every part is on
  // stable storage; on any error none of it is visible (ABORTED if a compare-and-swap
  // precondition failed). If the call fails in a way that leaves the outcome unknown (an
  // I/O error during the final sync), it returns UNAVAILABLE and the caller must re-read
  // the head to learn which state the store is in.
  virtual Status Commit(const CommitBatch& batch) = 0;
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_RECORD_STORE_H_
