#include "vault/protocol/pin_hash.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexOf;

RegistrationVersion Fill(uint8_t b) {
  RegistrationVersion v;
  v.fill(b);
  return v;
}

SecretBytes Pin(std::string_view pin) { return SecretBytes::CopyFrom(AsBytes(pin)); }

TEST(PinHashTest, Rfc9106Argon2idVector) {
  // RFC 9106 section 5.3: Argon2id, m = 32 KiB, t = 3, p = 4, password 01×32, salt 02×16,
  // secret 03×8, associated data 04×12, 32-byte tag.
  const Bytes password(32, 0x01);
  const Bytes salt(16, 0x02);
  const Bytes secret(8, 0x03);
  const Bytes ad(12, 0x04);
  Bytes tag(32);
  ASSERT_OK(
      Argon2id({.m_cost_kib = 32, .t_cost = 3, .parallelism = 4}, password, salt, secret, ad, tag));
  EXPECT_EQ(HexEncode(tag), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
  // Dropping the secret or the associated data changes the tag.
  Bytes without_secret(32);
  ASSERT_OK(Argon2id({32, 3, 4}, password, salt, {}, ad, without_secret));
  EXPECT_NE(without_secret, tag);
}

TEST(PinHashTest, Argon2idRejectsBadParameters) {
  Bytes out(32);
  const Bytes salt(16, 0);
  EXPECT_THAT(
      Argon2id({.m_cost_kib = 8, .t_cost = 0, .parallelism = 1}, Bytes(4), salt, {}, {}, out),
      StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Argon2id({8, 1, 1}, Bytes(4), Bytes(4, 0), {}, {}, out),
              StatusIs(StatusCode::kInvalidArgument));  // salt below libargon2's 8-byte minimum
  Bytes tiny(3);
  EXPECT_THAT(Argon2id({8, 1, 1}, Bytes(4), salt, {}, {}, tiny),
              StatusIs(StatusCode::kInvalidArgument));  // tag below 4 bytes
}

TEST(PinHashTest, SdkPinRsKnownAnswer) {
  // The SDK's pin.rs test: Standard2019, version 05×16, PIN "1234", info "artemis".
  auto hashed = HashPin(PinHashingMode::kStandard2019, Pin("1234"), Fill(0x05), AsBytes("artemis"));
  ASSERT_OK(hashed);
  EXPECT_EQ(HexOf(hashed->access_key),
            "2935da84c97423b37f3457231b877ce6ac2093501d7255dbee1deb09a5d8821b");
  EXPECT_EQ(HexOf(hashed->encryption_key_seed),
            "87c8c9b5d3ea9fea83b6ac6a64e25b97c4722ca4e40bea2523efea262125e22a");
}

TEST(PinHashTest, SaltLayout) {
  auto salt = PinHashSalt(Fill(0xab), AsBytes("info-1"));
  ASSERT_OK(salt);
  EXPECT_EQ(HexEncode(*salt), "00000010abababababababababababababababab00000006696e666f2d31");
  auto empty = PinHashSalt(Fill(0), {});
  ASSERT_OK(empty);
  EXPECT_EQ(empty->size(), 24u);
  EXPECT_EQ(HexEncode(*empty), "00000010" + std::string(32, '0') + "00000000");
}

TEST(PinHashTest, EveryInputMatters) {
  const auto mode = PinHashingMode::kFastInsecure;
  auto base = HashPin(mode, Pin("1234"), Fill(1), AsBytes("info"));
  ASSERT_OK(base);
  EXPECT_EQ(base->access_key.size(), kAccessKeySize);
  EXPECT_EQ(base->encryption_key_seed.size(), kEncryptionKeySeedSize);
  EXPECT_FALSE(base->access_key.Equals(base->encryption_key_seed));
  ASSERT_OK_AND_ASSIGN(auto again, HashPin(mode, Pin("1234"), Fill(1), AsBytes("info")));
  EXPECT_TRUE(again.access_key.Equals(base->access_key));
  EXPECT_TRUE(again.encryption_key_seed.Equals(base->encryption_key_seed));
  ASSERT_OK_AND_ASSIGN(auto other_pin, HashPin(mode, Pin("1235"), Fill(1), AsBytes("info")));
  EXPECT_FALSE(other_pin.access_key.Equals(base->access_key));
  ASSERT_OK_AND_ASSIGN(auto other_salt, HashPin(mode, Pin("1234"), Fill(2), AsBytes("info")));
  EXPECT_FALSE(other_salt.access_key.Equals(base->access_key));
  ASSERT_OK_AND_ASSIGN(auto other_info, HashPin(mode, Pin("1234"), Fill(1), AsBytes("inf")));
  EXPECT_FALSE(other_info.access_key.Equals(base->access_key));
  // The empty PIN and empty info are allowed (the SDK takes them as given).
  EXPECT_OK(HashPin(mode, Pin(""), Fill(1), {}));
}

TEST(PinHashTest, ModesAndNames) {
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kStandard2019).m_cost_kib, 16384u);
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kStandard2019).t_cost, 32u);
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kStandard2019).parallelism, 1u);
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kFastInsecure).m_cost_kib, 8u);
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kFastInsecure).t_cost, 1u);
  EXPECT_EQ(Argon2ParamsFor(PinHashingMode::kFastInsecure).parallelism, 1u);
  for (auto mode : {PinHashingMode::kStandard2019, PinHashingMode::kFastInsecure}) {
    auto parsed = ParsePinHashingMode(PinHashingModeName(mode));
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, mode);
  }
  EXPECT_THAT(ParsePinHashingMode("standard2019"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePinHashingMode(""), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::protocol
