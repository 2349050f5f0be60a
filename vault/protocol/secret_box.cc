#include "vault/protocol/secret_box.h"

#include <sodium.h>

#include <algorithm>

namespace pinvault::protocol {
namespace {

static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kAeadKeySize);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == kAeadNonceSize);
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kAeadTagSize);
static_assert(kPaddedSecretSize + kAeadTagSize == kEncryptedSecretSize);

inline constexpr uint8_t kZeroNonce[kAeadNonceSize] = {};

Status CheckKeyAndNonce(const SecretBytes& key, ByteView nonce) {
  if (key.size() != kAeadKeySize) return InvalidArgumentError("AEAD key must be 32 bytes");
  if (nonce.size() != kAeadNonceSize) return InvalidArgumentError("AEAD nonce must be 12 bytes");
  return OkStatus();
}

}  // namespace

StatusOr<SecretBytes> PadSecret(const SecretBytes& secret) {
  if (secret.size() > kMaxSecretSize) {
    return InvalidArgumentError("secret is longer than 128 bytes");
  }
  SecretBytes padded(kPaddedSecretSize);  // zero-filled
  auto out = padded.RevealMutable();
  out[0] = static_cast<uint8_t>(secret.size());
  std::copy(secret.Reveal().begin(), secret.Reveal().end(), out.begin() + 1);
  return padded;
}

StatusOr<SecretBytes> UnpadSecret(const SecretBytes& padded) {
  if (padded.size() != kPaddedSecretSize) return DataLossError("padded secret has the wrong size");
  const auto in = padded.Reveal();
  const size_t length = in[0];
  if (length > kMaxSecretSize) return DataLossError("padded secret has a bad length byte");
  return SecretBytes::CopyFrom(in.subspan(1, length));
}

StatusOr<Bytes> ChaCha20Poly1305Seal(const SecretBytes& key, ByteView nonce, ByteView aad,
                                     std::span<const uint8_t> plaintext) {
  RETURN_IF_ERROR(CheckKeyAndNonce(key, nonce));
  Bytes sealed(plaintext.size() + kAeadTagSize);
  unsigned long long sealed_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(sealed.data(), &sealed_len, plaintext.data(),
                                            plaintext.size(), aad.data(), aad.size(), nullptr,
                                            nonce.data(), key.Reveal().data());
  sealed.resize(sealed_len);
  return sealed;
}

StatusOr<SecretBytes> ChaCha20Poly1305Open(const SecretBytes& key, ByteView nonce, ByteView aad,
                                           ByteView sealed) {
  RETURN_IF_ERROR(CheckKeyAndNonce(key, nonce));
  if (sealed.size() < kAeadTagSize) return DataLossError("ciphertext shorter than its tag");
  SecretBytes plaintext(sealed.size() - kAeadTagSize);
  unsigned long long plaintext_len = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(plaintext.RevealMutable().data(), &plaintext_len,
                                                nullptr, sealed.data(), sealed.size(), aad.data(),
                                                aad.size(), nonce.data(),
                                                key.Reveal().data()) != 0) {
    return DataLossError("ciphertext does not authenticate");
  }
  return plaintext;
}

StatusOr<EncryptedSecret> SealSecret(const SecretBytes& encryption_key, const SecretBytes& secret) {
  if (encryption_key.size() != kAeadKeySize) {
    return InvalidArgumentError("encryption key must be 32 bytes");
  }
  ASSIGN_OR_RETURN(const SecretBytes padded, PadSecret(secret));
  EncryptedSecret out;
  unsigned long long out_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &out_len, padded.Reveal().data(),
                                            padded.size(), nullptr, 0, nullptr, kZeroNonce,
                                            encryption_key.Reveal().data());
  if (out_len != out.size()) return InternalError("unexpected ciphertext length");
  return out;
}

StatusOr<SecretBytes> OpenSecret(const SecretBytes& encryption_key,
                                 const EncryptedSecret& encrypted_secret) {
  if (encryption_key.size() != kAeadKeySize) {
    return InvalidArgumentError("encryption key must be 32 bytes");
  }
  ASSIGN_OR_RETURN(const SecretBytes padded,
                   ChaCha20Poly1305Open(encryption_key, kZeroNonce, {}, encrypted_secret));
  return UnpadSecret(padded);
}

}  // namespace pinvault::protocol
