#include "tests/testing/in_memory_realm.h"

#include <utility>

#include "vault/guess_rules.h"

namespace pinvault::testing {

using protocol::SecretsRequest;
using protocol::SecretsResponse;

void InMemoryRealm::Submit(vault::RequestContext context, SecretsRequest request,
                           vault::ResponseCallback done) {
  done(Apply(Key{std::move(context.tenant), std::move(context.user)}, std::move(request)));
}

Status InMemoryRealm::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (unavailable_) return UnavailableError("in-memory realm set unavailable");
  return OkStatus();
}

StatusOr<SecretsResponse> InMemoryRealm::Handle(const vault::RequestContext& context,
                                                SecretsRequest request) {
  std::optional<StatusOr<SecretsResponse>> out;
  Submit(context, std::move(request),
         [&out](StatusOr<SecretsResponse> response) { out.emplace(std::move(response)); });
  return std::move(*out);
}

void InMemoryRealm::SetUnavailable(bool unavailable) {
  std::lock_guard<std::mutex> lock(mu_);
  unavailable_ = unavailable;
}

InMemoryRealm::RecordState InMemoryRealm::State(const vault::RequestContext& context) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(Key{context.tenant, context.user});
  if (it == records_.end()) return RecordState::kNotRegistered;
  switch (it->second.state) {
    case vault::RecordState::kRegistered:
      return RecordState::kRegistered;
    case vault::RecordState::kNoGuesses:
      return RecordState::kNoGuesses;
    case vault::RecordState::kAbsent:
      break;
  }
  return RecordState::kNotRegistered;
}

std::optional<uint16_t> InMemoryRealm::GuessCount(const vault::RequestContext& context) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(Key{context.tenant, context.user});
  if (it == records_.end() || !it->second.registration) return std::nullopt;
  return it->second.guess_count;
}

std::optional<protocol::RegistrationVersion> InMemoryRealm::RegisteredVersion(
    const vault::RequestContext& context) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(Key{context.tenant, context.user});
  if (it == records_.end() || !it->second.registration) return std::nullopt;
  return it->second.registration->version;
}

StatusOr<SecretsResponse> InMemoryRealm::Apply(const Key& key, SecretsRequest request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unavailable_) return UnavailableError("in-memory realm set unavailable");
  RETURN_IF_ERROR(vault::ValidateRequest(request));
  vault::Record current;
  if (vault::NeedsRecord(request)) {
    auto it = records_.find(key);
    if (it != records_.end()) current = vault::CloneRecord(it->second);
  }
  ASSIGN_OR_RETURN(vault::GuessStep step, vault::ApplyGuessRules(std::move(current), request));
  if (step.next) records_[key] = std::move(*step.next);
  return std::move(step.response);
}

// ---- FixedTokenProvider ----

StatusOr<std::string> FixedTokenProvider::GetToken(const protocol::RealmId& realm) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failing_.count(realm) != 0) {
    return UnavailableError("token provider set to fail for realm " + backup::RealmIdHex(realm));
  }
  return token_;
}

void FixedTokenProvider::SetToken(std::string token) {
  std::lock_guard<std::mutex> lock(mu_);
  token_ = std::move(token);
}

void FixedTokenProvider::FailFor(const protocol::RealmId& realm) {
  std::lock_guard<std::mutex> lock(mu_);
  failing_.insert(realm);
}

// ---- InMemoryTransport ----

InMemoryTransport::~InMemoryTransport() {
  std::vector<Pending> orphans;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [id, knobs] : realms_) {
      for (Pending& pending : knobs.held) orphans.push_back(std::move(pending));
      knobs.held.clear();
    }
  }
  queue_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  for (Pending& pending : orphans) {
    pending.done(
        backup::TransportError{backup::TransportErrorKind::kTransient, "transport shut down"});
  }
}

void InMemoryTransport::AddRealm(const protocol::RealmId& id,
                                 std::shared_ptr<vault::RealmService> service) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].service = std::move(service);
}

void InMemoryTransport::Send(const backup::RealmEndpoint& realm, const std::string& auth_token,
                             SecretsRequest request, TransportCallback done) {
  Pending pending{realm, auth_token, std::move(request), std::move(done)};
  std::optional<backup::TransportError> failure;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RealmKnobs& knobs = realms_[realm.id];
    const std::string_view kind = protocol::RequestKindName(pending.request);
    ++knobs.counts[std::string(kind)];
    if (knobs.service == nullptr) {
      failure = backup::TransportError{backup::TransportErrorKind::kTransient, "no route"};
    } else if (knobs.down) {
      failure = backup::TransportError{backup::TransportErrorKind::kTransient, "realm down"};
    } else if (knobs.fail_next > 0) {
      --knobs.fail_next;
      failure = backup::TransportError{knobs.fail_next_kind, "injected failure"};
    } else if (knobs.failure) {
      failure = backup::TransportError{*knobs.failure, "injected failure"};
    } else if (knobs.hold && (knobs.hold_kind.empty() || knobs.hold_kind == kind)) {
      knobs.held.push_back(std::move(pending));
      return;
    } else if (asynchronous_) {
      queue_.push_back(std::move(pending));
      queue_cv_.notify_one();
      return;
    }
  }
  if (failure) {
    pending.done(std::move(*failure));
    return;
  }
  Handle(std::move(pending));
}

