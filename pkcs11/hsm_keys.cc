#include "pkcs11/hsm_keys.h"

#include <algorithm>
#include <utility>

#include "pkcs11/objects.h"
#include "pkcs11/uri.h"

namespace pinvault::pkcs11 {
namespace {

constexpr uint8_t kAnchorMagic[4] = {'P', 'V', 'A', '1'};      // term 0
constexpr uint8_t kAnchorMagicTerm[4] = {'P', 'V', 'A', '2'};  // with a term
// Key length of the generic secret that carries the anchor in CKA_ID (its value is unused).
constexpr CK_ULONG kAnchorKeyCarrierSize = 16;

}  // namespace

Bytes EncodeAnchorCarrier(uint64_t term, uint64_t sequence, ByteView anchor) {
  Bytes out = term == 0 ? Bytes(kAnchorMagic, kAnchorMagic + 4)
                        : Bytes(kAnchorMagicTerm, kAnchorMagicTerm + 4);
  auto append = [&](uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
  };
  if (term != 0) append(term);
  append(sequence);
  out.insert(out.end(), anchor.begin(), anchor.end());
  return out;
}

Bytes EncodeAnchorCarrier(uint64_t sequence, ByteView anchor) {
  return EncodeAnchorCarrier(0, sequence, anchor);
}

StatusOr<DecodedAnchorCarrier> DecodeAnchorCarrier(ByteView carrier) {
  auto read = [&](size_t at) {
    uint64_t v = 0;
    for (size_t i = at; i < at + 8; ++i) v = (v << 8) | carrier[i];
    return v;
  };
  DecodedAnchorCarrier out;
  size_t body;
  if (carrier.size() >= 12 && std::equal(kAnchorMagic, kAnchorMagic + 4, carrier.begin())) {
    out.sequence = read(4);
    body = 12;
  } else if (carrier.size() >= 20 &&
             std::equal(kAnchorMagicTerm, kAnchorMagicTerm + 4, carrier.begin())) {
    out.term = read(4);
    out.sequence = read(12);
    if (out.term == 0) return DataLossError("anchor object on the token is malformed");
    body = 20;
  } else {
    return DataLossError("anchor object on the token is malformed");
  }
  out.anchor.assign(carrier.begin() + static_cast<ptrdiff_t>(body), carrier.end());
  return out;
}

TokenHsm::TokenHsm(std::shared_ptr<SessionPool> pool, Capabilities caps, RealmKeys keys)
    : pool_(std::move(pool)), caps_(std::move(caps)), keys_(std::move(keys)) {
  for (const auto& [id, handle] : keys_.sealing) {
    iv_sources_.emplace(id, std::make_unique<GcmIvSource>());
  }
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::Open(std::string_view uri) {
  return Open(uri, Options());
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::Open(std::string_view uri, Options options) {
  ASSIGN_OR_RETURN(TokenUri parsed, ParseTokenUri(uri));
  std::string module_path =
      parsed.module_path.value_or(parsed.module_name.value_or(std::string(kDefaultModulePath)));
  ASSIGN_OR_RETURN(std::unique_ptr<Module> module,
                   Module::Load(module_path, options.module_init_parameters));
  return OpenParsed(std::shared_ptr<Module>(std::move(module)), std::move(parsed), options);
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::Open(std::shared_ptr<Module> module,
                                                   std::string_view uri) {
  return Open(std::move(module), uri, Options());
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::Open(std::shared_ptr<Module> module,
                                                   std::string_view uri, Options options) {
  ASSIGN_OR_RETURN(TokenUri parsed, ParseTokenUri(uri));
  return OpenParsed(std::move(module), std::move(parsed), options);
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::OpenParsed(std::shared_ptr<Module> module,
                                                         TokenUri uri, const Options& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<SessionPool> pool,
                   SessionPool::Open(std::move(module), std::move(uri), options.pool));
  return Create(std::shared_ptr<SessionPool>(std::move(pool)));
}

StatusOr<std::unique_ptr<TokenHsm>> TokenHsm::Create(std::shared_ptr<SessionPool> pool) {
  if (pool == nullptr) return InvalidArgumentError("TokenHsm needs a session pool");
  TokenDescription token = pool->token();
  ASSIGN_OR_RETURN(Capabilities caps, DetectCapabilities(*pool->module(), token.slot, token.flags));
  ASSIGN_OR_RETURN(RealmKeys keys, FindRealmKeys(*pool));
  return std::unique_ptr<TokenHsm>(new TokenHsm(std::move(pool), std::move(caps), std::move(keys)));
}

template <typename Op>
auto TokenHsm::WithKeys(Op&& op) -> decltype(op(std::declval<const RealmKeys&>())) {
  // `op` runs under the shared lock: readers proceed in parallel, ReloadKeys waits for them.
  auto run = [&]() {
    std::shared_lock<std::shared_mutex> lock(keys_mu_);
    return op(static_cast<const RealmKeys&>(keys_));
  };
  auto result = run();
  if (result.ok() || result.status().code() != StatusCode::kNotFound) return result;
  Status reload = ReloadKeys();
  if (!reload.ok()) return reload;
  return run();
}

Status TokenHsm::ReloadKeys() {
  ASSIGN_OR_RETURN(RealmKeys keys, FindRealmKeys(*pool_));
  std::unique_lock<std::shared_mutex> lock(keys_mu_);
  keys_ = std::move(keys);
  for (const auto& [id, handle] : keys_.sealing) {
    if (iv_sources_.find(id) == iv_sources_.end()) {
      iv_sources_.emplace(id, std::make_unique<GcmIvSource>());
    }
  }
  return OkStatus();
}

RealmKeys TokenHsm::keys() const {
  std::shared_lock<std::shared_mutex> lock(keys_mu_);
  return keys_;
}

uint32_t TokenHsm::CurrentSealingKeyId() const {
  std::shared_lock<std::shared_mutex> lock(keys_mu_);
  return keys_.CurrentSealingKeyId();
}

StatusOr<uint32_t> TokenHsm::AddSealingKey() {
  ASSIGN_OR_RETURN(uint32_t id, pkcs11::AddSealingKey(*pool_));
  RETURN_IF_ERROR(ReloadKeys());
  return id;
}

StatusOr<vault::SealedBlob> TokenHsm::Seal(uint32_t key_id, std::span<const uint8_t> plaintext,
                                           ByteView associated_data) {
  StatusOr<GcmSealed> sealed = WithKeys([&](const RealmKeys& keys) -> StatusOr<GcmSealed> {
    auto it = keys.sealing.find(key_id);
    if (it == keys.sealing.end()) {
      return NotFoundError("no sealing key " + std::to_string(key_id) + " on the token");
    }
    // iv_sources_ only grows, under the exclusive lock; the shared lock is held here.
    return AesGcmEncrypt(*pool_, it->second, *iv_sources_.at(key_id), plaintext, associated_data);
  });
  if (!sealed.ok()) return sealed.status();
  vault::SealedBlob blob;
  blob.key_id = key_id;
  blob.iv = sealed->iv;
  blob.ciphertext = std::move(sealed->ciphertext);
  return blob;
}

StatusOr<SecretBytes> TokenHsm::Unseal(const vault::SealedBlob& blob, ByteView associated_data) {
  return WithKeys([&](const RealmKeys& keys) -> StatusOr<SecretBytes> {
    auto it = keys.sealing.find(blob.key_id);
    if (it == keys.sealing.end()) {
      return NotFoundError("no sealing key " + std::to_string(blob.key_id) + " on the token");
    }
    return AesGcmDecrypt(*pool_, it->second, blob.iv, blob.ciphertext, associated_data);
  });
}

StatusOr<vault::MacTag> TokenHsm::Mac(vault::MacKeyRole role, ByteView data) {
  return WithKeys([&](const RealmKeys& keys) {
    return HmacSha256(
        *pool_, role == vault::MacKeyRole::kRecordId ? keys.record_id_mac : keys.anchor_mac, data);
  });
}

Status TokenHsm::VerifyMac(vault::MacKeyRole role, ByteView data, ByteView tag) {
  StatusOr<bool> verified = WithKeys([&](const RealmKeys& keys) -> StatusOr<bool> {
    Status s = HmacSha256Verify(
        *pool_, role == vault::MacKeyRole::kRecordId ? keys.record_id_mac : keys.anchor_mac, data,
        tag);
    if (!s.ok()) return s;
    return true;
  });
  return verified.ok() ? OkStatus() : verified.status();
}

StatusOr<Bytes> TokenHsm::Sign(ByteView message) {
  return WithKeys([&](const RealmKeys& keys) {
    return SignWith(*pool_, keys.audit_private, keys.audit_algorithm, caps_.ecdsa_sha256, message);
  });
}

StatusOr<vault::SigningPublicKey> TokenHsm::AuditPublicKey() {
  {
    std::lock_guard<std::mutex> lock(public_key_mu_);
    if (public_key_.has_value()) return *public_key_;
  }
  ASSIGN_OR_RETURN(vault::SigningPublicKey key, WithKeys([&](const RealmKeys& keys) {
                     return ExportPublicKey(*pool_, keys.audit_public, keys.audit_algorithm);
                   }));
  std::lock_guard<std::mutex> lock(public_key_mu_);
  public_key_ = key;
  return key;
}

Status TokenHsm::GenerateRandom(std::span<uint8_t> out) {
  return pkcs11::GenerateRandom(*pool_, out);
}

StatusOr<std::vector<TokenHsm::AnchorCarrier>> TokenHsm::ReadAnchorCarriers(uint32_t partition) {
  const std::string label = AnchorLabel(partition);
  ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                   FindByLabel(*pool_, label, std::nullopt));
  std::vector<AnchorCarrier> carriers;
  bool data_objects = false;
  for (CK_OBJECT_HANDLE handle : handles) {
    ASSIGN_OR_RETURN(CK_ULONG object_class, ReadUlong(*pool_, handle, CKA_CLASS));
    CK_ATTRIBUTE_TYPE holder;
    if (object_class == CKO_DATA) {
      holder = CKA_VALUE;
      data_objects = true;
    } else if (object_class == CKO_SECRET_KEY) {
      holder = CKA_ID;
    } else {
      return FailedPreconditionError("an object of unexpected class is labelled '" + label + "'");
    }
    ASSIGN_OR_RETURN(Bytes raw, ReadBytes(*pool_, handle, holder));
    StatusOr<DecodedAnchorCarrier> decoded = DecodeAnchorCarrier(raw);
    // Key carriers are rewritten in place (CKA_ID) when they are modifiable; data objects (the
    // holder of earlier versions) never are: tokens disagree on whether a data object's
    // CKA_VALUE may change, and SoftHSM2 refuses it.
    bool modifiable = false;
    if (object_class == CKO_SECRET_KEY) {
      StatusOr<Bytes> flag = ReadBytes(*pool_, handle, CKA_MODIFIABLE);
      modifiable = flag.ok() && flag->size() == sizeof(CK_BBOOL) && (*flag)[0] == CK_TRUE;
    }
    if (decoded.ok()) {
      carriers.push_back({handle, decoded->term, decoded->sequence, std::move(decoded->anchor),
                          modifiable, false});
    } else {
      carriers.push_back({handle, 0, 0, Bytes(), modifiable, true});
    }
  }
  // A damaged holder next to an intact one is what a torn in-place write leaves (the write
  // was never acknowledged: the intact holder has the anchor); it is ignored and rewritten
  // or destroyed by the next store. With no intact holder at all, the anchor is lost.
  if (!carriers.empty()) {
    anchor_storage_.store(data_objects ? AnchorStorage::kDataObject : AnchorStorage::kSecretKeyId);
  }
  bool any_intact = false;
  for (const AnchorCarrier& c : carriers) any_intact = any_intact || !c.damaged;
  if (!carriers.empty() && !any_intact) {
    return DataLossError("anchor object on the token is malformed ('" + label + "')");
  }
  return carriers;
}

StatusOr<std::optional<Bytes>> TokenHsm::LoadAnchor(uint32_t partition) {
  std::lock_guard<std::mutex> lock(anchor_mu_);
  ASSIGN_OR_RETURN(std::vector<AnchorCarrier> carriers, ReadAnchorCarriers(partition));
  AdoptAnchorSlots(partition, carriers);
  // The highest term wins (a stale owner writes only its own term's holders), then the
  // highest sequence within it.
  const AnchorCarrier* newest = nullptr;
  for (const AnchorCarrier& c : carriers) {
    if (c.damaged) continue;
    if (newest == nullptr || c.term > newest->term ||
        (c.term == newest->term && c.sequence > newest->sequence)) {
      newest = &c;
    }
  }
  if (newest == nullptr) return std::optional<Bytes>();
  for (const AnchorCarrier& c : carriers) {
    // Two holders with one sequence can only come from a repeated create; they must agree.
    if (&c != newest && !c.damaged && c.term == newest->term && c.sequence == newest->sequence &&
        c.anchor != newest->anchor) {
      return DataLossError("two anchor objects share sequence " + std::to_string(newest->sequence) +
                           " but differ");
    }
  }
  return std::optional<Bytes>(newest->anchor);
}

void TokenHsm::AdoptAnchorSlots(uint32_t partition, const std::vector<AnchorCarrier>& carriers) {
  AnchorState& state = anchors_[partition];
  state.slots.clear();
  for (const AnchorCarrier& c : carriers) {
    state.slots.push_back({c.handle, c.term, c.sequence, c.modifiable});
  }
  state.known = true;
}

StatusOr<CK_OBJECT_HANDLE> TokenHsm::CreateAnchorCarrier(uint32_t partition, ByteView carrier) {
  CK_FUNCTION_LIST* f = pool_->functions();
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  AttributeTemplate key;
  key.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .Ulong(CKA_VALUE_LEN, kAnchorKeyCarrierSize)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_MODIFIABLE, true)  // CKA_ID is rewritten by later stores
      .String(CKA_LABEL, AnchorLabel(partition))
      .Bytes(CKA_ID, carrier)
      .Bool(CKA_ENCRYPT, false)
      .Bool(CKA_DECRYPT, false)
      .Bool(CKA_SIGN, false)
      .Bool(CKA_VERIFY, false)
      .Bool(CKA_WRAP, false)
      .Bool(CKA_UNWRAP, false)
      .Bool(CKA_DERIVE, false);
  RETURN_IF_ERROR(pool_->Run([&](CK_SESSION_HANDLE session) -> CallResult {
    CK_MECHANISM mechanism{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
    return {f->C_GenerateKey(session, &mechanism, key.data(), key.size(), &handle),
            "C_GenerateKey"};
  }));
  anchor_storage_.store(AnchorStorage::kSecretKeyId);
  return handle;
}

Status TokenHsm::StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) {
  std::lock_guard<std::mutex> lock(anchor_mu_);
  if (!anchors_[partition].known) {
    ASSIGN_OR_RETURN(std::vector<AnchorCarrier> carriers, ReadAnchorCarriers(partition));
    AdoptAnchorSlots(partition, carriers);
  }
  AnchorState& state = anchors_[partition];
  // Only holders of this term are ever rewritten: a holder of a newer term means another
  // owner took the partition, and this (stale) writer must not touch it.
  for (const AnchorSlot& slot : state.slots) {
    if (slot.term > term) {
      return FailedPreconditionError("the anchor of partition " + std::to_string(partition) +
                                     " is held under term " + std::to_string(slot.term) +
                                     ", newer than this writer's term " + std::to_string(term));
    }
  }
  // The holder of this term's newest anchor is never touched. Another modifiable holder of
  // the term (the one with the lowest sequence) is overwritten in place; otherwise a new
  // holder is created.
  auto newest = state.slots.end();
  for (auto it = state.slots.begin(); it != state.slots.end(); ++it) {
    if (it->term == term && (newest == state.slots.end() || it->sequence > newest->sequence)) {
      newest = it;
    }
  }
  const uint64_t newest_sequence = newest == state.slots.end() ? 0 : newest->sequence;
  if (newest_sequence == UINT64_MAX) return ResourceExhaustedError("anchor sequence exhausted");
  const uint64_t sequence = newest_sequence + 1;
  const Bytes carrier = EncodeAnchorCarrier(term, sequence, anchor);
  auto target = state.slots.end();
  for (auto it = state.slots.begin(); it != state.slots.end(); ++it) {
    if (it == newest || !it->modifiable || it->term != term) continue;
    if (target == state.slots.end() || it->sequence < target->sequence) target = it;
  }
  const CK_OBJECT_HANDLE previous =
      newest == state.slots.end() ? CK_INVALID_HANDLE : newest->handle;
  CK_OBJECT_HANDLE written = CK_INVALID_HANDLE;
  if (target != state.slots.end()) {
    AttributeTemplate value;
    value.Bytes(CKA_ID, carrier);
    CK_FUNCTION_LIST* f = pool_->functions();
    const CK_OBJECT_HANDLE handle = target->handle;
    bool read_only = false;
    Status s = pool_->Run([&](CK_SESSION_HANDLE session) -> CallResult {
      CK_RV rv = f->C_SetAttributeValue(session, handle, value.data(), value.size());
      if (rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ACTION_PROHIBITED) {
        read_only = true;  // nothing was written; a new holder is created below
        return {};
      }
      return {rv, "C_SetAttributeValue"};
    });
    if (!s.ok()) {
      // The holder may be half written; the newest one is intact. Learn the state again.
      state.known = false;
      return s.WithContext("storing the anchor");
    }
    if (read_only) {
      target->modifiable = false;
    } else {
      written = handle;
    }
  }
  if (written == CK_INVALID_HANDLE) {
    StatusOr<CK_OBJECT_HANDLE> created = CreateAnchorCarrier(partition, carrier);
    if (!created.ok()) {
      // We cannot tell whether the token kept the object; learn the state again next time.
      state.known = false;
      return created.status().WithContext("storing the anchor");
    }
    written = *created;
  }
  // The new anchor is durable. Two holders are kept: the new one and the previous newest of
  // this term, so that a torn in-place write never takes the only copy. Destroying the rest
  // (holders of earlier terms and versions, duplicates) may fail harmlessly, since the highest
  // term and sequence win on load; survivors are retried on the next store.
  std::vector<AnchorSlot> slots;
  for (const AnchorSlot& slot : state.slots) {
    if (slot.handle == written) continue;
    if (slot.handle == previous) {
      slots.push_back(slot);
      continue;
    }
    Status destroyed = DestroyObject(*pool_, slot.handle);
    if (!destroyed.ok() && destroyed.code() != StatusCode::kNotFound) slots.push_back(slot);
  }
  slots.push_back({written, term, sequence, /*modifiable=*/true});
  state.slots = std::move(slots);
  return OkStatus();
}

}  // namespace pinvault::pkcs11
