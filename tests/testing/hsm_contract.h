// hsm_contract.h: the contract suite of vault::Hsm (vault/hsm.h), run against every
// implementation in the tree, as LevelDB runs its env tests against every Env.
//
// An implementation joins with an HsmFactory and one line in a test file:
//
//   INSTANTIATE_TEST_SUITE_P(CloudHsm, HsmContractTest,
//                            ::testing::Values(HsmImplementation{
//                                "CloudHsm", [] { return std::make_unique<CloudFactory>(); }}),
//                            HsmImplementationName);
//
// The suite makes a fresh factory (hence a fresh key set and no anchor) for every test. Its
// cases make a few dozen HSM calls each at most, so that they stay fast on file-backed tokens.
//
// This header defines the TEST_P cases: include it from one .cc file per test binary
// (tests/integration/hsm_contract_test.cc).
#ifndef PINVAULT_TESTS_TESTING_HSM_CONTRACT_H_
#define PINVAULT_TESTS_TESTING_HSM_CONTRACT_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tests/testing/signatures.h"
#include "tests/testing/status_matchers.h"
#include "vault/bytes.h"
#include "vault/hsm.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::testing {

// HsmFactory opens the Hsm of one implementation for the contract suite. The suite makes one
// factory per test, so a factory may own per-test state (a token directory, a loaded module);
// it outlives the Hsm it opens. Not used from several threads.
class HsmFactory {
 public:
  virtual ~HsmFactory() = default;

  // Open returns the Hsm under test with a fresh key set (the sealing key
  // CurrentSealingKeyId(), both MAC keys, the audit signing key) and no anchor stored. Called
  // once per test; any error fails the test.
  virtual StatusOr<std::unique_ptr<vault::Hsm>> Open() = 0;

  // AddSealingKey adds a sealing key to `hsm` (opened by this factory), makes it the current
  // one and returns its id: key rotation, which is not part of vault::Hsm. UNIMPLEMENTED (the
  // default) if the implementation cannot rotate; the cases that need it are then skipped.
  // SoftwareHsm (RotateTo) and TokenHsm (AddSealingKey) can.
  virtual StatusOr<uint32_t> AddSealingKey(vault::Hsm& /*hsm*/) {
    return UnimplementedError("no key rotation");
  }
};

// HsmImplementation is the suite's parameter: a name for test names (letters, digits and '_'
// only), a function that makes a fresh factory for each test, and optionally a function that
// returns why the implementation cannot run on this machine ("" if it can); the cases are then
// skipped with that message.
struct HsmImplementation {
  std::string name;
  std::function<std::unique_ptr<HsmFactory>()> make_factory;
  std::function<std::string()> skip_reason;
};

// PrintTo prints an implementation as its name (in gtest's listings and failure messages).
inline void PrintTo(const HsmImplementation& implementation, std::ostream* os) {
  *os << implementation.name;
}

// HsmImplementationName names instantiations after the implementation; pass it as the last
// argument of INSTANTIATE_TEST_SUITE_P.
inline std::string HsmImplementationName(const ::testing::TestParamInfo<HsmImplementation>& info) {
  return info.param.name;
}

// HsmContractTest is the fixture of the suite: a fresh factory and Hsm per test.
class HsmContractTest : public ::testing::TestWithParam<HsmImplementation> {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    if (GetParam().skip_reason) {
      std::string reason = GetParam().skip_reason();
      if (!reason.empty()) GTEST_SKIP() << reason;
    }
    factory_ = GetParam().make_factory();
    ASSERT_NE(factory_, nullptr);
    ASSERT_OK_AND_ASSIGN(hsm_, factory_->Open());
    ASSERT_NE(hsm_, nullptr);
  }

  void TearDown() override {
    hsm_.reset();
    factory_.reset();
  }

  // hsm is the Hsm under test; factory the factory that opened it.
  vault::Hsm& hsm() { return *hsm_; }
  HsmFactory& factory() { return *factory_; }

  // Pattern returns `size` bytes counting up from `start` in steps of 7.
  static Bytes Pattern(size_t size, uint8_t start) {
    Bytes out(size);
    for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(start + i * 7);
    return out;
  }

  // FlipBit returns `data` with bit `bit` (0 = lowest bit of the first byte) inverted.
  template <typename Container>
  static Container FlipBit(Container data, size_t bit) {
    data[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    return data;
  }

  // Opens is true if `unsealed` holds exactly `expected`.
  static bool Opens(const StatusOr<SecretBytes>& unsealed, const Bytes& expected) {
    return unsealed.ok() && unsealed->Equals(expected);
  }

  // kPlaintext and kAssociatedData are what most cases seal.
  static inline const Bytes kPlaintext = Pattern(48, 0x31);
  static inline const Bytes kAssociatedData = ToBytes("tenant-a|record 00ff|key 1");

 private:
  std::unique_ptr<HsmFactory> factory_;
  std::unique_ptr<vault::Hsm> hsm_;
};

