// The pinvaultd binary end to end: a fresh SoftHSM2 token with realm keys made by
// pinvault-admin, a tenant keys file, pinvaultd started with a config file and environment
// overrides; the SDK's recorded requests go through the real core; SIGTERM drains an
// in-flight connection's request and exits 0; start-up failures exit 1 with a clear reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api/auth/tenant_keys.h"
#include "api/client/jwt_mint.h"
#include "api/codec/cbor_codec.h"
#include "tests/testing/child_process.h"
#include "tests/testing/server_test_fixture.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api::test {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::string kPinvaultd = std::string(PINVAULT_BINARY_DIR) + "/api/pinvaultd";
const std::string kAdmin = std::string(PINVAULT_BINARY_DIR) + "/api/pinvault-admin";
constexpr char kRealmHex[] = "0102030405060708090a0b0c0d0e0f10";

// Daemon is one pinvaultd process with stderr captured to a file.
class Daemon : public testing::DaemonProcess {
 public:
  Daemon(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
         const std::string& log_path)
      : DaemonProcess(kPinvaultd, args, extra_env, log_path) {}
};

class PinvaultdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = testing::SoftHsmToken::Create();
    ASSERT_OK(token);
    token_ = std::move(*token);
    dir_ = token_->dir();
    std::string output;
    Status init = testing::RunProgram({kAdmin, "hsm", "init", "--token", token_->uri()}, &output);
    ASSERT_OK(init) << output;

    auto key = TenantKey::FromHmacSecret(SecretBytes::CopyFrom(AsBytes("pinvaultd test secret")));
    ASSERT_OK(key);
    key_ = *key;
    TenantKeyStore keys;
    ASSERT_OK(keys.Add("acme", 1, *key));
    ASSERT_OK(keys.SaveFile(dir_ + "/tenant-keys.json"));

    // The config file names a wrong data_dir and port; the environment overrides them.
    json config = {{"realm_id", kRealmHex},
                   {"listen", "127.0.0.1:1"},
                   {"data_dir", "/nonexistent/never-used"},
                   {"hsm", {{"token_uri", token_->uri()}}},
                   {"tenant_keys_file", dir_ + "/tenant-keys.json"},
                   {"drain_timeout_ms", 20000}};
    ASSERT_OK(testing::WriteFile(dir_ + "/pinvaultd.json", config.dump(2), 0600));
  }

  std::vector<std::string> Env() const {
    return {"PINVAULT_LISTEN=127.0.0.1:0", "PINVAULT_DATA_DIR=" + dir_ + "/data"};
  }

  std::string Token(const std::string& user) {
    JwtMintRequest request;
    request.tenant = "acme";
    request.user = user;
    request.realm_id_hex = kRealmHex;
    request.issued_at = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto token = MintJwt(*key_, request);
    EXPECT_OK(token);
    return token.ok() ? *token : "";
  }

  std::unique_ptr<testing::SoftHsmToken> token_;
  std::string dir_;
  std::optional<TenantKey> key_;
};

std::map<std::string, std::string> SdkHeaders(const std::string& token) {
  return {{"Authorization", "Bearer " + token}, {"X-Juicebox-Version", "0.3.7"}};
}

