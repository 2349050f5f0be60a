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
// token only has to keep bytes durably and hand back the newest. A holder keeps
//     "PVA1" || be64(sequence) || anchor
// in the CKA_ID of a CKO_SECRET_KEY labelled AnchorLabel(partition) ("pinvault-anchor" for
// partition 0, as before partitions, "pinvault-anchor-p<N>" for partition N; each partition
// has its own holders, so token objects grow with partitions, never with users): type CKK_GENERIC_SECRET,
// generated on the token, private, sensitive, non-extractable, with every usage false (its key
// value is never used; `pinvault-admin hsm audit` checks it stays usage-less). CKA_ID because it
// is readable and, on a modifiable key, rewritable on every token: NSS softokn has no token data
// objects, and SoftHSM2 refuses to change a data object's CKA_VALUE.
// Terms (several nodes, DESIGN.md section 8): PKCS#11 has no compare-and-swap, so each owner
// of a partition writes holders of its own lease term only (the term is in the carrier) and
// never touches a holder of another term but to destroy older terms' after its own write;
// LoadAnchor takes the highest term, then the highest sequence in it. A stale owner's late
// write lands in its own, older term and can never replace a newer owner's anchor; one that
// knows of a newer term is refused (FAILED_PRECONDITION). This relies on the module not
// reusing the handle of a destroyed object for a new one while a stale owner still holds it.
// Two holders exist per term. StoreAnchor rewrites the one with the older sequence in place
// (C_SetAttributeValue) and never touches the one with the newest, so a write torn by a crash
// leaves the last acknowledged anchor intact; LoadAnchor takes the highest sequence among the
// holders that decode and ignores a damaged one beside an intact one (DATA_LOSS if none
// decodes). Rewriting in place, rather than creating and destroying objects, matters on
// SoftHSM2: a created or destroyed object changes the token's generation, after which the next
// operation with every key re-reads that key's file (measured with the token on tmpfs: anchor
// write 275 us -> 42 us; on disk the HSM call right after an anchor write still takes 2-3x
// its usual time). The first two stores create the holders; holders of
// earlier versions (CKO_DATA objects with the bytes in CKA_VALUE, or non-modifiable keys) are
// still read and are replaced by the next stores.
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
  StatusOr<std::optional<Bytes>> LoadAnchor(uint32_t partition) override;
  Status StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) override;

  // AddSealingKey generates sealing key CurrentSealingKeyId()+1 on the token and makes it the
  // current one. Returns the new id.
  StatusOr<uint32_t> AddSealingKey();

  // ReloadKeys looks the realm keys up again (after keys were added elsewhere).
  Status ReloadKeys();

  // keys returns the cached handles; capabilities the detected mechanisms.
  RealmKeys keys() const;
  const Capabilities& capabilities() const { return caps_; }
  SessionPool& pool() const { return *pool_; }

  // AnchorStorage is the kind of anchor holder last seen on the token (kUnknown until the
  // first LoadAnchor finds one or StoreAnchor writes one): kSecretKeyId for the holders this
  // version writes, kDataObject while a data-object holder of an earlier version is read.
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
    uint64_t term = 0;
    uint64_t sequence = 0;
    Bytes anchor;
    bool modifiable = false;  // a key carrier that may be rewritten in place
    bool damaged = false;     // the holder did not decode (sequence 0, no anchor)
  };
  struct AnchorSlot {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    uint64_t term = 0;
    uint64_t sequence = 0;
    bool modifiable = false;
  };
  // AnchorState is what this object knows of one partition's holders.
  struct AnchorState {
    bool known = false;  // false: read the holders from the token before the next store
    std::vector<AnchorSlot> slots;
  };
  StatusOr<std::vector<AnchorCarrier>> ReadAnchorCarriers(uint32_t partition);
  StatusOr<CK_OBJECT_HANDLE> CreateAnchorCarrier(uint32_t partition, ByteView carrier);
  // AdoptAnchorSlots makes `carriers` (just read from the token) the known holders of
  // `partition`.
  void AdoptAnchorSlots(uint32_t partition, const std::vector<AnchorCarrier>& carriers);

  const std::shared_ptr<SessionPool> pool_;
  const Capabilities caps_;

  mutable std::shared_mutex keys_mu_;
  RealmKeys keys_;                                               // guarded by keys_mu_
  std::map<uint32_t, std::unique_ptr<GcmIvSource>> iv_sources_;  // guarded by keys_mu_

  std::mutex public_key_mu_;
  std::optional<vault::SigningPublicKey> public_key_;  // guarded by public_key_mu_

  std::mutex anchor_mu_;  // serialises LoadAnchor/StoreAnchor
  std::map<uint32_t, AnchorState> anchors_;  // by partition; guarded by anchor_mu_
  std::atomic<AnchorStorage> anchor_storage_{AnchorStorage::kUnknown};
};

// EncodeAnchorCarrier / DecodeAnchorCarrier: "PVA1" || be64(sequence) || anchor for term 0
// (the holders of a single node), "PVA2" || be64(term) || be64(sequence) || anchor otherwise.
// Decode fails with DATA_LOSS on a wrong magic, a short buffer or a "PVA2" of term 0.
// Exposed for tests.
struct DecodedAnchorCarrier {
  uint64_t term = 0;
  uint64_t sequence = 0;
  Bytes anchor;
};
Bytes EncodeAnchorCarrier(uint64_t term, uint64_t sequence, ByteView anchor);
Bytes EncodeAnchorCarrier(uint64_t sequence, ByteView anchor);  // term 0
StatusOr<DecodedAnchorCarrier> DecodeAnchorCarrier(ByteView carrier);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_HSM_KEYS_H_
