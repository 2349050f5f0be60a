// HttpServer: the realm's HTTP/1.1 front end (Boost.Beast, asynchronous), plain or TLS.
//
// The server only moves bytes: it reads a request (header, then a body no larger than the
// handler's BodyLimit for the path, else 413), hands it to an HttpHandler, and writes the
// response back on the connection's own strand (the handler may answer from any thread).
// Connections are kept alive when the client asks for it.
//
// Limits: a request's header and body must arrive within `request_timeout` of the first
// read (a client that stalls is disconnected); a kept-alive connection waiting for its
// next request is closed after `idle_timeout`; at most `max_connections` are open at once
// (more are closed on accept). Plain HTTP is refused on a non-loopback address unless
// `allow_insecure_plain_http` is set.
//
// Shutdown stops accepting, closes connections that are not in the middle of a request,
// lets in-flight requests finish (up to a deadline) and stops the threads.
//
// No Boost types appear in this header. Thread-safe.
#ifndef PINVAULT_API_SERVER_SERVER_H_
#define PINVAULT_API_SERVER_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "api/server/metrics.h"
#include "api/server/request_log.h"
#include "api/server/routes.h"
#include "vault/status.h"

namespace pinvault::api {

// TlsFiles: PEM files for TLS.
struct TlsFiles {
  std::filesystem::path certificate_chain;  // server certificate (and intermediates)
  std::filesystem::path private_key;
};

struct ServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 8080;               // 0 picks a free port (see HttpServer::port)
  int threads = 2;
  std::optional<TlsFiles> tls;  // absent: plain HTTP
  bool allow_insecure_plain_http = false;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};
  size_t max_connections = 1024;
  size_t max_header_bytes = 8192;
};

class HttpServer {
 public:
  // Create binds and listens on the address (no thread runs yet). INVALID_ARGUMENT for a
  // bad address or option, FAILED_PRECONDITION for plain HTTP on a non-loopback address
  // without allow_insecure_plain_http, UNAVAILABLE if the port cannot be bound, NOT_FOUND /
  // INVALID_ARGUMENT if the TLS files cannot be loaded. `handler` is required; `metrics`
  // and `logger` may be null (the logger gets a line for each request the server itself
  // rejects: 413, 431, malformed HTTP; the handler logs the rest).
  static StatusOr<std::unique_ptr<HttpServer>> Create(
      ServerOptions options, std::shared_ptr<HttpHandler> handler, std::shared_ptr<Metrics> metrics,
      std::shared_ptr<RequestLogger> logger = nullptr);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // ~HttpServer shuts down with no drain time if Shutdown was not called.
  ~HttpServer();

  // Start runs the accept loop on `threads` threads. Call once.
  void Start();

  // port is the bound port (useful with port 0).
  uint16_t port() const;

  // in_flight is the number of requests read but not yet answered.
  size_t in_flight() const;

  // WaitForInFlight blocks until in_flight() == `n` and returns true, or returns false once
  // `limit` has passed without that (a count that is `n` only between two checks may be
  // missed). For tests and drains that must not sleep.
  bool WaitForInFlight(size_t n, std::chrono::milliseconds limit);

  // bytes_parsed is the number of request bytes (headers and bodies) that the connections'
  // HTTP parsers have consumed so far, over all connections.
  uint64_t bytes_parsed() const;

  // WaitForBytesParsed blocks until bytes_parsed() >= `n` and returns true, or returns false
  // once `limit` has passed. A test that sends a request in pieces waits for each piece, so
  // the server reads every piece on its own.
  bool WaitForBytesParsed(uint64_t n, std::chrono::milliseconds limit);

  // Shutdown drains: stops accepting, closes idle connections, waits up to `drain` for
  // in-flight requests to be answered, then stops. Returns true if everything drained in
  // time. Idempotent.
  bool Shutdown(std::chrono::milliseconds drain);

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_SERVER_H_
