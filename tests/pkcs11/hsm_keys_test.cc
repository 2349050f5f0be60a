// The realm key set and TokenHsm (vault::Hsm on a token), run on a fresh token per test, over
// SoftHSM2 and NSS softokn.
#include "pkcs11/hsm_keys.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/objects.h"
#include "pkcs11/operations.h"
#include "pkcs11/token_setup.h"
#include "tests/testing/signatures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/token_backends.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;

SessionPool::Options FastOptions() {
  SessionPool::Options options;
  options.retry_backoff = std::chrono::milliseconds(0);
  return options;
}

Bytes Seq(size_t n, uint8_t start = 0) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(start + i * 7);
  return out;
}

bool SecretEquals(const SecretBytes& secret, const Bytes& expected) {
  return secret.size() == expected.size() &&
         std::equal(expected.begin(), expected.end(), secret.Reveal().begin());
}

class TokenHsmTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_EQ(sodium_init() < 0, false);
    StatusOr<TestToken> token = MakeTestToken(GetParam());
    ASSERT_OK(token);
    token_ = std::make_unique<TestToken>(*std::move(token));
    StatusOr<std::unique_ptr<Module>> module = token_->LoadModule();
    ASSERT_OK(module);
    module_ = *std::move(module);
    ASSERT_OK_AND_ASSIGN(TokenUri uri, ParseTokenUri(token_->uri));
    StatusOr<std::unique_ptr<SessionPool>> pool =
        SessionPool::Open(module_, std::move(uri), FastOptions());
    ASSERT_OK(pool);
    pool_ = *std::move(pool);
    TokenDescription description = pool_->token();
    StatusOr<Capabilities> caps = DetectCapabilities(*module_, description.slot, description.flags);
    ASSERT_OK(caps);
    caps_ = *caps;
  }

  void TearDown() override {
    hsm_.reset();
    pool_.reset();
    module_.reset();
    token_.reset();
  }

  void InitKeys(KeySetOptions options = {}) {
    StatusOr<std::vector<KeySetAction>> actions = EnsureRealmKeys(*pool_, caps_, options);
    ASSERT_OK(actions);
    StatusOr<std::unique_ptr<TokenHsm>> hsm = TokenHsm::Create(pool_);
    ASSERT_OK(hsm);
    hsm_ = *std::move(hsm);
  }

  // ExpectFlags checks each boolean attribute of `object` against its expected value.
  void ExpectFlags(CK_OBJECT_HANDLE object,
                   const std::vector<std::pair<CK_ATTRIBUTE_TYPE, bool>>& expected) {
    StatusOr<SessionPool::Lease> lease = pool_->Acquire();
    ASSERT_OK(lease);
    for (auto [attribute, value_expected] : expected) {
      bool value = !value_expected;
      ASSERT_EQ(ReadBoolOn(pool_->functions(), lease->handle(), object, attribute, &value), CKR_OK)
          << "attribute 0x" << std::hex << attribute;
      EXPECT_EQ(value, value_expected) << "attribute 0x" << std::hex << attribute;
    }
  }

  // CountObjects counts token objects; SessionObjects lists session objects (working copies).
  size_t CountObjects() {
    AttributeTemplate all;
    all.Bool(CKA_TOKEN, true);
    StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindObjects(*pool_, all);
    EXPECT_OK(found);
    return found.ok() ? found->size() : 0;
  }

  std::unique_ptr<TestToken> token_;
  std::shared_ptr<Module> module_;
  std::shared_ptr<SessionPool> pool_;
  Capabilities caps_;
  std::unique_ptr<TokenHsm> hsm_;
};

TEST_P(TokenHsmTest, CapabilitiesMatchTheModule) {
  EXPECT_TRUE(caps_.RealmKeysSupported());
  EXPECT_TRUE(caps_.aes_gcm);
  EXPECT_TRUE(caps_.hmac_sha256);
  if (GetParam() == Backend::kSoftHsm) {
    EXPECT_TRUE(caps_.eddsa);
    EXPECT_EQ(caps_.PreferredSignature(), vault::SignatureAlgorithm::kEd25519);
  } else {
    // NSS 3.87 softokn has no CKM_EDDSA: the audit key falls back to ECDSA P-256.
    EXPECT_FALSE(caps_.eddsa) << "this NSS has EdDSA; the fallback is no longer exercised";
    EXPECT_TRUE(caps_.ecdsa);
    EXPECT_EQ(caps_.PreferredSignature(), vault::SignatureAlgorithm::kEcdsaP256);
  }
}

