#include "pkcs11/audit.h"

#include <cstdio>
#include <map>

#include "pkcs11/objects.h"

namespace pinvault::pkcs11 {
namespace {

constexpr std::array<FlagInfo, kFlagCount> kFlags = {{
    {Flag::kToken, CKA_TOKEN, "CKA_TOKEN", "token", false},
    {Flag::kPrivate, CKA_PRIVATE, "CKA_PRIVATE", "private", false},
    {Flag::kSensitive, CKA_SENSITIVE, "CKA_SENSITIVE", "sensitive", false},
    {Flag::kAlwaysSensitive, CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", "always_sensitive",
     false},
    {Flag::kExtractable, CKA_EXTRACTABLE, "CKA_EXTRACTABLE", "extractable", false},
    {Flag::kNeverExtractable, CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", "never_extractable",
     false},
    {Flag::kLocal, CKA_LOCAL, "CKA_LOCAL", "local", false},
    {Flag::kModifiable, CKA_MODIFIABLE, "CKA_MODIFIABLE", "modifiable", false},
    {Flag::kCopyable, CKA_COPYABLE, "CKA_COPYABLE", "copyable", false},
    {Flag::kDestroyable, CKA_DESTROYABLE, "CKA_DESTROYABLE", "destroyable", false},
    {Flag::kEncrypt, CKA_ENCRYPT, "CKA_ENCRYPT", "encrypt", true},
    {Flag::kDecrypt, CKA_DECRYPT, "CKA_DECRYPT", "decrypt", true},
    {Flag::kSign, CKA_SIGN, "CKA_SIGN", "sign", true},
    {Flag::kVerify, CKA_VERIFY, "CKA_VERIFY", "verify", true},
    {Flag::kWrap, CKA_WRAP, "CKA_WRAP", "wrap", true},
    {Flag::kUnwrap, CKA_UNWRAP, "CKA_UNWRAP", "unwrap", true},
    {Flag::kDerive, CKA_DERIVE, "CKA_DERIVE", "derive", true},
    {Flag::kSignRecover, CKA_SIGN_RECOVER, "CKA_SIGN_RECOVER", "sign_recover", true},
    {Flag::kVerifyRecover, CKA_VERIFY_RECOVER, "CKA_VERIFY_RECOVER", "verify_recover", true},
}};

static_assert(
    [] {
      for (size_t i = 0; i < kFlagCount; ++i) {
        if (kFlags[i].flag != static_cast<Flag>(i)) return false;
      }
      return true;
    }(),
    "kFlags must list the flags in enum order");

bool Allowed(const Usages& u, Flag flag) {
  switch (flag) {
    case Flag::kEncrypt:
      return u.encrypt;
    case Flag::kDecrypt:
      return u.decrypt;
    case Flag::kSign:
      return u.sign;
    case Flag::kVerify:
      return u.verify;
    case Flag::kWrap:
      return u.wrap;
    case Flag::kUnwrap:
      return u.unwrap;
    case Flag::kDerive:
      return u.derive;
    case Flag::kSignRecover:
      return u.sign_recover;
    case Flag::kVerifyRecover:
      return u.verify_recover;
    default:
      return false;
  }
}

std::string UsageList(const Usages& u) {
  std::string out;
  for (const FlagInfo& info : kFlags) {
    if (info.usage && Allowed(u, info.flag)) {
      if (!out.empty()) out += ", ";
      out += info.name;
    }
  }
  return out.empty() ? "nothing" : out;
}

// Require adds a violation unless `flag` is reported and equals `expected`.
void Require(ObjectReport& report, Flag flag, bool expected, const std::string& why = {}) {
  std::optional<bool> value = report.attributes.Get(flag);
  const FlagInfo& info = InfoFor(flag);
  if (!value.has_value()) {
    report.violations.push_back({info.attribute, "is not reported by the module; must be " +
                                                     std::string(expected ? "true" : "false")});
  } else if (*value != expected) {
    report.violations.push_back({info.attribute, std::string("is ") + (*value ? "true" : "false") +
                                                     "; must be " + (expected ? "true" : "false") +
                                                     (why.empty() ? "" : " (" + why + ")")});
  }
}

// RequireUsages checks every usage flag against the role: allowed usages must be set, others
// must not be (an unreported usage counts as "not set").
void RequireUsages(ObjectReport& report, const RoleSpec& spec) {
  for (const FlagInfo& info : kFlags) {
    if (!info.usage) continue;
    std::optional<bool> value = report.attributes.Get(info.flag);
    bool allowed = Allowed(spec.usages, info.flag);
    if (value.value_or(false) && !allowed) {
      report.violations.push_back({info.attribute, std::string("is true; the ") + spec.description +
                                                       " may only " + UsageList(spec.usages)});
    } else if (allowed && !value.value_or(false)) {
      report.violations.push_back(
          {info.attribute, std::string("is ") + (value.has_value() ? "false" : "not reported") +
                               "; the " + spec.description + " needs it"});
    }
  }
}

void RequireKeyType(ObjectReport& report, std::initializer_list<CK_KEY_TYPE> allowed) {
  const std::optional<CK_KEY_TYPE>& type = report.attributes.key_type;
  for (CK_KEY_TYPE t : allowed) {
    if (type.has_value() && *type == t) return;
  }
  report.violations.push_back(
      {"CKA_KEY_TYPE", "is " + (type.has_value() ? KeyTypeName(*type) : std::string("unknown")) +
                           ", which the " + report.description + " may not be"});
}

// AppliesTo: whether a non-usage flag exists for objects of `object_class` at all (PKCS#11
// defines sensitivity and extractability for secret and private keys only, CKA_LOCAL for keys).
bool AppliesTo(Flag flag, CK_OBJECT_CLASS object_class) {
  bool secret_or_private = object_class == CKO_SECRET_KEY || object_class == CKO_PRIVATE_KEY;
  switch (flag) {
    case Flag::kSensitive:
    case Flag::kAlwaysSensitive:
    case Flag::kExtractable:
    case Flag::kNeverExtractable:
      return secret_or_private;
    case Flag::kLocal:
      return secret_or_private || object_class == CKO_PUBLIC_KEY;
    default:
      return true;
  }
}

void NoteUnavailable(ObjectReport& report) {
  CK_OBJECT_CLASS object_class = report.attributes.object_class.value_or(CKO_VENDOR_DEFINED);
  for (const FlagInfo& info : kFlags) {
    if (!report.attributes.Get(info.flag).has_value() && !info.usage &&
        AppliesTo(info.flag, object_class)) {
      report.notes.push_back(std::string(info.attribute) +
                             " unavailable (not reported by the "
                             "module for this object)");
    }
  }
}

void CheckRealmKey(ObjectReport& report, const RoleSpec& spec, const AuditPolicy& policy) {
  Require(report, Flag::kToken, true);
  Require(report, Flag::kPrivate, true);
  Require(report, Flag::kSensitive, true);
  Require(report, Flag::kAlwaysSensitive, true, "the key value was once readable");
  Require(report, Flag::kExtractable, false, "the key could be wrapped out");
  Require(report, Flag::kNeverExtractable, true, "the key was once extractable");
  if (policy.require_local) {
    Require(report, Flag::kLocal, true, "not generated on this token");
  } else {
    report.notes.push_back("CKA_LOCAL not required by the audit policy");
  }
  Require(report, Flag::kModifiable, false, "its usages could be changed");
  RequireUsages(report, spec);
  switch (spec.role) {
    case RealmKeyRole::kRecordSeal: {
      RequireKeyType(report, {CKK_AES});
      std::optional<CK_ULONG> len = report.attributes.value_len;
      if (!len.has_value() || *len != 32) {
        report.violations.push_back(
            {"CKA_VALUE_LEN", "is " + (len ? std::to_string(*len) : std::string("unknown")) +
                                  "; the record-sealing key must be AES-256 (32)"});
      }
      break;
    }
    case RealmKeyRole::kRecordIdMac:
    case RealmKeyRole::kAnchorMac: {
      RequireKeyType(report, {CKK_GENERIC_SECRET, CKK_SHA256_HMAC});
      std::optional<CK_ULONG> len = report.attributes.value_len;
      if (!len.has_value() || *len < 32) {
        report.violations.push_back(
            {"CKA_VALUE_LEN", "is " + (len ? std::to_string(*len) : std::string("unknown")) +
                                  "; an HMAC-SHA256 key needs at least 32 bytes"});
      }
      break;
    }
    case RealmKeyRole::kAuditSignPrivate:
      RequireKeyType(report, {CKK_EC_EDWARDS, CKK_EC});
      break;
    default:
      break;
  }
}

}  // namespace

const std::array<FlagInfo, kFlagCount>& AllFlags() { return kFlags; }

const FlagInfo& InfoFor(Flag flag) { return kFlags[static_cast<size_t>(flag)]; }

std::string ObjectClassName(CK_OBJECT_CLASS object_class) {
  switch (object_class) {
    case CKO_DATA:
      return "data";
    case CKO_CERTIFICATE:
      return "certificate";
    case CKO_PUBLIC_KEY:
      return "public key";
    case CKO_PRIVATE_KEY:
      return "private key";
    case CKO_SECRET_KEY:
      return "secret key";
    case CKO_HW_FEATURE:
      return "hardware feature";
    case CKO_DOMAIN_PARAMETERS:
      return "domain parameters";
    case CKO_MECHANISM:
      return "mechanism";
    case CKO_OTP_KEY:
      return "OTP key";
    default:
      break;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "class 0x%lx", static_cast<unsigned long>(object_class));
  return buf;
}

std::string KeyTypeName(CK_KEY_TYPE key_type) {
  switch (key_type) {
    case CKK_RSA:
      return "RSA";
    case CKK_DSA:
      return "DSA";
    case CKK_DH:
      return "DH";
    case CKK_EC:
      return "EC";
    case CKK_EC_EDWARDS:
      return "EC_EDWARDS";
    case CKK_GENERIC_SECRET:
      return "GENERIC_SECRET";
    case CKK_SHA256_HMAC:
      return "SHA256_HMAC";
    case CKK_AES:
      return "AES";
    case CKK_DES3:
      return "DES3";
    default:
      break;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key type 0x%lx", static_cast<unsigned long>(key_type));
  return buf;
}

StatusOr<ObjectAttributes> ReadObjectAttributes(SessionPool& pool, CK_OBJECT_HANDLE object) {
  CK_FUNCTION_LIST* f = pool.functions();
  std::optional<ObjectAttributes> result;
  // Codes that mean "this object has no such (readable) attribute".
  auto absent = [](CK_RV rv) {
    return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE;
  };
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    result.reset();
    ObjectAttributes out;
    out.handle = object;
    CK_ULONG ulong_value = 0;
    CK_RV rv = ReadUlongOn(f, session, object, CKA_CLASS, &ulong_value);
    if (rv == CKR_OK) {
      out.object_class = ulong_value;
    } else if (!absent(rv)) {
      return {rv, "C_GetAttributeValue"};
    }
    rv = ReadUlongOn(f, session, object, CKA_KEY_TYPE, &ulong_value);
    if (rv == CKR_OK) {
      out.key_type = ulong_value;
    } else if (!absent(rv)) {
      return {rv, "C_GetAttributeValue"};
    }
    rv = ReadUlongOn(f, session, object, CKA_VALUE_LEN, &ulong_value);
    if (rv == CKR_OK) {
      out.value_len = ulong_value;
    } else if (!absent(rv) && rv != CKR_ATTRIBUTE_VALUE_INVALID) {
      return {rv, "C_GetAttributeValue"};
    }
    pinvault::Bytes bytes;
    rv = ReadBytesOn(f, session, object, CKA_LABEL, &bytes);
    if (rv == CKR_OK) {
      out.label = std::string(bytes.begin(), bytes.end());
    } else if (!absent(rv)) {
      return {rv, "C_GetAttributeValue"};
    }
    rv = ReadBytesOn(f, session, object, CKA_ID, &bytes);
    if (rv == CKR_OK) {
      out.id = bytes;
    } else if (!absent(rv)) {
      return {rv, "C_GetAttributeValue"};
    }
    for (const FlagInfo& info : kFlags) {
      bool value = false;
      rv = ReadBoolOn(f, session, object, info.type, &value);
      if (rv == CKR_OK) {
        out.Set(info.flag, value);
      } else if (!absent(rv) && rv != CKR_ATTRIBUTE_VALUE_INVALID) {
        return {rv, "C_GetAttributeValue"};
      }
    }
    result = std::move(out);
    return {};
  }));
  if (!result.has_value()) return InternalError("object attributes were not read");
  return *std::move(result);
}

