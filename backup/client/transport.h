// How the client reaches realms: an auth-token provider and an asynchronous
// request/response call per realm.
//
// The client library never speaks HTTP itself. An implementation for the Juicebox
// software-realm endpoint (CBOR over `POST <address>/req`, PROTOCOL-NOTES g.1) lives in
// api/; tests route requests to in-memory realms (tests/testing/in_memory_realm.h).
//
// Header-only so that transports and test fixtures can implement it without linking the
// client library.
#ifndef PINVAULT_BACKUP_CLIENT_TRANSPORT_H_
#define PINVAULT_BACKUP_CLIENT_TRANSPORT_H_

#include <functional>
#include <string>
#include <string_view>
#include <variant>

#include "backup/client/realm_endpoint.h"
#include "vault/protocol/messages.h"
#include "vault/status.h"

namespace pinvault::backup {

// TransportErrorKind: why a request got no protocol answer. The HTTP mapping is the
// SDK's: 401 -> kInvalidAuth, 426 -> kUpgradeRequired, 429 -> kRateLimited, a network
// failure, timeout or any other status -> kTransient (unless the body of a non-2xx answer
// decodes as a SecretsResponse, which is then a response), and a 2xx body that does not
// decode as a SecretsResponse -> kMalformedResponse.
enum class TransportErrorKind {
  kInvalidAuth,
  kUpgradeRequired,
  kRateLimited,
  kTransient,
  kMalformedResponse,
};

// TransportErrorKindName returns "InvalidAuth", "UpgradeRequired", "RateLimited",
// "Transient" or "MalformedResponse".
inline std::string_view TransportErrorKindName(TransportErrorKind kind) {
  switch (kind) {
    case TransportErrorKind::kInvalidAuth:
      return "InvalidAuth";
    case TransportErrorKind::kUpgradeRequired:
      return "UpgradeRequired";
    case TransportErrorKind::kRateLimited:
      return "RateLimited";
    case TransportErrorKind::kTransient:
      return "Transient";
    case TransportErrorKind::kMalformedResponse:
      return "MalformedResponse";
  }
  return "Unknown";
}

// TransportError: a failed request. `detail` is for people and logs (e.g. "HTTP 503",
// "connection refused"); it must never contain the auth token or request contents.
struct TransportError {
  TransportErrorKind kind = TransportErrorKind::kTransient;
  std::string detail;
};

// TransportResult: the realm's decoded answer, or why there is none.
using TransportResult = std::variant<protocol::SecretsResponse, TransportError>;

// AuthTokenProvider hands out the bearer token for a realm (a JWT whose `aud` is the realm
// id in lowercase hex). Tokens are credentials: implementations and callers never log
// them or put them in Status messages.
class AuthTokenProvider {
 public:
  virtual ~AuthTokenProvider() = default;

  // GetToken returns the token to present to realm `realm`. Any error makes the client
  // treat that realm as InvalidAuth (as the SDK does when no token is available); the
  // status message may be shown to people, so it must not contain a token. May block
  // (e.g. to ask the tenant's backend); must be thread-safe.
  virtual StatusOr<std::string> GetToken(const RealmId& realm) = 0;
};

// Transport sends one protocol request to one realm.
class Transport {
 public:
  // TransportCallback receives the outcome of one Send.
  using TransportCallback = std::function<void(TransportResult)>;

  virtual ~Transport() = default;

  // Send delivers `request` to `realm` with `auth_token` and calls `done` exactly once
  // with the decoded response or a TransportError. `done` may run on any thread, and may
  // run before Send returns; it must not be invoked with a lock held that Send or another
  // Send could need. Implementations must bound every request in time (a timeout is
  // kTransient), since the client waits for enough realms to answer. The client does its
  // own retrying; a transport sends each request once. Thread-safe; Send may be called
  // from inside a `done` callback.
  virtual void Send(const RealmEndpoint& realm, const std::string& auth_token,
                    protocol::SecretsRequest request, TransportCallback done) = 0;
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_TRANSPORT_H_
