// The outcomes of Client::Register, Recover and Delete, as values.
//
// A failed operation yields a ClientError: a kind (the Juicebox SDK's RegisterError /
// RecoverError / DeleteError cases), the guesses left for InvalidPin, and a message for
// people (it names realms and what they answered; never a PIN, secret, key or token).
//
// When several realms fail, the operation reports the error that comes first in
// ErrorKind's order (the SDK's declaration order), and among InvalidPin errors the one
// with the fewest guesses remaining.
#ifndef PINVAULT_BACKUP_CLIENT_RESULT_H_
#define PINVAULT_BACKUP_CLIENT_RESULT_H_

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "vault/secret_bytes.h"

namespace pinvault::backup {

// ErrorKind: why an operation failed, in the SDK's precedence order (first wins).
enum class ErrorKind : uint8_t {
  // The PIN is wrong (or no guesses are left); ClientError::guesses_remaining says how
  // many guesses the realms still allow. Recover only.
  kInvalidPin,
  // No secret is registered (or not on enough realms to agree on one). Recover only.
  kNotRegistered,
  // A realm rejected the auth token (HTTP 401), or no token could be had for a realm.
  kInvalidAuth,
  // A realm requires a newer client (HTTP 426).
  kUpgradeRequired,
  // A realm is rate limiting this tenant (HTTP 429). Try later.
  kRateLimited,
  // A realm misbehaved (bad signature or proof, inconsistent versions or commitments, an
  // unexpected or undecodable answer), or the client failed internally. Do not retry
  // with the same parameters.
  kAssertion,
  // A realm could not be reached or answered with another error, even after the retry.
  // Retrying later may succeed.
  kTransient,
  // The caller's arguments were rejected before anything was sent (e.g. a secret longer
  // than 128 bytes, num_guesses 0). Not an SDK case; never competes with the others.
  kInvalidArgument,
};

// ErrorKindName returns the SDK's name for `kind` ("InvalidPin", "NotRegistered",
// "InvalidAuth", "UpgradeRequired", "RateLimitExceeded", "Assertion", "Transient"), or
// "InvalidArgument".
std::string_view ErrorKindName(ErrorKind kind);

// ClientError is one failure of an operation. Copyable value.
struct ClientError {
  ErrorKind kind = ErrorKind::kAssertion;
  uint16_t guesses_remaining = 0;  // meaningful for kInvalidPin only
  std::string message;

  // ToString returns e.g. "InvalidPin (guesses remaining: 3): <message>".
  std::string ToString() const;
};

// ErrorPrecedes reports whether `a` is reported in preference to `b` when both occur:
// the smaller kind, and for two InvalidPin errors the one with fewer guesses remaining.
bool ErrorPrecedes(const ClientError& a, const ClientError& b);

// Success is the value of a Register or Delete that succeeded.
struct Success {};

// ClientResult<T> holds either the operation's value or a ClientError. Move-only when T
// is (RecoverResult holds the recovered secret in SecretBytes).
template <typename T>
class [[nodiscard]] ClientResult {
 public:
  ClientResult(T value) : value_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  ClientResult(ClientError error)                                              // NOLINT
      : value_(std::in_place_index<1>, std::move(error)) {}

  // ok reports whether the operation succeeded.
  bool ok() const { return value_.index() == 0; }

  // value returns the result; requires ok().
  const T& value() const& {
    assert(ok());
    return std::get<0>(value_);
  }
  T& value() & {
    assert(ok());
    return std::get<0>(value_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(value_));
  }

  // error returns the failure; requires !ok().
  const ClientError& error() const {
    assert(!ok());
    return std::get<1>(value_);
  }

  // kind returns error().kind; requires !ok().
  ErrorKind kind() const { return error().kind; }

 private:
  std::variant<T, ClientError> value_;
};

// RegisterResult: Success, or InvalidAuth / UpgradeRequired / RateLimited / Assertion /
// Transient / InvalidArgument.
using RegisterResult = ClientResult<Success>;

// RecoverResult: the recovered secret, or any ErrorKind.
using RecoverResult = ClientResult<SecretBytes>;

// DeleteResult: Success, or InvalidAuth / UpgradeRequired / RateLimited / Assertion /
// Transient.
using DeleteResult = ClientResult<Success>;

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_CLIENT_RESULT_H_
