#include "pkcs11/rv.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RvTest, OkIsOk) { EXPECT_OK(RvToStatus(CKR_OK, "C_Encrypt")); }

TEST(RvTest, MessageKeepsFunctionNameAndRawCode) {
  Status s = RvToStatus(CKR_DEVICE_REMOVED, "C_Encrypt");
  EXPECT_THAT(s, StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(s.message(), "C_Encrypt: CKR_DEVICE_REMOVED (0x32)");
}

TEST(RvTest, TokenAndSessionLossIsUnavailable) {
  for (CK_RV rv : {CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID,
                   CKR_SESSION_CLOSED, CKR_DEVICE_ERROR}) {
    EXPECT_THAT(RvToStatus(rv, "C_Sign"), StatusIs(StatusCode::kUnavailable)) << RvName(rv);
  }
}

TEST(RvTest, PinProblemsArePermissionDenied) {
  for (CK_RV rv : {CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_PIN_EXPIRED, CKR_PIN_LEN_RANGE}) {
    EXPECT_THAT(RvToStatus(rv, "C_Login"), StatusIs(StatusCode::kPermissionDenied)) << RvName(rv);
  }
  EXPECT_THAT(RvToStatus(CKR_USER_NOT_LOGGED_IN, "C_Sign"), StatusIs(StatusCode::kUnauthenticated));
}

TEST(RvTest, AuthenticationFailuresAreDataLoss) {
  for (CK_RV rv : {CKR_ENCRYPTED_DATA_INVALID, CKR_SIGNATURE_INVALID, CKR_AEAD_DECRYPT_FAILED,
                   CKR_SIGNATURE_LEN_RANGE, CKR_WRAPPED_KEY_INVALID}) {
    EXPECT_THAT(RvToStatus(rv, "C_Decrypt"), StatusIs(StatusCode::kDataLoss)) << RvName(rv);
  }
}

TEST(RvTest, GeneralErrorIsDataLossOnlyForAuthenticatedDecrypt) {
  EXPECT_THAT(RvToStatus(CKR_GENERAL_ERROR, "C_Decrypt"), StatusIs(StatusCode::kInternal));
  Status s = RvToStatus(CKR_GENERAL_ERROR, "C_Decrypt", RvContext::kAuthenticatedDecrypt);
  EXPECT_THAT(s, StatusIs(StatusCode::kDataLoss, HasSubstr("CKR_GENERAL_ERROR (0x5)")));
}

TEST(RvTest, OtherClasses) {
  EXPECT_THAT(RvToStatus(CKR_MECHANISM_INVALID, "C_EncryptInit"),
              StatusIs(StatusCode::kUnimplemented));
  EXPECT_THAT(RvToStatus(CKR_KEY_HANDLE_INVALID, "C_EncryptInit"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(RvToStatus(CKR_DATA_LEN_RANGE, "C_Encrypt"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(RvToStatus(CKR_KEY_FUNCTION_NOT_PERMITTED, "C_SignInit"),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(RvToStatus(CKR_HOST_MEMORY, "C_Encrypt"), StatusIs(StatusCode::kResourceExhausted));
}

TEST(RvTest, UnknownAndVendorCodesAreNamed) {
  EXPECT_EQ(RvName(0x7777), "CKR_UNKNOWN");
  EXPECT_EQ(RvName(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED");
  Status s = RvToStatus(CKR_VENDOR_DEFINED + 5, "C_Sign");
  EXPECT_THAT(s, StatusIs(StatusCode::kInternal));
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
