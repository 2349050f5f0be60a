// HttpTransport: backup::Transport over HTTP/1.1 for Juicebox software realms
// (PROTOCOL-NOTES g.1).
//
// Each request is `POST <address joined with "req">` with the headers
// `Authorization: Bearer <token>` and `X-Juicebox-Version: 0.3.7` and the CBOR
// SecretsRequest as body. The answer is mapped as transport.h documents: a body that
// decodes as a SecretsResponse is the answer whatever the status; otherwise 401 ->
// kInvalidAuth, 426 -> kUpgradeRequired, 429 -> kRateLimited, a 2xx -> kMalformedResponse,
// anything else (other statuses, network errors, timeouts) -> kTransient.
//
// https addresses use TLS 1.2+ with the peer's certificate verified against the system
// trust store (or a given CA file) and the address's host name; http addresses are plain.
// Connections are kept alive and reused per (scheme, host, port). All I/O runs on one
// internal thread; Send only queues work.
#ifndef PINVAULT_API_CLIENT_HTTP_TRANSPORT_H_
#define PINVAULT_API_CLIENT_HTTP_TRANSPORT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "backup/client/transport.h"
#include "vault/status.h"

namespace pinvault::api {

// kJuiceboxClientVersion is the protocol version this client speaks, sent as
// X-Juicebox-Version (the SDK release whose wire format we follow).
inline constexpr std::string_view kJuiceboxClientVersion = "0.3.7";

// HttpUrl is an absolute http(s) URL split into what a request needs.
struct HttpUrl {
  bool tls = false;    // https
  std::string host;    // lowercase; an IPv6 literal without its brackets
  uint16_t port = 0;   // explicit, or 80 / 443
  std::string target;  // path and query, e.g. "/base/req"

  // ToString returns the URL in canonical form ("https://h/base/req", default port left
  // out, IPv6 hosts bracketed).
  std::string ToString() const;

  friend bool operator==(const HttpUrl&, const HttpUrl&) = default;
};

// ParseHttpUrl parses an absolute http or https URL (scheme case-insensitive; an empty
// path becomes "/"; a fragment is dropped). INVALID_ARGUMENT for another scheme, user
// info, an empty host, a bad port, spaces or control characters.
StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

// ResolveRelativePath resolves the relative-path reference `reference` (no scheme, no
// leading '/', no query) against `base` as RFC 3986 section 5.2 does (the Juicebox SDK's
// `Url::join`): everything after the base path's last '/' is replaced, the base query is
// dropped, and "." / ".." segments are removed. E.g. with "req":
//   http://h:p/  -> http://h:p/req     https://h/base/ -> https://h/base/req
//   https://h/base -> https://h/req
// INVALID_ARGUMENT if `base` does not parse or `reference` is not a relative path.
StatusOr<HttpUrl> ResolveRelativePath(std::string_view base, std::string_view reference);

// HttpTransportOptions tunes an HttpTransport.
struct HttpTransportOptions {
  // request_timeout bounds one request from start (DNS, connect, TLS) to the last byte of
  // the answer; when it passes the request fails with kTransient.
  std::chrono::milliseconds request_timeout{10000};
  // ca_file, if non-empty, is a PEM file of trusted CA certificates used instead of the
  // system trust store for https.
  std::string ca_file;
  // max_idle_per_host caps the kept-alive connections per (scheme, host, port); 0
  // disables reuse (every request gets a new connection).
  size_t max_idle_per_host = 4;
  // idle_timeout: a kept-alive connection unused for longer is closed, not reused.
  std::chrono::milliseconds idle_timeout{20000};
  // user_agent is sent as User-Agent.
  std::string user_agent = "pinvault-client/0.1";
  // max_response_body bounds an answer's body; a larger one counts as undecodable.
  size_t max_response_body = 64 * 1024;
};

// HttpTransport: see the file comment. Thread-safe. Destroying it fails the requests
// still in flight with kTransient ("transport shut down") and closes every connection;
// it may be destroyed from inside a `done` callback.
class HttpTransport final : public backup::Transport {
 public:
  // Create starts the I/O thread. INVALID_ARGUMENT for a zero timeout or a CA file that
  // cannot be loaded; INTERNAL if TLS cannot be set up.
  static StatusOr<std::unique_ptr<HttpTransport>> Create(HttpTransportOptions options = {});

  ~HttpTransport() override;
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Send: see backup::Transport. The request body is wiped from memory once written.
  // A realm address that is not an http(s) URL fails the request with kTransient (the
  // configuration has already validated it).
  void Send(const backup::RealmEndpoint& realm, const std::string& auth_token,
            protocol::SecretsRequest request, TransportCallback done) override;

  // Statistics, for tests and diagnostics.
  struct Stats {
    uint64_t connections_opened = 0;  // TCP connections established
    uint64_t connections_reused = 0;  // requests sent on a kept-alive connection
  };

  // stats returns the counters so far. Thread-safe.
  Stats stats() const;

  struct Impl;

 private:
  explicit HttpTransport(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_CLIENT_HTTP_TRANSPORT_H_
