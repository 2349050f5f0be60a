// The realm on real PKCS#11 tokens (SoftHSM2 and NSS softokn) with the SQLite store: the
// guess rules end to end, restarts that read the anchor back from the token, a restored
// database refused, and the token vanishing mid-operation (FaultModule).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backup/store/sqlite_record_store.h"
#include "pkcs11/hsm_keys.h"
#include "pkcs11/token_setup.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fault_module.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/token_backends.h"
#include "tests/testing/vault_test_client.h"
#include "tests/testing/vault_test_util.h"
#include "vault/realm.h"

namespace pinvault {
namespace {

using ::pinvault::testing::StatusIs;

using backup::SqliteRecordStore;
using pkcs11::Backend;
using pkcs11::Module;
using pkcs11::TokenHsm;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using testing::As;
using testing::kTestRealmId;
using testing::ScopedTempDir;
using testing::StatusCodeOf;
using testing::User;
using testing::VaultTestClient;
using vault::Realm;
using vault::RealmOptions;

// FastRetries: provisioning options whose TokenHsm pool reconnects without pausing.
pkcs11::ProvisionOptions FastRetries() {
  pkcs11::ProvisionOptions options;
  options.hsm.pool.retry_backoff = std::chrono::milliseconds(0);
  return options;
}

constexpr std::chrono::milliseconds kResync{10};

// TestRealmOptions: the realm's timers on `clock` (null: the system clock); the partition
// count given, so that the realm starts while the token is absent.
RealmOptions TestRealmOptions(vault::Clock* clock = nullptr) {
  RealmOptions options;
  options.partitions = vault::kDefaultPartitionCount;
  options.genesis_bucket_bits = 6;
  options.worker_threads = 2;
  options.resync_interval = kResync;
  options.clock = clock;
  return options;
}

class RealmOnTokenTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kNss && testing::NssToken::ModulePath().empty()) {
      GTEST_SKIP() << "NSS softokn is not installed";
    }
    ASSERT_OK_AND_ASSIGN(token_, pkcs11::MakeTestToken(GetParam()));
    ASSERT_OK_AND_ASSIGN(module_, token_.LoadModule());
    auto realm = pkcs11::ProvisionRealm(module_, token_.uri, FastRetries());
    ASSERT_OK(realm);
    hsm_ = std::move(realm->hsm);
    StartRealm();
  }

  void TearDown() override {
    realm_.reset();
    store_.reset();
    hsm_.reset();
    module_.reset();
  }

  void StartRealm() {
    ASSERT_OK_AND_ASSIGN(store_, SqliteRecordStore::Open(dir_.path()));
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(*hsm_, *store_, TestRealmOptions()));
  }

  // Restart stops the realm and opens a new TokenHsm and store, as a new process would.
  void Restart() {
    realm_.reset();
    store_.reset();
    hsm_.reset();
    ASSERT_OK_AND_ASSIGN(hsm_, TokenHsm::Open(module_, token_.uri));
    StartRealm();
  }

  std::string DbFile(const std::string& suffix = "") const {
    return dir_.File(SqliteRecordStore::kDatabaseFileName) + suffix;
  }

  pkcs11::TestToken token_;
  std::shared_ptr<Module> module_;
  ScopedTempDir dir_;
  std::unique_ptr<TokenHsm> hsm_;
  std::unique_ptr<SqliteRecordStore> store_;
  std::unique_ptr<Realm> realm_;
};

TEST_P(RealmOnTokenTest, RecoversWithTheRightPinAndDestroysAfterWrongOnes) {
  ASSERT_OK(realm_->Ready());
  VaultTestClient client(kTestRealmId);
  auto alice = User("alice");
  testing::Register(*realm_, client, alice, "2468", 3);
  auto r2 = As<Recover2Response>(realm_->Handle(alice, client.Recover2("2468")));
  ASSERT_EQ(r2.status, Recover2Response::Status::kOk);
  auto tag = client.FinishRecover2(r2);
  ASSERT_TRUE(tag.ok() && tag->has_value()) << tag.status();
  auto r3 = As<Recover3Response>(realm_->Handle(alice, client.Recover3(**tag)));
  ASSERT_EQ(r3.status, Recover3Response::Status::kOk);
  EXPECT_EQ(r3.encrypted_secret, client.encrypted_secret());

  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(alice, client.Recover2("0000"))).guess_count, i);
  }
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(alice, client.Recover2("2468"))).status,
            Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(realm_->Inspect(alice)->state, vault::RecordState::kNoGuesses);
}

