// TokenHsm when the HSM misbehaves: removed and re-inserted, handles invalidated; and the
// promise that no operation searches the token for objects.
#include <gtest/gtest.h>

#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "tests/pkcs11/token_backends.h"
#include "tests/testing/fault_module.h"
#include "tests/testing/softhsm_token.h"

namespace pinvault::pkcs11 {
namespace {

using testing::FaultModule;
using testing::SoftHsmToken;

class HsmFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<SoftHsmToken>> token = SoftHsmToken::Create();
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
    StatusOr<std::shared_ptr<FaultModule>> fault = FaultModule::Load(SoftHsmToken::kModulePath);
    ASSERT_TRUE(fault.ok()) << fault.status();
    fault_ = *fault;
    StatusOr<std::unique_ptr<Module>> module = fault_->CreateModule();
    ASSERT_TRUE(module.ok()) << module.status();
    std::shared_ptr<Module> shared = *std::move(module);
    TokenHsm::Options options;
    options.pool.retry_backoff = std::chrono::milliseconds(0);
    // Create the key set, then open the HSM the way a realm would.
    {
      StatusOr<std::unique_ptr<SessionPool>> pool =
          SessionPool::Open(shared, MustParseUri(token_->uri()), options.pool);
      ASSERT_TRUE(pool.ok()) << pool.status();
      TokenDescription d = (*pool)->token();
      StatusOr<Capabilities> caps = DetectCapabilities(*shared, d.slot, d.flags);
      ASSERT_TRUE(caps.ok());
      ASSERT_TRUE(EnsureRealmKeys(**pool, *caps, {}).ok());
    }
    StatusOr<std::unique_ptr<TokenHsm>> hsm = TokenHsm::Open(shared, token_->uri(), options);
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = *std::move(hsm);
  }
  void TearDown() override {
    hsm_.reset();
    fault_.reset();
    token_.reset();
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::shared_ptr<FaultModule> fault_;
  std::unique_ptr<TokenHsm> hsm_;
};

TEST_F(HsmFaultTest, HsmGoneIsUnavailableAndComesBackWithoutRestart) {
  Bytes aad = ToBytes("record|1");
  StatusOr<vault::SealedBlob> before = hsm_->Seal(1, Bytes(64, 7), aad);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(hsm_->StoreAnchor(ToBytes("anchor-1")).ok());

  fault_->Unplug();
  EXPECT_EQ(hsm_->Seal(1, Bytes(64, 7), aad).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->Unseal(*before, aad).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->Mac(vault::MacKeyRole::kRecordId, aad).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->Sign(aad).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->LoadAnchor().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm_->StoreAnchor(ToBytes("anchor-2")).code(), StatusCode::kUnavailable);
  std::array<uint8_t, 8> random{};
  Status s = hsm_->GenerateRandom(random);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("not present"), std::string::npos) << s;

  fault_->Replug();
  StatusOr<SecretBytes> opened = hsm_->Unseal(*before, aad);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->size(), 64u);
  EXPECT_TRUE(hsm_->Seal(1, Bytes(64, 7), aad).ok());
  StatusOr<std::optional<Bytes>> anchor = hsm_->LoadAnchor();
  ASSERT_TRUE(anchor.ok() && anchor->has_value()) << anchor.status();
  EXPECT_EQ(**anchor, ToBytes("anchor-1"));
  EXPECT_GE(hsm_->pool().recoveries(), 1u);
}

TEST_F(HsmFaultTest, DeviceRemovedMidOperationIsRetriedOnANewSession) {
  ASSERT_TRUE(fault_->FailNext("C_Encrypt", CKR_DEVICE_REMOVED, 1).ok());
  fault_->ResetCounts();
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(16, 1), {});
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(fault_->CallCount("C_Encrypt"), 2u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 1u);
  // The retry used a fresh IV: the failed attempt's IV is never used again.
  EXPECT_EQ(blob->iv[11], 1);
  EXPECT_TRUE(hsm_->Unseal(*blob, {}).ok());
}

TEST_F(HsmFaultTest, OperationsDoNotSearchForObjects) {
  Bytes aad = ToBytes("aad");
  fault_->ResetCounts();
  for (int i = 0; i < 50; ++i) {
    StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(64, 1), aad);
    ASSERT_TRUE(blob.ok());
    ASSERT_TRUE(hsm_->Unseal(*blob, aad).ok());
    StatusOr<vault::MacTag> tag = hsm_->Mac(vault::MacKeyRole::kRecordId, aad);
    ASSERT_TRUE(tag.ok());
    ASSERT_TRUE(hsm_->VerifyMac(vault::MacKeyRole::kRecordId, aad, *tag).ok());
    ASSERT_TRUE(hsm_->Sign(aad).ok());
  }
  EXPECT_EQ(fault_->CallCount("C_FindObjectsInit"), 0u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 0u);
  EXPECT_EQ(fault_->CallCount("C_EncryptInit"), 50u);
}

TEST_F(HsmFaultTest, InvalidatedKeyHandleIsLookedUpAgain) {
  ASSERT_TRUE(fault_->FailNext("C_SignInit", CKR_KEY_HANDLE_INVALID, 1).ok());
  fault_->ResetCounts();
  StatusOr<vault::MacTag> tag = hsm_->Mac(vault::MacKeyRole::kAnchor, ToBytes("x"));
  ASSERT_TRUE(tag.ok()) << tag.status();
  EXPECT_GT(fault_->CallCount("C_FindObjectsInit"), 0u);
  EXPECT_EQ(fault_->CallCount("C_SignInit"), 2u);
}

TEST_F(HsmFaultTest, AuthenticationFailureIsNotRetried) {
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(16, 1), {});
  ASSERT_TRUE(blob.ok());
  blob->ciphertext[0] ^= 1;
  fault_->ResetCounts();
  EXPECT_EQ(hsm_->Unseal(*blob, {}).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(fault_->CallCount("C_Decrypt"), 1u);
}

}  // namespace
}  // namespace pinvault::pkcs11
