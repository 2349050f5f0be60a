// Padding and sealing of the user's secret (PROTOCOL-NOTES section (d)):
//
//   padded = len(secret) (1 byte) ‖ secret ‖ zeros          129 bytes, secret ≤ 128 bytes
//   encrypted_secret = ChaCha20-Poly1305(key, nonce = 0^12, aad = empty, padded)
//                    = ciphertext(129) ‖ tag(16)             145 bytes
//
// The zero nonce is safe only because the encryption key is fresh per registration; the
// sealing functions take no nonce so callers cannot choose one.
//
// All functions are pure and thread-safe.
#ifndef PINVAULT_VAULT_PROTOCOL_SECRET_BOX_H_
#define PINVAULT_VAULT_PROTOCOL_SECRET_BOX_H_

#include <cstddef>
#include <span>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

inline constexpr size_t kPaddedSecretSize = kMaxSecretSize + 1;  // 129
inline constexpr size_t kAeadKeySize = 32;
inline constexpr size_t kAeadNonceSize = 12;
inline constexpr size_t kAeadTagSize = 16;

// PadSecret returns the 129-byte padded form. INVALID_ARGUMENT if `secret` exceeds
// kMaxSecretSize bytes.
StatusOr<SecretBytes> PadSecret(const SecretBytes& secret);

// UnpadSecret returns the secret from its padded form. DATA_LOSS unless `padded` is 129
// bytes and its length byte is ≤ 128. (Trailing padding bytes are not checked, as in the
// SDK.)
StatusOr<SecretBytes> UnpadSecret(const SecretBytes& padded);

// SealSecret pads `secret` and encrypts it under `encryption_key` (32 bytes) with the zero
// nonce. INVALID_ARGUMENT if the key is not 32 bytes or the secret is too long.
StatusOr<EncryptedSecret> SealSecret(const SecretBytes& encryption_key, const SecretBytes& secret);

// OpenSecret decrypts and unpads. INVALID_ARGUMENT if the key is not 32 bytes; DATA_LOSS if
// authentication fails or the padding is bad.
StatusOr<SecretBytes> OpenSecret(const SecretBytes& encryption_key,
                                 const EncryptedSecret& encrypted_secret);

// ChaCha20Poly1305Seal is the general RFC 8439 AEAD (libsodium IETF construction) behind
// SealSecret, exposed for known-answer tests: returns ciphertext ‖ tag. INVALID_ARGUMENT
// for a key that is not 32 bytes or a nonce that is not 12.
StatusOr<Bytes> ChaCha20Poly1305Seal(const SecretBytes& key, ByteView nonce, ByteView aad,
                                     std::span<const uint8_t> plaintext);

// ChaCha20Poly1305Open reverses ChaCha20Poly1305Seal into secure memory. INVALID_ARGUMENT
// for bad key or nonce sizes; DATA_LOSS if `sealed` is shorter than the tag or does not
// authenticate.
StatusOr<SecretBytes> ChaCha20Poly1305Open(const SecretBytes& key, ByteView nonce, ByteView aad,
                                           ByteView sealed);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_SECRET_BOX_H_
