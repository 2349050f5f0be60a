#include "api/client/http_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <deque>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "api/codec/cbor_codec.h"
#include "vault/secret_bytes.h"

namespace pinvault::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using backup::TransportError;
using backup::TransportErrorKind;
using backup::TransportResult;

constexpr size_t kMaxResponseHeader = 16 * 1024;
constexpr size_t kMaxDetailExcerpt = 200;

std::string Lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool HasForbiddenChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// RemoveDotSegments applies RFC 3986 section 5.2.4 to an absolute path ("/...").
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> out;
  std::string_view rest = path.substr(1);  // after the leading '/'
  while (true) {
    size_t slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    bool last = slash == std::string_view::npos;
    if (segment == ".") {
      if (last) out.emplace_back();
    } else if (segment == "..") {
      if (!out.empty()) out.pop_back();
      if (last) out.emplace_back();
    } else {
      out.push_back(segment);
    }
    if (last) break;
    rest = rest.substr(slash + 1);
  }
  std::string result;
  for (std::string_view segment : out) {
    result += '/';
    result += segment;
  }
  return result.empty() ? "/" : result;
}

// PrintableExcerpt returns the start of an error body if it is plain text, for details.
std::string PrintableExcerpt(std::string_view body) {
  std::string excerpt;
  for (char c : body.substr(0, kMaxDetailExcerpt)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r' || c == '\t') {
      excerpt += ' ';
    } else if (u < 0x20 || u == 0x7f) {
      return std::string();  // binary: not worth showing
    } else {
      excerpt += c;
    }
  }
  while (!excerpt.empty() && excerpt.back() == ' ') excerpt.pop_back();
  if (body.size() > kMaxDetailExcerpt && !excerpt.empty()) excerpt += "...";
  return excerpt;
}

// MapHttpAnswer turns a complete HTTP answer into a transport result (see the header).
// `body` is null when the body was too large to read.
TransportResult MapHttpAnswer(unsigned status, const std::string* body, const std::string& peer) {
  std::optional<Status> decode_error;
  if (body != nullptr) {
    StatusOr<protocol::SecretsResponse> response = DecodeResponseCbor(AsBytes(*body));
    if (response.ok()) return std::move(response).value();
    decode_error = response.status();
  } else {
    decode_error = InvalidArgumentError("body over the size limit");
  }
  std::string detail = "HTTP " + std::to_string(status) + " from " + peer;
  if (status >= 200 && status < 300) {
    return TransportError{
        TransportErrorKind::kMalformedResponse,
        detail + ": body is not a SecretsResponse (" + decode_error->message() + ")"};
  }
  if (body != nullptr) {
    std::string excerpt = PrintableExcerpt(*body);
    if (!excerpt.empty()) detail += ": " + excerpt;
  }
  switch (status) {
    case 401:
      return TransportError{TransportErrorKind::kInvalidAuth, detail};
    case 426:
      return TransportError{TransportErrorKind::kUpgradeRequired, detail};
    case 429:
      return TransportError{TransportErrorKind::kRateLimited, detail};
    default:
      return TransportError{TransportErrorKind::kTransient, detail};
  }
}

struct ConnectionKey {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  friend auto operator<=>(const ConnectionKey&, const ConnectionKey&) = default;
};

// Connection is one TCP (and maybe TLS) connection plus its read buffer.
struct Connection {
  ConnectionKey key;
  std::unique_ptr<ssl::stream<tcp::socket>> tls;
  std::unique_ptr<tcp::socket> plain;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;

  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }

  void Close() {
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  // LooksDead reports whether the peer closed (or wrote to) an idle connection: a kept-
  // alive socket must have nothing to read.
  bool LooksDead() {
    if (buffer.size() != 0 || !socket().is_open()) return true;
    pollfd p{};
    p.fd = socket().native_handle();
    p.events = POLLIN | POLLRDHUP;
    int n = ::poll(&p, 1, 0);
    return n != 0;
  }
};

class Exchange;

}  // namespace

