// The realm server end to end: a real HttpServer on port 0, real JWT validation, an
// in-memory realm. The Juicebox SDK's exact requests (bytes and headers, from the recorded
// transcripts) get the responses the recorded realm gave.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

#include "api/codec/cbor_codec.h"
#include "api/codec/proto_codec.h"
#include "tests/testing/server_test_fixture.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api::test {
namespace {

using nlohmann::json;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class ServerTest : public ServerFixture {};

// The http_log entries of case 1, in the order the SDK sent them.
std::vector<json> Case1Exchanges(const json& c) {
  std::vector<json> out;
  for (const char* section :
       {"recover_wrong_pin", "recover_correct_pin", "delete", "recover_after_delete"}) {
    for (const json& e : c[section]["http_log"]) out.push_back(e);
  }
  std::vector<json> all;
  for (const json& e : c["http_log_register"]) all.push_back(e);
  all.insert(all.end(), out.begin(), out.end());
  return all;
}

TEST_F(ServerTest, SdkTranscriptReplaysWithRecordedResponses) {
  json c = LoadCase("case1_fastinsecure_1realm.json");
  // The transcripts' tokens were issued at iat and live 600 s.
  StartServer({.sdk_keys = true,
               .now = c["auth"]["sample_token_decoded"]["payload"]["iat"].get<int64_t>() + 1});
  TestClient client(server_->port());
  int exchanges = 0;
  for (const json& e : Case1Exchanges(c)) {
    SCOPED_TRACE(e["request_decoded"].dump().substr(0, 40));
    std::map<std::string, std::string> headers;
    // Exactly the headers the SDK sent, except transport ones the client sets itself.
    for (const auto& [name, value] : e["headers"].items()) {
      if (name == "host" || name == "content-length" || name == "connection") continue;
      headers[name] = value.get<std::string>();
    }
    TestResponse r = client.Send(e["method"], e["path"], headers,
                                 HexBytes(e["request_cbor_hex"].get<std::string>()));
    ASSERT_EQ(r.status, 200) << r.text();
    EXPECT_EQ(r.header("content-type"), "application/octet-stream");
    EXPECT_EQ(r.header("access-control-allow-origin"), "*");
    std::string want = e["response_hex"].get<std::string>();
    auto kind = e["request_decoded"].is_string() ? e["request_decoded"].get<std::string>()
                                                 : e["request_decoded"].begin().key();
    if (kind != "Recover2") {
      EXPECT_EQ(HexEncode(r.body), want);
    } else {
      // The DLEQ proof is randomised; everything else is what the recorded realm answered.
      auto got = DecodeResponseCbor(r.body);
      ASSERT_OK(got);
      auto recorded = DecodeResponseCbor(HexBytes(want));
      ASSERT_OK(recorded);
      const auto& g = std::get<protocol::Recover2Response>(*got);
      const auto& w = std::get<protocol::Recover2Response>(*recorded);
      EXPECT_EQ(r.body.size(), HexBytes(want).size());
      EXPECT_EQ(g.status, w.status);
      EXPECT_EQ(g.oprf_signed_public_key, w.oprf_signed_public_key);
      EXPECT_EQ(g.oprf_blinded_result, w.oprf_blinded_result);
      EXPECT_EQ(g.unlock_key_commitment, w.unlock_key_commitment);
      EXPECT_EQ(g.num_guesses, w.num_guesses);
      EXPECT_EQ(g.guess_count, w.guess_count);
      EXPECT_NE(g.oprf_proof, w.oprf_proof);
    }
    ++exchanges;
  }
  EXPECT_EQ(exchanges, 2 + 2 + 3 + 1 + 1);
  EXPECT_EQ(realm_->submits(), exchanges);
  // Every request was acted on for the token's subject.
  EXPECT_EQ(realm_->inner().State(Context(c["auth"]["secret_id"].get<std::string>())),
            testing::InMemoryRealm::RecordState::kNotRegistered);  // deleted at the end

  // Metrics counted the protocol outcomes and one guess per Recover2 Ok.
  EXPECT_EQ(metrics_->RequestCount("/req", "Recover2", "ok"), 2u);
  EXPECT_EQ(metrics_->RequestCount("/req", "Recover1", "not_registered"), 1u);
  EXPECT_EQ(metrics_->guesses_spent(), 2u);
}

TEST_F(ServerTest, ThreeRealmTranscriptRequestsDecodeOnTheServer) {
  // Case 3's per-realm registrations, sent to a server playing realm 1a..01.
  json c = LoadCase("case3_fastinsecure_3realms_2of3.json");
  StartServer({});
  TestClient client(server_->port());
  for (const json& realm : c["realms"]) {
    std::string user = "case3-" + realm["id"].get<std::string>();
    for (const char* field : {"register1_request_cbor_hex", "register2_request_cbor_hex"}) {
      TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token(user)),
                                   HexBytes(realm[field].get<std::string>()));
      ASSERT_EQ(r.status, 200) << r.text();
    }
    auto version = realm_->inner().RegisteredVersion(Context(user));
    ASSERT_TRUE(version.has_value());
    EXPECT_EQ(HexEncode(*version), realm["register2"]["version"].get<std::string>());
  }
}

