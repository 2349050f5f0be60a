// Bad input against a real server: each gets the right status code and a clear plain-text
// body that is never a valid CBOR SecretsResponse, and none reaches the realm or changes a
// record.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "api/codec/cbor_codec.h"
#include "api/codec/proto_codec.h"
#include "tests/testing/server_test_fixture.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api::test {
namespace {

using nlohmann::json;
using ::pinvault::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;
using State = testing::InMemoryRealm::RecordState;

class BadInputTest : public ServerFixture {
 protected:
  // Registers `user` with case 1's Register2 and returns the guess count afterwards.
  void RegisterVictim(const std::string& user) {
    json c = LoadCase("case1_fastinsecure_1realm.json");
    register2_ = HexBytes(c["realms"][0]["register2_request_cbor_hex"]);
    TestClient client(server_->port());
    ASSERT_EQ(client.Send("POST", "/req", JuiceboxHeaders(Token(user)), register2_).status, 200);
    ASSERT_EQ(realm_->inner().State(Context(user)), State::kRegistered);
    submits_before_ = realm_->submits();
  }

  // ExpectRejected checks the status, that the body is plain text saying `reason`, that it
  // is not a SecretsResponse, and that the realm saw nothing.
  void ExpectRejected(const TestResponse& r, int status, const std::string& reason) {
    EXPECT_EQ(r.status, status) << r.text();
    EXPECT_THAT(r.header("content-type"), HasSubstr("text/plain"));
    EXPECT_THAT(r.text(), HasSubstr(reason));
    EXPECT_THAT(DecodeResponseCbor(r.body), Not(IsOk())) << r.text();
    EXPECT_EQ(realm_->submits(), submits_before_);
  }

  void ExpectVictimUnchanged(const std::string& user) {
    EXPECT_EQ(realm_->inner().State(Context(user)), State::kRegistered);
    EXPECT_EQ(realm_->inner().GuessCount(Context(user)), 0);
  }

