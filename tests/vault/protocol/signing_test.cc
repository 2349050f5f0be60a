#include "vault/protocol/signing.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/ristretto.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexArray;
using testing::HexSecret;

struct Rfc8032Case {
  std::string_view secret_key;
  std::string_view public_key;
  std::string_view message;
  std::string_view signature;
};

// RFC 8032 section 7.1, TEST 1, 2 and 3.
constexpr Rfc8032Case kRfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
     "984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

TEST(SigningTest, Rfc8032Vectors) {
  for (const auto& c : kRfc8032) {
    SCOPED_TRACE(c.public_key);
    auto key = OprfSigningKey::FromSeed(HexSecret(c.secret_key));
    ASSERT_OK(key);
    EXPECT_EQ(HexEncode(key->verifying_key()), c.public_key);
    const Bytes message = Hex(c.message);
    const Ed25519Signature signature = key->SignMessage(message);
    EXPECT_EQ(HexEncode(signature), c.signature);
    EXPECT_OK(VerifyEd25519(HexArray<32>(c.public_key), message, HexArray<64>(c.signature)));
    // Every bit flip of the signature is rejected.
    for (size_t bit = 0; bit < 512; ++bit) {
      Ed25519Signature tampered = signature;
      tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      EXPECT_THAT(VerifyEd25519(key->verifying_key(), message, tampered),
                  StatusIs(StatusCode::kDataLoss))
          << "bit " << bit;
    }
    Bytes other = message;
    other.push_back(0);
    EXPECT_THAT(VerifyEd25519(key->verifying_key(), other, signature),
                StatusIs(StatusCode::kDataLoss));
  }
}

TEST(SigningTest, StrictVerification) {
  const auto& c = kRfc8032[1];
  const Bytes message = Hex(c.message);
  const Ed25519PublicKey public_key = HexArray<32>(c.public_key);
  // S + l: the same residue, a non-canonical encoding. Lax verifiers accept it.
  Ed25519Signature malleated = HexArray<64>(c.signature);
  const Bytes l = Hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
  unsigned carry = 0;
  for (size_t i = 0; i < 32; ++i) {
    const unsigned sum = malleated[32 + i] + l[i] + carry;
    malleated[32 + i] = static_cast<uint8_t>(sum);
    carry = sum >> 8;
  }
  ASSERT_EQ(carry, 0u);
  EXPECT_THAT(VerifyEd25519(public_key, message, malleated), StatusIs(StatusCode::kDataLoss));
  // The identity as public key with R = identity and S = 0 satisfies the cofactorless
  // equation for every message; strict verification rejects the small-order key.
  Ed25519PublicKey identity{};
  identity[0] = 1;
  Ed25519Signature trivial{};
  trivial[0] = 1;
  EXPECT_THAT(VerifyEd25519(identity, message, trivial), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(VerifyEd25519(identity, ToBytes("any"), trivial), StatusIs(StatusCode::kDataLoss));
}

TEST(SigningTest, OprfPublicKeyMessageLayout) {
  const RealmId realm = HexArray<16>("0102030405060708090a0b0c0d0e0f10");
  const PointBytes point =
      HexArray<32>("1a54b8eeb26f175da932d841c2f01fa50439bf7d593a7e0fe542049195fa0c20");
  EXPECT_EQ(HexEncode(OprfPublicKeyMessage(realm, point)),
            "0010"
            "0102030405060708090a0b0c0d0e0f10"
            "0020"
            "1a54b8eeb26f175da932d841c2f01fa50439bf7d593a7e0fe542049195fa0c20");
}

TEST(SigningTest, SignedOprfPublicKeyBindsRealmAndKey) {
  const OprfSigningKey key = OprfSigningKey::Generate();
  const RealmId realm = HexArray<16>("1a000000000000000000000000000001");
  const RealmId other_realm = HexArray<16>("7f000000000000000000000000000002");
  ASSERT_OK_AND_ASSIGN(const PointBytes public_key, BasePointMult(RandomScalar()));
  const OprfSignedPublicKey signed_key = key.SignOprfPublicKey(realm, public_key);
  EXPECT_EQ(signed_key.public_key, public_key);
  EXPECT_EQ(signed_key.verifying_key, key.verifying_key());
  EXPECT_OK(VerifyOprfSignedPublicKey(realm, signed_key));
  EXPECT_THAT(VerifyOprfSignedPublicKey(other_realm, signed_key), StatusIs(StatusCode::kDataLoss));
  OprfSignedPublicKey swapped = signed_key;
  ASSERT_OK_AND_ASSIGN(swapped.public_key, BasePointMult(RandomScalar()));
  EXPECT_THAT(VerifyOprfSignedPublicKey(realm, swapped), StatusIs(StatusCode::kDataLoss));
  OprfSignedPublicKey other_signer = signed_key;
  other_signer.verifying_key = OprfSigningKey::Generate().verifying_key();
  EXPECT_THAT(VerifyOprfSignedPublicKey(realm, other_signer), StatusIs(StatusCode::kDataLoss));
  // Fresh keys differ.
  EXPECT_NE(OprfSigningKey::Generate().verifying_key(), key.verifying_key());
}

TEST(SigningTest, FromSeedRejectsBadSize) {
  EXPECT_THAT(OprfSigningKey::FromSeed(SecretBytes(31)), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::protocol
