// The Juicebox protocol's SecretsRequest / SecretsResponse messages as C++ values.
//
// These are the decoded forms that the realm core consumes and produces and that the
// client library builds; the wire codecs (CBOR for the Juicebox endpoint, protobuf for the
// native API) live in api/ and backup/client/. Field names and sizes follow
// PROTOCOL-NOTES.md section (g.3). Scalars a realm must keep secret (key shares) are held in
// SecretBytes, so messages are move-only.
#ifndef PINVAULT_VAULT_PROTOCOL_MESSAGES_H_
#define PINVAULT_VAULT_PROTOCOL_MESSAGES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "vault/secret_bytes.h"

namespace pinvault::protocol {

inline constexpr size_t kRealmIdSize = 16;
inline constexpr size_t kVersionSize = 16;
inline constexpr size_t kScalarSize = 32;
inline constexpr size_t kPointSize = 32;
inline constexpr size_t kUnlockKeyTagSize = 16;
inline constexpr size_t kUnlockKeyCommitmentSize = 32;
inline constexpr size_t kEncryptedSecretSize = 145;
inline constexpr size_t kEncryptedSecretCommitmentSize = 16;
inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;
inline constexpr size_t kMaxSecretSize = 128;

using RealmId = std::array<uint8_t, kRealmIdSize>;
using RegistrationVersion = std::array<uint8_t, kVersionSize>;
using PointBytes = std::array<uint8_t, kPointSize>;            // compressed ristretto255
using ScalarBytes = std::array<uint8_t, kScalarSize>;          // public scalar, LE
using UnlockKeyTag = std::array<uint8_t, kUnlockKeyTagSize>;
using UnlockKeyCommitment = std::array<uint8_t, kUnlockKeyCommitmentSize>;
using EncryptedSecret = std::array<uint8_t, kEncryptedSecretSize>;
using EncryptedSecretCommitment = std::array<uint8_t, kEncryptedSecretCommitmentSize>;

// OprfSignedPublicKey: a realm's OPRF public key share, signed by the client's
// per-registration Ed25519 key (PROTOCOL-NOTES (e)). The realm stores and returns it.
struct OprfSignedPublicKey {
  PointBytes public_key{};
  std::array<uint8_t, kEd25519PublicKeySize> verifying_key{};
  std::array<uint8_t, kEd25519SignatureSize> signature{};
  friend bool operator==(const OprfSignedPublicKey&, const OprfSignedPublicKey&) = default;
};

// DleqProof: Chaum-Pedersen proof {c, beta_z}, both canonical scalars.
struct DleqProof {
  ScalarBytes c{};
  ScalarBytes beta_z{};
  friend bool operator==(const DleqProof&, const DleqProof&) = default;
};

struct Policy {
  uint16_t num_guesses = 0;
};

// ---- Requests ----
struct Register1Request {};

struct Register2Request {
  RegistrationVersion version{};
  SecretBytes oprf_private_key;  // 32-byte canonical scalar (this realm's share)
  OprfSignedPublicKey oprf_signed_public_key;
  UnlockKeyCommitment unlock_key_commitment{};
  UnlockKeyTag unlock_key_tag{};
  SecretBytes encryption_key_scalar_share;  // 32-byte canonical scalar
  EncryptedSecret encrypted_secret{};
  EncryptedSecretCommitment encrypted_secret_commitment{};
  Policy policy;
};

struct Recover1Request {};

struct Recover2Request {
  RegistrationVersion version{};
  PointBytes oprf_blinded_input{};
};

struct Recover3Request {
  RegistrationVersion version{};
  UnlockKeyTag unlock_key_tag{};
};

struct DeleteRequest {};

using SecretsRequest = std::variant<Register1Request, Register2Request, Recover1Request,
                                    Recover2Request, Recover3Request, DeleteRequest>;

// ---- Responses ----
struct Register1Response {};  // always Ok
struct Register2Response {};  // always Ok

struct Recover1Response {
  enum class Status { kOk, kNotRegistered, kNoGuesses };
  Status status = Status::kNotRegistered;
  RegistrationVersion version{};  // meaningful when kOk
};

struct Recover2Response {
  enum class Status { kOk, kVersionMismatch, kNotRegistered, kNoGuesses };
  Status status = Status::kNotRegistered;
  // The fields below are meaningful when kOk.
  OprfSignedPublicKey oprf_signed_public_key;
  PointBytes oprf_blinded_result{};
  DleqProof oprf_proof;
  UnlockKeyCommitment unlock_key_commitment{};
  uint16_t num_guesses = 0;
  uint16_t guess_count = 0;  // after this guess was counted (the first guess reports 1)
};

struct Recover3Response {
  enum class Status { kOk, kVersionMismatch, kNotRegistered, kNoGuesses, kBadUnlockKeyTag };
  Status status = Status::kNotRegistered;
  // kOk:
  SecretBytes encryption_key_scalar_share;  // 32 bytes
  EncryptedSecret encrypted_secret{};
  EncryptedSecretCommitment encrypted_secret_commitment{};
  // kBadUnlockKeyTag:
  uint16_t guesses_remaining = 0;
};

struct DeleteResponse {};  // always Ok

using SecretsResponse = std::variant<Register1Response, Register2Response, Recover1Response,
                                     Recover2Response, Recover3Response, DeleteResponse>;

// RequestKindName returns "Register1" ... "Delete" for logs and metrics labels.
inline std::string_view RequestKindName(const SecretsRequest& request) {
  static constexpr std::string_view kNames[] = {"Register1", "Register2", "Recover1",
                                                "Recover2",  "Recover3",  "Delete"};
  return kNames[request.index()];
}

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_MESSAGES_H_