TEST_P(TokenHsmTest, OpenWithoutRealmKeysSaysToRunInit) {
  StatusOr<std::unique_ptr<TokenHsm>> hsm = TokenHsm::Create(pool_);
  ASSERT_THAT(hsm, StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(hsm.status().message(), HasSubstr("hsm init")) << hsm.status();
}

TEST_P(TokenHsmTest, InitCreatesTheKeySetOnceAndNeverDuplicates) {
  StatusOr<std::vector<KeySetAction>> first = EnsureRealmKeys(*pool_, caps_, {});
  ASSERT_OK(first);
  std::set<std::string> created;
  for (const KeySetAction& a : *first) {
    EXPECT_TRUE(a.created) << a.label;
    created.insert(a.label);
  }
  EXPECT_EQ(created, (std::set<std::string>{"pinvault-record-seal-1", "pinvault-record-id-mac",
                                            "pinvault-anchor-mac", "pinvault-audit-sign"}));
  size_t objects = CountObjects();
  EXPECT_EQ(objects, 5u);  // four secret/private keys and the audit public key

  StatusOr<std::vector<KeySetAction>> second = EnsureRealmKeys(*pool_, caps_, {});
  ASSERT_OK(second);
  for (const KeySetAction& a : *second) EXPECT_FALSE(a.created) << a.label;
  EXPECT_EQ(CountObjects(), objects);
}

TEST_P(TokenHsmTest, InitRefusesAHalfAuditKeyPair) {
  InitKeys();
  RealmKeys keys = hsm_->keys();
  ASSERT_OK(DestroyObject(*pool_, keys.audit_public));
  size_t objects = CountObjects();
  StatusOr<std::vector<KeySetAction>> again = EnsureRealmKeys(*pool_, caps_, {});
  EXPECT_THAT(again, StatusIs(StatusCode::kFailedPrecondition)) << again.status();
  EXPECT_EQ(CountObjects(), objects);
}

TEST_P(TokenHsmTest, RealmKeysHaveThePolicyAttributes) {
  InitKeys();
  RealmKeys keys = hsm_->keys();
  CK_FUNCTION_LIST* f = pool_->functions();
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  for (CK_OBJECT_HANDLE key :
       {keys.sealing.at(1), keys.record_id_mac, keys.anchor_mac, keys.audit_private}) {
    ExpectFlags(key, {{CKA_TOKEN, true},
                      {CKA_PRIVATE, true},
                      {CKA_SENSITIVE, true},
                      {CKA_ALWAYS_SENSITIVE, true},
                      {CKA_EXTRACTABLE, false},
                      {CKA_NEVER_EXTRACTABLE, true},
                      {CKA_MODIFIABLE, false},
                      {CKA_DERIVE, false}});
    bool local = false;
    ASSERT_EQ(ReadBoolOn(f, lease->handle(), key, CKA_LOCAL, &local), CKR_OK);
    if (GetParam() == Backend::kSoftHsm) {
      EXPECT_TRUE(local);
    }
  }
  bool encrypt = true;
  ASSERT_EQ(ReadBoolOn(f, lease->handle(), keys.record_id_mac, CKA_ENCRYPT, &encrypt), CKR_OK);
  EXPECT_FALSE(encrypt);  // NSS would default it to true; the template says false
  Bytes id;
  ASSERT_EQ(ReadBytesOn(f, lease->handle(), keys.sealing.at(1), CKA_ID, &id), CKR_OK);
  EXPECT_EQ(id, RealmKeyId(RealmKeyRole::kRecordSeal, 1));
}

TEST_P(TokenHsmTest, SealUnsealRoundTrip) {
  InitKeys();
  EXPECT_EQ(hsm_->CurrentSealingKeyId(), 1u);
  for (size_t size : {0, 1, 15, 16, 64, 1000}) {
    Bytes plaintext = Seq(size);
    Bytes aad = ToBytes("record-7|v3");
    StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, plaintext, aad);
    ASSERT_OK(blob);
    EXPECT_EQ(blob->key_id, 1u);
    EXPECT_EQ(blob->ciphertext.size(), size + 16);
    StatusOr<SecretBytes> opened = hsm_->Unseal(*blob, aad);
    ASSERT_OK(opened) << " size " << size;
    EXPECT_TRUE(SecretEquals(*opened, plaintext)) << size;
  }
}

TEST_P(TokenHsmTest, IvsAreNeverRepeated) {
  InitKeys();
  std::set<std::array<uint8_t, 12>> ivs;
  std::array<uint8_t, 8> prefix{};
  for (int i = 0; i < 500; ++i) {
    StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Seq(8), {});
    ASSERT_OK(blob);
    EXPECT_TRUE(ivs.insert(blob->iv).second) << "IV repeated at " << i;
    if (i == 0) std::copy(blob->iv.begin(), blob->iv.begin() + 8, prefix.begin());
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), blob->iv.begin()));
    uint32_t counter = (uint32_t{blob->iv[8]} << 24) | (uint32_t{blob->iv[9]} << 16) |
                       (uint32_t{blob->iv[10]} << 8) | blob->iv[11];
    EXPECT_EQ(counter, static_cast<uint32_t>(i));
  }
}