std::string HttpUrl::ToString() const {
  std::string out = tls ? "https://" : "http://";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) out += ":" + std::to_string(port);
  out += target;
  return out;
}

StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  if (url.empty()) return InvalidArgumentError("empty URL");
  if (HasForbiddenChar(url)) {
    return InvalidArgumentError("URL contains spaces or control characters");
  }
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return InvalidArgumentError("URL \"" + std::string(url) + "\" is not absolute");
  }
  std::string scheme = Lowercase(url.substr(0, scheme_end));
  HttpUrl out;
  if (scheme == "https") {
    out.tls = true;
  } else if (scheme != "http") {
    return InvalidArgumentError("URL scheme \"" + scheme + "\" is not http or https");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgumentError("URLs with user info are not supported");
  }
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("unterminated IPv6 host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgumentError("junk after IPv6 host");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return InvalidArgumentError("URL has an empty host");
  out.host = Lowercase(host);
  out.port = out.tls ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidArgumentError("bad port \"" + std::string(port) + "\"");
    }
    unsigned long value = std::stoul(std::string(port));
    if (value == 0 || value > 65535) {
      return InvalidArgumentError("port " + std::string(port) + " out of range");
    }
    out.port = static_cast<uint16_t>(value);
  }
  tail = tail.substr(0, tail.find('#'));
  out.target = std::string(tail);
  if (out.target.empty() || out.target.front() == '?') out.target = "/" + out.target;
  return out;
}

StatusOr<HttpUrl> ResolveRelativePath(std::string_view base, std::string_view reference) {
  ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(base));
  size_t first_separator = reference.find('/');
  if (reference.empty() || reference.front() == '/' ||
      reference.find_first_of("?#") != std::string_view::npos ||
      reference.substr(0, first_separator).find(':') != std::string_view::npos ||
      HasForbiddenChar(reference)) {
    return InvalidArgumentError("\"" + std::string(reference) + "\" is not a relative path");
  }
  std::string path = url.target.substr(0, url.target.find('?'));
  path = path.substr(0, path.rfind('/') + 1);  // the path always starts with '/'
  path += reference;
  url.target = RemoveDotSegments(path);
  return url;
}

struct HttpTransport::Impl : std::enable_shared_from_this<HttpTransport::Impl> {
  explicit Impl(HttpTransportOptions opts)
      : options(std::move(opts)),
        io(1),
        work(net::make_work_guard(io)),
        tls_context(ssl::context::tls_client) {}

  ~Impl() {
    if (thread.joinable()) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();
      } else {
        thread.join();
      }
    }
  }

  // Run is the I/O thread's body. A handler that throws (only a caller's callback can)
  // does not stop the loop.
  void Run() {
    while (true) {
      try {
        io.run();
        return;
      } catch (...) {
      }
    }
  }

  // BeginShutdown fails every request in flight, closes every connection and lets the I/O
  // thread finish once the last handler has run. Any thread.
  void BeginShutdown();

  // TakeIdle returns a live kept-alive connection for `key`, or null. I/O thread only.
  std::unique_ptr<Connection> TakeIdle(const ConnectionKey& key) {
    auto it = idle.find(key);
    if (it == idle.end()) return nullptr;
    std::unique_ptr<Connection> result;
    while (!it->second.empty() && result == nullptr) {
      std::unique_ptr<Connection> candidate = std::move(it->second.back());
      it->second.pop_back();
      if (Clock::now() - candidate->idle_since < options.idle_timeout && !candidate->LooksDead()) {
        result = std::move(candidate);
      } else {
        candidate->Close();
      }
    }
    if (it->second.empty()) idle.erase(it);
    return result;
  }

  // ReleaseIdle keeps `connection` for reuse, or closes it. I/O thread only.
  void ReleaseIdle(std::unique_ptr<Connection> connection) {
    if (shutting_down || options.max_idle_per_host == 0) {
      connection->Close();
      return;
    }
    connection->idle_since = Clock::now();
    auto& list = idle[connection->key];
    list.push_back(std::move(connection));
    while (list.size() > options.max_idle_per_host) {
      list.front()->Close();
      list.pop_front();
    }
  }

  HttpTransportOptions options;
  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  ssl::context tls_context;
  std::thread thread;
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> connections_reused{0};

  // I/O thread only:
  bool shutting_down = false;
  std::map<ConnectionKey, std::deque<std::unique_ptr<Connection>>> idle;
  std::set<Exchange*> active;
};

