// RequestLogger: one JSON line per request on a stream (stderr in pinvaultd).
//
// A line holds the time, endpoint, operation, outcome, HTTP status, latency, the tenant
// (from a verified token only) and a hashed record id, plus a short error reason for
// failures. It never holds a PIN-derived value, a token, a key share or a user id: the
// record is identified by the first 8 bytes of SHA-256(salt || len(tenant) || tenant ||
// user), with a salt drawn at random per process, so lines of one process can be
// correlated but not linked to a user or across restarts.
//
// Thread-safe: lines are written whole under a mutex.
#ifndef PINVAULT_API_SERVER_REQUEST_LOG_H_
#define PINVAULT_API_SERVER_REQUEST_LOG_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace pinvault::api {

// RequestLogEntry: what is known about one request when its response is sent.
struct RequestLogEntry {
  std::string_view endpoint;   // "/req", "/v1/secrets", "/readyz", ...
  std::string_view operation;  // "Register1" ... "Delete", "unknown" or empty
  std::string_view outcome;    // as in Metrics::RecordRequest
  int http_status = 0;
  std::chrono::nanoseconds latency{0};
  std::optional<std::string_view> tenant;  // only from a verified token
  std::optional<std::string_view> user;    // hashed, never written
  std::string_view error;                  // short reason for failures; no secrets
};

class RequestLogger {
 public:
  // RequestLogger writes to `out` (which must outlive it); `enabled` false drops every line.
  explicit RequestLogger(std::ostream* out, bool enabled = true);

  // Log writes one line for `entry`.
  void Log(const RequestLogEntry& entry);

  // HashRecord returns the 16-hex-character record hash for (tenant, user).
  std::string HashRecord(std::string_view tenant, std::string_view user) const;

  // FormatLine returns the line Log would write (without the newline); for tests.
  std::string FormatLine(const RequestLogEntry& entry) const;

 private:
  std::ostream* out_;
  bool enabled_;
  std::array<uint8_t, 16> salt_{};
  std::mutex mu_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_REQUEST_LOG_H_
