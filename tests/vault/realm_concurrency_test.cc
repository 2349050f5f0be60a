// Concurrency: per-record serialisation and group commit.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/memory_record_store.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "vault/realm.h"

namespace pinvault::vault {
namespace {

using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using protocol::SecretsResponse;
using testing::As;
using testing::kTestRealmId;
using testing::MemoryRecordStore;
using testing::SoftwareHsm;
using testing::User;
using testing::VaultTestClient;

// Latch counts down to zero once.
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown() {
    std::lock_guard lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

// MakeRealm creates a realm in `realm`; call it under ASSERT_NO_FATAL_FAILURE.
void MakeRealm(Hsm& hsm, RecordStore& store, std::unique_ptr<Realm>& realm, int workers = 4) {
  RealmOptions options;
  options.genesis_bucket_bits = 8;
  options.worker_threads = workers;
  ASSERT_OK_AND_ASSIGN(realm, Realm::Create(hsm, store, options));
  EXPECT_OK(realm->Ready());
}

// 1,000 concurrent wrong-PIN Recover2 requests on one user: exactly num_guesses
// evaluations, each with a distinct count, then NoGuesses.
TEST(RealmConcurrencyTest, ThousandParallelRecover2OnOneUser) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm));
  constexpr int kGuesses = 10;
  constexpr int kAttempts = 1000;
  VaultTestClient client(kTestRealmId);
  auto user = User("target");
  testing::Register(*realm, client, user, "1234", kGuesses);
  std::vector<protocol::Recover2Request> requests;
  for (int i = 0; i < kAttempts; ++i) requests.push_back(client.Recover2("0000"));

  std::mutex mu;
  std::vector<int> counts;
  int no_guesses = 0, other = 0;
  Latch latch(kAttempts);
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = t; i < kAttempts; i += 4) {
        realm->Submit(user, requests[i], [&](StatusOr<SecretsResponse> r) {
          {
            std::lock_guard lock(mu);
            const auto* r2 = r.ok() ? std::get_if<Recover2Response>(&*r) : nullptr;
            if (r2 && r2->status == Recover2Response::Status::kOk) {
              counts.push_back(r2->guess_count);
            } else if (r2 && r2->status == Recover2Response::Status::kNoGuesses) {
              ++no_guesses;
            } else {
              ++other;
            }
          }
          latch.CountDown();
        });
      }
    });
  }
  for (auto& t : submitters) t.join();
  latch.Wait();
  EXPECT_EQ(counts.size(), static_cast<size_t>(kGuesses));
  EXPECT_EQ(std::set<int>(counts.begin(), counts.end()).size(), counts.size())
      << "two Recover2 calls saw the same guess count";
  EXPECT_EQ(*std::max_element(counts.begin(), counts.end()), kGuesses);
  EXPECT_EQ(no_guesses, kAttempts - kGuesses);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(As<Recover1Response>(realm->Handle(user, Recover1Request{})).status,
            Recover1Response::Status::kNoGuesses);
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm->Inspect(user));
  EXPECT_EQ(summary.state, RecordState::kNoGuesses);
}

// The same with full wrong-PIN attempts: Recover2, then Recover3 with a bad tag, from
// 1,000 concurrent clients.
TEST(RealmConcurrencyTest, ThousandParallelWrongPinAttemptsOnOneUser) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm));
  constexpr int kGuesses = 8;
  constexpr int kAttempts = 1000;
  VaultTestClient client(kTestRealmId);
  auto user = User("target");
  testing::Register(*realm, client, user, "1234", kGuesses);
  std::vector<protocol::Recover2Request> requests;
  for (int i = 0; i < kAttempts; ++i) requests.push_back(client.Recover2("0000"));
  const protocol::Recover3Request bad_tag = client.Recover3(client.WrongTag());

  std::atomic<int> evaluations{0}, no_guesses{0}, bad_tags{0}, errors{0};
  std::mutex mu;
  std::multiset<int> remaining;
  Latch latch(kAttempts);
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t; i < kAttempts; i += 8) {
        auto r2 = realm->Handle(user, requests[i]);
        const auto* resp = r2.ok() ? std::get_if<Recover2Response>(&*r2) : nullptr;
        if (resp == nullptr) {
          ++errors;
        } else if (resp->status == Recover2Response::Status::kOk) {
          ++evaluations;
          auto r3 = realm->Handle(user, bad_tag);
          const auto* resp3 = r3.ok() ? std::get_if<Recover3Response>(&*r3) : nullptr;
          if (resp3 && resp3->status == Recover3Response::Status::kBadUnlockKeyTag) {
            ++bad_tags;
            std::lock_guard lock(mu);
            remaining.insert(resp3->guesses_remaining);
          } else if (!resp3 || resp3->status != Recover3Response::Status::kNoGuesses) {
            ++errors;
          }
        } else if (resp->status == Recover2Response::Status::kNoGuesses) {
          ++no_guesses;
        } else {
          ++errors;
        }
        latch.CountDown();
      }
    });
  }
  latch.Wait();
  for (auto& t : clients) t.join();
  EXPECT_EQ(evaluations.load(), kGuesses);
  EXPECT_EQ(no_guesses.load(), kAttempts - kGuesses);
  EXPECT_EQ(errors.load(), 0);
  // Every BadUnlockKeyTag told the truth: at most kGuesses of them, never negative, and
  // a zero only once the last guess was spent.
  for (int g : remaining) EXPECT_LT(g, kGuesses);
  ASSERT_OK_AND_ASSIGN(RecordSummary summary, realm->Inspect(user));
  EXPECT_EQ(summary.state, RecordState::kNoGuesses);
}

