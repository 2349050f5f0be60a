// The guess rules of PROTOCOL-NOTES (f), driven with real protocol messages.
#include "vault/realm.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <utility>
#include <string>

#include "tests/testing/memory_record_store.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"

namespace pinvault::vault {
namespace {

using protocol::DeleteRequest;
using protocol::DeleteResponse;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using protocol::Register1Request;
using protocol::Register1Response;
using protocol::Register2Response;
using testing::As;
using testing::kTestRealmId;
using testing::MemoryRecordStore;
using testing::SoftwareHsm;
using testing::StatusIs;
using testing::User;
using testing::VaultTestClient;

class RealmTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(size_t record_id_cache_size = RealmOptions().record_id_cache_size) {
    RealmOptions options;
    options.genesis_bucket_bits = 4;
    options.worker_threads = 2;
    options.record_id_cache_size = record_id_cache_size;
    options.health_check_interval = std::chrono::milliseconds(0);  // exact HSM call counts
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
    ASSERT_OK(realm_->Ready());
    created_commits_ = store_.commit_count();
    created_macs_ = hsm_.CallCount(SoftwareHsm::Operation::kMac);
  }

  void Restart() {
    realm_.reset();
    Start();
  }

  RecordSummary Inspect(const RequestContext& user) {
    auto summary = realm_->Inspect(user);
    EXPECT_OK(summary);
    return summary.ok() ? *summary : RecordSummary{};
  }

  Recover2Response Recover2(VaultTestClient& client, const RequestContext& user,
                            const std::string& pin) {
    return As<Recover2Response>(realm_->Handle(user, client.Recover2(pin)));
  }

  Recover3Response Recover3(VaultTestClient& client, const RequestContext& user,
                            const protocol::UnlockKeyTag& tag) {
    return As<Recover3Response>(realm_->Handle(user, client.Recover3(tag)));
  }

  Recover1Response Recover1(const RequestContext& user) {
    return As<Recover1Response>(realm_->Handle(user, Recover1Request{}));
  }

  SoftwareHsm hsm_;
  MemoryRecordStore store_;
  std::unique_ptr<Realm> realm_;
  uint64_t created_commits_ = 0;  // commits and HSM MACs when the realm was ready
  uint64_t created_macs_ = 0;
};

TEST_F(RealmTest, ANewRealmCreatesEveryPartitionOnce) {
  const uint32_t partitions = realm_->Stats().partitions;
  EXPECT_EQ(partitions, kDefaultPartitionCount);
  EXPECT_EQ(realm_->Stats().partitions_serving, partitions);
  // One genesis commit and one genesis certificate per partition on the first start...
  EXPECT_EQ(created_commits_, partitions);
  EXPECT_EQ(created_macs_, partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    ASSERT_OK_AND_ASSIGN(TreeSnapshot tree, store_.ReadTree(p));
    ASSERT_TRUE(tree.head.has_value()) << p;
    EXPECT_EQ(tree.head->epoch, 0u);
    ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor, hsm_.LoadAnchor(p));
    EXPECT_EQ(anchor, tree.head->certificate) << p;
  }
  // ... and none on a restart.
  Restart();
  EXPECT_EQ(store_.commit_count(), partitions);
}

TEST_F(RealmTest, Register1IsAlwaysOkAndTouchesNothing) {
  As<Register1Response>(realm_->Handle(User("alice"), Register1Request{}));
  EXPECT_EQ(store_.commit_count(), created_commits_);
  EXPECT_EQ(hsm_.CallCount(SoftwareHsm::Operation::kMac), created_macs_);
}

TEST_F(RealmTest, UnregisteredUserIsNotRegistered) {
  VaultTestClient client(kTestRealmId);
  client.Register2("1234", 5);  // builds the client's state only; never sent
  auto user = User("nobody");
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kNotRegistered);
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kNotRegistered);
  EXPECT_EQ(Recover3(client, user, client.CorrectTag()).status,
            Recover3Response::Status::kNotRegistered);
  As<DeleteResponse>(realm_->Handle(user, DeleteRequest{}));
  EXPECT_EQ(store_.commit_count(), created_commits_);  // nothing was written for an absent record
  EXPECT_EQ(Inspect(user).state, RecordState::kAbsent);
  EXPECT_EQ(Inspect(user).record_version, 0u);
}

