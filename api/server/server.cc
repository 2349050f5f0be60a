#include "api/server/server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <condition_variable>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "vault/secret_bytes.h"

namespace pinvault::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

using Body = http::vector_body<uint8_t>;

// How long a closing connection keeps reading (and discarding) what the client still
// sends, so that an early error response is not lost to a TCP reset.
constexpr std::chrono::milliseconds kLingerTime{1000};

std::string Lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // CloseIfIdle closes the connection unless a request on it has started (drain).
  virtual void CloseIfIdle() = 0;
};

}  // namespace

// Liveness lets late responders (a realm answering after shutdown) find out that the
// server is gone instead of touching a destroyed io_context.
struct Liveness {
  std::mutex mu;
  bool alive = true;  // guarded by mu
};

struct HttpServer::Impl {
  ServerOptions options;
  std::shared_ptr<HttpHandler> handler;
  std::shared_ptr<Metrics> metrics;
  std::shared_ptr<RequestLogger> logger;
  std::optional<ssl::context> tls_context;
  std::shared_ptr<Liveness> liveness = std::make_shared<Liveness>();

  std::atomic<bool> draining{false};
  std::atomic<size_t> in_flight{0};
  std::atomic<uint64_t> bytes_parsed{0};
  uint16_t bound_port = 0;

  std::mutex mu;
  // Notified (under mu) after every change of in_flight or bytes_parsed, so that a waiter
  // that checks them under mu never misses one.
  std::condition_variable cv;
  // Every open connection (for the drain), and strong references to connections whose
  // request is with the handler (so they live until answered). Guarded by mu.
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
  std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> processing;
  bool started = false;    // guarded by mu
  bool shut_down = false;  // guarded by mu
  std::vector<std::thread> threads;

  // Declared last among the I/O state: destroyed first, it destroys pending handlers (and
  // with them the connections) while everything above is still alive. The acceptor must go
  // before the io_context, hence after it here.
  net::io_context ioc;
  // Keeps the threads running while a request is with the handler and no I/O is pending.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;

  Impl(ServerOptions opts, std::shared_ptr<HttpHandler> h, std::shared_ptr<Metrics> m)
      : options(std::move(opts)),
        handler(std::move(h)),
        metrics(std::move(m)),
        ioc(std::max(1, options.threads)),
        acceptor(net::make_strand(ioc)) {}

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(liveness->mu);
      liveness->alive = false;
    }
    std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> held;
    {
      std::lock_guard<std::mutex> lock(mu);
      held.swap(processing);
    }
    held.clear();  // connections destroyed while the io_context still exists
  }

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RunThread();

  void RequestStarted() {
    ++in_flight;
    if (metrics) metrics->RequestBegan();
    NotifyProgress();
  }
  void RequestEnded() {
    if (metrics) metrics->RequestEnded();
    --in_flight;
    NotifyProgress();
  }
  void BytesParsed(size_t n) {
    if (n == 0) return;
    bytes_parsed += n;
    NotifyProgress();
  }
  // NotifyProgress wakes the waiters of cv; called without mu held.
  void NotifyProgress() {
    std::lock_guard<std::mutex> lock(mu);
    cv.notify_all();
  }
  // WaitUntil waits on cv up to `limit` for `done` (checked under mu).
  template <class Predicate>
  bool WaitUntil(std::chrono::milliseconds limit, Predicate done) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, done);
  }
};

namespace {

// Session: one connection. Derived provides stream() (the byte stream), Start() and
// DoClose(). Everything runs on the connection's strand.
template <class Derived>
class Session : public SessionBase, public std::enable_shared_from_this<Derived> {
 public:
  explicit Session(HttpServer::Impl* server) : server_(server) {
    if (server_->metrics) server_->metrics->ConnectionOpened();
  }

  ~Session() override {
    if (counted_) server_->RequestEnded();
    if (server_->metrics) server_->metrics->ConnectionClosed();
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->sessions.erase(this);
  }

  void CloseIfIdle() override {
    net::dispatch(Self().stream().get_executor(), [self = this->shared_from_this()] {
      if (self->state_ == State::kReadingHeader) self->ForceClose();
    });
  }

 protected:
  Derived& Self() { return static_cast<Derived&>(*this); }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(Self().stream()); }

