// `pinvault demo`: a self-contained walk through the protocol against a real realm, and the
// test-token provider the `pinvault` CLI shares with it.
//
// The demo builds a realm exactly as pinvaultd does, in one process and a temporary
// directory: a fresh SoftHSM2 token with the realm keys generated on it (pkcs11/), an SQLite
// record store (backup/store/), the HSM-backed core (vault/realm.h) and the HTTP server with
// JWT auth (api/auth/) on 127.0.0.1, port 0, with a tenant key generated on the fly. The
// client side is the C++ client library over HTTP (api/client/http_transport.h). It then
// registers a secret, shows wrong PINs counting down, recovers the secret (which resets the
// count), shows a second user's backup destroyed by running out of guesses, and deletes.
// Every step checks its outcome; any surprise fails the demo.
#ifndef PINVAULT_API_CMD_DEMO_H_
#define PINVAULT_API_CMD_DEMO_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <ostream>
#include <string>

#include "api/auth/tenant_keys.h"
#include "backup/client/transport.h"
#include "vault/status.h"

namespace pinvault::api {

// DemoOptions tunes RunDemo.
struct DemoOptions {
  // keep_directory leaves the temporary directory (token, database, keys) in place.
  bool keep_directory = false;
};

// RunDemo runs the demo, narrating on `out` and reporting problems on `err`. Returns the
// process exit code: 0 if every step behaved as expected, 1 otherwise. Sets SOFTHSM2_CONF
// for the duration (restoring it afterwards), so it must not run alongside other users of
// SoftHSM2 in the same process.
int RunDemo(const DemoOptions& options, std::ostream& out, std::ostream& err);

// MintTokenProvider hands each realm a JWT signed with a tenant key it holds (the SDK's
// generator shape: kid "<tenant>:<version>", iss = tenant, sub = user, aud = the realm id
// in lowercase hex, valid for `lifetime_seconds` from now). For tests and demos only: real
// clients get tokens from their tenant's backend. Tokens are minted once per realm and
// reused. Thread-safe.
class MintTokenProvider : public backup::AuthTokenProvider {
 public:
  // MintTokenProvider takes a key that can sign (TenantKey::can_sign).
  MintTokenProvider(TenantKey key, std::string tenant, uint64_t version, std::string user,
                    int64_t lifetime_seconds = 600);

  // GetToken mints (or returns the cached) token for `realm`; the MintJwt error otherwise.
  StatusOr<std::string> GetToken(const protocol::RealmId& realm) override;

 private:
  const TenantKey key_;
  const std::string tenant_;
  const uint64_t version_;
  const std::string user_;
  const int64_t lifetime_seconds_;
  std::mutex mu_;
  std::map<protocol::RealmId, std::string> cache_;  // guarded by mu_
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_CMD_DEMO_H_
