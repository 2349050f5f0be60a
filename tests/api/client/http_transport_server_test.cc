// HttpTransport and the client library against the real pinvaultd HTTP server (router, JWT
// checks, rate limits) on 127.0.0.1:0, in front of an in-memory realm
// (tests/testing/server_test_fixture.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>

#include "api/client/http_transport.h"
#include "backup/client/client.h"
#include "backup/client/configuration.h"
#include "tests/testing/in_memory_realm.h"
#include "tests/testing/server_test_fixture.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api::test {
namespace {

using backup::TransportError;
using backup::TransportErrorKind;
using backup::TransportResult;
using ::testing::HasSubstr;

class HttpTransportServerTest : public ServerFixture {
 protected:
  void Start(Setup setup = {}) {
    StartServer(setup);
    realm_entry_.id = realm_id_;
    realm_entry_.address = "http://127.0.0.1:" + std::to_string(server_->port()) + "/";
    StatusOr<std::unique_ptr<HttpTransport>> transport = HttpTransport::Create();
    ASSERT_OK(transport);
    transport_ = std::move(*transport);
  }

  TransportResult Send(const std::string& token, protocol::SecretsRequest request) {
    std::promise<TransportResult> promise;
    std::future<TransportResult> future = promise.get_future();
    transport_->Send(realm_entry_, token, std::move(request),
                     [&](TransportResult r) { promise.set_value(std::move(r)); });
    EXPECT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    return future.get();
  }

  std::unique_ptr<backup::Client> MakeClient(const std::string& user) {
    StatusOr<backup::Configuration> configuration = backup::Configuration::Create(
        {realm_entry_}, 1, 1, protocol::PinHashingMode::kFastInsecure);
    EXPECT_OK(configuration);
    if (!configuration.ok()) return nullptr;
    auto tokens = std::make_shared<testing::FixedTokenProvider>(Token(user));
    StatusOr<std::unique_ptr<backup::Client>> client =
        backup::Client::Create(std::move(configuration).value(), {}, transport_, tokens);
    EXPECT_OK(client);
    return client.ok() ? std::move(client).value() : nullptr;
  }

  static SecretBytes Secret(std::string_view text) { return SecretBytes::CopyFrom(AsBytes(text)); }

  backup::RealmEndpoint realm_entry_;
  std::shared_ptr<HttpTransport> transport_;
};

TEST_F(HttpTransportServerTest, ClientRegistersRecoversAndDeletesOverHttp) {
  Start();
  std::unique_ptr<backup::Client> client = MakeClient("alice");
  ASSERT_NE(client, nullptr);
  backup::RegisterResult registered =
      client->Register(Secret("1234"), Secret("over http"), AsBytes("info"), 2);
  ASSERT_TRUE(registered.ok()) << registered.error().ToString();

  backup::RecoverResult wrong = client->Recover(Secret("0000"), AsBytes("info"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.kind(), backup::ErrorKind::kInvalidPin);
  EXPECT_EQ(wrong.error().guesses_remaining, 1);

  backup::RecoverResult recovered = client->Recover(Secret("1234"), AsBytes("info"));
  ASSERT_TRUE(recovered.ok()) << recovered.error().ToString();
  EXPECT_TRUE(recovered.value().Equals(AsBytes("over http")));

  ASSERT_TRUE(client->Delete().ok());
  EXPECT_EQ(realm_->inner().State(Context("alice")),
            testing::InMemoryRealm::RecordState::kNotRegistered);
  // All of that went over one kept-alive connection.
  EXPECT_EQ(transport_->stats().connections_opened, 1u);
  EXPECT_GT(transport_->stats().connections_reused, 0u);
}

TEST_F(HttpTransportServerTest, TheServersRefusalsMapToTransportErrors) {
  Start();
  TransportResult result = Send("not-a-token", protocol::Recover1Request{});
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind, TransportErrorKind::kInvalidAuth);
  EXPECT_THAT(std::get<TransportError>(result).detail, HasSubstr("HTTP 401"));

  // A token for another realm is refused as well.
  result = Send(Token("alice", "ffffffffffffffffffffffffffffffff"), protocol::Recover1Request{});
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind, TransportErrorKind::kInvalidAuth);

  // A realm that cannot serve answers 5xx: transient.
  realm_->inner().SetUnavailable(true);
  result = Send(Token("alice"), protocol::Recover1Request{});
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind, TransportErrorKind::kTransient);
  realm_->inner().SetUnavailable(false);

  result = Send(Token("alice"), protocol::Recover1Request{});
  ASSERT_TRUE(std::holds_alternative<protocol::SecretsResponse>(result));
  EXPECT_EQ(
      std::get<protocol::Recover1Response>(std::get<protocol::SecretsResponse>(result)).status,
      protocol::Recover1Response::Status::kNotRegistered);
}

TEST_F(HttpTransportServerTest, AServerRequiringANewerClientAnswersUpgradeRequired) {
  Setup setup;
  setup.min_version = JuiceboxVersion{0, 4};
  Start(setup);
  TransportResult result = Send(Token("alice"), protocol::Register1Request{});
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind, TransportErrorKind::kUpgradeRequired);
  EXPECT_EQ(realm_->submits(), 0);

  std::unique_ptr<backup::Client> client = MakeClient("alice");
  ASSERT_NE(client, nullptr);
  backup::RegisterResult registered = client->Register(Secret("1234"), Secret("s"), ByteView(), 2);
  ASSERT_FALSE(registered.ok());
  EXPECT_EQ(registered.kind(), backup::ErrorKind::kUpgradeRequired);
}

TEST_F(HttpTransportServerTest, RateLimitedRequestsAnswerRateLimited) {
  Setup setup;
  RateLimiterConfig limits;
  limits.user = TokenBucketConfig{0.001, 2};
  setup.rate_limits = limits;
  Start(setup);
  std::string token = Token("alice");
  EXPECT_TRUE(
      std::holds_alternative<protocol::SecretsResponse>(Send(token, protocol::Recover1Request{})));
  EXPECT_TRUE(
      std::holds_alternative<protocol::SecretsResponse>(Send(token, protocol::Recover1Request{})));
  TransportResult result = Send(token, protocol::Recover1Request{});
  ASSERT_TRUE(std::holds_alternative<TransportError>(result));
  EXPECT_EQ(std::get<TransportError>(result).kind, TransportErrorKind::kRateLimited);
  // Another user is not limited.
  EXPECT_TRUE(std::holds_alternative<protocol::SecretsResponse>(
      Send(Token("bob"), protocol::Recover1Request{})));
}

}  // namespace
}  // namespace pinvault::api::test