// Writes of concurrent requests on different records share one commit, and no response
// is released before its commit is durable.
TEST(RealmConcurrencyTest, GroupCommitBatchesAndHoldsResponsesUntilDurable) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm));
  constexpr int kUsers = 100;
  std::vector<std::unique_ptr<VaultTestClient>> clients;
  for (int i = 0; i < kUsers; ++i) {
    clients.push_back(std::make_unique<VaultTestClient>(kTestRealmId));
    testing::Register(*realm, *clients.back(), User("u" + std::to_string(i)), "1234", 5);
  }
  RealmStats before = realm->Stats();

  // Hold the first commit inside the store; everything else queues behind it.
  store.PauseCommits(true);
  std::atomic<int> delivered{0};
  std::vector<int> counts(kUsers, -1);
  Latch latch(kUsers);
  for (int i = 0; i < kUsers; ++i) {
    realm->Submit(User("u" + std::to_string(i)), clients[i]->Recover2("1234"),
                  [&, i](StatusOr<SecretsResponse> r) {
                    ++delivered;
                    if (r.ok()) counts[i] = std::get<Recover2Response>(*r).guess_count;
                    latch.CountDown();
                  });
  }
  while (store.commits_waiting() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(delivered.load(), 0) << "a response left before its write was durable";
  store.PauseCommits(false);
  latch.Wait();
  for (int i = 0; i < kUsers; ++i) EXPECT_EQ(counts[i], 1) << i;
  RealmStats after = realm->Stats();
  EXPECT_EQ(after.writes - before.writes, static_cast<uint64_t>(kUsers));
  EXPECT_LT(after.batches - before.batches, static_cast<uint64_t>(kUsers) / 2);
  EXPECT_GT(after.largest_batch, 10u);
  EXPECT_EQ(after.epoch - before.epoch, after.batches - before.batches);
}

// Many clients on many users, mixed operations: each user's final state matches what its
// own sequence of requests must produce.
TEST(RealmConcurrencyTest, ParallelUsersKeepIndependentCounts) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm));
  constexpr int kThreads = 8;
  constexpr int kUsersPerThread = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int u = 0; u < kUsersPerThread; ++u) {
        auto user = User("t" + std::to_string(t) + "u" + std::to_string(u));
        VaultTestClient client(kTestRealmId);
        if (!realm->Handle(user, client.Register2("1234", 20)).ok()) ++failures;
        int wrong = (t + u) % 5;
        for (int i = 0; i < wrong; ++i) {
          if (!realm->Handle(user, client.Recover2("0000")).ok()) ++failures;
        }
        auto r2 = realm->Handle(user, client.Recover2("1234"));
        if (!r2.ok() || std::get<Recover2Response>(*r2).guess_count != wrong + 1) ++failures;
        if (u % 2 == 0 && r2.ok()) {  // a failed Recover2 is counted above
          auto tag = client.FinishRecover2(std::get<Recover2Response>(*r2));
          if (!tag.ok() || !tag->has_value()) {
            ++failures;
            continue;
          }
          auto r3 = realm->Handle(user, client.Recover3(**tag));
          if (!r3.ok() || std::get<Recover3Response>(*r3).status != Recover3Response::Status::kOk) {
            ++failures;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int u = 0; u < kUsersPerThread; ++u) {
      auto s = realm->Inspect(User("t" + std::to_string(t) + "u" + std::to_string(u)));
      ASSERT_OK(s);
      int expected = u % 2 == 0 ? 0 : (t + u) % 5 + 1;
      EXPECT_EQ(s->guess_count, expected) << t << "/" << u;
    }
  }
  EXPECT_GT(realm->Stats().largest_batch, 1u);
}

// With a single bucket every commit changes the bucket every reader reads: reads racing
// commits must be retried, never reported as tampering.
TEST(RealmConcurrencyTest, ReadsRacingCommitsInOneBucketAreNotDataLoss) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  RealmOptions options;
  options.genesis_bucket_bits = 0;
  options.worker_threads = 4;
  ASSERT_OK_AND_ASSIGN(auto realm, Realm::Create(hsm, store, options));
  store.SetScanDelay(std::chrono::microseconds(300));
  constexpr int kWriters = 4;
  constexpr int kReaders = 4;
  std::vector<std::unique_ptr<VaultTestClient>> clients;
  for (int i = 0; i < kWriters + kReaders; ++i) {
    clients.push_back(std::make_unique<VaultTestClient>(kTestRealmId));
    testing::Register(*realm, *clients.back(), User("u" + std::to_string(i)), "1234", 60000);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters + kReaders; ++i) {
    threads.emplace_back([&, i] {
      auto user = User("u" + std::to_string(i));
      for (int n = 0; n < 150 && !stop.load(); ++n) {
        auto r = i < kWriters ? realm->Handle(user, clients[i]->Recover2("0000"))
                              : realm->Handle(user, Recover1Request{});
        if (!r.ok()) {
          if (errors.fetch_add(1) == 0) ADD_FAILURE() << r.status();
        } else if (i >= kWriters) {
          ++reads;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(reads.load(), kReaders * 150);
}

}  // namespace
}  // namespace pinvault::vault
