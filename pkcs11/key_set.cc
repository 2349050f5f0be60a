#include "pkcs11/key_set.h"

#include <charconv>

namespace pinvault::pkcs11 {
namespace {

// DER-encoded curve OIDs for CKA_EC_PARAMS.
constexpr uint8_t kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};  // 1.3.101.112
constexpr uint8_t kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                0xce, 0x3d, 0x03, 0x01, 0x07};  // 1.2.840.10045.3.1.7

constexpr Usages kNoUsages{};
constexpr Usages kEncryptDecrypt{.encrypt = true, .decrypt = true};
constexpr Usages kSignVerify{.sign = true, .verify = true};
constexpr Usages kSignOnly{.sign = true};
constexpr Usages kVerifyOnly{.verify = true};

constexpr RoleSpec kSpecs[] = {
    {RealmKeyRole::kRecordSeal, "record-sealing key", CKO_SECRET_KEY, kEncryptDecrypt},
    {RealmKeyRole::kRecordIdMac, "record-id MAC key", CKO_SECRET_KEY, kSignVerify},
    {RealmKeyRole::kAnchorMac, "anchor MAC key", CKO_SECRET_KEY, kSignVerify},
    {RealmKeyRole::kAuditSignPrivate, "audit signing key", CKO_PRIVATE_KEY, kSignOnly},
    {RealmKeyRole::kAuditSignPublic, "audit verification key", CKO_PUBLIC_KEY, kVerifyOnly},
    {RealmKeyRole::kAnchorHolder, "rollback-anchor holder", CKO_SECRET_KEY, kNoUsages},
};

uint8_t RoleByte(RealmKeyRole role) {
  switch (role) {
    case RealmKeyRole::kRecordSeal:
      return 0x01;
    case RealmKeyRole::kRecordIdMac:
      return 0x02;
    case RealmKeyRole::kAnchorMac:
      return 0x03;
    case RealmKeyRole::kAuditSignPrivate:
    case RealmKeyRole::kAuditSignPublic:
      return 0x04;
    case RealmKeyRole::kAnchorHolder:
      return 0x05;
  }
  return 0;
}

// UsageAttributes sets every usage attribute meaningful for `object_class` explicitly.
void UsageAttributes(AttributeTemplate& t, CK_OBJECT_CLASS object_class, const Usages& u) {
  if (object_class == CKO_SECRET_KEY || object_class == CKO_PUBLIC_KEY) {
    t.Bool(CKA_ENCRYPT, u.encrypt).Bool(CKA_VERIFY, u.verify).Bool(CKA_WRAP, u.wrap);
  }
  if (object_class == CKO_SECRET_KEY || object_class == CKO_PRIVATE_KEY) {
    t.Bool(CKA_DECRYPT, u.decrypt).Bool(CKA_SIGN, u.sign).Bool(CKA_UNWRAP, u.unwrap);
  }
  if (object_class == CKO_PUBLIC_KEY) t.Bool(CKA_VERIFY_RECOVER, u.verify_recover);
  if (object_class == CKO_PRIVATE_KEY) t.Bool(CKA_SIGN_RECOVER, u.sign_recover);
  t.Bool(CKA_DERIVE, u.derive);
}

void SecretKeyCommon(AttributeTemplate& t, CK_KEY_TYPE key_type, std::string_view label,
                     const Bytes& id) {
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, key_type)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_MODIFIABLE, false)
      .String(CKA_LABEL, label)
      .Bytes(CKA_ID, id);
}

const char* LabelFor(RealmKeyRole role) {
  switch (role) {
    case RealmKeyRole::kRecordIdMac:
      return kRecordIdMacLabel;
    case RealmKeyRole::kAnchorMac:
      return kAnchorMacLabel;
    case RealmKeyRole::kAuditSignPrivate:
    case RealmKeyRole::kAuditSignPublic:
      return kAuditSignLabel;
    case RealmKeyRole::kAnchorHolder:
      return kAnchorLabel;
    case RealmKeyRole::kRecordSeal:
      return kRecordSealLabelPrefix;
  }
  return "";
}

