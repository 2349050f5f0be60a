// Shared pieces of the HTTP server tests: a blocking HTTP/1.1 test client, a RealmService
// wrapper that counts and can park requests, and a fixture that runs a real server on
// port 0 with real JWT validation (tenant "acme", HS256) in front of an in-memory realm.
#ifndef PINVAULT_TESTS_TESTING_SERVER_TEST_FIXTURE_H_
#define PINVAULT_TESTS_TESTING_SERVER_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/auth/authenticator.h"
#include "api/auth/tenant_keys.h"
#include "api/client/jwt_mint.h"
#include "api/server/metrics.h"
#include "api/server/rate_limiter.h"
#include "api/server/realm_assembly.h"
#include "api/server/request_log.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "tests/testing/in_memory_realm.h"
#include "vault/bytes.h"

namespace pinvault::api::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// TestResponse: what the client got back.
struct TestResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  Bytes body;
  bool keep_alive = false;

  std::string text() const { return std::string(body.begin(), body.end()); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// TestClient: one keep-alive connection, blocking, with a receive timeout.
class TestClient {
 public:
  explicit TestClient(uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  // Send writes one request and reads its response. A connection error fails the test and
  // returns status 0.
  TestResponse Send(const std::string& method, const std::string& target,
                    const std::map<std::string, std::string>& headers, const Bytes& body) {
    http::request<http::vector_body<uint8_t>> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    stream_.expires_after(std::chrono::seconds(20));
    http::write(stream_, req, ec);
    if (ec) {
      ADD_FAILURE() << "write failed: " << ec.message();
      return {};
    }
    return Read();
  }

  TestResponse Read() {
    beast::error_code ec;
    http::response<http::vector_body<uint8_t>> res;
    stream_.expires_after(std::chrono::seconds(20));
    http::read(stream_, buffer_, res, ec);
    if (ec) {
      ADD_FAILURE() << "read failed: " << ec.message();
      return {};
    }
    TestResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string().data(), field.name_string().size());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(field.value().data(), field.value().size());
    }
    out.body = std::move(res.body());
    out.keep_alive = res.keep_alive();
    return out;
  }

  // WriteRaw sends bytes as they are (for malformed HTTP and slow clients).
  void WriteRaw(const std::string& bytes) {
    beast::error_code ec;
    net::write(stream_.socket(), net::buffer(bytes), ec);
    ASSERT_FALSE(ec) << ec.message();
  }

  // WaitForClose reads until the server closes the connection (true) or `limit` passes
  // (false). Bytes the server sent before closing are appended to `received`.
  bool WaitForClose(std::chrono::seconds limit, std::string* received = nullptr) {
    stream_.expires_after(limit);
    std::array<char, 512> buf{};
    for (;;) {
      beast::error_code ec;
      size_t n = stream_.read_some(net::buffer(buf), ec);
      if (received != nullptr) received->append(buf.data(), n);
      if (ec == beast::error::timeout) return false;
      if (ec) return true;  // eof or reset: closed by the server
    }
  }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

// CountingRealm forwards to an InMemoryRealm, counting Submit calls. With SetHold(true),
// requests are parked until Release(); with SetAsync(true), each is answered on a new
// thread (as a realm with its own workers would).
class CountingRealm : public vault::RealmService {
 public:
  explicit CountingRealm(protocol::RealmId id)
      : inner_(std::make_shared<testing::InMemoryRealm>(id)) {}

  void Submit(vault::RequestContext context, protocol::SecretsRequest request,
              vault::ResponseCallback done) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++submits_;
    if (hold_) {
      held_.push_back(Held{std::move(context), std::move(request), std::move(done)});
      cv_.notify_all();
      return;
    }
    bool async = async_;
    lock.unlock();
    if (async) {
      auto inner = inner_;
      auto held =
          std::make_shared<Held>(Held{std::move(context), std::move(request), std::move(done)});
      std::thread([inner, held] {
        inner->Submit(std::move(held->context), std::move(held->request), std::move(held->done));
      }).detach();
      return;
    }
    inner_->Submit(std::move(context), std::move(request), std::move(done));
  }

  Status Ready() const override { return inner_->Ready(); }

  testing::InMemoryRealm& inner() { return *inner_; }

  int submits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return submits_;
  }

  void SetHold(bool hold) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = hold;
  }
  void SetAsync(bool async) {
    std::lock_guard<std::mutex> lock(mu_);
    async_ = async;
  }

  // WaitForHeld blocks until `n` requests are parked (or 20 s pass).
  bool WaitForHeld(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return held_.size() >= n; });
  }

  // Release answers the parked requests now, on this thread.
  void Release() {
    std::deque<Held> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_);
    }
    for (auto& h : held)
      inner_->Submit(std::move(h.context), std::move(h.request), std::move(h.done));
  }

 private:
  struct Held {
    vault::RequestContext context;
    protocol::SecretsRequest request;
    vault::ResponseCallback done;
  };

  std::shared_ptr<testing::InMemoryRealm> inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int submits_ = 0;        // guarded by mu_
  bool hold_ = false;      // guarded by mu_
  bool async_ = false;     // guarded by mu_
  std::deque<Held> held_;  // guarded by mu_
};

inline protocol::RealmId RealmIdFromHex(const std::string& hex) {
  protocol::RealmId id{};
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok() && bytes->size() == id.size()) << hex;
  if (bytes.ok() && bytes->size() == id.size()) std::copy(bytes->begin(), bytes->end(), id.begin());
  return id;
}

