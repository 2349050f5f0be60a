#include "vault/secret_bytes.h"

#include <gtest/gtest.h>

#include <type_traits>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "vault/bytes.h"

namespace pinvault {
namespace {

using ::pinvault::testing::StatusIs;

static_assert(!std::is_copy_constructible_v<SecretBytes>);
static_assert(!std::is_copy_assignable_v<SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);
static_assert(!std::is_convertible_v<SecretBytes, std::string>);

TEST(SecretBytesTest, ZeroInitialisedAndSized) {
  SecretBytes s(40);
  ASSERT_EQ(s.size(), 40u);
  for (uint8_t b : s.Reveal()) EXPECT_EQ(b, 0);
}

TEST(SecretBytesTest, CopyCloneAndEquality) {
  std::vector<uint8_t> raw = {1, 2, 3, 4, 5};
  SecretBytes a = SecretBytes::CopyFrom(raw);
  SecretBytes b = a.Clone();
  EXPECT_TRUE(a.Equals(b));
  b.RevealMutable()[4] ^= 1;
  EXPECT_FALSE(a.Equals(b));
  EXPECT_FALSE(a.Equals(SecretBytes::CopyFrom(std::vector<uint8_t>{1, 2, 3, 4})));
  EXPECT_TRUE(a.Equals(raw));
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  SecretBytes a = SecretBytes::Random(32);
  SecretBytes copy = a.Clone();
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(b.Equals(copy));
  a = std::move(b);
  EXPECT_TRUE(a.Equals(copy));
}

TEST(SecretBytesTest, FreedSlotsAreWipedBeforeReuse) {
  // Slots are recycled within a size class; a recycled slot must come back zeroed.
  for (int i = 0; i < 1000; ++i) {
    SecretBytes s = SecretBytes::Random(64);
    s.Wipe();
    SecretBytes t(64);
    for (uint8_t b : t.Reveal()) ASSERT_EQ(b, 0);
  }
}

TEST(SecretBytesTest, LargeAllocationsWork) {
  SecretBytes big = SecretBytes::Random(10000);
  EXPECT_EQ(big.size(), 10000u);
  SecretBytes other = big.Clone();
  EXPECT_TRUE(big.Equals(other));
}

TEST(BytesTest, HexRoundTripAndErrors) {
  Bytes b = {0x00, 0xab, 0xff};
  EXPECT_EQ(HexEncode(b), "00abff");
  auto decoded = HexDecode("00ABff");
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, b);
  EXPECT_THAT(HexDecode("abc"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(HexDecode("zz"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ConstantTimeEqualsTest, Basics) {
  Bytes a = {1, 2, 3};
  Bytes b = {1, 2, 3};
  Bytes c = {1, 2, 4};
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  EXPECT_FALSE(ConstantTimeEquals(a, c));
  EXPECT_FALSE(ConstantTimeEquals(a, Bytes{1, 2}));
}

}  // namespace
}  // namespace pinvault