  Bytes register2_;
  int submits_before_ = 0;
};

const Bytes kRecover1 = {0x68, 'R', 'e', 'c', 'o', 'v', 'e', 'r', '1'};

TEST_F(BadInputTest, MalformedCbor) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  const auto headers = JuiceboxHeaders(Token("victim"));
  ExpectRejected(client.Send("POST", "/req", headers, {}), 400, "empty request body");
  ExpectRejected(client.Send("POST", "/req", headers, HexBytes("a1685265636f76657232a0")), 400,
                 "Recover2: expected a map of 2 entries, got 0");
  ExpectRejected(client.Send("POST", "/req", headers, HexBytes("bf6644656c657465f6ff")), 400,
                 "indefinite");
  ExpectRejected(client.Send("POST", "/req", headers, HexBytes("685265636f7665723100")), 400,
                 "trailing bytes");
  ExpectRejected(client.Send("POST", "/req", headers, ToBytes("{\"Register1\": null}")), 400,
                 "invalid CBOR request");
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, EveryTruncationOfARegister2Body) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  const auto headers = JuiceboxHeaders(Token("victim"));
  for (size_t n = 0; n < register2_.size(); ++n) {
    TestResponse r =
        client.Send("POST", "/req", headers, Bytes(register2_.begin(), register2_.begin() + n));
    ASSERT_EQ(r.status, 400) << "length " << n << ": " << r.text();
    ASSERT_TRUE(r.keep_alive);  // a bad body does not cost the connection
  }
  EXPECT_EQ(realm_->submits(), submits_before_);
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, RandomlyMutatedBodiesNeverChangeAnotherRecord) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  const auto headers = JuiceboxHeaders(Token("fuzzer"));
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    Bytes body = register2_;
    for (int e = 0; e < 3; ++e) body[rng() % body.size()] = static_cast<uint8_t>(rng());
    TestResponse r = client.Send("POST", "/req", headers, body);
    ASSERT_TRUE(r.status == 200 || r.status == 400) << r.status << " " << r.text();
    if (r.status == 400) {
      EXPECT_THAT(DecodeResponseCbor(r.body), Not(IsOk()));
    }
  }
  // Whatever the fuzzer's token did, it acted on the fuzzer's record only.
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, MalformedProtobufAndJson) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  auto headers = [&](const std::string& type) {
    return std::map<std::string, std::string>{{"Authorization", "Bearer " + Token("victim")},
                                              {"Content-Type", type}};
  };
  ExpectRejected(client.Send("POST", "/v1/secrets", headers("application/x-protobuf"),
                             Bytes{0x12, 0x40, 0x0a}),
                 400, "not a valid SecretsRequest message");
  ExpectRejected(client.Send("POST", "/v1/secrets", headers("application/x-protobuf"), {}), 400,
                 "no request is set");
  ExpectRejected(client.Send("POST", "/v1/secrets", headers("application/json"),
                             ToBytes("{\"recover2\": {\"version\": \"AAAA\"}}")),
                 400, "recover2.version: expected 16 bytes, got 3");
  ExpectRejected(client.Send("POST", "/v1/secrets", headers("application/json"),
                             ToBytes("{\"recover1\": {}, \"x\": 1}")),
                 400, "JSON does not match SecretsRequest");
  ExpectRejected(client.Send("POST", "/v1/secrets", headers("application/json"), ToBytes("{")), 400,
                 "invalid protobuf request");
  // Every truncation of a binary Register2.
  auto decoded = DecodeRequestCbor(register2_);
  ASSERT_OK(decoded);
  auto binary = EncodeRequestProto(*decoded, ProtoFormat::kBinary);
  ASSERT_OK(binary);
  for (size_t n = 0; n < binary->size(); n += 7) {
    TestResponse r = client.Send("POST", "/v1/secrets", headers("application/x-protobuf"),
                                 Bytes(binary->begin(), binary->begin() + n));
    ASSERT_EQ(r.status, 400) << n;
  }
  EXPECT_EQ(realm_->submits(), submits_before_);
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, WrongContentTypes) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  for (const char* type :
       {"text/plain", "application/cbor", "application/octet-stream", "multipart/form-data"}) {
    TestResponse r = client.Send(
        "POST", "/v1/secrets",
        {{"Authorization", "Bearer " + Token("victim")}, {"Content-Type", type}}, kRecover1);
    ExpectRejected(r, 415, "unsupported Content-Type");
    EXPECT_EQ(r.header("accept-post"), "application/x-protobuf, application/json");
  }
  // No Content-Type at all.
  ExpectRejected(client.Send("POST", "/v1/secrets",
                             {{"Authorization", "Bearer " + Token("victim")}}, kRecover1),
                 415, "unsupported Content-Type");
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, BodiesOverTheLimit) {
  StartServer({});
  RegisterVictim("victim");
  {
    TestClient client(server_->port());
    Bytes big(kMaxJuiceboxBodySize + 1, 0x41);
    TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token("victim")), big);
    ExpectRejected(r, 413, "the limit is 2048");
    EXPECT_FALSE(r.keep_alive);
  }
  {
    // Exactly at the limit is read (and then rejected as CBOR, not as too large).
    TestClient client(server_->port());
    Bytes at_limit = kRecover1;
    at_limit.resize(kMaxJuiceboxBodySize, 0x00);
    ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(Token("victim")), at_limit), 400,
                   "trailing bytes");
  }
  {
    TestClient client(server_->port());
    Bytes big(kMaxProtoBodySize + 1, 0);
    TestResponse r = client.Send("POST", "/v1/secrets",
                                 {{"Authorization", "Bearer " + Token("victim")},
                                  {"Content-Type", "application/x-protobuf"}},
                                 big);
    ExpectRejected(r, 413, "the limit is 8192");
  }
  {
    // Chunked, so the server cannot know the size up front.
    TestClient client(server_->port());
    std::string chunk(1500, 'A');
    client.WriteRaw(
        "POST /req HTTP/1.1\r\nHost: x\r\nX-Juicebox-Version: 0.3.7\r\n"
        "Authorization: Bearer " +
        Token("victim") + "\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n" + chunk + "\r\n5dc\r\n" +
        chunk + "\r\n0\r\n\r\n");
    TestResponse r = client.Read();
    ExpectRejected(r, 413, "exceeds the limit");
  }
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, ExpectContinueIsAnsweredOnlyForAcceptableSizes) {
  StartServer({});
  RegisterVictim("victim");
  const std::string head =
      "POST /req HTTP/1.1\r\nHost: x\r\nX-Juicebox-Version: 0.3.7\r\n"
      "Authorization: Bearer " +
      Token("victim") + "\r\nExpect: 100-continue\r\n";
  {
    TestClient client(server_->port());
    client.WriteRaw(head + "Content-Length: 9\r\n\r\n");
    TestResponse interim = client.Read();
    EXPECT_EQ(interim.status, 100);
    client.WriteRaw(std::string(kRecover1.begin(), kRecover1.end()));
    TestResponse r = client.Read();
    EXPECT_EQ(r.status, 200) << r.text();
    submits_before_ = realm_->submits();
  }
  {
    // Too large: 413 at once, no 100, and the body is never read.
    TestClient client(server_->port());
    client.WriteRaw(head + "Content-Length: 5000\r\n\r\n");
    TestResponse r = client.Read();
    ExpectRejected(r, 413, "request body is 5000 bytes; the limit is 2048");
  }
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, ConnectionsBeyondTheLimitAreClosed) {
  StartServer({.max_connections = 2});
  TestClient a(server_->port());
  TestClient b(server_->port());
  ASSERT_EQ(a.Send("GET", "/livez", {}, {}).status, 200);
  ASSERT_EQ(b.Send("GET", "/livez", {}, {}).status, 200);
  TestClient c(server_->port());
  c.WriteRaw("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string received;
  EXPECT_TRUE(c.WaitForClose(std::chrono::seconds(10), &received));
  EXPECT_EQ(received, "");
  // The open ones still work.
  EXPECT_EQ(a.Send("GET", "/livez", {}, {}).status, 200);
}

TEST_F(BadInputTest, RejectionsByTheHttpLayerAreLogged) {
  StartServer({});
  {
    TestClient client(server_->port());
    Bytes big(kMaxJuiceboxBodySize + 1, 0x41);
    EXPECT_EQ(client.Send("POST", "/req", JuiceboxHeaders(Token("victim")), big).status, 413);
  }
  std::istringstream in(log_stream_->str());
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  json entry = json::parse(line);
  EXPECT_EQ(entry["endpoint"], "/req");
  EXPECT_EQ(entry["status"], 413);
  EXPECT_EQ(entry["outcome"], "too_large");
  EXPECT_EQ(metrics_->HttpStatusCount(413), 1u);
}

TEST_F(BadInputTest, SlowClientIsDisconnectedAfterTheTimeout) {
  StartServer({.request_timeout = std::chrono::milliseconds(300),
               .idle_timeout = std::chrono::milliseconds(300)});
  RegisterVictim("victim");
  {
    // Headers, then nothing.
    TestClient client(server_->port());
    client.WriteRaw(
        "POST /req HTTP/1.1\r\nHost: x\r\nX-Juicebox-Version: 0.3.7\r\n"
        "Authorization: Bearer " +
        Token("victim") + "\r\nContent-Length: 9\r\n\r\n");
    std::string received;
    EXPECT_TRUE(client.WaitForClose(std::chrono::seconds(15), &received));
    EXPECT_EQ(received, "");  // disconnected, no response
  }
  {
    // Half a header line, then nothing.
    TestClient client(server_->port());
    client.WriteRaw("POST /req HTTP/1.1\r\nHost");
    EXPECT_TRUE(client.WaitForClose(std::chrono::seconds(15)));
  }
  {
    // Half the body, then nothing.
    TestClient client(server_->port());
    client.WriteRaw(
        "POST /req HTTP/1.1\r\nHost: x\r\nX-Juicebox-Version: 0.3.7\r\n"
        "Authorization: Bearer " +
        Token("victim") + "\r\nContent-Length: 9\r\n\r\nRec");
    EXPECT_TRUE(client.WaitForClose(std::chrono::seconds(15)));
  }
  EXPECT_EQ(realm_->submits(), submits_before_);
  // The server's side of a timed-out read completes just after the client sees the close.
  EXPECT_TRUE(server_->WaitForInFlight(0, std::chrono::seconds(60)));
  EXPECT_EQ(server_->in_flight(), 0u);
  // The server still serves.
  TestClient client(server_->port());
  EXPECT_EQ(client.Send("GET", "/livez", {}, {}).status, 200);
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, JuiceboxVersionGate) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  const std::string token = Token("victim");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(token, ""), kRecover1), 426,
                 "missing X-Juicebox-Version");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(token, "0.2.9"), kRecover1), 426,
                 "below the supported minimum 0.3");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(token, "0.1"), kRecover1), 426,
                 "below the supported minimum");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(token, "latest"), kRecover1), 426,
                 "not a semantic version");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(token, "0.3.x"), kRecover1), 426,
                 "not a semantic version");
  // Accepted: 0.3.0, 0.3.7, 0.4.0, 1.0.0-beta.1.
  for (const char* version : {"0.3.0", "0.3.7", "0.4.0", "1.0.0-beta.1", "0.3"}) {
    TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(token, version), kRecover1);
    EXPECT_EQ(r.status, 200) << version << " " << r.text();
  }
  ExpectVictimUnchanged("victim");
}

