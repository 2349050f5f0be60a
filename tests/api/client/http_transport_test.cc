// Tests for HttpTransport: URL joining, the request it sends, the SDK's status mapping,
// timeouts, keep-alive reuse, TLS verification and shutdown. The realm side is a small
// scripted Beast server in this file (plain or TLS, 127.0.0.1, port 0), so every status and
// body can be forced.
#include "api/client/http_transport.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/codec/cbor_codec.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::StatusIs;
using ::testing::Not;

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using backup::TransportError;
using backup::TransportErrorKind;
using backup::TransportResult;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------
// URL joining.

std::string Joined(std::string_view base) {
  StatusOr<HttpUrl> url = ResolveRelativePath(base, "req");
  EXPECT_OK(url) << base << ": " << url.status();
  return url.ok() ? url->ToString() : std::string();
}

TEST(ResolveRelativePathTest, JoinsReqLikeTheSdk) {
  EXPECT_EQ(Joined("http://h:8080/"), "http://h:8080/req");
  EXPECT_EQ(Joined("https://h/base/"), "https://h/base/req");
  EXPECT_EQ(Joined("https://h/base"), "https://h/req");
  EXPECT_EQ(Joined("https://h"), "https://h/req");
  EXPECT_EQ(Joined("http://h:8080"), "http://h:8080/req");
  EXPECT_EQ(Joined("https://h/a/b/c"), "https://h/a/b/req");
  EXPECT_EQ(Joined("https://h/a/b?x=1#frag"), "https://h/a/req");
  EXPECT_EQ(Joined("https://h/a/./b/../"), "https://h/a/req");
  EXPECT_EQ(Joined("https://h/a/../../"), "https://h/req");
  EXPECT_EQ(Joined("HTTPS://Realm.Example:443/x/"), "https://realm.example/x/req");
  EXPECT_EQ(Joined("http://[::1]:9000/"), "http://[::1]:9000/req");
}

TEST(ResolveRelativePathTest, SplitsHostPortAndTarget) {
  StatusOr<HttpUrl> url = ResolveRelativePath("https://realm.example:8443/base/", "req");
  ASSERT_OK(url);
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "realm.example");
  EXPECT_EQ(url->port, 8443);
  EXPECT_EQ(url->target, "/base/req");

  url = ResolveRelativePath("http://10.0.0.1", "req");
  ASSERT_OK(url);
  EXPECT_FALSE(url->tls);
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->target, "/req");

  url = ResolveRelativePath("http://[fe80::1]/", "req");
  ASSERT_OK(url);
  EXPECT_EQ(url->host, "fe80::1");
}

TEST(ResolveRelativePathTest, RejectsBadBasesAndReferences) {
  for (std::string_view bad : {"", "realm.example/", "ftp://h/", "https://user:pw@h/", "https:///x",
                               "http://h:0/", "http://h:70000/", "http://h:12ab/", "http://h :80/",
                               "http://h/a b", "http://[::1/", "http://[::1]x/", "http://h/\x01"}) {
    StatusOr<HttpUrl> url = ResolveRelativePath(bad, "req");
    EXPECT_THAT(url, Not(IsOk())) << "accepted " << bad;
    if (!url.ok()) {
      EXPECT_THAT(url, StatusIs(StatusCode::kInvalidArgument));
    }
  }
  for (std::string_view bad : {"", "/req", "x:req", "req?x", "req#y", "r eq"}) {
    EXPECT_THAT(ResolveRelativePath("https://h/", bad), Not(IsOk()))
        << "accepted reference " << bad;
  }
}

// ---------------------------------------------------------------------------------------
// Certificates for the TLS tests: a CA and a leaf it signs.

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509Ptr MakeCert(EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key,
                 const char* subject_alt_names, long serial) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (issuer == nullptr) {
    AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    AddExtension(cert.get(), signer, NID_subject_alt_name, subject_alt_names);
  }
  EXPECT_GT(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()), 0);
  return cert;
}

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

// TestPki: a CA certificate (written to a file for HttpTransportOptions::ca_file) and a
// server certificate for `subject_alt_names`.
struct TestPki {
  std::string ca_file;
  std::string server_cert_pem;
  std::string server_key_pem;
};