TEST_F(PinvaultdTest, ServesTheSdkRequestsAndDrainsOnSigterm) {
  Daemon daemon({"--config", dir_ + "/pinvaultd.json"}, Env(), dir_ + "/pinvaultd.log");
  uint16_t port = daemon.WaitForPort();
  ASSERT_NE(port, 0) << daemon.Log();

  TestClient client(port);
  EXPECT_EQ(client.Send("GET", "/readyz", {}, {}).status, 200) << daemon.Log();

  // Case 1's recorded registration and correct-PIN recovery, through the real core.
  json c = LoadCase("case1_fastinsecure_1realm.json");
  const std::string token = Token("sdk-user");
  std::vector<json> exchanges;
  for (const json& e : c["http_log_register"]) exchanges.push_back(e);
  for (const json& e : c["recover_correct_pin"]["http_log"]) exchanges.push_back(e);
  for (const json& e : exchanges) {
    TestResponse r =
        client.Send("POST", "/req", SdkHeaders(token), HexBytes(e["request_cbor_hex"]));
    ASSERT_EQ(r.status, 200) << r.text();
    std::string kind = e["request_decoded"].is_string() ? e["request_decoded"].get<std::string>()
                                                        : e["request_decoded"].begin().key();
    if (kind != "Recover2") {
      EXPECT_EQ(HexEncode(r.body), e["response_hex"].get<std::string>()) << kind;
    } else {
      auto got = DecodeResponseCbor(r.body);
      ASSERT_OK(got);
      const auto& g = std::get<protocol::Recover2Response>(*got);
      EXPECT_EQ(g.status, protocol::Recover2Response::Status::kOk);
      EXPECT_EQ(g.guess_count, 1);
      EXPECT_EQ(HexEncode(g.oprf_blinded_result),
                e["response_decoded"]["Recover2"]["Ok"]["oprf_blinded_result"]["bstr"]
                    .get<std::string>());
    }
  }
  // Bad input is refused before the core.
  EXPECT_EQ(client.Send("POST", "/req", SdkHeaders("not-a-jwt"), HexBytes("6644656c657465")).status,
            401);
  EXPECT_EQ(client.Send("POST", "/req", SdkHeaders(token), HexBytes("ff")).status, 400);

  TestResponse metrics = client.Send("GET", "/metrics", {}, {});
  EXPECT_THAT(metrics.text(), HasSubstr("pinvault_guesses_spent_total 1"));
  EXPECT_THAT(metrics.text(), HasSubstr("pinvault_hsm_call_duration_seconds_count{call=\"mac\"}"));

  // A request whose body is still arriving when SIGTERM comes is finished, then the
  // process exits 0.
  TestClient slow(port);
  slow.WriteRaw("POST /req HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                "\r\nX-Juicebox-Version: 0.3.7\r\nContent-Length: 9\r\n\r\n\x68Reco");
  // Wait until the server has the header: the in-flight gauge counts it (and the /metrics
  // request that reads it).
  bool header_seen = false;
  for (int i = 0; i < 600 && !header_seen; ++i) {
    std::string text = client.Send("GET", "/metrics", {}, {}).text();
    header_seen = text.find("pinvault_http_requests_in_flight 2\n") != std::string::npos;
    if (!header_seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(header_seen) << "the slow request's header never arrived";
  // The last /metrics request must be over before the signal, so that only the slow request
  // is in flight: the server reads a connection's next request only after the previous one
  // ended, and a malformed request is never counted itself.
  client.WriteRaw("NOT-HTTP\r\n\r\n");
  EXPECT_EQ(client.Read().status, 400);
  daemon.Signal(SIGTERM);
  // The rest of the body arrives only once the shutdown has begun.
  bool shutting_down = false;
  for (int i = 0; i < 600 && !shutting_down; ++i) {
    shutting_down = daemon.Log().find(R"("event":"shutting_down")") != std::string::npos;
    if (!shutting_down) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(shutting_down) << daemon.Log();
  slow.WriteRaw("ver1");
  TestResponse last = slow.Read();
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(HexEncode(last.body).substr(0, 20), "a1685265636f76657231");  // {"Recover1": ...
  EXPECT_FALSE(last.keep_alive);
  EXPECT_EQ(daemon.Wait(), 0) << daemon.Log();
  std::string log = daemon.Log();
  EXPECT_THAT(log, HasSubstr(R"("event":"shutting_down","signal":"SIGTERM","in_flight":1)"));
  EXPECT_THAT(log, HasSubstr(R"("event":"stopped","drained":true)"));
  // The request log names the tenant and a hashed record, never the user or the token.
  EXPECT_THAT(log, HasSubstr(R"("operation":"Recover3","outcome":"ok","status":200)"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("sdk-user")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(token.substr(token.rfind('.') + 1))));

  // The record survived the restart: a new process recovers the same version.
  Daemon again({"--config", dir_ + "/pinvaultd.json"}, Env(), dir_ + "/pinvaultd2.log");
  uint16_t port2 = again.WaitForPort();
  ASSERT_NE(port2, 0) << again.Log();
  TestClient client2(port2);
  TestResponse r1 =
      client2.Send("POST", "/req", SdkHeaders(Token("sdk-user")), HexBytes("685265636f76657231"));
  ASSERT_EQ(r1.status, 200);
  EXPECT_EQ(HexEncode(r1.body), exchanges[2]["response_hex"].get<std::string>());
  again.Signal(SIGINT);
  EXPECT_EQ(again.Wait(), 0) << again.Log();
}

TEST_F(PinvaultdTest, StartupFailuresExitOneWithAReason) {
  {
    // No realm id anywhere.
    json config = {{"hsm", {{"token_uri", token_->uri()}}}};
    ASSERT_OK(testing::WriteFile(dir_ + "/no-realm.json", config.dump(), 0600));
    Daemon d({"--config", dir_ + "/no-realm.json"}, Env(), dir_ + "/fail1.log");
    EXPECT_EQ(d.Wait(), 1);
    EXPECT_THAT(d.Log(), HasSubstr("realm_id is required"));
  }
  {
    // A token that does not exist.
    Daemon d({"--config", dir_ + "/pinvaultd.json"},
             {"PINVAULT_LISTEN=127.0.0.1:0", "PINVAULT_DATA_DIR=" + dir_ + "/data",
              "PINVAULT_TOKEN_URI=pkcs11:token=no-such-token"},
             dir_ + "/fail2.log");
    EXPECT_EQ(d.Wait(), 1);
    EXPECT_THAT(d.Log(), HasSubstr(R"("event":"fatal")"));
  }
  {
    // Plain HTTP on a public address without the explicit flag.
    Daemon d({"--config", dir_ + "/pinvaultd.json"},
             {"PINVAULT_LISTEN=0.0.0.0:0", "PINVAULT_DATA_DIR=" + dir_ + "/data"},
             dir_ + "/fail3.log");
    EXPECT_EQ(d.Wait(), 1);
    EXPECT_THAT(d.Log(), HasSubstr("refusing plain HTTP"));
  }
  {
    // --check-config validates without opening the token.
    Daemon d({"--config", dir_ + "/pinvaultd.json", "--check-config"}, Env(), dir_ + "/check.log");
    EXPECT_EQ(d.Wait(), 0) << d.Log();
  }
  {
    Daemon d({"--bogus"}, {}, dir_ + "/usage.log");
    EXPECT_EQ(d.Wait(), 2);
    EXPECT_THAT(d.Log(), HasSubstr("usage: pinvaultd"));
  }
}

}  // namespace
}  // namespace pinvault::api::test