TEST(JuiceboxVersionTest, Parse) {
  auto v = ParseJuiceboxVersion("0.3.7");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->major, 0u);
  EXPECT_EQ(v->minor, 3u);
  EXPECT_TRUE(ParseJuiceboxVersion("v1.2.3+build.5").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("1").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("1.").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("1.2.").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("1.2.3 ").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("1.2.3-").has_value());
  EXPECT_FALSE(ParseJuiceboxVersion("12345678901.0.0").has_value());
}

TEST_F(BadInputTest, CorsPreflight) {
  StartServer({});
  TestClient client(server_->port());
  TestResponse r =
      client.Send("OPTIONS", "/req",
                  {{"Origin", "https://app.example"},
                   {"Access-Control-Request-Method", "POST"},
                   {"Access-Control-Request-Headers", "authorization,x-juicebox-version"}},
                  {});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_THAT(r.header("access-control-allow-methods"), HasSubstr("POST"));
  EXPECT_THAT(r.header("access-control-allow-headers"), HasSubstr("Authorization"));
  EXPECT_THAT(r.header("access-control-allow-headers"), HasSubstr("X-Juicebox-Version"));
  EXPECT_THAT(r.header("access-control-allow-headers"), HasSubstr("Content-Type"));
  EXPECT_EQ(realm_->submits(), 0);
  // Error answers carry the CORS header too, so a browser can read the status.
  TestResponse denied = client.Send("POST", "/req", JuiceboxHeaders(""), kRecover1);
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(denied.header("access-control-allow-origin"), "*");
}

