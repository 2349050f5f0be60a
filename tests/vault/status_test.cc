#include "vault/status.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

#include <memory>
#include <string>

namespace pinvault {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgumentError("not positive");
  return v;
}

Status UseMacros(int v, int* out) {
  ASSIGN_OR_RETURN(int parsed, ParsePositive(v));
  RETURN_IF_ERROR(parsed > 100 ? OutOfRangeError("too big") : OkStatus());
  *out = parsed;
  return OkStatus();
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = NotFoundError("no such key");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no such key");
  EXPECT_EQ(s.WithContext("lookup").message(), "lookup: no such key");
  EXPECT_EQ(StatusCodeName(StatusCode::kDataLoss), "DATA_LOSS");
}

TEST(StatusTest, StatusOrNeverOkWithoutValue) {
  StatusOr<int> from_ok = OkStatus();
  EXPECT_FALSE(from_ok.ok());
  EXPECT_EQ(from_ok.status().code(), StatusCode::kInternal);
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> v = std::make_unique<int>(7);
  ASSERT_TRUE(v.ok());
  std::unique_ptr<int> p = std::move(v).value();
  EXPECT_EQ(*p, 7);
}

TEST(StatusTest, MacrosPropagate) {
  int out = 0;
  EXPECT_TRUE(UseMacros(5, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(UseMacros(-1, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(UseMacros(101, &out).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(out, 5);
}

// value() on an error aborts with the status, in every build type (no assert that NDEBUG
// removes).
TEST(StatusDeathTest, ValueOnAnErrorAbortsWithTheMessage) {
  StatusOr<int> error = NotFoundError("no row for id 7");
  EXPECT_DEATH((void)error.value(), "value\\(\\) called on an error: NOT_FOUND: no row for id 7");
  EXPECT_DEATH((void)*error, "NOT_FOUND");
  StatusOr<std::string> text = UnavailableError("hsm gone");
  EXPECT_DEATH((void)text->size(), "UNAVAILABLE: hsm gone");
  EXPECT_DEATH((void)std::move(text).value(), "UNAVAILABLE: hsm gone");
}

TEST(StatusMatchersTest, MatchStatusAndStatusOr) {
  using ::pinvault::testing::IsOk;
  using ::pinvault::testing::IsOkAndHolds;
  using ::pinvault::testing::StatusIs;
  using ::testing::HasSubstr;
  using ::testing::Not;
  EXPECT_THAT(OkStatus(), IsOk());
  EXPECT_THAT(ParsePositive(3), IsOkAndHolds(3));
  EXPECT_THAT(ParsePositive(3), Not(IsOkAndHolds(4)));
  EXPECT_THAT(ParsePositive(0), Not(IsOk()));
  EXPECT_THAT(ParsePositive(0), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePositive(0), StatusIs(StatusCode::kInvalidArgument, HasSubstr("positive")));
  EXPECT_THAT(ParsePositive(0), Not(StatusIs(StatusCode::kInvalidArgument, HasSubstr("big"))));
  EXPECT_THAT(OutOfRangeError("x"), Not(StatusIs(StatusCode::kInvalidArgument)));
  ASSERT_OK_AND_ASSIGN(int value, ParsePositive(9));
  EXPECT_EQ(value, 9);
  EXPECT_OK(ParsePositive(1));
}

}  // namespace
}  // namespace pinvault