TEST_P(RealmOnTokenTest, RestartReadsTheAnchorBackFromTheToken) {
  VaultTestClient client(kTestRealmId);
  auto bob = User("bob");
  testing::Register(*realm_, client, bob, "1357", 9);
  for (int i = 0; i < 3; ++i) realm_->Handle(bob, client.Recover2("0000")).status().IgnoreError();
  uint64_t epoch = realm_->Stats().epoch;
  Restart();
  ASSERT_OK(realm_->Ready());
  EXPECT_EQ(realm_->Stats().epoch, epoch);
  EXPECT_EQ(realm_->Inspect(bob)->guess_count, 3);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, client.Recover2("0000"))).guess_count, 4);
}

TEST_P(RealmOnTokenTest, RestoredDatabaseIsRefused) {
  VaultTestClient client(kTestRealmId);
  auto carol = User("carol");
  testing::Register(*realm_, client, carol, "1111", 5);
  uint64_t snapshot_epoch = realm_->Stats().epoch;
  ASSERT_TRUE(testing::CopyFileOrAbsence(DbFile(), dir_.File("snap")));
  ASSERT_TRUE(testing::CopyFileOrAbsence(DbFile("-wal"), dir_.File("snap-wal")));
  for (int i = 0; i < 3; ++i) realm_->Handle(carol, client.Recover2("0000")).status().IgnoreError();
  uint64_t anchored_epoch = realm_->Stats().epoch;
  realm_.reset();
  store_.reset();
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("snap"), DbFile()));
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("snap-wal"), DbFile("-wal")));
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("none"), DbFile("-shm")));
  Restart();
  Status ready = realm_->Ready();
  EXPECT_THAT(ready, StatusIs(StatusCode::kFailedPrecondition)) << ready;
  EXPECT_NE(ready.message().find("storage is at epoch " + std::to_string(snapshot_epoch)),
            std::string::npos)
      << ready;
  EXPECT_NE(ready.message().find("anchor is at epoch " + std::to_string(anchored_epoch)),
            std::string::npos)
      << ready;
  EXPECT_EQ(StatusCodeOf(realm_->Handle(carol, client.Recover2("1111"))),
            StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Tokens, RealmOnTokenTest,
                         ::testing::Values(Backend::kSoftHsm, Backend::kNss), pkcs11::BackendName);

// SoftHSM2 behind a FaultModule: the token can be unplugged and replugged.
class RealmTokenFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(token_, testing::SoftHsmToken::Create());
    auto fault = testing::FaultModule::Load(testing::SoftHsmToken::kModulePath);
    ASSERT_OK(fault);
    fault_ = *fault;
    ASSERT_OK_AND_ASSIGN(module_, fault_->CreateModule());
    auto realm = pkcs11::ProvisionRealm(module_, token_->uri(), FastRetries());
    ASSERT_OK(realm);
    hsm_ = std::move(realm->hsm);
    ASSERT_OK_AND_ASSIGN(store_, SqliteRecordStore::Open(dir_.path()));
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(*hsm_, *store_, TestRealmOptions(&clock_)));
    ASSERT_OK(realm_->Ready());
  }

  // WaitReady fires the realm's re-check timer until it serves again.
  bool WaitReady() { return testing::FireUntilReady(clock_, *realm_, kResync); }

  void TearDown() override {
    if (fault_) fault_->Replug();
    realm_.reset();
    store_.reset();
    hsm_.reset();
    module_.reset();
    fault_.reset();
    token_.reset();
  }

  testing::FakeClock clock_;  // outlives the realm
  std::unique_ptr<testing::SoftHsmToken> token_;
  std::shared_ptr<testing::FaultModule> fault_;
  std::shared_ptr<Module> module_;
  ScopedTempDir dir_;
  std::unique_ptr<TokenHsm> hsm_;
  std::unique_ptr<SqliteRecordStore> store_;
  std::unique_ptr<Realm> realm_;
};

TEST_F(RealmTokenFaultTest, UnpluggedTokenFailsRequestsUnavailableAndServiceResumes) {
  VaultTestClient client(kTestRealmId);
  auto dave = User("dave");
  testing::Register(*realm_, client, dave, "1234", 5);
  auto before = store_->ReadTree(0);
  ASSERT_OK(before);
  fault_->Unplug();
  EXPECT_EQ(StatusCodeOf(realm_->Handle(dave, client.Recover2("1234"))), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeOf(realm_->Handle(dave, Recover1Request{})), StatusCode::kUnavailable);
  VaultTestClient other(kTestRealmId);
  EXPECT_EQ(StatusCodeOf(realm_->Handle(User("eve"), other.Register2("1", 5))),
            StatusCode::kUnavailable);
  auto after = store_->ReadTree(0);
  ASSERT_OK(after);
  EXPECT_EQ(after->head, before->head);  // no partial write
  fault_->Replug();
  ASSERT_TRUE(WaitReady());
  EXPECT_EQ(realm_->Inspect(dave)->guess_count, 0);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(dave, client.Recover2("1234"))).guess_count, 1);
}