TestPki MakePki(const std::filesystem::path& dir, const char* subject_alt_names) {
  PkeyPtr ca_key(EVP_EC_gen("P-256"));
  PkeyPtr leaf_key(EVP_EC_gen("P-256"));
  X509Ptr ca = MakeCert(ca_key.get(), "pinvault test CA", nullptr, nullptr, nullptr, 1);
  X509Ptr leaf =
      MakeCert(leaf_key.get(), "pinvault test realm", ca.get(), ca_key.get(), subject_alt_names, 2);
  TestPki pki;
  pki.ca_file = (dir / "ca.pem").string();
  std::ofstream(pki.ca_file) << ToPem(ca.get());
  pki.server_cert_pem = ToPem(leaf.get());
  pki.server_key_pem = ToPem(leaf_key.get());
  return pki;
}

// ---------------------------------------------------------------------------------------
// The scripted realm.

struct Recorded {
  std::string method;
  std::string target;
  std::string authorization;
  std::string juicebox_version;
  bool has_content_type = false;
  std::string body;
};

struct Reply {
  unsigned status = 200;
  std::string body;
  bool close_after = false;            // send Connection: close and close
  bool drop_after = false;             // advertise keep-alive, then close anyway
  std::chrono::milliseconds delay{0};  // before answering
};

std::string ResponseBody(const protocol::SecretsResponse& response) {
  StatusOr<Bytes> body = EncodeResponseCbor(response);
  EXPECT_OK(body);
  return body.ok() ? std::string(body->begin(), body->end()) : std::string();
}

// ScriptedServer answers every request with handler(request). Runs its own I/O thread.
class ScriptedServer {
 public:
  using Handler = std::function<Reply(const Recorded&)>;

  explicit ScriptedServer(Handler handler, const TestPki* pki = nullptr)
      : handler_(std::move(handler)), tls_context_(ssl::context::tls_server) {
    if (pki != nullptr) {
      tls_ = true;
      tls_context_.use_certificate_chain(net::buffer(pki->server_cert_pem));
      tls_context_.use_private_key(net::buffer(pki->server_key_pem), ssl::context::pem);
    }
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    net::co_spawn(io_, Accept(), net::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~ScriptedServer() {
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string address() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + "/";
  }

  std::vector<Recorded> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int connections() const { return connections_.load(); }

  // WaitForRequests blocks until the server has received `n` requests.
  void WaitForRequests(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return requests_.size() >= n; });
  }

  // WaitForClosedConnections blocks until the server has closed `n` connections.
  void WaitForClosedConnections(int n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return closed_ >= n; });
  }

 private:
  net::awaitable<void> Accept() {
    while (true) {
      tcp::socket socket = co_await acceptor_.async_accept(net::use_awaitable);
      connections_.fetch_add(1);
      if (tls_) {
        net::co_spawn(io_, ServeTls(std::move(socket)), net::detached);
      } else {
        net::co_spawn(io_, Serve(std::move(socket)), net::detached);
      }
    }
  }

  net::awaitable<void> ServeTls(tcp::socket socket) {
    ssl::stream<tcp::socket> stream(std::move(socket), tls_context_);
    try {
      co_await stream.async_handshake(ssl::stream_base::server, net::use_awaitable);
    } catch (const std::exception&) {
      MarkClosed();
      co_return;  // the client rejected our certificate
    }
    co_await Serve(stream);
  }

  net::awaitable<void> Serve(tcp::socket socket) { co_await Serve<tcp::socket>(socket); }

  template <typename Stream>
  net::awaitable<void> Serve(Stream& stream) {
    beast::flat_buffer buffer;
    try {
      while (true) {
        http::request<http::string_body> request;
        co_await http::async_read(stream, buffer, request, net::use_awaitable);
        Recorded recorded;
        recorded.method = std::string(request.method_string());
        recorded.target = std::string(request.target());
        recorded.authorization = std::string(request[http::field::authorization]);
        recorded.juicebox_version = std::string(request["X-Juicebox-Version"]);
        recorded.has_content_type = request.count(http::field::content_type) != 0;
        recorded.body = request.body();
        {
          std::lock_guard lock(mu_);
          requests_.push_back(recorded);
          cv_.notify_all();
        }
        Reply reply = handler_(recorded);
        if (reply.delay.count() > 0) {
          net::steady_timer timer(co_await net::this_coro::executor, reply.delay);
          co_await timer.async_wait(net::use_awaitable);
        }
        http::response<http::string_body> response(static_cast<http::status>(reply.status), 11);
        response.body() = reply.body;
        response.keep_alive(!reply.close_after);
        response.prepare_payload();
        co_await http::async_write(stream, response, net::use_awaitable);
        if (reply.close_after || reply.drop_after) break;
      }
    } catch (const std::exception&) {
    }
    beast::get_lowest_layer(stream).close();
    MarkClosed();
  }

  void MarkClosed() {
    std::lock_guard lock(mu_);
    ++closed_;
    cv_.notify_all();
  }

  Handler handler_;
  net::io_context io_;
  tcp::acceptor acceptor_{io_};
  ssl::context tls_context_;
  bool tls_ = false;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Recorded> requests_;
  int closed_ = 0;
};

