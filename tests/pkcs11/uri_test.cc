#include "pkcs11/uri.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;

std::string Str(const SecretBytes& s) {
  return std::string(reinterpret_cast<const char*>(s.Reveal().data()), s.size());
}

TEST(UriTest, ParsesTokenAttributesAndPercentDecodes) {
  StatusOr<TokenUri> uri = ParseTokenUri(
      "pkcs11:token=My%20Realm;serial=abc123;manufacturer=SoftHSM%20project;model=SoftHSM%20v2"
      "?pin-source=file:/etc/pin%20file&module-path=/usr/lib/softhsm/libsofthsm2.so");
  ASSERT_OK(uri);
  EXPECT_EQ(uri->token, "My Realm");
  EXPECT_EQ(uri->serial, "abc123");
  EXPECT_EQ(uri->manufacturer, "SoftHSM project");
  EXPECT_EQ(uri->model, "SoftHSM v2");
  EXPECT_EQ(uri->pin_source, "/etc/pin file");
  EXPECT_EQ(uri->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_TRUE(uri->HasTokenSelector());
}

TEST(UriTest, SchemeIsCaseInsensitiveAndPathMayBeEmpty) {
  StatusOr<TokenUri> uri = ParseTokenUri("PKCS11:");
  ASSERT_OK(uri);
  EXPECT_FALSE(uri->HasTokenSelector());
}

TEST(UriTest, RejectsOtherSchemesAndBadEscapes) {
  EXPECT_THAT(ParseTokenUri("pkcs12:token=x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("token=x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:token=a%2"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:token=a%zz"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:token"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(UriTest, RefusesSlotIdUnknownAndRepeatedAttributes) {
  Status slot = ParseTokenUri("pkcs11:slot-id=3").status();
  EXPECT_THAT(slot, StatusIs(StatusCode::kInvalidArgument, HasSubstr("slot")));
  EXPECT_THAT(ParseTokenUri("pkcs11:tokn=x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:token=a;token=b"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:?pin-soruce=x"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(UriTest, IgnoresObjectAttributesAndVendorExtensions) {
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t;object=k;type=secret-key;x-foo=1");
  ASSERT_OK(uri);
  EXPECT_EQ(uri->token, "t");
}

TEST(UriTest, PinSourceMustBeAnAbsoluteFile) {
  EXPECT_THAT(ParseTokenUri("pkcs11:token=t?pin-source=relative"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTokenUri("pkcs11:token=t?pin-source=|/bin/echo"),
              StatusIs(StatusCode::kInvalidArgument));
  StatusOr<TokenUri> plain = ParseTokenUri("pkcs11:token=t?pin-source=/run/pin");
  ASSERT_OK(plain);
  EXPECT_EQ(plain->pin_source, "/run/pin");
}

TEST(UriTest, PinValueIsAcceptedAndRedacted) {
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t?pin-value=se%63ret");
  ASSERT_OK(uri);
  ASSERT_TRUE(uri->pin_value.has_value());
  EXPECT_EQ(Str(*uri->pin_value), "secret");
  std::string text = uri->ToString();
  EXPECT_EQ(text.find("secret"), std::string::npos) << text;
  EXPECT_NE(text.find("pin-value=REDACTED"), std::string::npos) << text;
  StatusOr<SecretBytes> pin = LoadPin(*uri);
  ASSERT_OK(pin);
  EXPECT_EQ(Str(*pin), "secret");
  EXPECT_THAT(ParseTokenUri("pkcs11:token=t?pin-value=a&pin-source=/x"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(UriTest, ToStringRoundTrips) {
  StatusOr<TokenUri> uri = ParseTokenUri(
      "pkcs11:token=My%20Realm;serial=42?pin-source=file:/tmp/a%20b&module-name=softhsm2");
  ASSERT_OK(uri);
  StatusOr<TokenUri> again = ParseTokenUri(uri->ToString());
  ASSERT_OK(again) << " for " << uri->ToString();
  EXPECT_EQ(again->token, "My Realm");
  EXPECT_EQ(again->serial, "42");
  EXPECT_EQ(again->pin_source, "/tmp/a b");
  EXPECT_EQ(again->module_name, "softhsm2");
}

TEST(UriTest, PercentEncodeDecode) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  StatusOr<std::string> back = PercentDecode(PercentEncode(all));
  ASSERT_OK(back);
  EXPECT_EQ(*back, all);
}

class PinFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::string> dir = testing::MakeTempDir("pinvault-uri-test-");
    ASSERT_OK(dir);
    dir_ = *dir;
  }
  void TearDown() override { testing::RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(PinFileTest, ReadsPinAndStripsOneNewline) {
  ASSERT_OK(testing::WriteFile(dir_ + "/pin", "1234\r\n", 0600));
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t?pin-source=file:" + dir_ + "/pin");
  ASSERT_OK(uri);
  StatusOr<SecretBytes> pin = LoadPin(*uri);
  ASSERT_OK(pin);
  EXPECT_EQ(Str(*pin), "1234");
  ASSERT_OK(testing::WriteFile(dir_ + "/pin2", "ab cd \n\n", 0600));
  StatusOr<SecretBytes> pin2 = ReadPinFile(dir_ + "/pin2");
  ASSERT_OK(pin2);
  EXPECT_EQ(Str(*pin2), "ab cd \n");
}

TEST_F(PinFileTest, MissingEmptyOrHugeFilesFail) {
  EXPECT_THAT(ReadPinFile(dir_ + "/absent"), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(testing::WriteFile(dir_ + "/empty", "\n", 0600));
  EXPECT_THAT(ReadPinFile(dir_ + "/empty"), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK(testing::WriteFile(dir_ + "/huge", std::string(2000, 'x'), 0600));
  EXPECT_THAT(ReadPinFile(dir_ + "/huge"), StatusIs(StatusCode::kInvalidArgument));
  StatusOr<TokenUri> none = ParseTokenUri("pkcs11:token=t");
  ASSERT_OK(none);
  EXPECT_THAT(LoadPin(*none), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace pinvault::pkcs11
