// TokenHsm when the HSM misbehaves: removed and re-inserted, handles invalidated; and the
// promise that no operation searches the token for objects.
#include <gtest/gtest.h>

#include "pkcs11/hsm_keys.h"
#include "pkcs11/token_setup.h"
#include "tests/testing/fault_module.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/token_backends.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::FaultModule;
using ::pinvault::testing::SoftHsmToken;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;

class HsmFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<SoftHsmToken>> token = SoftHsmToken::Create();
    ASSERT_OK(token);
    token_ = *std::move(token);
    StatusOr<std::shared_ptr<FaultModule>> fault = FaultModule::Load(SoftHsmToken::kModulePath);
    ASSERT_OK(fault);
    fault_ = *fault;
    StatusOr<std::unique_ptr<Module>> module = fault_->CreateModule();
    ASSERT_OK(module);
    // Create the key set and open the HSM on it, through the fault-injecting module.
    ProvisionOptions options;
    options.hsm.pool.retry_backoff = std::chrono::milliseconds(0);
    StatusOr<ProvisionedRealm> realm =
        ProvisionRealm(*std::move(module), token_->uri(), std::move(options));
    ASSERT_OK(realm);
    hsm_ = std::move(realm->hsm);
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
  ASSERT_OK(before);
  ASSERT_OK(hsm_->StoreAnchor(0, 0, ToBytes("anchor-1")));

  fault_->Unplug();
  EXPECT_THAT(hsm_->Seal(1, Bytes(64, 7), aad), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(hsm_->Unseal(*before, aad), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(hsm_->Mac(vault::MacKeyRole::kRecordId, aad), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(hsm_->Sign(aad), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(hsm_->LoadAnchor(0), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(hsm_->StoreAnchor(0, 0, ToBytes("anchor-2")), StatusIs(StatusCode::kUnavailable));
  std::array<uint8_t, 8> random{};
  Status s = hsm_->GenerateRandom(random);
  EXPECT_THAT(s, StatusIs(StatusCode::kUnavailable, HasSubstr("not present"))) << s;

  fault_->Replug();
  StatusOr<SecretBytes> opened = hsm_->Unseal(*before, aad);
  ASSERT_OK(opened);
  EXPECT_EQ(opened->size(), 64u);
  EXPECT_OK(hsm_->Seal(1, Bytes(64, 7), aad));
  StatusOr<std::optional<Bytes>> anchor = hsm_->LoadAnchor(0);
  ASSERT_OK(anchor);
  ASSERT_TRUE(anchor->has_value());
  EXPECT_EQ(**anchor, ToBytes("anchor-1"));
  EXPECT_GE(hsm_->pool().recoveries(), 1u);
}

TEST_F(HsmFaultTest, DeviceRemovedMidOperationIsRetriedOnANewSession) {
  ASSERT_OK(fault_->FailNext("C_Encrypt", CKR_DEVICE_REMOVED, 1));
  fault_->ResetCounts();
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(16, 1), {});
  ASSERT_OK(blob);
  EXPECT_EQ(fault_->CallCount("C_Encrypt"), 2u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 1u);
  // The retry used a fresh IV: the failed attempt's IV is never used again.
  EXPECT_EQ(blob->iv[11], 1);
  EXPECT_OK(hsm_->Unseal(*blob, {}));
}

TEST_F(HsmFaultTest, OperationsDoNotSearchForObjects) {
  Bytes aad = ToBytes("aad");
  fault_->ResetCounts();
  for (int i = 0; i < 50; ++i) {
    StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(64, 1), aad);
    ASSERT_OK(blob);
    ASSERT_OK(hsm_->Unseal(*blob, aad));
    StatusOr<vault::MacTag> tag = hsm_->Mac(vault::MacKeyRole::kRecordId, aad);
    ASSERT_OK(tag);
    ASSERT_OK(hsm_->VerifyMac(vault::MacKeyRole::kRecordId, aad, *tag));
    ASSERT_OK(hsm_->Sign(aad));
  }
  EXPECT_EQ(fault_->CallCount("C_FindObjectsInit"), 0u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 0u);
  EXPECT_EQ(fault_->CallCount("C_EncryptInit"), 50u);
}

TEST_F(HsmFaultTest, InvalidatedKeyHandleIsLookedUpAgain) {
  ASSERT_OK(fault_->FailNext("C_SignInit", CKR_KEY_HANDLE_INVALID, 1));
  fault_->ResetCounts();
  StatusOr<vault::MacTag> tag = hsm_->Mac(vault::MacKeyRole::kAnchor, ToBytes("x"));
  ASSERT_OK(tag);
  EXPECT_GT(fault_->CallCount("C_FindObjectsInit"), 0u);
  EXPECT_EQ(fault_->CallCount("C_SignInit"), 2u);
}

TEST_F(HsmFaultTest, AuthenticationFailureIsNotRetried) {
  StatusOr<vault::SealedBlob> blob = hsm_->Seal(1, Bytes(16, 1), {});
  ASSERT_OK(blob);
  blob->ciphertext[0] ^= 1;
  fault_->ResetCounts();
  EXPECT_THAT(hsm_->Unseal(*blob, {}), StatusIs(StatusCode::kDataLoss));
  EXPECT_EQ(fault_->CallCount("C_Decrypt"), 1u);
}

}  // namespace
}  // namespace pinvault::pkcs11
