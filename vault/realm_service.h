// RealmService: how the outside world (the HTTP server, tests) hands a decoded protocol
// request to a realm and gets the response back.
//
// The HSM-backed core (vault/realm.h) implements it; tests may implement it in memory.
// Authentication happens before Submit: `tenant` and `user` come from a verified token.
#ifndef PINVAULT_VAULT_REALM_SERVICE_H_
#define PINVAULT_VAULT_REALM_SERVICE_H_

#include <functional>
#include <string>

#include "vault/protocol/messages.h"
#include "vault/status.h"

namespace pinvault::vault {

// RequestContext names the record a request acts on. Both fields come from a verified auth
// token (tenant = JWT iss, user = JWT sub); the realm maps them to an opaque record id.
struct RequestContext {
  std::string tenant;
  std::string user;
};

using ResponseCallback = std::function<void(StatusOr<protocol::SecretsResponse>)>;

class RealmService {
 public:
  virtual ~RealmService() = default;

  // Submit processes `request` against the record of `context` and calls `done` exactly
  // once, possibly on another thread, and only after any state change it made is durable.
  // A protocol outcome (NotRegistered, NoGuesses, BadUnlockKeyTag, ...) is an OK response.
  // Errors change nothing: UNAVAILABLE (HSM or storage unreachable), FAILED_PRECONDITION
  // (the realm is not serving, e.g. its anchor check failed), INVALID_ARGUMENT (malformed
  // request content such as a non-canonical point or scalar), DATA_LOSS (a stored record
  // failed authentication). Thread-safe.
  virtual void Submit(RequestContext context, protocol::SecretsRequest request,
                      ResponseCallback done) = 0;

  // Ready is OK while the realm can serve, otherwise the reason (for /readyz).
  virtual Status Ready() const = 0;
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_REALM_SERVICE_H_
