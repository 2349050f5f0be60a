// operations.h: the cryptographic operations pinvault runs on a token, one function each.
//
// Every function leases a session from the pool for the duration of the call and goes through
// SessionPool::Run (so a lost session is recovered and the call repeated). Keys are object
// handles found once and cached by the caller (pkcs11/key_set.h); no function here searches for
// objects. Secrets that come out of the token (decrypted plaintexts) are returned in SecretBytes.
//
// AES-GCM IVs. Callers never pass an IV to encrypt: AesGcmEncrypt takes one from a GcmIvSource,
// which makes 96-bit IVs as
//     IV = prefix (64 bits, from the token's C_GenerateRandom) || counter (32 bits, big-endian)
// The counter starts at 0 for each prefix and is incremented under a lock for every IV handed
// out, so within a prefix no IV repeats. When a prefix has given out 2^32 IVs a new prefix is
// drawn; a prefix already used by this source is never used again. Distinct processes (and
// distinct sources for the same key) draw independent random prefixes, so two IVs under one key
// can only collide if two of the E prefixes ever drawn for that key are equal: probability at
// most E^2 / 2^65 (E = 2^16 prefixes, i.e. 65536 process starts or 2^48 encryptions, gives
// 2^-33, below NIST SP 800-38D's 2^-32 bound). A source refuses (RESOURCE_EXHAUSTED) after
// 2^16 prefixes, i.e. 2^48 encryptions in one process; rotate the key long before that.
// An IV handed out to an attempt that then failed is never reused either: each attempt takes a
// fresh IV.
#ifndef PINVAULT_PKCS11_OPERATIONS_H_
#define PINVAULT_PKCS11_OPERATIONS_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/objects.h"
#include "pkcs11/session_pool.h"
#include "vault/bytes.h"
#include "vault/hsm.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

inline constexpr size_t kGcmIvSize = 12;
inline constexpr size_t kGcmTagSize = 16;
inline constexpr size_t kHmacSha256Size = 32;

using GcmIv = std::array<uint8_t, kGcmIvSize>;

// GcmIvSource hands out unique 96-bit IVs for one key, as described above. Thread-safe.
class GcmIvSource {
 public:
  static constexpr uint64_t kIvsPerPrefix = uint64_t{1} << 32;
  static constexpr size_t kMaxPrefixes = size_t{1} << 16;

  // `ivs_per_prefix` and `max_prefixes` exist so tests can reach the limits quickly.
  explicit GcmIvSource(uint64_t ivs_per_prefix = kIvsPerPrefix, size_t max_prefixes = kMaxPrefixes);

  // Next writes a fresh IV to `iv`, drawing a new prefix with C_GenerateRandom on `session` when
  // needed, and returns CKR_OK; on failure it returns C_GenerateRandom's code. If the source may
  // give no more IVs it sets `*exhausted`, writes nothing and returns CKR_OK.
  CK_RV Next(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, GcmIv* iv, bool* exhausted);

  // prefixes_used is how many prefixes this source has drawn.
  size_t prefixes_used() const;

 private:
  const uint64_t ivs_per_prefix_;
  const size_t max_prefixes_;
  mutable std::mutex mu_;
  bool have_prefix_ = false;
  std::array<uint8_t, 8> prefix_{};
  uint64_t counter_ = 0;
  std::vector<std::array<uint8_t, 8>> used_prefixes_;
};

// GcmSealed is an AES-GCM output: the IV and ciphertext || 16-byte tag.
struct GcmSealed {
  GcmIv iv{};
  Bytes ciphertext;
};

// AesGcmEncrypt encrypts `plaintext` with AES-GCM under `key`, authenticating `aad`, with an IV
// from `ivs` (one source per key). RESOURCE_EXHAUSTED when `ivs` is exhausted.
StatusOr<GcmSealed> AesGcmEncrypt(SessionPool& pool, CK_OBJECT_HANDLE key, GcmIvSource& ivs,
                                  std::span<const uint8_t> plaintext, ByteView aad);

// AesGcmDecrypt decrypts and authenticates; DATA_LOSS if ciphertext, tag, IV or `aad` was
// altered (or the ciphertext is shorter than a tag).
StatusOr<SecretBytes> AesGcmDecrypt(SessionPool& pool, CK_OBJECT_HANDLE key, const GcmIv& iv,
                                    ByteView ciphertext, ByteView aad);

// HmacSha256 computes HMAC-SHA256 over `data` with `key` (CKM_SHA256_HMAC).
StatusOr<vault::MacTag> HmacSha256(SessionPool& pool, CK_OBJECT_HANDLE key, ByteView data);

// HmacSha256Verify checks `tag` inside the token: OK if valid, DATA_LOSS if not (including a tag
// of the wrong length).
Status HmacSha256Verify(SessionPool& pool, CK_OBJECT_HANDLE key, ByteView data, ByteView tag);

// WrapKey wraps `key` under `wrapping_key` with CKM_AES_KEY_WRAP_PAD. FAILED_PRECONDITION if
// `key` is not extractable (CKR_KEY_UNEXTRACTABLE) or `wrapping_key` lacks CKA_WRAP.
StatusOr<Bytes> WrapKey(SessionPool& pool, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key);

// UnwrapKey unwraps `wrapped` under `unwrapping_key` (CKM_AES_KEY_WRAP_PAD) into a new object
// with the attributes of `key_template`. DATA_LOSS if the wrapped bytes fail the integrity check.
StatusOr<CK_OBJECT_HANDLE> UnwrapKey(SessionPool& pool, CK_OBJECT_HANDLE unwrapping_key,
                                     ByteView wrapped, AttributeTemplate& key_template);

// SignWith signs `message` with the private key: Ed25519 (CKM_EDDSA, 64-byte signature) or
// ECDSA P-256 over SHA-256 (CKM_ECDSA_SHA256 if `ecdsa_sha256` is true, else CKM_SHA256 on the
// token then CKM_ECDSA; 64-byte r||s signature).
StatusOr<Bytes> SignWith(SessionPool& pool, CK_OBJECT_HANDLE private_key,
                         vault::SignatureAlgorithm algorithm, bool ecdsa_sha256, ByteView message);

// ExportPublicKey reads CKA_EC_POINT of a public key object: 32 bytes for Ed25519, the 65-byte
// uncompressed point for P-256 (the DER OCTET STRING wrapping, if present, is removed).
// DATA_LOSS if the point has an unexpected shape.
StatusOr<vault::SigningPublicKey> ExportPublicKey(SessionPool& pool, CK_OBJECT_HANDLE public_key,
                                                  vault::SignatureAlgorithm algorithm);

// ParseEcPoint removes the optional DER OCTET STRING wrapping of a CKA_EC_POINT value and
// checks its length; exposed for tests.
StatusOr<Bytes> ParseEcPoint(ByteView value, vault::SignatureAlgorithm algorithm);

// GenerateRandom fills `out` with C_GenerateRandom.
Status GenerateRandom(SessionPool& pool, std::span<uint8_t> out);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_OPERATIONS_H_