  void ReadHeader() {
    if (server_->draining) {
      Close();
      return;
    }
    state_ = State::kReadingHeader;
    path_.clear();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    // The parser checks Content-Length against its body limit while parsing the header;
    // the real, per-path limit is applied (and Content-Length checked) in OnHeader.
    parser_->body_limit(boost::none);
    Lowest().expires_after(first_request_ ? server_->options.request_timeout
                                          : server_->options.idle_timeout);
    http::async_read_header(Self().stream(), buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->server_->BytesParsed(n);
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      if (ec == http::error::header_limit) {
        WriteDirect(431, "request header too large");
        return;
      }
      // A parse error (not a closed or timed-out connection) gets a 400 before closing.
      const auto& http_category = http::make_error_code(http::error::end_of_stream).category();
      if (ec.category() == http_category && ec != http::error::end_of_stream &&
          ec != http::error::partial_message) {
        WriteDirect(400, "malformed HTTP request");
        return;
      }
      Close();
      return;
    }
    first_request_ = false;
    counted_ = true;
    server_->RequestStarted();
    state_ = State::kReadingBody;

    std::string_view target(parser_->get().target().data(), parser_->get().target().size());
    std::string_view path = target.substr(0, target.find('?'));
    path_ = std::string(path.substr(0, 100));
    started_ = std::chrono::steady_clock::now();
    const size_t limit = server_->handler->BodyLimit(path);
    if (auto length = parser_->content_length(); length && *length > limit) {
      WriteDirect(413, "request body is " + std::to_string(*length) + " bytes; the limit is " +
                           std::to_string(limit));
      return;
    }
    parser_->body_limit(limit);
    Lowest().expires_after(server_->options.request_timeout);
    if (parser_->is_done()) {
      Dispatch();
      return;
    }
    // A client that asked to be told before sending its body (curl does for bodies over
    // 1 KiB) is told now, since the size was acceptable.
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = std::make_unique<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(Self().stream(), *continue_,
                        [self = this->shared_from_this()](beast::error_code ec, size_t) {
                          self->continue_.reset();
                          if (ec) {
                            self->Close();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  // ReadBody reads the body as http::async_read would, one async_read_some at a time so that
  // each read's bytes are counted as they are parsed.
  void ReadBody() {
    parser_->eager(true);
    http::async_read_some(Self().stream(), buffer_, *parser_,
                          [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                            self->server_->BytesParsed(n);
                            if (!ec && !self->parser_->is_done()) {
                              self->ReadBody();
                              return;
                            }
                            self->OnBody(ec);
                          });
  }

  void OnBody(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      WriteDirect(413, "request body exceeds the limit");
      return;
    }
    if (ec) {
      Close();
      return;
    }
    Dispatch();
  }

  void Dispatch() {
    state_ = State::kProcessing;
    Lowest().expires_never();
    http::request<Body> message = parser_->release();
    keep_alive_ = message.keep_alive();

    HttpRequest request;
    request.method.assign(message.method_string().data(), message.method_string().size());
    request.target.assign(message.target().data(), message.target().size());
    for (const auto& field : message) {
      std::string name =
          Lowercase(std::string_view(field.name_string().data(), field.name_string().size()));
      std::string value(field.value().data(), field.value().size());
      auto [it, inserted] = request.headers.emplace(name, value);
      if (!inserted) it->second += ", " + value;
    }
    request.body = std::move(message.body());

    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->processing[this] = this->shared_from_this();
    }
    // The responder may outlive the server (a realm answering after shutdown), so it holds
    // nothing that belongs to the io_context (not even the strand executor): only a weak
    // reference to this connection and the server's liveness flag.
    std::weak_ptr<Derived> weak = this->shared_from_this();
    std::shared_ptr<Liveness> liveness = server_->liveness;
    HttpResponder respond = [weak, liveness](HttpResponse response) {
      std::lock_guard<std::mutex> lock(liveness->mu);
      std::shared_ptr<Derived> self = liveness->alive ? weak.lock() : nullptr;
      if (!self) {
        if (response.sensitive_body) SecureWipe(response.body);
        return;
      }
      auto executor = self->Self().stream().get_executor();
      net::post(executor, [self, r = std::make_shared<HttpResponse>(std::move(response))] {
        self->Write(std::move(*r));
      });
    };
    try {
      server_->handler->Handle(std::move(request), std::move(respond));
    } catch (...) {
      // Handlers must not throw; if one does, the connection answers 500 itself.
      HttpResponse r;
      r.status = 500;
      r.body = Bytes{'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', ' ', 'e', 'r', 'r', 'o', 'r', '\n'};
      Write(std::move(r));
    }
  }

  // WriteDirect answers without the handler (413, 431, 400 at the HTTP layer) and closes.
  void WriteDirect(int status, const std::string& text) {
    if (server_->metrics) server_->metrics->RecordHttpStatus(status);
    if (server_->logger) {
      RequestLogEntry entry;
      entry.endpoint = path_.empty() ? std::string_view("-") : std::string_view(path_);
      entry.outcome = status == 413 ? "too_large" : status == 431 ? "header_too_large" : "bad_http";
      entry.http_status = status;
      entry.latency =
          path_.empty() ? std::chrono::nanoseconds(0) : std::chrono::steady_clock::now() - started_;
      entry.error = text;
      server_->logger->Log(entry);
    }
    HttpResponse r;
    r.status = status;
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
    r.body.assign(text.begin(), text.end());
    r.body.push_back('\n');
    r.close = true;
    Write(std::move(r));
  }

  void Write(HttpResponse r) {
    if (state_ == State::kClosed || state_ == State::kWriting) {
      if (r.sensitive_body) SecureWipe(r.body);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->processing.erase(this);
    }
    state_ = State::kWriting;
    sensitive_ = r.sensitive_body;
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(r.status));
    response_.set(http::field::server, "pinvaultd");
    for (auto& [name, value] : r.headers) response_.set(name, value);
    response_.body() = std::move(r.body);
    const bool keep = keep_alive_ && !r.close && !server_->draining;
    response_.keep_alive(keep);
    response_.prepare_payload();
    Lowest().expires_after(server_->options.request_timeout);
    http::async_write(Self().stream(), response_,
                      [self = this->shared_from_this(), keep](beast::error_code ec, size_t) {
                        self->OnWrite(ec, keep);
                      });
  }

  void OnWrite(beast::error_code ec, bool keep) {
    if (sensitive_) SecureWipe(response_.body());
    response_.body().clear();
    if (counted_) {
      counted_ = false;
      server_->RequestEnded();
    }
    if (ec || !keep) {
      Close();
      return;
    }
    ReadHeader();
  }

  // Close ends the connection gracefully (at most once).
  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    if (counted_) {
      counted_ = false;
      server_->RequestEnded();
    }
    Self().DoClose();
  }

