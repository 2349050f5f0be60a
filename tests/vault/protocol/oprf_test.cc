// OPRF and DLEQ properties: blinding is transparent, proofs bind the key, every malformed
// or tampered input is rejected with the documented code.
#include "vault/protocol/oprf.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/shamir.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexArray;
using testing::HexOf;
using testing::HexSecret;

constexpr std::string_view kL = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

struct RealmKey {
  SecretBytes private_key;
  PointBytes public_key{};
};

RealmKey MakeKey() {
  RealmKey key{RandomScalar(), {}};
  StatusOr<PointBytes> public_key = BasePointMult(key.private_key);
  EXPECT_OK(public_key);
  if (!public_key.ok()) return key;
  key.public_key = *public_key;
  return key;
}

TEST(OprfTest, BlindedEvaluationEqualsDirectEvaluation) {
  const Bytes input = ToBytes("an access key of thirty-two bytes");
  for (int i = 0; i < 8; ++i) {
    RealmKey key = MakeKey();
    auto blinded = Blind(input);
    ASSERT_OK(blinded);
    auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded->blinded_input);
    ASSERT_OK(eval);
    EXPECT_OK(
        VerifyProof(key.public_key, blinded->blinded_input, eval->blinded_result, eval->proof));
    auto output = Finalize(input, blinded->blinding_factor, eval->blinded_result);
    ASSERT_OK(output);
    auto direct = EvaluateUnoblivious(key.private_key, input);
    ASSERT_OK(direct);
    EXPECT_EQ(output->size(), kOprfOutputSize);
    EXPECT_TRUE(output->Equals(*direct));
    // Unblind gives k·H(x) itself.
    auto y = Unblind(blinded->blinding_factor, eval->blinded_result);
    ASSERT_OK(y);
    EXPECT_THAT(PointMult(key.private_key, HashToGroup(input)), IsOkAndHolds(*y));
  }
}

TEST(OprfTest, BlindingHidesTheInput) {
  const Bytes input = ToBytes("same input");
  auto a = Blind(input);
  auto b = Blind(input);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(a->blinded_input, b->blinded_input);
  EXPECT_NE(a->blinded_input, HashToGroup(input));
  EXPECT_OK(ValidatePoint(a->blinded_input));
}

TEST(OprfTest, OutputDependsOnKeyAndInput) {
  RealmKey k1 = MakeKey();
  RealmKey k2 = MakeKey();
  const Bytes x1 = ToBytes("pin hash one");
  const Bytes x2 = ToBytes("pin hash two");
  ASSERT_OK_AND_ASSIGN(SecretBytes k1_x1, EvaluateUnoblivious(k1.private_key, x1));
  ASSERT_OK_AND_ASSIGN(SecretBytes k2_x1, EvaluateUnoblivious(k2.private_key, x1));
  ASSERT_OK_AND_ASSIGN(SecretBytes k1_x2, EvaluateUnoblivious(k1.private_key, x2));
  EXPECT_FALSE(k1_x1.Equals(k2_x1));
  EXPECT_FALSE(k1_x1.Equals(k1_x2));
}

TEST(OprfTest, ThresholdEvaluationEqualsRootKeyEvaluation) {
  // Shares of the root key evaluated by 3 realms; any 2 blinded results, combined, unblind
  // to the root key's output.
  SecretBytes root = RandomScalar();
  auto shares = ShareSecret(root, 2, 3);
  ASSERT_OK(shares);
  const Bytes input = ToBytes("threshold input");
  auto blinded = Blind(input);
  ASSERT_OK(blinded);
  std::vector<PointBytes> results;
  for (const SecretBytes& share : *shares) {
    ASSERT_OK_AND_ASSIGN(PointBytes public_key, BasePointMult(share));
    auto eval = EvaluateWithProof(share, public_key, blinded->blinded_input);
    ASSERT_OK(eval);
    ASSERT_OK(VerifyProof(public_key, blinded->blinded_input, eval->blinded_result, eval->proof));
    results.push_back(eval->blinded_result);
  }
  const std::vector<ShareIndex> pair = {1, 3};
  const std::vector<PointBytes> pair_results = {results[0], results[2]};
  auto combined = RecombinePoints(pair, pair_results);
  ASSERT_OK(combined);
  auto output = Finalize(input, blinded->blinding_factor, *combined);
  ASSERT_OK(output);
  ASSERT_OK_AND_ASSIGN(SecretBytes direct, EvaluateUnoblivious(root, input));
  EXPECT_TRUE(output->Equals(direct));
}

