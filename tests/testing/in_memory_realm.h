// Test fixtures for the client library and the HTTP server: a realm that keeps its
// records in memory, a Transport that routes client requests to such realms (with fault
// knobs), and a fixed auth-token provider.
//
// InMemoryRealm implements the realm side of the Juicebox protocol with the realm's own guess
// rules (vault/guess_rules.h) over a map of plaintext records. It has no HSM, no sealing and
// no durability: it is a fixture, not a realm.
#ifndef PINVAULT_TESTS_TESTING_IN_MEMORY_REALM_H_
#define PINVAULT_TESTS_TESTING_IN_MEMORY_REALM_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "backup/client/realm_endpoint.h"
#include "backup/client/transport.h"
#include "vault/protocol/messages.h"
#include "vault/realm_service.h"
#include "vault/record.h"
#include "vault/status.h"

namespace pinvault::testing {

// InMemoryRealm: a RealmService over an in-memory map of records keyed by (tenant, user).
// Submit answers inline (`done` runs before Submit returns). Thread-safe: one mutex guards
// every record, held for the whole of a request (so a Recover2's guess is counted before
// its evaluation is released).
class InMemoryRealm : public vault::RealmService {
 public:
  // RecordState is the state of one user's record (PROTOCOL-NOTES (f)).
  enum class RecordState { kNotRegistered, kRegistered, kNoGuesses };

  // InMemoryRealm makes an empty realm with id `id` (used in messages only; the realm
  // never needs its own id for the protocol).
  explicit InMemoryRealm(protocol::RealmId id) : id_(id) {}

  const protocol::RealmId& id() const { return id_; }

  // Submit applies `request` to the record of `context` and calls `done` inline. Errors
  // (nothing changes): UNAVAILABLE while SetUnavailable(true); INVALID_ARGUMENT for a
  // Register2 with a non-canonical scalar, or a Recover2 whose blinded input is not a
  // valid ristretto255 point.
  void Submit(vault::RequestContext context, protocol::SecretsRequest request,
              vault::ResponseCallback done) override;

  // Ready is OK unless SetUnavailable(true).
  Status Ready() const override;

  // Handle is Submit as a function call.
  StatusOr<protocol::SecretsResponse> Handle(const vault::RequestContext& context,
                                             protocol::SecretsRequest request);

  // SetUnavailable makes every Submit fail with UNAVAILABLE (storage or HSM gone) until
  // cleared.
  void SetUnavailable(bool unavailable);

  // State returns the state of `context`'s record.
  RecordState State(const vault::RequestContext& context) const;

  // GuessCount returns the record's guess_count, or nullopt unless it is Registered.
  std::optional<uint16_t> GuessCount(const vault::RequestContext& context) const;

  // RegisteredVersion returns the record's version, or nullopt unless it is Registered.
  std::optional<protocol::RegistrationVersion> RegisteredVersion(
      const vault::RequestContext& context) const;

 private:
  using Key = std::pair<std::string, std::string>;  // (tenant, user)

  StatusOr<protocol::SecretsResponse> Apply(const Key& key, protocol::SecretsRequest request);

  const protocol::RealmId id_;
  mutable std::mutex mu_;
  std::map<Key, vault::Record> records_;  // guarded by mu_; absent = NotRegistered
  bool unavailable_ = false;              // guarded by mu_
};

// FixedTokenProvider hands every realm the same token, except realms told to fail.
// Thread-safe.
class FixedTokenProvider : public backup::AuthTokenProvider {
 public:
  explicit FixedTokenProvider(std::string token) : token_(std::move(token)) {}

  StatusOr<std::string> GetToken(const protocol::RealmId& realm) override;

  // SetToken changes the token handed out from now on.
  void SetToken(std::string token);

  // FailFor makes GetToken fail (UNAVAILABLE) for `realm`.
  void FailFor(const protocol::RealmId& realm);

 private:
  mutable std::mutex mu_;
  std::string token_;                    // guarded by mu_
  std::set<protocol::RealmId> failing_;  // guarded by mu_
};

// InMemoryTransport routes each request to the RealmService registered for the realm id,
// acting for tenant kTenant and the user named by the auth token (the token *is* the user
// id; an empty or rejected token gets kInvalidAuth). A RealmService error status becomes
// kTransient, as an HTTP 5xx or 400 would. Knobs per realm simulate faults.
//
// By default requests are handled inline, so `done` runs before Send returns. With
// SetAsynchronous(true) each request is handled on one of the transport's worker threads.
// A held request (SetHold) is handled only when released, on the releasing thread. On
// destruction, requests still held are answered kTransient ("transport shut down") and the
// workers finish their queue. Thread-safe.
class InMemoryTransport : public backup::Transport {
 public:
  static constexpr std::string_view kTenant = "test-tenant";

