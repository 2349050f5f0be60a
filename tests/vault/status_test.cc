#include "vault/status.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pinvault
