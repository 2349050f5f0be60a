#include "vault/protocol/tags.h"

#include <sodium.h>

#include <algorithm>

#include "vault/bytes.h"
#include "vault/protocol/blake2s.h"

namespace pinvault::protocol {

StatusOr<UnlockKey> DeriveUnlockKey(const SecretBytes& oprf_output) {
  if (oprf_output.size() != 64) return InvalidArgumentError("OPRF output must be 64 bytes");
  SecretBytes digest(crypto_hash_sha512_BYTES);
  crypto_hash_sha512(digest.RevealMutable().data(), oprf_output.Reveal().data(),
                     oprf_output.size());
  const auto d = digest.Reveal();
  UnlockKey out;
  std::copy(d.begin(), d.begin() + kUnlockKeyCommitmentSize, out.commitment.begin());
  out.unlock_key = SecretBytes::CopyFrom(d.subspan(kUnlockKeyCommitmentSize, kUnlockKeySize));
  return out;
}

StatusOr<UnlockKeyTag> ComputeUnlockKeyTag(const SecretBytes& unlock_key, const RealmId& realm_id) {
  if (unlock_key.size() != kUnlockKeySize) return InvalidArgumentError("unlock key must be 32 bytes");
  UnlockKeyTag tag;
  RETURN_IF_ERROR(KeyedBlake2sFields(unlock_key.Reveal(), {AsBytes(kUnlockKeyTagLabel), realm_id},
                                     tag));
  return tag;
}

StatusOr<EncryptedSecretCommitment> ComputeEncryptedSecretCommitment(
    const SecretBytes& unlock_key, const RealmId& realm_id,
    const SecretBytes& encryption_key_scalar_share, const EncryptedSecret& encrypted_secret) {
  if (unlock_key.size() != kUnlockKeySize) return InvalidArgumentError("unlock key must be 32 bytes");
  if (encryption_key_scalar_share.size() != kScalarSize) {
    return InvalidArgumentError("encryption key scalar share must be 32 bytes");
  }
  EncryptedSecretCommitment commitment;
  RETURN_IF_ERROR(KeyedBlake2sFields(
      unlock_key.Reveal(),
      {AsBytes(kEncryptedSecretCommitmentLabel), realm_id, encryption_key_scalar_share.Reveal(),
       encrypted_secret},
      commitment));
  return commitment;
}

StatusOr<SecretBytes> DeriveEncryptionKey(const SecretBytes& encryption_key_seed,
                                          const SecretBytes& encryption_key_scalar) {
  if (encryption_key_seed.size() != 32) {
    return InvalidArgumentError("encryption key seed must be 32 bytes");
  }
  if (encryption_key_scalar.size() != kScalarSize) {
    return InvalidArgumentError("encryption key scalar must be 32 bytes");
  }
  SecretBytes key(kEncryptionKeySize);
  RETURN_IF_ERROR(KeyedBlake2sFields(encryption_key_seed.Reveal(),
                                     {AsBytes(kEncryptionKeyLabel), encryption_key_scalar.Reveal()},
                                     key.RevealMutable()));
  return key;
}

bool UnlockKeyTagEquals(const UnlockKeyTag& a, const UnlockKeyTag& b) {
  return ConstantTimeEquals(a, b);
}

bool UnlockKeyCommitmentEquals(const UnlockKeyCommitment& a, const UnlockKeyCommitment& b) {
  return ConstantTimeEquals(a, b);
}

bool EncryptedSecretCommitmentEquals(const EncryptedSecretCommitment& a,
                                     const EncryptedSecretCommitment& b) {
  return ConstantTimeEquals(a, b);
}

}  // namespace pinvault::protocol
