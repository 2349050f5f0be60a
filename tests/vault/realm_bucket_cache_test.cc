// The verified-bucket cache (vault/record_cache.h BucketCache) lets a read fetch only its
// own row while the bucket is unchanged. These tests warm that cache and then tamper with
// storage: the record's own row is still checked on every request, and a tampered
// neighbour is detected when the neighbour itself is read.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "tests/testing/memory_record_store.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "vault/realm.h"
#include "vault/record.h"

namespace pinvault::vault {
namespace {

using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using testing::As;
using testing::kTestRealmId;
using testing::MemoryRecordStore;
using testing::SoftwareHsm;
using testing::StatusIs;
using testing::User;
using testing::VaultTestClient;

constexpr int kBucketBits = 4;

class RealmBucketCacheTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    RealmOptions options;
    options.genesis_bucket_bits = kBucketBits;
    options.worker_threads = 2;
    options.bucket_cache_size = GetParam();
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
    ASSERT_OK(realm_->Ready());
  }

  RecordId IdOf(const RequestContext& user) {
    StatusOr<RecordId> id = ComputeRecordId(hsm_, user.tenant, user.user);
    EXPECT_OK(id);
    if (!id.ok()) return RecordId{};
    return *id;
  }

  uint32_t BucketOf(const RequestContext& user) {
    return testing::RealmBucketOf(IdOf(user), realm_->Stats().partitions, kBucketBits);
  }

  RequestContext NeighbourOf(const RequestContext& user, const std::string& prefix) {
    for (int i = 0;; ++i) {
      RequestContext other = User(prefix + std::to_string(i));
      if (BucketOf(other) == BucketOf(user)) return other;
    }
  }

  // ExpectDataLoss checks that every kind of read of `user` fails with DATA_LOSS and that
  // nothing is committed.
  void ExpectDataLoss(const RequestContext& user, VaultTestClient& client,
                      const std::string& what) {
    uint64_t commits = store_.commit_count();
    EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kDataLoss)) << what;
    EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kDataLoss))
        << what;
    VaultTestClient scratch(kTestRealmId);  // keeps `client`'s registration untouched
    EXPECT_THAT(realm_->Handle(user, scratch.Register2("1234", 5)), StatusIs(StatusCode::kDataLoss))
        << what;
    EXPECT_THAT(realm_->Inspect(user), StatusIs(StatusCode::kDataLoss)) << what;
    EXPECT_EQ(store_.commit_count(), commits) << what;
  }

  // Warm reads `user` so that its bucket is verified (and cached when enabled).
  void Warm(const RequestContext& user) {
    EXPECT_EQ(As<Recover1Response>(realm_->Handle(user, Recover1Request{})).status,
              Recover1Response::Status::kOk);
  }

  SoftwareHsm hsm_;
  MemoryRecordStore store_;
  std::unique_ptr<Realm> realm_;
};

TEST_P(RealmBucketCacheTest, OwnRowTamperedInAWarmBucketIsDetected) {
  VaultTestClient client(kTestRealmId), other_client(kTestRealmId);
  auto user = User("alice");
  auto other = NeighbourOf(user, "n");
  testing::Register(*realm_, client, user, "1234", 5);
  testing::Register(*realm_, other_client, other, "1234", 5);
  RecordId id = IdOf(user);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> original_row, store_.ReadRecord(id));
  ASSERT_TRUE(original_row.has_value());
  StoredRecord original = *original_row;

  // A bit of the sealed record, with and without the hash column fixed up.
  for (size_t bit : {size_t{0}, size_t{8 * 100 + 3}, original.sealed.size() * 8 - 1}) {
    for (bool fix_hash : {false, true}) {
      Warm(user);
      store_.MutateRecord(id, [&](StoredRecord& r) {
        r.sealed[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        if (fix_hash) r.record_hash = RecordHash(r.version, r.sealed);
      });
      ExpectDataLoss(user, client, "bit " + std::to_string(bit));
      store_.PutRaw(original);
    }
  }
  // The version column, the hash column alone, a replay, a drop.
  Warm(user);
  store_.MutateRecord(id, [](StoredRecord& r) { r.version += 1; });
  ExpectDataLoss(user, client, "version bumped");
  store_.PutRaw(original);
  Warm(user);
  store_.MutateRecord(id, [](StoredRecord& r) { r.record_hash[5] ^= 0x40; });
  ExpectDataLoss(user, client, "hash column flipped");
  store_.PutRaw(original);
  Warm(user);
  ASSERT_TRUE(store_.SwapRecordContents(id, IdOf(other)));
  ExpectDataLoss(user, client, "swapped with a neighbour");
  ExpectDataLoss(other, other_client, "swapped with a neighbour (the neighbour)");
  ASSERT_TRUE(store_.SwapRecordContents(id, IdOf(other)));
  Warm(user);
  ASSERT_TRUE(store_.DropRecord(id));
  ExpectDataLoss(user, client, "dropped");
  store_.PutRaw(original);

  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
  EXPECT_EQ(summary.guess_count, 0);  // no guess was counted from a bad row
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 1);
}

