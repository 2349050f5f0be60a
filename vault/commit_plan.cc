#include "vault/commit_plan.h"

#include <algorithm>
#include <string>
#include <utility>

namespace pinvault::vault {

StatusOr<CommitPlan> PlanCommit(const MerkleTree& tree, const Certificate& current,
                                std::map<uint32_t, std::vector<BucketEntry>> leaves,
                                std::span<const PlannedRow> rows) {
  CommitPlan plan;
  for (const PlannedRow& planned : rows) {
    if (planned.row == nullptr) return InvalidArgumentError("PlanCommit: null row");
    auto base = leaves.find(planned.bucket);
    if (base == leaves.end()) {
      return InvalidArgumentError("PlanCommit: no leaves for bucket " +
                                  std::to_string(planned.bucket));
    }
    std::vector<BucketEntry>& entries = base->second;
    const StoredRecord& row = *planned.row;
    auto it =
        std::lower_bound(entries.begin(), entries.end(), row.id,
                         [](const BucketEntry& e, const RecordId& key) { return e.id < key; });
    if (it != entries.end() && it->id == row.id) {
      it->record_hash = row.record_hash;
    } else {
      entries.insert(it, BucketEntry{row.id, row.record_hash});
    }
  }
  for (const PlannedRow& planned : rows) {
    if (plan.bucket_values.count(planned.bucket) != 0) continue;
    std::vector<BucketEntry>& entries = leaves[planned.bucket];
    ASSIGN_OR_RETURN(NodeValue value, tree.ComputeBucket(planned.bucket, entries));
    plan.bucket_values[planned.bucket] = value;
    plan.bucket_leaves[planned.bucket] = std::move(entries);
  }

  plan.update = std::make_shared<const MerkleTree::Update>(tree.Prepare(plan.bucket_values));
  plan.certificate.bucket_bits = static_cast<uint8_t>(tree.bucket_bits());
  plan.certificate.epoch = current.epoch + 1;
  plan.certificate.root = plan.update->root().hash;
  plan.certificate.prev_root = current.root;
  plan.certificate.partition = tree.partition();
  plan.certificate.term = current.term;

  plan.store_batch.partition = tree.partition().index;
  plan.store_batch.expected_epoch = current.epoch;
  plan.store_batch.head.epoch = plan.certificate.epoch;
  plan.store_batch.records.reserve(rows.size());
  for (const PlannedRow& planned : rows) {
    plan.store_batch.records.push_back(RecordPut{*planned.row, planned.expected_version});
  }
  plan.update->ToNodeWrites(plan.store_batch.nodes, plan.store_batch.erased_nodes);
  return plan;
}

}  // namespace pinvault::vault