inline Bytes HexBytes(const std::string& hex) {
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << hex;
  return bytes.ok() ? *bytes : Bytes();
}

inline nlohmann::json LoadCase(const std::string& name) {
  std::ifstream in(std::filesystem::path(PINVAULT_TEST_DATA) / "juicebox" / name);
  EXPECT_TRUE(in.good()) << name;
  return nlohmann::json::parse(in);
}

// ServerFixture: a real server on 127.0.0.1:0 in front of a CountingRealm.
//
// Auth: tenant "acme" has an HS256 key (version 1) for minted tokens and, when `sdk_keys`
// is set, the Ed25519 public key the transcripts' tokens were signed with (version 1 of
// the transcripts is acme:1 as well, so then only the Ed25519 key is registered). The
// clock is fixed at `now` so the transcripts' tokens are valid.
class ServerFixture : public ::testing::Test {
 protected:
  static constexpr char kRealmHex[] = "0102030405060708090a0b0c0d0e0f10";

  struct Setup {
    bool sdk_keys = false;
    int64_t now = 0;  // 0: the system clock
    std::optional<RateLimiterConfig> rate_limits;
    std::chrono::milliseconds request_timeout{5000};
    std::chrono::milliseconds idle_timeout{10000};
    JuiceboxVersion min_version{0, 3};
    size_t max_connections = 64;
  };

  void StartServer(Setup setup) {
    realm_id_ = RealmIdFromHex(kRealmHex);
    realm_ = std::make_shared<CountingRealm>(realm_id_);
    keys_ = std::make_shared<TenantKeyStore>();
    if (setup.sdk_keys) {
      nlohmann::json c = LoadCase("case1_fastinsecure_1realm.json");
      auto key = TenantKey::FromDer(
          JwtAlgorithm::kEdDsa,
          HexBytes(c["auth"]["generator"]["public_key_spki_der_hex"].get<std::string>()));
      ASSERT_TRUE(key.ok()) << key.status();
      ASSERT_TRUE(keys_->Add("acme", 1, *key).ok());
    } else {
      auto key =
          TenantKey::FromHmacSecret(SecretBytes::CopyFrom(AsBytes("test hs256 secret for acme")));
      ASSERT_TRUE(key.ok()) << key.status();
      hs256_key_ = *key;
      ASSERT_TRUE(keys_->Add("acme", 1, *key).ok());
    }
    now_ = setup.now;
    UnixSecondsClock clock = nullptr;
    if (setup.now != 0) {
      int64_t fixed = setup.now;
      clock = [fixed] { return fixed; };
    }
    auto authenticator = std::make_shared<Authenticator>(keys_, clock, JwtValidator::Options());
    metrics_ = std::make_shared<Metrics>();
    log_stream_ = std::make_shared<std::ostringstream>();
    logger_ = std::make_shared<RequestLogger>(log_stream_.get());
    if (setup.rate_limits) {
      limiter_ = std::make_shared<RateLimiter>(
          *setup.rate_limits, [this] { return std::chrono::nanoseconds(fake_monotonic_.load()); });
    }
    RouterOptions options;
    options.realm_id = realm_id_;
    options.min_juicebox_version = setup.min_version;
    RouterDeps deps{realm_, std::make_shared<JwtCallerAuthenticator>(authenticator), limiter_,
                    metrics_, logger_};
    ServerOptions server_options;
    server_options.address = "127.0.0.1";
    server_options.port = 0;
    server_options.threads = 2;
    server_options.request_timeout = setup.request_timeout;
    server_options.idle_timeout = setup.idle_timeout;
    server_options.max_connections = setup.max_connections;
    auto server = StartHttpFrontend(options, server_options, std::move(deps));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(5));
    server_.reset();
  }

  // Token mints an HS256 token for `user` (valid now, for this realm unless `realm_hex`).
  std::string Token(const std::string& user, const std::string& realm_hex = kRealmHex,
                    int64_t issued_at = 0, int64_t lifetime = 600) {
    JwtMintRequest request;
    request.tenant = "acme";
    request.version = 1;
    request.user = user;
    request.realm_id_hex = realm_hex;
    request.issued_at = issued_at != 0 ? issued_at
                                       : std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count();
    request.lifetime_seconds = lifetime;
    auto token = MintJwt(*hs256_key_, request);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : "";
  }

  // JuiceboxHeaders: what the SDK sends with a bearer token.
  static std::map<std::string, std::string> JuiceboxHeaders(const std::string& token,
                                                            const std::string& version = "0.3.7") {
    std::map<std::string, std::string> h;
    if (!token.empty()) h["Authorization"] = "Bearer " + token;
    if (!version.empty()) h["X-Juicebox-Version"] = version;
    return h;
  }

  vault::RequestContext Context(const std::string& user) const { return {"acme", user}; }

  protocol::RealmId realm_id_{};
  std::shared_ptr<CountingRealm> realm_;
  std::shared_ptr<TenantKeyStore> keys_;
  std::optional<TenantKey> hs256_key_;
  std::shared_ptr<Metrics> metrics_;
  std::shared_ptr<std::ostringstream> log_stream_;
  std::shared_ptr<RequestLogger> logger_;
  std::shared_ptr<RateLimiter> limiter_;
  std::atomic<int64_t> fake_monotonic_{1'000'000'000};
  int64_t now_ = 0;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pinvault::api::test

#endif  // PINVAULT_TESTS_TESTING_SERVER_TEST_FIXTURE_H_