TEST_P(TokenHsmTest, TamperedCiphertextTagIvOrAadIsRejected) {
  InitKeys();
  Bytes plaintext = Seq(64);
  Bytes aad = ToBytes("record-id|version-9");
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, plaintext, aad);
  ASSERT_OK(blob);
  int checked = 0;
  // Every bit of ciphertext and tag.
  for (size_t i = 0; i < blob->ciphertext.size() * 8; ++i) {
    vault::SealedBlob bad = *blob;
    bad.ciphertext[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    StatusOr<SecretBytes> opened = hsm_->Unseal(bad, aad);
    ASSERT_THAT(opened, StatusIs(StatusCode::kDataLoss)) << "ciphertext bit " << i;
    ++checked;
  }
  // Every bit of the IV.
  for (size_t i = 0; i < 96; ++i) {
    vault::SealedBlob bad = *blob;
    bad.iv[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    ASSERT_THAT(hsm_->Unseal(bad, aad), StatusIs(StatusCode::kDataLoss)) << "iv bit " << i;
    ++checked;
  }
  // Every bit of the associated data, and its truncations and extension.
  for (size_t i = 0; i < aad.size() * 8; ++i) {
    Bytes bad = aad;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    ASSERT_THAT(hsm_->Unseal(*blob, bad), StatusIs(StatusCode::kDataLoss)) << "aad bit " << i;
    ++checked;
  }
  for (size_t len = 0; len < aad.size(); ++len) {
    Bytes bad(aad.begin(), aad.begin() + len);
    ASSERT_THAT(hsm_->Unseal(*blob, bad), StatusIs(StatusCode::kDataLoss));
  }
  Bytes longer = aad;
  longer.push_back(0);
  EXPECT_THAT(hsm_->Unseal(*blob, longer), StatusIs(StatusCode::kDataLoss));
  // Every truncation of the ciphertext.
  for (size_t len = 0; len < blob->ciphertext.size(); ++len) {
    vault::SealedBlob bad = *blob;
    bad.ciphertext.resize(len);
    ASSERT_THAT(hsm_->Unseal(bad, aad), StatusIs(StatusCode::kDataLoss)) << "length " << len;
  }
  EXPECT_EQ(checked, 80 * 8 + 96 + static_cast<int>(aad.size()) * 8);
  // The untouched blob still opens: the failures did not disturb the sessions.
  StatusOr<SecretBytes> opened = hsm_->Unseal(*blob, aad);
  ASSERT_OK(opened);
  EXPECT_TRUE(SecretEquals(*opened, plaintext));
}

TEST_P(TokenHsmTest, UnknownSealingKeyIsNotFound) {
  InitKeys();
  EXPECT_THAT(hsm_->Seal(2, Seq(4), {}), StatusIs(StatusCode::kNotFound));
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Seq(4), {});
  ASSERT_OK(blob);
  blob->key_id = 7;
  EXPECT_THAT(hsm_->Unseal(*blob, {}), StatusIs(StatusCode::kNotFound));
}

TEST_P(TokenHsmTest, KeyRotationKeepsOldRecordsReadable) {
  InitKeys();
  Bytes aad = ToBytes("r");
  StatusOr<vault::SealedBlob> old_blob = hsm_->Seal(1, Seq(20), aad);
  ASSERT_OK(old_blob);
  StatusOr<uint32_t> id = hsm_->AddSealingKey();
  ASSERT_OK(id);
  EXPECT_EQ(*id, 2u);
  EXPECT_EQ(hsm_->CurrentSealingKeyId(), 2u);
  StatusOr<vault::SealedBlob> new_blob = hsm_->Seal(2, Seq(20), aad);
  ASSERT_OK(new_blob);
  EXPECT_NE(new_blob->ciphertext, old_blob->ciphertext);
  EXPECT_OK(hsm_->Unseal(*old_blob, aad));
  EXPECT_OK(hsm_->Unseal(*new_blob, aad));
  // A ciphertext relabelled with the other key id does not open.
  vault::SealedBlob swapped = *old_blob;
  swapped.key_id = 2;
  EXPECT_THAT(hsm_->Unseal(swapped, aad), StatusIs(StatusCode::kDataLoss));
  // A second TokenHsm on the same token sees both keys.
  StatusOr<std::unique_ptr<TokenHsm>> other = TokenHsm::Create(pool_);
  ASSERT_OK(other);
  EXPECT_EQ((*other)->CurrentSealingKeyId(), 2u);
  EXPECT_OK((*other)->Unseal(*old_blob, aad));
}

