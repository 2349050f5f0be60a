#include "vault/anchor.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <string>

#include "tests/testing/memory_record_store.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::vault {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::MemoryRecordStore;
using ::pinvault::testing::SoftwareHsm;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kBits = 4;

// Writer commits states the way the realm does (storage first, then the anchor), with
// switches to stop after the storage write.
class Writer {
 public:
  Writer(Hsm& hsm, MemoryRecordStore& store, ServingState state, uint64_t seed = 7)
      : hsm_(hsm), store_(store), state_(std::move(state)), rng_(seed) {}

  // Commit adds one random leaf; `anchor` false simulates a crash before the anchor write.
  Status Commit(bool anchor = true) {
    RecordId id;
    for (auto& b : id) b = static_cast<uint8_t>(rng_());
    Digest h;
    for (auto& b : h) b = static_cast<uint8_t>(rng_());
    leaves_[id] = h;
    uint32_t bucket = state_.tree.BucketOf(id);
    RecordId lo, hi;
    state_.tree.BucketRange(bucket, lo, hi);
    std::vector<BucketEntry> entries;
    for (auto it = leaves_.lower_bound(lo); it != leaves_.end() && it->first <= hi; ++it) {
      entries.push_back(BucketEntry{it->first, it->second});
    }
    ASSIGN_OR_RETURN(NodeValue bucket_value, state_.tree.ComputeBucket(bucket, entries));
    MerkleTree::Update update = state_.tree.Prepare({{bucket, bucket_value}});
    Certificate next{static_cast<uint8_t>(kBits), state_.certificate.epoch + 1, update.root().hash,
                     state_.certificate.root};
    ASSIGN_OR_RETURN(Bytes bytes, IssueCertificate(hsm_, next));
    CommitBatch batch;
    batch.expected_epoch = state_.certificate.epoch;
    batch.head = StoreHead{next.epoch, bytes};
    StoredRecord row;
    row.id = id;
    row.version = 1;
    row.record_hash = h;
    row.sealed = Bytes(10, 1);
    batch.records.push_back(RecordPut{row, 0});
    update.ToNodeWrites(batch.nodes, batch.erased_nodes);
    RETURN_IF_ERROR(store_.Commit(batch));
    if (anchor) RETURN_IF_ERROR(hsm_.StoreAnchor(0, 0, bytes));
    state_.tree.Apply(update);
    state_.certificate = next;
    state_.certificate_bytes = bytes;
    return OkStatus();
  }

  uint64_t epoch() const { return state_.certificate.epoch; }

 private:
  Hsm& hsm_;
  MemoryRecordStore& store_;
  ServingState state_;
  std::map<RecordId, Digest> leaves_;
  std::mt19937_64 rng_;
};

void ExpectRefused(const StatusOr<ServingState>& s, const std::string& storage_epoch,
                   const std::string& anchor_epoch) {
  ASSERT_THAT(s, Not(IsOk()));
  EXPECT_THAT(s, StatusIs(StatusCode::kFailedPrecondition,
                          HasSubstr("storage is at epoch " + storage_epoch)));
  EXPECT_THAT(s.status().message(), HasSubstr("anchor is at epoch " + anchor_epoch)) << s.status();
}

TEST(CertificateTest, RoundTripAndEveryBitAuthenticated) {
  SoftwareHsm hsm;
  Certificate cert{16, 42, Digest{}, Digest{}};
  cert.root[3] = 9;
  cert.prev_root[30] = 1;
  cert.partition = PartitionId{5, 16};
  cert.term = 77;
  auto bytes = IssueCertificate(hsm, cert);
  ASSERT_OK(bytes);
  EXPECT_EQ(bytes->size(), kCertificateSize);
  auto back = VerifyCertificate(hsm, *bytes);
  ASSERT_OK(back);
  EXPECT_EQ(*back, cert);
  for (size_t bit = 0; bit < bytes->size() * 8; ++bit) {
    Bytes bad = *bytes;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_THAT(VerifyCertificate(hsm, bad), StatusIs(StatusCode::kDataLoss)) << bit;
  }
  Bytes shorter(bytes->begin(), bytes->end() - 1);
  EXPECT_THAT(VerifyCertificate(hsm, shorter), StatusIs(StatusCode::kDataLoss));
  SoftwareHsm other;
  EXPECT_THAT(VerifyCertificate(other, *bytes), StatusIs(StatusCode::kDataLoss));
}