Status GenerateKey(SessionPool& pool, CK_MECHANISM_TYPE mechanism_type, AttributeTemplate& t,
                   std::string_view label) {
  CK_FUNCTION_LIST* f = pool.functions();
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  Status s = pool.Run([&](CK_SESSION_HANDLE session) {
    CK_MECHANISM mechanism{mechanism_type, nullptr, 0};
    return CallResult{f->C_GenerateKey(session, &mechanism, t.data(), t.size(), &key),
                      "C_GenerateKey"};
  });
  return s.WithContext("generating '" + std::string(label) + "'");
}

Status GenerateAuditKeyPair(SessionPool& pool, vault::SignatureAlgorithm algorithm) {
  bool ed = algorithm == vault::SignatureAlgorithm::kEd25519;
  CK_KEY_TYPE key_type = ed ? CKK_EC_EDWARDS : CKK_EC;
  ByteView params = ed ? ByteView(kEd25519Oid) : ByteView(kP256Oid);
  Bytes id = RealmKeyId(RealmKeyRole::kAuditSignPublic, 1);
  AttributeTemplate pub;
  pub.Ulong(CKA_CLASS, CKO_PUBLIC_KEY)
      .Ulong(CKA_KEY_TYPE, key_type)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, false)
      .Bool(CKA_MODIFIABLE, false)
      .String(CKA_LABEL, kAuditSignLabel)
      .Bytes(CKA_ID, id)
      .Bytes(CKA_EC_PARAMS, params);
  UsageAttributes(pub, CKO_PUBLIC_KEY, SpecFor(RealmKeyRole::kAuditSignPublic).usages);
  AttributeTemplate priv;
  priv.Ulong(CKA_CLASS, CKO_PRIVATE_KEY)
      .Ulong(CKA_KEY_TYPE, key_type)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_MODIFIABLE, false)
      .String(CKA_LABEL, kAuditSignLabel)
      .Bytes(CKA_ID, id);
  UsageAttributes(priv, CKO_PRIVATE_KEY, SpecFor(RealmKeyRole::kAuditSignPrivate).usages);
  CK_FUNCTION_LIST* f = pool.functions();
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv_handle = CK_INVALID_HANDLE;
  Status s = pool.Run([&](CK_SESSION_HANDLE session) {
    CK_MECHANISM mechanism{ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    return CallResult{f->C_GenerateKeyPair(session, &mechanism, pub.data(), pub.size(), priv.data(),
                                           priv.size(), &pub_handle, &priv_handle),
                      "C_GenerateKeyPair"};
  });
  return s.WithContext(std::string("generating '") + kAuditSignLabel + "'");
}

StatusOr<CK_OBJECT_HANDLE> FindOne(SessionPool& pool, std::string_view label,
                                   CK_OBJECT_CLASS object_class) {
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, FindByLabel(pool, label, object_class));
  if (found.empty()) {
    return NotFoundError("realm key '" + std::string(label) +
                         "' is not on the token (run `pinvault-admin hsm init`)");
  }
  if (found.size() > 1) {
    return FailedPreconditionError(std::to_string(found.size()) + " objects are labelled '" +
                                   std::string(label) + "'; remove the extra ones");
  }
  return found.front();
}

Status CheckKeyType(SessionPool& pool, CK_OBJECT_HANDLE key, std::string_view label,
                    std::initializer_list<CK_KEY_TYPE> allowed) {
  ASSIGN_OR_RETURN(CK_ULONG type, ReadUlong(pool, key, CKA_KEY_TYPE));
  for (CK_KEY_TYPE t : allowed) {
    if (t == type) return OkStatus();
  }
  return FailedPreconditionError("realm key '" + std::string(label) + "' has key type " +
                                 std::to_string(type) + ", which its role does not allow");
}

struct SealingKeyScan {
  std::map<uint32_t, CK_OBJECT_HANDLE> keys;
};

