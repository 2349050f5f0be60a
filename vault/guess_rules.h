// guess_rules.h: the Juicebox guess rules (PROTOCOL-NOTES (f)) as one pure function of
// (request, record) -> (response, next record). No I/O, no threads, no clock: the realm
// (vault/realm.h) wraps it with storage, sealing and ordering, and the in-memory test realm
// (tests/testing/in_memory_realm.h) with a map. There is no other copy of these rules.
//
//   Register1  any                     -> Ok, no record needed
//   Register2  any                     -> Ok; overwrite: Registered, guess_count 0
//   Recover1   Registered, gc >= limit -> NoGuesses; record becomes NoGuesses (secrets gone)
//              Registered              -> Ok{version}
//              NoGuesses / absent      -> NoGuesses / NotRegistered
//   Recover2   Registered, wrong ver.  -> VersionMismatch (checked before the guess check)
//              Registered, gc >= limit -> NoGuesses; record becomes NoGuesses
//              Registered              -> gc += 1 (the caller makes it durable BEFORE it
//                                         releases the evaluation);
//                                         Ok{signed key, W, DLEQ proof, commitment, limit, gc}
//              NoGuesses / absent      -> NoGuesses / NotRegistered
//   Recover3   Registered, wrong ver.  -> VersionMismatch
//              Registered, bad tag     -> BadUnlockKeyTag{limit - gc}; at 0 -> NoGuesses
//              Registered, good tag    -> Ok{share, encrypted secret, commitment}; gc = 0
//              NoGuesses / absent      -> NoGuesses / NotRegistered
//   Delete     any                     -> Ok; record becomes Absent (no write if already so)
// Tags are compared in constant time. Every Recover3 on a Registered record yields a next
// record (rewritten unchanged on a bad tag with guesses left), so storage cannot tell a good
// tag from a bad one by whether a write happened.
#ifndef PINVAULT_VAULT_GUESS_RULES_H_
#define PINVAULT_VAULT_GUESS_RULES_H_

#include <optional>

#include "vault/protocol/messages.h"
#include "vault/record.h"
#include "vault/status.h"

namespace pinvault::vault {

// ValidateRequest checks what must be rejected before any record is touched: Register2's
// scalars canonical, Recover2's blinded input a valid point. INVALID_ARGUMENT otherwise.
Status ValidateRequest(const protocol::SecretsRequest& request);

// NeedsRecord is false for the requests the rules answer without reading a record
// (Register1).
bool NeedsRecord(const protocol::SecretsRequest& request);

// GuessStep is the outcome of one request on one record: the response, and the record to
// write (nullopt: nothing changes). `next` keeps `current`'s id and version; the caller
// assigns the version of the write.
struct GuessStep {
  protocol::SecretsResponse response;
  std::optional<Record> next;
};

// ApplyGuessRules applies the table above to `current` (an Absent record when none exists).
// It consumes `current` and the secrets of `request` (they move into the next record or the
// response). `request` must have passed ValidateRequest. Errors: INVALID_ARGUMENT from the
// OPRF evaluation of a Recover2 (nothing changes then). Thread-compatible; no side effects.
StatusOr<GuessStep> ApplyGuessRules(Record current, protocol::SecretsRequest& request);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_GUESS_RULES_H_