namespace {

// Exchange is one request: connection (new or reused), write, read, map, callback. Lives
// on the I/O thread; kept alive by its pending handlers.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(HttpTransport::Impl& impl, HttpUrl url, const std::string& auth_token, Bytes body,
           backup::Transport::TransportCallback done)
      : impl_(impl),
        url_(std::move(url)),
        key_{url_.tls, url_.host, url_.port},
        peer_(url_.ToString()),
        done_(std::move(done)),
        timer_(impl.io),
        resolver_(impl.io) {
    request_.method(http::verb::post);
    request_.target(url_.target);
    request_.version(11);
    std::string host_header =
        url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    if (url_.port != (url_.tls ? 443 : 80)) host_header += ":" + std::to_string(url_.port);
    request_.set(http::field::host, host_header);
    request_.set(http::field::authorization, "Bearer " + auth_token);
    request_.set("X-Juicebox-Version", kJuiceboxClientVersion);
    request_.set(http::field::user_agent, impl.options.user_agent);
    request_.keep_alive(true);
    request_.body() = std::move(body);
    request_.prepare_payload();
  }

  ~Exchange() {
    SecureWipe(request_.body());
    // The Authorization header holds a credential; overwrite it before it is freed.
    auto it = request_.find(http::field::authorization);
    if (it != request_.end()) {
      std::string blank(it->value().size(), ' ');
      request_.set(http::field::authorization, blank);
    }
  }

  // Start begins the exchange. I/O thread only.
  void Start() {
    if (impl_.shutting_down) {
      Finish(TransportError{TransportErrorKind::kTransient, "transport shut down"});
      return;
    }
    impl_.active.insert(this);
    timer_.expires_after(impl_.options.request_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Abort(/*timeout=*/true);
    });
    connection_ = impl_.TakeIdle(key_);
    if (connection_ != nullptr) {
      reused_ = true;
      impl_.connections_reused.fetch_add(1, std::memory_order_relaxed);
      Write();
    } else {
      Resolve();
    }
  }

  // Abort ends the exchange early (timeout or shutdown): pending operations complete
  // with errors and Fail reports why. I/O thread only.
  void Abort(bool timeout) {
    if (finished_) return;
    aborted_ = timeout ? Aborted::kTimeout : Aborted::kShutdown;
    resolver_.cancel();
    if (connection_ != nullptr) connection_->Close();
    timer_.cancel();
  }

 private:
  enum class Aborted { kNo, kTimeout, kShutdown };

  void Resolve() {
    stage_ = "resolving the host";
    resolver_.async_resolve(url_.host, std::to_string(url_.port),
                            [self = shared_from_this()](boost::system::error_code ec,
                                                        tcp::resolver::results_type results) {
                              self->OnResolve(ec, std::move(results));
                            });
  }

  void OnResolve(boost::system::error_code ec, tcp::resolver::results_type results) {
    if (ec || aborted_ != Aborted::kNo) return Fail(ec);
    connection_ = std::make_unique<Connection>();
    connection_->key = key_;
    if (url_.tls) {
      connection_->tls = std::make_unique<ssl::stream<tcp::socket>>(impl_.io, impl_.tls_context);
      SSL* ssl = connection_->tls->native_handle();
      boost::system::error_code address_error;
      net::ip::make_address(url_.host, address_error);
      bool is_ip = !address_error;
      int configured = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str())
                             : (SSL_set_tlsext_host_name(ssl, url_.host.c_str()) == 1 &&
                                SSL_set1_host(ssl, url_.host.c_str()) == 1);
      if (configured != 1) {
        return Fail(TransportError{TransportErrorKind::kTransient,
                                   "cannot set up TLS host verification for " + peer_});
      }
      connection_->tls->set_verify_mode(ssl::verify_peer);
    } else {
      connection_->plain = std::make_unique<tcp::socket>(impl_.io);
    }
    stage_ = "connecting";
    net::async_connect(connection_->socket(), results,
                       [self = shared_from_this()](boost::system::error_code ec,
                                                   const tcp::endpoint&) { self->OnConnect(ec); });
  }

  void OnConnect(boost::system::error_code ec) {
    if (ec || aborted_ != Aborted::kNo) return Fail(ec);
    impl_.connections_opened.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code ignored;
    connection_->socket().set_option(tcp::no_delay(true), ignored);
    if (!url_.tls) return Write();
    stage_ = "TLS handshake";
    connection_->tls->async_handshake(
        ssl::stream_base::client,
        [self = shared_from_this()](boost::system::error_code ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(boost::system::error_code ec) {
    if (ec || aborted_ != Aborted::kNo) return Fail(ec);
    Write();
  }

  void Write() {
    stage_ = "sending the request";
    auto handler = [self = shared_from_this()](boost::system::error_code ec, size_t) {
      self->OnWrite(ec);
    };
    if (connection_->tls) {
      http::async_write(*connection_->tls, request_, std::move(handler));
    } else {
      http::async_write(*connection_->plain, request_, std::move(handler));
    }
  }

  void OnWrite(boost::system::error_code ec) {
    if (ec && aborted_ == Aborted::kNo && reused_) {
      // The kept-alive connection died while idle; the request did not get through
      // whole, so it cannot have been processed. Use a new connection.
      connection_->Close();
      connection_.reset();
      reused_ = false;
      return Resolve();
    }
    if (ec || aborted_ != Aborted::kNo) return Fail(ec);
    SecureWipe(request_.body());
    parser_.emplace();
    parser_->header_limit(kMaxResponseHeader);
    parser_->body_limit(impl_.options.max_response_body);
    stage_ = "reading the answer";
    auto handler = [self = shared_from_this()](boost::system::error_code ec, size_t) {
      self->OnRead(ec);
    };
    if (connection_->tls) {
      http::async_read(*connection_->tls, connection_->buffer, *parser_, std::move(handler));
    } else {
      http::async_read(*connection_->plain, connection_->buffer, *parser_, std::move(handler));
    }
  }

  void OnRead(boost::system::error_code ec) {
    if (aborted_ == Aborted::kNo && ec == http::error::body_limit && parser_->is_header_done()) {
      unsigned status = parser_->get().result_int();
      connection_->Close();
      connection_.reset();
      return Finish(MapHttpAnswer(status, nullptr, peer_));
    }
    if (ec || aborted_ != Aborted::kNo) return Fail(ec);
    http::response<http::string_body> response = parser_->release();
    if (response.keep_alive()) {
      impl_.ReleaseIdle(std::move(connection_));
    } else {
      connection_->Close();
      connection_.reset();
    }
    Finish(MapHttpAnswer(response.result_int(), &response.body(), peer_));
  }

  void Fail(boost::system::error_code ec) {
    std::string detail;
    if (aborted_ == Aborted::kTimeout) {
      detail = "no answer from " + peer_ + " within " +
               std::to_string(impl_.options.request_timeout.count()) + " ms (" + stage_ + ")";
    } else if (aborted_ == Aborted::kShutdown) {
      detail = "transport shut down";
    } else {
      detail = stage_ + " " + peer_ + ": " + ec.message();
    }
    Fail(TransportError{TransportErrorKind::kTransient, std::move(detail)});
  }

  void Fail(TransportError error) {
    if (connection_ != nullptr) {
      connection_->Close();
      connection_.reset();
    }
    Finish(std::move(error));
  }

  void Finish(TransportResult result) {
    if (finished_) return;
    finished_ = true;
    impl_.active.erase(this);
    timer_.cancel();
    backup::Transport::TransportCallback done = std::move(done_);
    done(std::move(result));  // last: may destroy the transport
  }

  HttpTransport::Impl& impl_;
  const HttpUrl url_;
  const ConnectionKey key_;
  const std::string peer_;
  backup::Transport::TransportCallback done_;
  net::steady_timer timer_;
  tcp::resolver resolver_;
  http::request<http::vector_body<uint8_t>> request_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::unique_ptr<Connection> connection_;
  std::string stage_ = "starting";
  bool reused_ = false;
  bool finished_ = false;
  Aborted aborted_ = Aborted::kNo;
};

}  // namespace

void HttpTransport::Impl::BeginShutdown() {
  net::post(io, [this] {
    shutting_down = true;
    std::vector<Exchange*> in_flight(active.begin(), active.end());
    for (Exchange* exchange : in_flight) exchange->Abort(/*timeout=*/false);
    for (auto& [key, list] : idle) {
      for (auto& connection : list) connection->Close();
    }
    idle.clear();
  });
  work.reset();
}

StatusOr<std::unique_ptr<HttpTransport>> HttpTransport::Create(HttpTransportOptions options) {
  if (options.request_timeout.count() <= 0) {
    return InvalidArgumentError("request timeout must be positive");
  }
  std::shared_ptr<Impl> impl;
  try {
    impl = std::make_shared<Impl>(std::move(options));
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot set up the HTTP client: ") + e.what());
  }
  SSL_CTX* ctx = impl->tls_context.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return InternalError("cannot require TLS 1.2");
  }
  boost::system::error_code ec;
  impl->tls_context.set_verify_mode(ssl::verify_peer, ec);
  if (ec) return InternalError("cannot enable certificate verification: " + ec.message());
  if (!impl->options.ca_file.empty()) {
    impl->tls_context.load_verify_file(impl->options.ca_file, ec);
    if (ec) {
      return InvalidArgumentError("cannot load CA file " + impl->options.ca_file + ": " +
                                  ec.message());
    }
  } else {
    impl->tls_context.set_default_verify_paths(ec);
    if (ec) return InternalError("cannot load the system trust store: " + ec.message());
  }
  try {
    impl->thread = std::thread([self = impl] { self->Run(); });
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the HTTP client thread: ") + e.what());
  }
  return std::unique_ptr<HttpTransport>(new HttpTransport(std::move(impl)));
}