TEST(OprfTest, ProofMadeWithAnotherKeyFails) {
  RealmKey honest = MakeKey();
  RealmKey other = MakeKey();
  auto blinded = Blind(ToBytes("x"));
  ASSERT_OK(blinded);
  // A realm evaluating with the wrong key but claiming the honest public key.
  auto forged = EvaluateWithProof(other.private_key, honest.public_key, blinded->blinded_input);
  ASSERT_OK(forged);
  EXPECT_THAT(
      VerifyProof(honest.public_key, blinded->blinded_input, forged->blinded_result, forged->proof),
      StatusIs(StatusCode::kDataLoss));
  // An honest proof checked against another public key.
  auto eval = EvaluateWithProof(honest.private_key, honest.public_key, blinded->blinded_input);
  ASSERT_OK(eval);
  EXPECT_THAT(
      VerifyProof(other.public_key, blinded->blinded_input, eval->blinded_result, eval->proof),
      StatusIs(StatusCode::kDataLoss));
  // Result swapped for the other key's result.
  ASSERT_OK_AND_ASSIGN(
      OprfEvaluation other_eval,
      EvaluateWithProof(other.private_key, other.public_key, blinded->blinded_input));
  EXPECT_THAT(VerifyProof(honest.public_key, blinded->blinded_input, other_eval.blinded_result,
                          eval->proof),
              StatusIs(StatusCode::kDataLoss));
  // Proof replayed for a different blinded input.
  ASSERT_OK_AND_ASSIGN(BlindedInput blinded2, Blind(ToBytes("x")));
  EXPECT_THAT(
      VerifyProof(honest.public_key, blinded2.blinded_input, eval->blinded_result, eval->proof),
      StatusIs(StatusCode::kDataLoss));
}