// Certificates of the single-tree layout ("PVC1", no partition) still verify, as partition 0
// of 1, term 0.
TEST(CertificateTest, SingleTreeCertificatesReadAsPartitionZeroOfOne) {
  SoftwareHsm hsm;
  Bytes body = {'P', 'V', 'C', '1', 12};
  for (int i = 7; i >= 0; --i) body.push_back(static_cast<uint8_t>(uint64_t{9} >> (8 * i)));
  Digest root{};
  root[0] = 0xaa;
  body.insert(body.end(), root.begin(), root.end());
  body.insert(body.end(), 32, 0);
  Bytes mac_input(AsBytes(std::string_view("pinvault-anchor-v1")).begin(),
                  AsBytes(std::string_view("pinvault-anchor-v1")).end());
  mac_input.insert(mac_input.end(), body.begin(), body.end());
  ASSERT_OK_AND_ASSIGN(MacTag tag, hsm.Mac(MacKeyRole::kAnchor, mac_input));
  body.insert(body.end(), tag.begin(), tag.end());
  ASSERT_EQ(body.size(), kCertificateSizeV1);
  ASSERT_OK_AND_ASSIGN(Certificate cert, VerifyCertificate(hsm, body));
  EXPECT_EQ(cert.partition, (PartitionId{0, 1}));
  EXPECT_EQ(cert.term, 0u);
  EXPECT_EQ(cert.epoch, 9u);
  EXPECT_EQ(cert.bucket_bits, 12);
  EXPECT_EQ(cert.root, root);
  body[10] ^= 1;
  EXPECT_THAT(VerifyCertificate(hsm, body), StatusIs(StatusCode::kDataLoss));
}

TEST(CertificateTest, ImpossiblePartitionsAreRefused) {
  SoftwareHsm hsm;
  for (PartitionId bad : {PartitionId{0, 3}, PartitionId{4, 4}, PartitionId{0, 512}}) {
    Certificate cert;
    cert.partition = bad;
    ASSERT_OK_AND_ASSIGN(Bytes bytes, IssueCertificate(hsm, cert));
    EXPECT_THAT(VerifyCertificate(hsm, bytes), StatusIs(StatusCode::kDataLoss)) << ToString(bad);
  }
}

// Each partition is checked against its own anchor; one partition's authentic state moved
// into another's place is refused, not served.
TEST(AnchorTest, PartitionsAreCheckedSeparatelyAndCannotStandInForEachOther) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState zero, LoadAndCheck(hsm, store, PartitionId{0, 4}, 6));
  ASSERT_OK_AND_ASSIGN(ServingState one, LoadAndCheck(hsm, store, PartitionId{1, 4}, 6));
  EXPECT_TRUE(zero.created);
  EXPECT_TRUE(one.created);
  EXPECT_EQ(one.certificate.partition, (PartitionId{1, 4}));
  EXPECT_EQ(store.Snapshot().partitions.size(), 2u);
  // Partition 2 takes partition 0's storage and anchor.
  MemoryRecordStore::State state = store.Snapshot();
  state.head(2) = state.head(0);
  store.Restore(state);
  ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor_zero, hsm.LoadAnchor(0));
  ASSERT_TRUE(anchor_zero.has_value());
  const Bytes moved = anchor_zero.value_or(Bytes());
  ASSERT_OK(hsm.StoreAnchor(2, 0, moved));
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{2, 4}, 6),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("names partition 0/4")));
  // Asked with another count, the realm is told the count it was created with.
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{0, 8}, 6),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("created with 4 partition")));
  // A fresh partition is not created beside a partition 0 of another count.
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{5, 8}, 6),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("created with 4 partition")));
  EXPECT_FALSE(hsm.LoadAnchor(5)->has_value());
  EXPECT_THAT(AnchoredPartitionCount(hsm), IsOkAndHolds(std::optional<uint32_t>(4)));
}