// ---------------------------------------------------------------------------------------
// Helpers on the client side.

backup::RealmEndpoint RealmAt(std::string address) {
  backup::RealmEndpoint realm;
  realm.id.fill(0x42);
  realm.address = std::move(address);
  return realm;
}

protocol::Recover1Response Recover1Ok(uint8_t fill) {
  protocol::Recover1Response r;
  r.status = protocol::Recover1Response::Status::kOk;
  r.version.fill(fill);
  return r;
}

// MakeTransport creates a transport with `options`; callers ASSERT_OK_AND_ASSIGN it.
StatusOr<std::unique_ptr<HttpTransport>> MakeTransport(HttpTransportOptions options = {}) {
  return HttpTransport::Create(std::move(options));
}

// SendAndWait sends one request and waits (bounded) for its result.
TransportResult SendAndWait(HttpTransport& transport, const backup::RealmEndpoint& realm,
                            protocol::SecretsRequest request = protocol::Recover1Request{},
                            const std::string& token = "test-token") {
  auto promise = std::make_shared<std::promise<TransportResult>>();
  std::future<TransportResult> future = promise->get_future();
  transport.Send(realm, token, std::move(request),
                 [promise](TransportResult result) { promise->set_value(std::move(result)); });
  if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "no callback within 30 s";
    return TransportError{TransportErrorKind::kTransient, "test: no callback"};
  }
  return future.get();
}

const TransportError* AsError(const TransportResult& result) {
  return std::get_if<TransportError>(&result);
}

// ---------------------------------------------------------------------------------------

TEST(HttpTransportTest, SendsTheSdkRequestShape) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(protocol::Recover1Response{})};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  protocol::Recover3Request recover3;
  recover3.version.fill(7);
  recover3.unlock_key_tag.fill(9);
  TransportResult result =
      SendAndWait(*transport, RealmAt(server.address()), recover3, "eyJ.token.sig");
  ASSERT_EQ(AsError(result), nullptr) << AsError(result)->detail;

  std::vector<Recorded> seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/req");
  EXPECT_EQ(seen[0].authorization, "Bearer eyJ.token.sig");
  EXPECT_EQ(seen[0].juicebox_version, "0.3.7");
  EXPECT_FALSE(seen[0].has_content_type);  // the SDK sends none either
  StatusOr<Bytes> expected = EncodeRequestCbor(protocol::Recover3Request{recover3});
  ASSERT_OK(expected);
  EXPECT_EQ(seen[0].body, std::string(expected->begin(), expected->end()));
}

TEST(HttpTransportTest, JoinsReqOntoABasePath) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(protocol::DeleteResponse{})};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(base + "/realm/a/"))), nullptr);
  ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(base + "/realm/a"))), nullptr);
  ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(base))), nullptr);
  std::vector<Recorded> seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].target, "/realm/a/req");
  EXPECT_EQ(seen[1].target, "/realm/req");
  EXPECT_EQ(seen[2].target, "/req");
}

TEST(HttpTransportTest, DeliversA2xxResponse) {
  ScriptedServer server([](const Recorded&) { return Reply{200, ResponseBody(Recover1Ok(0x5a))}; });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
  auto* response = std::get_if<protocol::SecretsResponse>(&result);
  ASSERT_NE(response, nullptr) << AsError(result)->detail;
  auto* recover1 = std::get_if<protocol::Recover1Response>(response);
  ASSERT_NE(recover1, nullptr);
  EXPECT_EQ(recover1->status, protocol::Recover1Response::Status::kOk);
  EXPECT_EQ(recover1->version, Recover1Ok(0x5a).version);
}

struct StatusCase {
  unsigned status;
  TransportErrorKind kind;
};

