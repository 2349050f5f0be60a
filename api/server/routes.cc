#include "api/server/routes.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <string>
#include <utility>
#include <variant>

#include "api/codec/cbor_codec.h"
#include "api/codec/proto_codec.h"
#include "vault/secret_bytes.h"

namespace pinvault::api {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::SecretsRequest;
using protocol::SecretsResponse;

constexpr std::string_view kJuiceboxPath = "/req";
constexpr std::string_view kNativePath = "/v1/secrets";
// Other routes take no body; a small limit still lets a stray body be read and answered.
constexpr size_t kOtherBodyLimit = 1024;

Bytes TextBody(std::string_view text) {
  Bytes out(text.begin(), text.end());
  out.push_back('\n');
  return out;
}

HttpResponse TextResponse(int status, std::string_view text) {
  HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = TextBody(text);
  return r;
}

void AddCors(HttpResponse& r) { r.headers.emplace_back("Access-Control-Allow-Origin", "*"); }

// OnceResponder wraps a responder so that only the first call goes through (a realm that
// answered twice, or an exception after answering, cannot send a second response).
HttpResponder Once(HttpResponder respond) {
  auto called = std::make_shared<std::atomic<bool>>(false);
  auto inner = std::make_shared<HttpResponder>(std::move(respond));
  return [called, inner](HttpResponse response) {
    if (called->exchange(true)) return;
    (*inner)(std::move(response));
  };
}

// Outcome of a protocol answer, for metrics and logs.
std::string_view OutcomeOf(const SecretsResponse& response) {
  if (const auto* r = std::get_if<protocol::Recover1Response>(&response)) {
    switch (r->status) {
      case protocol::Recover1Response::Status::kOk:
        return "ok";
      case protocol::Recover1Response::Status::kNotRegistered:
        return "not_registered";
      case protocol::Recover1Response::Status::kNoGuesses:
        return "no_guesses";
    }
  }
  if (const auto* r = std::get_if<protocol::Recover2Response>(&response)) {
    switch (r->status) {
      case protocol::Recover2Response::Status::kOk:
        return "ok";
      case protocol::Recover2Response::Status::kVersionMismatch:
        return "version_mismatch";
      case protocol::Recover2Response::Status::kNotRegistered:
        return "not_registered";
      case protocol::Recover2Response::Status::kNoGuesses:
        return "no_guesses";
    }
  }
  if (const auto* r = std::get_if<protocol::Recover3Response>(&response)) {
    switch (r->status) {
      case protocol::Recover3Response::Status::kOk:
        return "ok";
      case protocol::Recover3Response::Status::kVersionMismatch:
        return "version_mismatch";
      case protocol::Recover3Response::Status::kNotRegistered:
        return "not_registered";
      case protocol::Recover3Response::Status::kNoGuesses:
        return "no_guesses";
      case protocol::Recover3Response::Status::kBadUnlockKeyTag:
        return "bad_unlock_key_tag";
    }
  }
  return "ok";
}

bool CarriesSecret(const SecretsResponse& response) {
  const auto* r = std::get_if<protocol::Recover3Response>(&response);
  return r != nullptr && r->status == protocol::Recover3Response::Status::kOk;
}

// The realm's error, as HTTP.
struct ErrorMapping {
  int status;
  std::string_view outcome;
  bool expose_message;  // 5xx internals stay in the log
};

ErrorMapping MapRealmError(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return {400, "bad_request", true};
    case StatusCode::kUnavailable:
      return {503, "unavailable", true};
    case StatusCode::kFailedPrecondition:
      return {503, "not_serving", true};
    case StatusCode::kResourceExhausted:
      return {503, "overloaded", true};
    case StatusCode::kDataLoss:
      return {500, "data_loss", false};
    default:
      return {500, "internal", false};
  }
}

// RequestScope carries what a protocol request needs from start to response, including
// across the realm's callback (so it holds its own references).
struct RequestScope {
  std::string_view endpoint;
  Clock::time_point start;
  std::shared_ptr<Metrics> metrics;
  std::shared_ptr<RequestLogger> logger;
  HttpResponder respond;
  std::string operation = "unknown";
  std::optional<std::string> tenant;
  std::optional<std::string> user;

