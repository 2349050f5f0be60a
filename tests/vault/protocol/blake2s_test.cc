#include "vault/protocol/blake2s.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"
#include "tests/vault/protocol/test_util.h"

namespace pinvault::protocol {
namespace {

using ::pinvault::testing::StatusIs;

Bytes Sequence(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}

TEST(Blake2sTest, ReferenceKeyedVectors) {
  // blake2s-kat.txt from the BLAKE2 reference repository: key = 00..1f, in = 00..(n-1).
  const Bytes key = Sequence(32);
  struct Case {
    size_t length;
    std::string_view hash;
  };
  for (const Case& c : {
           Case{0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"},
           Case{1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1"},
           Case{2, "6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803"},
           Case{64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4"},
       }) {
    Bytes out(32);
    ASSERT_OK(KeyedBlake2s(key, Sequence(c.length), out));
    EXPECT_EQ(HexEncode(out), c.hash) << "length " << c.length;
  }
}

TEST(Blake2sTest, SixteenByteOutputIsItsOwnParameterSetNotATruncation) {
  // The digest length is in BLAKE2s's parameter block, so the 16-byte MAC is not a prefix
  // of the 32-byte one. Value from Python's hashlib.blake2s(00 01 02, key=00..1f,
  // digest_size=16), an independent implementation.
  Bytes out16(16);
  ASSERT_OK(KeyedBlake2s(Sequence(32), Sequence(3), out16));
  EXPECT_EQ(HexEncode(out16), "1e2a79436a7796a3e9826bfedf07659f");
  Bytes out32(32);
  ASSERT_OK(KeyedBlake2s(Sequence(32), Sequence(3), out32));
  EXPECT_NE(Bytes(out32.begin(), out32.begin() + 16), out16);
}

TEST(Blake2sTest, FieldsEncodingIsLengthPrefixedConcatenation) {
  const Bytes key(32, 0x42);
  const Bytes a = ToBytes("Unlock Key Tag");
  const Bytes b(16, 0x07);
  Bytes streamed(16);
  ASSERT_OK(KeyedBlake2sFields(key, {a, b}, streamed));
  Bytes message = {0, 0, 0, 14};
  message.insert(message.end(), a.begin(), a.end());
  message.insert(message.end(), {0, 0, 0, 16});
  message.insert(message.end(), b.begin(), b.end());
  ASSERT_EQ(message.size(), 38u);
  Bytes direct(16);
  ASSERT_OK(KeyedBlake2s(key, message, direct));
  EXPECT_EQ(streamed, direct);
  // Moving a byte across the field boundary changes the MAC (the prefixes bind lengths).
  const Bytes a2 = ToBytes("Unlock Key Ta");
  Bytes b2 = {'g'};
  b2.insert(b2.end(), b.begin(), b.end());
  Bytes shifted(16);
  ASSERT_OK(KeyedBlake2sFields(key, {a2, b2}, shifted));
  EXPECT_NE(shifted, streamed);
}

TEST(Blake2sTest, RejectsBadSizes) {
  Bytes out(32);
  EXPECT_THAT(KeyedBlake2s({}, {}, out), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(KeyedBlake2s(Bytes(33), {}, out), StatusIs(StatusCode::kInvalidArgument));
  Bytes too_long(33);
  EXPECT_THAT(KeyedBlake2s(Bytes(32), {}, too_long), StatusIs(StatusCode::kInvalidArgument));
  Bytes empty;
  EXPECT_THAT(KeyedBlake2s(Bytes(32), {}, empty), StatusIs(StatusCode::kInvalidArgument));
}

TEST(Blake2sTest, KeyMatters) {
  Bytes a(16), b(16);
  ASSERT_OK(KeyedBlake2s(Bytes(32, 1), ToBytes("m"), a));
  ASSERT_OK(KeyedBlake2s(Bytes(32, 2), ToBytes("m"), b));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace pinvault::protocol
