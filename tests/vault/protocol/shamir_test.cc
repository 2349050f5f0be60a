#include "vault/protocol/shamir.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"
#include "vault/protocol/ristretto.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using testing::HexArray;
using testing::HexOf;
using testing::HexSecret;

constexpr std::string_view kL = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
constexpr std::string_view kLMinus1 =
    "ecd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

// Every subset of {1..n} as a list of 1-based indices.
std::vector<std::vector<ShareIndex>> Subsets(size_t n) {
  std::vector<std::vector<ShareIndex>> out;
  for (uint32_t mask = 1; mask < (1u << n); ++mask) {
    std::vector<ShareIndex> s;
    for (uint32_t i = 0; i < n; ++i) {
      if (mask & (1u << i)) s.push_back(i + 1);
    }
    out.push_back(s);
  }
  return out;
}

std::vector<SecretBytes> Pick(const std::vector<SecretBytes>& shares,
                              const std::vector<ShareIndex>& indices) {
  std::vector<SecretBytes> out;
  for (ShareIndex i : indices) out.push_back(shares[i - 1].Clone());
  return out;
}

TEST(ShamirTest, AnyThresholdSubsetRecombinesAndSmallerOnesDoNot) {
  for (size_t n = 1; n <= 5; ++n) {
    for (size_t t = 1; t <= n; ++t) {
      SCOPED_TRACE(::testing::Message() << t << " of " << n);
      SecretBytes secret = RandomScalar();
      auto shares = ShareSecret(secret, t, n);
      ASSERT_OK(shares);
      ASSERT_EQ(shares->size(), n);
      ASSERT_OK_AND_ASSIGN(const PointBytes public_key, BasePointMult(secret));
      for (const auto& subset : Subsets(n)) {
        auto picked = Pick(*shares, subset);
        auto combined = RecombineScalars(subset, picked);
        ASSERT_OK(combined);
        std::vector<PointBytes> points;
        for (const SecretBytes& s : picked) {
          ASSERT_OK_AND_ASSIGN(PointBytes point, BasePointMult(s));
          points.push_back(point);
        }
        auto combined_point = RecombinePoints(subset, points);
        if (subset.size() >= t) {
          EXPECT_TRUE(combined->Equals(secret)) << "subset size " << subset.size();
          ASSERT_OK(combined_point);
          EXPECT_EQ(*combined_point, public_key);
        } else {
          EXPECT_FALSE(combined->Equals(secret)) << "subset size " << subset.size();
          if (combined_point.ok()) {
            EXPECT_NE(*combined_point, public_key);
          }
        }
      }
    }
  }
}

TEST(ShamirTest, ThresholdOneGivesCopies) {
  SecretBytes secret = RandomScalar();
  auto shares = ShareSecret(secret, 1, 3);
  ASSERT_OK(shares);
  for (const SecretBytes& s : *shares) EXPECT_TRUE(s.Equals(secret));
}

TEST(ShamirTest, SharesAreThePolynomialAtOneToN) {
  // f(X) = 5 + 2X + 3X^2: f(1) = 10, f(2) = 21, f(3) = 38.
  std::vector<SecretBytes> coefficients;
  coefficients.push_back(
      HexSecret("0200000000000000000000000000000000000000000000000000000000000000"));
  coefficients.push_back(
      HexSecret("0300000000000000000000000000000000000000000000000000000000000000"));
  auto shares = ShareSecretWithCoefficients(
      HexSecret("0500000000000000000000000000000000000000000000000000000000000000"), coefficients,
      3);
  ASSERT_OK(shares);
  EXPECT_EQ(HexOf((*shares)[0]),
            "0a00000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(HexOf((*shares)[1]),
            "1500000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(HexOf((*shares)[2]),
            "2600000000000000000000000000000000000000000000000000000000000000");
}