TEST(AnchorTest, FreshRealmIsInitialisedOnce) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  auto first = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ASSERT_OK(first);
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->certificate.epoch, 0u);
  EXPECT_EQ(first->tree.bucket_bits(), kBits);
  ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor, hsm.LoadAnchor(0));
  ASSERT_TRUE(anchor.has_value());
  EXPECT_EQ(*anchor, first->certificate_bytes);
  EXPECT_EQ(store.Snapshot().head()->certificate, first->certificate_bytes);

  auto second = LoadAndCheck(hsm, store, PartitionId{}, /*genesis_bucket_bits=*/9);
  ASSERT_OK(second);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->tree.bucket_bits(), kBits);  // geometry comes from the certificate
}

TEST(AnchorTest, MatchingStateIsServedAfterCommits) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  for (int i = 0; i < 5; ++i) ASSERT_OK(writer.Commit());
  auto state = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ASSERT_OK(state);
  EXPECT_EQ(state->certificate.epoch, 5u);
  EXPECT_FALSE(state->rolled_forward);
}

TEST(AnchorTest, RestoredSnapshotIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  ASSERT_OK(writer.Commit());
  MemoryRecordStore::State snapshot = store.Snapshot();  // epoch 2
  ASSERT_OK(writer.Commit());
  ASSERT_OK(writer.Commit());  // epoch 4
  store.Restore(snapshot);
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "2", "4");
  // Refusal is stable: nothing was "repaired".
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "2", "4");
  EXPECT_EQ(store.Snapshot().head()->epoch, 2u);
}

TEST(AnchorTest, SnapshotOneEpochBehindIsRefusedToo) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  MemoryRecordStore::State snapshot = store.Snapshot();
  ASSERT_OK(writer.Commit());
  store.Restore(snapshot);
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "1", "2");
}

TEST(AnchorTest, InterruptedCommitIsRolledForward) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  ASSERT_OK(writer.Commit(/*anchor=*/false));  // crash after the storage write
  auto state = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ASSERT_OK(state);
  EXPECT_TRUE(state->rolled_forward);
  EXPECT_EQ(state->certificate.epoch, 2u);
  ASSERT_OK_AND_ASSIGN(std::optional<Bytes> stored_anchor, hsm.LoadAnchor(0));
  ASSERT_TRUE(stored_anchor.has_value());
  auto anchor = VerifyCertificate(hsm, *stored_anchor);
  ASSERT_OK(anchor);
  EXPECT_EQ(anchor->epoch, 2u);
  auto again = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ASSERT_OK(again);
  EXPECT_FALSE(again->rolled_forward);
}

TEST(AnchorTest, StorageTwoEpochsAheadIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  ASSERT_OK(writer.Commit(false));
  ASSERT_OK(writer.Commit(false));
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "3", "1");
}

TEST(AnchorTest, ForgedOrForeignCertificatesAreRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  // An attacker without the anchor key writes a "next epoch" chaining from the anchored
  // root, with a certificate MAC'd by some other key.
  SoftwareHsm attacker;
  MemoryRecordStore::State state = store.Snapshot();
  ASSERT_OK_AND_ASSIGN(Certificate anchored, VerifyCertificate(hsm, state.head()->certificate));
  Certificate forged{kBits, 2, Digest{}, anchored.root};
  ASSERT_OK_AND_ASSIGN(Bytes forged_bytes, IssueCertificate(attacker, forged));
  state.head() = StoreHead{2, forged_bytes};
  state.nodes().clear();
  store.Restore(state);
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "2", "1");
}

