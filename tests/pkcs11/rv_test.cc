#include "pkcs11/rv.h"

#include <gtest/gtest.h>

namespace pinvault::pkcs11 {
namespace {

TEST(RvTest, OkIsOk) { EXPECT_TRUE(RvToStatus(CKR_OK, "C_Encrypt").ok()); }

TEST(RvTest, MessageKeepsFunctionNameAndRawCode) {
  Status s = RvToStatus(CKR_DEVICE_REMOVED, "C_Encrypt");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "C_Encrypt: CKR_DEVICE_REMOVED (0x32)");
}

TEST(RvTest, TokenAndSessionLossIsUnavailable) {
  for (CK_RV rv : {CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID,
                   CKR_SESSION_CLOSED, CKR_DEVICE_ERROR}) {
    EXPECT_EQ(RvToStatus(rv, "C_Sign").code(), StatusCode::kUnavailable) << RvName(rv);
  }
}

TEST(RvTest, PinProblemsArePermissionDenied) {
  for (CK_RV rv : {CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_PIN_EXPIRED, CKR_PIN_LEN_RANGE}) {
    EXPECT_EQ(RvToStatus(rv, "C_Login").code(), StatusCode::kPermissionDenied) << RvName(rv);
  }
  EXPECT_EQ(RvToStatus(CKR_USER_NOT_LOGGED_IN, "C_Sign").code(), StatusCode::kUnauthenticated);
}

TEST(RvTest, AuthenticationFailuresAreDataLoss) {
  for (CK_RV rv : {CKR_ENCRYPTED_DATA_INVALID, CKR_SIGNATURE_INVALID, CKR_AEAD_DECRYPT_FAILED,
                   CKR_SIGNATURE_LEN_RANGE, CKR_WRAPPED_KEY_INVALID}) {
    EXPECT_EQ(RvToStatus(rv, "C_Decrypt").code(), StatusCode::kDataLoss) << RvName(rv);
  }
}

TEST(RvTest, GeneralErrorIsDataLossOnlyForAuthenticatedDecrypt) {
  EXPECT_EQ(RvToStatus(CKR_GENERAL_ERROR, "C_Decrypt").code(), StatusCode::kInternal);
  Status s = RvToStatus(CKR_GENERAL_ERROR, "C_Decrypt", RvContext::kAuthenticatedDecrypt);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("CKR_GENERAL_ERROR (0x5)"), std::string::npos) << s;
}

TEST(RvTest, OtherClasses) {
  EXPECT_EQ(RvToStatus(CKR_MECHANISM_INVALID, "C_EncryptInit").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(RvToStatus(CKR_KEY_HANDLE_INVALID, "C_EncryptInit").code(), StatusCode::kNotFound);
  EXPECT_EQ(RvToStatus(CKR_DATA_LEN_RANGE, "C_Encrypt").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RvToStatus(CKR_KEY_FUNCTION_NOT_PERMITTED, "C_SignInit").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(RvToStatus(CKR_HOST_MEMORY, "C_Encrypt").code(), StatusCode::kResourceExhausted);
}

TEST(RvTest, UnknownAndVendorCodesAreNamed) {
  EXPECT_EQ(RvName(0x7777), "CKR_UNKNOWN");
  EXPECT_EQ(RvName(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED");
  Status s = RvToStatus(CKR_VENDOR_DEFINED + 5, "C_Sign");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "C_Sign: CKR_VENDOR_DEFINED (0x80000005)");
}

TEST(RvTest, EveryNamedCodeRoundTrips) {
  for (CK_RV rv = 0; rv < 0x300; ++rv) {
    std::string_view name = RvName(rv);
    if (name == "CKR_UNKNOWN") continue;
    EXPECT_EQ(name.substr(0, 4), "CKR_");
    EXPECT_NE(DescribeRv(rv, "C_X").find(name), std::string::npos);
  }
  EXPECT_EQ(RvName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
}

}  // namespace
}  // namespace pinvault::pkcs11
