// The Ed25519-signed OPRF public key (PROTOCOL-NOTES section (e)).
//
// At registration the client makes one fresh Ed25519 key and signs, for every realm,
//   M = be2(16) ‖ realm_id(16) ‖ be2(32) ‖ public_key(32)        (52 bytes)
// where public_key = k_i·G is that realm's OPRF public key share. At recovery it verifies
// the returned OprfSignedPublicKey against the realm id it addressed, strictly (RFC 8032
// canonical S, canonical non-small-order A and R: libsodium's crypto_sign_verify_detached
// in its default, non-compatibility build, which matches ed25519-dalek verify_strict for
// the SDK's purposes).
//
// Signature failures are DATA_LOSS: the signed key comes from a realm's response and a
// failure means the realm misbehaved (the client maps it to Assertion).
#ifndef PINVAULT_VAULT_PROTOCOL_SIGNING_H_
#define PINVAULT_VAULT_PROTOCOL_SIGNING_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kOprfPublicKeyMessageSize = 52;

using Ed25519PublicKey = std::array<uint8_t, kEd25519PublicKeySize>;
using Ed25519Signature = std::array<uint8_t, kEd25519SignatureSize>;

// OprfPublicKeyMessage returns M above for `realm_id` and `public_key`.
std::array<uint8_t, kOprfPublicKeyMessageSize> OprfPublicKeyMessage(const RealmId& realm_id,
                                                                    const PointBytes& public_key);

// OprfSigningKey is a per-registration Ed25519 signing key held in secure memory.
// Move-only; const methods are thread-safe.
class OprfSigningKey {
 public:
  // Generate makes a fresh random key.
  static OprfSigningKey Generate();

  // FromSeed derives the key from a 32-byte RFC 8032 seed (for known-answer tests).
  // INVALID_ARGUMENT unless `seed` is 32 bytes.
  static StatusOr<OprfSigningKey> FromSeed(const SecretBytes& seed);

  OprfSigningKey(OprfSigningKey&&) noexcept = default;
  OprfSigningKey& operator=(OprfSigningKey&&) noexcept = default;

  // verifying_key returns the public key A (the same for every realm of a registration).
  const Ed25519PublicKey& verifying_key() const { return verifying_key_; }

  // SignMessage returns the Ed25519 signature of `message` (deterministic, RFC 8032).
  Ed25519Signature SignMessage(ByteView message) const;

  // SignOprfPublicKey returns {public_key, verifying_key, Sign(M)} for realm `realm_id`.
  OprfSignedPublicKey SignOprfPublicKey(const RealmId& realm_id, const PointBytes& public_key) const;

 private:
  OprfSigningKey(SecretBytes secret_key, const Ed25519PublicKey& verifying_key)
      : secret_key_(std::move(secret_key)), verifying_key_(verifying_key) {}

  SecretBytes secret_key_;  // libsodium's 64-byte form: seed ‖ A
  Ed25519PublicKey verifying_key_{};
};

// VerifyEd25519 checks `signature` over `message` under `verifying_key`, strictly (see the
// file comment). OK or DATA_LOSS.
Status VerifyEd25519(const Ed25519PublicKey& verifying_key, ByteView message,
                     const Ed25519Signature& signature);

// VerifyOprfSignedPublicKey checks the signature of `signed_key` over
// OprfPublicKeyMessage(realm_id, signed_key.public_key). OK or DATA_LOSS. It does not
// decode public_key; VerifyProof does that.
Status VerifyOprfSignedPublicKey(const RealmId& realm_id, const OprfSignedPublicKey& signed_key);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_SIGNING_H_
