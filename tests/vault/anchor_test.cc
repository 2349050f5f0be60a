#include "vault/anchor.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "tests/testing/memory_record_store.h"
#include "tests/testing/software_hsm.h"

namespace pinvault::vault {
namespace {

using testing::MemoryRecordStore;
using testing::SoftwareHsm;

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
    MerkleTree::Update update =
        state_.tree.Prepare({{bucket, *state_.tree.ComputeBucket(bucket, entries)}});
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
    if (anchor) RETURN_IF_ERROR(hsm_.StoreAnchor(bytes));
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
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("storage is at epoch " + storage_epoch), std::string::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("anchor is at epoch " + anchor_epoch), std::string::npos)
      << s.status();
}

TEST(CertificateTest, RoundTripAndEveryBitAuthenticated) {
  SoftwareHsm hsm;
  Certificate cert{16, 42, Digest{}, Digest{}};
  cert.root[3] = 9;
  cert.prev_root[30] = 1;
  auto bytes = IssueCertificate(hsm, cert);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), kCertificateSize);
  auto back = VerifyCertificate(hsm, *bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, cert);
  for (size_t bit = 0; bit < bytes->size() * 8; ++bit) {
    Bytes bad = *bytes;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(VerifyCertificate(hsm, bad).status().code(), StatusCode::kDataLoss) << bit;
  }
  Bytes shorter(bytes->begin(), bytes->end() - 1);
  EXPECT_EQ(VerifyCertificate(hsm, shorter).status().code(), StatusCode::kDataLoss);
  SoftwareHsm other;
  EXPECT_EQ(VerifyCertificate(other, *bytes).status().code(), StatusCode::kDataLoss);
}

TEST(AnchorTest, FreshRealmIsInitialisedOnce) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  auto first = LoadAndCheck(hsm, store, kBits);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->certificate.epoch, 0u);
  EXPECT_EQ(first->tree.bucket_bits(), kBits);
  ASSERT_TRUE(hsm.LoadAnchor()->has_value());
  EXPECT_EQ(**hsm.LoadAnchor(), first->certificate_bytes);
  EXPECT_EQ(store.Snapshot().head->certificate, first->certificate_bytes);

  auto second = LoadAndCheck(hsm, store, /*genesis_bucket_bits=*/9);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->tree.bucket_bits(), kBits);  // geometry comes from the certificate
}

TEST(AnchorTest, MatchingStateIsServedAfterCommits) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer.Commit().ok());
  auto state = LoadAndCheck(hsm, store, kBits);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->certificate.epoch, 5u);
  EXPECT_FALSE(state->rolled_forward);
}

TEST(AnchorTest, RestoredSnapshotIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  ASSERT_TRUE(writer.Commit().ok());
  MemoryRecordStore::State snapshot = store.Snapshot();  // epoch 2
  ASSERT_TRUE(writer.Commit().ok());
  ASSERT_TRUE(writer.Commit().ok());  // epoch 4
  store.Restore(snapshot);
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "2", "4");
  // Refusal is stable: nothing was "repaired".
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "2", "4");
  EXPECT_EQ(store.Snapshot().head->epoch, 2u);
}

TEST(AnchorTest, SnapshotOneEpochBehindIsRefusedToo) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  MemoryRecordStore::State snapshot = store.Snapshot();
  ASSERT_TRUE(writer.Commit().ok());
  store.Restore(snapshot);
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "1", "2");
}

TEST(AnchorTest, InterruptedCommitIsRolledForward) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  ASSERT_TRUE(writer.Commit(/*anchor=*/false).ok());  // crash after the storage write
  auto state = LoadAndCheck(hsm, store, kBits);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->rolled_forward);
  EXPECT_EQ(state->certificate.epoch, 2u);
  auto anchor = VerifyCertificate(hsm, **hsm.LoadAnchor());
  ASSERT_TRUE(anchor.ok());
  EXPECT_EQ(anchor->epoch, 2u);
  auto again = LoadAndCheck(hsm, store, kBits);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->rolled_forward);
}

TEST(AnchorTest, StorageTwoEpochsAheadIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  ASSERT_TRUE(writer.Commit(false).ok());
  ASSERT_TRUE(writer.Commit(false).ok());
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "3", "1");
}

TEST(AnchorTest, ForgedOrForeignCertificatesAreRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  // An attacker without the anchor key writes a "next epoch" chaining from the anchored
  // root, with a certificate MAC'd by some other key.
  SoftwareHsm attacker;
  MemoryRecordStore::State state = store.Snapshot();
  Certificate anchored = *VerifyCertificate(hsm, state.head->certificate);
  Certificate forged{kBits, 2, Digest{}, anchored.root};
  state.head = StoreHead{2, *IssueCertificate(attacker, forged)};
  state.nodes.clear();
  store.Restore(state);
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "2", "1");
}