TEST_F(RealmTest, CorrectPinRecoversTheSecretsAndResetsTheCount) {
  VaultTestClient client(kTestRealmId);
  auto user = User("alice");
  testing::Register(*realm_, client, user, "1234", 5);
  Recover1Response r1 = Recover1(user);
  ASSERT_EQ(r1.status, Recover1Response::Status::kOk);
  EXPECT_EQ(r1.version, client.version());

  Recover2Response r2 = Recover2(client, user, "1234");
  ASSERT_EQ(r2.status, Recover2Response::Status::kOk);
  EXPECT_EQ(r2.guess_count, 1);  // the first guess reports 1
  EXPECT_EQ(r2.num_guesses, 5);
  EXPECT_EQ(Inspect(user).guess_count, 1);
  auto tag = client.FinishRecover2(r2);  // verifies the DLEQ proof and the signature
  ASSERT_OK(tag);
  ASSERT_TRUE(tag->has_value()) << "the right PIN must match the unlock-key commitment";

  Recover3Response r3 = Recover3(client, user, **tag);
  ASSERT_EQ(r3.status, Recover3Response::Status::kOk);
  EXPECT_TRUE(r3.encryption_key_scalar_share.Equals(client.encryption_key_scalar_share()));
  EXPECT_EQ(r3.encrypted_secret, client.encrypted_secret());
  EXPECT_EQ(Inspect(user).guess_count, 0);

  // The next attempt starts from zero again.
  EXPECT_EQ(Recover2(client, user, "1234").guess_count, 1);
}

TEST_F(RealmTest, WrongPinsExhaustGuessesAndDestroyTheRecord) {
  VaultTestClient client(kTestRealmId);
  auto user = User("bob");
  testing::Register(*realm_, client, user, "1234", 5);
  for (int i = 1; i <= 5; ++i) {
    Recover2Response r2 = Recover2(client, user, "9999");
    ASSERT_EQ(r2.status, Recover2Response::Status::kOk) << i;
    EXPECT_EQ(r2.guess_count, i);
    auto tag = client.FinishRecover2(r2);
    ASSERT_OK(tag);
    EXPECT_FALSE(tag->has_value()) << "a wrong PIN must not match the commitment";
    Recover3Response r3 = Recover3(client, user, client.WrongTag());
    ASSERT_EQ(r3.status, Recover3Response::Status::kBadUnlockKeyTag);
    EXPECT_EQ(r3.guesses_remaining, 5 - i);  // 4, 3, 2, 1, 0
  }
  // At 0 the record was destroyed.
  RecordSummary s = Inspect(user);
  EXPECT_EQ(s.state, RecordState::kNoGuesses);
  EXPECT_EQ(s.num_guesses, 0);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kNoGuesses);
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(Recover3(client, user, client.CorrectTag()).status,
            Recover3Response::Status::kNoGuesses);
}

TEST_F(RealmTest, Recover2AloneExhaustsThenNoGuessesDestroys) {
  VaultTestClient client(kTestRealmId);
  auto user = User("carol");
  testing::Register(*realm_, client, user, "1234", 3);
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(Recover2(client, user, "0000").guess_count, i);
  EXPECT_EQ(Inspect(user).state, RecordState::kRegistered);  // gc == limit, not yet destroyed
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(Inspect(user).state, RecordState::kNoGuesses);
  // Even the right tag cannot bring it back now.
  EXPECT_EQ(Recover3(client, user, client.CorrectTag()).status,
            Recover3Response::Status::kNoGuesses);
}

TEST_F(RealmTest, Recover1AtTheLimitDestroys) {
  VaultTestClient client(kTestRealmId);
  auto user = User("dave");
  testing::Register(*realm_, client, user, "1234", 2);
  Recover2(client, user, "0000");
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);  // 1 < 2, no guess used
  EXPECT_EQ(Inspect(user).guess_count, 1);
  Recover2(client, user, "0000");
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kNoGuesses);
  EXPECT_EQ(Inspect(user).state, RecordState::kNoGuesses);
}

