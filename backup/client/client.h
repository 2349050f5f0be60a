// Client: registers, recovers and deletes a PIN-protected secret across the realms of a
// Configuration, speaking the Juicebox protocol (PROTOCOL-NOTES "Client flows").
//
//   register: Register1 to every realm; then Register2 (each realm's shares, tag and
//             commitments) to every realm; OK once register_threshold realms accept.
//   recover:  Recover1 to every realm until recover_threshold agree on a version;
//             Recover2 (a blinded OPRF input) to that group: every answer's signature and
//             DLEQ proof are checked, answers are grouped by (unlock-key commitment,
//             verifying key) until t agree; the combined OPRF output must match the
//             commitment, or the PIN was wrong (InvalidPin, no Recover3 is sent);
//             Recover3 (per-realm unlock-key tags) to the group: answers whose
//             encrypted-secret commitment does not check out are dropped, the rest grouped
//             by encrypted secret until t agree; their scalar shares give the key.
//             NotRegistered on the current configuration falls back to the previous ones,
//             in order.
//   delete:   Delete to every realm; every realm must accept.
//
// Requests of a step go out to all its realms at once and a step ends as soon as its
// outcome is decided: it does not wait for a slow realm once enough consistent answers
// are in (late answers are discarded). Transient failures are retried (RetryPolicy).
// When a step fails, the error reported is the first in ErrorKind order among the realms'
// errors (see result.h), as the SDK does.
//
// Only software realms are supported (no realm may have a public_key).
#ifndef PINVAULT_BACKUP_CLIENT_CLIENT_H_
#define PINVAULT_BACKUP_CLIENT_CLIENT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "backup/client/configuration.h"
#include "backup/client/fan_out.h"
#include "backup/client/result.h"
#include "backup/client/transport.h"
#include "vault/bytes.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::backup {

// ClientOptions tunes the client; the defaults are the SDK's behaviour.
struct ClientOptions {
  RetryPolicy retry;
};

// Client: see the file comment. Thread-safe: its state is immutable, so several
// operations may run at once from different threads (each blocks its calling thread).
class Client {
 public:
  // Create builds a client for `configuration`, falling back on `previous_configurations`
  // (most recent first) when recovering a user not registered in the current one.
  // `transport` and `tokens` are shared with in-flight requests and must be non-null.
  // INVALID_ARGUMENT for a null transport or token provider; UNIMPLEMENTED if a
  // configuration lists a hardware realm (one with a public_key).
  static StatusOr<std::unique_ptr<Client>> Create(
      Configuration configuration, std::vector<Configuration> previous_configurations,
      std::shared_ptr<Transport> transport, std::shared_ptr<AuthTokenProvider> tokens,
      ClientOptions options = {});

  // Register stores `secret` (at most 128 bytes) protected by `pin` on the current
  // configuration's realms, replacing any earlier registration there; `info` (public,
  // e.g. a user id, may be empty) is mixed into the PIN hash; `num_guesses` (>= 1) is how
  // many wrong PINs the realms allow. Errors: kInvalidArgument for a bad argument (nothing
  // sent), else the realms' errors (InvalidAuth, UpgradeRequired, RateLimited, Assertion,
  // Transient). Blocks until decided.
  RegisterResult Register(const SecretBytes& pin, const SecretBytes& secret, ByteView info,
                          uint16_t num_guesses) const;

  // Recover returns the secret registered with `pin` and `info`. A wrong PIN is
  // kInvalidPin with the guesses left (0 when none are); kNotRegistered when neither the
  // current nor any previous configuration holds a registration; otherwise the realms'
  // errors as for Register. Blocks until decided.
  RecoverResult Recover(const SecretBytes& pin, ByteView info) const;

  // Delete removes the registration from every realm of the current configuration.
  // Succeeds only if every realm accepts; otherwise the error of the first failing realm
  // in realm-id order. Blocks until every realm has answered.
  DeleteResult Delete() const;

  // configuration returns the current configuration.
  const Configuration& configuration() const { return configuration_; }

  // previous_configurations returns the fallback configurations, most recent first.
  const std::vector<Configuration>& previous_configurations() const {
    return previous_configurations_;
  }

 private:
  Client(Configuration configuration, std::vector<Configuration> previous_configurations,
         std::shared_ptr<Transport> transport, std::shared_ptr<AuthTokenProvider> tokens,
         ClientOptions options)
      : configuration_(std::move(configuration)),
        previous_configurations_(std::move(previous_configurations)),
        transport_(std::move(transport)),
        tokens_(std::move(tokens)),
        options_(options) {}

  RecoverResult RecoverWith(const Configuration& configuration, const SecretBytes& pin,
                            ByteView info) const;

  Configuration configuration_;
  std::vector<Configuration> previous_configurations_;
  std::shared_ptr<Transport> transport_;
  std::shared_ptr<AuthTokenProvider> tokens_;
  ClientOptions options_;
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_CLIENT_H_