// A register/recover/delete flow over the native API in both formats.
TEST_F(ServerTest, NativeApiFlowInBinaryAndJson) {
  json c = LoadCase("case1_fastinsecure_1realm.json");
  StartServer({});
  auto register2 = DecodeRequestCbor(HexBytes(c["realms"][0]["register2_request_cbor_hex"]));
  ASSERT_OK(register2);
  for (ProtoFormat format : {ProtoFormat::kBinary, ProtoFormat::kJson}) {
    const std::string user = format == ProtoFormat::kBinary ? "native-bin" : "native-json";
    std::map<std::string, std::string> headers = {
        {"Authorization", "Bearer " + Token(user)},
        {"Content-Type", std::string(ProtoContentType(format))}};
    TestClient client(server_->port());
    auto send = [&](const protocol::SecretsRequest& request) {
      auto body = EncodeRequestProto(request, format);
      EXPECT_OK(body);
      if (!body.ok()) return protocol::SecretsResponse();
      TestResponse r = client.Send("POST", "/v1/secrets", headers, *body);
      EXPECT_EQ(r.status, 200) << r.text();
      EXPECT_EQ(r.header("content-type"), ProtoContentType(format));
      auto decoded = DecodeResponseProto(r.body, format);
      EXPECT_OK(decoded) << " " << r.text();
      return decoded.ok() ? std::move(*decoded) : protocol::SecretsResponse();
    };
    auto r2 = send(*register2);
    EXPECT_TRUE(std::holds_alternative<protocol::Register2Response>(r2));
    auto r1 = send(protocol::Recover1Request{});
    const auto& recover1 = std::get<protocol::Recover1Response>(r1);
    EXPECT_EQ(recover1.status, protocol::Recover1Response::Status::kOk);
    EXPECT_EQ(HexEncode(recover1.version),
              c["realms"][0]["register2"]["version"].get<std::string>());
    // A Recover3 with the wrong tag spends nothing here but reports the guesses left.
    protocol::Recover3Request bad_tag{recover1.version, {}};
    auto r3 = send(bad_tag);
    const auto& recover3 = std::get<protocol::Recover3Response>(r3);
    EXPECT_EQ(recover3.status, protocol::Recover3Response::Status::kBadUnlockKeyTag);
    auto d = send(protocol::DeleteRequest{});
    EXPECT_TRUE(std::holds_alternative<protocol::DeleteResponse>(d));
    EXPECT_EQ(realm_->inner().State(Context(user)),
              testing::InMemoryRealm::RecordState::kNotRegistered);
  }
}

TEST_F(ServerTest, HealthAndMetrics) {
  StartServer({});
  TestClient client(server_->port());
  TestResponse live = client.Send("GET", "/livez", {}, {});
  EXPECT_EQ(live.status, 200);
  TestResponse ready = client.Send("GET", "/readyz", {}, {});
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.text(), "ready\n");

  const std::string user = "user-with-a-distinctive-id-42";
  TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token(user)),
                               HexBytes("685265636f76657231"));  // Recover1
  ASSERT_EQ(r.status, 200);

  TestResponse metrics = client.Send("GET", "/metrics", {}, {});
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.header("content-type"), HasSubstr("text/plain; version=0.0.4"));
  std::string text = metrics.text();
  EXPECT_THAT(text, HasSubstr("pinvault_requests_total{endpoint=\"/"
                              "req\",operation=\"Recover1\",outcome=\"not_registered\"} 1"));
  EXPECT_THAT(text, HasSubstr("pinvault_request_duration_seconds_bucket{endpoint=\"/req\","
                              "operation=\"Recover1\",le=\"+Inf\"} 1"));
  EXPECT_THAT(text, HasSubstr("pinvault_http_responses_total{code=\"200\"}"));
  EXPECT_THAT(text, HasSubstr("pinvault_guesses_spent_total 0"));
  EXPECT_THAT(text, HasSubstr("pinvault_records_destroyed_total{reason=\"guesses_exhausted\"} 0"));
  EXPECT_THAT(text, HasSubstr("pinvault_ready 1"));
  EXPECT_THAT(text, HasSubstr("pinvault_http_connections 1"));
  // Only the /metrics request itself is in flight; the earlier ones were counted out.
  EXPECT_THAT(text, HasSubstr("pinvault_http_requests_in_flight 1\n"));
  EXPECT_THAT(text, Not(HasSubstr(user)));
}