TEST_F(RealmTest, CorrectTagAfterTheLastAllowedGuessStillSucceeds) {
  VaultTestClient client(kTestRealmId);
  auto user = User("erin");
  testing::Register(*realm_, client, user, "1234", 3);
  Recover2(client, user, "0000");
  Recover2(client, user, "0000");
  Recover2Response last = Recover2(client, user, "1234");
  EXPECT_EQ(last.guess_count, 3);
  auto tag = client.FinishRecover2(last);
  ASSERT_OK(tag);
  ASSERT_TRUE(tag->has_value());
  EXPECT_EQ(Recover3(client, user, **tag).status, Recover3Response::Status::kOk);
  EXPECT_EQ(Inspect(user).guess_count, 0);
  EXPECT_EQ(Recover2(client, user, "0000").guess_count, 1);
}

TEST_F(RealmTest, BadTagReportsRemainingWithoutConsumingAGuess) {
  VaultTestClient client(kTestRealmId);
  auto user = User("fay");
  testing::Register(*realm_, client, user, "1234", 4);
  Recover2(client, user, "0000");
  EXPECT_EQ(Recover3(client, user, client.WrongTag()).guesses_remaining, 3);
  EXPECT_EQ(Recover3(client, user, client.WrongTag()).guesses_remaining, 3);
  EXPECT_EQ(Inspect(user).guess_count, 1);
}

TEST_F(RealmTest, VersionMismatchIsCheckedFirstAndChangesNothing) {
  VaultTestClient client(kTestRealmId);
  auto user = User("gus");
  testing::Register(*realm_, client, user, "1234", 1);
  Recover2(client, user, "0000");  // gc == limit now
  VaultTestClient stale(kTestRealmId);
  stale.Register2("1234", 1);  // another version, never sent
  uint64_t version_before = Inspect(user).record_version;
  EXPECT_EQ(Recover2(stale, user, "1234").status, Recover2Response::Status::kVersionMismatch);
  EXPECT_EQ(Recover3(stale, user, stale.CorrectTag()).status,
            Recover3Response::Status::kVersionMismatch);
  RecordSummary s = Inspect(user);
  EXPECT_EQ(s.state, RecordState::kRegistered);  // not destroyed by the mismatching request
  EXPECT_EQ(s.guess_count, 1);
  EXPECT_EQ(s.record_version, version_before);
}

TEST_F(RealmTest, Register2OverwritesAnyState) {
  VaultTestClient client(kTestRealmId);
  auto user = User("hana");
  testing::Register(*realm_, client, user, "1234", 1);
  Recover2(client, user, "0000");
  EXPECT_EQ(Recover2(client, user, "0000").status, Recover2Response::Status::kNoGuesses);
  ASSERT_EQ(Inspect(user).state, RecordState::kNoGuesses);

  VaultTestClient again(kTestRealmId);
  testing::Register(*realm_, again, user, "5678", 7);
  RecordSummary s = Inspect(user);
  EXPECT_EQ(s.state, RecordState::kRegistered);
  EXPECT_EQ(s.guess_count, 0);
  EXPECT_EQ(s.num_guesses, 7);
  EXPECT_EQ(s.registration_version, again.version());
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kVersionMismatch);
  Recover2Response ok = Recover2(again, user, "5678");
  EXPECT_EQ(ok.guess_count, 1);
  auto tag = again.FinishRecover2(ok);
  ASSERT_OK(tag);
  ASSERT_TRUE(tag->has_value());
}

TEST_F(RealmTest, DeleteDestroysTheRecord) {
  VaultTestClient client(kTestRealmId);
  auto user = User("ivan");
  testing::Register(*realm_, client, user, "1234", 5);
  uint64_t registered_version = Inspect(user).record_version;
  As<DeleteResponse>(realm_->Handle(user, DeleteRequest{}));
  RecordSummary s = Inspect(user);
  EXPECT_EQ(s.state, RecordState::kAbsent);
  EXPECT_EQ(s.record_version, registered_version + 1);  // a sealed tombstone, same size
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kNotRegistered);
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kNotRegistered);
  uint64_t commits = store_.commit_count();
  As<DeleteResponse>(realm_->Handle(user, DeleteRequest{}));  // deleting again: no write
  EXPECT_EQ(store_.commit_count(), commits);
}

