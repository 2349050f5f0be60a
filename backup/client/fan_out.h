// FanOut: sends one request to each of several realms at once and hands the answers back,
// one at a time and in arrival order, to the thread that owns it. The client's flows are
// written as loops over FanOut::Next that stop as soon as they have enough consistent
// answers; answers still in flight then are dropped when they arrive.
//
// Retrying: a request whose transport result is kTransient is sent again after
// RetryPolicy::delay, up to RetryPolicy::max_attempts attempts in total (the SDK makes 2,
// 5 ms apart). The retry is sent from the owning thread while it waits in Next, so a
// FanOut that is no longer waited on sends nothing more.
#ifndef PINVAULT_BACKUP_CLIENT_FAN_OUT_H_
#define PINVAULT_BACKUP_CLIENT_FAN_OUT_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/client/realm_endpoint.h"
#include "backup/client/transport.h"
#include "vault/protocol/messages.h"

namespace pinvault::backup {

// RetryPolicy bounds the retries of requests that failed with kTransient.
struct RetryPolicy {
  int max_attempts = 2;                // attempts in total, at least 1
  std::chrono::milliseconds delay{5};  // between an attempt's failure and the next
};

// CloneRequest returns a deep copy of `request` (Register2's key shares are copied into new
// secure memory). Used to resend a request.
protocol::SecretsRequest CloneRequest(const protocol::SecretsRequest& request);

// FanOut: see the file comment. Not thread-safe: one thread calls Start and Next. The
// transport's callbacks may run on any thread; they only queue the result. Destroying a
// FanOut abandons the calls still outstanding (their results are discarded when they
// arrive; the shared state lives until the last callback has run).
class FanOut {
 public:
  // Arrival is one finished call: the slot Start returned, the final result (after any
  // retries) and how many attempts were made (0 if no token could be had).
  struct Arrival {
    size_t slot = 0;
    TransportResult result;
    int attempts = 0;
  };

  // FanOut sends through `transport` (kept alive while calls are outstanding), asking
  // `tokens` for a realm's token once per call. `tokens` must outlive the FanOut.
  FanOut(std::shared_ptr<Transport> transport, AuthTokenProvider& tokens, RetryPolicy policy);
  ~FanOut();

  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  // Start sends `request` to `realm` and returns its slot: 0 for the first Start, 1 for
  // the next, and so on. If the token provider fails, the call finishes at once with a
  // kInvalidAuth TransportError (the provider's message as detail) and nothing is sent.
  size_t Start(const RealmEndpoint& realm, protocol::SecretsRequest request);

  // Next blocks until another call has finished and returns it; nullopt once every
  // started call has been returned. Sends retries that fall due while it waits.
  std::optional<Arrival> Next();

  // outstanding returns how many started calls Next has not returned yet.
  size_t outstanding() const { return started_ - returned_; }

 private:
  struct Shared;
  struct Call;

  void SendAttempt(size_t slot);

  std::shared_ptr<Transport> transport_;
  AuthTokenProvider& tokens_;
  RetryPolicy policy_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Call>> calls_;
  size_t started_ = 0;
  size_t returned_ = 0;
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_FAN_OUT_H_