TEST(OprfTest, EveryBitFlipOfTheProofFails) {
  RealmKey key = MakeKey();
  ASSERT_OK_AND_ASSIGN(BlindedInput blinded, Blind(ToBytes("flip")));
  auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded.blinded_input);
  ASSERT_OK(eval);
  ASSERT_OK(VerifyProof(key.public_key, blinded.blinded_input, eval->blinded_result, eval->proof));
  for (int field = 0; field < 2; ++field) {
    for (size_t bit = 0; bit < 256; ++bit) {
      DleqProof tampered = eval->proof;
      ScalarBytes& s = field == 0 ? tampered.c : tampered.beta_z;
      s[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      EXPECT_THAT(
          VerifyProof(key.public_key, blinded.blinded_input, eval->blinded_result, tampered),
          StatusIs(StatusCode::kDataLoss))
          << "field " << field << " bit " << bit;
    }
  }
  for (size_t bit = 0; bit < 256; ++bit) {
    PointBytes w = eval->blinded_result;
    w[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_THAT(VerifyProof(key.public_key, blinded.blinded_input, w, eval->proof),
                StatusIs(StatusCode::kDataLoss))
        << "W bit " << bit;
  }
}

TEST(OprfTest, VerifyRejectsNonCanonicalAndIdentityInputs) {
  RealmKey key = MakeKey();
  ASSERT_OK_AND_ASSIGN(BlindedInput blinded, Blind(ToBytes("v")));
  auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded.blinded_input);
  ASSERT_OK(eval);
  const PointBytes u = blinded.blinded_input;
  const PointBytes w = eval->blinded_result;
  // c + l and beta_z + l are the same residues but not canonical encodings.
  DleqProof non_canonical = eval->proof;
  non_canonical.c = HexArray<32>(kL);
  EXPECT_THAT(VerifyProof(key.public_key, u, w, non_canonical), StatusIs(StatusCode::kDataLoss));
  non_canonical = eval->proof;
  non_canonical.beta_z[31] |= 0xf0;
  EXPECT_THAT(VerifyProof(key.public_key, u, w, non_canonical), StatusIs(StatusCode::kDataLoss));
  const PointBytes identity{};
  EXPECT_THAT(VerifyProof(identity, u, w, eval->proof), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(VerifyProof(key.public_key, identity, w, eval->proof),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(VerifyProof(key.public_key, u, identity, eval->proof),
              StatusIs(StatusCode::kDataLoss));
  PointBytes bad{};
  bad.fill(0xff);
  EXPECT_THAT(VerifyProof(key.public_key, u, bad, eval->proof), StatusIs(StatusCode::kDataLoss));
  // A zero proof for identity points cannot pass either.
  EXPECT_THAT(VerifyProof(identity, identity, identity, DleqProof{}),
              StatusIs(StatusCode::kDataLoss));
}

TEST(OprfTest, EvaluateRejectsBadInputs) {
  RealmKey key = MakeKey();
  const PointBytes identity{};
  EXPECT_THAT(EvaluateWithProof(key.private_key, key.public_key, identity),
              StatusIs(StatusCode::kInvalidArgument));
  PointBytes bad{};
  bad.fill(0xff);
  EXPECT_THAT(EvaluateWithProof(key.private_key, key.public_key, bad),
              StatusIs(StatusCode::kInvalidArgument));
  PointBytes negative = HashToGroup(ToBytes("n"));
  negative[0] |= 1;  // odd s: a negative field element, never a valid encoding
  EXPECT_THAT(EvaluateWithProof(key.private_key, key.public_key, negative),
              StatusIs(StatusCode::kInvalidArgument));
  const PointBytes u = HashToGroup(ToBytes("u"));
  EXPECT_THAT(EvaluateWithProof(HexSecret(kL), key.public_key, u),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(EvaluateWithProof(SecretBytes(31), key.public_key, u),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(EvaluateWithProof(SecretBytes(32), key.public_key, u),
              StatusIs(StatusCode::kInvalidArgument));  // zero key: k·U is the identity
  EXPECT_THAT(EvaluateWithProofAndNonce(key.private_key, key.public_key, u, HexSecret(kL)),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(OprfTest, ProofsAreRandomizedButBothVerify) {
  RealmKey key = MakeKey();
  const PointBytes u = HashToGroup(ToBytes("r"));
  auto a = EvaluateWithProof(key.private_key, key.public_key, u);
  auto b = EvaluateWithProof(key.private_key, key.public_key, u);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->blinded_result, b->blinded_result);
  EXPECT_NE(a->proof, b->proof);
  EXPECT_OK(VerifyProof(key.public_key, u, a->blinded_result, a->proof));
  EXPECT_OK(VerifyProof(key.public_key, u, b->blinded_result, b->proof));
}

TEST(OprfTest, ClientSideRejectsBadInputs) {
  const Bytes input = ToBytes("c");
  EXPECT_THAT(BlindWithFactor(input, SecretBytes(32)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BlindWithFactor(input, HexSecret(kL)), StatusIs(StatusCode::kInvalidArgument));
  SecretBytes r = RandomScalar();
  EXPECT_THAT(Unblind(SecretBytes(32), HashToGroup(input)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Unblind(r, PointBytes{}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Finalize(input, r, PointBytes{}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(EvaluateUnoblivious(SecretBytes(32), input), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(EvaluateUnoblivious(HexSecret(kL), input), StatusIs(StatusCode::kInvalidArgument));
}

TEST(OprfTest, HashToGroupIsDeterministicAndUntagged) {
  // H(x) = from_hash(SHA-512(x)): equal inputs, equal points; the empty input works.
  EXPECT_EQ(HashToGroup(ToBytes("abc")), HashToGroup(ToBytes("abc")));
  EXPECT_NE(HashToGroup(ToBytes("abc")), HashToGroup(ToBytes("abd")));
  EXPECT_OK(ValidatePoint(HashToGroup({})));
}

TEST(OprfTest, DleqChallengeIsReducedAndOrderSensitive) {
  const PointBytes a = HashToGroup(ToBytes("a"));
  const PointBytes b = HashToGroup(ToBytes("b"));
  const ScalarBytes c1 = DleqChallenge(a, b, a, b, a);
  const ScalarBytes c2 = DleqChallenge(b, a, a, b, a);
  EXPECT_TRUE(IsCanonicalScalar(c1));
  EXPECT_NE(c1, c2);
}

}  // namespace
}  // namespace pinvault::protocol