TEST_F(BadInputTest, ReadyzAndRequestsWhileTheRealmIsUnavailable) {
  StartServer({});
  RegisterVictim("victim");
  realm_->inner().SetUnavailable(true);
  TestClient client(server_->port());
  TestResponse ready = client.Send("GET", "/readyz", {}, {});
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.text(), HasSubstr("not ready: UNAVAILABLE"));
  TestResponse r =
      client.Send("POST", "/req", JuiceboxHeaders(Token("victim")),
                  HexBytes("a1685265636f76657232a26776657273696f6e50e89ae5ae1cb1dd9495fc6a944077742"
                           "f726f7072665f626c696e6465645f696e7075745820f86dae4bd5e18ed8a8b3f6157fe3"
                           "5ea52a3a5aa8d8ae134cf2b299e968d91605"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_THAT(DecodeResponseCbor(r.body), Not(IsOk()));
  realm_->inner().SetUnavailable(false);
  EXPECT_EQ(client.Send("GET", "/readyz", {}, {}).status, 200);
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, AuthFailures) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(""), kRecover1), 401,
                 "missing Authorization header");
  auto with_auth = [&](const std::string& value) {
    auto h = JuiceboxHeaders("");
    h["Authorization"] = value;
    return h;
  };
  ExpectRejected(client.Send("POST", "/req", with_auth("Basic dXNlcjpwYXNz"), kRecover1), 401,
                 "not a Bearer token");
  std::string token = Token("victim");
  std::string forged = token.substr(0, token.size() - 2) + (token.back() == 'A' ? "BB" : "AA");
  ExpectRejected(client.Send("POST", "/req", JuiceboxHeaders(forged), kRecover1), 401, "jwt");
  ExpectRejected(
      client.Send("POST", "/req",
                  JuiceboxHeaders(Token("victim", "ffeeddccbbaa99887766554433221100")), kRecover1),
      401, "jwt");
  ExpectRejected(
      client.Send("POST", "/req", JuiceboxHeaders(Token("victim", kRealmHex, now - 4000, 600)),
                  kRecover1),
      401, "jwt");
  // The same checks guard the native API.
  ExpectRejected(
      client.Send("POST", "/v1/secrets",
                  {{"Authorization", "Bearer " + forged}, {"Content-Type", "application/json"}},
                  ToBytes("{\"delete\": {}}")),
      401, "jwt");
  ExpectVictimUnchanged("victim");
}