TEST_F(RealmTest, RejectsMalformedScalarsAndPointsWithoutChangingAnything) {
  VaultTestClient client(kTestRealmId);
  auto user = User("judy");
  testing::Register(*realm_, client, user, "1234", 5);
  RecordSummary before = Inspect(user);
  uint64_t commits = store_.commit_count();

  VaultTestClient other(kTestRealmId);
  protocol::Register2Request bad = other.Register2("0000", 5);
  std::fill(bad.oprf_private_key.RevealMutable().begin(),
            bad.oprf_private_key.RevealMutable().end(),
            0xff);  // >= l: not canonical
  EXPECT_THAT(realm_->Handle(user, std::move(bad)), StatusIs(StatusCode::kInvalidArgument));
  protocol::Register2Request short_share = other.Register2("0000", 5);
  short_share.encryption_key_scalar_share = SecretBytes(31);
  EXPECT_THAT(realm_->Handle(user, std::move(short_share)), StatusIs(StatusCode::kInvalidArgument));

  protocol::Recover2Request not_a_point = client.Recover2("1234");
  not_a_point.oprf_blinded_input.fill(0xff);
  EXPECT_THAT(realm_->Handle(user, not_a_point), StatusIs(StatusCode::kInvalidArgument));
  protocol::Recover2Request identity = client.Recover2("1234");
  identity.oprf_blinded_input.fill(0);
  EXPECT_THAT(realm_->Handle(user, identity), StatusIs(StatusCode::kInvalidArgument));

  RecordSummary after = Inspect(user);
  EXPECT_EQ(after.record_version, before.record_version);
  EXPECT_EQ(after.guess_count, 0);
  EXPECT_EQ(after.registration_version, client.version());
  EXPECT_EQ(store_.commit_count(), commits);
}

TEST_F(RealmTest, TenantsAndUsersAreSeparateRecords) {
  VaultTestClient a(kTestRealmId), b(kTestRealmId);
  testing::Register(*realm_, a, User("same", "tenant-a"), "1111", 5);
  testing::Register(*realm_, b, User("same", "tenant-b"), "2222", 5);
  Recover2(a, User("same", "tenant-a"), "0000");
  EXPECT_EQ(Inspect(User("same", "tenant-a")).guess_count, 1);
  EXPECT_EQ(Inspect(User("same", "tenant-b")).guess_count, 0);
  EXPECT_EQ(Recover1(User("same", "tenant-c")).status, Recover1Response::Status::kNotRegistered);
  // The store holds opaque ids only.
  EXPECT_EQ(store_.RecordIds().size(), 2u);
}