TEST_P(TokenHsmTest, MacIsDeterministicPerRoleAndVerifiedInTheToken) {
  InitKeys();
  Bytes data = ToBytes("tenant-a|user-42");
  StatusOr<vault::MacTag> a = hsm_->Mac(vault::MacKeyRole::kRecordId, data);
  StatusOr<vault::MacTag> b = hsm_->Mac(vault::MacKeyRole::kRecordId, data);
  StatusOr<vault::MacTag> c = hsm_->Mac(vault::MacKeyRole::kAnchor, data);
  StatusOr<vault::MacTag> d = hsm_->Mac(vault::MacKeyRole::kRecordId, ToBytes("tenant-a|user-43"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK(c);
  ASSERT_OK(d);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_NE(*a, *d);
  EXPECT_OK(hsm_->VerifyMac(vault::MacKeyRole::kRecordId, data, *a));
  Status wrong_key = hsm_->VerifyMac(vault::MacKeyRole::kAnchor, data, *a);
  EXPECT_THAT(wrong_key, StatusIs(StatusCode::kDataLoss)) << wrong_key;
  for (size_t i = 0; i < 256; ++i) {
    vault::MacTag bad = *a;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    Status flipped = hsm_->VerifyMac(vault::MacKeyRole::kRecordId, data, bad);
    ASSERT_THAT(flipped, StatusIs(StatusCode::kDataLoss)) << "tag bit " << i << ": " << flipped;
  }
  EXPECT_THAT(hsm_->VerifyMac(vault::MacKeyRole::kRecordId, data, ByteView(a->data(), 31)),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(hsm_->VerifyMac(vault::MacKeyRole::kRecordId, ToBytes("other"), *a),
              StatusIs(StatusCode::kDataLoss));
}

TEST_P(TokenHsmTest, SignaturesVerifyWithTheExportedPublicKey) {
  InitKeys();
  StatusOr<vault::SigningPublicKey> public_key = hsm_->AuditPublicKey();
  ASSERT_OK(public_key);
  Bytes message = ToBytes("audit entry 1: register record 00ff");
  StatusOr<Bytes> signature = hsm_->Sign(message);
  ASSERT_OK(signature);
  ASSERT_EQ(signature->size(), 64u);
  if (public_key->algorithm == vault::SignatureAlgorithm::kEd25519) {
    ASSERT_EQ(public_key->key.size(), 32u);
    EXPECT_EQ(crypto_sign_verify_detached(signature->data(), message.data(), message.size(),
                                          public_key->key.data()),
              0);
    Bytes other = message;
    other[0] ^= 1;
    EXPECT_NE(crypto_sign_verify_detached(signature->data(), other.data(), other.size(),
                                          public_key->key.data()),
              0);
  } else {
    ASSERT_EQ(GetParam(), Backend::kNss);
    ASSERT_EQ(public_key->key.size(), 65u);
    EXPECT_TRUE(::pinvault::testing::VerifyEcdsaP256(public_key->key, message, *signature));
    Bytes other = message;
    other[0] ^= 1;
    EXPECT_FALSE(::pinvault::testing::VerifyEcdsaP256(public_key->key, other, *signature));
  }
  EXPECT_EQ(public_key->algorithm, caps_.PreferredSignature());
}

TEST_P(TokenHsmTest, EcdsaFallbackWorksWhereEdDsaExistsToo) {
  KeySetOptions options;
  options.audit_algorithm = vault::SignatureAlgorithm::kEcdsaP256;
  InitKeys(options);
  StatusOr<vault::SigningPublicKey> public_key = hsm_->AuditPublicKey();
  ASSERT_OK(public_key);
  EXPECT_EQ(public_key->algorithm, vault::SignatureAlgorithm::kEcdsaP256);
  Bytes message = ToBytes("fallback");
  StatusOr<Bytes> signature = hsm_->Sign(message);
  ASSERT_OK(signature);
  EXPECT_TRUE(::pinvault::testing::VerifyEcdsaP256(public_key->key, message, *signature));
}

TEST_P(TokenHsmTest, GenerateRandom) {
  InitKeys();
  std::array<uint8_t, 32> a{}, b{};
  ASSERT_OK(hsm_->GenerateRandom(a));
  ASSERT_OK(hsm_->GenerateRandom(b));
  EXPECT_NE(a, b);
  EXPECT_NE(a, (std::array<uint8_t, 32>{}));
  EXPECT_OK(hsm_->GenerateRandom(std::span<uint8_t>()));
}

// Anchor holders: the handles of the objects labelled as the anchor, sorted.
std::vector<CK_OBJECT_HANDLE> AnchorHolders(SessionPool& pool) {
  StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindByLabel(pool, kAnchorLabel, std::nullopt);
  EXPECT_OK(found);
  std::vector<CK_OBJECT_HANDLE> handles = found.ok() ? *found : std::vector<CK_OBJECT_HANDLE>{};
  std::sort(handles.begin(), handles.end());
  return handles;
}

TEST_P(TokenHsmTest, AnchorKeepsTwoHoldersAndRewritesTheOlderInPlace) {
  InitKeys();
  StatusOr<std::optional<Bytes>> none = hsm_->LoadAnchor(0);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  size_t base = CountObjects();
  std::vector<CK_OBJECT_HANDLE> holders;
  for (int epoch = 1; epoch <= 6; ++epoch) {
    Bytes anchor = Seq(72, static_cast<uint8_t>(epoch));
    ASSERT_OK(hsm_->StoreAnchor(0, 0, anchor)) << epoch;
    StatusOr<std::optional<Bytes>> loaded = hsm_->LoadAnchor(0);
    ASSERT_OK(loaded);
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ(**loaded, anchor);
    EXPECT_EQ(CountObjects(), base + std::min(epoch, 2)) << "at most two anchor holders";
    if (epoch == 2) holders = AnchorHolders(*pool_);
    // From the third store on, no object is created or destroyed: the older holder is
    // rewritten (on SoftHSM2 a new object would make it re-read every key's file).
    if (epoch > 2) {
      EXPECT_EQ(AnchorHolders(*pool_), holders) << epoch;
    }
  }
  EXPECT_EQ(hsm_->anchor_storage(), TokenHsm::AnchorStorage::kSecretKeyId);
  // Each holder is a usage-less, sensitive, non-extractable private token key.
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  for (CK_OBJECT_HANDLE holder : holders) {
    CK_ULONG object_class = 0;
    ASSERT_EQ(ReadUlongOn(pool_->functions(), lease->handle(), holder, CKA_CLASS, &object_class),
              CKR_OK);
    EXPECT_EQ(object_class, CKO_SECRET_KEY);
    ExpectFlags(holder, {{CKA_TOKEN, true},
                         {CKA_PRIVATE, true},
                         {CKA_SENSITIVE, true},
                         {CKA_EXTRACTABLE, false},
                         {CKA_ENCRYPT, false},
                         {CKA_DECRYPT, false},
                         {CKA_SIGN, false},
                         {CKA_VERIFY, false},
                         {CKA_WRAP, false},
                         {CKA_UNWRAP, false},
                         {CKA_DERIVE, false}});
  }
  // A new process (here: a new TokenHsm) reads the same anchor back and carries on in place.
  StatusOr<std::unique_ptr<TokenHsm>> other = TokenHsm::Create(pool_);
  ASSERT_OK(other);
  StatusOr<std::optional<Bytes>> loaded = (*other)->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, Seq(72, 6));
  // Large anchors fit too.
  ASSERT_OK((*other)->StoreAnchor(0, 0, Seq(1000)));
  EXPECT_EQ(AnchorHolders(*pool_), holders);
  loaded = hsm_->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, Seq(1000));
}

TEST_P(TokenHsmTest, AnchorLoadPicksTheHighestSequence) {
  InitKeys();
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("epoch-1")));
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("epoch-2")));
  // A stray older holder, as a crash between creating a holder and destroying another leaves.
  // (Its bytes differ from the other holders': NSS softokn merges identical token keys.)
  CK_FUNCTION_LIST* f = pool_->functions();
  Bytes stale = EncodeAnchorCarrier(0, ToBytes("epoch-0"));
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  CK_OBJECT_HANDLE handle;
  AttributeTemplate t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .Ulong(CKA_VALUE_LEN, 16)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SIGN, false)
      .String(CKA_LABEL, kAnchorLabel)
      .Bytes(CKA_ID, stale);
  CK_MECHANISM m{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  ASSERT_EQ(f->C_GenerateKey(lease->handle(), &m, t.data(), t.size(), &handle), CKR_OK);
  StatusOr<std::unique_ptr<TokenHsm>> other = TokenHsm::Create(pool_);
  ASSERT_OK(other);
  StatusOr<std::optional<Bytes>> loaded = (*other)->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, ToBytes("epoch-2"));
  // The next store rewrites one older holder and destroys the other.
  size_t before = CountObjects();
  ASSERT_OK((*other)->StoreAnchor(0, 0, ToBytes("epoch-3")));
  EXPECT_EQ(CountObjects(), before - 1);
  loaded = hsm_->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, ToBytes("epoch-3"));
}