TEST_F(BadInputTest, AnotherUsersTokenCannotSpendTheVictimsGuesses) {
  StartServer({});
  RegisterVictim("victim");
  TestClient client(server_->port());
  json c = LoadCase("case1_fastinsecure_1realm.json");
  const json& wrong = c["recover_wrong_pin"]["http_log"];
  // The attacker replays the victim's recorded Recover1/Recover2 with their own token.
  for (const json& e : wrong) {
    TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token("attacker")),
                                 HexBytes(e["request_cbor_hex"]));
    ASSERT_EQ(r.status, 200);
    auto response = DecodeResponseCbor(r.body);
    ASSERT_OK(response);
    std::visit(
        [](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, protocol::Recover1Response>) {
            EXPECT_EQ(v.status, protocol::Recover1Response::Status::kNotRegistered);
          } else if constexpr (std::is_same_v<T, protocol::Recover2Response>) {
            EXPECT_EQ(v.status, protocol::Recover2Response::Status::kNotRegistered);
          } else {
            ADD_FAILURE() << "unexpected response kind";
          }
        },
        *response);
  }
  ExpectVictimUnchanged("victim");
  // The victim's own token does spend a guess.
  TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(Token("victim")),
                               HexBytes(wrong[1]["request_cbor_hex"]));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(realm_->inner().GuessCount(Context("victim")), 1);
}

