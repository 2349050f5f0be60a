// The planning of a group commit (vault/commit_plan.h) without any I/O: the new bucket values,
// root, certificate and storage batch follow from the tree and the rows alone.
#include "vault/commit_plan.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace pinvault::vault {
namespace {

using ::pinvault::testing::StatusIs;

RecordId IdWithPrefix(uint8_t first, uint8_t last) {
  RecordId id{};
  id[0] = first;
  id[31] = last;
  return id;
}

StoredRecord Row(const RecordId& id, uint64_t version, uint8_t hash_byte) {
  StoredRecord row;
  row.id = id;
  row.version = version;
  row.record_hash.fill(hash_byte);
  row.sealed = Bytes(8, hash_byte);
  return row;
}

TEST(CommitPlanTest, PlansBucketsRootCertificateAndStorageBatch) {
  MerkleTree tree(4);
  Certificate current;
  current.bucket_bits = 4;
  current.epoch = 7;
  current.root = tree.root().hash;
  current.prev_root.fill(0x11);

  StoredRecord a = Row(IdWithPrefix(0x10, 1), 1, 0xa1);  // bucket 1
  StoredRecord b = Row(IdWithPrefix(0x10, 2), 3, 0xb2);  // bucket 1, replaces a stored row
  StoredRecord c = Row(IdWithPrefix(0xf0, 3), 1, 0xc3);  // bucket 15
  uint32_t bucket_ab = tree.BucketOf(a.id);
  uint32_t bucket_c = tree.BucketOf(c.id);
  ASSERT_EQ(bucket_ab, tree.BucketOf(b.id));
  ASSERT_NE(bucket_ab, bucket_c);

  std::map<uint32_t, std::vector<BucketEntry>> leaves;
  leaves[bucket_ab] = {};  // the tree is empty
  leaves[bucket_c] = {};
  std::vector<PlannedRow> rows = {{&b, 2, bucket_ab}, {&a, 0, bucket_ab}, {&c, 0, bucket_c}};
  ASSERT_OK_AND_ASSIGN(CommitPlan plan, PlanCommit(tree, current, leaves, rows));

  // Leaves merged in id order, bucket values as the tree computes them from those leaves.
  std::vector<BucketEntry> expected_ab = {{a.id, a.record_hash}, {b.id, b.record_hash}};
  EXPECT_EQ(plan.bucket_leaves[bucket_ab], expected_ab);
  ASSERT_OK_AND_ASSIGN(NodeValue value_ab, tree.ComputeBucket(bucket_ab, expected_ab));
  EXPECT_TRUE(plan.bucket_values[bucket_ab] == value_ab);
  EXPECT_EQ(plan.bucket_values.size(), 2u);

  // The certificate chains from the current one to the planned root.
  EXPECT_EQ(plan.certificate.epoch, 8u);
  EXPECT_EQ(plan.certificate.prev_root, current.root);
  EXPECT_EQ(plan.certificate.root, plan.update->root().hash);
  EXPECT_NE(plan.certificate.root, current.root);

  // Storage gets every row with its expected version, CAS on the current epoch, and nodes.
  EXPECT_EQ(plan.store_batch.expected_epoch, 7u);
  EXPECT_EQ(plan.store_batch.head.epoch, 8u);
  EXPECT_TRUE(plan.store_batch.head.certificate.empty());
  ASSERT_EQ(plan.store_batch.records.size(), 3u);
  EXPECT_EQ(plan.store_batch.records[0].record, b);
  EXPECT_EQ(plan.store_batch.records[0].expected_version, 2u);
  EXPECT_FALSE(plan.store_batch.nodes.empty());

  // Nothing in the tree itself changed: the plan is only a plan.
  EXPECT_EQ(tree.root().hash, current.root);
}

TEST(CommitPlanTest, SameInputsGiveTheSameRoot) {
  MerkleTree tree(4);
  Certificate current;
  current.root = tree.root().hash;
  StoredRecord a = Row(IdWithPrefix(0x20, 1), 1, 0x01);
  std::vector<PlannedRow> rows = {{&a, 0, tree.BucketOf(a.id)}};
  std::map<uint32_t, std::vector<BucketEntry>> leaves = {{tree.BucketOf(a.id), {}}};
  ASSERT_OK_AND_ASSIGN(CommitPlan first, PlanCommit(tree, current, leaves, rows));
  ASSERT_OK_AND_ASSIGN(CommitPlan second, PlanCommit(tree, current, leaves, rows));
  EXPECT_EQ(first.certificate, second.certificate);
}

TEST(CommitPlanTest, MissingLeavesOrRowsAreRefused) {
  MerkleTree tree(4);
  Certificate current;
  StoredRecord a = Row(IdWithPrefix(0x30, 1), 1, 0x01);
  std::vector<PlannedRow> rows = {{&a, 0, tree.BucketOf(a.id)}};
  EXPECT_THAT(PlanCommit(tree, current, {}, rows), StatusIs(StatusCode::kInvalidArgument));
  std::vector<PlannedRow> null_row = {{nullptr, 0, tree.BucketOf(a.id)}};
  EXPECT_THAT(PlanCommit(tree, current, {{tree.BucketOf(a.id), {}}}, null_row),
              StatusIs(StatusCode::kInvalidArgument));
}

// Leaves that do not match the tree are the tree's to refuse (DATA_LOSS), never planned.
TEST(CommitPlanTest, UnsortedLeavesAreRefusedByTheTree) {
  MerkleTree tree(4);
  Certificate current;
  StoredRecord a = Row(IdWithPrefix(0x40, 5), 1, 0x01);
  uint32_t bucket = tree.BucketOf(a.id);
  std::vector<BucketEntry> wrong = {{IdWithPrefix(0x40, 9), {}}, {IdWithPrefix(0x40, 1), {}}};
  std::vector<PlannedRow> rows = {{&a, 0, bucket}};
  EXPECT_FALSE(PlanCommit(tree, current, {{bucket, wrong}}, rows).ok());
}

}  // namespace
}  // namespace pinvault::vault
