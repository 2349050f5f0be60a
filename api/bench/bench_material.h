// Registration material for pinvault-bench: complete, consistent Juicebox registrations
// computed before the load starts, so that the generator spends its CPU on moving requests
// and the realm is what gets measured.
//
// A RegistrationPool holds `count` registrations derived deterministically from a seed
// string and the realms' ids (the same seed and realms give the same registrations in
// every run, so a realm populated by one run can be recovered from by the next). User k
// uses registration k mod count; the realm cannot tell, since record ids are HSM MACs of the
// user name and every record is sealed on its own. Each registration is built exactly as the
// client library builds one (backup/client/client.cc BuildRegistration) with FastInsecure
// PIN hashing: Argon2id over the PIN, an OPRF key split into Shamir shares, an Ed25519-signed
// public key share per realm, unlock-key tags, the encrypted secret and its commitments.
//
// For recovery, each registration also holds a blinded OPRF input U = r·H(access key) and,
// per realm, the blinded result W_i = k_i·U that realm must return. Reusing U across
// recoveries leaves the realm's work unchanged (it evaluates and proves for whatever U
// arrives) and lets the generator check an answer by comparing W_i instead of verifying a
// DLEQ proof. FullRecovery does the whole client side instead (fresh blinding, signature
// and proof verification, unblinding, tag derivation, secret decryption) for the sampled
// flows that pinvault-bench verifies end to end.
//
// The encoded request bodies of Register2 and Recover3 answers hold key shares of these
// synthetic registrations; they are wiped when the pool is destroyed.
//
// Thread-safety: a pool is immutable after Create; share it freely.
#ifndef PINVAULT_API_BENCH_MATERIAL_H_
#define PINVAULT_API_BENCH_MATERIAL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/protocol/pin_hash.h"
#include "vault/protocol/shamir.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::api::bench {

// RealmPart: one registration as one realm sees it, with the answers it must give.
struct RealmPart {
  Bytes register2_body;  // CBOR Register2 request (holds this realm's key shares)
  Bytes recover3_body;   // CBOR Recover3 request with this realm's unlock-key tag
  protocol::PointBytes expected_blinded_result{};  // k_i·U for the pool's U
  protocol::UnlockKeyTag tag{};
  protocol::OprfSignedPublicKey signed_public_key;
  protocol::EncryptedSecretCommitment encrypted_secret_commitment{};
  SecretBytes encryption_key_scalar_share;
};

// PreparedRegistration: one complete registration across all realms (sorted by realm id).
struct PreparedRegistration {
  protocol::RegistrationVersion version{};
  SecretBytes pin;
  Bytes info;
  SecretBytes secret;
  protocol::HashedPin hashed;
  protocol::UnlockKeyCommitment unlock_key_commitment{};
  protocol::EncryptedSecret encrypted_secret{};
  uint16_t num_guesses = 0;
  Bytes recover2_body;  // CBOR Recover2 request with the pool's blinded input U
  std::vector<RealmPart> realms;

  ~PreparedRegistration();
  PreparedRegistration() = default;
  PreparedRegistration(PreparedRegistration&&) = default;
  PreparedRegistration& operator=(PreparedRegistration&&) = default;
};

// FullRecovery is the client side of one recovery done completely, as the client library
// does it: Start blinds afresh, CheckRecover2 verifies every realm's signed key and DLEQ
// proof, combines the blinded results of the first `threshold` realms and derives the unlock
// key (checking the commitment), CheckRecover3 checks each realm's commitment, combines the
// scalar shares and decrypts the secret. Not thread-safe (one flow owns one).
class FullRecovery {
 public:
  // Start blinds the registration's access key with a fresh random factor.
  static StatusOr<std::unique_ptr<FullRecovery>> Start(const PreparedRegistration& registration,
                                                       std::vector<protocol::RealmId> realm_ids);

  // recover2_body is the CBOR Recover2 request with the fresh blinded input.
  const Bytes& recover2_body() const { return recover2_body_; }

  // CheckRecover2 takes every realm's Recover2 answer (sorted realm order). OK if all
  // verify and the combined OPRF output gives the registered commitment and tags;
  // DATA_LOSS naming the check that failed otherwise.
  Status CheckRecover2(const std::vector<const protocol::Recover2Response*>& answers,
                       uint32_t threshold);

  // CheckRecover3 takes every realm's Recover3 answer. OK if every commitment verifies and
  // the decrypted secret is the registered one; DATA_LOSS otherwise.
  Status CheckRecover3(const std::vector<const protocol::Recover3Response*>& answers,
                       uint32_t threshold);

 private:
  FullRecovery(const PreparedRegistration& registration, std::vector<protocol::RealmId> realm_ids)
      : registration_(registration), realm_ids_(std::move(realm_ids)) {}

  const PreparedRegistration& registration_;
  std::vector<protocol::RealmId> realm_ids_;
  SecretBytes blinding_factor_;
  protocol::PointBytes blinded_input_{};
  Bytes recover2_body_;
  SecretBytes unlock_key_;
};

class RegistrationPool {
 public:
  // Create derives `count` registrations from `seed` for the realms `realm_ids` (any order;
  // kept sorted), recoverable by any `recover_threshold` of them, allowing `num_guesses`
  // wrong guesses. INVALID_ARGUMENT for an empty realm list, a bad threshold or count 0;
  // the protocol functions' errors otherwise.
  static StatusOr<std::unique_ptr<RegistrationPool>> Create(
      std::string_view seed, size_t count, std::vector<protocol::RealmId> realm_ids,
      uint32_t recover_threshold, uint16_t num_guesses);

  // ForUser returns the registration of user number `user`.
  const PreparedRegistration& ForUser(uint64_t user) const {
    return registrations_[user % registrations_.size()];
  }

  size_t size() const { return registrations_.size(); }

  // realm_ids returns the realms sorted by id (the order of PreparedRegistration::realms).
  const std::vector<protocol::RealmId>& realm_ids() const { return realm_ids_; }

  uint32_t recover_threshold() const { return threshold_; }

  // register1_body and recover1_body are the CBOR bodies of the requests without fields.
  const Bytes& register1_body() const { return register1_body_; }
  const Bytes& recover1_body() const { return recover1_body_; }

  // CheckRecover1 checks a realm's Recover1 answer: Ok with the registered version.
  static Status CheckRecover1(const PreparedRegistration& registration,
                              const protocol::SecretsResponse& response);

  // CheckRecover2 checks realm `position`'s Recover2 answer against the precomputed one:
  // Ok, the expected blinded result, signed key and commitment, a guess count within the
  // policy.
  static Status CheckRecover2(const PreparedRegistration& registration, size_t position,
                              const protocol::SecretsResponse& response);

  // CheckRecover3 checks realm `position`'s Recover3 answer: Ok with the registered share,
  // encrypted secret and commitment.
  static Status CheckRecover3(const PreparedRegistration& registration, size_t position,
                              const protocol::SecretsResponse& response);

 private:
  RegistrationPool() = default;

  std::vector<protocol::RealmId> realm_ids_;
  uint32_t threshold_ = 1;
  std::vector<PreparedRegistration> registrations_;
  Bytes register1_body_;
  Bytes recover1_body_;
};

}  // namespace pinvault::api::bench

#endif  // PINVAULT_API_BENCH_MATERIAL_H_