TEST_P(RealmBucketCacheTest, ReplayedRowInAWarmBucketGivesNoFreshGuesses) {
  VaultTestClient client(kTestRealmId);
  auto user = User("carol");
  testing::Register(*realm_, client, user, "1234", 5);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> fresh_row, store_.ReadRecord(IdOf(user)));
  ASSERT_TRUE(fresh_row.has_value());
  StoredRecord fresh = *fresh_row;
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count, i);
  }
  store_.PutRaw(fresh);  // the bucket is warm from the commits above
  ExpectDataLoss(user, client, "replayed row");
}

TEST_P(RealmBucketCacheTest, RowInjectedIntoAWarmBucketIsDetected) {
  VaultTestClient a_client(kTestRealmId), ghost_client(kTestRealmId);
  auto a = User("real");
  testing::Register(*realm_, a_client, a, "1234", 5);
  auto ghost = NeighbourOf(a, "ghost");
  ghost_client.Register2("1234", 5);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(ghost, Recover1Request{})).status,
            Recover1Response::Status::kNotRegistered);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> planted_row, store_.ReadRecord(IdOf(a)));
  ASSERT_TRUE(planted_row.has_value());
  StoredRecord planted = *planted_row;
  planted.id = IdOf(ghost);
  store_.PutRaw(planted);
  ExpectDataLoss(ghost, ghost_client, "injected row");
  ASSERT_TRUE(store_.DropRecord(IdOf(ghost)));
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(ghost, Recover1Request{})).status,
            Recover1Response::Status::kNotRegistered);
}

TEST_P(RealmBucketCacheTest, TamperedNeighbourIsDetectedWhenItIsRead) {
  VaultTestClient client(kTestRealmId), other_client(kTestRealmId);
  auto user = User("dave");
  auto other = NeighbourOf(user, "m");
  testing::Register(*realm_, client, user, "1234", 5);
  testing::Register(*realm_, other_client, other, "1234", 5);
  Warm(user);
  Warm(other);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> original_row, store_.ReadRecord(IdOf(other)));
  ASSERT_TRUE(original_row.has_value());
  StoredRecord original = *original_row;
  store_.MutateRecord(IdOf(other), [](StoredRecord& r) {
    r.sealed[7] ^= 1;
    r.record_hash = RecordHash(r.version, r.sealed);
  });
  ExpectDataLoss(other, other_client, "tampered neighbour");
  if (GetParam() == 0) {
    // Without the cache every read rebuilds the bucket, so the neighbour's tampered row
    // also stops this record.
    EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kDataLoss));
  } else {
    // With it, this record's own row is authentic against the tree and is served.
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 1);
  }
  store_.PutRaw(original);
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(other));
  EXPECT_EQ(summary.guess_count, 0);
}

INSTANTIATE_TEST_SUITE_P(RealmCacheSizes, RealmBucketCacheTest,
                         ::testing::Values(size_t{0}, size_t{64}));

}  // namespace
}  // namespace pinvault::vault