  // ForceClose drops the connection at once.
  void ForceClose() {
    state_ = State::kClosed;
    if (counted_) {
      counted_ = false;
      server_->RequestEnded();
    }
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().socket().close(ignored);
  }

  enum class State { kHandshake, kReadingHeader, kReadingBody, kProcessing, kWriting, kClosed };

  HttpServer::Impl* server_;
  State state_ = State::kHandshake;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<Body>> parser_;
  http::response<Body> response_;
  bool sensitive_ = false;
  bool keep_alive_ = false;
  bool first_request_ = true;
  bool counted_ = false;  // a request was started and not yet ended
  std::unique_ptr<http::response<http::empty_body>> continue_;  // "100 Continue" being sent
  std::string path_;  // of the current request (bounded), for the log
  std::chrono::steady_clock::time_point started_;
};

class PlainSession : public Session<PlainSession> {
 public:
  PlainSession(HttpServer::Impl* server, tcp::socket socket)
      : Session(server), stream_(std::move(socket)) {}

  beast::tcp_stream& stream() { return stream_; }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  // DoClose: half-close, then discard what the client still sends (bounded), then close.
  void DoClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::min(kLingerTime, server_->options.request_timeout));
    Drain();
  }

 private:
  void Drain() {
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                beast::error_code ignored;
                                self->stream_.socket().close(ignored);
                                return;
                              }
                              self->Drain();
                            });
  }

  beast::tcp_stream stream_;
  std::array<char, 1024> discard_{};
};

class TlsSession : public Session<TlsSession> {
 public:
  TlsSession(HttpServer::Impl* server, tcp::socket socket, ssl::context& context)
      : Session(server), stream_(std::move(socket), context) {}

  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->Lowest().expires_after(self->server_->options.request_timeout);
      self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) {
          self->ForceClose();
          return;
        }
        self->ReadHeader();
      });
    });
  }

  void DoClose() {
    Lowest().expires_after(std::min(kLingerTime, server_->options.request_timeout));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      self->Lowest().socket().close(ignored);
    });
  }

 private:
  beast::ssl_stream<beast::tcp_stream> stream_;
};

template <class S>
void Register(HttpServer::Impl* server, const std::shared_ptr<S>& session) {
  std::lock_guard<std::mutex> lock(server->mu);
  server->sessions[session.get()] = session;
}

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (!ec) {
    size_t open = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      open = sessions.size();
    }
    if (draining || open >= options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else if (tls_context) {
      auto session = std::make_shared<TlsSession>(this, std::move(socket), *tls_context);
      Register(this, session);
      session->Start();
    } else {
      auto session = std::make_shared<PlainSession>(this, std::move(socket));
      Register(this, session);
      session->Start();
    }
  }
  Accept();
}