TEST_F(RealmTest, ZeroGuessPolicyIsNoGuessesAtOnce) {
  VaultTestClient client(kTestRealmId);
  auto user = User("kim");
  testing::Register(*realm_, client, user, "1234", 0);
  EXPECT_EQ(Recover2(client, user, "1234").status, Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(Inspect(user).state, RecordState::kNoGuesses);
}

TEST_F(RealmTest, StateSurvivesRestart) {
  VaultTestClient client(kTestRealmId);
  auto user = User("lee");
  testing::Register(*realm_, client, user, "1234", 5);
  Recover2(client, user, "0000");
  Recover2(client, user, "0000");
  uint64_t epoch = realm_->Stats().epoch;
  Restart();
  EXPECT_EQ(realm_->Stats().epoch, epoch);
  EXPECT_EQ(Inspect(user).guess_count, 2);
  EXPECT_EQ(Recover2(client, user, "1234").guess_count, 3);
}

TEST_F(RealmTest, Recover2IsDurableBeforeTheEvaluationIsReleased) {
  VaultTestClient client(kTestRealmId);
  auto user = User("mia");
  testing::Register(*realm_, client, user, "1234", 5);
  // If the write cannot be made durable, no evaluation leaves the realm.
  store_.SetNextCommitFault(MemoryRecordStore::CommitFault::kFailBeforeApply);
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  ASSERT_OK(realm_->Resync());
  EXPECT_EQ(Inspect(user).guess_count, 0);
  hsm_.SetOperationUnavailable(SoftwareHsm::Operation::kStoreAnchor, true);
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  hsm_.SetOperationUnavailable(SoftwareHsm::Operation::kStoreAnchor, false);
  ASSERT_OK(realm_->Resync());
  // The storage write of that batch was rolled forward: the guess counts although its
  // evaluation was never released (never the reverse).
  EXPECT_EQ(Inspect(user).guess_count, 1);
  // A released evaluation is on storage and anchored: a fresh realm sees it.
  EXPECT_EQ(Recover2(client, user, "1234").guess_count, 2);
  Restart();
  EXPECT_EQ(Inspect(user).guess_count, 2);
}

TEST_F(RealmTest, SealingKeyRotationIsLazy) {
  VaultTestClient a(kTestRealmId), b(kTestRealmId);
  testing::Register(*realm_, a, User("a"), "1234", 5);
  testing::Register(*realm_, b, User("b"), "1234", 5);
  EXPECT_EQ(Inspect(User("a")).sealing_key_id, 1u);
  hsm_.RotateTo(2);
  EXPECT_EQ(Recover1(User("a")).status, Recover1Response::Status::kOk);  // read only
  EXPECT_EQ(Inspect(User("a")).sealing_key_id, 1u);
  EXPECT_EQ(Recover2(a, User("a"), "1234").guess_count, 1);  // written: resealed
  EXPECT_EQ(Inspect(User("a")).sealing_key_id, 2u);
  hsm_.RemoveSealingKey(1);
  Restart();  // nothing cached
  EXPECT_EQ(Recover2(a, User("a"), "1234").guess_count, 2);
  // b was never rewritten and its key is gone.
  EXPECT_THAT(realm_->Handle(User("b"), Recover1Request{}), StatusIs(StatusCode::kDataLoss));
}

// A recovery's three requests unseal at most once and MAC the record id at most once: rows
// this realm wrote or read are kept in plaintext, keyed by the authenticated row hash, and
// ids by (tenant, user). Writes still seal, and each commit MACs its certificate.
TEST_F(RealmTest, RecordAndIdCachesSaveHsmCalls) {
  VaultTestClient client(kTestRealmId);
  auto user = User("nina");
  testing::Register(*realm_, client, user, "1234", 5);
  auto count = [&](SoftwareHsm::Operation op) { return hsm_.CallCount(op); };
  uint64_t unseals = count(SoftwareHsm::Operation::kUnseal);
  uint64_t macs = count(SoftwareHsm::Operation::kMac);
  uint64_t seals = count(SoftwareHsm::Operation::kSeal);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);
  auto tag = client.FinishRecover2(Recover2(client, user, "1234"));
  ASSERT_OK(tag);
  ASSERT_TRUE(tag->has_value());
  EXPECT_EQ(Recover3(client, user, **tag).status, Recover3Response::Status::kOk);
  EXPECT_EQ(count(SoftwareHsm::Operation::kUnseal), unseals);
  EXPECT_EQ(count(SoftwareHsm::Operation::kSeal), seals + 2);  // Recover2 and Recover3 write
  EXPECT_EQ(count(SoftwareHsm::Operation::kMac), macs + 2);    // their two certificates only
  // After a restart both caches are empty: the first read MACs and unseals, the next not.
  Restart();
  unseals = count(SoftwareHsm::Operation::kUnseal);
  macs = count(SoftwareHsm::Operation::kMac);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);
  EXPECT_EQ(count(SoftwareHsm::Operation::kUnseal), unseals + 1);
  EXPECT_EQ(count(SoftwareHsm::Operation::kMac), macs + 1);
  // With the id cache off, every request MACs its record id.
  realm_.reset();
  Start(/*record_id_cache_size=*/0);
  macs = count(SoftwareHsm::Operation::kMac);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);
  EXPECT_EQ(Recover1(user).status, Recover1Response::Status::kOk);
  EXPECT_EQ(count(SoftwareHsm::Operation::kMac), macs + 2);
}

