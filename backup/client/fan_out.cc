#include "backup/client/fan_out.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <span>
#include <utility>

#include "vault/secret_bytes.h"

namespace pinvault::backup {

using Clock = std::chrono::steady_clock;

protocol::SecretsRequest CloneRequest(const protocol::SecretsRequest& request) {
  if (const auto* r2 = std::get_if<protocol::Register2Request>(&request)) {
    protocol::Register2Request copy;
    copy.version = r2->version;
    copy.oprf_private_key = r2->oprf_private_key.Clone();
    copy.oprf_signed_public_key = r2->oprf_signed_public_key;
    copy.unlock_key_commitment = r2->unlock_key_commitment;
    copy.unlock_key_tag = r2->unlock_key_tag;
    copy.encryption_key_scalar_share = r2->encryption_key_scalar_share.Clone();
    copy.encrypted_secret = r2->encrypted_secret;
    copy.encrypted_secret_commitment = r2->encrypted_secret_commitment;
    copy.policy = r2->policy;
    return copy;
  }
  // Every other request is made of plain arrays and copies as it is.
  return std::visit(
      [](const auto& value) -> protocol::SecretsRequest {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_copy_constructible_v<T>) {
          return T(value);
        } else {
          return protocol::SecretsRequest();  // unreachable: Register2 handled above
        }
      },
      request);
}

// Shared: what the transport's callbacks touch. Outlives the FanOut while callbacks are
// pending.
struct FanOut::Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<size_t, TransportResult>> inbox;  // guarded by mu
};

// Call: one realm's request, owned by the FanOut's thread.
struct FanOut::Call {
  enum class State { kInFlight, kRetryWaiting, kDone };
  RealmEndpoint realm;
  protocol::SecretsRequest request;
  std::string token;
  int attempts = 0;
  State state = State::kInFlight;
  Clock::time_point retry_at{};
};

FanOut::FanOut(std::shared_ptr<Transport> transport, AuthTokenProvider& tokens, RetryPolicy policy)
    : transport_(std::move(transport)),
      tokens_(tokens),
      policy_(policy),
      shared_(std::make_shared<Shared>()) {
  if (policy_.max_attempts < 1) policy_.max_attempts = 1;
}

FanOut::~FanOut() {
  // Scrub the tokens we held; results still in flight land in `shared_` and are freed with
  // it once the last callback has run.
  for (auto& call : calls_) {
    SecureWipe(
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(call->token.data()), call->token.size()));
  }
}

size_t FanOut::Start(const RealmEndpoint& realm, protocol::SecretsRequest request) {
  const size_t slot = calls_.size();
  auto call = std::make_unique<Call>();
  call->realm = realm;
  call->request = std::move(request);
  calls_.push_back(std::move(call));
  ++started_;

  StatusOr<std::string> token = tokens_.GetToken(realm.id);
  if (!token.ok()) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->inbox.emplace_back(slot, TransportError{TransportErrorKind::kInvalidAuth,
                                                     "no auth token: " + token.status().message()});
    return slot;
  }
  calls_[slot]->token = std::move(token).value();
  SendAttempt(slot);
  return slot;
}

void FanOut::SendAttempt(size_t slot) {
  Call& call = *calls_[slot];
  call.state = Call::State::kInFlight;
  ++call.attempts;
  // The callback holds the shared state: if the FanOut is gone by the time it runs, the
  // result lands in an inbox nobody reads and is freed with it.
  std::shared_ptr<Shared> keep = shared_;
  transport_->Send(call.realm, call.token, CloneRequest(call.request),
                   [keep = std::move(keep), slot](TransportResult result) {
                     {
                       std::lock_guard<std::mutex> lock(keep->mu);
                       keep->inbox.emplace_back(slot, std::move(result));
                     }
                     keep->cv.notify_all();
                   });
}

std::optional<FanOut::Arrival> FanOut::Next() {
  while (true) {
    // Send the retries that are due.
    const Clock::time_point now = Clock::now();
    std::optional<Clock::time_point> next_retry;
    for (size_t slot = 0; slot < calls_.size(); ++slot) {
      Call& call = *calls_[slot];
      if (call.state != Call::State::kRetryWaiting) continue;
      if (call.retry_at <= now) {
        SendAttempt(slot);
      } else if (!next_retry || call.retry_at < *next_retry) {
        next_retry = call.retry_at;
      }
    }

    std::unique_lock<std::mutex> lock(shared_->mu);
    if (!shared_->inbox.empty()) {
      auto [slot, result] = std::move(shared_->inbox.front());
      shared_->inbox.pop_front();
      lock.unlock();
      Call& call = *calls_[slot];
      const auto* error = std::get_if<TransportError>(&result);
      if (error != nullptr && error->kind == TransportErrorKind::kTransient && call.attempts > 0 &&
          call.attempts < policy_.max_attempts) {
        call.state = Call::State::kRetryWaiting;
        call.retry_at = Clock::now() + policy_.delay;
        continue;
      }
      call.state = Call::State::kDone;
      ++returned_;
      return Arrival{slot, std::move(result), call.attempts};
    }
    if (returned_ == started_) return std::nullopt;
    auto has_mail = [this] { return !shared_->inbox.empty(); };
    if (next_retry) {
      shared_->cv.wait_until(lock, *next_retry, has_mail);
    } else {
      shared_->cv.wait(lock, has_mail);
    }
  }
}

}  // namespace pinvault::backup
