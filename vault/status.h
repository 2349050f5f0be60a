// Status and StatusOr<T>: pinvault's error values.
//
// The code names follow absl::StatusCode so that anyone who knows Abseil reads them
// without a table. Project code never throws; anything that can fail returns a Status or
// a StatusOr<T>. Messages must never contain secrets (PINs, keys, record plaintext).
#ifndef PINVAULT_VAULT_STATUS_H_
#define PINVAULT_VAULT_STATUS_H_

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace pinvault {

// StatusCode: the canonical error space (same numbering as absl::StatusCode).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// StatusCodeName returns the Abseil spelling of `code`, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

// Status is either OK or a code plus a human-readable message. Cheap to copy when OK.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(code == StatusCode::kOk ? std::string() : std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // ToString returns "OK" or "<CODE>: <message>".
  std::string ToString() const;

  // WithContext returns a copy whose message is prefixed with `context` ("context: msg").
  Status WithContext(std::string_view context) const;

  // IgnoreError marks a status as deliberately dropped.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

inline Status OkStatus() { return Status(); }
Status CancelledError(std::string message);
Status UnknownError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);

namespace status_internal {
// DieOnBadAccess prints `status` to stderr and aborts: value() was called on an error.
[[noreturn]] void DieOnBadAccess(const Status& status);
}  // namespace status_internal

// StatusOr<T> holds a T or a non-OK Status; it is never OK without a value.
// Constructing it from an OK Status yields an INTERNAL error instead.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  using value_type = T;

  StatusOr(const Status& status) : status_(status) { CheckNotOk(); }    // NOLINT
  StatusOr(Status&& status) : status_(std::move(status)) { CheckNotOk(); }  // NOLINT
  StatusOr(const T& value) : value_(value) {}                            // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}                      // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, StatusOr<T>>)
  StatusOr(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // value() requires ok(): on an error it aborts the process with the status message, in
  // every build type (never undefined behaviour). So do operator* and operator->.
  T& value() & {
    CheckHasValue();
    return *value_;
  }
  const T& value() const& {
    CheckHasValue();
    return *value_;
  }
  T&& value() && {
    CheckHasValue();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void CheckHasValue() const {
    if (!value_.has_value()) status_internal::DieOnBadAccess(status_);
  }
  void CheckNotOk() {
    if (status_.ok()) status_ = Status(StatusCode::kInternal, "StatusOr built from OK status");
  }

  Status status_;
  std::optional<T> value_;
};

namespace status_internal {
inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
const Status& GetStatus(const StatusOr<T>& s) {
  return s.status();
}
}  // namespace status_internal

}  // namespace pinvault

#define PINVAULT_STATUS_CONCAT_INNER_(a, b) a##b
#define PINVAULT_STATUS_CONCAT_(a, b) PINVAULT_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): returns the Status of `expr` (a Status or StatusOr) if not OK.
#define RETURN_IF_ERROR(expr)                                                 \
  do {                                                                        \
    const auto& pinvault_status_ = (expr);                                    \
    if (!pinvault_status_.ok())                                               \
      return ::pinvault::status_internal::GetStatus(pinvault_status_);        \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr; on error returns its status, otherwise
// moves the value into `lhs` (which may be a declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  PINVAULT_ASSIGN_OR_RETURN_IMPL_(PINVAULT_STATUS_CONCAT_(pinvault_statusor_, __LINE__), lhs, expr)
#define PINVAULT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#endif  // PINVAULT_VAULT_STATUS_H_
