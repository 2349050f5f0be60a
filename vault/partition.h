// Partitions: the record-id space split by its top bits into `count` parts (a power of two,
// fixed when a realm is created). Each partition has its own sparse Merkle tree (the subtree
// of the whole id space under its prefix, vault/merkle.h), its own epoch and commit
// certificate (vault/anchor.h), its own anchor on the HSM and its own committer
// (vault/realm.h), so partitions commit independently and, on several nodes, can be owned by
// different ones.
//
// Why 4 by default: every partition commits on its own, so on one node the writes that one
// group commit took are split into one commit (a storage transaction, a certificate MAC and
// an anchor write) per partition. Measured with bench_vault --partitions=N (SoftHSM2, SQLite,
// 96 clients), CPU per full recovery: 1 partition 351 us, 4: 371 us, 8: 471 us, 16: 563 us.
// Four costs one node nothing measurable, keeps eight anchor holders on the token and
// spreads over up to four nodes (over 3: 2/1/1); a realm meant for more nodes is created
// with more (realm.partitions), paying that cost per node. 4 partitions of 2^14 buckets keep
// the 2^16 buckets of a single-tree realm.
#ifndef PINVAULT_VAULT_PARTITION_H_
#define PINVAULT_VAULT_PARTITION_H_

#include <cstdint>
#include <string>

#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

inline constexpr uint32_t kDefaultPartitionCount = 4;
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
