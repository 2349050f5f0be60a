// Routes of the realm server, as a handler from a parsed HTTP request to a response. No
// Boost types appear here: the server (server.h) moves bytes, the Router decides.
//
//   POST    /req         Juicebox SDK endpoint: CBOR SecretsRequest -> CBOR SecretsResponse
//   OPTIONS /req         CORS preflight
//   POST    /v1/secrets  native API: protobuf (binary or JSON) SecretsRequest/Response
//   OPTIONS /v1/secrets  CORS preflight
//   GET     /livez       200 while the process serves HTTP
//   GET     /readyz      200 when RealmService::Ready() is OK, else 503 with the reason
//   GET     /metrics     Prometheus text
//
// Protocol requests are checked in this order, and the first failure answers with a
// plain-text body (never a valid CBOR SecretsResponse, which the SDK would take as an
// answer):
//   /req: X-Juicebox-Version missing, not semver, or below the minimum -> 426;
//   /v1/secrets: Content-Type not protobuf or JSON -> 415;
//   body over the endpoint's limit -> 413;
//   Authorization not a valid bearer token for this realm -> 401;
//   rate limit of the tenant or user exhausted -> 429 (with Retry-After);
//   body does not decode -> 400;
//   then the realm: INVALID_ARGUMENT -> 400, UNAVAILABLE / FAILED_PRECONDITION /
//   RESOURCE_EXHAUSTED -> 503, DATA_LOSS and anything else -> 500 (generic body, detail in
//   the log). No failure before the realm call reaches the realm, so none changes a record.
// Every /req and /v1/secrets response carries `Access-Control-Allow-Origin: *`.
#ifndef PINVAULT_API_SERVER_ROUTES_H_
#define PINVAULT_API_SERVER_ROUTES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/auth/authenticator.h"
#include "api/server/metrics.h"
#include "api/server/rate_limiter.h"
#include "api/server/request_log.h"
#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/realm_service.h"
#include "vault/status.h"

namespace pinvault::api {

// HttpRequest: a fully read request. Header names are lowercase; repeated headers are
// joined with ", ".
struct HttpRequest {
  std::string method;  // as sent, e.g. "POST"
  std::string target;  // path and query as sent
  std::map<std::string, std::string> headers;
  Bytes body;

  // Header returns the value of `lowercase_name`, or an empty view.
  std::string_view Header(std::string_view lowercase_name) const;
  // Path is the target without its query string.
  std::string_view Path() const;
};

// HttpResponse: what to send back. `sensitive_body` asks the server to wipe the body once
// written (it carries a key share); `close` asks it to close the connection afterwards.
struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  Bytes body;
  bool sensitive_body = false;
  bool close = false;
};

// HttpResponder delivers the response for one request; call it exactly once, from any
// thread.
using HttpResponder = std::function<void(HttpResponse)>;

// HttpHandler: what the server calls. Implementations must be thread-safe.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // BodyLimit is the largest body accepted for a request to `path`; the server answers 413
  // without reading a body beyond it.
  virtual size_t BodyLimit(std::string_view path) const = 0;

  // Handle answers `request` through `respond`, now or later, on any thread. Must not
  // throw.
  virtual void Handle(HttpRequest request, HttpResponder respond) = 0;
};

// CallerAuthenticator: how the router turns the Authorization header into a caller for
// this realm. UNAUTHENTICATED with a reason (no token material) on any failure.
// Thread-safe.
class CallerAuthenticator {
 public:
  virtual ~CallerAuthenticator() = default;
  virtual StatusOr<AuthenticatedCaller> Authenticate(std::string_view authorization,
                                                     ByteView realm_id) const = 0;
};

// JwtCallerAuthenticator checks Juicebox JWTs with an Authenticator (api/auth/jwt.h rules).
class JwtCallerAuthenticator : public CallerAuthenticator {
 public:
  explicit JwtCallerAuthenticator(std::shared_ptr<const Authenticator> authenticator)
      : authenticator_(std::move(authenticator)) {}
  StatusOr<AuthenticatedCaller> Authenticate(std::string_view authorization,
                                             ByteView realm_id) const override {
    return authenticator_->Authenticate(authorization, realm_id);
  }

 private:
  std::shared_ptr<const Authenticator> authenticator_;
};

// JuiceboxVersion: major.minor of an X-Juicebox-Version value.
struct JuiceboxVersion {
  uint64_t major = 0;
  uint64_t minor = 0;
};

// ParseJuiceboxVersion parses "MAJOR.MINOR[.PATCH][-pre][+build]" (an optional leading
// "v" allowed), or nullopt.
std::optional<JuiceboxVersion> ParseJuiceboxVersion(std::string_view text);

// RouterOptions: the realm's identity and the request gates.
struct RouterOptions {
  protocol::RealmId realm_id{};
  // Minimum X-Juicebox-Version accepted on /req (major.minor; patch ignored, as the SDK's
  // realms do). The SDK 0.3.x line needs 0.3.
  JuiceboxVersion min_juicebox_version{0, 3};
  // Body limit of /v1/secrets (the /req limit is the SDK's 2048 bytes).
  size_t native_body_limit = 8192;
};

// RouterDeps: the collaborators. `realm`, `authenticator`, `metrics` and `logger` are
// required; `rate_limiter` may be null (no limits).
struct RouterDeps {
  std::shared_ptr<vault::RealmService> realm;
  std::shared_ptr<const CallerAuthenticator> authenticator;
  std::shared_ptr<RateLimiter> rate_limiter;
  std::shared_ptr<Metrics> metrics;
  std::shared_ptr<RequestLogger> logger;
};

// Router implements the routes above. Thread-safe; callbacks it hands to the realm hold
// their own references, so they may run after the Router is gone.
class Router : public HttpHandler {
 public:
  // Create checks the dependencies (INVALID_ARGUMENT if a required one is null).
  static StatusOr<std::unique_ptr<Router>> Create(RouterOptions options, RouterDeps deps);

  size_t BodyLimit(std::string_view path) const override;
  void Handle(HttpRequest request, HttpResponder respond) override;

 private:
  Router(RouterOptions options, RouterDeps deps) : options_(options), deps_(std::move(deps)) {}

  void HandleUnsafe(HttpRequest& request, HttpResponder& respond);
  void HandleProtocol(HttpRequest& request, HttpResponder respond, bool juicebox);

  RouterOptions options_;
  RouterDeps deps_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_ROUTES_H_