StatusOr<SealingKeyScan> ScanSealingKeys(SessionPool& pool) {
  AttributeTemplate match;
  match.Bool(CKA_TOKEN, true).Ulong(CKA_CLASS, CKO_SECRET_KEY).Ulong(CKA_KEY_TYPE, CKK_AES);
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> candidates, FindObjects(pool, match));
  SealingKeyScan scan;
  for (CK_OBJECT_HANDLE handle : candidates) {
    ASSIGN_OR_RETURN(std::string label, ReadString(pool, handle, CKA_LABEL));
    std::optional<uint32_t> id = ParseSealingKeyLabel(label);
    if (!id.has_value()) continue;
    if (!scan.keys.emplace(*id, handle).second) {
      return FailedPreconditionError("several objects are labelled '" + label +
                                     "'; remove the extra ones");
    }
  }
  return scan;
}

}  // namespace

const RoleSpec& SpecFor(RealmKeyRole role) {
  for (const RoleSpec& spec : kSpecs) {
    if (spec.role == role) return spec;
  }
  return kSpecs[0];
}

std::optional<RealmKeyRole> RoleOf(std::string_view label, CK_OBJECT_CLASS object_class) {
  if (ParseSealingKeyLabel(label).has_value() && object_class == CKO_SECRET_KEY) {
    return RealmKeyRole::kRecordSeal;
  }
  if (label == kRecordIdMacLabel && object_class == CKO_SECRET_KEY) {
    return RealmKeyRole::kRecordIdMac;
  }
  if (label == kAnchorMacLabel && object_class == CKO_SECRET_KEY) return RealmKeyRole::kAnchorMac;
  if (label == kAuditSignLabel && object_class == CKO_PRIVATE_KEY) {
    return RealmKeyRole::kAuditSignPrivate;
  }
  if (label == kAuditSignLabel && object_class == CKO_PUBLIC_KEY) {
    return RealmKeyRole::kAuditSignPublic;
  }
  if (ParseAnchorLabel(label) && (object_class == CKO_DATA || object_class == CKO_SECRET_KEY)) {
    return RealmKeyRole::kAnchorHolder;
  }
  return std::nullopt;
}

std::string SealingKeyLabel(uint32_t id) { return kRecordSealLabelPrefix + std::to_string(id); }

