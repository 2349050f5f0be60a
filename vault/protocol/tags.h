// The unlock key, its commitment, the per-realm unlock-key tag and encrypted-secret
// commitment, and the user-secret encryption key (PROTOCOL-NOTES section (d)).
//
//   D = SHA-512(oprf_output); unlock_key_commitment = D[0..32]; unlock_key = D[32..64]
//   unlock_key_tag_i = BLAKE2s-128(key = unlock_key; "Unlock Key Tag", realm_id_i)
//   encrypted_secret_commitment_i = BLAKE2s-128(key = unlock_key;
//       "Encrypted User Secret Commitment", realm_id_i, scalar_share_i, encrypted_secret)
//   encryption_key = BLAKE2s-256(key = encryption_key_seed;
//       "User Secret Encryption Key", reconstructed encryption scalar)
//
// MAC inputs encode each field as be4(len) ‖ field. Tags and commitments must be compared
// with the constant-time *Equals functions below, never with ==.
//
// All functions are pure and thread-safe.
#ifndef PINVAULT_VAULT_PROTOCOL_TAGS_H_
#define PINVAULT_VAULT_PROTOCOL_TAGS_H_

#include <string_view>

#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

inline constexpr std::string_view kUnlockKeyTagLabel = "Unlock Key Tag";
inline constexpr std::string_view kEncryptedSecretCommitmentLabel =
    "Encrypted User Secret Commitment";
inline constexpr std::string_view kEncryptionKeyLabel = "User Secret Encryption Key";
inline constexpr size_t kUnlockKeySize = 32;
inline constexpr size_t kEncryptionKeySize = 32;

// UnlockKey is the unlock key (secret) and its commitment (stored by the realms).
struct UnlockKey {
  SecretBytes unlock_key;  // 32 bytes
  UnlockKeyCommitment commitment{};
};

// DeriveUnlockKey splits SHA-512(oprf_output) into commitment and unlock key.
// INVALID_ARGUMENT unless `oprf_output` is 64 bytes.
StatusOr<UnlockKey> DeriveUnlockKey(const SecretBytes& oprf_output);

// ComputeUnlockKeyTag returns the tag the client sends realm `realm_id` in Recover3 (and
// registers with it). INVALID_ARGUMENT unless `unlock_key` is 32 bytes.
StatusOr<UnlockKeyTag> ComputeUnlockKeyTag(const SecretBytes& unlock_key, const RealmId& realm_id);

// ComputeEncryptedSecretCommitment returns realm `realm_id`'s commitment to its encryption
// scalar share and the encrypted secret. INVALID_ARGUMENT unless `unlock_key` and
// `encryption_key_scalar_share` are 32 bytes (the share is not checked for canonicity
// here; it is MACed as given).
StatusOr<EncryptedSecretCommitment> ComputeEncryptedSecretCommitment(
    const SecretBytes& unlock_key, const RealmId& realm_id,
    const SecretBytes& encryption_key_scalar_share, const EncryptedSecret& encrypted_secret);

// DeriveEncryptionKey returns the 32-byte ChaCha20-Poly1305 key for the user secret from
// the Argon2 seed and the (reconstructed) encryption scalar. INVALID_ARGUMENT unless both
// are 32 bytes.
StatusOr<SecretBytes> DeriveEncryptionKey(const SecretBytes& encryption_key_seed,
                                          const SecretBytes& encryption_key_scalar);

// UnlockKeyTagEquals compares two tags in constant time.
bool UnlockKeyTagEquals(const UnlockKeyTag& a, const UnlockKeyTag& b);

// UnlockKeyCommitmentEquals compares two unlock-key commitments in constant time.
bool UnlockKeyCommitmentEquals(const UnlockKeyCommitment& a, const UnlockKeyCommitment& b);

// EncryptedSecretCommitmentEquals compares two encrypted-secret commitments in constant
// time.
bool EncryptedSecretCommitmentEquals(const EncryptedSecretCommitment& a,
                                     const EncryptedSecretCommitment& b);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_TAGS_H_