// A token that holds the anchor in data objects (non-modifiable, as written by earlier
// versions; SoftHSM2 only, NSS has no token data objects) is read, then moved to key holders.
TEST_P(TokenHsmTest, DataObjectHoldersAreReadAndReplaced) {
  if (GetParam() != Backend::kSoftHsm) GTEST_SKIP() << "NSS softokn has no token data objects";
  InitKeys();
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  CK_OBJECT_HANDLE data;
  AttributeTemplate t;
  Bytes carrier = EncodeAnchorCarrier(7, ToBytes("epoch-7"));
  t.Ulong(CKA_CLASS, CKO_DATA)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_MODIFIABLE, false)
      .String(CKA_LABEL, kAnchorLabel)
      .String(CKA_APPLICATION, "pinvault")
      .Bytes(CKA_VALUE, carrier);
  ASSERT_EQ(pool_->functions()->C_CreateObject(lease->handle(), t.data(), t.size(), &data), CKR_OK);
  StatusOr<std::optional<Bytes>> loaded = hsm_->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, ToBytes("epoch-7"));
  EXPECT_EQ(hsm_->anchor_storage(), TokenHsm::AnchorStorage::kDataObject);
  size_t base = CountObjects();
  for (int epoch = 8; epoch <= 10; ++epoch) {
    Bytes anchor = ToBytes("epoch-" + std::to_string(epoch));
    ASSERT_OK(hsm_->StoreAnchor(0, 0, anchor)) << epoch;
    StatusOr<std::unique_ptr<TokenHsm>> fresh = TokenHsm::Create(pool_);
    ASSERT_OK(fresh);
    loaded = (*fresh)->LoadAnchor(0);
    ASSERT_OK(loaded);
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ(**loaded, anchor);
    EXPECT_EQ(CountObjects(), base + 1) << epoch;  // the data object, then two key holders
  }
  for (CK_OBJECT_HANDLE holder : AnchorHolders(*pool_)) {
    EXPECT_NE(holder, data);
    CK_ULONG object_class = 0;
    ASSERT_EQ(ReadUlongOn(pool_->functions(), lease->handle(), holder, CKA_CLASS, &object_class),
              CKR_OK);
    EXPECT_EQ(object_class, CKO_SECRET_KEY);
  }
  EXPECT_EQ(hsm_->anchor_storage(), TokenHsm::AnchorStorage::kSecretKeyId);
}