TEST_P(HsmContractTest, SealThenUnsealReturnsThePlaintext) {
  const uint32_t key_id = hsm().CurrentSealingKeyId();
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob, hsm().Seal(key_id, kPlaintext, kAssociatedData));
  EXPECT_EQ(blob.key_id, key_id);
  EXPECT_EQ(blob.ciphertext.size(), kPlaintext.size() + 16);  // ciphertext || 16-byte tag
  EXPECT_FALSE(std::equal(kPlaintext.begin(), kPlaintext.end(), blob.ciphertext.begin()));
  ASSERT_OK_AND_ASSIGN(SecretBytes unsealed, hsm().Unseal(blob, kAssociatedData));
  EXPECT_TRUE(unsealed.Equals(kPlaintext));
}

TEST_P(HsmContractTest, SealThenUnsealWorksWithEmptyPlaintextAndAssociatedData) {
  const uint32_t key_id = hsm().CurrentSealingKeyId();
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob no_aad, hsm().Seal(key_id, kPlaintext, {}));
  EXPECT_TRUE(Opens(hsm().Unseal(no_aad, {}), kPlaintext));
  EXPECT_THAT(hsm().Unseal(no_aad, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob empty, hsm().Seal(key_id, {}, kAssociatedData));
  EXPECT_EQ(empty.ciphertext.size(), 16u);
  ASSERT_OK_AND_ASSIGN(SecretBytes unsealed, hsm().Unseal(empty, kAssociatedData));
  EXPECT_TRUE(unsealed.empty());
}