  // ResponseMutator edits a realm's response before it is delivered (to corrupt a field,
  // report another version, ...).
  using ResponseMutator = std::function<void(protocol::SecretsResponse&)>;

  InMemoryTransport() = default;
  ~InMemoryTransport() override;
  InMemoryTransport(const InMemoryTransport&) = delete;
  InMemoryTransport& operator=(const InMemoryTransport&) = delete;

  // AddRealm routes requests for `id` to `service`. A request for an unknown realm gets
  // kTransient ("no route").
  void AddRealm(const protocol::RealmId& id, std::shared_ptr<vault::RealmService> service);

  void Send(const backup::RealmEndpoint& realm, const std::string& auth_token,
            protocol::SecretsRequest request, TransportCallback done) override;

  // SetAsynchronous switches between inline handling and worker threads (`threads` of
  // them, started on first use).
  void SetAsynchronous(bool asynchronous, int threads = 4);

  // SetDown makes every request to `id` fail with kTransient without reaching the realm.
  void SetDown(const protocol::RealmId& id, bool down);

  // FailNext makes the next `count` requests to `id` fail with `kind` without reaching the
  // realm (later requests go through).
  void FailNext(const protocol::RealmId& id, int count,
                backup::TransportErrorKind kind = backup::TransportErrorKind::kTransient);

  // SetFailure makes every request to `id` fail with `kind` (nullopt clears it).
  void SetFailure(const protocol::RealmId& id, std::optional<backup::TransportErrorKind> kind);

  // SetHold(true) parks requests to `id` unhandled until ReleaseHeld; SetHold(false) stops
  // parking new ones (already parked ones stay parked). With `kind` ("Recover2", ...)
  // only requests of that kind are parked; empty means every kind.
  void SetHold(const protocol::RealmId& id, bool hold, std::string_view kind = "");

  // ReleaseHeld handles the parked requests of `id` now, in order, on the calling thread,
  // and returns how many there were.
  size_t ReleaseHeld(const protocol::RealmId& id);

  // HeldCount returns how many requests to `id` are parked.
  size_t HeldCount(const protocol::RealmId& id) const;

  // SetResponseMutator installs (or, with nullptr, removes) `mutator` for `id`'s responses.
  void SetResponseMutator(const protocol::RealmId& id, ResponseMutator mutator);

  // SetReportedVersion makes `id` report `version` in its Recover1 Ok answers instead of
  // the one it holds (nullopt restores the truth). Applied before any ResponseMutator.
  void SetReportedVersion(const protocol::RealmId& id,
                          std::optional<protocol::RegistrationVersion> version);

  // RejectToken makes every request carrying `token` fail with kInvalidAuth.
  void RejectToken(std::string token);

  // RequestCount returns how many requests of kind `kind` ("Register1" ... "Delete") were
  // sent to `id` (every attempt counts, including failed and held ones).
  size_t RequestCount(const protocol::RealmId& id, std::string_view kind) const;

  // TotalRequests returns how many requests were sent to `id`.
  size_t TotalRequests(const protocol::RealmId& id) const;

 private:
  struct Pending {
    backup::RealmEndpoint realm;
    std::string token;
    protocol::SecretsRequest request;
    TransportCallback done;
  };
  struct RealmKnobs {
    std::shared_ptr<vault::RealmService> service;
    bool down = false;
    int fail_next = 0;
    backup::TransportErrorKind fail_next_kind = backup::TransportErrorKind::kTransient;
    std::optional<backup::TransportErrorKind> failure;
    bool hold = false;
    std::string hold_kind;  // empty: every kind
    std::deque<Pending> held;
    ResponseMutator mutator;
    std::optional<protocol::RegistrationVersion> reported_version;
    std::map<std::string, size_t, std::less<>> counts;
  };

  // Handle runs one request against its realm and calls `done`.
  void Handle(Pending pending);
  void WorkerLoop();

  mutable std::mutex mu_;
  std::map<protocol::RealmId, RealmKnobs> realms_;  // guarded by mu_
  std::set<std::string> rejected_tokens_;           // guarded by mu_
  bool asynchronous_ = false;                       // guarded by mu_
  std::deque<Pending> queue_;                       // guarded by mu_
  bool stopping_ = false;                           // guarded by mu_
  std::condition_variable queue_cv_;
  std::vector<std::thread> workers_;  // started under mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_IN_MEMORY_REALM_H_