// A holder that does not decode next to an intact one is what a torn in-place write leaves
// behind: the intact (newest acknowledged) anchor is loaded and the damaged holder reused.
TEST_P(TokenHsmTest, DamagedHolderBesideAnIntactOneIsIgnoredAndRewritten) {
  InitKeys();
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("epoch-1")));
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("epoch-2")));
  std::vector<CK_OBJECT_HANDLE> holders = AnchorHolders(*pool_);
  ASSERT_EQ(holders.size(), 2u);
  // Damage the holder of epoch 1.
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  CK_OBJECT_HANDLE older = CK_INVALID_HANDLE;
  for (CK_OBJECT_HANDLE h : holders) {
    Bytes id;
    ASSERT_EQ(ReadBytesOn(pool_->functions(), lease->handle(), h, CKA_ID, &id), CKR_OK);
    if (id == EncodeAnchorCarrier(1, ToBytes("epoch-1"))) older = h;
  }
  ASSERT_NE(older, CK_INVALID_HANDLE);
  AttributeTemplate garbage;
  garbage.String(CKA_ID, "PVA");
  ASSERT_EQ(pool_->functions()->C_SetAttributeValue(lease->handle(), older, garbage.data(),
                                                    garbage.size()),
            CKR_OK);
  StatusOr<std::unique_ptr<TokenHsm>> other = TokenHsm::Create(pool_);
  ASSERT_OK(other);
  StatusOr<std::optional<Bytes>> loaded = (*other)->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, ToBytes("epoch-2"));
  ASSERT_OK((*other)->StoreAnchor(0, 0, ToBytes("epoch-3")));
  EXPECT_EQ(AnchorHolders(*pool_), holders);  // the damaged holder was rewritten
  loaded = hsm_->LoadAnchor(0);
  ASSERT_OK(loaded);
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, ToBytes("epoch-3"));
}