TEST_P(HsmContractTest, UnsealWithAnAlteredIvIsDataLoss) {
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob,
                       hsm().Seal(hsm().CurrentSealingKeyId(), kPlaintext, kAssociatedData));
  for (size_t bit : {size_t{0}, size_t{47}, size_t{95}}) {
    SCOPED_TRACE("IV bit " + std::to_string(bit));
    vault::SealedBlob altered = blob;
    altered.iv = FlipBit(blob.iv, bit);
    EXPECT_THAT(hsm().Unseal(altered, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  }
  // The failures leave the HSM able to open the untouched blob.
  EXPECT_TRUE(Opens(hsm().Unseal(blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, UnsealWithAlteredCiphertextIsDataLoss) {
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob,
                       hsm().Seal(hsm().CurrentSealingKeyId(), kPlaintext, kAssociatedData));
  const size_t body_bits = kPlaintext.size() * 8;
  for (size_t bit : {size_t{0}, body_bits / 2 + 3, body_bits - 1}) {
    SCOPED_TRACE("ciphertext bit " + std::to_string(bit));
    vault::SealedBlob altered = blob;
    altered.ciphertext = FlipBit(blob.ciphertext, bit);
    EXPECT_THAT(hsm().Unseal(altered, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  }
  vault::SealedBlob longer = blob;
  longer.ciphertext.insert(longer.ciphertext.begin(), 0x00);
  EXPECT_THAT(hsm().Unseal(longer, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  vault::SealedBlob shorter = blob;
  shorter.ciphertext.erase(shorter.ciphertext.begin());
  EXPECT_THAT(hsm().Unseal(shorter, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  EXPECT_TRUE(Opens(hsm().Unseal(blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, UnsealWithAnAlteredTagIsDataLoss) {
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob,
                       hsm().Seal(hsm().CurrentSealingKeyId(), kPlaintext, kAssociatedData));
  const size_t tag_start = kPlaintext.size() * 8;
  for (size_t bit : {tag_start, tag_start + 64, tag_start + 127}) {
    SCOPED_TRACE("tag bit " + std::to_string(bit - tag_start));
    vault::SealedBlob altered = blob;
    altered.ciphertext = FlipBit(blob.ciphertext, bit);
    EXPECT_THAT(hsm().Unseal(altered, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  }
  // A truncated tag, and a blob shorter than any tag.
  vault::SealedBlob truncated = blob;
  truncated.ciphertext.pop_back();
  EXPECT_THAT(hsm().Unseal(truncated, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  vault::SealedBlob stub = blob;
  stub.ciphertext.resize(15);
  EXPECT_THAT(hsm().Unseal(stub, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  EXPECT_TRUE(Opens(hsm().Unseal(blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, UnsealWithAlteredAssociatedDataIsDataLoss) {
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob,
                       hsm().Seal(hsm().CurrentSealingKeyId(), kPlaintext, kAssociatedData));
  EXPECT_THAT(hsm().Unseal(blob, FlipBit(kAssociatedData, 0)), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(hsm().Unseal(blob, FlipBit(kAssociatedData, kAssociatedData.size() * 8 - 1)),
              StatusIs(StatusCode::kDataLoss));
  Bytes longer = kAssociatedData;
  longer.push_back(0x00);
  EXPECT_THAT(hsm().Unseal(blob, longer), StatusIs(StatusCode::kDataLoss));
  Bytes shorter(kAssociatedData.begin(), kAssociatedData.end() - 1);
  EXPECT_THAT(hsm().Unseal(blob, shorter), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(hsm().Unseal(blob, {}), StatusIs(StatusCode::kDataLoss));
  EXPECT_TRUE(Opens(hsm().Unseal(blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, UnsealWithAnUnknownKeyIdIsNotFound) {
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob blob,
                       hsm().Seal(hsm().CurrentSealingKeyId(), kPlaintext, kAssociatedData));
  for (uint32_t key_id : {hsm().CurrentSealingKeyId() + 1000, uint32_t{0xffffffff}}) {
    SCOPED_TRACE("key id " + std::to_string(key_id));
    vault::SealedBlob altered = blob;
    altered.key_id = key_id;
    EXPECT_THAT(hsm().Unseal(altered, kAssociatedData), StatusIs(StatusCode::kNotFound));
  }
  EXPECT_TRUE(Opens(hsm().Unseal(blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, UnsealUnderAnotherExistingKeyIdIsDataLoss) {
  const uint32_t old_id = hsm().CurrentSealingKeyId();
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob old_blob, hsm().Seal(old_id, kPlaintext, kAssociatedData));
  StatusOr<uint32_t> new_id = factory().AddSealingKey(hsm());
  if (new_id.status().code() == StatusCode::kUnimplemented) {
    GTEST_SKIP() << GetParam().name << " cannot add a sealing key";
  }
  ASSERT_OK(new_id);
  ASSERT_NE(*new_id, old_id);
  EXPECT_EQ(hsm().CurrentSealingKeyId(), *new_id);
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob new_blob,
                       hsm().Seal(*new_id, kPlaintext, kAssociatedData));
  EXPECT_EQ(new_blob.key_id, *new_id);
  // Each blob relabelled with the other key's id fails authentication.
  vault::SealedBlob relabelled = old_blob;
  relabelled.key_id = *new_id;
  EXPECT_THAT(hsm().Unseal(relabelled, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  relabelled = new_blob;
  relabelled.key_id = old_id;
  EXPECT_THAT(hsm().Unseal(relabelled, kAssociatedData), StatusIs(StatusCode::kDataLoss));
  // Both open under their own ids: a blob of the older key stays readable after rotation.
  EXPECT_TRUE(Opens(hsm().Unseal(old_blob, kAssociatedData), kPlaintext));
  EXPECT_TRUE(Opens(hsm().Unseal(new_blob, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, SealWithAnUnknownKeyIdIsNotFound) {
  EXPECT_THAT(hsm().Seal(hsm().CurrentSealingKeyId() + 1000, kPlaintext, kAssociatedData),
              StatusIs(StatusCode::kNotFound));
}

TEST_P(HsmContractTest, TwoSealsOfTheSamePlaintextUseDifferentIvs) {
  const uint32_t key_id = hsm().CurrentSealingKeyId();
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob first, hsm().Seal(key_id, kPlaintext, kAssociatedData));
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob second, hsm().Seal(key_id, kPlaintext, kAssociatedData));
  EXPECT_NE(first.iv, second.iv);
  EXPECT_NE(first.ciphertext, second.ciphertext);
  EXPECT_TRUE(Opens(hsm().Unseal(first, kAssociatedData), kPlaintext));
  EXPECT_TRUE(Opens(hsm().Unseal(second, kAssociatedData), kPlaintext));
}

TEST_P(HsmContractTest, MacIsDeterministicPerRoleAndDiffersBetweenRoles) {
  const Bytes data = ToBytes("tenant-a|user-42");
  ASSERT_OK_AND_ASSIGN(vault::MacTag record_id, hsm().Mac(vault::MacKeyRole::kRecordId, data));
  ASSERT_OK_AND_ASSIGN(vault::MacTag anchor, hsm().Mac(vault::MacKeyRole::kAnchor, data));
  EXPECT_THAT(hsm().Mac(vault::MacKeyRole::kRecordId, data), IsOkAndHolds(record_id));
  EXPECT_THAT(hsm().Mac(vault::MacKeyRole::kAnchor, data), IsOkAndHolds(anchor));
  EXPECT_NE(record_id, anchor);
  ASSERT_OK_AND_ASSIGN(vault::MacTag other,
                       hsm().Mac(vault::MacKeyRole::kRecordId, ToBytes("tenant-a|user-43")));
  EXPECT_NE(other, record_id);
  EXPECT_NE(record_id, vault::MacTag{});
}

TEST_P(HsmContractTest, VerifyMacAcceptsAGoodTagAndRejectsAFlippedBit) {
  const Bytes data = ToBytes("anchor: epoch 7, root 00ff");
  for (vault::MacKeyRole role : {vault::MacKeyRole::kRecordId, vault::MacKeyRole::kAnchor}) {
    SCOPED_TRACE(role == vault::MacKeyRole::kRecordId ? "record-id key" : "anchor key");
    ASSERT_OK_AND_ASSIGN(vault::MacTag tag, hsm().Mac(role, data));
    EXPECT_THAT(hsm().VerifyMac(role, data, tag), IsOk());
    for (size_t bit : {size_t{0}, size_t{255}}) {
      SCOPED_TRACE("tag bit " + std::to_string(bit));
      EXPECT_THAT(hsm().VerifyMac(role, data, FlipBit(tag, bit)), StatusIs(StatusCode::kDataLoss));
    }
    EXPECT_THAT(hsm().VerifyMac(role, FlipBit(data, 3), tag), StatusIs(StatusCode::kDataLoss));
    EXPECT_THAT(hsm().VerifyMac(role, data, ByteView(tag.data(), tag.size() - 1)),
                StatusIs(StatusCode::kDataLoss));
  }
  // A tag of one role does not verify under the other.
  ASSERT_OK_AND_ASSIGN(vault::MacTag record_id, hsm().Mac(vault::MacKeyRole::kRecordId, data));
  EXPECT_THAT(hsm().VerifyMac(vault::MacKeyRole::kAnchor, data, record_id),
              StatusIs(StatusCode::kDataLoss));
}

TEST_P(HsmContractTest, SignatureVerifiesWithTheAuditPublicKey) {
  ASSERT_OK_AND_ASSIGN(vault::SigningPublicKey public_key, hsm().AuditPublicKey());
  const Bytes message = ToBytes("audit entry 1: register record 00ff");
  const Bytes other = FlipBit(message, 0);
  ASSERT_OK_AND_ASSIGN(Bytes signature, hsm().Sign(message));
  ASSERT_EQ(signature.size(), 64u);
  RecordProperty("signature_algorithm", public_key.algorithm == vault::SignatureAlgorithm::kEd25519
                                            ? "Ed25519"
                                            : "ECDSA P-256");
  switch (public_key.algorithm) {
    case vault::SignatureAlgorithm::kEd25519:
      ASSERT_EQ(public_key.key.size(), size_t{crypto_sign_PUBLICKEYBYTES});
      EXPECT_EQ(crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                            public_key.key.data()),
                0);
      EXPECT_NE(crypto_sign_verify_detached(signature.data(), other.data(), other.size(),
                                            public_key.key.data()),
                0);
      break;
    case vault::SignatureAlgorithm::kEcdsaP256:
      ASSERT_EQ(public_key.key.size(), 65u);
      EXPECT_EQ(public_key.key[0], 0x04);  // uncompressed point
      EXPECT_TRUE(VerifyEcdsaP256(public_key.key, message, signature));
      EXPECT_FALSE(VerifyEcdsaP256(public_key.key, other, signature));
      break;
  }
  // The public key is stable across calls.
  ASSERT_OK_AND_ASSIGN(vault::SigningPublicKey again, hsm().AuditPublicKey());
  EXPECT_EQ(again.algorithm, public_key.algorithm);
  EXPECT_EQ(again.key, public_key.key);
}

TEST_P(HsmContractTest, GenerateRandomFillsTheBufferAndTwoCallsDiffer) {
  constexpr size_t kSize = 100;
  std::array<uint8_t, kSize> first{};
  std::array<uint8_t, kSize> second{};
  ASSERT_OK(hsm().GenerateRandom(first));
  ASSERT_OK(hsm().GenerateRandom(second));
  EXPECT_NE(first, second);
  // Both ends of the buffer are written (16 zero bytes by chance has probability 2^-128).
  const std::array<uint8_t, 16> zeros{};
  for (const auto* buffer : {&first, &second}) {
    EXPECT_FALSE(std::equal(zeros.begin(), zeros.end(), buffer->begin()));
    EXPECT_FALSE(std::equal(zeros.begin(), zeros.end(), buffer->end() - zeros.size()));
  }
}

TEST_P(HsmContractTest, LoadAnchorIsEmptyBeforeTheFirstStore) {
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional<Bytes>()));
}

TEST_P(HsmContractTest, StoreAnchorThenLoadAnchorRoundTrips) {
  const Bytes anchor = Pattern(80, 0x05);
  ASSERT_OK(hsm().StoreAnchor(0, 0, anchor));
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional(anchor)));
  // Loading does not consume it.
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional(anchor)));
}

TEST_P(HsmContractTest, SecondStoreAnchorReplacesTheFirst) {
  // Three stores of different lengths: implementations may keep more than one holder.
  const std::vector<Bytes> anchors = {Pattern(80, 0x01), Pattern(64, 0x02), Pattern(96, 0x03)};
  for (size_t i = 0; i < anchors.size(); ++i) {
    SCOPED_TRACE("store " + std::to_string(i + 1));
    ASSERT_OK(hsm().StoreAnchor(0, 0, anchors[i]));
    EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional(anchors[i])));
  }
}

TEST_P(HsmContractTest, EachPartitionHasItsOwnAnchor) {
  const Bytes zero = Pattern(80, 0x10);
  const Bytes seven = Pattern(80, 0x17);
  ASSERT_OK(hsm().StoreAnchor(7, 0, seven));
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional<Bytes>()));
  ASSERT_OK(hsm().StoreAnchor(0, 0, zero));
  EXPECT_THAT(hsm().LoadAnchor(7), IsOkAndHolds(std::optional(seven)));
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional(zero)));
  EXPECT_THAT(hsm().LoadAnchor(255), IsOkAndHolds(std::optional<Bytes>()));
  // Rewriting one partition's anchor many times leaves the other's alone.
  for (uint8_t i = 0; i < 5; ++i) {
    const Bytes next = Pattern(72, static_cast<uint8_t>(0x20 + i));
    ASSERT_OK(hsm().StoreAnchor(7, 0, next));
    EXPECT_THAT(hsm().LoadAnchor(7), IsOkAndHolds(std::optional(next)));
  }
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional(zero)));
}

// Lease terms: the anchor is the one stored under the highest term; a write under an older
// term never replaces it (refused with FAILED_PRECONDITION, or kept apart).
TEST_P(HsmContractTest, AnOlderTermNeverReplacesTheAnchorOfANewerOne) {
  const Bytes one = Pattern(80, 0x31);
  const Bytes two = Pattern(80, 0x32);
  ASSERT_OK(hsm().StoreAnchor(2, 1, one));
  EXPECT_THAT(hsm().LoadAnchor(2), IsOkAndHolds(std::optional(one)));
  ASSERT_OK(hsm().StoreAnchor(2, 2, two));
  EXPECT_THAT(hsm().LoadAnchor(2), IsOkAndHolds(std::optional(two)));
  EXPECT_THAT(hsm().StoreAnchor(2, 1, Pattern(80, 0x33)),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(hsm().LoadAnchor(2), IsOkAndHolds(std::optional(two)));
  // The newer term carries on; other partitions are untouched.
  const Bytes three = Pattern(64, 0x34);
  ASSERT_OK(hsm().StoreAnchor(2, 2, three));
  EXPECT_THAT(hsm().LoadAnchor(2), IsOkAndHolds(std::optional(three)));
  EXPECT_THAT(hsm().LoadAnchor(0), IsOkAndHolds(std::optional<Bytes>()));
}

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_HSM_CONTRACT_H_
