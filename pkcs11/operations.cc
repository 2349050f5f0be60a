#include "pkcs11/operations.h"

#include <algorithm>
#include <cstring>

namespace pinvault::pkcs11 {
namespace {

// Upper bound on what a module may claim a plaintext needs beyond the ciphertext length.
constexpr size_t kMaxDecryptSlack = 64;
constexpr size_t kMaxSignatureSize = 256;

// Mutable adapts a view to the non-const pointers of the C API. Empty views get a valid
// pointer: some modules (SoftHSM) answer CKR_ARGUMENTS_BAD to a null data pointer even with
// length 0, and a null output pointer would turn a call into a length query.
CK_BYTE* Mutable(ByteView v) {
  static CK_BYTE empty = 0;
  return v.empty() ? &empty : const_cast<CK_BYTE*>(v.data());
}

}  // namespace

GcmIvSource::GcmIvSource(uint64_t ivs_per_prefix, size_t max_prefixes)
    : ivs_per_prefix_(std::clamp<uint64_t>(ivs_per_prefix, 1, kIvsPerPrefix)),
      max_prefixes_(max_prefixes) {}

CK_RV GcmIvSource::Next(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, GcmIv* iv,
                        bool* exhausted) {
  *exhausted = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!have_prefix_ || counter_ >= ivs_per_prefix_) {
    if (used_prefixes_.size() >= max_prefixes_) {
      *exhausted = true;
      return CKR_OK;
    }
    std::array<uint8_t, 8> fresh{};
    // A repeat of an earlier prefix (probability 2^-64 per draw) is drawn again.
    do {
      CK_RV rv = f->C_GenerateRandom(session, fresh.data(), fresh.size());
      if (rv != CKR_OK) return rv;
    } while (std::find(used_prefixes_.begin(), used_prefixes_.end(), fresh) !=
             used_prefixes_.end());
    used_prefixes_.push_back(fresh);
    prefix_ = fresh;
    counter_ = 0;
    have_prefix_ = true;
  }
  uint32_t counter = static_cast<uint32_t>(counter_++);
  std::memcpy(iv->data(), prefix_.data(), prefix_.size());
  (*iv)[8] = static_cast<uint8_t>(counter >> 24);
  (*iv)[9] = static_cast<uint8_t>(counter >> 16);
  (*iv)[10] = static_cast<uint8_t>(counter >> 8);
  (*iv)[11] = static_cast<uint8_t>(counter);
  return CKR_OK;
}

size_t GcmIvSource::prefixes_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_prefixes_.size();
}

StatusOr<GcmSealed> AesGcmEncrypt(SessionPool& pool, CK_OBJECT_HANDLE key, GcmIvSource& ivs,
                                  std::span<const uint8_t> plaintext, ByteView aad) {
  CK_FUNCTION_LIST* f = pool.functions();
  GcmSealed out;
  out.ciphertext.resize(plaintext.size() + kGcmTagSize);
  bool exhausted = false;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_RV rv = ivs.Next(f, session, &out.iv, &exhausted);
    if (rv != CKR_OK) return {rv, "C_GenerateRandom"};
    if (exhausted) return {};
    CK_GCM_PARAMS params{};
    params.pIv = out.iv.data();
    params.ulIvLen = kGcmIvSize;
    params.ulIvBits = kGcmIvSize * 8;
    params.pAAD = Mutable(aad);
    params.ulAADLen = aad.size();
    params.ulTagBits = kGcmTagSize * 8;
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    rv = f->C_EncryptInit(session, &mechanism, key);
    if (rv != CKR_OK) return {rv, "C_EncryptInit"};
    CK_ULONG length = out.ciphertext.size();
    rv =
        f->C_Encrypt(session, Mutable(plaintext), plaintext.size(), out.ciphertext.data(), &length);
    if (rv != CKR_OK) return {rv, "C_Encrypt"};
    if (length != out.ciphertext.size()) return {CKR_GENERAL_ERROR, "C_Encrypt (length)"};
    return {};
  }));
  if (exhausted) {
    return ResourceExhaustedError(
        "AES-GCM IV space of this key is exhausted in this process; rotate the sealing key");
  }
  return out;
}