// UserInPartition finds a user (named `prefix` + n) whose record lies in a partition other
// than `avoid`'s, or in any partition when `avoid` is null; returns it with its partition.
std::pair<RequestContext, uint32_t> UserInPartition(Hsm& hsm, uint32_t count,
                                                   const std::string& prefix,
                                                   std::optional<uint32_t> avoid) {
  for (int n = 0;; ++n) {
    RequestContext user = User(prefix + std::to_string(n));
    StatusOr<RecordId> id = ComputeRecordId(hsm, user.tenant, user.user);
    if (!id.ok()) {
      ADD_FAILURE() << id.status();
      return {user, 0};
    }
    uint32_t partition = PartitionOf(*id, count);
    if (!avoid || partition != *avoid) return {user, partition};
  }
}

// A partition whose storage was rolled back is refused; the other partitions keep serving.
TEST_F(RealmTest, APartitionRolledBackIsRefusedWhileTheOthersServe) {
  const uint32_t count = realm_->Stats().partitions;
  auto [victim, victim_partition] = UserInPartition(hsm_, count, "victim", std::nullopt);
  auto [bystander, bystander_partition] = UserInPartition(hsm_, count, "bystander", victim_partition);
  VaultTestClient victim_client(kTestRealmId), bystander_client(kTestRealmId);
  testing::Register(*realm_, victim_client, victim, "1234", 5);
  testing::Register(*realm_, bystander_client, bystander, "1234", 5);
  MemoryRecordStore::State before = store_.Snapshot();
  EXPECT_EQ(Recover2(victim_client, victim, "0000").guess_count, 1);
  store_.Restore(before);  // the victim's partition is one epoch behind its anchor
  realm_.reset();
  ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, RealmOptions{}));

  Status ready = realm_->Ready();
  EXPECT_THAT(ready, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_NE(ready.message().find("partition " + std::to_string(victim_partition) + "/"),
            std::string::npos)
      << ready;
  EXPECT_EQ(realm_->Stats().partitions_serving, count - 1);
  EXPECT_THAT(realm_->Handle(victim, Recover1Request{}), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(Recover1(bystander).status, Recover1Response::Status::kOk);
  EXPECT_EQ(Recover2(bystander_client, bystander, "1234").guess_count, 1);
}

// The partition count is fixed when a realm is created: another count is refused and named;
// 0 takes the count the anchors record.
TEST_F(RealmTest, PartitionCountIsFixedAtCreation) {
  VaultTestClient client(kTestRealmId);
  testing::Register(*realm_, client, User("alice"), "1234", 5);
  realm_.reset();
  RealmOptions options;
  options.partitions = kDefaultPartitionCount * 2;
  ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
  EXPECT_THAT(realm_->Ready(),
              StatusIs(StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("created with " +
                                            std::to_string(kDefaultPartitionCount) + " partition")));
  EXPECT_THAT(realm_->Handle(User("alice"), Recover1Request{}),
              StatusIs(StatusCode::kFailedPrecondition));
  realm_.reset();
  options.partitions = 0;
  ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
  EXPECT_OK(realm_->Ready());
  EXPECT_EQ(realm_->Stats().partitions, kDefaultPartitionCount);
  EXPECT_EQ(Recover1(User("alice")).status, Recover1Response::Status::kOk);
  EXPECT_THAT(Realm::Create(hsm_, store_, RealmOptions{.partitions = 3}),
              StatusIs(StatusCode::kInvalidArgument));
}

// A realm of one partition (as the single-tree layout was) opens as one partition and never
// grows anchors for others.
TEST(RealmPartitionTest, ARealmOfOnePartitionStaysOne) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  VaultTestClient client(kTestRealmId);
  {
    ASSERT_OK_AND_ASSIGN(auto realm, Realm::Create(hsm, store, RealmOptions{.partitions = 1}));
    testing::Register(*realm, client, User("old"), "1234", 5);
  }
  ASSERT_OK_AND_ASSIGN(auto realm, Realm::Create(hsm, store, RealmOptions{}));
  EXPECT_OK(realm->Ready());
  EXPECT_EQ(realm->Stats().partitions, 1u);
  EXPECT_EQ(As<Recover2Response>(realm->Handle(User("old"), client.Recover2("1234"))).guess_count,
            1);
  for (uint32_t p = 1; p < kDefaultPartitionCount; ++p) {
    ASSERT_OK_AND_ASSIGN(std::optional<Bytes> anchor, hsm.LoadAnchor(p));
    EXPECT_FALSE(anchor.has_value()) << p;
  }
}

}  // namespace
}  // namespace pinvault::vault
