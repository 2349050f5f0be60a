// Helpers for tests that drive a vault::Realm: typed access to responses and one-call
// protocol steps built on VaultTestClient.
#ifndef PINVAULT_TESTS_TESTING_REALM_TEST_HELPERS_H_
#define PINVAULT_TESTS_TESTING_REALM_TEST_HELPERS_H_

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "tests/testing/fake_clock.h"
#include "tests/testing/vault_test_client.h"
#include "vault/merkle.h"
#include "vault/partition.h"
#include "vault/protocol/messages.h"
#include "vault/realm.h"

namespace pinvault::testing {

inline constexpr protocol::RealmId kTestRealmId = {0x70, 0x69, 0x6e, 0x76, 0x61, 0x75, 0x6c, 0x74,
                                                   0x2d, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01};

// As extracts response type T, failing the test (and returning T{}) on an error or another
// response type.
template <typename T>
T As(StatusOr<protocol::SecretsResponse> result) {
  if (!result.ok()) {
    ADD_FAILURE() << "request failed: " << result.status();
    return T{};
  }
  T* value = std::get_if<T>(&*result);
  if (value == nullptr) {
    ADD_FAILURE() << "unexpected response variant " << result->index();
    return T{};
  }
  return std::move(*value);
}

// StatusCodeOf returns the code of a failed request (kOk if it succeeded).
inline StatusCode StatusCodeOf(const StatusOr<protocol::SecretsResponse>& result) {
  return result.ok() ? StatusCode::kOk : result.status().code();
}

inline vault::RequestContext User(const std::string& user, const std::string& tenant = "acme") {
  return vault::RequestContext{tenant, user};
}

// RealmBucketOf names the Merkle bucket of record `id` across a realm of `partitions`
// partitions whose trees have `bucket_bits`: its partition and its bucket in that
// partition's tree, so two ids share a value exactly when they share a bucket.
inline uint32_t RealmBucketOf(const vault::RecordId& id, uint32_t partitions, int bucket_bits) {
  const vault::PartitionId partition{vault::PartitionOf(id, partitions), partitions};
  return partition.index << bucket_bits | vault::MerkleTree(bucket_bits, partition).BucketOf(id);
}

// Register registers `pin` for `user` through `client` and expects Ok.
inline void Register(vault::Realm& realm, VaultTestClient& client,
                     const vault::RequestContext& user, const std::string& pin,
                     uint16_t num_guesses) {
  As<protocol::Register2Response>(realm.Handle(user, client.Register2(pin, num_guesses)));
}

// EveryCounterPasses returns a predicate that holds once every counter in `counters` has
// moved at least `by` past its value at this call: progress of each of several workers.
// `counters` must outlive the predicate.
inline std::function<bool()> EveryCounterPasses(const std::vector<std::atomic<int>>& counters,
                                                int by) {
  std::vector<int> from;
  for (const std::atomic<int>& c : counters) from.push_back(c.load());
  return [&counters, from, by] {
    for (size_t i = 0; i < from.size(); ++i) {
      if (counters[i].load() < from[i] + by) return false;
    }
    return true;
  };
}

// WaitFor polls `done` until it holds; false after a minute without it (a hang, not a timing
// margin).
inline bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 60000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// FireUntil fires `clock` by `interval` until `done()` holds: with several partitions each
// committer has its own timer, and one firing returns once any of them waits again. false
// after a minute without it (a hang, not a timing margin).
inline bool FireUntil(FakeClock& clock, std::chrono::nanoseconds interval,
                      const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    if (!clock.Fire(interval, done)) return false;
  }
  return true;
}

// FireUntilReady lets `realm`'s re-check timers fire on `clock` (every `resync_interval`)
// until the realm serves again. Each partition's committer re-checks on its own timer and a
// firing returns once one of them waits again, while another may still be inside a slow
// check (a token reconnecting), so it keeps firing until every partition serves; false after
// a minute without that (a hang, not a timing margin).
inline bool FireUntilReady(FakeClock& clock, const vault::Realm& realm,
                           std::chrono::nanoseconds resync_interval) {
  return FireUntil(clock, resync_interval, [&] { return realm.Ready().ok(); });
}

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_REALM_TEST_HELPERS_H_
