// OPRF and DLEQ properties: blinding is transparent, proofs bind the key, every malformed
// or tampered input is rejected with the documented code.
#include "vault/protocol/oprf.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/shamir.h"

namespace pinvault::protocol {
namespace {

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
  key.public_key = *BasePointMult(key.private_key);
  return key;
}

TEST(OprfTest, BlindedEvaluationEqualsDirectEvaluation) {
  const Bytes input = ToBytes("an access key of thirty-two bytes");
  for (int i = 0; i < 8; ++i) {
    RealmKey key = MakeKey();
    auto blinded = Blind(input);
    ASSERT_TRUE(blinded.ok());
    auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded->blinded_input);
    ASSERT_TRUE(eval.ok()) << eval.status();
    EXPECT_TRUE(VerifyProof(key.public_key, blinded->blinded_input, eval->blinded_result,
                            eval->proof)
                    .ok());
    auto output = Finalize(input, blinded->blinding_factor, eval->blinded_result);
    ASSERT_TRUE(output.ok());
    auto direct = EvaluateUnoblivious(key.private_key, input);
    ASSERT_TRUE(direct.ok());
    EXPECT_EQ(output->size(), kOprfOutputSize);
    EXPECT_TRUE(output->Equals(*direct));
    // Unblind gives k·H(x) itself.
    auto y = Unblind(blinded->blinding_factor, eval->blinded_result);
    ASSERT_TRUE(y.ok());
    EXPECT_EQ(*y, *PointMult(key.private_key, HashToGroup(input)));
  }
}

TEST(OprfTest, BlindingHidesTheInput) {
  const Bytes input = ToBytes("same input");
  auto a = Blind(input);
  auto b = Blind(input);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->blinded_input, b->blinded_input);
  EXPECT_NE(a->blinded_input, HashToGroup(input));
  EXPECT_TRUE(ValidatePoint(a->blinded_input).ok());
}

TEST(OprfTest, OutputDependsOnKeyAndInput) {
  RealmKey k1 = MakeKey();
  RealmKey k2 = MakeKey();
  const Bytes x1 = ToBytes("pin hash one");
  const Bytes x2 = ToBytes("pin hash two");
  EXPECT_FALSE(EvaluateUnoblivious(k1.private_key, x1)->Equals(*EvaluateUnoblivious(k2.private_key, x1)));
  EXPECT_FALSE(EvaluateUnoblivious(k1.private_key, x1)->Equals(*EvaluateUnoblivious(k1.private_key, x2)));
}

TEST(OprfTest, ThresholdEvaluationEqualsRootKeyEvaluation) {
  // Shares of the root key evaluated by 3 realms; any 2 blinded results, combined, unblind
  // to the root key's output.
  SecretBytes root = RandomScalar();
  auto shares = ShareSecret(root, 2, 3);
  ASSERT_TRUE(shares.ok());
  const Bytes input = ToBytes("threshold input");
  auto blinded = Blind(input);
  ASSERT_TRUE(blinded.ok());
  std::vector<PointBytes> results;
  for (const SecretBytes& share : *shares) {
    auto public_key = BasePointMult(share);
    auto eval = EvaluateWithProof(share, *public_key, blinded->blinded_input);
    ASSERT_TRUE(eval.ok());
    ASSERT_TRUE(VerifyProof(*public_key, blinded->blinded_input, eval->blinded_result, eval->proof).ok());
    results.push_back(eval->blinded_result);
  }
  const std::vector<ShareIndex> pair = {1, 3};
  const std::vector<PointBytes> pair_results = {results[0], results[2]};
  auto combined = RecombinePoints(pair, pair_results);
  ASSERT_TRUE(combined.ok());
  auto output = Finalize(input, blinded->blinding_factor, *combined);
  ASSERT_TRUE(output.ok());
  EXPECT_TRUE(output->Equals(*EvaluateUnoblivious(root, input)));
}

TEST(OprfTest, ProofMadeWithAnotherKeyFails) {
  RealmKey honest = MakeKey();
  RealmKey other = MakeKey();
  auto blinded = Blind(ToBytes("x"));
  ASSERT_TRUE(blinded.ok());
  // A realm evaluating with the wrong key but claiming the honest public key.
  auto forged = EvaluateWithProof(other.private_key, honest.public_key, blinded->blinded_input);
  ASSERT_TRUE(forged.ok());
  EXPECT_EQ(VerifyProof(honest.public_key, blinded->blinded_input, forged->blinded_result,
                        forged->proof)
                .code(),
            StatusCode::kDataLoss);
  // An honest proof checked against another public key.
  auto eval = EvaluateWithProof(honest.private_key, honest.public_key, blinded->blinded_input);
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(VerifyProof(other.public_key, blinded->blinded_input, eval->blinded_result, eval->proof)
                .code(),
            StatusCode::kDataLoss);
  // Result swapped for the other key's result.
  auto other_eval = EvaluateWithProof(other.private_key, other.public_key, blinded->blinded_input);
  EXPECT_EQ(VerifyProof(honest.public_key, blinded->blinded_input, other_eval->blinded_result,
                        eval->proof)
                .code(),
            StatusCode::kDataLoss);
  // Proof replayed for a different blinded input.
  auto blinded2 = Blind(ToBytes("x"));
  EXPECT_EQ(VerifyProof(honest.public_key, blinded2->blinded_input, eval->blinded_result,
                        eval->proof)
                .code(),
            StatusCode::kDataLoss);
}