  void Finish(HttpResponse response, std::string_view outcome, std::string_view error) {
    AddCors(response);
    auto latency = Clock::now() - start;
    metrics->RecordRequest(endpoint, operation, outcome, latency);
    metrics->RecordHttpStatus(response.status);
    RequestLogEntry entry;
    entry.endpoint = endpoint;
    entry.operation = operation;
    entry.outcome = outcome;
    entry.http_status = response.status;
    entry.latency = latency;
    if (tenant) entry.tenant = *tenant;
    if (user) entry.user = *user;
    entry.error = error;
    logger->Log(entry);
    respond(std::move(response));
  }

  void Fail(int status, std::string_view outcome, std::string_view message) {
    Finish(TextResponse(status, message), outcome, message);
  }
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::optional<uint64_t> ParseNumber(std::string_view& text) {
  size_t n = 0;
  uint64_t value = 0;
  while (n < text.size() && IsDigit(text[n])) {
    if (n == 9) return std::nullopt;  // more than 9 digits
    value = value * 10 + static_cast<uint64_t>(text[n] - '0');
    ++n;
  }
  if (n == 0) return std::nullopt;
  text.remove_prefix(n);
  return value;
}

void WipeBody(Bytes& body) {
  SecureWipe(body);
  body.clear();
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view lowercase_name) const {
  auto it = headers.find(std::string(lowercase_name));
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

std::string_view HttpRequest::Path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::optional<JuiceboxVersion> ParseJuiceboxVersion(std::string_view text) {
  if (!text.empty() && (text.front() == 'v' || text.front() == 'V')) text.remove_prefix(1);
  JuiceboxVersion v;
  auto major = ParseNumber(text);
  if (!major || text.empty() || text.front() != '.') return std::nullopt;
  text.remove_prefix(1);
  auto minor = ParseNumber(text);
  if (!minor) return std::nullopt;
  if (!text.empty() && text.front() == '.') {
    text.remove_prefix(1);
    if (!ParseNumber(text)) return std::nullopt;
  }
  if (!text.empty()) {
    if (text.front() != '-' && text.front() != '+') return std::nullopt;
    if (text.size() == 1) return std::nullopt;
    for (char c : text.substr(1)) {
      bool ok = IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                c == '-' || c == '+';
      if (!ok) return std::nullopt;
    }
  }
  v.major = *major;
  v.minor = *minor;
  return v;
}

StatusOr<std::unique_ptr<Router>> Router::Create(RouterOptions options, RouterDeps deps) {
  if (!deps.realm) return InvalidArgumentError("router needs a realm");
  if (!deps.authenticator) return InvalidArgumentError("router needs an authenticator");
  if (!deps.metrics) return InvalidArgumentError("router needs metrics");
  if (!deps.logger) return InvalidArgumentError("router needs a request logger");
  if (options.native_body_limit == 0) {
    return InvalidArgumentError("native body limit must be positive");
  }
  return std::unique_ptr<Router>(new Router(options, std::move(deps)));
}

size_t Router::BodyLimit(std::string_view path) const {
  if (path == kJuiceboxPath) return kMaxJuiceboxBodySize;
  if (path == kNativePath) return options_.native_body_limit;
  return kOtherBodyLimit;
}

void Router::Handle(HttpRequest request, HttpResponder respond) {
  HttpResponder once = Once(std::move(respond));
  try {
    HandleUnsafe(request, once);
  } catch (const std::exception&) {
    WipeBody(request.body);
    deps_.metrics->RecordHttpStatus(500);
    once(TextResponse(500, "internal error"));
  } catch (...) {
    WipeBody(request.body);
    deps_.metrics->RecordHttpStatus(500);
    once(TextResponse(500, "internal error"));
  }
}

void Router::HandleUnsafe(HttpRequest& request, HttpResponder& respond) {
  const std::string_view path = request.Path();
  const std::string_view method = request.method;

  auto simple = [&](HttpResponse response) {
    deps_.metrics->RecordHttpStatus(response.status);
    respond(std::move(response));
  };

  if (path == kJuiceboxPath || path == kNativePath) {
    if (method == "POST") {
      HandleProtocol(request, respond, path == kJuiceboxPath);
      return;
    }
    if (method == "OPTIONS") {
      HttpResponse r;
      r.status = 204;
      AddCors(r);
      r.headers.emplace_back("Access-Control-Allow-Methods", "POST, OPTIONS");
      r.headers.emplace_back("Access-Control-Allow-Headers",
                             "Authorization, X-Juicebox-Version, Content-Type");
      r.headers.emplace_back("Access-Control-Max-Age", "86400");
      simple(std::move(r));
      return;
    }
    HttpResponse r = TextResponse(405, "method not allowed; use POST");
    r.headers.emplace_back("Allow", "POST, OPTIONS");
    AddCors(r);
    simple(std::move(r));
    return;
  }

  if (path == "/livez" || path == "/readyz" || path == "/metrics") {
    if (method != "GET") {
      HttpResponse r = TextResponse(405, "method not allowed; use GET");
      r.headers.emplace_back("Allow", "GET");
      simple(std::move(r));
      return;
    }
    if (path == "/livez") {
      simple(TextResponse(200, "ok"));
    } else if (path == "/readyz") {
      Status ready = deps_.realm->Ready();
      deps_.metrics->SetReady(ready.ok());
      simple(ready.ok() ? TextResponse(200, "ready")
                        : TextResponse(503, "not ready: " + ready.ToString()));
    } else {
      Status ready = deps_.realm->Ready();
      deps_.metrics->SetReady(ready.ok());
      std::string text = deps_.metrics->RenderPrometheus();
      HttpResponse r;
      r.status = 200;
      r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      r.body.assign(text.begin(), text.end());
      simple(std::move(r));
    }
    return;
  }

  simple(TextResponse(404, "not found"));
}

void Router::HandleProtocol(HttpRequest& request, HttpResponder respond, bool juicebox) {
  auto scope = std::make_shared<RequestScope>();
  scope->endpoint = juicebox ? kJuiceboxPath : kNativePath;
  scope->start = Clock::now();
  scope->metrics = deps_.metrics;
  scope->logger = deps_.logger;
  scope->respond = std::move(respond);

  // From here on the body may hold key shares (Register2): wipe it on every exit.
  struct BodyWiper {
    Bytes& body;
    ~BodyWiper() { WipeBody(body); }
  } wiper{request.body};

  std::optional<ProtoFormat> format;
  if (juicebox) {
    std::string_view header = request.Header("x-juicebox-version");
    if (header.empty()) {
      scope->Fail(426, "upgrade_required", "missing X-Juicebox-Version header");
      return;
    }
    std::optional<JuiceboxVersion> version = ParseJuiceboxVersion(header);
    if (!version) {
      scope->Fail(426, "upgrade_required", "X-Juicebox-Version is not a semantic version");
      return;
    }
    const JuiceboxVersion& min = options_.min_juicebox_version;
    if (!(version->major > min.major ||
          (version->major == min.major && version->minor >= min.minor))) {
      scope->Fail(426, "upgrade_required",
                  "X-Juicebox-Version " + std::to_string(version->major) + "." +
                      std::to_string(version->minor) + " is below the supported minimum " +
                      std::to_string(min.major) + "." + std::to_string(min.minor));
      return;
    }
  } else {
    format = ProtoFormatForContentType(request.Header("content-type"));
    if (!format) {
      HttpResponse r = TextResponse(
          415, "unsupported Content-Type; use application/x-protobuf or application/json");
      r.headers.emplace_back("Accept-Post", "application/x-protobuf, application/json");
      scope->Finish(std::move(r), "unsupported_media_type", "unsupported Content-Type");
      return;
    }
  }

  const size_t limit = BodyLimit(scope->endpoint);
  if (request.body.size() > limit) {
    scope->Fail(413, "too_large",
                "request body is " + std::to_string(request.body.size()) + " bytes; the limit is " +
                    std::to_string(limit));
    return;
  }

  StatusOr<AuthenticatedCaller> caller = deps_.authenticator->Authenticate(
      request.Header("authorization"), ByteView(options_.realm_id));
  if (!caller.ok()) {
    HttpResponse r = TextResponse(401, caller.status().message());
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    scope->Finish(std::move(r), "unauthenticated", caller.status().message());
    return;
  }
  scope->tenant = caller->tenant;
  scope->user = caller->user;

  if (deps_.rate_limiter) {
    RateLimitDecision decision = deps_.rate_limiter->Acquire(caller->tenant, caller->user);
    if (!decision.allowed) {
      double seconds = std::chrono::duration<double>(decision.retry_after).count();
      int64_t retry = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds)));
      bool by_tenant = decision.limited_by == RateLimitDecision::LimitedBy::kTenant;
      HttpResponse r = TextResponse(429, by_tenant ? "rate limit of this tenant exceeded"
                                                   : "rate limit of this user exceeded");
      r.headers.emplace_back("Retry-After", std::to_string(retry));
      scope->Finish(std::move(r), "rate_limited", by_tenant ? "tenant limit" : "user limit");
      return;
    }
  }

  // The protobuf JSON parser's own reason may quote the body, which can hold key shares: the
  // client gets it back, the log gets `log_reason`.
  std::string log_reason;
  StatusOr<SecretsRequest> decoded = juicebox
                                         ? DecodeRequestCbor(request.body)
                                         : DecodeRequestProto(request.body, *format, &log_reason);
  WipeBody(request.body);
  if (!decoded.ok()) {
    const std::string& message = decoded.status().message();
    scope->Finish(TextResponse(400, message), "bad_request", juicebox ? message : log_reason);
    return;
  }
  scope->operation = std::string(protocol::RequestKindName(*decoded));

  vault::RequestContext context{caller->tenant, caller->user};
  deps_.realm->Submit(
      std::move(context), std::move(*decoded),
      [scope, juicebox, format](StatusOr<SecretsResponse> result) {
        try {
          if (!result.ok()) {
            ErrorMapping m = MapRealmError(result.status());
            std::string message =
                m.expose_message ? result.status().ToString() : std::string("internal error");
            HttpResponse r = TextResponse(m.status, message);
            if (m.status == 503) r.headers.emplace_back("Retry-After", "1");
            scope->Finish(std::move(r), m.outcome, result.status().ToString());
            return;
          }
          const SecretsResponse& response = *result;
          StatusOr<Bytes> body =
              juicebox ? EncodeResponseCbor(response) : EncodeResponseProto(response, *format);
          if (!body.ok()) {
            scope->Fail(500, "internal", "internal error");
            return;
          }
          std::string_view outcome = OutcomeOf(response);
          if (const auto* r2 = std::get_if<protocol::Recover2Response>(&response);
              r2 != nullptr && r2->status == protocol::Recover2Response::Status::kOk) {
            scope->metrics->AddGuessesSpent(1);
          }
          if (const auto* r3 = std::get_if<protocol::Recover3Response>(&response);
              r3 != nullptr && r3->status == protocol::Recover3Response::Status::kBadUnlockKeyTag &&
              r3->guesses_remaining == 0) {
            scope->metrics->AddRecordsDestroyed("guesses_exhausted", 1);
          }
          if (std::holds_alternative<protocol::DeleteResponse>(response)) {
            scope->metrics->AddRecordsDestroyed("deleted", 1);
          }
          HttpResponse r;
          r.status = 200;
          r.headers.emplace_back("Content-Type", juicebox ? std::string("application/octet-stream")
                                                          : std::string(ProtoContentType(*format)));
          r.body = std::move(*body);
          r.sensitive_body = CarriesSecret(response);
          scope->Finish(std::move(r), outcome, "");
        } catch (...) {
          scope->respond(TextResponse(500, "internal error"));
        }
      });
}

}  // namespace pinvault::api
