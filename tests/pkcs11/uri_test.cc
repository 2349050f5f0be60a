#include "pkcs11/uri.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/testing/softhsm_token.h"

namespace pinvault::pkcs11 {
namespace {

std::string Str(const SecretBytes& s) {
  return std::string(reinterpret_cast<const char*>(s.Reveal().data()), s.size());
}

TEST(UriTest, ParsesTokenAttributesAndPercentDecodes) {
  StatusOr<TokenUri> uri = ParseTokenUri(
      "pkcs11:token=My%20Realm;serial=abc123;manufacturer=SoftHSM%20project;model=SoftHSM%20v2"
      "?pin-source=file:/etc/pin%20file&module-path=/usr/lib/softhsm/libsofthsm2.so");
  ASSERT_TRUE(uri.ok()) << uri.status();
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
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_FALSE(uri->HasTokenSelector());
}

TEST(UriTest, RejectsOtherSchemesAndBadEscapes) {
  EXPECT_EQ(ParseTokenUri("pkcs12:token=x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("token=x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:token=a%2").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:token=a%zz").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:token").status().code(), StatusCode::kInvalidArgument);
}

TEST(UriTest, RefusesSlotIdUnknownAndRepeatedAttributes) {
  Status slot = ParseTokenUri("pkcs11:slot-id=3").status();
  EXPECT_EQ(slot.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(slot.message().find("slot"), std::string::npos);
  EXPECT_EQ(ParseTokenUri("pkcs11:tokn=x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:token=a;token=b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:?pin-soruce=x").status().code(), StatusCode::kInvalidArgument);
}

TEST(UriTest, IgnoresObjectAttributesAndVendorExtensions) {
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t;object=k;type=secret-key;x-foo=1");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->token, "t");
}

TEST(UriTest, PinSourceMustBeAnAbsoluteFile) {
  EXPECT_EQ(ParseTokenUri("pkcs11:token=t?pin-source=relative").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenUri("pkcs11:token=t?pin-source=|/bin/echo").status().code(),
            StatusCode::kInvalidArgument);
  StatusOr<TokenUri> plain = ParseTokenUri("pkcs11:token=t?pin-source=/run/pin");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->pin_source, "/run/pin");
}

TEST(UriTest, PinValueIsAcceptedAndRedacted) {
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t?pin-value=se%63ret");
  ASSERT_TRUE(uri.ok()) << uri.status();
  ASSERT_TRUE(uri->pin_value.has_value());
  EXPECT_EQ(Str(*uri->pin_value), "secret");
  std::string text = uri->ToString();
  EXPECT_EQ(text.find("secret"), std::string::npos) << text;
  EXPECT_NE(text.find("pin-value=REDACTED"), std::string::npos) << text;
  StatusOr<SecretBytes> pin = LoadPin(*uri);
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(Str(*pin), "secret");
  EXPECT_EQ(ParseTokenUri("pkcs11:token=t?pin-value=a&pin-source=/x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(UriTest, ToStringRoundTrips) {
  StatusOr<TokenUri> uri = ParseTokenUri(
      "pkcs11:token=My%20Realm;serial=42?pin-source=file:/tmp/a%20b&module-name=softhsm2");
  ASSERT_TRUE(uri.ok());
  StatusOr<TokenUri> again = ParseTokenUri(uri->ToString());
  ASSERT_TRUE(again.ok()) << again.status() << " for " << uri->ToString();
  EXPECT_EQ(again->token, "My Realm");
  EXPECT_EQ(again->serial, "42");
  EXPECT_EQ(again->pin_source, "/tmp/a b");
  EXPECT_EQ(again->module_name, "softhsm2");
}

TEST(UriTest, PercentEncodeDecode) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  StatusOr<std::string> back = PercentDecode(PercentEncode(all));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, all);
}

class PinFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::string> dir = testing::MakeTempDir("pinvault-uri-test-");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
  }
  void TearDown() override { testing::RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(PinFileTest, ReadsPinAndStripsOneNewline) {
  ASSERT_TRUE(testing::WriteFile(dir_ + "/pin", "1234\r\n", 0600).ok());
  StatusOr<TokenUri> uri = ParseTokenUri("pkcs11:token=t?pin-source=file:" + dir_ + "/pin");
  ASSERT_TRUE(uri.ok());
  StatusOr<SecretBytes> pin = LoadPin(*uri);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(Str(*pin), "1234");
  ASSERT_TRUE(testing::WriteFile(dir_ + "/pin2", "ab cd \n\n", 0600).ok());
  StatusOr<SecretBytes> pin2 = ReadPinFile(dir_ + "/pin2");
  ASSERT_TRUE(pin2.ok());
  EXPECT_EQ(Str(*pin2), "ab cd \n");
}

TEST_F(PinFileTest, MissingEmptyOrHugeFilesFail) {
  EXPECT_EQ(ReadPinFile(dir_ + "/absent").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(testing::WriteFile(dir_ + "/empty", "\n", 0600).ok());
  EXPECT_EQ(ReadPinFile(dir_ + "/empty").status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(testing::WriteFile(dir_ + "/huge", std::string(2000, 'x'), 0600).ok());
  EXPECT_EQ(ReadPinFile(dir_ + "/huge").status().code(), StatusCode::kInvalidArgument);
  StatusOr<TokenUri> none = ParseTokenUri("pkcs11:token=t");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(LoadPin(*none).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace pinvault::pkcs11
