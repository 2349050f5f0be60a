// commit_plan.h: the planning of one group commit, separated from its I/O. Given the tree as
// it stands, the verified leaves of every bucket the batch touches and the rows to write,
// PlanCommit computes which buckets change, their new values, the new root, the next
// certificate and the batch for storage. It reads no storage and calls no HSM: the realm
// (vault/realm.h) fetches what is missing before, and MACs the certificate, writes storage and
// the anchor after.
#ifndef PINVAULT_VAULT_COMMIT_PLAN_H_
#define PINVAULT_VAULT_COMMIT_PLAN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "vault/anchor.h"
#include "vault/merkle.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

// PlannedRow is one row of the batch: the sealed row, the version it replaces (0: none) and
// its bucket. `row` is borrowed for the duration of PlanCommit.
struct PlannedRow {
  const StoredRecord* row = nullptr;
  uint64_t expected_version = 0;
  uint32_t bucket = 0;
};

// CommitPlan is the outcome of PlanCommit.
struct CommitPlan {
  std::map<uint32_t, NodeValue> bucket_values;                 // the touched buckets' new values
  std::map<uint32_t, std::vector<BucketEntry>> bucket_leaves;  // and their new leaves
  std::shared_ptr<const MerkleTree::Update> update;            // the tree after the commit
  Certificate certificate;  // the next epoch's certificate, to be MAC'd by the HSM
  // What storage must apply: records, tree nodes and the expected epoch. head.certificate is
  // left empty for the caller to fill with the MAC'd certificate.
  CommitBatch store_batch;
};

// PlanCommit plans the commit of `rows` onto `tree` at `current`. `leaves` holds, for every
// bucket a row falls in, that bucket's verified leaves as the tree holds them now (ascending
// by id); PlanCommit merges the rows' hashes into them. INVALID_ARGUMENT if a bucket's leaves
// are missing or a row is null; the tree's own errors otherwise. Pure; thread-compatible.
StatusOr<CommitPlan> PlanCommit(const MerkleTree& tree, const Certificate& current,
                                std::map<uint32_t, std::vector<BucketEntry>> leaves,
                                std::span<const PlannedRow> rows);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_COMMIT_PLAN_H_
