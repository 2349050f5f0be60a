// Partitions: the record-id space split by its top bits into `count` parts (a power of two,
// fixed when a realm is created). Each partition has its own sparse Merkle tree (the subtree
// of the whole id space under its prefix, vault/merkle.h), its own epoch and commit
// certificate (vault/anchor.h), its own anchor on the HSM and its own committer
// (vault/realm.h), so partitions commit independently and, on several nodes, can be owned by
// different ones.
//
// Why 16 by default: a realm on one node gains nothing from more (its commits are already
// grouped), each partition costs two anchor holders on the token (32 objects, read once at
// start) and one committer thread, and 16 still spreads evenly enough over up to 16 nodes
// (over 3 nodes: 6/5/5). 16 partitions of 2^12 buckets keep the 2^16 buckets of a
// single-tree realm. A realm that needs more nodes than partitions must be created with more.
#ifndef PINVAULT_VAULT_PARTITION_H_
#define PINVAULT_VAULT_PARTITION_H_

#include <cstdint>
#include <string>

#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

inline constexpr uint32_t kDefaultPartitionCount = 16;
inline constexpr uint32_t kMaxPartitionCount = 256;

// PartitionId names one partition of a realm with `count` partitions.
struct PartitionId {
  uint32_t index = 0;
  uint32_t count = 1;
  friend bool operator==(const PartitionId&, const PartitionId&) = default;
};

// ValidatePartitionCount: INVALID_ARGUMENT unless `count` is a power of two in
// 1..kMaxPartitionCount.
Status ValidatePartitionCount(uint32_t count);

// PartitionBits is log2(count) for a valid count.
int PartitionBits(uint32_t count);

// PartitionOf returns the index of the partition of `id` among `count` (valid) partitions:
// the top PartitionBits(count) bits of the id.
uint32_t PartitionOf(const RecordId& id, uint32_t count);

// ToString renders "i/count" for messages.
std::string ToString(const PartitionId& partition);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_PARTITION_H_