StatusOr<std::vector<ObjectAttributes>> ReadAllObjects(SessionPool& pool) {
  AttributeTemplate all;
  all.Bool(CKA_TOKEN, true);
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles, FindObjects(pool, all));
  std::vector<ObjectAttributes> objects;
  for (CK_OBJECT_HANDLE handle : handles) {
    ASSIGN_OR_RETURN(ObjectAttributes attributes, ReadObjectAttributes(pool, handle));
    objects.push_back(std::move(attributes));
  }
  return objects;
}

ObjectReport CheckObject(const ObjectAttributes& attributes, const AuditPolicy& policy) {
  ObjectReport report;
  report.attributes = attributes;
  CK_OBJECT_CLASS object_class = attributes.object_class.value_or(CKO_VENDOR_DEFINED);
  report.role = RoleOf(attributes.label.value_or(""), object_class);
  if (!report.role.has_value()) {
    report.description = "not a realm object";
    if (object_class == CKO_SECRET_KEY || object_class == CKO_PRIVATE_KEY) {
      std::optional<bool> extractable = attributes.Get(Flag::kExtractable);
      if (!extractable.has_value() || *extractable) {
        report.violations.push_back(
            {"CKA_EXTRACTABLE",
             std::string(extractable.has_value() ? "is true" : "is not reported") +
                 " on a key that is not part of the realm: it can leave the token"});
      }
      std::optional<bool> sensitive = attributes.Get(Flag::kSensitive);
      if (!sensitive.value_or(false)) {
        report.violations.push_back(
            {"CKA_SENSITIVE",
             std::string(sensitive.has_value() ? "is false" : "is not reported") +
                 " on a key that is not part of the realm: its value is readable"});
      }
    }
    NoteUnavailable(report);
    return report;
  }
  const RoleSpec& spec = SpecFor(*report.role);
  report.description = spec.description;
  switch (*report.role) {
    case RealmKeyRole::kAuditSignPublic:
      Require(report, Flag::kToken, true);
      if (policy.require_local) Require(report, Flag::kLocal, true, "not generated on this token");
      RequireUsages(report, spec);
      RequireKeyType(report, {CKK_EC_EDWARDS, CKK_EC});
      break;
    case RealmKeyRole::kAnchorHolder:
      Require(report, Flag::kToken, true);
      Require(report, Flag::kPrivate, true, "the anchor must be readable only after login");
      RequireUsages(report, spec);
      if (object_class == CKO_SECRET_KEY) {
        report.description += " (secret key carrying the anchor in CKA_ID)";
        Require(report, Flag::kSensitive, true);
        Require(report, Flag::kExtractable, false);
      } else {
        report.description += " (data object)";
      }
      break;
    default:
      CheckRealmKey(report, spec, policy);
      break;
  }
  NoteUnavailable(report);
  return report;
}

