// hsm_keys.h: TokenHsm implements vault::Hsm with the realm key set on a PKCS#11 token.
//
//   // From a URI alone (module from module-path= / module-name=, default SoftHSM2):
//   ASSIGN_OR_RETURN(std::unique_ptr<TokenHsm> hsm,
//                    TokenHsm::Open("pkcs11:token=realm-1?pin-source=file:/etc/pinvault/pin"));
//   // Or on a Module you made (several tokens, NSS parameters, a FaultModule in tests):
//   ASSIGN_OR_RETURN(hsm, TokenHsm::Open(module, uri));
//
// Open finds the token, logs in (SessionPool), detects mechanisms and looks the realm keys up by
// label once (`pinvault-admin hsm init` creates them; see pkcs11/key_set.h). Their object
// handles are cached: no operation searches for objects. If the module ever reports a handle as
// invalid, the keys are looked up again and the operation repeated once.
//
// Speed on SoftHSM2: its file store re-reads a token object's generation file (open, lock,
// read, close) each time the object is used, so an operation with a token key costs about 3x one
// with a session key (bench_pkcs11 prints both). Session-object working copies would avoid that,
// but SoftHSM refuses to copy a CKA_MODIFIABLE=false key (CKR_ATTRIBUTE_READ_ONLY) and NSS
// softokn's copies lose CKA_ALWAYS_SENSITIVE/CKA_NEVER_EXTRACTABLE/CKA_LOCAL; the realm keys stay
// non-modifiable and operations use the token objects.
//
// Seal/Unseal: AES-256-GCM (CKM_AES_GCM, 96-bit IV, 128-bit tag) with sealing key N
// ("pinvault-record-seal-N"); the blob carries N, so records sealed under an older key still
// unseal after rotation (AddSealingKey). IVs are never reused: each key has a GcmIvSource
// (pkcs11/operations.h): 64-bit random prefix drawn from the token || 32-bit counter.
// Mac/VerifyMac: CKM_SHA256_HMAC with the record-id or anchor MAC key. Sign: Ed25519 (CKM_EDDSA)
// or, where the token has no EdDSA (NSS softokn), ECDSA P-256 over SHA-256, r||s.
//
// The rollback anchor. The core authenticates the anchor bytes itself (anchor MAC key), so the
// token only has to keep bytes durably and hand back the newest. Each StoreAnchor creates a new
// object labelled "pinvault-anchor" holding
//     "PVA1" || be64(sequence) || anchor
// and only then destroys the older ones; LoadAnchor picks the highest sequence, so a crash
// between the two steps leaves a readable anchor. The holder is:
//   - on tokens with token data objects (SoftHSM2): a CKO_DATA object, CKA_PRIVATE true (readable
//     only after login), CKA_MODIFIABLE false, the bytes in CKA_VALUE;
//   - on tokens that refuse token data objects (NSS softokn rejects CKO_DATA with CKA_TOKEN, and
//     forces every token secret key to be sensitive, so a key's CKA_VALUE cannot be read back): a
//     CKO_SECRET_KEY of type CKK_GENERIC_SECRET generated on the token, sensitive,
//     non-extractable, non-modifiable and with every usage false, whose CKA_ID holds the bytes
//     (CKA_ID is readable on any object). Its key value is never used.
// The kind is chosen on the first StoreAnchor by trying a data object and falling back when the
// token refuses the template; LoadAnchor reads either kind. `pinvault-admin hsm audit` knows the
// holder and checks it has no usages.
//
// Errors follow vault/hsm.h: UNAVAILABLE while the token is unreachable (the pool reconnects by
// itself when it is back), DATA_LOSS on failed authentication, NOT_FOUND for an unknown key id.
//
// Thread-safety: every method may be called concurrently.
#ifndef PINVAULT_PKCS11_HSM_KEYS_H_
#define PINVAULT_PKCS11_HSM_KEYS_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/module.h"
#include "pkcs11/operations.h"
#include "pkcs11/session_pool.h"
#include "vault/hsm.h"

namespace pinvault::pkcs11 {

class TokenHsm final : public vault::Hsm {
 public:
  struct Options {
    SessionPool::Options pool;
    // C_Initialize parameter string for the Open(uri) overload (NSS softokn needs one).
    std::string module_init_parameters;
  };

  // Open loads the module the URI names (module-path=, else module-name=, else
  // kDefaultModulePath), opens the token and finds the realm keys. Errors as Module::Load,
  // SessionPool::Open and FindRealmKeys (NOT_FOUND if the realm keys are not there yet).
  static StatusOr<std::unique_ptr<TokenHsm>> Open(std::string_view uri, Options options);
  static StatusOr<std::unique_ptr<TokenHsm>> Open(std::string_view uri);