HttpTransport::~HttpTransport() {
  impl_->BeginShutdown();
  if (impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
  // Otherwise this runs inside a callback on the I/O thread, which finishes the remaining
  // handlers and then drops its own reference to impl_.
}

void HttpTransport::Send(const backup::RealmEndpoint& realm, const std::string& auth_token,
                         protocol::SecretsRequest request, TransportCallback done) {
  StatusOr<HttpUrl> url = ResolveRelativePath(realm.address, "req");
  if (!url.ok()) {
    done(TransportError{TransportErrorKind::kTransient,
                        "bad realm address: " + url.status().message()});
    return;
  }
  StatusOr<Bytes> body = EncodeRequestCbor(request);
  if (!body.ok()) {
    // Only a malformed request (a client bug) fails to encode; it must not be retried.
    done(TransportError{TransportErrorKind::kMalformedResponse,
                        "cannot encode the request: " + body.status().message()});
    return;
  }
  if (HasForbiddenChar(auth_token)) {
    done(TransportError{TransportErrorKind::kInvalidAuth,
                        "the auth token contains spaces or control characters"});
    return;
  }
  auto exchange = std::make_shared<Exchange>(*impl_, std::move(url).value(), auth_token,
                                             std::move(body).value(), std::move(done));
  net::post(impl_->io, [exchange] { exchange->Start(); });
}

HttpTransport::Stats HttpTransport::stats() const {
  Stats stats;
  stats.connections_opened = impl_->connections_opened.load(std::memory_order_relaxed);
  stats.connections_reused = impl_->connections_reused.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace pinvault::api