TEST_F(RealmTokenFaultTest, AnchorWriteFailingIsRolledForwardWhenTheTokenIsBack) {
  VaultTestClient client(kTestRealmId);
  auto fay = User("fay");
  testing::Register(*realm_, client, fay, "1234", 5);
  // The anchor cannot be written (neither rewritten in place nor created): the batch reached
  // storage but not the token.
  ASSERT_TRUE(fault_->FailNext("C_SetAttributeValue", CKR_DEVICE_REMOVED, -1).ok());
  ASSERT_TRUE(fault_->FailNext("C_CreateObject", CKR_DEVICE_REMOVED, -1).ok());
  ASSERT_TRUE(fault_->FailNext("C_GenerateKey", CKR_DEVICE_REMOVED, -1).ok());
  EXPECT_EQ(StatusCodeOf(realm_->Handle(fay, client.Recover2("1234"))), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeOf(realm_->Handle(fay, Recover1Request{})), StatusCode::kUnavailable);
  fault_->ClearFaults();
  ASSERT_TRUE(WaitReady()) << realm_->Ready();
  EXPECT_EQ(realm_->Stats().roll_forwards, 1u);
  // The guess was counted (never the reverse) and the service continues from there.
  EXPECT_EQ(realm_->Inspect(fay)->guess_count, 1);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(fay, client.Recover2("1234"))).guess_count, 2);
}

// Workers spend guesses while the token is unplugged four times, each time with a call held
// inside the real module (C_Encrypt of a record seal) so that the removal always lands on a
// running call; the fault module closes that call's session only once it returns, as SoftHSM2
// needs. No count the realm released may be lost, and none may exceed the attempts.
TEST_F(RealmTokenFaultTest, UnplugUnderLoadNeverLowersACount) {
  constexpr int kUsers = 6;
  std::vector<std::unique_ptr<VaultTestClient>> clients;
  for (int i = 0; i < kUsers; ++i) {
    clients.push_back(std::make_unique<VaultTestClient>(kTestRealmId));
    testing::Register(*realm_, *clients.back(), User("u" + std::to_string(i)), "1234", 1000);
  }
  std::vector<int> released(kUsers, 0), attempts(kUsers, 0);
  std::vector<std::atomic<int>> successes(kUsers), refusals(kUsers);
  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kUsers; ++i) {
    threads.emplace_back([&, i] {
      while (!stop.load()) {
        ++attempts[i];
        auto r = realm_->Handle(User("u" + std::to_string(i)), clients[i]->Recover2("0000"));
        if (r.ok()) {
          released[i] = std::get<Recover2Response>(*r).guess_count;
          successes[i].fetch_add(1);
        } else if (r.status().code() == StatusCode::kUnavailable) {
          refusals[i].fetch_add(1);
        } else if (unexpected.fetch_add(1) == 0) {
          ADD_FAILURE() << r.status();
        }
      }
    });
  }
  auto rounds = [&] {
    for (int round = 0; round < 4; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      ASSERT_TRUE(testing::WaitFor(testing::EveryCounterPasses(successes, 2)))
          << "workers made no progress";
      ASSERT_TRUE(fault_->PauseNext("C_Encrypt").ok());
      fault_->WaitPaused();  // a worker is inside a seal on its session
      fault_->Unplug();
      auto refused = testing::EveryCounterPasses(refusals, 1);
      fault_->Resume();
      ASSERT_TRUE(testing::WaitFor(refused)) << "a worker never saw the removal";
      fault_->Replug();
      ASSERT_TRUE(WaitReady()) << realm_->Ready();
    }
    ASSERT_TRUE(testing::WaitFor(testing::EveryCounterPasses(successes, 2)))
        << "service did not resume";
  };
  rounds();
  fault_->Replug();
  stop = true;
  for (auto& t : threads) t.join();
  if (HasFatalFailure()) return;
  EXPECT_EQ(unexpected.load(), 0);
  ASSERT_TRUE(WaitReady()) << realm_->Ready();
  for (int i = 0; i < kUsers; ++i) {
    int count = realm_->Inspect(User("u" + std::to_string(i)))->guess_count;
    EXPECT_GE(count, released[i]) << "user " << i;
    EXPECT_LE(count, attempts[i]) << "user " << i;
  }
}

TEST_F(RealmTokenFaultTest, TokenAbsentAtStartIsRetried) {
  VaultTestClient client(kTestRealmId);
  testing::Register(*realm_, client, User("gil"), "1234", 5);
  realm_.reset();
  fault_->Unplug();
  ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(*hsm_, *store_, TestRealmOptions(&clock_)));
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable)) << realm_->Ready();
  fault_->Replug();
  ASSERT_TRUE(WaitReady()) << realm_->Ready();
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(User("gil"), Recover1Request{})).status,
            Recover1Response::Status::kOk);
}

}  // namespace
}  // namespace pinvault