StatusOr<SecretBytes> AesGcmDecrypt(SessionPool& pool, CK_OBJECT_HANDLE key, const GcmIv& iv,
                                    ByteView ciphertext, ByteView aad) {
  if (ciphertext.size() < kGcmTagSize) {
    return DataLossError("AES-GCM ciphertext is shorter than its tag");
  }
  CK_FUNCTION_LIST* f = pool.functions();
  SecretBytes plaintext;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    GcmIv iv_copy = iv;
    CK_GCM_PARAMS params{};
    params.pIv = iv_copy.data();
    params.ulIvLen = kGcmIvSize;
    params.ulIvBits = kGcmIvSize * 8;
    params.pAAD = Mutable(aad);
    params.ulAADLen = aad.size();
    params.ulTagBits = kGcmTagSize * 8;
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    CK_RV rv = f->C_DecryptInit(session, &mechanism, key);
    if (rv != CKR_OK) return {rv, "C_DecryptInit"};
    // Room for the whole input: modules check the output length against the ciphertext
    // length before they know the tag size (SoftHSM answers CKR_BUFFER_TOO_SMALL otherwise).
    SecretBytes buffer(std::max<size_t>(ciphertext.size(), 1));
    CK_ULONG length = buffer.size();
    rv = f->C_Decrypt(session, Mutable(ciphertext), ciphertext.size(),
                      buffer.RevealMutable().data(), &length);
    if (rv == CKR_BUFFER_TOO_SMALL) {
      // The operation is still active; a second call with the size asked for finishes it.
      buffer =
          SecretBytes(std::min(std::max<size_t>(length, 1), ciphertext.size() + kMaxDecryptSlack));
      length = buffer.size();
      rv = f->C_Decrypt(session, Mutable(ciphertext), ciphertext.size(),
                        buffer.RevealMutable().data(), &length);
    }
    if (rv != CKR_OK) return {rv, "C_Decrypt", RvContext::kAuthenticatedDecrypt};
    if (length + kGcmTagSize != ciphertext.size() || length > buffer.size()) {
      return {CKR_GENERAL_ERROR, "C_Decrypt (length)"};
    }
    if (length != buffer.size()) {
      SecretBytes exact(length);
      if (length > 0) {
        std::memcpy(exact.RevealMutable().data(), buffer.Reveal().data(), length);
      }
      buffer = std::move(exact);
    }
    plaintext = std::move(buffer);
    return {};
  }));
  return plaintext;
}

StatusOr<vault::MacTag> HmacSha256(SessionPool& pool, CK_OBJECT_HANDLE key, ByteView data) {
  CK_FUNCTION_LIST* f = pool.functions();
  vault::MacTag tag{};
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_MECHANISM mechanism{CKM_SHA256_HMAC, nullptr, 0};
    CK_RV rv = f->C_SignInit(session, &mechanism, key);
    if (rv != CKR_OK) return {rv, "C_SignInit"};
    CK_ULONG length = tag.size();
    rv = f->C_Sign(session, Mutable(data), data.size(), tag.data(), &length);
    if (rv != CKR_OK) return {rv, "C_Sign"};
    if (length != tag.size()) return {CKR_GENERAL_ERROR, "C_Sign (length)"};
    return {};
  }));
  return tag;
}

Status HmacSha256Verify(SessionPool& pool, CK_OBJECT_HANDLE key, ByteView data, ByteView tag) {
  if (tag.size() != kHmacSha256Size) {
    return DataLossError("HMAC-SHA256 tag has " + std::to_string(tag.size()) + " bytes, not 32");
  }
  CK_FUNCTION_LIST* f = pool.functions();
  return pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_MECHANISM mechanism{CKM_SHA256_HMAC, nullptr, 0};
    CK_RV rv = f->C_VerifyInit(session, &mechanism, key);
    if (rv != CKR_OK) return {rv, "C_VerifyInit"};
    rv = f->C_Verify(session, Mutable(data), data.size(), Mutable(tag), tag.size());
    if (rv != CKR_DEVICE_ERROR) return {rv, "C_Verify"};
    // NSS softokn reports a failed HMAC comparison as CKR_DEVICE_ERROR. Tell a mismatch from a
    // fault by computing the tag in the token: if that works, the device is fine.
    rv = f->C_SignInit(session, &mechanism, key);
    if (rv != CKR_OK) return {rv, "C_SignInit"};
    vault::MacTag expected{};
    CK_ULONG length = expected.size();
    rv = f->C_Sign(session, Mutable(data), data.size(), expected.data(), &length);
    if (rv != CKR_OK) return {rv, "C_Sign"};
    bool equal = length == expected.size() && ConstantTimeEquals(expected, tag);
    SecureWipe(expected);
    if (equal) return {CKR_DEVICE_ERROR, "C_Verify"};
    return {CKR_SIGNATURE_INVALID, "C_Verify (reported as CKR_DEVICE_ERROR)"};
  });
}

StatusOr<Bytes> WrapKey(SessionPool& pool, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key) {
  CK_FUNCTION_LIST* f = pool.functions();
  Bytes wrapped;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_MECHANISM mechanism{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    CK_ULONG length = 0;
    CK_RV rv = f->C_WrapKey(session, &mechanism, wrapping_key, key, nullptr, &length);
    if (rv != CKR_OK) return {rv, "C_WrapKey"};
    wrapped.assign(length, 0);
    rv = f->C_WrapKey(session, &mechanism, wrapping_key, key, wrapped.data(), &length);
    if (rv != CKR_OK) return {rv, "C_WrapKey"};
    wrapped.resize(length);
    return {};
  }));
  return wrapped;
}