size_t AuditReport::ViolationCount() const {
  size_t count = findings.size();
  for (const ObjectReport& o : objects) count += o.violations.size();
  return count;
}

StatusOr<std::optional<bool>> ProbeWrapEnforcement(SessionPool& pool, const Capabilities& caps) {
  if (!caps.aes_key_gen) return std::optional<bool>();
  std::vector<CK_MECHANISM_TYPE> mechanisms;
  if (caps.aes_key_wrap_pad) mechanisms.push_back(CKM_AES_KEY_WRAP_PAD);
  mechanisms.push_back(CKM_AES_KEY_WRAP);
  mechanisms.push_back(CKM_AES_ECB);
  CK_FUNCTION_LIST* f = pool.functions();
  std::optional<bool> enforced;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) -> CallResult {
    enforced.reset();
    // Session objects only (CKA_TOKEN false): nothing on the token changes.
    AttributeTemplate wrapping;
    wrapping.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Ulong(CKA_VALUE_LEN, 32)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_WRAP, true)
        .Bool(CKA_ENCRYPT, true);
    AttributeTemplate target;
    target.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Ulong(CKA_VALUE_LEN, 32)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_EXTRACTABLE, false)
        .Bool(CKA_ENCRYPT, true);
    CK_MECHANISM generate{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE wrapping_key = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE target_key = CK_INVALID_HANDLE;
    CK_RV rv =
        f->C_GenerateKey(session, &generate, wrapping.data(), wrapping.size(), &wrapping_key);
    if (rv != CKR_OK) return {rv, "C_GenerateKey"};
    rv = f->C_GenerateKey(session, &generate, target.data(), target.size(), &target_key);
    if (rv != CKR_OK) {
      f->C_DestroyObject(session, wrapping_key);
      return {rv, "C_GenerateKey"};
    }
    for (CK_MECHANISM_TYPE type : mechanisms) {
      CK_MECHANISM mechanism{type, nullptr, 0};
      CK_BYTE out[128];
      CK_ULONG length = sizeof(out);
      rv = f->C_WrapKey(session, &mechanism, wrapping_key, target_key, out, &length);
      SecureWipe(out);
      if (rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
          rv == CKR_FUNCTION_NOT_SUPPORTED) {
        continue;
      }
      enforced = rv != CKR_OK;
      break;
    }
    f->C_DestroyObject(session, target_key);
    f->C_DestroyObject(session, wrapping_key);
    return {};
  }));
  return enforced;
}

