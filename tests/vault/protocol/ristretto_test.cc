#include "vault/protocol/ristretto.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::StatusIs;
using testing::Hex;
using testing::HexArray;
using testing::HexOf;
using testing::HexSecret;

// l and neighbours, little-endian.
constexpr std::string_view kL = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
constexpr std::string_view kLMinus1 =
    "ecd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
constexpr std::string_view kLPlus1 =
    "eed3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
constexpr std::string_view kAllOnes =
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
constexpr std::string_view kOne =
    "0100000000000000000000000000000000000000000000000000000000000000";
constexpr std::string_view kTwo =
    "0200000000000000000000000000000000000000000000000000000000000000";
constexpr std::string_view kThree =
    "0300000000000000000000000000000000000000000000000000000000000000";
constexpr std::string_view kZero =
    "0000000000000000000000000000000000000000000000000000000000000000";

// RFC 9496 appendix A.1: encodings of B, 2B, 3B.
constexpr std::string_view kB = "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76";
constexpr std::string_view k2B = "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919";
constexpr std::string_view k3B = "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259";

TEST(RistrettoTest, CanonicalScalars) {
  EXPECT_TRUE(IsCanonicalScalar(Hex(kZero)));
  EXPECT_TRUE(IsCanonicalScalar(Hex(kOne)));
  EXPECT_TRUE(IsCanonicalScalar(Hex(kLMinus1)));
  EXPECT_FALSE(IsCanonicalScalar(Hex(kL)));
  EXPECT_FALSE(IsCanonicalScalar(Hex(kLPlus1)));
  EXPECT_FALSE(IsCanonicalScalar(Hex(kAllOnes)));
  Bytes high_bit = Hex(kOne);
  high_bit[31] = 0x80;
  EXPECT_FALSE(IsCanonicalScalar(high_bit));
  // Wrong sizes.
  EXPECT_FALSE(IsCanonicalScalar(Bytes(31, 0)));
  EXPECT_FALSE(IsCanonicalScalar(Bytes(33, 0)));
  EXPECT_FALSE(IsCanonicalScalar(Bytes()));
}