TEST(HttpTransportTest, MapsErrorStatusesAsTheSdkDoes) {
  const StatusCase cases[] = {
      {401, TransportErrorKind::kInvalidAuth}, {426, TransportErrorKind::kUpgradeRequired},
      {429, TransportErrorKind::kRateLimited}, {500, TransportErrorKind::kTransient},
      {503, TransportErrorKind::kTransient},   {400, TransportErrorKind::kTransient},
      {404, TransportErrorKind::kTransient},   {413, TransportErrorKind::kTransient},
      {403, TransportErrorKind::kTransient},   {302, TransportErrorKind::kTransient},
  };
  std::atomic<unsigned> next_status{0};
  ScriptedServer server([&](const Recorded&) {
    return Reply{next_status.load(), "error: details for people\n"};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  for (const StatusCase& c : cases) {
    next_status = c.status;
    TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
    const TransportError* error = AsError(result);
    ASSERT_NE(error, nullptr) << c.status;
    EXPECT_EQ(error->kind, c.kind) << "HTTP " << c.status << ": " << error->detail;
    EXPECT_THAT(error->detail, HasSubstr("HTTP " + std::to_string(c.status)));
    EXPECT_THAT(error->detail, HasSubstr("error: details for people"));
    EXPECT_THAT(error->detail, ::testing::Not(HasSubstr("test-token")));
  }
}

TEST(HttpTransportTest, A2xxWithAnUndecodableBodyIsMalformed) {
  std::atomic<int> which{0};
  ScriptedServer server([&](const Recorded&) {
    switch (which.load()) {
      case 0:
        return Reply{200, "this is not CBOR"};
      case 1:
        return Reply{200, ""};
      case 2:
        return Reply{204, ""};
      default: {
        std::string truncated = ResponseBody(Recover1Ok(1));
        truncated.pop_back();
        return Reply{200, truncated};
      }
    }
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  for (int i = 0; i < 4; ++i) {
    which = i;
    TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
    const TransportError* error = AsError(result);
    ASSERT_NE(error, nullptr) << i;
    EXPECT_EQ(error->kind, TransportErrorKind::kMalformedResponse) << i << ": " << error->detail;
  }
}

TEST(HttpTransportTest, ANon2xxCarryingAResponseIsTheResponse) {
  std::atomic<unsigned> status{500};
  ScriptedServer server([&](const Recorded&) {
    return Reply{status.load(), ResponseBody(Recover1Ok(3))};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  for (unsigned s : {500u, 401u, 429u, 404u}) {
    status = s;
    TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
    auto* response = std::get_if<protocol::SecretsResponse>(&result);
    ASSERT_NE(response, nullptr) << s << ": " << AsError(result)->detail;
    EXPECT_TRUE(std::holds_alternative<protocol::Recover1Response>(*response));
  }
}

TEST(HttpTransportTest, OversizedAnswersAreNotRead) {
  std::atomic<unsigned> status{200};
  ScriptedServer server([&](const Recorded&) {
    return Reply{status.load(), std::string(4096, 'x')};
  });
  HttpTransportOptions options;
  options.max_response_body = 1024;
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kMalformedResponse);
  status = 429;
  result = SendAndWait(*transport, RealmAt(server.address()));
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kRateLimited);
}

TEST(HttpTransportTest, ASlowRealmTimesOutAsTransient) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(Recover1Ok(1)), false, false, std::chrono::seconds(20)};
  });
  HttpTransportOptions options;
  options.request_timeout = std::chrono::milliseconds(200);
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
  const TransportError* error = AsError(result);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->kind, TransportErrorKind::kTransient);
  EXPECT_THAT(error->detail, HasSubstr("within 200 ms"));
  EXPECT_THAT(error->detail, HasSubstr("reading the answer"));
}

TEST(HttpTransportTest, ARefusedConnectionIsTransient) {
  uint16_t port;
  {
    net::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }  // closed: nothing listens there now
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  TransportResult result =
      SendAndWait(*transport, RealmAt("http://127.0.0.1:" + std::to_string(port) + "/"));
  const TransportError* error = AsError(result);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->kind, TransportErrorKind::kTransient);
  EXPECT_THAT(error->detail, HasSubstr("connecting"));
}

