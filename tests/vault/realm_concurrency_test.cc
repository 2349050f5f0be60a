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

#include "tests/testing/manual_executor.h"
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
using testing::ManualExecutor;
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
// With `executor` the request steps run only when the test runs them; `partitions` 0 is the
// default count.
void MakeRealm(Hsm& hsm, RecordStore& store, std::unique_ptr<Realm>& realm,
               Executor* executor = nullptr, uint32_t partitions = 0) {
  RealmOptions options;
  options.partitions = partitions;
  options.genesis_bucket_bits = 8;
  options.worker_threads = 4;
  options.executor = executor;
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

// Group commit: every write waiting when the committer is free goes into one batch, and no
// response is released before its commit is durable. The request steps run on a manual
// executor, so by the check below every one of them has run: any response not held for the
// commit would have been delivered. One partition, so that one committer takes every write.
TEST(RealmConcurrencyTest, GroupCommitBatchesAndHoldsResponsesUntilDurable) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  constexpr int kUsers = 100;
  std::vector<std::unique_ptr<VaultTestClient>> clients;
  {
    std::unique_ptr<Realm> setup;
    ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, setup, nullptr, /*partitions=*/1));
    for (int i = 0; i < kUsers; ++i) {
      clients.push_back(std::make_unique<VaultTestClient>(kTestRealmId));
      testing::Register(*setup, *clients.back(), User("u" + std::to_string(i)), "1234", 5);
    }
  }
  ManualExecutor executor;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm, &executor, /*partitions=*/1));
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
  EXPECT_EQ(executor.RunUntilIdle(), static_cast<size_t>(kUsers));
  ASSERT_TRUE(store.WaitForCommitsWaiting(1));
  EXPECT_EQ(delivered.load(), 0) << "a response left before its write was durable";
  store.PauseCommits(false);
  latch.Wait();
  EXPECT_EQ(executor.queued(), 0u);
  for (int i = 0; i < kUsers; ++i) EXPECT_EQ(counts[i], 1) << i;
  RealmStats after = realm->Stats();
  EXPECT_EQ(after.writes - before.writes, static_cast<uint64_t>(kUsers));
  // The committer took what had arrived when it woke, then everything queued behind it.
  EXPECT_LE(after.batches - before.batches, 2u);
  EXPECT_GE(after.largest_batch, static_cast<uint64_t>(kUsers) / 2);
  EXPECT_EQ(after.epoch - before.epoch, after.batches - before.batches);
}

// Two requests on one record: the second waits, parked, until the first's write is durable
// and answered, and then sees its result. Each step is run by hand, so the order is forced.
TEST(RealmConcurrencyTest, SecondRequestOnARecordWaitsForTheFirstsCommit) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  VaultTestClient client(kTestRealmId);
  auto user = User("one-record");
  {
    std::unique_ptr<Realm> setup;
    ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, setup));
    testing::Register(*setup, client, user, "1234", 5);
  }
  ManualExecutor executor;
  std::unique_ptr<Realm> realm;
  ASSERT_NO_FATAL_FAILURE(MakeRealm(hsm, store, realm, &executor));

  store.PauseCommits(true);
  std::mutex mu;
  std::vector<std::pair<char, int>> answers;  // (request, guess count) in delivery order
  Latch first_done(1);
  Latch second_done(1);
  auto answer = [&](char which, Latch& latch) {
    return [&, which](StatusOr<SecretsResponse> r) {
      {
        std::lock_guard lock(mu);
        answers.emplace_back(which, r.ok() ? std::get<Recover2Response>(*r).guess_count : -1);
      }
      latch.CountDown();
    };
  };
  realm->Submit(user, client.Recover2("0000"), answer('A', first_done));
  realm->Submit(user, client.Recover2("0000"), answer('B', second_done));
  ASSERT_EQ(executor.queued(), 2u);
  ASSERT_TRUE(executor.RunNext());  // A: read, guess counted, sealed, queued for the commit
  ASSERT_TRUE(executor.RunNext());  // B: finds the record held by A and parks
  ASSERT_TRUE(store.WaitForCommitsWaiting(1));
  EXPECT_EQ(executor.queued(), 0u) << "B was let run while A's write was not durable";
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(answers.empty());
  }

  store.PauseCommits(false);
  first_done.Wait();
  // A's commit released the record, which posts B.
  ASSERT_TRUE(executor.WaitForPosted(1));
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(answers.size(), 1u) << "B ran before it was posted";
  }
  ASSERT_TRUE(executor.RunNext());
  second_done.Wait();
  std::lock_guard lock(mu);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0], std::make_pair('A', 1));
  EXPECT_EQ(answers[1], std::make_pair('B', 2));
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

// With a single bucket every commit changes the bucket every reader reads. Forced: a reader's
// bucket scan is held (the store's scan hook) until another record's commit has landed, so its
// snapshot no longer matches the tree; the realm must retry the read, not report tampering.
TEST(RealmConcurrencyTest, ReadRacingACommitInItsBucketIsRetriedNotDataLoss) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  RealmOptions options;
  options.partitions = 1;  // one partition of one bucket: every commit moves the reader's bucket
  options.genesis_bucket_bits = 0;
  options.bucket_cache_size = 0;  // every read scans its bucket
  options.worker_threads = 2;
  ASSERT_OK_AND_ASSIGN(auto realm, Realm::Create(hsm, store, options));
  VaultTestClient writer(kTestRealmId);
  VaultTestClient reader(kTestRealmId);
  testing::Register(*realm, writer, User("writer"), "1234", 100);
  testing::Register(*realm, reader, User("reader"), "1234", 100);
  ASSERT_OK_AND_ASSIGN(RecordId reader_id, ComputeRecordId(hsm, "acme", "reader"));
  const uint64_t epoch_before = realm->Stats().epoch;

  std::atomic<int> reader_scans{0};
  store.SetScanHook([&](const RecordId& target) {
    if (target != reader_id || reader_scans.fetch_add(1) != 0) return;
    // The reader holds a snapshot of the bucket; a write to another record lands now (on the
    // other worker and the committer) and is answered only once the tree has moved.
    auto written = realm->Handle(User("writer"), writer.Recover2("0000"));
    EXPECT_EQ(As<Recover2Response>(std::move(written)).guess_count, 1);
  });
  auto read = realm->Handle(User("reader"), Recover1Request{});
  store.SetScanHook(nullptr);
  EXPECT_OK(read.status());
  EXPECT_GE(reader_scans.load(), 2) << "the stale snapshot was not read again";
  EXPECT_EQ(realm->Stats().epoch, epoch_before + 1);
  EXPECT_OK(realm->Ready());
}

// The same race without forcing: readers and writers in one bucket for a while; no read is
// ever reported as tampering.
TEST(RealmConcurrencyTest, ReadsRacingCommitsInOneBucketAreNotDataLoss) {
  SoftwareHsm hsm;
  MemoryRecordStore store;
  RealmOptions options;
  options.partitions = 1;
  options.genesis_bucket_bits = 0;
  options.worker_threads = 4;
  ASSERT_OK_AND_ASSIGN(auto realm, Realm::Create(hsm, store, options));
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
