#include "vault/protocol/tags.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/blake2s.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::protocol::testing::HexArray;
using ::pinvault::protocol::testing::HexOf;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using ::testing::Ne;

const RealmId kRealmA = HexArray<16>("1a000000000000000000000000000001");
const RealmId kRealmB = HexArray<16>("7f000000000000000000000000000002");

TEST(TagsTest, UnlockKeyIsTheSecondHalfOfSha512) {
  const SecretBytes output = SecretBytes::Random(64);
  auto derived = DeriveUnlockKey(output);
  ASSERT_OK(derived);
  uint8_t digest[64];
  crypto_hash_sha512(digest, output.Reveal().data(), 64);
  EXPECT_EQ(HexEncode(derived->commitment), HexEncode(ByteView(digest, 32)));
  EXPECT_EQ(HexOf(derived->unlock_key), HexEncode(ByteView(digest + 32, 32)));
  EXPECT_THAT(DeriveUnlockKey(SecretBytes(32)), StatusIs(StatusCode::kInvalidArgument));
}

TEST(TagsTest, TagIsKeyedBlake2s128OverLabelAndRealm) {
  const SecretBytes unlock_key = SecretBytes::Random(32);
  auto tag = ComputeUnlockKeyTag(unlock_key, kRealmA);
  ASSERT_OK(tag);
  Bytes message = {0, 0, 0, 14};
  const Bytes label = ToBytes("Unlock Key Tag");
  message.insert(message.end(), label.begin(), label.end());
  message.insert(message.end(), {0, 0, 0, 16});
  message.insert(message.end(), kRealmA.begin(), kRealmA.end());
  Bytes expected(16);
  ASSERT_OK(KeyedBlake2s(unlock_key.Reveal(), message, expected));
  EXPECT_EQ(HexEncode(*tag), HexEncode(expected));
  // Per realm and per key.
  EXPECT_THAT(ComputeUnlockKeyTag(unlock_key, kRealmB), IsOkAndHolds(Ne(*tag)));
  EXPECT_THAT(ComputeUnlockKeyTag(SecretBytes::Random(32), kRealmA), IsOkAndHolds(Ne(*tag)));
  EXPECT_THAT(ComputeUnlockKeyTag(SecretBytes(16), kRealmA),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TagsTest, TamperedTagIsNotEqual) {
  const SecretBytes unlock_key = SecretBytes::Random(32);
  ASSERT_OK_AND_ASSIGN(const UnlockKeyTag tag, ComputeUnlockKeyTag(unlock_key, kRealmA));
  ASSERT_OK_AND_ASSIGN(const UnlockKeyTag again, ComputeUnlockKeyTag(unlock_key, kRealmA));
  EXPECT_TRUE(UnlockKeyTagEquals(tag, again));
  for (size_t bit = 0; bit < tag.size() * 8; ++bit) {
    UnlockKeyTag tampered = tag;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(UnlockKeyTagEquals(tag, tampered)) << bit;
  }
}

TEST(TagsTest, TamperedCommitmentsAreNotEqual) {
  ASSERT_OK_AND_ASSIGN(const UnlockKey derived, DeriveUnlockKey(SecretBytes::Random(64)));
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
  ASSERT_OK(commitment);
  ASSERT_OK_AND_ASSIGN(EncryptedSecretCommitment same,
                       ComputeEncryptedSecretCommitment(unlock_key, kRealmA, share, box));
  EXPECT_TRUE(EncryptedSecretCommitmentEquals(*commitment, same));
  ASSERT_OK_AND_ASSIGN(EncryptedSecretCommitment other_realm,
                       ComputeEncryptedSecretCommitment(unlock_key, kRealmB, share, box));
  EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, other_realm));
  ASSERT_OK_AND_ASSIGN(
      EncryptedSecretCommitment other_key,
      ComputeEncryptedSecretCommitment(SecretBytes::Random(32), kRealmA, share, box));
  EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, other_key));
  for (size_t bit = 0; bit < box.size() * 8; bit += 7) {
    EncryptedSecret tampered = box;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ASSERT_OK_AND_ASSIGN(EncryptedSecretCommitment changed,
                         ComputeEncryptedSecretCommitment(unlock_key, kRealmA, share, tampered));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, changed)) << "ciphertext bit " << bit;
  }
  for (size_t bit = 0; bit < 256; ++bit) {
    SecretBytes tampered = share.Clone();
    tampered.RevealMutable()[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ASSERT_OK_AND_ASSIGN(EncryptedSecretCommitment changed,
                         ComputeEncryptedSecretCommitment(unlock_key, kRealmA, tampered, box));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, changed)) << "share bit " << bit;
  }
  for (size_t bit = 0; bit < commitment->size() * 8; ++bit) {
    EncryptedSecretCommitment tampered = *commitment;
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(EncryptedSecretCommitmentEquals(*commitment, tampered)) << bit;
  }
  EXPECT_THAT(ComputeEncryptedSecretCommitment(unlock_key, kRealmA, SecretBytes(31), box),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(TagsTest, EncryptionKeyDependsOnSeedAndScalar) {
  const SecretBytes seed = SecretBytes::Random(32);
  const SecretBytes scalar = SecretBytes::Random(32);
  auto key = DeriveEncryptionKey(seed, scalar);
  ASSERT_OK(key);
  EXPECT_EQ(key->size(), kEncryptionKeySize);
  ASSERT_OK_AND_ASSIGN(auto same_key, DeriveEncryptionKey(seed, scalar));
  EXPECT_TRUE(key->Equals(same_key));
  ASSERT_OK_AND_ASSIGN(auto other_seed_key, DeriveEncryptionKey(SecretBytes::Random(32), scalar));
  EXPECT_FALSE(key->Equals(other_seed_key));
  ASSERT_OK_AND_ASSIGN(auto other_scalar_key, DeriveEncryptionKey(seed, SecretBytes::Random(32)));
  EXPECT_FALSE(key->Equals(other_scalar_key));
  EXPECT_THAT(DeriveEncryptionKey(SecretBytes(31), scalar), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(DeriveEncryptionKey(seed, SecretBytes(64)), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::protocol
