// The HSM (or storage) disappearing mid-operation: requests fail UNAVAILABLE, a batch is
// written entirely or not at all, guess counts never go down, and the realm resumes on
// its own when the device is back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/fake_clock.h"
#include "tests/testing/memory_record_store.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "vault/realm.h"

namespace pinvault::vault {
namespace {

using protocol::DeleteRequest;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Register1Request;
using protocol::Register1Response;
using testing::As;
using testing::kTestRealmId;
using testing::MemoryRecordStore;
using testing::SoftwareHsm;
using testing::StatusIs;
using testing::User;
using testing::VaultTestClient;

class RealmHsmFailureTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(Options()); }

  // Options are the tests' realm options: timers on the fake clock, and no idle health check,
  // so that failures come from requests.
  RealmOptions Options() {
    RealmOptions options;
    options.genesis_bucket_bits = 4;
    options.worker_threads = 3;
    options.resync_interval = kResync;
    options.health_check_interval = std::chrono::milliseconds(0);
    options.clock = &clock_;
    return options;
  }

  // Restart replaces the realm by one with `options` over the same HSM and store. Call it
  // under ASSERT_NO_FATAL_FAILURE.
  void Restart(const RealmOptions& options) {
    realm_.reset();
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
    ASSERT_OK(realm_->Ready());
  }

  // WaitReady fires the realm's re-check timer until it serves again.
  bool WaitReady() { return testing::FireUntilReady(clock_, *realm_, kResync); }

  static constexpr std::chrono::milliseconds kResync{200};
  testing::FakeClock clock_;  // outlives the realm
  SoftwareHsm hsm_;
  MemoryRecordStore store_;
  std::unique_ptr<Realm> realm_;
};

TEST_F(RealmHsmFailureTest, EveryRecordRequestFailsUnavailableAndNothingIsWritten) {
  VaultTestClient client(kTestRealmId);
  auto user = User("alice");
  testing::Register(*realm_, client, user, "1234", 5);
  MemoryRecordStore::State before = store_.Snapshot();
  hsm_.SetUnavailable(true);
  VaultTestClient other(kTestRealmId);
  EXPECT_THAT(realm_->Handle(user, other.Register2("5678", 5)), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, client.Recover3(client.CorrectTag())),
              StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, DeleteRequest{}), StatusIs(StatusCode::kUnavailable));
  // The realm noticed: it is not ready, and refuses even what needs no HSM (Register1).
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, Register1Request{}), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(User("never-seen"), Recover1Request{}),
              StatusIs(StatusCode::kUnavailable));
  MemoryRecordStore::State after = store_.Snapshot();
  EXPECT_EQ(after.head(), before.head());
  EXPECT_EQ(after.records, before.records);
  hsm_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());
  ASSERT_OK_AND_ASSIGN(RecordSummary s, realm_->Inspect(user));
  EXPECT_EQ(s.guess_count, 0);
  EXPECT_EQ(s.registration_version, client.version());
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 1);
}

// Recover1 of a record whose id and plaintext are both cached makes no HSM call, so it is
// answered while the HSM is gone and not yet noticed; the first request that needs the HSM
// takes the realm out of service, and it comes back by itself.
TEST_F(RealmHsmFailureTest, CachedRecover1IsServedUntilAnHsmCallFails) {
  VaultTestClient client(kTestRealmId);
  auto user = User("dave");
  testing::Register(*realm_, client, user, "1234", 5);
  uint64_t calls = hsm_.CallCount(SoftwareHsm::Operation::kMac) +
                   hsm_.CallCount(SoftwareHsm::Operation::kUnseal);
  hsm_.SetUnavailable(true);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(user, Recover1Request{})).status,
            Recover1Response::Status::kOk);
  EXPECT_EQ(hsm_.CallCount(SoftwareHsm::Operation::kMac) +
                hsm_.CallCount(SoftwareHsm::Operation::kUnseal),
            calls);
  EXPECT_OK(realm_->Ready());
  // Recover2 must seal the counted guess: it fails, and the realm stops serving.
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kUnavailable));
  hsm_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
  EXPECT_EQ(summary.guess_count, 0);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 1);
}