StatusOr<CK_OBJECT_HANDLE> UnwrapKey(SessionPool& pool, CK_OBJECT_HANDLE unwrapping_key,
                                     ByteView wrapped, AttributeTemplate& key_template) {
  CK_FUNCTION_LIST* f = pool.functions();
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_MECHANISM mechanism{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    return {f->C_UnwrapKey(session, &mechanism, unwrapping_key, Mutable(wrapped), wrapped.size(),
                           key_template.data(), key_template.size(), &key),
            "C_UnwrapKey", RvContext::kAuthenticatedDecrypt};
  }));
  return key;
}

StatusOr<Bytes> SignWith(SessionPool& pool, CK_OBJECT_HANDLE private_key,
                         vault::SignatureAlgorithm algorithm, bool ecdsa_sha256, ByteView message) {
  CK_FUNCTION_LIST* f = pool.functions();
  Bytes signature;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    signature.assign(kMaxSignatureSize, 0);
    CK_ULONG length = signature.size();
    CK_RV rv;
    if (algorithm == vault::SignatureAlgorithm::kEd25519) {
      CK_MECHANISM mechanism{CKM_EDDSA, nullptr, 0};
      rv = f->C_SignInit(session, &mechanism, private_key);
      if (rv != CKR_OK) return {rv, "C_SignInit"};
      rv = f->C_Sign(session, Mutable(message), message.size(), signature.data(), &length);
    } else if (ecdsa_sha256) {
      CK_MECHANISM mechanism{CKM_ECDSA_SHA256, nullptr, 0};
      rv = f->C_SignInit(session, &mechanism, private_key);
      if (rv != CKR_OK) return {rv, "C_SignInit"};
      rv = f->C_Sign(session, Mutable(message), message.size(), signature.data(), &length);
    } else {
      CK_MECHANISM digest_mechanism{CKM_SHA256, nullptr, 0};
      rv = f->C_DigestInit(session, &digest_mechanism);
      if (rv != CKR_OK) return {rv, "C_DigestInit"};
      std::array<CK_BYTE, 32> digest{};
      CK_ULONG digest_length = digest.size();
      rv = f->C_Digest(session, Mutable(message), message.size(), digest.data(), &digest_length);
      if (rv != CKR_OK) return {rv, "C_Digest"};
      CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
      rv = f->C_SignInit(session, &mechanism, private_key);
      if (rv != CKR_OK) return {rv, "C_SignInit"};
      rv = f->C_Sign(session, digest.data(), digest_length, signature.data(), &length);
    }
    if (rv != CKR_OK) return {rv, "C_Sign"};
    signature.resize(length);
    return {};
  }));
  if (signature.size() != 64) {
    return InternalError("signature has " + std::to_string(signature.size()) +
                         " bytes, expected 64");
  }
  return signature;
}

StatusOr<Bytes> ParseEcPoint(ByteView value, vault::SignatureAlgorithm algorithm) {
  size_t point_size = algorithm == vault::SignatureAlgorithm::kEd25519 ? 32 : 65;
  if (value.size() == point_size + 2 && value[0] == 0x04 && value[1] == point_size) {
    value = value.subspan(2);  // DER OCTET STRING wrapping
  }
  if (value.size() != point_size) {
    return DataLossError("CKA_EC_POINT has " + std::to_string(value.size()) + " bytes, expected " +
                         std::to_string(point_size));
  }
  if (algorithm == vault::SignatureAlgorithm::kEcdsaP256 && value[0] != 0x04) {
    return DataLossError("CKA_EC_POINT is not an uncompressed P-256 point");
  }
  return Bytes(value.begin(), value.end());
}

StatusOr<vault::SigningPublicKey> ExportPublicKey(SessionPool& pool, CK_OBJECT_HANDLE public_key,
                                                  vault::SignatureAlgorithm algorithm) {
  ASSIGN_OR_RETURN(Bytes point, ReadBytes(pool, public_key, CKA_EC_POINT));
  ASSIGN_OR_RETURN(Bytes key, ParseEcPoint(point, algorithm));
  vault::SigningPublicKey out;
  out.algorithm = algorithm;
  out.key = std::move(key);
  return out;
}

Status GenerateRandom(SessionPool& pool, std::span<uint8_t> out) {
  if (out.empty()) return OkStatus();
  CK_FUNCTION_LIST* f = pool.functions();
  return pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    return {f->C_GenerateRandom(session, out.data(), out.size()), "C_GenerateRandom"};
  });
}

}  // namespace pinvault::pkcs11