void InMemoryTransport::Handle(Pending pending) {
  std::shared_ptr<vault::RealmService> service;
  ResponseMutator mutator;
  std::optional<protocol::RegistrationVersion> reported_version;
  bool rejected = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RealmKnobs& knobs = realms_[pending.realm.id];
    service = knobs.service;
    mutator = knobs.mutator;
    reported_version = knobs.reported_version;
    rejected = pending.token.empty() || rejected_tokens_.count(pending.token) != 0;
  }
  if (rejected) {
    pending.done(backup::TransportError{backup::TransportErrorKind::kInvalidAuth, "HTTP 401"});
    return;
  }
  std::optional<StatusOr<SecretsResponse>> answer;
  service->Submit(
      vault::RequestContext{std::string(kTenant), pending.token}, std::move(pending.request),
      [&answer](StatusOr<SecretsResponse> response) { answer.emplace(std::move(response)); });
  if (!answer.has_value()) {
    // This transport only supports services that answer inline.
    pending.done(backup::TransportError{backup::TransportErrorKind::kTransient,
                                        "realm service did not answer inline"});
    return;
  }
  if (!answer->ok()) {
    pending.done(backup::TransportError{
        backup::TransportErrorKind::kTransient,
        "realm error " + std::string(StatusCodeName(answer->status().code()))});
    return;
  }
  SecretsResponse response = std::move(*answer).value();
  if (auto* r1 = std::get_if<protocol::Recover1Response>(&response);
      r1 != nullptr && reported_version && r1->status == protocol::Recover1Response::Status::kOk) {
    r1->version = *reported_version;
  }
  if (mutator) mutator(response);
  pending.done(std::move(response));
}

void InMemoryTransport::SetAsynchronous(bool asynchronous, int threads) {
  std::lock_guard<std::mutex> lock(mu_);
  asynchronous_ = asynchronous;
  if (asynchronous && workers_.empty()) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
}

void InMemoryTransport::WorkerLoop() {
  while (true) {
    Pending pending;
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      pending = std::move(queue_.front());
      queue_.pop_front();
    }
    Handle(std::move(pending));
  }
}

void InMemoryTransport::SetDown(const protocol::RealmId& id, bool down) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].down = down;
}

void InMemoryTransport::FailNext(const protocol::RealmId& id, int count,
                                 backup::TransportErrorKind kind) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].fail_next = count;
  realms_[id].fail_next_kind = kind;
}

void InMemoryTransport::SetFailure(const protocol::RealmId& id,
                                   std::optional<backup::TransportErrorKind> kind) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].failure = kind;
}

void InMemoryTransport::SetHold(const protocol::RealmId& id, bool hold, std::string_view kind) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].hold = hold;
  realms_[id].hold_kind = std::string(kind);
}

size_t InMemoryTransport::ReleaseHeld(const protocol::RealmId& id) {
  std::deque<Pending> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held.swap(realms_[id].held);
  }
  const size_t count = held.size();
  for (Pending& pending : held) Handle(std::move(pending));
  return count;
}

size_t InMemoryTransport::HeldCount(const protocol::RealmId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = realms_.find(id);
  return it == realms_.end() ? 0 : it->second.held.size();
}

void InMemoryTransport::SetResponseMutator(const protocol::RealmId& id, ResponseMutator mutator) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].mutator = std::move(mutator);
}

void InMemoryTransport::SetReportedVersion(const protocol::RealmId& id,
                                           std::optional<protocol::RegistrationVersion> version) {
  std::lock_guard<std::mutex> lock(mu_);
  realms_[id].reported_version = version;
}

void InMemoryTransport::RejectToken(std::string token) {
  std::lock_guard<std::mutex> lock(mu_);
  rejected_tokens_.insert(std::move(token));
}

size_t InMemoryTransport::RequestCount(const protocol::RealmId& id, std::string_view kind) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = realms_.find(id);
  if (it == realms_.end()) return 0;
  auto count = it->second.counts.find(kind);
  return count == it->second.counts.end() ? 0 : count->second;
}

size_t InMemoryTransport::TotalRequests(const protocol::RealmId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = realms_.find(id);
  if (it == realms_.end()) return 0;
  size_t total = 0;
  for (const auto& [kind, count] : it->second.counts) total += count;
  return total;
}

}  // namespace pinvault::testing