TEST(AnchorTest, SameEpochDifferentRootIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store_a;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store_a, PartitionId{}, kBits));
  Writer writer(hsm, store_a, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  // A second store, forked from the same genesis, committed at epoch 1 with another leaf,
  // without touching the anchor.
  MemoryRecordStore store_b;
  MemoryRecordStore::State genesis_state;
  ASSERT_OK_AND_ASSIGN(Bytes genesis_bytes, IssueCertificate(hsm, Certificate{kBits, 0, {}, {}}));
  genesis_state.head() = StoreHead{0, genesis_bytes};
  store_b.Restore(genesis_state);
  Writer fork(hsm, store_b, ServingState{Certificate{kBits, 0, {}, {}}, {}, MerkleTree(kBits)},
              /*seed=*/8);
  ASSERT_OK(fork.Commit(false));
  ASSERT_OK(fork.Commit(false));
  // store_b at epoch 2 chains from a root the anchor never held: refused.
  ExpectRefused(LoadAndCheck(hsm, store_b, PartitionId{}, kBits), "2", "1");
  // Same epoch as the anchor but a different root: refused.
  MemoryRecordStore store_c;
  MemoryRecordStore::State c = store_a.Snapshot();
  ASSERT_OK_AND_ASSIGN(Bytes c_bytes,
                       IssueCertificate(hsm, Certificate{kBits, 1, Digest{1}, Digest{}}));
  c.head() = StoreHead{1, c_bytes};
  store_c.Restore(c);
  ExpectRefused(LoadAndCheck(hsm, store_c, PartitionId{}, kBits), "1", "1");
}

TEST(AnchorTest, TamperedTreeNodesAreRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  for (int i = 0; i < 3; ++i) ASSERT_OK(writer.Commit());
  MemoryRecordStore::State state = store.Snapshot();
  ASSERT_FALSE(state.nodes().empty());
  state.nodes().begin()->second.hash[0] ^= 1;
  store.Restore(state);
  auto s = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ExpectRefused(s, "3", "3");
  EXPECT_THAT(s.status().message(), HasSubstr("do not match the root"));
  state.nodes().begin()->second.hash[0] ^= 1;
  state.nodes().erase(state.nodes().begin());  // dropping a node is caught too
  store.Restore(state);
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "3", "3");
}

TEST(AnchorTest, MissingAnchorOrMissingStorageIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK_AND_ASSIGN(ServingState writer_genesis, LoadAndCheck(hsm, store, PartitionId{}, kBits));
  Writer writer(hsm, store, std::move(writer_genesis));
  ASSERT_OK(writer.Commit());
  MemoryRecordStore::State state = store.Snapshot();

  hsm.WipeAnchor();
  ExpectRefused(LoadAndCheck(hsm, store, PartitionId{}, kBits), "1", "none");
  ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor, hsm.LoadAnchor(0));
  EXPECT_FALSE(anchor.has_value());  // nothing re-created

  SoftwareHsm hsm2;
  MemoryRecordStore store2;
  ASSERT_OK_AND_ASSIGN(ServingState writer2_genesis, LoadAndCheck(hsm2, store2, PartitionId{}, kBits));
  Writer writer2(hsm2, store2, std::move(writer2_genesis));
  ASSERT_OK(writer2.Commit());
  store2.Restore(MemoryRecordStore::State{});
  ExpectRefused(LoadAndCheck(hsm2, store2, PartitionId{}, kBits), "none", "1");
}

TEST(AnchorTest, InterruptedInitialisationIsFinished) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK(LoadAndCheck(hsm, store, PartitionId{}, kBits));
  hsm.WipeAnchor();  // as if the process died between the storage write and the anchor
  auto state = LoadAndCheck(hsm, store, PartitionId{}, kBits);
  ASSERT_OK(state);
  EXPECT_TRUE(state->rolled_forward);
  ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor, hsm.LoadAnchor(0));
  EXPECT_TRUE(anchor.has_value());
}

TEST(AnchorTest, UnreachableHsmOrStorageIsUnavailable) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_OK(LoadAndCheck(hsm, store, PartitionId{}, kBits));
  hsm.SetUnavailable(true);
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{}, kBits), StatusIs(StatusCode::kUnavailable));
  hsm.SetUnavailable(false);
  hsm.SetOperationUnavailable(SoftwareHsm::Operation::kVerifyMac, true);
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{}, kBits), StatusIs(StatusCode::kUnavailable));
  hsm.SetOperationUnavailable(SoftwareHsm::Operation::kVerifyMac, false);
  store.SetUnavailable(true);
  EXPECT_THAT(LoadAndCheck(hsm, store, PartitionId{}, kBits), StatusIs(StatusCode::kUnavailable));
  store.SetUnavailable(false);
  EXPECT_OK(LoadAndCheck(hsm, store, PartitionId{}, kBits));
}

}  // namespace
}  // namespace pinvault::vault
