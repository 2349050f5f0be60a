// The core's authenticated dictionary: a sparse Merkle tree keyed by the 256-bit record id
// over leaves (record id, record hash), with a compact in-memory upper tree and buckets
// read from storage on demand.
//
// Tree definition (canonical: the root depends only on the set of leaves):
//   empty subtree         value 0^32                          kind Empty
//   subtree with one leaf H(0x00 ‖ id ‖ record_hash)          kind Leaf   (at any depth)
//   anything else         H(0x01 ‖ left value ‖ right value)  kind Interior
// where H is BLAKE2b-256 and the children of a node at depth d split on bit d of the id
// (bit 0 = most significant bit of id[0]). A single leaf "floats up" to the highest
// subtree that holds it alone, so paths are ~log2(n) long instead of 256.
//
// Memory/time design for 1,000,000 records. The tree is cut at the frontier depth
// D = bucket_bits (16 by default): the core keeps every node at depths 0..D in memory
// (2^(D+1) values of 33 bytes, 4.3 MB at D = 16) and nothing below. The subtree under a
// frontier node ("bucket": all ids sharing the first D bits, ~15 rows at 1M records) is
// rebuilt from storage when it is read: ScanBucket returns every (id, record_hash) in the
// bucket, the core rehashes them (~30 BLAKE2b calls) and compares with its in-memory
// frontier value (the realm keeps recently verified buckets' leaves next to the value they
// hash to, vault/record_cache.h BucketCache, and while that value is unchanged reads only
// the record's own row and checks it against its leaf). That comparison is the inclusion or absence proof: a changed, replayed,
// swapped, dropped or injected row in the bucket changes the rebuilt value. The frontier
// values are also persisted (tree_nodes), so start-up reads 2^D small rows and rehashes
// the upper tree (tens of milliseconds) instead of every record, and writes touch one
// record row plus one node row. Storing all ~2n nodes in memory instead would cost
// ~100 MB at 1M records; storing them all in storage would cost ~20 extra row writes and
// reads per request.
//
// Thread-safety: MerkleTree is not synchronised; the realm guards it. The free functions
// are pure and thread-safe.
#ifndef PINVAULT_VAULT_MERKLE_H_
#define PINVAULT_VAULT_MERKLE_H_

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "vault/partition.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

enum class NodeKind : uint8_t { kEmpty = 0, kLeaf = 1, kInterior = 2 };

// NodeValue is a subtree's kind and hash (all zeros when empty).
struct NodeValue {
  NodeKind kind = NodeKind::kEmpty;
  Digest hash{};
  friend bool operator==(const NodeValue&, const NodeValue&) = default;
};

inline constexpr int kMaxBucketBits = 20;  // 69 MB of upper tree; see file comment
inline constexpr int kDefaultBucketBits = 16;

// LeafValue returns the value of a subtree holding exactly the leaf (id, record_hash).
NodeValue LeafValue(const RecordId& id, const Digest& record_hash);

// Combine returns the value of a node from its children's values (see file comment).
NodeValue Combine(const NodeValue& left, const NodeValue& right);

// SubtreeValue returns the value of the subtree at `depth` holding `entries`, which must
// be strictly ascending by id and share their first `depth` bits. DATA_LOSS otherwise (the
// entries come from storage).
StatusOr<NodeValue> SubtreeValue(std::span<const BucketEntry> entries, int depth);

// RootOf returns the root value of the tree holding `entries` (any order; duplicates
// are DATA_LOSS). The reference the incremental tree must agree with.
StatusOr<NodeValue> RootOf(std::vector<BucketEntry> entries);

class MerkleTree {
 public:
  // Update is a prepared set of frontier changes with every affected upper node, so the
  // new root is known before anything is written. Produced by Prepare, consumed by Apply.
  class Update {
   public:
    const NodeValue& root() const { return root_; }
    // frontier returns the new value of every changed bucket.
    const std::map<uint32_t, NodeValue>& frontier() const { return levels_.back(); }
    // Changes returns the persisted-node writes for a CommitBatch (upserts and erases).
    void ToNodeWrites(std::vector<TreeNode>& upserts, std::vector<uint32_t>& erases) const;

   private:
    friend class MerkleTree;
    std::vector<std::map<uint32_t, NodeValue>> levels_;  // index d: changed nodes at depth d
    NodeValue root_;
  };

  // MerkleTree creates an empty tree cut at depth `bucket_bits` (0..kMaxBucketBits; values
  // outside are clamped) below the prefix of `partition` (vault/partition.h): the tree of
  // one partition is the subtree of the whole id space under that prefix, so its root is
  // the value the whole tree has at depth PartitionBits(count), and its bucket i holds the
  // ids whose next bucket_bits bits after the prefix are i. `partition` must be valid.
  explicit MerkleTree(int bucket_bits, PartitionId partition = {});

  int bucket_bits() const { return bucket_bits_; }
  const PartitionId& partition() const { return partition_; }

  // Contains reports whether `id` lies in this tree's partition.
  bool Contains(const RecordId& id) const;
  uint32_t bucket_count() const { return uint32_t{1} << bucket_bits_; }

  // Load replaces the frontier with persisted nodes and recomputes the upper tree.
  // DATA_LOSS if a node's index is out of range, repeated, or its kind is not Leaf/Interior.
  Status Load(const std::vector<TreeNode>& nodes);

  const NodeValue& root() const { return levels_[0][0]; }

  // BucketOf returns the frontier index of `id` (its bucket_bits bits after the partition
  // prefix); `id` must lie in the partition (Contains).
  uint32_t BucketOf(const RecordId& id) const;

  // BucketRange returns the smallest and largest ids of bucket `index`.
  void BucketRange(uint32_t index, RecordId& lo, RecordId& hi) const;

  // Bucket returns the current value of bucket `index` (< bucket_count()).
  const NodeValue& Bucket(uint32_t index) const { return levels_[bucket_bits_][index]; }

  // ComputeBucket rebuilds bucket `index` from storage's `entries`; DATA_LOSS if they are
  // not strictly ascending or do not all belong to the bucket (and the partition).
  StatusOr<NodeValue> ComputeBucket(uint32_t index, std::span<const BucketEntry> entries) const;

  // Prepare computes the effect of setting the given buckets to new values.
  Update Prepare(const std::map<uint32_t, NodeValue>& buckets) const;

  // Apply installs a prepared update. It must have been prepared against the current state.
  void Apply(const Update& update);

  // NodeCount returns how many frontier buckets are non-empty.
  uint32_t NonEmptyBuckets() const;

 private:
  int bucket_bits_;
  PartitionId partition_;
  int prefix_bits_;  // PartitionBits(partition_.count)
  std::vector<std::vector<NodeValue>> levels_;  // levels_[d] has 2^d nodes
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_MERKLE_H_