TEST(ShamirTest, LagrangeCoefficientsForOneAndTwo) {
  // Over {1, 2}: λ1 = 2/(2-1) = 2, λ2 = 1/(1-2) = -1 = l - 1.
  const std::vector<ShareIndex> indices = {1, 2};
  auto lambdas = LagrangeCoefficientsAtZero(indices);
  ASSERT_OK(lambdas);
  EXPECT_EQ(HexEncode((*lambdas)[0]),
            "0200000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(HexEncode((*lambdas)[1]), kLMinus1);
  // A single index has coefficient 1.
  const std::vector<ShareIndex> one = {7};
  ASSERT_OK_AND_ASSIGN(auto one_lambdas, LagrangeCoefficientsAtZero(one));
  EXPECT_EQ(HexEncode(one_lambdas[0]),
            "0100000000000000000000000000000000000000000000000000000000000000");
}

TEST(ShamirTest, RejectsDuplicateZeroAndMismatchedIndices) {
  const std::vector<ShareIndex> dup = {1, 2, 1};
  EXPECT_THAT(LagrangeCoefficientsAtZero(dup), StatusIs(StatusCode::kInvalidArgument));
  const std::vector<ShareIndex> zero = {0, 1};
  EXPECT_THAT(LagrangeCoefficientsAtZero(zero), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(LagrangeCoefficientsAtZero({}), StatusIs(StatusCode::kInvalidArgument));

  SecretBytes secret = RandomScalar();
  auto shares = ShareSecret(secret, 2, 3);
  ASSERT_OK(shares);
  const std::vector<ShareIndex> dup2 = {2, 2};
  auto picked = Pick(*shares, dup2);
  EXPECT_THAT(RecombineScalars(dup2, picked), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(PointBytes share_point, BasePointMult((*shares)[1]));
  const std::vector<PointBytes> points = {share_point, share_point};
  EXPECT_THAT(RecombinePoints(dup2, points), StatusIs(StatusCode::kInvalidArgument));
  const std::vector<ShareIndex> three = {1, 2, 3};
  EXPECT_THAT(RecombineScalars(three, picked), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(RecombinePoints(three, points), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ShamirTest, RejectsNonCanonicalSharesAndBadPoints) {
  const std::vector<ShareIndex> indices = {1, 2};
  std::vector<SecretBytes> shares;
  shares.push_back(RandomScalar());
  shares.push_back(HexSecret(kL));
  EXPECT_THAT(RecombineScalars(indices, shares), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(PointBytes share_point, BasePointMult(shares[0]));
  std::vector<PointBytes> points = {share_point, PointBytes{}};
  EXPECT_THAT(RecombinePoints(indices, points), StatusIs(StatusCode::kInvalidArgument));
  points[1].fill(0xff);
  EXPECT_THAT(RecombinePoints(indices, points), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ShamirTest, ShareSecretRejectsBadArguments) {
  SecretBytes secret = RandomScalar();
  EXPECT_THAT(ShareSecret(secret, 0, 3), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ShareSecret(secret, 4, 3), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ShareSecret(HexSecret(kL), 2, 3), StatusIs(StatusCode::kInvalidArgument));
  std::vector<SecretBytes> bad_coefficient;
  bad_coefficient.push_back(HexSecret(kL));
  EXPECT_THAT(ShareSecretWithCoefficients(secret, bad_coefficient, 3),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(ShamirTest, ShareIndicesFollowSortedRealmIds) {
  // Case 3 of the SDK transcripts: configured c0ffee…03, 1a…01, 7f…02 -> 3, 1, 2.
  const std::vector<RealmId> configured = {
      HexArray<16>("c0ffee00000000000000000000000003"),
      HexArray<16>("1a000000000000000000000000000001"),
      HexArray<16>("7f000000000000000000000000000002"),
  };
  auto indices = ShareIndices(configured);
  ASSERT_OK(indices);
  EXPECT_EQ(*indices, (std::vector<ShareIndex>{3, 1, 2}));
  // Bytes compare unsigned: 0x80 sorts after 0x7f.
  const std::vector<RealmId> unsigned_order = {
      HexArray<16>("80000000000000000000000000000000"),
      HexArray<16>("7fffffffffffffffffffffffffffffff"),
  };
  EXPECT_THAT(ShareIndices(unsigned_order), IsOkAndHolds(std::vector<ShareIndex>{2, 1}));
  const std::vector<RealmId> dup = {configured[0], configured[1], configured[0]};
  EXPECT_THAT(ShareIndices(dup), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ShareIndices({}), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::protocol