TEST(HttpTransportTest, BadAddressesAndTokensFailWithoutSending) {
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  TransportResult result = SendAndWait(*transport, RealmAt("ftp://realm.example/"));
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kTransient);
  EXPECT_THAT(AsError(result)->detail, HasSubstr("bad realm address"));

  ScriptedServer server([](const Recorded&) { return Reply{200, ResponseBody(Recover1Ok(1))}; });
  result = SendAndWait(*transport, RealmAt(server.address()), protocol::Recover1Request{},
                       "token\r\nX-Injected: 1");
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kInvalidAuth);
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST(HttpTransportTest, ARegister2WithBadShareSizesIsNotSent) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(protocol::Register2Response{})};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  protocol::Register2Request bad;  // empty key shares: not 32 bytes
  TransportResult result = SendAndWait(*transport, RealmAt(server.address()), std::move(bad));
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kMalformedResponse);
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST(HttpTransportTest, ReusesKeptAliveConnections) {
  ScriptedServer server([](const Recorded&) { return Reply{200, ResponseBody(Recover1Ok(1))}; });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(server.address()))), nullptr);
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(transport->stats().connections_opened, 1u);
  EXPECT_EQ(transport->stats().connections_reused, 4u);
}

TEST(HttpTransportTest, DoesNotReuseWhenTheServerSaysClose) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(Recover1Ok(1)), /*close_after=*/true};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(server.address()))), nullptr);
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(transport->stats().connections_reused, 0u);
}

TEST(HttpTransportTest, ReplacesAKeptAliveConnectionTheServerClosed) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(Recover1Ok(1)), false, /*drop_after=*/true};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(server.address()))), nullptr);
  server.WaitForClosedConnections(1);
  TransportResult second = SendAndWait(*transport, RealmAt(server.address()));
  ASSERT_EQ(AsError(second), nullptr) << AsError(second)->detail;
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests().size(), 2u);  // the second request was sent exactly once
}

TEST(HttpTransportTest, NoReuseWhenDisabled) {
  ScriptedServer server([](const Recorded&) { return Reply{200, ResponseBody(Recover1Ok(1))}; });
  HttpTransportOptions options;
  options.max_idle_per_host = 0;
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(AsError(SendAndWait(*transport, RealmAt(server.address()))), nullptr);
  }
  EXPECT_EQ(transport->stats().connections_opened, 3u);
}

TEST(HttpTransportTest, ManyConcurrentRequestsAllComplete) {
  ScriptedServer server([](const Recorded& r) {
    // Echo the token's number back in the version so answers can be matched to requests.
    uint8_t n = static_cast<uint8_t>(std::stoi(r.authorization.substr(7)));
    return Reply{200, ResponseBody(Recover1Ok(n)), false, false, std::chrono::milliseconds(5)};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  constexpr int kRequests = 24;
  std::vector<std::future<TransportResult>> futures;
  for (int i = 0; i < kRequests; ++i) {
    auto promise = std::make_shared<std::promise<TransportResult>>();
    futures.push_back(promise->get_future());
    transport->Send(RealmAt(server.address()), std::to_string(i), protocol::Recover1Request{},
                    [promise](TransportResult r) { promise->set_value(std::move(r)); });
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(futures[i].wait_for(std::chrono::seconds(30)), std::future_status::ready);
    TransportResult result = futures[i].get();
    auto* response = std::get_if<protocol::SecretsResponse>(&result);
    ASSERT_NE(response, nullptr) << AsError(result)->detail;
    EXPECT_EQ(std::get<protocol::Recover1Response>(*response).version, Recover1Ok(i).version);
  }
}

TEST(HttpTransportTest, DestroyingFailsRequestsInFlight) {
  ScriptedServer server([](const Recorded&) {
    return Reply{200, ResponseBody(Recover1Ok(1)), false, false, std::chrono::seconds(20)};
  });
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport());
  std::promise<TransportResult> promise;
  std::future<TransportResult> future = promise.get_future();
  transport->Send(RealmAt(server.address()), "t", protocol::Recover1Request{},
                  [&](TransportResult r) { promise.set_value(std::move(r)); });
  // Wait until the request has reached the server, then destroy the transport.
  server.WaitForRequests(1);
  ASSERT_EQ(server.requests().size(), 1u);
  transport.reset();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  TransportResult result = future.get();
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kTransient);
  EXPECT_THAT(AsError(result)->detail, HasSubstr("shut down"));
}

