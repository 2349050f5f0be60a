// JWT validation for the realm: Juicebox auth tokens (`Authorization: Bearer <jwt>`).
//
// The rules match the Juicebox realms' Rust validator:
// - at most 1000 characters; three base64url parts without padding, strictly decoded;
// - header: `kid` = "<tenant>:<version>" (split at the first ':', version decimal u64,
//   tenant ^(test-)?[a-zA-Z0-9]+$); `typ` absent, "JWT" or "*+JWT" (case-insensitive);
//   `alg` exactly the algorithm of the tenant key (HS256, RS256, EdDSA) — "none" and
//   anything else are rejected;
// - the signature verifies under the key of (tenant, version);
// - claims: `exp` and `nbf` required with exp - nbf <= 86400; exp >= now - 5,
//   nbf <= now + 5, `iat` (if present) <= now + 5; `iss` equal to the kid's tenant; `sub`
//   a non-empty string (the user id); `aud` a single JSON string equal to the lowercase hex
//   realm id (arrays rejected); `scope` absent or "user" after trimming whitespace.
// Every failure is UNAUTHENTICATED with a message naming the failed check ("jwt: ..."),
// never containing the token.
#ifndef PINVAULT_API_AUTH_JWT_H_
#define PINVAULT_API_AUTH_JWT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/auth/tenant_keys.h"
#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::api {

// UnixSecondsClock returns the current wall-clock time in seconds since the Unix epoch.
// Tests inject a fake; it must be safe to call from several threads.
using UnixSecondsClock = std::function<int64_t()>;

// SystemUnixSecondsClock reads std::chrono::system_clock.
UnixSecondsClock SystemUnixSecondsClock();

inline constexpr size_t kMaxJwtLength = 1000;
inline constexpr int64_t kJwtClockLeewaySeconds = 5;
inline constexpr int64_t kJwtMaxLifetimeSeconds = 86400;

// Base64UrlEncode encodes without padding (RFC 7515 section 2).
std::string Base64UrlEncode(ByteView data);

// Base64UrlDecode decodes strictly: only [A-Za-z0-9_-], no padding, no whitespace, and the
// unused low bits of the last character must be zero. InvalidArgument otherwise.
StatusOr<Bytes> Base64UrlDecode(std::string_view text);

// VerifiedClaims: what a valid token says.
struct VerifiedClaims {
  std::string tenant;                // `iss`, equal to the kid's tenant
  uint64_t key_version = 0;          // the kid's version
  std::string user;                  // `sub`, non-empty
  int64_t expires_at = 0;            // `exp`, Unix seconds
  int64_t not_before = 0;            // `nbf`, Unix seconds
  std::optional<int64_t> issued_at;  // `iat`, when present
};

// JwtValidator verifies tokens against a TenantKeyStore and caches verified tokens.
//
// Cache: keyed by SHA-256(realm id hex, token); holds the verified claims until `exp`
// (re-checked against the clock on every hit), and is dropped whenever the key store's
// generation changes (keys added, removed or reloaded). Bounded: least recently used
// entries are evicted beyond `cache_capacity` (0 disables caching).
// Thread-safe.
class JwtValidator {
 public:
  struct Options {
    size_t cache_capacity = 10000;
  };

  // JwtValidator keeps `keys` (shared with whoever reloads it) and `clock`; a null clock
  // means SystemUnixSecondsClock().
  JwtValidator(std::shared_ptr<const TenantKeyStore> keys, UnixSecondsClock clock, Options options);
  JwtValidator(std::shared_ptr<const TenantKeyStore> keys, UnixSecondsClock clock)
      : JwtValidator(std::move(keys), std::move(clock), Options()) {}
  JwtValidator(const JwtValidator&) = delete;
  JwtValidator& operator=(const JwtValidator&) = delete;

  // Validate checks `token` for the realm `realm_id` (16 bytes). Returns the verified
  // claims, or UNAUTHENTICATED naming the failed check.
  StatusOr<VerifiedClaims> Validate(std::string_view token, ByteView realm_id) const;

  // ValidateUncached is Validate without touching the cache (for tests and tools).
  StatusOr<VerifiedClaims> ValidateUncached(std::string_view token, ByteView realm_id) const;

  // cache_size is the number of cached verified tokens (for tests and metrics).
  size_t cache_size() const;

  // cache_hits counts Validate calls answered from the cache.
  uint64_t cache_hits() const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  struct CacheEntry {
    VerifiedClaims claims;
    std::list<Digest>::iterator lru_position;
  };

  std::shared_ptr<const TenantKeyStore> keys_;
  UnixSecondsClock clock_;
  Options options_;

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<Digest, CacheEntry, DigestHash> cache_;  // guarded by cache_mu_
  mutable std::list<Digest> lru_;          // front = most recent; guarded by cache_mu_
  mutable uint64_t cache_generation_ = 0;  // key-store generation of the cache contents
  mutable uint64_t cache_hits_ = 0;        // guarded by cache_mu_
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_AUTH_JWT_H_
