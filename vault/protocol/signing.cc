#include "vault/protocol/signing.h"

#include <sodium.h>

#include <algorithm>

#include "vault/protocol/sodium_init.h"

namespace pinvault::protocol {
namespace {

static_assert(crypto_sign_PUBLICKEYBYTES == kEd25519PublicKeySize);
static_assert(crypto_sign_BYTES == kEd25519SignatureSize);
static_assert(crypto_sign_SEEDBYTES == kEd25519SeedSize);

}  // namespace

std::array<uint8_t, kOprfPublicKeyMessageSize> OprfPublicKeyMessage(const RealmId& realm_id,
                                                                    const PointBytes& public_key) {
  std::array<uint8_t, kOprfPublicKeyMessageSize> m{};
  m[0] = 0;
  m[1] = static_cast<uint8_t>(kRealmIdSize);  // be2(16)
  std::copy(realm_id.begin(), realm_id.end(), m.begin() + 2);
  m[18] = 0;
  m[19] = static_cast<uint8_t>(kPointSize);  // be2(32)
  std::copy(public_key.begin(), public_key.end(), m.begin() + 20);
  return m;
}

OprfSigningKey OprfSigningKey::Generate() {
  internal::EnsureSodiumInitialized();
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  Ed25519PublicKey public_key;
  crypto_sign_keypair(public_key.data(), secret_key.RevealMutable().data());
  return OprfSigningKey(std::move(secret_key), public_key);
}

StatusOr<OprfSigningKey> OprfSigningKey::FromSeed(const SecretBytes& seed) {
  if (seed.size() != kEd25519SeedSize) return InvalidArgumentError("Ed25519 seed must be 32 bytes");
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  Ed25519PublicKey public_key;
  crypto_sign_seed_keypair(public_key.data(), secret_key.RevealMutable().data(),
                           seed.Reveal().data());
  return OprfSigningKey(std::move(secret_key), public_key);
}

Ed25519Signature OprfSigningKey::SignMessage(ByteView message) const {
  Ed25519Signature signature;
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                       secret_key_.Reveal().data());
  return signature;
}

OprfSignedPublicKey OprfSigningKey::SignOprfPublicKey(const RealmId& realm_id,
                                                      const PointBytes& public_key) const {
  OprfSignedPublicKey out;
  out.public_key = public_key;
  out.verifying_key = verifying_key_;
  out.signature = SignMessage(OprfPublicKeyMessage(realm_id, public_key));
  return out;
}

Status VerifyEd25519(const Ed25519PublicKey& verifying_key, ByteView message,
                     const Ed25519Signature& signature) {
  // libsodium (built without ED25519_COMPAT, as Debian ships it) rejects a non-canonical
  // S, a non-canonical or small-order public key A and a small-order R, and compares R by
  // its encoding: the strict RFC 8032 checks ed25519-dalek's verify_strict makes.
  if (crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                  verifying_key.data()) != 0) {
    return DataLossError("Ed25519 signature does not verify");
  }
  return OkStatus();
}

Status VerifyOprfSignedPublicKey(const RealmId& realm_id, const OprfSignedPublicKey& signed_key) {
  const auto message = OprfPublicKeyMessage(realm_id, signed_key.public_key);
  if (crypto_sign_verify_detached(signed_key.signature.data(), message.data(), message.size(),
                                  signed_key.verifying_key.data()) != 0) {
    return DataLossError("OPRF public key signature does not verify for this realm");
  }
  return OkStatus();
}

}  // namespace pinvault::protocol
