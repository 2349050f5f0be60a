#include "vault/protocol/secret_box.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexOf;

SecretBytes Secret(std::string_view s) { return SecretBytes::CopyFrom(AsBytes(s)); }

SecretBytes Key(uint8_t fill) { return SecretBytes::CopyFrom(Bytes(32, fill)); }

TEST(SecretBoxTest, Rfc8439AeadVector) {
  // RFC 8439 section 2.8.2.
  Bytes key_bytes(32);
  for (size_t i = 0; i < 32; ++i) key_bytes[i] = static_cast<uint8_t>(0x80 + i);
  const SecretBytes key = SecretBytes::CopyFrom(key_bytes);
  const Bytes nonce = Hex("070000004041424344454647");
  const Bytes aad = Hex("50515253c0c1c2c3c4c5c6c7");
  const Bytes plaintext = ToBytes(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
      "future, sunscreen would be it.");
  const std::string expected =
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69"
      "da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad67594"
      "5585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691";  // tag
  auto sealed = ChaCha20Poly1305Seal(key, nonce, aad, plaintext);
  ASSERT_OK(sealed);
  EXPECT_EQ(HexEncode(*sealed), expected);
  auto opened = ChaCha20Poly1305Open(key, nonce, aad, *sealed);
  ASSERT_OK(opened);
  EXPECT_TRUE(opened->Equals(plaintext));
  // Wrong AAD, nonce or truncation fail to authenticate.
  EXPECT_THAT(ChaCha20Poly1305Open(key, nonce, {}, *sealed), StatusIs(StatusCode::kDataLoss));
  Bytes other_nonce = nonce;
  other_nonce[0] ^= 1;
  EXPECT_THAT(ChaCha20Poly1305Open(key, other_nonce, aad, *sealed),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ChaCha20Poly1305Open(key, nonce, aad, Bytes(sealed->begin(), sealed->end() - 1)),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ChaCha20Poly1305Open(key, nonce, aad, Bytes(15)), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ChaCha20Poly1305Seal(key, Bytes(8), aad, plaintext),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ChaCha20Poly1305Seal(SecretBytes(16), nonce, aad, plaintext),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(SecretBoxTest, SdkTypesRsKnownAnswer) {
  // The SDK's types.rs test: "artemis" sealed under key 08×32 (zero nonce, no AAD).
  auto sealed = SealSecret(Key(0x08), Secret("artemis"));
  ASSERT_OK(sealed);
  EXPECT_EQ(HexEncode(*sealed),
            "0186b2fb12c1f4a27ac200efff80fd27c7f991e2fc53a551322e11015e6ce08b338998b0e6cbb8ac4bb5"
            "ce97bc166471e097443fcaa4e1549b8da931ff4b015ffa225ccb9c815410149531563ff574245274d788"
            "c59a7e63637f4f1d174aac9514022b661d525966e15340e5f7e8c2cf0681b72e0434cd6df040430fe2b9"
            "ba36a214dbfaa267a44c79578c93766d6b2307");
  auto opened = OpenSecret(Key(0x08), *sealed);
  ASSERT_OK(opened);
  EXPECT_TRUE(opened->Equals(AsBytes("artemis")));
}

TEST(SecretBoxTest, PaddingLayout) {
  auto padded = PadSecret(Secret("abc"));
  ASSERT_OK(padded);
  ASSERT_EQ(padded->size(), kPaddedSecretSize);
  EXPECT_EQ(HexOf(*padded), "03616263" + std::string(2 * 125, '0'));
  auto empty = PadSecret(SecretBytes());
  ASSERT_OK(empty);
  EXPECT_EQ(HexOf(*empty), std::string(2 * 129, '0'));
  auto unpadded = UnpadSecret(*padded);
  ASSERT_OK(unpadded);
  EXPECT_TRUE(unpadded->Equals(AsBytes("abc")));
}

TEST(SecretBoxTest, RoundTripsEverySize) {
  const SecretBytes key = SecretBytes::Random(32);
  for (size_t n = 0; n <= kMaxSecretSize; ++n) {
    SecretBytes secret = SecretBytes::Random(n);
    auto sealed = SealSecret(key, secret);
    ASSERT_OK(sealed) << n;
    auto opened = OpenSecret(key, *sealed);
    ASSERT_OK(opened) << n;
    EXPECT_TRUE(opened->Equals(secret)) << n;
  }
}

TEST(SecretBoxTest, SecretOver128BytesRejected) {
  EXPECT_THAT(PadSecret(SecretBytes(129)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SealSecret(Key(1), SecretBytes(129)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(SealSecret(Key(1), SecretBytes(128)));
  EXPECT_THAT(SealSecret(SecretBytes(31), SecretBytes(1)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenSecret(SecretBytes(31), EncryptedSecret{}),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(SecretBoxTest, EveryBitFlipIsCaught) {
  const SecretBytes key = Key(0x33);
  auto sealed = SealSecret(key, Secret("a secret worth keeping"));
  ASSERT_OK(sealed);
  for (size_t bit = 0; bit < sealed->size() * 8; ++bit) {
    EncryptedSecret tampered = *sealed;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_THAT(OpenSecret(key, tampered), StatusIs(StatusCode::kDataLoss)) << "bit " << bit;
  }
  EXPECT_THAT(OpenSecret(Key(0x34), *sealed), StatusIs(StatusCode::kDataLoss));
}

TEST(SecretBoxTest, BadLengthByteIsDataLoss) {
  // A well-authenticated box whose padded length byte claims 129 bytes.
  SecretBytes padded(kPaddedSecretSize);
  padded.RevealMutable()[0] = 129;
  const SecretBytes key = Key(0x44);
  auto raw = ChaCha20Poly1305Seal(key, Bytes(12, 0), {}, padded.Reveal());
  ASSERT_OK(raw);
  ASSERT_EQ(raw->size(), kEncryptedSecretSize);
  EncryptedSecret box;
  std::copy(raw->begin(), raw->end(), box.begin());
  EXPECT_THAT(OpenSecret(key, box), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(UnpadSecret(padded), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(UnpadSecret(SecretBytes(128)), StatusIs(StatusCode::kDataLoss));
  // 128 is the largest valid length.
  padded.RevealMutable()[0] = 128;
  ASSERT_OK_AND_ASSIGN(auto unpadded, UnpadSecret(padded));
  EXPECT_EQ(unpadded.size(), 128u);
}

}  // namespace
}  // namespace pinvault::protocol