namespace {

// ParseNumberAfter parses the decimal number (1..2^32-1, no leading zeros) that follows
// `prefix` in `label`.
std::optional<uint32_t> ParseNumberAfter(std::string_view label, std::string_view prefix) {
  if (label.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view digits = label.substr(prefix.size());
  if (digits.empty() || digits.size() > 10 || digits[0] == '0') return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (value == 0 || value > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(value);
}

constexpr std::string_view kAnchorPartitionInfix = "-p";

}  // namespace

std::optional<uint32_t> ParseSealingKeyLabel(std::string_view label) {
  return ParseNumberAfter(label, kRecordSealLabelPrefix);
}

std::string AnchorLabel(uint32_t partition) {
  if (partition == 0) return kAnchorLabel;
  return std::string(kAnchorLabel) + std::string(kAnchorPartitionInfix) + std::to_string(partition);
}

std::optional<uint32_t> ParseAnchorLabel(std::string_view label) {
  if (label == kAnchorLabel) return 0;
  return ParseNumberAfter(label, std::string(kAnchorLabel) + std::string(kAnchorPartitionInfix));
}

Bytes RealmKeyId(RealmKeyRole role, uint32_t number) {
  return Bytes{RoleByte(role), static_cast<uint8_t>(number >> 24),
               static_cast<uint8_t>(number >> 16), static_cast<uint8_t>(number >> 8),
               static_cast<uint8_t>(number)};
}

AttributeTemplate SealingKeyTemplate(uint32_t id) {
  AttributeTemplate t;
  SecretKeyCommon(t, CKK_AES, SealingKeyLabel(id), RealmKeyId(RealmKeyRole::kRecordSeal, id));
  UsageAttributes(t, CKO_SECRET_KEY, SpecFor(RealmKeyRole::kRecordSeal).usages);
  return t;
}

AttributeTemplate MacKeyTemplate(RealmKeyRole role) {
  AttributeTemplate t;
  SecretKeyCommon(t, CKK_GENERIC_SECRET, LabelFor(role), RealmKeyId(role, 1));
  UsageAttributes(t, CKO_SECRET_KEY, SpecFor(role).usages);
  return t;
}

StatusOr<RealmKeys> FindRealmKeys(SessionPool& pool) {
  RealmKeys keys;
  ASSIGN_OR_RETURN(SealingKeyScan scan, ScanSealingKeys(pool));
  if (scan.keys.empty()) {
    return NotFoundError("no record-sealing key (" + SealingKeyLabel(1) +
                         ") is on the token (run `pinvault-admin hsm init`)");
  }
  keys.sealing = std::move(scan.keys);
  ASSIGN_OR_RETURN(keys.record_id_mac, FindOne(pool, kRecordIdMacLabel, CKO_SECRET_KEY));
  ASSIGN_OR_RETURN(keys.anchor_mac, FindOne(pool, kAnchorMacLabel, CKO_SECRET_KEY));
  ASSIGN_OR_RETURN(keys.audit_private, FindOne(pool, kAuditSignLabel, CKO_PRIVATE_KEY));
  ASSIGN_OR_RETURN(keys.audit_public, FindOne(pool, kAuditSignLabel, CKO_PUBLIC_KEY));
  RETURN_IF_ERROR(CheckKeyType(pool, keys.record_id_mac, kRecordIdMacLabel,
                               {CKK_GENERIC_SECRET, CKK_SHA256_HMAC}));
  RETURN_IF_ERROR(
      CheckKeyType(pool, keys.anchor_mac, kAnchorMacLabel, {CKK_GENERIC_SECRET, CKK_SHA256_HMAC}));
  ASSIGN_OR_RETURN(CK_ULONG audit_type, ReadUlong(pool, keys.audit_private, CKA_KEY_TYPE));
  if (audit_type == CKK_EC_EDWARDS) {
    keys.audit_algorithm = vault::SignatureAlgorithm::kEd25519;
  } else if (audit_type == CKK_EC) {
    keys.audit_algorithm = vault::SignatureAlgorithm::kEcdsaP256;
    ASSIGN_OR_RETURN(Bytes params, ReadBytes(pool, keys.audit_public, CKA_EC_PARAMS));
    if (params != Bytes(std::begin(kP256Oid), std::end(kP256Oid))) {
      return FailedPreconditionError(std::string("'") + kAuditSignLabel +
                                     "' is an EC key on a curve other than P-256");
    }
  } else {
    return FailedPreconditionError(std::string("'") + kAuditSignLabel +
                                   "' is neither an Ed25519 nor an EC key");
  }
  return keys;
}

StatusOr<std::vector<KeySetAction>> EnsureRealmKeys(SessionPool& pool, const Capabilities& caps,
                                                    KeySetOptions options) {
  std::vector<KeySetAction> actions;

  // Check everything before creating anything, so a refusal leaves the token unchanged.
  ASSIGN_OR_RETURN(SealingKeyScan sealing, ScanSealingKeys(pool));
  struct MacPlan {
    RealmKeyRole role;
    bool exists;
  };
  std::vector<MacPlan> macs;
  for (RealmKeyRole role : {RealmKeyRole::kRecordIdMac, RealmKeyRole::kAnchorMac}) {
    ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                     FindByLabel(pool, LabelFor(role), CKO_SECRET_KEY));
    if (found.size() > 1) {
      return FailedPreconditionError(std::to_string(found.size()) + " objects are labelled '" +
                                     LabelFor(role) + "'; remove the extra ones");
    }
    macs.push_back({role, !found.empty()});
  }
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> audit_private,
                   FindByLabel(pool, kAuditSignLabel, CKO_PRIVATE_KEY));
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> audit_public,
                   FindByLabel(pool, kAuditSignLabel, CKO_PUBLIC_KEY));
  if (audit_private.size() > 1 || audit_public.size() > 1 ||
      audit_private.size() != audit_public.size()) {
    return FailedPreconditionError(
        std::string("the audit key pair '") + kAuditSignLabel + "' is incomplete or duplicated (" +
        std::to_string(audit_private.size()) + " private, " + std::to_string(audit_public.size()) +
        " public); fix it by hand before init");
  }
  bool need_audit = audit_private.empty();
  vault::SignatureAlgorithm algorithm = options.audit_algorithm.value_or(caps.PreferredSignature());
  if (sealing.keys.empty() && !(caps.aes_key_gen && caps.aes_gcm)) {
    return FailedPreconditionError("the token lacks CKM_AES_KEY_GEN or CKM_AES_GCM");
  }
  for (const MacPlan& mac : macs) {
    if (!mac.exists && !(caps.generic_secret_key_gen && caps.hmac_sha256)) {
      return FailedPreconditionError(
          "the token lacks CKM_GENERIC_SECRET_KEY_GEN or CKM_SHA256_HMAC");
    }
  }
  if (need_audit) {
    bool ok = algorithm == vault::SignatureAlgorithm::kEd25519 ? caps.eddsa : caps.ecdsa;
    if (!ok) {
      return FailedPreconditionError(
          algorithm == vault::SignatureAlgorithm::kEd25519
              ? "the token lacks CKM_EC_EDWARDS_KEY_PAIR_GEN/CKM_EDDSA for an Ed25519 audit key"
              : "the token lacks CKM_EC_KEY_PAIR_GEN/CKM_ECDSA for a P-256 audit key");
    }
  }

  if (sealing.keys.empty()) {
    AttributeTemplate t = SealingKeyTemplate(1);
    RETURN_IF_ERROR(GenerateKey(pool, CKM_AES_KEY_GEN, t, SealingKeyLabel(1)));
    actions.push_back({SealingKeyLabel(1), "AES-256 secret key", true});
  } else {
    for (const auto& [id, handle] : sealing.keys) {
      actions.push_back({SealingKeyLabel(id), "AES-256 secret key", false});
    }
  }
  for (const MacPlan& mac : macs) {
    if (!mac.exists) {
      AttributeTemplate t = MacKeyTemplate(mac.role);
      RETURN_IF_ERROR(GenerateKey(pool, CKM_GENERIC_SECRET_KEY_GEN, t, LabelFor(mac.role)));
    }
    actions.push_back({LabelFor(mac.role), "HMAC-SHA256 secret key (32 bytes)", !mac.exists});
  }
  std::string pair_kind = algorithm == vault::SignatureAlgorithm::kEd25519 ? "Ed25519 key pair"
                                                                           : "ECDSA P-256 key pair";
  if (need_audit) {
    RETURN_IF_ERROR(GenerateAuditKeyPair(pool, algorithm));
    actions.push_back({kAuditSignLabel, pair_kind, true});
  } else {
    ASSIGN_OR_RETURN(CK_ULONG type, ReadUlong(pool, audit_private.front(), CKA_KEY_TYPE));
    actions.push_back({kAuditSignLabel,
                       type == CKK_EC_EDWARDS ? "Ed25519 key pair" : "ECDSA P-256 key pair",
                       false});
  }
  return actions;
}

StatusOr<uint32_t> AddSealingKey(SessionPool& pool) {
  ASSIGN_OR_RETURN(SealingKeyScan sealing, ScanSealingKeys(pool));
  uint32_t current = sealing.keys.empty() ? 0 : sealing.keys.rbegin()->first;
  if (current == UINT32_MAX) return ResourceExhaustedError("sealing key ids are exhausted");
  uint32_t next = current + 1;
  AttributeTemplate t = SealingKeyTemplate(next);
  RETURN_IF_ERROR(GenerateKey(pool, CKM_AES_KEY_GEN, t, SealingKeyLabel(next)));
  return next;
}

}  // namespace pinvault::pkcs11
