// Records: what the realm keeps per (tenant, user), how it is serialised, padded and
// sealed by the HSM.
//
// Record id: HMAC-SHA256 under the HSM's record-id key over be4(len) ‖ tenant ‖ be4(len) ‖
// user, so storage never sees user names and cannot link rows to users without the HSM.
//
// Plaintext: a fixed kRecordPlaintextSize bytes whatever the state (so a move to NoGuesses
// or Absent does not change the sealed size), bounds-checked on parse:
//   format(1)=1 ‖ state(1) ‖ version(8, BE) ‖ guess_count(2) ‖ num_guesses(2) ‖
//   registration version(16) ‖ oprf_private_key(32) ‖ oprf public key(32) ‖
//   verifying key(32) ‖ signature(64) ‖ unlock_key_commitment(32) ‖ unlock_key_tag(16) ‖
//   encryption_key_scalar_share(32) ‖ encrypted_secret(145) ‖
//   encrypted_secret_commitment(16) ‖ zero padding
// Every field after `version` is zero unless the state is Registered.
//
// Sealing: Hsm::Seal (AES-256-GCM, IV chosen by the HSM) under the HSM's current sealing
// key, with associated data
//   "pinvault-record-v1" ‖ record_id(32) ‖ version(8, BE) ‖ key_id(4, BE),
// so a row moved to another id, replayed at another version or relabelled with another key
// id fails authentication. The stored form is key_id(4, BE) ‖ iv(12) ‖ ciphertext‖tag, and
// rows are unsealed with the key id they carry, so sealing keys can rotate: new writes use
// Hsm::CurrentSealingKeyId(), old rows are resealed when next written.
//
// All functions are thread-safe (the Hsm must be).
#ifndef PINVAULT_VAULT_RECORD_H_
#define PINVAULT_VAULT_RECORD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "vault/bytes.h"
#include "vault/hsm.h"
#include "vault/protocol/messages.h"
#include "vault/record_store.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::vault {

inline constexpr size_t kRecordPlaintextSize = 448;
inline constexpr size_t kSealedRecordSize = 4 + 12 + kRecordPlaintextSize + 16;

// RecordState: Absent is also the state of a deleted record (a sealed tombstone).
enum class RecordState : uint8_t { kAbsent = 0, kRegistered = 1, kNoGuesses = 2 };

// Registration holds the Register2 fields the realm keeps. Move-only (secret scalars).
struct Registration {
  protocol::RegistrationVersion version{};
  SecretBytes oprf_private_key;  // 32-byte canonical scalar
  protocol::OprfSignedPublicKey oprf_signed_public_key;
  protocol::UnlockKeyCommitment unlock_key_commitment{};
  protocol::UnlockKeyTag unlock_key_tag{};
  SecretBytes encryption_key_scalar_share;  // 32-byte canonical scalar
  protocol::EncryptedSecret encrypted_secret{};
  protocol::EncryptedSecretCommitment encrypted_secret_commitment{};
  uint16_t num_guesses = 0;
};

// Record is one user's state in plaintext. `registration` is set iff state is Registered.
struct Record {
  RecordId id{};
  uint64_t version = 0;  // write counter; every sealed write uses a new, larger version
  RecordState state = RecordState::kAbsent;
  uint16_t guess_count = 0;
  std::optional<Registration> registration;
};

// CloneRecord returns a deep copy of `record` (secrets copied into new secure memory).
Record CloneRecord(const Record& record);

// ComputeRecordId returns the record id of (tenant, user) from the HSM's record-id key.
// Errors are the Hsm's (UNAVAILABLE when the HSM is gone).
StatusOr<RecordId> ComputeRecordId(Hsm& hsm, std::string_view tenant, std::string_view user);

// SerializeRecord returns the padded plaintext of `record` in secure memory.
// INVALID_ARGUMENT if the registration's scalars are not 32 bytes, or if `registration` is
// set for a non-Registered state or missing for a Registered one.
StatusOr<SecretBytes> SerializeRecord(const Record& record);

// ParseRecord decodes a plaintext for `id`; DATA_LOSS on any malformation (wrong size,
// unknown format or state, non-zero padding, version differing from `expected_version`).
StatusOr<Record> ParseRecord(const SecretBytes& plaintext, const RecordId& id,
                             uint64_t expected_version);

// RecordAssociatedData returns the associated data bound into a record's seal.
Bytes RecordAssociatedData(const RecordId& id, uint64_t version, uint32_t key_id);

// EncodeSealedBlob / DecodeSealedBlob convert between SealedBlob and its stored bytes.
// Decode: DATA_LOSS unless the input is exactly kSealedRecordSize bytes.
Bytes EncodeSealedBlob(const SealedBlob& blob);
StatusOr<SealedBlob> DecodeSealedBlob(ByteView bytes);

// RecordHash returns BLAKE2b-256("pinvault-record-hash-v1" ‖ version(8, BE) ‖ sealed): the
// value the Merkle tree commits to for a stored row.
Digest RecordHash(uint64_t version, ByteView sealed);

// SealRecord serialises `record` and seals it under the HSM's current sealing key, giving
// the row to store (record_hash filled in). Errors: SerializeRecord's, or the Hsm's.
StatusOr<StoredRecord> SealRecord(Hsm& hsm, const Record& record);

// UnsealRecord opens a stored row with the key id it carries and parses it. It does not
// check the row against the Merkle tree; callers do that first. DATA_LOSS if the row is
// malformed, fails authentication or names an unknown key; UNAVAILABLE if the HSM is gone.
StatusOr<Record> UnsealRecord(Hsm& hsm, const StoredRecord& stored);

// SealedKeyId returns the key id a stored row claims (DATA_LOSS if malformed).
StatusOr<uint32_t> SealedKeyId(const StoredRecord& stored);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_RECORD_H_
