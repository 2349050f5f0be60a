// A hostile storage administrator: every change to stored rows is detected (DATA_LOSS)
// and nothing is served from a tampered row.
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

constexpr int kBucketBits = 6;

class RealmTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RealmOptions options;
    options.genesis_bucket_bits = kBucketBits;
    options.worker_threads = 2;
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

  // FindUser returns a user name whose record lands (or does not land) in `bucket`.
  RequestContext FindUser(const std::string& prefix, uint32_t bucket, bool same) {
    for (int i = 0;; ++i) {
      RequestContext user = User(prefix + std::to_string(i));
      if ((BucketOf(user) == bucket) == same) return user;
    }
  }

  // ExpectDataLoss checks that reading `user` fails with DATA_LOSS and that no commit
  // happens (nothing is served or written from the row).
  void ExpectDataLoss(const RequestContext& user, VaultTestClient& client,
                      const std::string& what) {
    uint64_t commits = store_.commit_count();
    EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kDataLoss)) << what;
    EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kDataLoss))
        << what;
    EXPECT_THAT(realm_->Inspect(user), StatusIs(StatusCode::kDataLoss)) << what;
    EXPECT_EQ(store_.commit_count(), commits) << what;
  }

  SoftwareHsm hsm_;
  MemoryRecordStore store_;
  std::unique_ptr<Realm> realm_;
};

TEST_F(RealmTamperTest, EveryBitFlipOfASealedRecordIsDetected) {
  VaultTestClient client(kTestRealmId);
  auto user = User("alice");
  testing::Register(*realm_, client, user, "1234", 5);
  RecordId id = IdOf(user);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> original_row, store_.ReadRecord(id));
  ASSERT_TRUE(original_row.has_value());
  StoredRecord original = *original_row;
  ASSERT_EQ(original.sealed.size(), kSealedRecordSize);
  uint64_t commits = store_.commit_count();
  for (size_t bit = 0; bit < original.sealed.size() * 8; ++bit) {
    // A naive attacker flips a bit; a smarter one also fixes up the record_hash column.
    for (bool fix_hash : {false, true}) {
      store_.MutateRecord(id, [&](StoredRecord& r) {
        r.sealed[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        if (fix_hash) r.record_hash = RecordHash(r.version, r.sealed);
      });
      auto r2 = realm_->Handle(user, client.Recover2("1234"));
      ASSERT_THAT(r2, StatusIs(StatusCode::kDataLoss)) << "bit " << bit << " fix " << fix_hash;
      store_.PutRaw(original);
    }
  }
  EXPECT_EQ(store_.commit_count(), commits);  // no guess was ever counted or served
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
  EXPECT_EQ(summary.guess_count, 0);
  // The untouched row still works.
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 1);
}

TEST_F(RealmTamperTest, VersionAndHashColumnsAreAuthenticated) {
  VaultTestClient client(kTestRealmId);
  auto user = User("bob");
  testing::Register(*realm_, client, user, "1234", 5);
  RecordId id = IdOf(user);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> original_row, store_.ReadRecord(id));
  ASSERT_TRUE(original_row.has_value());
  StoredRecord original = *original_row;
  store_.MutateRecord(id, [](StoredRecord& r) { r.version += 1; });
  ExpectDataLoss(user, client, "version bumped");
  store_.MutateRecord(id, [](StoredRecord& r) { r.record_hash = RecordHash(r.version, r.sealed); });
  ExpectDataLoss(user, client, "version bumped, hash fixed");
  store_.PutRaw(original);
  store_.MutateRecord(id, [](StoredRecord& r) { r.record_hash[0] ^= 1; });
  ExpectDataLoss(user, client, "hash column flipped");
  store_.PutRaw(original);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(user, Recover1Request{})).status,
            Recover1Response::Status::kOk);
}

