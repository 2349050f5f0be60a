// mechanisms.h: which of the mechanisms pinvault uses a token offers.
//
// DetectCapabilities asks C_GetMechanismList once and C_GetMechanismInfo for each mechanism of
// interest, checking the flags (a mechanism listed without CKF_ENCRYPT cannot seal) and the key
// sizes (AES-256 must be within ulMinKeySize..ulMaxKeySize).
#ifndef PINVAULT_PKCS11_MECHANISMS_H_
#define PINVAULT_PKCS11_MECHANISMS_H_

#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/module.h"
#include "vault/hsm.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// MechanismName returns "CKM_AES_GCM" etc. for the mechanisms pinvault knows, else hex.
std::string MechanismName(CK_MECHANISM_TYPE mechanism);

// MechanismCheck is one line of `pinvault-admin hsm status`.
struct MechanismCheck {
  CK_MECHANISM_TYPE mechanism = 0;
  std::string name;     // "CKM_AES_GCM"
  std::string purpose;  // "seal records"
  CK_FLAGS needed_flags = 0;
  bool required = false;  // false: optional, or one of two alternatives
  bool present = false;   // listed and has every needed flag (and a fitting key size)
  CK_MECHANISM_INFO info{};
};

// Capabilities summarises DetectCapabilities.
struct Capabilities {
  bool aes_gcm = false;      // CKM_AES_GCM encrypt+decrypt with 32-byte keys
  bool aes_key_gen = false;  // CKM_AES_KEY_GEN
  bool hmac_sha256 = false;  // CKM_SHA256_HMAC sign+verify
  bool generic_secret_key_gen = false;
  bool aes_key_wrap_pad = false;  // CKM_AES_KEY_WRAP_PAD wrap+unwrap
  bool eddsa = false;             // CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA sign
  bool ecdsa = false;         // CKM_EC_KEY_PAIR_GEN and CKM_ECDSA_SHA256 or CKM_ECDSA+CKM_SHA256
  bool ecdsa_sha256 = false;  // CKM_ECDSA_SHA256 (else the digest is computed with CKM_SHA256)
  bool random = false;        // CKF_RNG in the token flags
  std::vector<MechanismCheck> checks;

  // RealmKeysSupported is true if the realm key set can be created and used.
  bool RealmKeysSupported() const {
    return aes_gcm && aes_key_gen && hmac_sha256 && generic_secret_key_gen && (eddsa || ecdsa);
  }
  // PreferredSignature is Ed25519 where available, else ECDSA P-256.
  vault::SignatureAlgorithm PreferredSignature() const {
    return eddsa ? vault::SignatureAlgorithm::kEd25519 : vault::SignatureAlgorithm::kEcdsaP256;
  }
};

// DetectCapabilities inspects the token in `slot`.
StatusOr<Capabilities> DetectCapabilities(const Module& module, CK_SLOT_ID slot,
                                          CK_FLAGS token_flags);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_MECHANISMS_H_