TEST_F(ServerTest, OneJsonLogLinePerRequestWithoutSecrets) {
  json c = LoadCase("case1_fastinsecure_1realm.json");
  StartServer({});
  TestClient client(server_->port());
  const std::string user = "log-user-7f3a";
  const std::string token = Token(user);
  const Bytes register2 = HexBytes(c["realms"][0]["register2_request_cbor_hex"]);
  ASSERT_EQ(client.Send("POST", "/req", JuiceboxHeaders(token), register2).status, 200);
  ASSERT_EQ(
      client.Send("POST", "/req", JuiceboxHeaders("forged." + token), HexBytes("6644656c657465"))
          .status,
      401);

  std::vector<json> lines;
  std::istringstream in(log_stream_->str());
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["endpoint"], "/req");
  EXPECT_EQ(lines[0]["operation"], "Register2");
  EXPECT_EQ(lines[0]["outcome"], "ok");
  EXPECT_EQ(lines[0]["status"], 200);
  EXPECT_EQ(lines[0]["tenant"], "acme");
  EXPECT_EQ(lines[0]["record"], logger_->HashRecord("acme", user));
  EXPECT_EQ(lines[0]["record"].get<std::string>().size(), 16u);
  EXPECT_TRUE(lines[0]["latency_ms"].is_number());
  EXPECT_EQ(lines[1]["status"], 401);
  EXPECT_EQ(lines[1]["outcome"], "unauthenticated");
  EXPECT_FALSE(lines[1].contains("tenant"));

  // No user id, token, or key share in the log.
  const std::string log = log_stream_->str();
  EXPECT_THAT(log, Not(HasSubstr(user)));
  EXPECT_THAT(log, Not(HasSubstr(token.substr(token.rfind('.') + 1))));
  EXPECT_THAT(log,
              Not(HasSubstr(c["realms"][0]["register2"]["oprf_private_key"].get<std::string>())));
  // The hash is salted per logger, so another process's logger disagrees.
  RequestLogger other(nullptr);
  EXPECT_NE(other.HashRecord("acme", user), logger_->HashRecord("acme", user));
}

TEST_F(ServerTest, KeepAliveAndRealmAnsweringOnAnotherThread) {
  StartServer({});
  realm_->SetAsync(true);
  TestClient client(server_->port());
  for (int i = 0; i < 20; ++i) {
    TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token("async-user")),
                                 HexBytes("69526567697374657231"));  // Register1
    ASSERT_EQ(r.status, 200);
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(HexEncode(r.body), "a169526567697374657231624f6b");
  }
  EXPECT_EQ(realm_->submits(), 20);
}

TEST_F(ServerTest, BodyArrivingInPiecesIsAssembled) {
  StartServer({});
  TestClient client(server_->port());
  // Each piece is written only after the server has parsed the one before, so the body
  // reaches it in three reads.
  uint64_t sent = server_->bytes_parsed();
  auto write_piece = [&](const std::string& piece) {
    client.WriteRaw(piece);
    sent += piece.size();
  };
  write_piece("POST /req HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + Token("pieces") +
              "\r\nX-Juicebox-Version: 0.3.7\r\nContent-Length: 9\r\n\r\n\x68Rec");
  ASSERT_TRUE(server_->WaitForBytesParsed(sent, std::chrono::seconds(60)));
  write_piece("ov");
  ASSERT_TRUE(server_->WaitForBytesParsed(sent, std::chrono::seconds(60)));
  EXPECT_EQ(server_->bytes_parsed(), sent);  // every byte sent so far, and no more
  write_piece("er1");
  TestResponse r = client.Read();
  EXPECT_EQ(r.status, 200) << r.text();
  EXPECT_EQ(HexEncode(r.body), "a1685265636f766572316d4e6f7452656769737465726564");
}