TEST(AnchorTest, SameEpochDifferentRootIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store_a;
  Writer writer(hsm, store_a, std::move(LoadAndCheck(hsm, store_a, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  // A second store, forked from the same genesis, committed at epoch 1 with another leaf,
  // without touching the anchor.
  MemoryRecordStore store_b;
  MemoryRecordStore::State genesis_state;
  genesis_state.head = StoreHead{0, *IssueCertificate(hsm, Certificate{kBits, 0, {}, {}})};
  store_b.Restore(genesis_state);
  Writer fork(hsm, store_b, ServingState{Certificate{kBits, 0, {}, {}}, {}, MerkleTree(kBits)},
              /*seed=*/8);
  ASSERT_TRUE(fork.Commit(false).ok());
  ASSERT_TRUE(fork.Commit(false).ok());
  // store_b at epoch 2 chains from a root the anchor never held: refused.
  ExpectRefused(LoadAndCheck(hsm, store_b, kBits), "2", "1");
  // Same epoch as the anchor but a different root: refused.
  MemoryRecordStore store_c;
  MemoryRecordStore::State c = store_a.Snapshot();
  c.head = StoreHead{1, *IssueCertificate(hsm, Certificate{kBits, 1, Digest{1}, Digest{}})};
  store_c.Restore(c);
  ExpectRefused(LoadAndCheck(hsm, store_c, kBits), "1", "1");
}

TEST(AnchorTest, TamperedTreeNodesAreRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(writer.Commit().ok());
  MemoryRecordStore::State state = store.Snapshot();
  ASSERT_FALSE(state.nodes.empty());
  state.nodes.begin()->second.hash[0] ^= 1;
  store.Restore(state);
  auto s = LoadAndCheck(hsm, store, kBits);
  ExpectRefused(s, "3", "3");
  EXPECT_NE(s.status().message().find("do not match the root"), std::string::npos);
  state.nodes.begin()->second.hash[0] ^= 1;
  state.nodes.erase(state.nodes.begin());  // dropping a node is caught too
  store.Restore(state);
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "3", "3");
}

TEST(AnchorTest, MissingAnchorOrMissingStorageIsRefused) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  Writer writer(hsm, store, std::move(LoadAndCheck(hsm, store, kBits)).value());
  ASSERT_TRUE(writer.Commit().ok());
  MemoryRecordStore::State state = store.Snapshot();

  hsm.WipeAnchor();
  ExpectRefused(LoadAndCheck(hsm, store, kBits), "1", "none");
  EXPECT_FALSE(hsm.LoadAnchor()->has_value());  // nothing re-created

  SoftwareHsm hsm2;
  MemoryRecordStore store2;
  Writer writer2(hsm2, store2, std::move(LoadAndCheck(hsm2, store2, kBits)).value());
  ASSERT_TRUE(writer2.Commit().ok());
  store2.Restore(MemoryRecordStore::State{});
  ExpectRefused(LoadAndCheck(hsm2, store2, kBits), "none", "1");
}

TEST(AnchorTest, InterruptedInitialisationIsFinished) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_TRUE(LoadAndCheck(hsm, store, kBits).ok());
  hsm.WipeAnchor();  // as if the process died between the storage write and the anchor
  auto state = LoadAndCheck(hsm, store, kBits);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->rolled_forward);
  EXPECT_TRUE(hsm.LoadAnchor()->has_value());
}

TEST(AnchorTest, UnreachableHsmOrStorageIsUnavailable) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  ASSERT_TRUE(LoadAndCheck(hsm, store, kBits).ok());
  hsm.SetUnavailable(true);
  EXPECT_EQ(LoadAndCheck(hsm, store, kBits).status().code(), StatusCode::kUnavailable);
  hsm.SetUnavailable(false);
  hsm.SetOperationUnavailable(SoftwareHsm::Operation::kVerifyMac, true);
  EXPECT_EQ(LoadAndCheck(hsm, store, kBits).status().code(), StatusCode::kUnavailable);
  hsm.SetOperationUnavailable(SoftwareHsm::Operation::kVerifyMac, false);
  store.SetUnavailable(true);
  EXPECT_EQ(LoadAndCheck(hsm, store, kBits).status().code(), StatusCode::kUnavailable);
  store.SetUnavailable(false);
  EXPECT_TRUE(LoadAndCheck(hsm, store, kBits).ok());
}

}  // namespace
}  // namespace pinvault::vault