TEST(OprfTest, EveryBitFlipOfTheProofFails) {
  RealmKey key = MakeKey();
  auto blinded = Blind(ToBytes("flip"));
  auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded->blinded_input);
  ASSERT_TRUE(eval.ok());
  ASSERT_TRUE(VerifyProof(key.public_key, blinded->blinded_input, eval->blinded_result, eval->proof).ok());
  for (int field = 0; field < 2; ++field) {
    for (size_t bit = 0; bit < 256; ++bit) {
      DleqProof tampered = eval->proof;
      ScalarBytes& s = field == 0 ? tampered.c : tampered.beta_z;
      s[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      EXPECT_EQ(VerifyProof(key.public_key, blinded->blinded_input, eval->blinded_result, tampered)
                    .code(),
                StatusCode::kDataLoss)
          << "field " << field << " bit " << bit;
    }
  }
  for (size_t bit = 0; bit < 256; ++bit) {
    PointBytes w = eval->blinded_result;
    w[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(VerifyProof(key.public_key, blinded->blinded_input, w, eval->proof).code(),
              StatusCode::kDataLoss)
        << "W bit " << bit;
  }
}

TEST(OprfTest, VerifyRejectsNonCanonicalAndIdentityInputs) {
  RealmKey key = MakeKey();
  auto blinded = Blind(ToBytes("v"));
  auto eval = EvaluateWithProof(key.private_key, key.public_key, blinded->blinded_input);
  ASSERT_TRUE(eval.ok());
  const PointBytes u = blinded->blinded_input;
  const PointBytes w = eval->blinded_result;
  // c + l and beta_z + l are the same residues but not canonical encodings.
  DleqProof non_canonical = eval->proof;
  non_canonical.c = HexArray<32>(kL);
  EXPECT_EQ(VerifyProof(key.public_key, u, w, non_canonical).code(), StatusCode::kDataLoss);
  non_canonical = eval->proof;
  non_canonical.beta_z[31] |= 0xf0;
  EXPECT_EQ(VerifyProof(key.public_key, u, w, non_canonical).code(), StatusCode::kDataLoss);
  const PointBytes identity{};
  EXPECT_EQ(VerifyProof(identity, u, w, eval->proof).code(), StatusCode::kDataLoss);
  EXPECT_EQ(VerifyProof(key.public_key, identity, w, eval->proof).code(), StatusCode::kDataLoss);
  EXPECT_EQ(VerifyProof(key.public_key, u, identity, eval->proof).code(), StatusCode::kDataLoss);
  PointBytes bad{};
  bad.fill(0xff);
  EXPECT_EQ(VerifyProof(key.public_key, u, bad, eval->proof).code(), StatusCode::kDataLoss);
  // A zero proof for identity points cannot pass either.
  EXPECT_EQ(VerifyProof(identity, identity, identity, DleqProof{}).code(), StatusCode::kDataLoss);
}

TEST(OprfTest, EvaluateRejectsBadInputs) {
  RealmKey key = MakeKey();
  const PointBytes identity{};
  EXPECT_EQ(EvaluateWithProof(key.private_key, key.public_key, identity).status().code(),
            StatusCode::kInvalidArgument);
  PointBytes bad{};
  bad.fill(0xff);
  EXPECT_EQ(EvaluateWithProof(key.private_key, key.public_key, bad).status().code(),
            StatusCode::kInvalidArgument);
  PointBytes negative = HashToGroup(ToBytes("n"));
  negative[0] |= 1;  // odd s: a negative field element, never a valid encoding
  EXPECT_EQ(EvaluateWithProof(key.private_key, key.public_key, negative).status().code(),
            StatusCode::kInvalidArgument);
  const PointBytes u = HashToGroup(ToBytes("u"));
  EXPECT_EQ(EvaluateWithProof(HexSecret(kL), key.public_key, u).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateWithProof(SecretBytes(31), key.public_key, u).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateWithProof(SecretBytes(32), key.public_key, u).status().code(),
            StatusCode::kInvalidArgument);  // zero key: k·U is the identity
  EXPECT_EQ(EvaluateWithProofAndNonce(key.private_key, key.public_key, u, HexSecret(kL)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(OprfTest, ProofsAreRandomizedButBothVerify) {
  RealmKey key = MakeKey();
  const PointBytes u = HashToGroup(ToBytes("r"));
  auto a = EvaluateWithProof(key.private_key, key.public_key, u);
  auto b = EvaluateWithProof(key.private_key, key.public_key, u);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->blinded_result, b->blinded_result);
  EXPECT_NE(a->proof, b->proof);
  EXPECT_TRUE(VerifyProof(key.public_key, u, a->blinded_result, a->proof).ok());
  EXPECT_TRUE(VerifyProof(key.public_key, u, b->blinded_result, b->proof).ok());
}

TEST(OprfTest, ClientSideRejectsBadInputs) {
  const Bytes input = ToBytes("c");
  EXPECT_EQ(BlindWithFactor(input, SecretBytes(32)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(BlindWithFactor(input, HexSecret(kL)).status().code(), StatusCode::kInvalidArgument);
  SecretBytes r = RandomScalar();
  EXPECT_EQ(Unblind(SecretBytes(32), HashToGroup(input)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Unblind(r, PointBytes{}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Finalize(input, r, PointBytes{}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateUnoblivious(SecretBytes(32), input).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EvaluateUnoblivious(HexSecret(kL), input).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(OprfTest, HashToGroupIsDeterministicAndUntagged) {
  // H(x) = from_hash(SHA-512(x)): equal inputs, equal points; the empty input works.
  EXPECT_EQ(HashToGroup(ToBytes("abc")), HashToGroup(ToBytes("abc")));
  EXPECT_NE(HashToGroup(ToBytes("abc")), HashToGroup(ToBytes("abd")));
  EXPECT_TRUE(ValidatePoint(HashToGroup({})).ok());
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