TEST_F(BadInputTest, RateLimitedRequestsGet429) {
  RateLimiterConfig limits;
  limits.user = {1, 2};  // a burst of 2, then 1 per second
  StartServer({.rate_limits = limits});
  TestClient client(server_->port());
  const std::string token = Token("busy");
  EXPECT_EQ(client.Send("POST", "/req", JuiceboxHeaders(token), kRecover1).status, 200);
  EXPECT_EQ(client.Send("POST", "/req", JuiceboxHeaders(token), kRecover1).status, 200);
  int before = realm_->submits();
  TestResponse r = client.Send("POST", "/req", JuiceboxHeaders(token), kRecover1);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_THAT(r.text(), HasSubstr("rate limit of this user exceeded"));
  EXPECT_THAT(DecodeResponseCbor(r.body), Not(IsOk()));
  EXPECT_EQ(realm_->submits(), before);
  // Another user is not affected; the first recovers after a second of (fake) time.
  EXPECT_EQ(client.Send("POST", "/req", JuiceboxHeaders(Token("calm")), kRecover1).status, 200);
  fake_monotonic_ += 1'000'000'000;
  EXPECT_EQ(client.Send("POST", "/req", JuiceboxHeaders(token), kRecover1).status, 200);
}

TEST_F(BadInputTest, UnknownRoutesAndMethods) {
  StartServer({});
  TestClient client(server_->port());
  TestResponse r = client.Send("GET", "/nope", {}, {});
  EXPECT_EQ(r.status, 404);
  r = client.Send("GET", "/req", {}, {});
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "POST, OPTIONS");
  r = client.Send("DELETE", "/metrics", {}, {});
  EXPECT_EQ(r.status, 405);
  // Garbage instead of HTTP.
  TestClient raw(server_->port());
  raw.WriteRaw("\x16\x03\x01 not http at all\r\n\r\n");
  std::string received;
  EXPECT_TRUE(raw.WaitForClose(std::chrono::seconds(10), &received));
  EXPECT_THAT(received, HasSubstr("400"));
  EXPECT_EQ(realm_->submits(), 0);
}

// A fake realm that fails every request with a chosen status.
class FailingRealm : public vault::RealmService {
 public:
  explicit FailingRealm(Status status) : status_(std::move(status)) {}
  void Submit(vault::RequestContext, protocol::SecretsRequest,
              vault::ResponseCallback done) override {
    done(status_);
  }
  Status Ready() const override { return OkStatus(); }

 private:
  Status status_;
};

class AcceptAll : public CallerAuthenticator {
 public:
  StatusOr<AuthenticatedCaller> Authenticate(std::string_view, ByteView) const override {
    return AuthenticatedCaller{"acme", "someone", 0, 1};
  }
};

TEST(RealmErrorMappingTest, StatusCodesAndBodies) {
  struct Case {
    Status status;
    int http;
    std::string body;
  };
  const Case cases[] = {
      {UnavailableError("hsm unreachable"), 503, "UNAVAILABLE: hsm unreachable"},
      {FailedPreconditionError("anchor mismatch"), 503, "FAILED_PRECONDITION: anchor mismatch"},
      {InvalidArgumentError("blinded input is not a point"), 400, "not a point"},
      {DataLossError("record tag mismatch"), 500, "internal error"},
      {InternalError("bug"), 500, "internal error"},
  };
  for (const Case& c : cases) {
    auto metrics = std::make_shared<Metrics>();
    std::ostringstream log;
    auto router =
        Router::Create(RouterOptions{}, RouterDeps{std::make_shared<FailingRealm>(c.status),
                                                   std::make_shared<AcceptAll>(), nullptr, metrics,
                                                   std::make_shared<RequestLogger>(&log)});
    ASSERT_OK(router);
    HttpRequest request;
    request.method = "POST";
    request.target = "/req";
    request.headers["x-juicebox-version"] = "0.3.7";
    request.body = kRecover1;
    std::optional<HttpResponse> got;
    (*router)->Handle(std::move(request), [&](HttpResponse r) { got = std::move(r); });
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->status, c.http) << c.status;
    std::string body(got->body.begin(), got->body.end());
    EXPECT_THAT(body, HasSubstr(c.body));
    EXPECT_THAT(DecodeResponseCbor(got->body), Not(IsOk()));
    // Internals of 5xx stay out of the body but reach the log.
    EXPECT_THAT(log.str(), HasSubstr(c.status.message()));
  }
}

}  // namespace
}  // namespace pinvault::api::test
