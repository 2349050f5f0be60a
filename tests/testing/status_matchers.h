// status_matchers.h: GoogleTest matchers and macros for Status and StatusOr<T>, after
// Abseil's status_matchers.h.
//
//   EXPECT_THAT(store.Read(id), IsOk());
//   EXPECT_THAT(realm.Ready(), StatusIs(StatusCode::kUnavailable));
//   EXPECT_THAT(ParseUri(text), StatusIs(StatusCode::kInvalidArgument, HasSubstr("scheme")));
//   EXPECT_THAT(Parse("7"), IsOkAndHolds(7));
//   ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir));
//   ASSERT_OK(Commit(batch));
//
// A failure prints the whole status (code and message).
#ifndef PINVAULT_TESTS_TESTING_STATUS_MATCHERS_H_
#define PINVAULT_TESTS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <utility>

#include "vault/status.h"

namespace pinvault {

// Printing for GoogleTest's messages (found by argument-dependent lookup).
inline void PrintTo(StatusCode code, std::ostream* os) { *os << StatusCodeName(code); }
template <typename T>
void PrintTo(const StatusOr<T>& value, std::ostream* os) {
  if (value.ok()) {
    *os << "OK: " << ::testing::PrintToString(*value);
  } else {
    *os << value.status();
  }
}

namespace testing {
// IsOk matches an OK Status or a StatusOr that holds a value.
MATCHER(IsOk, "is OK") {
  const Status& status = ::pinvault::status_internal::GetStatus(arg);
  if (status.ok()) return true;
  *result_listener << "which is " << status;
  return false;
}

// StatusIs matches a Status or StatusOr whose code is `code` (and, in the two-argument form,
// whose message matches `message`, e.g. HasSubstr("...")).
MATCHER_P(StatusIs, code, "has status code " + std::string(StatusCodeName(code))) {
  const Status& status = ::pinvault::status_internal::GetStatus(arg);
  if (status.code() == code) return true;
  *result_listener << "which is " << status;
  return false;
}
MATCHER_P2(StatusIs, code, message,
           "has status code " + std::string(StatusCodeName(code)) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message)) {
  const Status& status = ::pinvault::status_internal::GetStatus(arg);
  if (status.code() != code) {
    *result_listener << "which is " << status;
    return false;
  }
  return ::testing::ExplainMatchResult(message, status.message(), result_listener);
}

// IsOkAndHolds matches a StatusOr<T> that holds a value matching `inner`.
MATCHER_P(IsOkAndHolds, inner,
          "is OK and holds a value that " +
              ::testing::DescribeMatcher<typename std::decay_t<arg_type>::value_type>(inner)) {
  if (!arg.ok()) {
    *result_listener << "which is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(inner, *arg, result_listener);
}

}  // namespace testing
}  // namespace pinvault

// ASSERT_OK(expr) / EXPECT_OK(expr): the Status or StatusOr `expr` is OK.
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::pinvault::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::pinvault::testing::IsOk())

// ASSERT_OK_AND_ASSIGN(lhs, expr): asserts that the StatusOr `expr` holds a value (printing
// the status otherwise) and moves it into `lhs`, which may be a declaration.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  PINVAULT_ASSERT_OK_AND_ASSIGN_IMPL_(  \
      PINVAULT_STATUS_CONCAT_(pinvault_assert_statusor_, __LINE__), lhs, expr)
#define PINVAULT_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                        \
  ASSERT_TRUE(tmp.ok()) << tmp.status();                    \
  lhs = std::move(tmp).value()

#endif  // PINVAULT_TESTS_TESTING_STATUS_MATCHERS_H_