void HttpServer::Impl::RunThread() {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      std::cerr << "pinvaultd: unexpected exception in the I/O loop: " << e.what() << "\n";
    } catch (...) {
      std::cerr << "pinvaultd: unexpected exception in the I/O loop\n";
    }
  }
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(ServerOptions options,
                                                         std::shared_ptr<HttpHandler> handler,
                                                         std::shared_ptr<Metrics> metrics,
                                                         std::shared_ptr<RequestLogger> logger) {
  if (!handler) return InvalidArgumentError("server needs a handler");
  if (options.threads < 1 || options.threads > 256) {
    return InvalidArgumentError("threads must be between 1 and 256");
  }
  if (options.request_timeout.count() <= 0 || options.idle_timeout.count() <= 0) {
    return InvalidArgumentError("timeouts must be positive");
  }
  if (options.max_connections == 0) return InvalidArgumentError("max_connections must be positive");
  if (options.max_header_bytes < 1024) return InvalidArgumentError("max_header_bytes is too small");

  try {
    beast::error_code ec;
    net::ip::address address = net::ip::make_address(options.address, ec);
    if (ec) return InvalidArgumentError("listen address is not an IP address: " + options.address);
    if (!options.tls && !address.is_loopback() && !options.allow_insecure_plain_http) {
      return FailedPreconditionError("refusing plain HTTP on non-loopback address " +
                                     options.address +
                                     "; configure TLS or set allow_insecure_plain_http");
    }

    auto impl = std::make_shared<Impl>(options, std::move(handler), std::move(metrics));
    impl->logger = std::move(logger);
    if (options.tls) {
      for (const auto& file : {options.tls->certificate_chain, options.tls->private_key}) {
        std::error_code fec;
        if (!std::filesystem::exists(file, fec)) {
          return NotFoundError("TLS file not found: " + file.string());
        }
      }
      impl->tls_context.emplace(ssl::context::tls_server);
      ssl::context& ctx = *impl->tls_context;
      ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                      ec);
      ctx.use_certificate_chain_file(options.tls->certificate_chain.string(), ec);
      if (ec) {
        return InvalidArgumentError("cannot load TLS certificate chain " +
                                    options.tls->certificate_chain.string() + ": " + ec.message());
      }
      ctx.use_private_key_file(options.tls->private_key.string(), ssl::context::pem, ec);
      if (ec) {
        return InvalidArgumentError("cannot load TLS private key " +
                                    options.tls->private_key.string() + ": " + ec.message());
      }
    }

    tcp::endpoint endpoint(address, options.port);
    impl->acceptor.open(endpoint.protocol(), ec);
    if (ec) return UnavailableError("cannot open socket: " + ec.message());
    impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
    impl->acceptor.bind(endpoint, ec);
    if (ec) {
      return UnavailableError("cannot bind " + options.address + ":" +
                              std::to_string(options.port) + ": " + ec.message());
    }
    impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return UnavailableError("cannot listen: " + ec.message());
    impl->bound_port = impl->acceptor.local_endpoint(ec).port();
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
  } catch (const std::exception& e) {
    return InternalError(std::string("server setup failed: ") + e.what());
  }
}

HttpServer::~HttpServer() { Shutdown(std::chrono::milliseconds(0)); }

void HttpServer::Start() {
  Impl* impl = impl_.get();
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    if (impl->started || impl->shut_down) return;
    impl->started = true;
  }
  impl->work.emplace(impl->ioc.get_executor());
  net::post(impl->acceptor.get_executor(), [impl] { impl->Accept(); });
  for (int i = 0; i < impl->options.threads; ++i) {
    impl->threads.emplace_back([impl] { impl->RunThread(); });
  }
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

size_t HttpServer::in_flight() const { return impl_->in_flight.load(); }

bool HttpServer::WaitForInFlight(size_t n, std::chrono::milliseconds limit) {
  Impl* impl = impl_.get();
  return impl->WaitUntil(limit, [impl, n] { return impl->in_flight.load() == n; });
}

uint64_t HttpServer::bytes_parsed() const { return impl_->bytes_parsed.load(); }

bool HttpServer::WaitForBytesParsed(uint64_t n, std::chrono::milliseconds limit) {
  Impl* impl = impl_.get();
  return impl->WaitUntil(limit, [impl, n] { return impl->bytes_parsed.load() >= n; });
}

bool HttpServer::Shutdown(std::chrono::milliseconds drain) {
  Impl* impl = impl_.get();
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    if (impl->shut_down) return impl->in_flight == 0;
    impl->shut_down = true;
  }
  impl->draining = true;
  net::post(impl->acceptor.get_executor(), [impl] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<SessionBase>> open;
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    for (auto& [ptr, weak] : impl->sessions) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->CloseIfIdle();
  open.clear();

  const bool drained = impl->WaitUntil(drain, [impl] { return impl->in_flight.load() == 0; });
  impl->ioc.stop();
  for (auto& t : impl->threads) {
    if (t.joinable()) t.join();
  }
  impl->threads.clear();
  return drained;
}

}  // namespace pinvault::api
