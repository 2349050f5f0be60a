// Hsm: the narrow interface through which the trusted core uses the realm's HSM keys.
//
// vault/ never includes PKCS#11 headers; pkcs11/ implements this interface on a token
// (pkcs11/hsm_keys.h), and tests may use a software implementation. Every key named here
// lives inside the HSM as a non-extractable, sensitive object; callers never see key bytes
// and never pass nonces.
//
// Errors: UNAVAILABLE when the token cannot be reached (the caller may retry later; no
// partial effect), DATA_LOSS when authentication of sealed data fails, NOT_FOUND when a key
// or the anchor object is missing, INTERNAL for anything else the module reports.
//
// Thread-safety: implementations must be safe for concurrent use.
#ifndef PINVAULT_VAULT_HSM_H_
#define PINVAULT_VAULT_HSM_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vault/bytes.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::vault {

// SealedBlob is the output of Hsm::Seal: which key sealed it, the 12-byte GCM IV, and the
// ciphertext with its 16-byte GCM tag appended.
struct SealedBlob {
  uint32_t key_id = 0;
  std::array<uint8_t, 12> iv{};
  Bytes ciphertext;  // ciphertext || tag
};

// MacKeyRole names the HSM's HMAC-SHA256 keys.
enum class MacKeyRole {
  kRecordId,  // record id = MAC(tenant, user): the store never sees user names
  kAnchor,    // authenticates the Merkle root and epoch stored in the anchor object
};

using MacTag = std::array<uint8_t, 32>;

// SignatureAlgorithm of the audit signing key: Ed25519 where the module has CKM_EDDSA,
// ECDSA P-256 (raw r||s signatures over SHA-256) otherwise.
enum class SignatureAlgorithm { kEd25519, kEcdsaP256 };

struct SigningPublicKey {
  SignatureAlgorithm algorithm = SignatureAlgorithm::kEd25519;
  Bytes key;  // Ed25519: 32 bytes; P-256: 65-byte uncompressed point
};

class Hsm {
 public:
  virtual ~Hsm() = default;

  // CurrentSealingKeyId is the id of the key that seals new records. The core binds it into
  // the associated data before calling Seal.
  virtual uint32_t CurrentSealingKeyId() const = 0;

  // Seal encrypts `plaintext` with AES-256-GCM under sealing key `key_id`, authenticating
  // `associated_data`. The HSM layer chooses the IV and never reuses one under a key.
  virtual StatusOr<SealedBlob> Seal(uint32_t key_id, std::span<const uint8_t> plaintext,
                                    ByteView associated_data) = 0;

  // Unseal decrypts a SealedBlob; DATA_LOSS if the tag, IV, ciphertext or associated data
  // was altered, NOT_FOUND if its key id is unknown.
  virtual StatusOr<SecretBytes> Unseal(const SealedBlob& blob, ByteView associated_data) = 0;

  // Mac computes HMAC-SHA256 over `data` with the key of `role`.
  virtual StatusOr<MacTag> Mac(MacKeyRole role, ByteView data) = 0;

  // VerifyMac checks `tag` over `data` inside the HSM. OK if valid, DATA_LOSS if not.
  virtual Status VerifyMac(MacKeyRole role, ByteView data, ByteView tag) = 0;

  // Sign signs `message` with the audit signing key.
  virtual StatusOr<Bytes> Sign(ByteView message) = 0;

  // AuditPublicKey returns the public half of the audit signing key.
  virtual StatusOr<SigningPublicKey> AuditPublicKey() = 0;

  // GenerateRandom fills `out` from the HSM's random generator.
  virtual Status GenerateRandom(std::span<uint8_t> out) = 0;

  // LoadAnchor reads the rollback anchor blob of `partition` (vault/partition.h) kept on the
  // token: the one stored last under the highest term; nullopt if none exists yet. Each
  // partition has its own anchor.
  virtual StatusOr<std::optional<Bytes>> LoadAnchor(uint32_t partition) = 0;

  // StoreAnchor durably replaces the anchor blob of `partition` under lease term `term` (0 on
  // a single node) on the token. OK only once the token has accepted the write. A write under
  // a term older than one already stored never replaces the newer term's anchor (a stale
  // owner cannot roll the anchor back); implementations refuse it with FAILED_PRECONDITION
  // when they know of the newer term.
  virtual Status StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) = 0;
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_HSM_H_