TEST(HttpTransportTest, MayBeDestroyedFromItsOwnCallback) {
  ScriptedServer server([](const Recorded&) { return Reply{200, ResponseBody(Recover1Ok(1))}; });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpTransport> transport, MakeTransport());
  std::promise<bool> destroyed;
  transport->Send(RealmAt(server.address()), "t", protocol::Recover1Request{},
                  [&](TransportResult r) {
                    bool ok = std::holds_alternative<protocol::SecretsResponse>(r);
                    transport.reset();
                    destroyed.set_value(ok);
                  });
  std::future<bool> future = destroyed.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(future.get());
  EXPECT_EQ(transport, nullptr);
}

TEST(HttpTransportTest, CreateRejectsBadOptions) {
  HttpTransportOptions options;
  options.request_timeout = std::chrono::milliseconds(0);
  EXPECT_THAT(HttpTransport::Create(options), StatusIs(StatusCode::kInvalidArgument));
  options = HttpTransportOptions();
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(HttpTransport::Create(options), StatusIs(StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------------------
// TLS.

class HttpTransportTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pinvault_tls_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(HttpTransportTlsTest, VerifiesTheRealmAgainstTheGivenCa) {
  TestPki pki = MakePki(dir_, "IP:127.0.0.1,DNS:localhost");
  ScriptedServer server(
      [](const Recorded&) {
        return Reply{200, ResponseBody(Recover1Ok(4))};
      },
      &pki);
  HttpTransportOptions options;
  options.ca_file = pki.ca_file;
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  std::string port = std::to_string(server.port());
  for (std::string address :
       {"https://127.0.0.1:" + port + "/", "https://localhost:" + port + "/"}) {
    TransportResult result = SendAndWait(*transport, RealmAt(address));
    ASSERT_EQ(AsError(result), nullptr) << address << ": " << AsError(result)->detail;
  }
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0].authorization, "Bearer test-token");
}

TEST_F(HttpTransportTlsTest, RejectsAnUntrustedCertificate) {
  TestPki pki = MakePki(dir_, "IP:127.0.0.1");
  ScriptedServer server(
      [](const Recorded&) {
        return Reply{200, ResponseBody(Recover1Ok(4))};
      },
      &pki);
  ASSERT_OK_AND_ASSIGN(auto transport,
                       MakeTransport());  // system trust store: does not know our CA
  TransportResult result = SendAndWait(*transport, RealmAt(server.address()));
  const TransportError* error = AsError(result);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->kind, TransportErrorKind::kTransient);
  EXPECT_THAT(error->detail, HasSubstr("TLS handshake"));
  EXPECT_THAT(error->detail, HasSubstr("certificate verify failed"));
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST_F(HttpTransportTlsTest, RejectsACertificateForAnotherHost) {
  TestPki pki = MakePki(dir_, "DNS:other.example,IP:10.9.8.7");
  ScriptedServer server(
      [](const Recorded&) {
        return Reply{200, ResponseBody(Recover1Ok(4))};
      },
      &pki);
  HttpTransportOptions options;
  options.ca_file = pki.ca_file;
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  for (std::string host : {"127.0.0.1", "localhost"}) {
    TransportResult result = SendAndWait(
        *transport, RealmAt("https://" + host + ":" + std::to_string(server.port()) + "/"));
    const TransportError* error = AsError(result);
    ASSERT_NE(error, nullptr) << host;
    EXPECT_EQ(error->kind, TransportErrorKind::kTransient);
    EXPECT_THAT(error->detail, HasSubstr("certificate verify failed")) << host;
  }
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST_F(HttpTransportTlsTest, PlainHttpToATlsRealmFails) {
  TestPki pki = MakePki(dir_, "IP:127.0.0.1");
  ScriptedServer server(
      [](const Recorded&) {
        return Reply{200, ResponseBody(Recover1Ok(4))};
      },
      &pki);
  HttpTransportOptions options;
  options.request_timeout = std::chrono::milliseconds(2000);
  ASSERT_OK_AND_ASSIGN(auto transport, MakeTransport(options));
  TransportResult result =
      SendAndWait(*transport, RealmAt("http://127.0.0.1:" + std::to_string(server.port()) + "/"));
  ASSERT_NE(AsError(result), nullptr);
  EXPECT_EQ(AsError(result)->kind, TransportErrorKind::kTransient);
}

}  // namespace
}  // namespace pinvault::api