TEST_P(TokenHsmTest, MalformedAnchorHolderIsDataLoss) {
  InitKeys();
  StatusOr<SessionPool::Lease> lease = pool_->Acquire();
  ASSERT_OK(lease);
  CK_FUNCTION_LIST* f = pool_->functions();
  CK_OBJECT_HANDLE handle;
  if (GetParam() == Backend::kSoftHsm) {
    AttributeTemplate t;
    t.Ulong(CKA_CLASS, CKO_DATA)
        .Bool(CKA_TOKEN, true)
        .Bool(CKA_PRIVATE, true)
        .String(CKA_LABEL, kAnchorLabel)
        .String(CKA_VALUE, "garbage");
    ASSERT_EQ(f->C_CreateObject(lease->handle(), t.data(), t.size(), &handle), CKR_OK);
  } else {
    // NSS refuses token data objects; a key carrier with a bad CKA_ID stands in.
    AttributeTemplate t;
    t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
        .Ulong(CKA_VALUE_LEN, 16)
        .Bool(CKA_TOKEN, true)
        .Bool(CKA_PRIVATE, true)
        .String(CKA_LABEL, kAnchorLabel)
        .String(CKA_ID, "garbage");
    CK_MECHANISM m{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
    ASSERT_EQ(f->C_GenerateKey(lease->handle(), &m, t.data(), t.size(), &handle), CKR_OK);
  }
  EXPECT_THAT(hsm_->LoadAnchor(0), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(hsm_->StoreAnchor(0, 0, ToBytes("x")), StatusIs(StatusCode::kDataLoss));
}

TEST(TokenHsmOpenTest, OpensFromTheUriAlone) {
  StatusOr<std::unique_ptr<testing::SoftHsmToken>> token = testing::SoftHsmToken::Create();
  ASSERT_OK(token);
  {
    StatusOr<std::unique_ptr<Module>> module = Module::Load(testing::SoftHsmToken::kModulePath);
    ASSERT_OK(module);
    ASSERT_OK(ProvisionRealm(*std::move(module), (*token)->uri()));
  }
  for (std::string module :
       {"&module-path=/usr/lib/softhsm/libsofthsm2.so", "&module-name=softhsm2", ""}) {
    StatusOr<std::unique_ptr<TokenHsm>> hsm = TokenHsm::Open((*token)->uri() + module);
    ASSERT_OK(hsm) << " with '" << module << "'";
    StatusOr<vault::SealedBlob> blob = (*hsm)->Seal(1, Seq(3), {});
    ASSERT_OK(blob);
    EXPECT_OK((*hsm)->Unseal(*blob, {}));
  }
  EXPECT_THAT(TokenHsm::Open((*token)->uri() + "&module-path=/nonexistent.so"),
              StatusIs(StatusCode::kNotFound));
}

TEST(AnchorCarrierTest, EncodeDecode) {
  Bytes carrier = EncodeAnchorCarrier(0x0102030405060708, ToBytes("abc"));
  EXPECT_EQ(HexEncode(carrier),
            "50564131"
            "0102030405060708"
            "616263");
  StatusOr<DecodedAnchorCarrier> decoded = DecodeAnchorCarrier(carrier);
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->term, 0u);
  EXPECT_EQ(decoded->sequence, 0x0102030405060708u);
  EXPECT_EQ(decoded->anchor, ToBytes("abc"));
  for (size_t len = 0; len < 12; ++len) {
    EXPECT_THAT(DecodeAnchorCarrier(ByteView(carrier.data(), len)),
                StatusIs(StatusCode::kDataLoss));
  }
  carrier[0] = 'X';
  EXPECT_THAT(DecodeAnchorCarrier(carrier), StatusIs(StatusCode::kDataLoss));
}

TEST(EcPointTest, ParsesWrappedAndRawPoints) {
  Bytes raw32 = Seq(32);
  Bytes wrapped32 = Concat({Bytes{0x04, 0x20}, raw32});
  EXPECT_THAT(ParseEcPoint(wrapped32, vault::SignatureAlgorithm::kEd25519), IsOkAndHolds(raw32));
  EXPECT_THAT(ParseEcPoint(raw32, vault::SignatureAlgorithm::kEd25519), IsOkAndHolds(raw32));
  Bytes raw65 = Concat({Bytes{0x04}, Seq(64)});
  Bytes wrapped65 = Concat({Bytes{0x04, 0x41}, raw65});
  EXPECT_THAT(ParseEcPoint(wrapped65, vault::SignatureAlgorithm::kEcdsaP256), IsOkAndHolds(raw65));
  EXPECT_THAT(ParseEcPoint(raw65, vault::SignatureAlgorithm::kEcdsaP256), IsOkAndHolds(raw65));
  EXPECT_THAT(ParseEcPoint(Seq(31), vault::SignatureAlgorithm::kEd25519),
              StatusIs(StatusCode::kDataLoss));
  Bytes compressed = Concat({Bytes{0x02}, Seq(64)});
  EXPECT_THAT(ParseEcPoint(compressed, vault::SignatureAlgorithm::kEcdsaP256),
              StatusIs(StatusCode::kDataLoss));
}

TEST(SealingKeyLabelTest, ParsesOnlyCanonicalIds) {
  EXPECT_EQ(SealingKeyLabel(12), "pinvault-record-seal-12");
  EXPECT_EQ(ParseSealingKeyLabel("pinvault-record-seal-12"), 12u);
  EXPECT_EQ(ParseSealingKeyLabel("pinvault-record-seal-4294967295"), 4294967295u);
  for (const char* bad : {"pinvault-record-seal-", "pinvault-record-seal-0",
                          "pinvault-record-seal-01", "pinvault-record-seal-4294967296",
                          "pinvault-record-seal-1x", "pinvault-record-id-mac", "rogue"}) {
    EXPECT_FALSE(ParseSealingKeyLabel(bad).has_value()) << bad;
  }
}

TEST(AnchorLabelTest, PartitionZeroKeepsTheSingleTreeLabel) {
  EXPECT_EQ(AnchorLabel(0), "pinvault-anchor");
  EXPECT_EQ(AnchorLabel(13), "pinvault-anchor-p13");
  EXPECT_EQ(ParseAnchorLabel("pinvault-anchor"), 0u);
  EXPECT_EQ(ParseAnchorLabel("pinvault-anchor-p13"), 13u);
  for (const char* bad : {"pinvault-anchor-mac", "pinvault-anchor-p", "pinvault-anchor-p0",
                          "pinvault-anchor-p013", "pinvault-anchor-13", "rogue"}) {
    EXPECT_FALSE(ParseAnchorLabel(bad).has_value()) << bad;
  }
  EXPECT_EQ(RoleOf("pinvault-anchor-p13", CKO_SECRET_KEY), RealmKeyRole::kAnchorHolder);
  EXPECT_EQ(RoleOf("pinvault-anchor-mac", CKO_SECRET_KEY), RealmKeyRole::kAnchorMac);
}

// Each partition's holders carry their own label on the token.
TEST_P(TokenHsmTest, PartitionAnchorsAreHeldUnderTheirOwnLabels) {
  ASSERT_NO_FATAL_FAILURE(InitKeys());
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("zero")));
  ASSERT_OK(hsm_->StoreAnchor(3, 0, ToBytes("three")));
  ASSERT_OK(hsm_->StoreAnchor(3, 0, ToBytes("three-again")));
  ASSERT_OK_AND_ASSIGN(std::vector<CK_OBJECT_HANDLE> three,
                       FindByLabel(hsm_->pool(), AnchorLabel(3), std::nullopt));
  EXPECT_EQ(three.size(), 2u);  // two holders per partition, rewritten in place
  ASSERT_OK_AND_ASSIGN(std::vector<CK_OBJECT_HANDLE> zero,
                       FindByLabel(hsm_->pool(), AnchorLabel(0), std::nullopt));
  EXPECT_EQ(zero.size(), 1u);
  EXPECT_THAT(hsm_->LoadAnchor(3), IsOkAndHolds(std::optional(ToBytes("three-again"))));
  EXPECT_THAT(hsm_->LoadAnchor(0), IsOkAndHolds(std::optional(ToBytes("zero"))));
}