TEST(RistrettoTest, ValidateScalarReportsInvalidArgument) {
  EXPECT_OK(ValidateScalar(Hex(kLMinus1), "x"));
  EXPECT_THAT(ValidateScalar(Hex(kL), "x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateScalar(Bytes(16, 0), "x"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RistrettoTest, ValidPointsAccepted) {
  EXPECT_OK(ValidatePoint(HexArray<32>(kB)));
  EXPECT_OK(ValidatePoint(HexArray<32>(k2B)));
  EXPECT_OK(ValidatePoint(HexArray<32>(k3B)));
}

TEST(RistrettoTest, IdentityRejected) {
  const PointBytes identity{};
  EXPECT_TRUE(IsIdentityPoint(identity));
  EXPECT_FALSE(IsIdentityPoint(HexArray<32>(kB)));
  EXPECT_THAT(ValidatePoint(identity), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RistrettoTest, BadEncodingsRejected) {
  // RFC 9496 appendix A.2: non-canonical field encodings, negative field elements,
  // non-square x^2, negative xy, s = -1 (t not integral), s = 1.
  for (std::string_view bad : {
           "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
           "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
           "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
           "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
           "0100000000000000000000000000000000000000000000000000000000000000",
           "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
           "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
           "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
           "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
           "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
           "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
           "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
           "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
           "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
           "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
           "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
           "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
           "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
           "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
           "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
           "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
           "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
           "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
           "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
           "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
       }) {
    EXPECT_THAT(ValidatePoint(HexArray<32>(bad)), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(RistrettoTest, RandomScalarsAreCanonicalAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    SecretBytes s = RandomScalar();
    ASSERT_EQ(s.size(), kScalarSize);
    EXPECT_TRUE(IsCanonicalScalar(s.Reveal()));
    seen.insert(HexOf(s));
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(RistrettoTest, WideReduction) {
  // 2^256 mod l (computed independently with arbitrary-precision integers).
  Bytes wide(64, 0);
  wide[32] = 1;  // 2^256
  auto reduced = ReduceWide(wide);
  ASSERT_OK(reduced);
  EXPECT_EQ(HexEncode(*reduced),
            "1d95988d7431ecd670cf7d73f45befc6feffffffffffffffffffffffffffff0f");
  // l itself, widened, reduces to zero; l - 1 to itself.
  Bytes l_wide = Hex(kL);
  l_wide.resize(64, 0);
  ASSERT_OK_AND_ASSIGN(auto l_reduced, ReduceWide(l_wide));
  EXPECT_EQ(HexEncode(l_reduced), kZero);
  Bytes lm1_wide = Hex(kLMinus1);
  lm1_wide.resize(64, 0);
  ASSERT_OK_AND_ASSIGN(auto lm1_reduced, ReduceWide(lm1_wide));
  EXPECT_EQ(HexEncode(lm1_reduced), kLMinus1);
  auto secret = ScalarFromWideBytes(lm1_wide);
  ASSERT_OK(secret);
  EXPECT_EQ(HexOf(*secret), kLMinus1);
  EXPECT_THAT(ReduceWide(Bytes(32, 0)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ScalarFromWideBytes(Bytes(63, 0)), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RistrettoTest, BasePointMultMatchesRfcMultiples) {
  ASSERT_OK_AND_ASSIGN(PointBytes one_b, BasePointMult(HexSecret(kOne)));
  EXPECT_EQ(HexEncode(one_b), kB);
  ASSERT_OK_AND_ASSIGN(PointBytes two_b, BasePointMult(HexSecret(kTwo)));
  EXPECT_EQ(HexEncode(two_b), k2B);
  ASSERT_OK_AND_ASSIGN(PointBytes three_b, BasePointMult(HexSecret(kThree)));
  EXPECT_EQ(HexEncode(three_b), k3B);
  EXPECT_THAT(BasePointMult(HexSecret(kZero)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BasePointMult(HexSecret(kL)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BasePointMult(HexSecret("01")), StatusIs(StatusCode::kInvalidArgument));
}

TEST(RistrettoTest, PointMultAndAddAgree) {
  const PointBytes b = HexArray<32>(kB);
  ASSERT_OK_AND_ASSIGN(PointBytes three_b, PointMult(HexSecret(kThree), b));
  EXPECT_EQ(HexEncode(three_b), k3B);
  ASSERT_OK_AND_ASSIGN(PointBytes two_b, PublicPointMult(HexArray<32>(kTwo), b));
  EXPECT_EQ(HexEncode(two_b), k2B);
  ASSERT_OK_AND_ASSIGN(PointBytes sum, PointAdd(b, HexArray<32>(k2B)));
  EXPECT_EQ(HexEncode(sum), k3B);
  ASSERT_OK_AND_ASSIGN(PointBytes difference, PointSub(HexArray<32>(k3B), b));
  EXPECT_EQ(HexEncode(difference), k2B);
  ASSERT_OK_AND_ASSIGN(PointBytes zero, PointSub(b, b));
  EXPECT_TRUE(IsIdentityPoint(zero));
  // (l - 1)·B = -B, and -B + B is the identity.
  auto minus_b = PointMult(HexSecret(kLMinus1), b);
  ASSERT_OK(minus_b);
  ASSERT_OK_AND_ASSIGN(PointBytes identity, PointAdd(*minus_b, b));
  EXPECT_TRUE(IsIdentityPoint(identity));
}

TEST(RistrettoTest, PointMultRejectsBadInputs) {
  const PointBytes b = HexArray<32>(kB);
  EXPECT_THAT(PointMult(HexSecret(kZero), b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PointMult(HexSecret(kL), b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PointMult(HexSecret(kOne), PointBytes{}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PointMult(HexSecret(kOne), HexArray<32>(kAllOnes)),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PublicPointMult(HexArray<32>(kLPlus1), b), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PointAdd(b, HexArray<32>(kAllOnes)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PointSub(HexArray<32>(kAllOnes), b), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::protocol
