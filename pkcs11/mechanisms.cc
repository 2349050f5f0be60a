#include "pkcs11/mechanisms.h"

#include <algorithm>
#include <cstdio>

namespace pinvault::pkcs11 {
namespace {

struct Known {
  CK_MECHANISM_TYPE mechanism;
  const char* name;
};

constexpr Known kKnown[] = {
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
    {CKM_AES_GCM, "CKM_AES_GCM"},
    {CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP"},
    {CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"},
    {CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN"},
    {CKM_SHA256_HMAC, "CKM_SHA256_HMAC"},
    {CKM_SHA256, "CKM_SHA256"},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
    {CKM_EDDSA, "CKM_EDDSA"},
    {CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
    {CKM_ECDSA, "CKM_ECDSA"},
    {CKM_ECDSA_SHA256, "CKM_ECDSA_SHA256"},
};

struct Wanted {
  CK_MECHANISM_TYPE mechanism;
  const char* purpose;
  CK_FLAGS flags;
  bool required;
  CK_ULONG key_size;  // 0: do not check
};

// What pinvault uses. AES key sizes are in bytes for every module we know of (SoftHSM, NSS);
// the check accepts 32 in either bytes or bits, as the specification is read both ways.
constexpr Wanted kWanted[] = {
    {CKM_AES_KEY_GEN, "generate the record-sealing key", CKF_GENERATE, true, 32},
    {CKM_AES_GCM, "seal and unseal records", CKF_ENCRYPT | CKF_DECRYPT, true, 32},
    {CKM_GENERIC_SECRET_KEY_GEN, "generate the HMAC keys", CKF_GENERATE, true, 0},
    {CKM_SHA256_HMAC, "record-id and anchor MACs", CKF_SIGN | CKF_VERIFY, true, 0},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, "generate the Ed25519 audit key", CKF_GENERATE_KEY_PAIR, false,
     0},
    {CKM_EDDSA, "sign audit records with Ed25519", CKF_SIGN, false, 0},
    {CKM_EC_KEY_PAIR_GEN, "generate the P-256 audit key (fallback)", CKF_GENERATE_KEY_PAIR, false,
     0},
    {CKM_ECDSA_SHA256, "sign audit records with ECDSA P-256 (fallback)", CKF_SIGN, false, 0},
    {CKM_ECDSA, "sign audit records with ECDSA P-256 over a token digest (fallback)", CKF_SIGN,
     false, 0},
    {CKM_SHA256, "digest for CKM_ECDSA (fallback)", CKF_DIGEST, false, 0},
    {CKM_AES_KEY_WRAP_PAD, "wrap keys for cloning (optional)", CKF_WRAP | CKF_UNWRAP, false, 0},
};

bool KeySizeFits(const CK_MECHANISM_INFO& info, CK_ULONG size) {
  if (size == 0) return true;
  auto fits = [&](CK_ULONG s) { return info.ulMinKeySize <= s && s <= info.ulMaxKeySize; };
  return fits(size) || fits(size * 8);
}

}  // namespace

std::string MechanismName(CK_MECHANISM_TYPE mechanism) {
  for (const Known& known : kKnown) {
    if (known.mechanism == mechanism) return known.name;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "CKM_0x%lx", static_cast<unsigned long>(mechanism));
  return buf;
}

StatusOr<Capabilities> DetectCapabilities(const Module& module, CK_SLOT_ID slot,
                                          CK_FLAGS token_flags) {
  ASSIGN_OR_RETURN(std::vector<CK_MECHANISM_TYPE> listed, module.Mechanisms(slot));
  Capabilities caps;
  caps.random = (token_flags & CKF_RNG) != 0;
  auto present = [&](CK_MECHANISM_TYPE m) {
    for (const MechanismCheck& check : caps.checks) {
      if (check.mechanism == m) return check.present;
    }
    return false;
  };
  for (const Wanted& wanted : kWanted) {
    MechanismCheck check;
    check.mechanism = wanted.mechanism;
    check.name = MechanismName(wanted.mechanism);
    check.purpose = wanted.purpose;
    check.needed_flags = wanted.flags;
    check.required = wanted.required;
    if (std::find(listed.begin(), listed.end(), wanted.mechanism) != listed.end()) {
      StatusOr<CK_MECHANISM_INFO> info = module.MechanismInfo(slot, wanted.mechanism);
      if (!info.ok() && info.status().code() != StatusCode::kUnimplemented) return info.status();
      if (info.ok()) {
        check.info = *info;
        check.present =
            (info->flags & wanted.flags) == wanted.flags && KeySizeFits(*info, wanted.key_size);
      }
    }
    caps.checks.push_back(std::move(check));
  }
  caps.aes_key_gen = present(CKM_AES_KEY_GEN);
  caps.aes_gcm = present(CKM_AES_GCM);
  caps.generic_secret_key_gen = present(CKM_GENERIC_SECRET_KEY_GEN);
  caps.hmac_sha256 = present(CKM_SHA256_HMAC);
  caps.eddsa = present(CKM_EC_EDWARDS_KEY_PAIR_GEN) && present(CKM_EDDSA);
  caps.ecdsa_sha256 = present(CKM_ECDSA_SHA256);
  caps.ecdsa = present(CKM_EC_KEY_PAIR_GEN) &&
               (caps.ecdsa_sha256 || (present(CKM_ECDSA) && present(CKM_SHA256)));
  caps.aes_key_wrap_pad = present(CKM_AES_KEY_WRAP_PAD);
  return caps;
}

}  // namespace pinvault::pkcs11