// Two owners of one partition in turn (two TokenHsm objects, as two nodes): the stale owner's
// late anchor write lands in its own, older term and never replaces the newer owner's anchor;
// once it has read the newer term it is refused.
TEST_P(TokenHsmTest, AStaleOwnersAnchorWriteNeverReplacesANewerTerm) {
  ASSERT_NO_FATAL_FAILURE(InitKeys());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TokenHsm> stale, TokenHsm::Create(pool_));
  ASSERT_OK(stale->StoreAnchor(4, 1, ToBytes("term-1 epoch-9")));
  ASSERT_OK(stale->StoreAnchor(4, 1, ToBytes("term-1 epoch-10")));
  // The new owner takes over under term 2 and commits twice.
  EXPECT_THAT(hsm_->LoadAnchor(4), IsOkAndHolds(std::optional(ToBytes("term-1 epoch-10"))));
  ASSERT_OK(hsm_->StoreAnchor(4, 2, ToBytes("term-2 epoch-11")));
  ASSERT_OK(hsm_->StoreAnchor(4, 2, ToBytes("term-2 epoch-12")));
  // The stale owner wakes and writes what it had in flight: its term-1 holders were pruned,
  // so the write fails or lands in term 1; either way term 2 stays the anchor.
  Status late = stale->StoreAnchor(4, 1, ToBytes("term-1 epoch-11 (stale)"));
  EXPECT_THAT(hsm_->LoadAnchor(4), IsOkAndHolds(std::optional(ToBytes("term-2 epoch-12"))))
      << late;
  EXPECT_THAT(stale->LoadAnchor(4), IsOkAndHolds(std::optional(ToBytes("term-2 epoch-12"))));
  // Having read term 2, the stale owner is refused outright.
  EXPECT_THAT(stale->StoreAnchor(4, 1, ToBytes("term-1 again")),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("term 2")));
  EXPECT_THAT(hsm_->LoadAnchor(4), IsOkAndHolds(std::optional(ToBytes("term-2 epoch-12"))));
  // Term 2's holders: at most two (plus a stale term-1 one until the next store prunes it).
  ASSERT_OK(hsm_->StoreAnchor(4, 2, ToBytes("term-2 epoch-13")));
  ASSERT_OK_AND_ASSIGN(std::vector<CK_OBJECT_HANDLE> holders,
                       FindByLabel(*pool_, AnchorLabel(4), std::nullopt));
  EXPECT_LE(holders.size(), 2u);
}

TEST(AnchorCarrierTest, TermsRoundTripAndTermZeroKeepsTheFirstFormat) {
  Bytes zero = EncodeAnchorCarrier(0, 5, ToBytes("a"));
  EXPECT_EQ(zero, EncodeAnchorCarrier(5, ToBytes("a")));
  EXPECT_EQ(zero[3], '1');
  ASSERT_OK_AND_ASSIGN(DecodedAnchorCarrier z, DecodeAnchorCarrier(zero));
  EXPECT_EQ(z.term, 0u);
  EXPECT_EQ(z.sequence, 5u);
  Bytes termed = EncodeAnchorCarrier(0x0102030405060708, 9, ToBytes("abc"));
  EXPECT_EQ(termed.size(), 20u + 3u);
  ASSERT_OK_AND_ASSIGN(DecodedAnchorCarrier t, DecodeAnchorCarrier(termed));
  EXPECT_EQ(t.term, 0x0102030405060708u);
  EXPECT_EQ(t.sequence, 9u);
  EXPECT_EQ(t.anchor, ToBytes("abc"));
  for (size_t len = 0; len < 20; ++len) {
    EXPECT_THAT(DecodeAnchorCarrier(ByteView(termed.data(), len)),
                StatusIs(StatusCode::kDataLoss));
  }
  Bytes term_zero_in_new_format = termed;
  for (size_t i = 4; i < 12; ++i) term_zero_in_new_format[i] = 0;
  EXPECT_THAT(DecodeAnchorCarrier(term_zero_in_new_format), StatusIs(StatusCode::kDataLoss));
}

INSTANTIATE_TEST_SUITE_P(Modules, TokenHsmTest, ::testing::Values(Backend::kSoftHsm, Backend::kNss),
                         BackendName);

}  // namespace
}  // namespace pinvault::pkcs11