// An idle realm notices a vanished HSM or store by itself (its health check) and turns
// not-ready without any request; it serves again once they are back.
TEST_F(RealmHsmFailureTest, IdleRealmNoticesAnUnreachableHsmOrStore) {
  RealmOptions options = Options();
  options.health_check_interval = std::chrono::seconds(5);
  ASSERT_NO_FATAL_FAILURE(Restart(options));
  VaultTestClient client(kTestRealmId);
  auto user = User("erin");
  testing::Register(*realm_, client, user, "1234", 5);
  uint64_t macs = hsm_.CallCount(SoftwareHsm::Operation::kMac);
  // Every partition's committer checks on its own timer: fire until one has.
  const auto interval = options.health_check_interval;
  ASSERT_TRUE(testing::FireUntil(clock_, interval, [&] {
    return hsm_.CallCount(SoftwareHsm::Operation::kMac) > macs;
  })) << "the idle realm did not check its HSM";
  EXPECT_OK(realm_->Ready());  // checks that pass change nothing

  hsm_.SetUnavailable(true);
  ASSERT_TRUE(testing::FireUntil(clock_, interval, [&] { return !realm_->Ready().ok(); }));
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kUnavailable));
  hsm_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());

  store_.SetUnavailable(true);
  ASSERT_TRUE(testing::FireUntil(clock_, interval, [&] { return !realm_->Ready().ok(); }));
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable));
  store_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(user, Recover1Request{})).status,
            Recover1Response::Status::kOk);
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
  EXPECT_EQ(summary.guess_count, 0);
}

// The HSM vanishes at each successive call of a Recover2 (record id MAC, unseal unless the
// record is cached, seal, certificate MAC, anchor write): the request fails UNAVAILABLE, the
// record is left either unchanged or, if the failure hit the anchor write after storage had
// the batch, with the guess counted; the realm resumes by itself once the HSM is back.
TEST_F(RealmHsmFailureTest, HsmVanishesAtEachStepOfARecover2) {
  for (size_t cache_size : {size_t{0}, size_t{4096}}) {
    SCOPED_TRACE(cache_size == 0 ? "record cache off" : "record cache on");
    RealmOptions options = Options();
    options.record_cache_size = cache_size;
    ASSERT_NO_FATAL_FAILURE(Restart(options));
    VaultTestClient client(kTestRealmId);
    auto user = User(cache_size == 0 ? "bob" : "bob-cached");
    testing::Register(*realm_, client, user, "1234", 50);
    int expected_count = 0;
    bool saw_success = false;
    bool saw_anchor_failure = false;
    for (int calls = 0; calls < 8 && !saw_success; ++calls) {
      protocol::Recover2Request request = client.Recover2("0000");
      uint64_t anchors_before = hsm_.CallCount(SoftwareHsm::Operation::kStoreAnchor);
      hsm_.FailAfterCalls(calls);
      auto result = realm_->Handle(user, std::move(request));
      bool anchor_attempted = hsm_.CallCount(SoftwareHsm::Operation::kStoreAnchor) > anchors_before;
      hsm_.SetUnavailable(false);
      if (result.ok()) {
        EXPECT_EQ(std::get<Recover2Response>(*result).guess_count, expected_count + 1);
        expected_count += 1;
        saw_success = true;
        continue;
      }
      EXPECT_THAT(result, StatusIs(StatusCode::kUnavailable)) << calls;
      ASSERT_TRUE(WaitReady()) << realm_->Ready();
      ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
      int now = summary.guess_count;
      // Only a failure at the anchor write leaves the counted guess behind, because storage
      // already held the batch; it is rolled forward, never back.
      EXPECT_EQ(now, expected_count + (anchor_attempted ? 1 : 0)) << "failure at call " << calls;
      saw_anchor_failure |= anchor_attempted;
      expected_count = now;
    }
    EXPECT_TRUE(saw_success);
    EXPECT_TRUE(saw_anchor_failure);
    ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
    EXPECT_EQ(summary.guess_count, expected_count);
  }
}

