// Authenticator: from an HTTP `Authorization` header and the realm id to a verified caller.
//
// Used by the server for both POST /req (Juicebox SDK) and POST /v1/secrets. Typical use:
//
//   auto keys = TenantKeyStore::LoadConfigured(config.tenant_keys_file, environ, &warnings);
//   std::shared_ptr<TenantKeyStore> store = std::move(*keys);
//   auto auth = std::make_shared<Authenticator>(store);
//   ...
//   StatusOr<AuthenticatedCaller> caller = auth->Authenticate(req[http::field::authorization],
//                                                             realm_id);
//   if (!caller.ok()) -> 401 with caller.status().message()
#ifndef PINVAULT_API_AUTH_AUTHENTICATOR_H_
#define PINVAULT_API_AUTH_AUTHENTICATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/auth/jwt.h"
#include "api/auth/tenant_keys.h"
#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::api {

// AuthenticatedCaller: who a verified token speaks for.
struct AuthenticatedCaller {
  std::string tenant;      // JWT iss (= kid tenant)
  std::string user;        // JWT sub
  int64_t expires_at = 0;  // JWT exp, Unix seconds
  uint64_t key_version = 0;
};

// Authenticator checks bearer tokens. Thread-safe; share one per server.
class Authenticator {
 public:
  // Authenticator validates against `keys` (which may be reloaded in place by its owner)
  // with `clock` (null means the system clock) and `options` for the token cache.
  Authenticator(std::shared_ptr<const TenantKeyStore> keys, UnixSecondsClock clock,
                JwtValidator::Options options);
  explicit Authenticator(std::shared_ptr<const TenantKeyStore> keys)
      : Authenticator(std::move(keys), nullptr, JwtValidator::Options()) {}

  // Authenticate parses `authorization` (the header's value; empty when absent) as
  // "Bearer <token>" (scheme case-insensitive, one or more spaces) and validates the token
  // for `realm_id` (16 bytes). UNAUTHENTICATED: "missing Authorization header",
  // "Authorization header is not a Bearer token", "empty bearer token", or the JWT check
  // that failed ("jwt: ...").
  StatusOr<AuthenticatedCaller> Authenticate(std::string_view authorization,
                                             ByteView realm_id) const;

  // validator exposes the underlying validator (cache statistics).
  const JwtValidator& validator() const { return validator_; }

 private:
  JwtValidator validator_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_AUTH_AUTHENTICATOR_H_
