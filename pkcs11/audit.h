// audit.h: read every object's attributes and check the realm's key policy.
//
// ReadObjectAttributes reads, one attribute at a time, the class, key type, label, id, value
// length, the storage and protection flags (token, private, sensitive, always sensitive,
// extractable, never extractable, local, modifiable, copyable, destroyable) and every usage flag
// (encrypt, decrypt, sign, verify, wrap, unwrap, derive, sign_recover, verify_recover). An
// attribute the module does not have for the object (CKR_ATTRIBUTE_TYPE_INVALID, e.g. SoftHSM
// and NSS have no CKA_COPYABLE on some objects) is "unavailable", reported as such, not guessed.
//
// Policy (CheckObject), for each realm key (record-sealing, record-id MAC, anchor MAC, audit
// signing private key): token, private, sensitive, always sensitive, not extractable, never
// extractable, local (generated on the token), not modifiable, the right class and key type, and
// exactly the usages of its role — no more, none missing. The audit public key: token, local,
// verify only. The rollback-anchor holder (pkcs11/hsm_keys.h): token, private, no usages (and,
// when it is a secret key, sensitive and not extractable). Any other secret or private key on the
// token that is extractable or not sensitive is a violation (a key that can leave the token);
// other objects are listed and pass. Token-level findings: a realm key missing or duplicated, and
// a module that lets C_WrapKey export a CKA_EXTRACTABLE=false key (NSS softokn 3.87 does; found
// with throw-away session keys, nothing on the token changes).
//
// AuditPolicy::require_local may be relaxed for modules that never report CKA_LOCAL true (NSS
// softokn); the report then says the origin of keys was not checked.
#ifndef PINVAULT_PKCS11_AUDIT_H_
#define PINVAULT_PKCS11_AUDIT_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/session_pool.h"
#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// Flag names the boolean attributes the audit reads.
enum class Flag {
  kToken,
  kPrivate,
  kSensitive,
  kAlwaysSensitive,
  kExtractable,
  kNeverExtractable,
  kLocal,
  kModifiable,
  kCopyable,
  kDestroyable,
  kEncrypt,
  kDecrypt,
  kSign,
  kVerify,
  kWrap,
  kUnwrap,
  kDerive,
  kSignRecover,
  kVerifyRecover,
};
inline constexpr size_t kFlagCount = 19;

// FlagInfo describes one boolean attribute.
struct FlagInfo {
  Flag flag;
  CK_ATTRIBUTE_TYPE type;
  const char* attribute;  // "CKA_SENSITIVE"
  const char* name;       // "sensitive" (JSON key, table column)
  bool usage;             // one of the usage flags
};

// AllFlags lists every flag in display order.
const std::array<FlagInfo, kFlagCount>& AllFlags();
const FlagInfo& InfoFor(Flag flag);

// ObjectAttributes is what the module reports about one object; nullopt means unavailable.
struct ObjectAttributes {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  std::optional<CK_OBJECT_CLASS> object_class;
  std::optional<CK_KEY_TYPE> key_type;
  std::optional<std::string> label;
  std::optional<Bytes> id;
  std::optional<CK_ULONG> value_len;
  std::array<std::optional<bool>, kFlagCount> flags{};

  std::optional<bool> Get(Flag flag) const { return flags[static_cast<size_t>(flag)]; }
  void Set(Flag flag, std::optional<bool> value) { flags[static_cast<size_t>(flag)] = value; }
};

// ReadObjectAttributes reads every audited attribute of `object` in one leased session.
StatusOr<ObjectAttributes> ReadObjectAttributes(SessionPool& pool, CK_OBJECT_HANDLE object);

// ReadAllObjects lists every token object the logged-in user can see, with its attributes
// (session objects, which vanish with their session, are not part of the token).
StatusOr<std::vector<ObjectAttributes>> ReadAllObjects(SessionPool& pool);

// ObjectClassName / KeyTypeName render CKO_ / CKK_ values ("secret key", "AES").
std::string ObjectClassName(CK_OBJECT_CLASS object_class);
std::string KeyTypeName(CK_KEY_TYPE key_type);

struct AuditPolicy {
  bool require_local = true;
};

// Violation is one broken rule: which attribute and what is wrong.
struct Violation {
  std::string attribute;  // "CKA_EXTRACTABLE", or a pseudo-name such as "label"
  std::string problem;    // "is true; must be false"
};

// ObjectReport is the verdict on one object.
struct ObjectReport {
  ObjectAttributes attributes;
  std::optional<RealmKeyRole> role;  // nullopt: not a realm object
  std::string description;           // "record-sealing key", "not a realm object"
  std::vector<Violation> violations;
  std::vector<std::string> notes;  // e.g. "CKA_COPYABLE unavailable"
  bool pass() const { return violations.empty(); }
};

// TokenFinding is a violation that is not about one object (missing key, module behaviour).
struct TokenFinding {
  std::string subject;  // "pinvault-anchor-mac", "module"
  Violation violation;
};

struct AuditReport {
  std::vector<ObjectReport> objects;
  std::vector<TokenFinding> findings;
  // WrapEnforced: true if C_WrapKey refused a non-extractable key, false if it exported it,
  // nullopt if the probe could not run (no AES key generation or wrap mechanism).
  std::optional<bool> wrap_enforced;
  AuditPolicy policy;

  size_t ViolationCount() const;
  bool pass() const { return ViolationCount() == 0; }
};

// CheckObject applies the policy to one object's attributes (no token access).
ObjectReport CheckObject(const ObjectAttributes& attributes, const AuditPolicy& policy);

// ProbeWrapEnforcement creates two session keys (a wrapping key and a non-extractable key),
// tries to wrap the second with the first, and destroys both. Returns whether the module refused.
StatusOr<std::optional<bool>> ProbeWrapEnforcement(SessionPool& pool, const Capabilities& caps);

// AuditToken reads every object and checks it, then the token-level rules.
StatusOr<AuditReport> AuditToken(SessionPool& pool, const Capabilities& caps,
                                 const AuditPolicy& policy);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_AUDIT_H_