TEST_F(RealmHsmFailureTest, HsmFlappingUnderLoadNeverLowersACount) {
  constexpr int kUsers = 12;
  std::vector<std::unique_ptr<VaultTestClient>> clients;
  for (int i = 0; i < kUsers; ++i) {
    clients.push_back(std::make_unique<VaultTestClient>(kTestRealmId));
    testing::Register(*realm_, *clients.back(), User("u" + std::to_string(i)), "1234", 1000);
  }
  std::vector<int> evaluations(kUsers, 0), max_reported(kUsers, 0), attempts(kUsers, 0);
  std::vector<std::atomic<int>> successes(kUsers), refusals(kUsers);
  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kUsers; ++i) {
    threads.emplace_back([&, i] {
      auto user = User("u" + std::to_string(i));
      while (!stop.load()) {
        ++attempts[i];
        auto r = realm_->Handle(user, clients[i]->Recover2("0000"));
        if (r.ok()) {
          ++evaluations[i];
          max_reported[i] = std::get<Recover2Response>(*r).guess_count;
          successes[i].fetch_add(1);
        } else if (r.status().code() == StatusCode::kUnavailable) {
          refusals[i].fetch_add(1);
        } else if (unexpected.fetch_add(1) == 0) {
          ADD_FAILURE() << "unexpected " << r.status();
        }
      }
    });
  }
  // Ten flaps, each forced to land under load: every worker is served, then every worker is
  // refused while the HSM is gone, then the realm's re-check timer brings it back.
  auto flaps = [&] {
    for (int flap = 0; flap < 10; ++flap) {
      SCOPED_TRACE("flap " + std::to_string(flap));
      ASSERT_TRUE(testing::WaitFor(testing::EveryCounterPasses(successes, 1)))
          << "workers made no progress";
      hsm_.SetUnavailable(true);
      ASSERT_TRUE(testing::WaitFor(testing::EveryCounterPasses(refusals, 1)))
          << "a worker never saw the HSM gone";
      hsm_.SetUnavailable(false);
      ASSERT_TRUE(WaitReady()) << realm_->Ready();
    }
    ASSERT_TRUE(testing::WaitFor(testing::EveryCounterPasses(successes, 1)));
  };
  flaps();
  hsm_.SetUnavailable(false);
  stop = true;
  for (auto& t : threads) t.join();
  if (HasFatalFailure()) return;
  EXPECT_EQ(unexpected.load(), 0);
  ASSERT_TRUE(WaitReady());
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(User("u" + std::to_string(i))));
    int count = summary.guess_count;
    EXPECT_GE(count, evaluations[i]) << "user " << i << ": fewer guesses counted than released";
    EXPECT_GE(count, max_reported[i]) << "user " << i << ": a reported count went down";
    EXPECT_LE(count, attempts[i]) << "user " << i;
  }
  // And the service works normally again.
  EXPECT_GT(
      As<Recover2Response>(realm_->Handle(User("u0"), clients[0]->Recover2("1234"))).guess_count,
      0);
}

TEST_F(RealmHsmFailureTest, StorageGoneIsUnavailableAndResumes) {
  VaultTestClient client(kTestRealmId);
  auto user = User("carol");
  testing::Register(*realm_, client, user, "1234", 5);
  store_.SetUnavailable(true);
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  store_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm_->Inspect(user));
  EXPECT_EQ(summary.guess_count, 0);

  // A commit whose outcome is unknown (applied, then reported failed) is settled by the
  // re-check: storage has it, so it is rolled forward.
  store_.SetNextCommitFault(MemoryRecordStore::CommitFault::kFailAfterApply);
  EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")), StatusIs(StatusCode::kUnavailable));
  ASSERT_TRUE(WaitReady());
  ASSERT_OK_AND_ASSIGN(RecordSummary summary_after, realm_->Inspect(user));
  EXPECT_EQ(summary_after.guess_count, 1);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("1234"))).guess_count, 2);
}

TEST_F(RealmHsmFailureTest, HsmGoneAtStartupIsRetried) {
  VaultTestClient client(kTestRealmId);
  testing::Register(*realm_, client, User("dave"), "1234", 5);
  realm_.reset();
  hsm_.SetUnavailable(true);
  RealmOptions options;
  options.resync_interval = kResync;
  options.clock = &clock_;
  // The partition count is read from the HSM unless it is given.
  EXPECT_THAT(Realm::Create(hsm_, store_, options), StatusIs(StatusCode::kUnavailable));
  options.partitions = kDefaultPartitionCount;
  ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(hsm_, store_, options));
  EXPECT_THAT(realm_->Ready(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_->Handle(User("dave"), Recover1Request{}), StatusIs(StatusCode::kUnavailable));
  hsm_.SetUnavailable(false);
  ASSERT_TRUE(WaitReady());
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(User("dave"), Recover1Request{})).status,
            Recover1Response::Status::kOk);
}

}  // namespace
}  // namespace pinvault::vault
