// key_set.h: the realm's key set on a token — labels, ids, templates, creation and lookup.
//
// Objects of a realm (all CKA_TOKEN):
//   label                       class / type                 usages          CKA_ID
//   pinvault-record-seal-N      secret key, AES-256          encrypt,decrypt 01 || be32(N)
//   pinvault-record-id-mac      secret key, generic (32 B)   sign,verify     02 || be32(1)
//   pinvault-anchor-mac         secret key, generic (32 B)   sign,verify     03 || be32(1)
//   pinvault-audit-sign         private key, Ed25519 or P-256  sign          04 || be32(1)
//   pinvault-audit-sign         public key (its other half)    verify        04 || be32(1)
//   pinvault-anchor             the rollback-anchor holder (pkcs11/hsm_keys.h), no usages
//
// Every key is generated on the token (CKA_LOCAL) with an explicit template: CKA_TOKEN,
// CKA_PRIVATE, CKA_SENSITIVE true; CKA_EXTRACTABLE and CKA_MODIFIABLE false; every usage
// attribute set explicitly, true only for the usages of its role. (The public half of the audit
// key is public: CKA_PRIVATE false, verify only.) Several sealing keys may exist: N is the key id
// carried by sealed records, the highest N seals new records (rotation adds N+1).
//
// Never generate over a label: NSS softokn, asked to generate a token key whose class, label and
// CKA_ID match an existing one, regenerates that key in place and the old value is lost.
// EnsureRealmKeys therefore looks every key up first and generates only absent ones; two `hsm
// init` runs must not race on one token.
//
// Cloning to a second HSM: the realm keys are non-extractable, so they cannot be wrapped out —
// by design, no code path can copy them. CKM_AES_KEY_WRAP_PAD wrap/unwrap (pkcs11/operations.h)
// is available for keys created extractable for that purpose (tested SoftHSM -> SoftHSM), but a
// second HSM gets its own realm key set (`pinvault-admin hsm init`), i.e. it is a separate realm;
// redundancy comes from the protocol's threshold across realms. Wrapping under a trusted key
// (CKA_WRAP_WITH_TRUSTED) would need SO-set CKA_TRUSTED keys, which SoftHSM and NSS do not offer
// in a form we could test, so it is not supported.
#ifndef PINVAULT_PKCS11_KEY_SET_H_
#define PINVAULT_PKCS11_KEY_SET_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/objects.h"
#include "pkcs11/session_pool.h"
#include "vault/hsm.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

inline constexpr char kRecordSealLabelPrefix[] = "pinvault-record-seal-";
inline constexpr char kRecordIdMacLabel[] = "pinvault-record-id-mac";
inline constexpr char kAnchorMacLabel[] = "pinvault-anchor-mac";
inline constexpr char kAuditSignLabel[] = "pinvault-audit-sign";
inline constexpr char kAnchorLabel[] = "pinvault-anchor";  // partition 0's holders

// RealmKeyRole names each kind of realm object.
enum class RealmKeyRole {
  kRecordSeal,
  kRecordIdMac,
  kAnchorMac,
  kAuditSignPrivate,
  kAuditSignPublic,
  kAnchorHolder,
};

// Usages is the set of usage attributes of a key.
struct Usages {
  bool encrypt = false;
  bool decrypt = false;
  bool sign = false;
  bool verify = false;
  bool wrap = false;
  bool unwrap = false;
  bool derive = false;
  bool sign_recover = false;
  bool verify_recover = false;
};

// RoleSpec is what policy expects of an object of a role.
struct RoleSpec {
  RealmKeyRole role;
  const char* description;       // "record-sealing key"
  CK_OBJECT_CLASS object_class;  // kAnchorHolder: CKO_SECRET_KEY (CKO_DATA from earlier versions)
  Usages usages;                 // the only usages allowed
};

// SpecFor returns the policy of `role`.
const RoleSpec& SpecFor(RealmKeyRole role);

// RoleOf recognises a realm object by label and class; nullopt for anything else.
std::optional<RealmKeyRole> RoleOf(std::string_view label, CK_OBJECT_CLASS object_class);

// SealingKeyLabel is "pinvault-record-seal-<id>"; ParseSealingKeyLabel inverts it (ids 1..2^32-1,
// decimal without leading zeros).
std::string SealingKeyLabel(uint32_t id);
std::optional<uint32_t> ParseSealingKeyLabel(std::string_view label);

// AnchorLabel is the label of partition `partition`'s anchor holders: kAnchorLabel for
// partition 0 (the label of the single-tree layout), "pinvault-anchor-p<N>" for partition N;
// ParseAnchorLabel inverts it (N from 1, decimal without leading zeros).
std::string AnchorLabel(uint32_t partition);
std::optional<uint32_t> ParseAnchorLabel(std::string_view label);

// RealmKeyId is the CKA_ID of a realm key: role byte || big-endian number.
Bytes RealmKeyId(RealmKeyRole role, uint32_t number);

// RealmKeys holds the handles of a realm's keys (valid while the module stays initialised).
struct RealmKeys {
  std::map<uint32_t, CK_OBJECT_HANDLE> sealing;  // by key id
  CK_OBJECT_HANDLE record_id_mac = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE anchor_mac = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE audit_private = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE audit_public = CK_INVALID_HANDLE;
  vault::SignatureAlgorithm audit_algorithm = vault::SignatureAlgorithm::kEd25519;

  // CurrentSealingKeyId is the highest sealing key id (0 if there is none).
  uint32_t CurrentSealingKeyId() const { return sealing.empty() ? 0 : sealing.rbegin()->first; }
};

// FindRealmKeys looks every realm key up by label. NOT_FOUND naming the first missing key
// (run `pinvault-admin hsm init`), FAILED_PRECONDITION if a label is duplicated or a key has
// the wrong type.
StatusOr<RealmKeys> FindRealmKeys(SessionPool& pool);

// KeySetOptions tune EnsureRealmKeys.
struct KeySetOptions {
  // The audit key algorithm; default: Ed25519 where the token has it, else ECDSA P-256.
  std::optional<vault::SignatureAlgorithm> audit_algorithm;
};

// KeySetAction reports what EnsureRealmKeys did for one key.
struct KeySetAction {
  std::string label;
  std::string kind;  // "AES-256 secret key", "Ed25519 key pair", ...
  bool created = false;
};

// EnsureRealmKeys creates every realm key that is absent and leaves existing ones alone; it
// never overwrites or duplicates a key. FAILED_PRECONDITION if a label is already duplicated, if
// only one half of the audit key pair exists, or if the token lacks a needed mechanism.
StatusOr<std::vector<KeySetAction>> EnsureRealmKeys(SessionPool& pool, const Capabilities& caps,
                                                    KeySetOptions options);

// AddSealingKey generates sealing key (current highest id + 1) and returns its id.
StatusOr<uint32_t> AddSealingKey(SessionPool& pool);

// SealingKeyTemplate / MacKeyTemplate are the generation templates (exposed for tests).
AttributeTemplate SealingKeyTemplate(uint32_t id);
AttributeTemplate MacKeyTemplate(RealmKeyRole role);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_KEY_SET_H_