StatusOr<AuditReport> AuditToken(SessionPool& pool, const Capabilities& caps,
                                 const AuditPolicy& policy) {
  AuditReport report;
  report.policy = policy;
  ASSIGN_OR_RETURN(std::vector<ObjectAttributes> objects, ReadAllObjects(pool));
  std::map<std::string, int> realm_labels;  // "label/class" -> count
  bool have_sealing_key = false;
  for (const ObjectAttributes& attributes : objects) {
    ObjectReport object = CheckObject(attributes, policy);
    if (object.role.has_value() && *object.role != RealmKeyRole::kAnchorHolder) {
      std::string key = attributes.label.value_or("") + "/" +
                        ObjectClassName(attributes.object_class.value_or(0));
      if (++realm_labels[key] == 2) {
        report.findings.push_back(
            {attributes.label.value_or(""),
             {"CKA_LABEL", "is used by more than one " +
                               ObjectClassName(attributes.object_class.value_or(0)) +
                               "; realm keys must be unique"}});
      }
      if (*object.role == RealmKeyRole::kRecordSeal) have_sealing_key = true;
    }
    report.objects.push_back(std::move(object));
  }
  auto require_present = [&](const std::string& label, CK_OBJECT_CLASS object_class,
                             const char* what) {
    if (realm_labels.count(label + "/" + ObjectClassName(object_class)) == 0) {
      report.findings.push_back({label,
                                 {"presence", std::string("the ") + what +
                                                  " is missing (run `pinvault-admin hsm "
                                                  "init`)"}});
    }
  };
  if (!have_sealing_key) {
    report.findings.push_back(
        {SealingKeyLabel(1),
         {"presence", "no record-sealing key is on the token (run `pinvault-admin hsm init`)"}});
  }
  require_present(kRecordIdMacLabel, CKO_SECRET_KEY, "record-id MAC key");
  require_present(kAnchorMacLabel, CKO_SECRET_KEY, "anchor MAC key");
  require_present(kAuditSignLabel, CKO_PRIVATE_KEY, "audit signing key");
  require_present(kAuditSignLabel, CKO_PUBLIC_KEY, "audit verification key");

  ASSIGN_OR_RETURN(report.wrap_enforced, ProbeWrapEnforcement(pool, caps));
  if (report.wrap_enforced.has_value() && !*report.wrap_enforced) {
    report.findings.push_back({"module",
                               {"CKA_EXTRACTABLE",
                                "is not enforced: C_WrapKey exported a key created with "
                                "CKA_EXTRACTABLE=false, so no key on this token is protected by "
                                "its attributes"}});
  }
  return report;
}

}  // namespace pinvault::pkcs11