TEST_F(ServerTest, ShutdownDrainsInFlightRequests) {
  StartServer({});
  realm_->SetHold(true);
  TestClient busy(server_->port());
  TestClient idle(server_->port());
  ASSERT_EQ(idle.Send("GET", "/livez", {}, {}).status, 200);
  busy.WriteRaw("POST /req HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + Token("drain-user") +
                "\r\nX-Juicebox-Version: 0.3.7\r\nContent-Length: 10\r\n\r\n");
  busy.WriteRaw(std::string("\x69Register1", 10));
  ASSERT_TRUE(realm_->WaitForHeld(1));
  // The /livez answer's write completes on the server just after the client has it.
  EXPECT_TRUE(server_->WaitForInFlight(1, std::chrono::seconds(60)));
  EXPECT_EQ(server_->in_flight(), 1u);

  std::atomic<bool> drained{false};
  std::thread shutdown([&] { drained = server_->Shutdown(std::chrono::seconds(20)); });
  // The idle keep-alive connection is closed at once; the busy one waits for its answer.
  EXPECT_TRUE(idle.WaitForClose(std::chrono::seconds(10)));
  realm_->Release();
  TestResponse r = busy.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.keep_alive);  // draining: the connection closes after the answer
  EXPECT_EQ(HexEncode(r.body), "a169526567697374657231624f6b");
  shutdown.join();
  EXPECT_TRUE(drained);
  // No longer accepting.
  beast::error_code ec;
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()), ec);
  EXPECT_TRUE(ec);
}

TEST_F(ServerTest, ShutdownGivesUpOnARealmThatNeverAnswers) {
  StartServer({});
  realm_->SetHold(true);
  TestClient busy(server_->port());
  busy.WriteRaw("POST /req HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + Token("stuck") +
                "\r\nX-Juicebox-Version: 0.3.7\r\nContent-Length: 10\r\n\r\n" +
                std::string("\x69Register1", 10));
  ASSERT_TRUE(realm_->WaitForHeld(1));
  EXPECT_FALSE(server_->Shutdown(std::chrono::milliseconds(100)));
  server_.reset();
  // A late answer after the server is gone is dropped safely.
  realm_->Release();
}

TEST(ServerCreateTest, RefusesPlainHttpOnNonLoopbackUnlessAllowed) {
  class NullHandler : public HttpHandler {
    size_t BodyLimit(std::string_view) const override { return 0; }
    void Handle(HttpRequest, HttpResponder respond) override { respond(HttpResponse{}); }
  };
  ServerOptions options;
  options.address = "0.0.0.0";
  options.port = 0;
  auto refused = HttpServer::Create(options, std::make_shared<NullHandler>(), nullptr);
  EXPECT_THAT(refused,
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("allow_insecure_plain_http")));
  options.allow_insecure_plain_http = true;
  auto allowed = HttpServer::Create(options, std::make_shared<NullHandler>(), nullptr);
  EXPECT_OK(allowed);

  ServerOptions bad;
  bad.address = "not-an-ip";
  EXPECT_THAT(HttpServer::Create(bad, std::make_shared<NullHandler>(), nullptr),
              StatusIs(StatusCode::kInvalidArgument));
  ServerOptions missing_tls;
  missing_tls.port = 0;
  missing_tls.tls = TlsFiles{"/nonexistent/cert.pem", "/nonexistent/key.pem"};
  EXPECT_THAT(HttpServer::Create(missing_tls, std::make_shared<NullHandler>(), nullptr),
              StatusIs(StatusCode::kNotFound));
}

// Writes a fresh self-signed P-256 certificate and key for 127.0.0.1 into `dir`.
void WriteSelfSignedCertificate(const std::filesystem::path& dir) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  ASSERT_NE(cert, nullptr);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* f = std::fopen((dir / "cert.pem").c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen((dir / "key.pem").c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST(ServerTlsTest, ServesOverTls) {
  auto dir =
      std::filesystem::temp_directory_path() / ("pinvault-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  WriteSelfSignedCertificate(dir);

  class LiveHandler : public HttpHandler {
    size_t BodyLimit(std::string_view) const override { return 16; }
    void Handle(HttpRequest request, HttpResponder respond) override {
      HttpResponse r;
      r.body = ToBytes("tls ok " + request.target);
      respond(std::move(r));
    }
  };
  ServerOptions options;
  options.address = "0.0.0.0";  // non-loopback is fine with TLS
  options.port = 0;
  options.tls = TlsFiles{dir / "cert.pem", dir / "key.pem"};
  auto server = HttpServer::Create(options, std::make_shared<LiveHandler>(), nullptr);
  ASSERT_OK(server);
  (*server)->Start();

  net::io_context ioc;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file((dir / "cert.pem").string());
  ctx.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  beast::get_lowest_layer(stream).connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), (*server)->port()));
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(20));
  stream.handshake(net::ssl::stream_base::client);
  http::request<http::string_body> req{http::verb::get, "/hello", 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "tls ok /hello");

  // A plain-HTTP client on the TLS port gets no HTTP answer.
  TestClient plain((*server)->port());
  plain.WriteRaw("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string received;
  EXPECT_TRUE(plain.WaitForClose(std::chrono::seconds(10), &received));
  EXPECT_THAT(received, Not(HasSubstr("tls ok")));
  (*server)->Shutdown(std::chrono::seconds(1));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pinvault::api::test