TEST_F(RealmTamperTest, SwappedRowsAreDetected) {
  VaultTestClient a_client(kTestRealmId), b_client(kTestRealmId), c_client(kTestRealmId);
  auto a = User("a");
  auto b = FindUser("b", BucketOf(a), /*same=*/true);   // a neighbour in the same bucket
  auto c = FindUser("c", BucketOf(a), /*same=*/false);  // and one elsewhere
  testing::Register(*realm_, a_client, a, "1234", 5);
  testing::Register(*realm_, b_client, b, "1234", 5);
  testing::Register(*realm_, c_client, c, "1234", 5);
  As<Recover2Response>(realm_->Handle(b, b_client.Recover2("0000")));  // b has used a guess

  ASSERT_TRUE(store_.SwapRecordContents(IdOf(a), IdOf(b)));
  ExpectDataLoss(a, a_client, "same-bucket swap, a");
  ExpectDataLoss(b, b_client, "same-bucket swap, b");
  ASSERT_TRUE(store_.SwapRecordContents(IdOf(a), IdOf(b)));

  ASSERT_TRUE(store_.SwapRecordContents(IdOf(a), IdOf(c)));
  ExpectDataLoss(a, a_client, "cross-bucket swap, a");
  ExpectDataLoss(c, c_client, "cross-bucket swap, c");
  ASSERT_TRUE(store_.SwapRecordContents(IdOf(a), IdOf(c)));
  ASSERT_OK_AND_ASSIGN(RecordSummary b_summary, realm_->Inspect(b));
  EXPECT_EQ(b_summary.guess_count, 1);
  ASSERT_OK_AND_ASSIGN(RecordSummary a_summary, realm_->Inspect(a));
  EXPECT_EQ(a_summary.guess_count, 0);
}

TEST_F(RealmTamperTest, ReplayedOlderRowIsDetectedAndGivesNoFreshGuesses) {
  VaultTestClient client(kTestRealmId);
  auto user = User("carol");
  testing::Register(*realm_, client, user, "1234", 5);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> fresh_row, store_.ReadRecord(IdOf(user)));
  ASSERT_TRUE(fresh_row.has_value());
  StoredRecord fresh = *fresh_row;  // guess_count 0
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count, i);
  }
  store_.PutRaw(fresh);  // roll this one row back to guess_count 0
  ExpectDataLoss(user, client, "replayed row");
  // A restart does not help: the persisted tree nodes still commit to the newer row.
  realm_.reset();
  SetUp();
  ExpectDataLoss(user, client, "replayed row after restart");
}

TEST_F(RealmTamperTest, DroppedRowIsDetected) {
  VaultTestClient a_client(kTestRealmId), c_client(kTestRealmId);
  auto a = User("dropme");
  auto c = FindUser("other", BucketOf(a), /*same=*/false);
  testing::Register(*realm_, a_client, a, "1234", 5);
  testing::Register(*realm_, c_client, c, "1234", 5);
  ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> read_row, store_.ReadRecord(IdOf(a)));
  ASSERT_TRUE(read_row.has_value());
  StoredRecord row = *read_row;
  ASSERT_TRUE(store_.DropRecord(IdOf(a)));
  // Not "NotRegistered": the tree proves the row must exist.
  ExpectDataLoss(a, a_client, "dropped row");
  EXPECT_THAT(realm_->Handle(a, a_client.Register2("1234", 5)),
              StatusIs(StatusCode::kDataLoss));  // nor can it be re-registered over a hole
  // Users in other buckets are unaffected.
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(c, Recover1Request{})).status,
            Recover1Response::Status::kOk);
  store_.PutRaw(row);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(a, Recover1Request{})).status,
            Recover1Response::Status::kOk);
}

TEST_F(RealmTamperTest, InjectedRowIsDetected) {
  VaultTestClient a_client(kTestRealmId), ghost_client(kTestRealmId);
  auto a = User("real");
  testing::Register(*realm_, a_client, a, "1234", 5);
  auto ghost = User("never-registered");
  ghost_client.Register2("1234", 5);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(ghost, Recover1Request{})).status,
            Recover1Response::Status::kNotRegistered);
  // Storage plants a copy of a's row under the ghost's id.
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

}  // namespace
}  // namespace pinvault::vault
