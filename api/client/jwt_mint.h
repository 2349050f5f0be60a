// JWT minting: Juicebox-style auth tokens from a tenant key, for tests, demos,
// `pinvault-admin token mint` and the `pinvault` CLI's test mode. Production tokens come
// from the tenant's own backend.
#ifndef PINVAULT_API_CLIENT_JWT_MINT_H_
#define PINVAULT_API_CLIENT_JWT_MINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "api/auth/tenant_keys.h"
#include "vault/status.h"

namespace pinvault::api {

// JwtMintRequest: the contents of a token to mint.
struct JwtMintRequest {
  std::string tenant;                         // kid tenant and `iss`
  uint64_t version = 1;                       // kid version
  std::string user;                           // `sub`
  std::string realm_id_hex;                   // `aud`, 32 lowercase hex characters
  int64_t issued_at = 0;                      // `iat` and `nbf`, Unix seconds
  int64_t lifetime_seconds = 600;             // `exp` = issued_at + lifetime_seconds
  std::optional<std::string> scope = "user";  // `scope`; nullopt leaves it out
};

// MintJwt signs a token with header {"alg": <key's>, "kid": "<tenant>:<version>",
// "typ": "JWT"} and claims iat, exp, nbf, iss, sub, aud, scope (the SDK's generator's
// shape). InvalidArgument for a bad tenant name, an empty user, a realm id that is not 32
// lowercase hex characters or a lifetime outside 1..86400; FailedPrecondition if the key
// cannot sign.
StatusOr<std::string> MintJwt(const TenantKey& key, const JwtMintRequest& request);

// SignJwtParts builds base64url(header_json) "." base64url(claims_json) "." signature with
// `key`, taking both JSON texts verbatim (no checks: the header's `alg` need not match the
// key). For tests that need malformed or hostile tokens. FailedPrecondition if the key
// cannot sign.
StatusOr<std::string> SignJwtParts(const TenantKey& key, std::string_view header_json,
                                   std::string_view claims_json);

}  // namespace pinvault::api

#endif  // PINVAULT_API_CLIENT_JWT_MINT_H_
