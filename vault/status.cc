#include "vault/status.h"

#include <cstdio>
#include <cstdlib>

namespace pinvault {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN_CODE";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

namespace status_internal {

void DieOnBadAccess(const Status& status) {
  std::fprintf(stderr, "StatusOr::value() called on an error: %s\n", status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace status_internal

std::ostream& operator<<(std::ostream& os, const Status& status) {
  return os << status.ToString();
}

#define PINVAULT_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }

PINVAULT_DEFINE_ERROR_(CancelledError, kCancelled)
PINVAULT_DEFINE_ERROR_(UnknownError, kUnknown)
PINVAULT_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
PINVAULT_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
PINVAULT_DEFINE_ERROR_(NotFoundError, kNotFound)
PINVAULT_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
PINVAULT_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
PINVAULT_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
PINVAULT_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
PINVAULT_DEFINE_ERROR_(AbortedError, kAborted)
PINVAULT_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)
PINVAULT_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
PINVAULT_DEFINE_ERROR_(InternalError, kInternal)
PINVAULT_DEFINE_ERROR_(UnavailableError, kUnavailable)
PINVAULT_DEFINE_ERROR_(DataLossError, kDataLoss)
PINVAULT_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)

#undef PINVAULT_DEFINE_ERROR_

}  // namespace pinvault
