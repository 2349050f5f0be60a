#include "vault/protocol/tags.h"

#include <gtest/gtest.h>

#include <sodium.h>

#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/blake2s.h"

namespace pinvault::protocol {
namespace {

using testing::HexArray;
using testing::HexOf;

const RealmId kRealmA = HexArray<16>("1a000000000000000000000000000001");
const RealmId kRealmB = HexArray<16>("7f000000000000000000000000000002");

TEST(TagsTest, UnlockKeyIsTheSecondHalfOfSha512) {
  const SecretBytes output = SecretBytes::Random(64);
  auto derived = DeriveUnlockKey(output);
  ASSERT_TRUE(derived.ok());
  uint8_t digest[64];
  crypto_hash_sha512(digest, output.Reveal().data(), 64);
  EXPECT_EQ(HexEncode(derived->commitment), HexEncode(ByteView(digest, 32)));
  EXPECT_EQ(HexOf(derived->unlock_key), HexEncode(ByteView(digest + 32, 32)));
  EXPECT_EQ(DeriveUnlockKey(SecretBytes(32)).status().code(), StatusCode::kInvalidArgument);
}

TEST(TagsTest, TagIsKeyedBlake2s128OverLabelAndRealm) {
  const SecretBytes unlock_key = SecretBytes::Random(32);
  auto tag = ComputeUnlockKeyTag(unlock_key, kRealmA);
  ASSERT_TRUE(tag.ok());
  Bytes message = {0, 0, 0, 14};
  const Bytes label = ToBytes("Unlock Key Tag");
  message.insert(message.end(), label.begin(), label.end());
  message.insert(message.end(), {0, 0, 0, 16});
  message.insert(message.end(), kRealmA.begin(), kRealmA.end());
  Bytes expected(16);
  ASSERT_TRUE(KeyedBlake2s(unlock_key.Reveal(), message, expected).ok());
  EXPECT_EQ(HexEncode(*tag), HexEncode(expected));
  // Per realm and per key.
  EXPECT_NE(*tag, *ComputeUnlockKeyTag(unlock_key, kRealmB));
  EXPECT_NE(*tag, *ComputeUnlockKeyTag(SecretBytes::Random(32), kRealmA));
  EXPECT_EQ(ComputeUnlockKeyTag(SecretBytes(16), kRealmA).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TagsTest, TamperedTagIsNotEqual) {
  const SecretBytes unlock_key = SecretBytes::Random(32);
  const UnlockKeyTag tag = *ComputeUnlockKeyTag(unlock_key, kRealmA);
  EXPECT_TRUE(UnlockKeyTagEquals(tag, *ComputeUnlockKeyTag(unlock_key, kRealmA)));
  for (size_t bit = 0; bit < tag.size() * 8; ++bit) {
    UnlockKeyTag tampered = tag;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(UnlockKeyTagEquals(tag, tampered)) << bit;
  }
}

TEST(TagsTest, TamperedCommitmentsAreNotEqual) {
  const UnlockKey derived = *DeriveUnlockKey(SecretBytes::Random(64));
  EXPECT_TRUE(UnlockKeyCommitmentEquals(derived.commitment, derived.commitment));
  for (size_t bit = 0; bit < derived.commitment.size() * 8; ++bit) {
    UnlockKeyCommitment tampered = derived.commitment;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(UnlockKeyCommitmentEquals(derived.commitment, tampered)) << bit;
  }
}

TEST(TagsTest, EncryptedSecretCommitmentCoversEveryField) {
  const SecretBytes unlock_key = SecretBytes::Random(32);
  const SecretBytes share = SecretBytes::Random(32);
  EncryptedSecret box;
  randombytes_buf(box.data(), box.size());
  auto commitment = ComputeEncryptedSecretCommitment(unlock_key, kRealmA, share, box);
  ASSERT_TRUE(commitment.ok());
  EXPECT_TRUE(EncryptedSecretCommitmentEquals(
      *commitment, *ComputeEncryptedSecretCommitment(unlock_key, kRealmA, share, box)));
  EXPECT_FALSE(EncryptedSecretCommitmentEquals(
      *commitment, *ComputeEncryptedSecretCommitment(unlock_key, kRealmB, share, box)));
  EXPECT_FALSE(EncryptedSecretCommitmentEquals(
      *commitment,
      *ComputeEncryptedSecretCommitment(SecretBytes::Random(32), kRealmA, share, box)));
  for (size_t bit = 0; bit < box.size() * 8; bit += 7) {
    EncryptedSecret tampered = box;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(
        *commitment, *ComputeEncryptedSecretCommitment(unlock_key, kRealmA, share, tampered)))
        << "ciphertext bit " << bit;
  }
  for (size_t bit = 0; bit < 256; ++bit) {
    SecretBytes tampered = share.Clone();
    tampered.RevealMutable()[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(
        *commitment, *ComputeEncryptedSecretCommitment(unlock_key, kRealmA, tampered, box)))
        << "share bit " << bit;
  }
  for (size_t bit = 0; bit < commitment->size() * 8; ++bit) {
    EncryptedSecretCommitment tampered = *commitment;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, tampered)) << bit;
  }
  EXPECT_EQ(ComputeEncryptedSecretCommitment(unlock_key, kRealmA, SecretBytes(31), box)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(TagsTest, EncryptionKeyDependsOnSeedAndScalar) {
  const SecretBytes seed = SecretBytes::Random(32);
  const SecretBytes scalar = SecretBytes::Random(32);
  auto key = DeriveEncryptionKey(seed, scalar);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->size(), kEncryptionKeySize);
  EXPECT_TRUE(key->Equals(*DeriveEncryptionKey(seed, scalar)));
  EXPECT_FALSE(key->Equals(*DeriveEncryptionKey(SecretBytes::Random(32), scalar)));
  EXPECT_FALSE(key->Equals(*DeriveEncryptionKey(seed, SecretBytes::Random(32))));
  EXPECT_EQ(DeriveEncryptionKey(SecretBytes(31), scalar).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveEncryptionKey(seed, SecretBytes(64)).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pinvault::protocol