  // Open on an initialised module (shared with other users of the same library).
  static StatusOr<std::unique_ptr<TokenHsm>> Open(std::shared_ptr<Module> module,
                                                  std::string_view uri, Options options);
  static StatusOr<std::unique_ptr<TokenHsm>> Open(std::shared_ptr<Module> module,
                                                  std::string_view uri);

  // Create uses an open pool.
  static StatusOr<std::unique_ptr<TokenHsm>> Create(std::shared_ptr<SessionPool> pool);

  // vault::Hsm.
  uint32_t CurrentSealingKeyId() const override;
  StatusOr<vault::SealedBlob> Seal(uint32_t key_id, std::span<const uint8_t> plaintext,
                                   ByteView associated_data) override;
  StatusOr<SecretBytes> Unseal(const vault::SealedBlob& blob, ByteView associated_data) override;
  StatusOr<vault::MacTag> Mac(vault::MacKeyRole role, ByteView data) override;
  Status VerifyMac(vault::MacKeyRole role, ByteView data, ByteView tag) override;
  StatusOr<Bytes> Sign(ByteView message) override;
  StatusOr<vault::SigningPublicKey> AuditPublicKey() override;
  Status GenerateRandom(std::span<uint8_t> out) override;
  StatusOr<std::optional<Bytes>> LoadAnchor() override;
  Status StoreAnchor(ByteView anchor) override;

  // AddSealingKey generates sealing key CurrentSealingKeyId()+1 on the token and makes it the
  // current one. Returns the new id.
  StatusOr<uint32_t> AddSealingKey();

  // ReloadKeys looks the realm keys up again (after keys were added elsewhere).
  Status ReloadKeys();

  // keys returns the cached handles; capabilities the detected mechanisms.
  RealmKeys keys() const;
  const Capabilities& capabilities() const { return caps_; }
  SessionPool& pool() const { return *pool_; }

  // AnchorStorage is the kind of anchor holder this token uses (kUnknown until the first
  // LoadAnchor finds one or StoreAnchor creates one).
  enum class AnchorStorage { kUnknown, kDataObject, kSecretKeyId };
  AnchorStorage anchor_storage() const { return anchor_storage_.load(); }

 private:
  TokenHsm(std::shared_ptr<SessionPool> pool, Capabilities caps, RealmKeys keys);
  static StatusOr<std::unique_ptr<TokenHsm>> OpenParsed(std::shared_ptr<Module> module,
                                                        TokenUri uri, const Options& options);

  // WithKeys runs `op(keys)` under a shared lock of the cached handles; on NOT_FOUND (a handle
  // the module no longer knows) it reloads the keys and runs `op` once more.
  template <typename Op>
  auto WithKeys(Op&& op) -> decltype(op(std::declval<const RealmKeys&>()));

  struct AnchorCarrier {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    uint64_t sequence = 0;
    Bytes anchor;
  };
  StatusOr<std::vector<AnchorCarrier>> ReadAnchorCarriers();
  StatusOr<CK_OBJECT_HANDLE> CreateAnchorCarrier(ByteView carrier);

  const std::shared_ptr<SessionPool> pool_;
  const Capabilities caps_;

  mutable std::shared_mutex keys_mu_;
  RealmKeys keys_;                                               // guarded by keys_mu_
  std::map<uint32_t, std::unique_ptr<GcmIvSource>> iv_sources_;  // guarded by keys_mu_

  std::mutex public_key_mu_;
  std::optional<vault::SigningPublicKey> public_key_;  // guarded by public_key_mu_

  std::mutex anchor_mu_;  // serialises LoadAnchor/StoreAnchor
  bool anchor_state_known_ = false;
  uint64_t anchor_sequence_ = 0;
  std::vector<CK_OBJECT_HANDLE> anchor_handles_;
  std::atomic<AnchorStorage> anchor_storage_{AnchorStorage::kUnknown};
};

// EncodeAnchorCarrier / DecodeAnchorCarrier: "PVA1" || be64(sequence) || anchor. Decode fails
// with DATA_LOSS on a wrong magic or a short buffer. Exposed for tests.
Bytes EncodeAnchorCarrier(uint64_t sequence, ByteView anchor);
StatusOr<std::pair<uint64_t, Bytes>> DecodeAnchorCarrier(ByteView carrier);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_HSM_KEYS_H_
