// Client flows against in-memory realms: register/recover/delete with 1, 3 and 5 realms,
// guess counting, realms down, slow or disagreeing, tampered answers, error precedence and
// fallback to previous configurations.
#include "backup/client/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/testing/in_memory_realm.h"
#include "tests/testing/status_matchers.h"
#include "vault/protocol/oprf.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::FixedTokenProvider;
using ::pinvault::testing::InMemoryRealm;
using ::pinvault::testing::InMemoryTransport;
using ::pinvault::testing::StatusIs;
using protocol::SecretsResponse;
using ::testing::HasSubstr;

SecretBytes Secret(std::string_view text) { return SecretBytes::CopyFrom(AsBytes(text)); }

std::string Text(const SecretBytes& secret) {
  return std::string(secret.Reveal().begin(), secret.Reveal().end());
}

vault::RequestContext User(std::string user) {
  return vault::RequestContext{std::string(InMemoryTransport::kTenant), std::move(user)};
}

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() : transport_(std::make_shared<InMemoryTransport>()) {}

  // AddRealms makes `n` realms of id family `family` and returns their ids in creation
  // order, which is deliberately not their sorted order.
  std::vector<RealmId> AddRealms(int n, uint8_t family = 0) {
    std::vector<RealmId> ids;
    for (int i = 0; i < n; ++i) {
      RealmId id{};
      id[0] = static_cast<uint8_t>(0xf0 - 0x21 * i);  // descending
      id[1] = family;
      id[15] = static_cast<uint8_t>(i);
      auto realm = std::make_shared<InMemoryRealm>(id);
      realms_[id] = realm;
      transport_->AddRealm(id, realm);
      ids.push_back(id);
    }
    return ids;
  }

  // Config makes a configuration of `ids`; callers ASSERT_OK_AND_ASSIGN it.
  StatusOr<Configuration> Config(const std::vector<RealmId>& ids, uint32_t register_threshold,
                                 uint32_t recover_threshold) {
    std::vector<RealmEndpoint> realms;
    for (const RealmId& id : ids) {
      realms.push_back(RealmEndpoint{id, "https://" + RealmIdHex(id) + ".example/", std::nullopt});
    }
    return Configuration::Create(std::move(realms), register_threshold, recover_threshold,
                                 protocol::PinHashingMode::kFastInsecure);
  }

  // MakeClient makes a client for `user`; callers ASSERT_OK_AND_ASSIGN it.
  StatusOr<std::unique_ptr<Client>> MakeClient(Configuration configuration,
                                               std::vector<Configuration> previous = {},
                                               std::string user = "alice") {
    return Client::Create(std::move(configuration), std::move(previous), transport_,
                          std::make_shared<FixedTokenProvider>(std::move(user)));
  }

  InMemoryRealm& RealmOf(const RealmId& id) { return *realms_.at(id); }

  // Registers "secret" under PIN "1234" with `num_guesses`.
  void RegisterOk(const Client& client, uint16_t num_guesses = 5,
                  std::string_view secret = "the secret") {
    RegisterResult result =
        client.Register(Secret("1234"), Secret(secret), AsBytes("info"), num_guesses);
    ASSERT_TRUE(result.ok()) << result.error().ToString();
  }

  RecoverResult Recover(const Client& client, std::string_view pin = "1234") {
    return client.Recover(Secret(pin), AsBytes("info"));
  }

  void ExpectRecovers(const Client& client, std::string_view secret = "the secret") {
    RecoverResult result = Recover(client);
    ASSERT_TRUE(result.ok()) << result.error().ToString();
    EXPECT_EQ(Text(result.value()), secret);
  }

  std::shared_ptr<InMemoryTransport> transport_;
  std::map<RealmId, std::shared_ptr<InMemoryRealm>> realms_;
};

// ---- Register then recover, guess counting: 1, 3 and 5 realms ----

struct Shape {
  int realms;
  uint32_t register_threshold;
  uint32_t recover_threshold;
};

class ClientShapeTest : public ClientTest, public ::testing::WithParamInterface<Shape> {};

INSTANTIATE_TEST_SUITE_P(Realms, ClientShapeTest,
                         ::testing::Values(Shape{1, 1, 1}, Shape{3, 3, 2}, Shape{3, 2, 2},
                                           Shape{5, 5, 3}, Shape{5, 4, 3}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return std::to_string(info.param.realms) + "realms_register" +
                                  std::to_string(info.param.register_threshold) + "_recover" +
                                  std::to_string(info.param.recover_threshold);
                         });

TEST_P(ClientShapeTest, RegisterThenRecover) {
  const Shape shape = GetParam();
  std::vector<RealmId> ids = AddRealms(shape.realms);
  ASSERT_OK_AND_ASSIGN(Configuration config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  for (const RealmId& id : ids) {
    EXPECT_EQ(RealmOf(id).State(User("alice")), InMemoryRealm::RecordState::kRegistered);
    EXPECT_EQ(transport_->RequestCount(id, "Register1"), 1u);
    EXPECT_EQ(transport_->RequestCount(id, "Register2"), 1u);
  }
  ExpectRecovers(*client);
  size_t recover2 = 0;
  for (const RealmId& id : ids) {
    EXPECT_EQ(transport_->RequestCount(id, "Recover1"), 1u);
    recover2 += transport_->RequestCount(id, "Recover2");
    // A correct tag resets the count of every realm that saw Recover3.
    if (transport_->RequestCount(id, "Recover3") == 1) {
      EXPECT_EQ(RealmOf(id).GuessCount(User("alice")), 0);
    }
  }
  EXPECT_GE(recover2, shape.recover_threshold);
  // Another user of the same realms is not registered.
  ASSERT_OK_AND_ASSIGN(Configuration bob_config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto bob, MakeClient(bob_config, {}, "bob"));
  RecoverResult result = Recover(*bob);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
}

TEST_P(ClientShapeTest, WrongPinCountsDownToExhaustion) {
  const Shape shape = GetParam();
  std::vector<RealmId> ids = AddRealms(shape.realms);
  ASSERT_OK_AND_ASSIGN(Configuration config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/4);

  for (uint16_t expected : {3, 2, 1, 0}) {
    RecoverResult result = Recover(*client, "0000");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
    EXPECT_EQ(result.error().guesses_remaining, expected) << result.error().ToString();
    EXPECT_THAT(result.error().message, HasSubstr("wrong PIN"));
  }
  for (const RealmId& id : ids) {
    EXPECT_EQ(transport_->RequestCount(id, "Recover3"), 0u) << "no Recover3 on a wrong PIN";
  }
  // No guesses left: even the right PIN fails now, and the records are destroyed.
  for (std::string_view pin : {"0000", "1234"}) {
    RecoverResult result = Recover(*client, pin);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
    EXPECT_EQ(result.error().guesses_remaining, 0);
  }
  for (const RealmId& id : ids) {
    EXPECT_EQ(RealmOf(id).State(User("alice")), InMemoryRealm::RecordState::kNoGuesses);
  }
  // Registering again starts afresh.
  RegisterOk(*client, 2, "second");
  ExpectRecovers(*client, "second");
}

TEST_P(ClientShapeTest, CorrectPinResetsTheCount) {
  const Shape shape = GetParam();
  std::vector<RealmId> ids = AddRealms(shape.realms);
  ASSERT_OK_AND_ASSIGN(Configuration config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/3);
  for (int round = 0; round < 3; ++round) {
    for (uint16_t expected : {2, 1}) {
      RecoverResult result = Recover(*client, "9999");
      ASSERT_FALSE(result.ok());
      EXPECT_EQ(result.error().guesses_remaining, expected);
    }
    ExpectRecovers(*client);
  }
}

TEST_P(ClientShapeTest, Delete) {
  const Shape shape = GetParam();
  std::vector<RealmId> ids = AddRealms(shape.realms);
  ASSERT_OK_AND_ASSIGN(Configuration config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  DeleteResult deleted = client->Delete();
  ASSERT_TRUE(deleted.ok()) << deleted.error().ToString();
  for (const RealmId& id : ids) {
    EXPECT_EQ(RealmOf(id).State(User("alice")), InMemoryRealm::RecordState::kNotRegistered);
  }
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
  // Deleting nothing is fine.
  EXPECT_TRUE(client->Delete().ok());
}

TEST_P(ClientShapeTest, SecretSizes) {
  const Shape shape = GetParam();
  std::vector<RealmId> ids = AddRealms(shape.realms);
  ASSERT_OK_AND_ASSIGN(Configuration config,
                       Config(ids, shape.register_threshold, shape.recover_threshold));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  for (size_t size : {size_t{0}, size_t{1}, size_t{127}, size_t{128}}) {
    SecretBytes secret = SecretBytes::Random(size);
    RegisterResult registered = client->Register(Secret("pin"), secret, {}, 3);
    ASSERT_TRUE(registered.ok()) << registered.error().ToString();
    RecoverResult recovered = client->Recover(Secret("pin"), {});
    ASSERT_TRUE(recovered.ok()) << recovered.error().ToString();
    EXPECT_TRUE(recovered.value().Equals(secret)) << size;
  }
}

// ---- Arguments ----

TEST_F(ClientTest, RejectsBadArgumentsBeforeSendingAnything) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterResult too_long = client->Register(Secret("1"), SecretBytes::Random(129), {}, 5);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.kind(), ErrorKind::kInvalidArgument);
  EXPECT_THAT(too_long.error().message, HasSubstr("at most 128"));
  RegisterResult no_guesses = client->Register(Secret("1"), Secret("s"), {}, 0);
  ASSERT_FALSE(no_guesses.ok());
  EXPECT_EQ(no_guesses.kind(), ErrorKind::kInvalidArgument);
  for (const RealmId& id : ids) EXPECT_EQ(transport_->TotalRequests(id), 0u);
}

TEST_F(ClientTest, InfoIsPartOfThePinHash) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);  // info "info"
  RecoverResult result = client->Recover(Secret("1234"), AsBytes("other info"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(result.error().guesses_remaining, 4);
}

TEST_F(ClientTest, CreateRejectsHardwareRealmsAndNulls) {
  std::vector<RealmId> ids = AddRealms(1);
  ASSERT_OK_AND_ASSIGN(Configuration software, Config(ids, 1, 1));
  RealmEndpoint hardware{ids[0], "https://hsm.example/", std::array<uint8_t, 32>{}};
  ASSERT_OK_AND_ASSIGN(
      Configuration with_hardware,
      Configuration::Create({hardware}, 1, 1, protocol::PinHashingMode::kFastInsecure));
  auto tokens = std::make_shared<FixedTokenProvider>("alice");
  Status s = Client::Create(with_hardware, {}, transport_, tokens).status();
  EXPECT_THAT(s, StatusIs(StatusCode::kUnimplemented, HasSubstr("hardware realm")));
  s = Client::Create(software, {with_hardware}, transport_, tokens).status();
  EXPECT_THAT(s, StatusIs(StatusCode::kUnimplemented, HasSubstr("previous configuration 0")));
  EXPECT_THAT(Client::Create(software, {}, nullptr, tokens),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Client::Create(software, {}, transport_, nullptr),
              StatusIs(StatusCode::kInvalidArgument));
}

// ---- Realms down, retries ----

TEST_F(ClientTest, OneRealmDownThresholdStillMet) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 2, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  transport_->SetDown(ids[1], true);
  RegisterOk(*client);
  ExpectRecovers(*client);
  EXPECT_EQ(RealmOf(ids[1]).State(User("alice")), InMemoryRealm::RecordState::kNotRegistered);
  // The down realm was tried (its retry may or may not have fallen due before the other
  // realms decided the step) and never got further than Recover1.
  for (const char* kind : {"Register1", "Register2", "Recover1"}) {
    EXPECT_GE(transport_->RequestCount(ids[1], kind), 1u) << kind;
    EXPECT_LE(transport_->RequestCount(ids[1], kind), 2u) << kind;
  }
  EXPECT_EQ(transport_->RequestCount(ids[1], "Recover2"), 0u);
}

TEST_F(ClientTest, TooManyRealmsDownIsTransient) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  transport_->SetDown(ids[0], true);
  transport_->SetDown(ids[2], true);
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kTransient);
  EXPECT_THAT(result.error().message, HasSubstr("unavailable after 2 attempts"));
  RegisterResult registered = client->Register(Secret("1"), Secret("s"), {}, 5);
  ASSERT_FALSE(registered.ok());
  EXPECT_EQ(registered.kind(), ErrorKind::kTransient);
}

TEST_F(ClientTest, TransientFailureIsRetriedOnce) {
  std::vector<RealmId> ids = AddRealms(1);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 1, 1));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  transport_->FailNext(ids[0], 1);
  ExpectRecovers(*client);
  EXPECT_EQ(transport_->RequestCount(ids[0], "Recover1"), 2u);
  // Two failures in a row exhaust the retry.
  transport_->FailNext(ids[0], 2);
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kTransient);
  EXPECT_EQ(transport_->RequestCount(ids[0], "Recover1"), 4u);
}

TEST_F(ClientTest, RealmServiceErrorIsTransient) {
  std::vector<RealmId> ids = AddRealms(1);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 1, 1));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  RealmOf(ids[0]).SetUnavailable(true);
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kTransient);
  EXPECT_THAT(result.error().message, HasSubstr("UNAVAILABLE"));
  RealmOf(ids[0]).SetUnavailable(false);
  ExpectRecovers(*client);
}

TEST_F(ClientTest, OtherErrorsAreNotRetried) {
  std::vector<RealmId> ids = AddRealms(1);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 1, 1));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  for (auto [kind, expected] :
       {std::pair{TransportErrorKind::kInvalidAuth, ErrorKind::kInvalidAuth},
        std::pair{TransportErrorKind::kUpgradeRequired, ErrorKind::kUpgradeRequired},
        std::pair{TransportErrorKind::kRateLimited, ErrorKind::kRateLimited},
        std::pair{TransportErrorKind::kMalformedResponse, ErrorKind::kAssertion}}) {
    SCOPED_TRACE(TransportErrorKindName(kind));
    const size_t before = transport_->RequestCount(ids[0], "Register1");
    transport_->SetFailure(ids[0], kind);
    RegisterResult result = client->Register(Secret("1"), Secret("s"), {}, 5);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), expected);
    EXPECT_EQ(transport_->RequestCount(ids[0], "Register1"), before + 1);
    EXPECT_EQ(client->Delete().kind(), expected);
  }
}

TEST_F(ClientTest, RejectedTokenIsInvalidAuth) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  transport_->RejectToken("alice");
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kInvalidAuth);
  EXPECT_THAT(result.error().message, HasSubstr("auth token rejected"));
  EXPECT_THAT(result.error().message, ::testing::Not(HasSubstr("alice")));
}

TEST_F(ClientTest, TokenProviderFailureForOneRealm) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 2, 2));
  auto tokens = std::make_shared<FixedTokenProvider>("alice");
  tokens->FailFor(ids[2]);
  ASSERT_OK_AND_ASSIGN(auto client, Client::Create(config, {}, transport_, tokens));
  RegisterOk(*client);
  ExpectRecovers(*client);
  EXPECT_EQ(transport_->TotalRequests(ids[2]), 0u);  // nothing sent without a token
  DeleteResult deleted = client->Delete();
  ASSERT_FALSE(deleted.ok());
  EXPECT_EQ(deleted.kind(), ErrorKind::kInvalidAuth);
  EXPECT_THAT(deleted.error().message, HasSubstr("no auth token"));
}

// ---- Slow realms: a step ends once enough consistent answers are in ----

TEST_F(ClientTest, RecoverDoesNotWaitForASlowRealm) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  // The slow realm (the first asked) answers Recover1 at once but sits on Recover2.
  const RealmId slow = config.realms()[0].id;
  transport_->SetHold(slow, true, "Recover2");
  ExpectRecovers(*client);
  // The call returned while the slow realm still had its Recover2 parked, and it was
  // not sent a Recover3 ahead of its Recover2.
  EXPECT_EQ(transport_->HeldCount(slow), 1u);
  EXPECT_EQ(transport_->RequestCount(slow, "Recover2"), 1u);
  EXPECT_EQ(transport_->RequestCount(slow, "Recover3"), 0u);
  // Releasing it later is harmless: the late answer goes nowhere. The guess it counted
  // stays counted until the next successful recovery.
  transport_->SetHold(slow, false);
  EXPECT_EQ(transport_->ReleaseHeld(slow), 1u);
  EXPECT_EQ(RealmOf(slow).GuessCount(User("alice")), 1);
  ExpectRecovers(*client);
  EXPECT_EQ(RealmOf(slow).GuessCount(User("alice")), 0);

  // Slow from the start: the others decide every step without it.
  transport_->SetHold(slow, true);
  ExpectRecovers(*client);
  EXPECT_EQ(transport_->HeldCount(slow), 1u);  // its Recover1
  transport_->SetHold(slow, false);
  EXPECT_EQ(transport_->ReleaseHeld(slow), 1u);
}

TEST_F(ClientTest, LateRecover1AnswerJoinsTheGroup) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  const RealmId bad = config.realms()[0].id;
  const RealmId good = config.realms()[1].id;
  const RealmId late = config.realms()[2].id;
  // `bad` and `good` decide the version; `bad` then fails its proof, so the recovery
  // needs `late`, whose Recover1 answer is held back until Recover2 is under way.
  transport_->SetResponseMutator(bad, [](SecretsResponse& response) {
    if (auto* r2 = std::get_if<protocol::Recover2Response>(&response)) r2->oprf_proof.c[0] ^= 1;
  });
  transport_->SetHold(late, true, "Recover1");
  std::thread releaser([&] {
    while (transport_->RequestCount(good, "Recover2") == 0) std::this_thread::yield();
    transport_->SetHold(late, false);
    transport_->ReleaseHeld(late);
  });
  RecoverResult result = Recover(*client);
  releaser.join();
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(Text(result.value()), "the secret");
  EXPECT_EQ(transport_->RequestCount(late, "Recover2"), 1u);
  EXPECT_EQ(transport_->RequestCount(late, "Recover3"), 1u);
}

TEST_F(ClientTest, RecoverThreeStepDoesNotWaitForASlowRealm) {
  std::vector<RealmId> ids = AddRealms(5);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 5, 3));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  transport_->SetHold(ids[1], true, "Recover3");
  transport_->SetHold(ids[3], true, "Recover3");
  ExpectRecovers(*client);
  EXPECT_EQ(transport_->HeldCount(ids[1]), 1u);
  EXPECT_EQ(transport_->HeldCount(ids[3]), 1u);
  transport_->SetHold(ids[1], false);
  transport_->SetHold(ids[3], false);
  transport_->ReleaseHeld(ids[1]);
  transport_->ReleaseHeld(ids[3]);
  // Their late Recover3 (a correct tag) reset their counts too.
  EXPECT_EQ(RealmOf(ids[1]).GuessCount(User("alice")), 0);
}

TEST_F(ClientTest, RegisterDoesNotWaitForASlowRealm) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 2, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  transport_->SetHold(ids[2], true);
  RegisterOk(*client);
  EXPECT_EQ(transport_->HeldCount(ids[2]), 2u);  // its Register1 and Register2
  transport_->SetHold(ids[2], false);
  EXPECT_EQ(transport_->ReleaseHeld(ids[2]), 2u);
  // Once the slow realm has caught up it holds the same registration.
  EXPECT_EQ(RealmOf(ids[2]).RegisteredVersion(User("alice")),
            RealmOf(ids[0]).RegisteredVersion(User("alice")));
  ExpectRecovers(*client);
}

TEST_F(ClientTest, SlowRealmsAnsweringOnWorkerThreads) {
  std::vector<RealmId> ids = AddRealms(5);
  transport_->SetAsynchronous(true, 3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 4, 3));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  transport_->SetHold(ids[4], true);
  RegisterOk(*client);
  ExpectRecovers(*client);
  EXPECT_GE(transport_->HeldCount(ids[4]), 2u);
  transport_->SetHold(ids[4], false);
  transport_->ReleaseHeld(ids[4]);
}

TEST_F(ClientTest, ConcurrentUsersOnWorkerThreads) {
  std::vector<RealmId> ids = AddRealms(5);
  transport_->SetAsynchronous(true, 4);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 5, 3));
  std::atomic<int> recovered{0};
  std::vector<std::thread> threads;
  for (int u = 0; u < 4; ++u) {
    threads.emplace_back([&, u] {
      std::string user = "user-" + std::to_string(u);
      ASSERT_OK_AND_ASSIGN(auto client, Client::Create(config, {}, transport_,
                                                       std::make_shared<FixedTokenProvider>(user)));
      if (!client->Register(Secret("pin" + std::to_string(u)), Secret(user), {}, 3).ok()) return;
      for (int round = 0; round < 3; ++round) {
        RecoverResult wrong = client->Recover(Secret("nope"), {});
        if (wrong.ok() || wrong.kind() != ErrorKind::kInvalidPin) return;
        RecoverResult right = client->Recover(Secret("pin" + std::to_string(u)), {});
        if (!right.ok() || Text(right.value()) != user) return;
      }
      ++recovered;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(recovered.load(), 4);
}

// ---- Realms disagreeing on the version ----

TEST_F(ClientTest, StaleRealmIsOutvoted) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 2, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, 5, "first");
  // Re-register while one realm is down: it keeps the old version.
  transport_->SetDown(ids[0], true);
  RegisterOk(*client, 5, "second");
  transport_->SetDown(ids[0], false);
  EXPECT_NE(RealmOf(ids[0]).RegisteredVersion(User("alice")),
            RealmOf(ids[1]).RegisteredVersion(User("alice")));
  ExpectRecovers(*client, "second");

  // With one of the up-to-date realms down, no version has two votes.
  transport_->SetDown(ids[1], true);
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
  EXPECT_THAT(result.error().message, HasSubstr("2 distinct versions"));
}

TEST_F(ClientTest, RealmsReportingAnotherVersion) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  auto other_version = [](uint8_t fill) {
    protocol::RegistrationVersion version;
    version.fill(fill);
    return version;
  };
  // One realm out of three reports another version: outvoted.
  transport_->SetReportedVersion(config.realms()[0].id, other_version(0xaa));
  ExpectRecovers(*client);
  // Two realms report two other versions: no majority.
  transport_->SetReportedVersion(config.realms()[1].id, other_version(0xbb));
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
  // Two realms claim the same wrong version: they agree, but then answer
  // VersionMismatch, which is a realm misbehaving.
  transport_->SetReportedVersion(config.realms()[1].id, other_version(0xaa));
  result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kAssertion);
  EXPECT_THAT(result.error().message, HasSubstr("VersionMismatch"));
}

// ---- Tampered answers ----

using Mutator = InMemoryTransport::ResponseMutator;

Mutator OnRecover2(std::function<void(protocol::Recover2Response&)> edit) {
  return [edit](SecretsResponse& response) {
    if (auto* r2 = std::get_if<protocol::Recover2Response>(&response)) {
      if (r2->status == protocol::Recover2Response::Status::kOk) edit(*r2);
    }
  };
}

Mutator OnRecover3(std::function<void(protocol::Recover3Response&)> edit) {
  return [edit](SecretsResponse& response) {
    if (auto* r3 = std::get_if<protocol::Recover3Response>(&response)) {
      if (r3->status == protocol::Recover3Response::Status::kOk) edit(*r3);
    }
  };
}

struct Tamper {
  const char* name;
  Mutator mutator;
  ErrorKind alone;      // what a single tampering realm of a 1-realm setup gives
  const char* message;  // part of the message
};

std::vector<Tamper> Tampers() {
  return {
      {"blinded_result", OnRecover2([](auto& r) { r.oprf_blinded_result[3] ^= 0x10; }),
       ErrorKind::kAssertion, "DLEQ proof"},
      {"proof_c", OnRecover2([](auto& r) { r.oprf_proof.c[0] ^= 1; }), ErrorKind::kAssertion,
       "DLEQ proof"},
      {"proof_beta_z", OnRecover2([](auto& r) { r.oprf_proof.beta_z[5] ^= 1; }),
       ErrorKind::kAssertion, "DLEQ proof"},
      {"public_key", OnRecover2([](auto& r) { r.oprf_signed_public_key.public_key[2] ^= 1; }),
       ErrorKind::kAssertion, "signature"},
      {"signature", OnRecover2([](auto& r) { r.oprf_signed_public_key.signature[7] ^= 1; }),
       ErrorKind::kAssertion, "signature"},
      {"verifying_key", OnRecover2([](auto& r) { r.oprf_signed_public_key.verifying_key[9] ^= 1; }),
       ErrorKind::kAssertion, "signature"},
      {"guess_count", OnRecover2([](auto& r) { r.guess_count = r.num_guesses + 1; }),
       ErrorKind::kAssertion, "guess_count"},
      // A commitment that does not match the OPRF output reads as a wrong PIN, as in the
      // SDK.
      {"unlock_key_commitment", OnRecover2([](auto& r) { r.unlock_key_commitment[0] ^= 1; }),
       ErrorKind::kInvalidPin, "wrong PIN"},
      {"scalar_share",
       OnRecover3([](auto& r) { r.encryption_key_scalar_share.RevealMutable()[1] ^= 1; }),
       ErrorKind::kAssertion, "commitment check"},
      {"scalar_share_noncanonical", OnRecover3([](auto& r) {
         for (uint8_t& b : r.encryption_key_scalar_share.RevealMutable()) b = 0xff;
       }),
       ErrorKind::kAssertion, "canonical"},
      {"encrypted_secret", OnRecover3([](auto& r) { r.encrypted_secret[100] ^= 1; }),
       ErrorKind::kAssertion, "commitment check"},
      {"encrypted_secret_tag", OnRecover3([](auto& r) { r.encrypted_secret[144] ^= 1; }),
       ErrorKind::kAssertion, "commitment check"},
      {"encrypted_secret_commitment",
       OnRecover3([](auto& r) { r.encrypted_secret_commitment[15] ^= 1; }), ErrorKind::kAssertion,
       "commitment check"},
      {"wrong_response_type",
       [](SecretsResponse& response) {
         if (std::holds_alternative<protocol::Recover2Response>(response)) {
           response = protocol::DeleteResponse{};
         }
       },
       ErrorKind::kAssertion, "unexpected Delete response"},
  };
}

TEST_F(ClientTest, TamperedAnswerFromTheOnlyRealm) {
  std::vector<RealmId> ids = AddRealms(1);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 1, 1));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/100);
  for (const Tamper& tamper : Tampers()) {
    SCOPED_TRACE(tamper.name);
    transport_->SetResponseMutator(ids[0], tamper.mutator);
    RecoverResult result = Recover(*client);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), tamper.alone) << result.error().ToString();
    EXPECT_THAT(result.error().message, HasSubstr(tamper.message));
    if (tamper.alone == ErrorKind::kInvalidPin) {
      EXPECT_EQ(transport_->RequestCount(ids[0], "Recover3"), 0u);
    }
  }
  transport_->SetResponseMutator(ids[0], nullptr);
  ExpectRecovers(*client);
}

TEST_F(ClientTest, TamperedAnswerFromOneRealmOfThreeIsOutvoted) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/100);
  for (size_t target = 0; target < ids.size(); ++target) {
    for (const Tamper& tamper : Tampers()) {
      SCOPED_TRACE(std::string(tamper.name) + " at realm " + std::to_string(target));
      transport_->SetResponseMutator(ids[target], tamper.mutator);
      ExpectRecovers(*client);
    }
    transport_->SetResponseMutator(ids[target], nullptr);
  }
}

TEST_F(ClientTest, TamperedAnswersFromTwoRealmsOfThree) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/100);
  for (const Tamper& tamper : Tampers()) {
    SCOPED_TRACE(tamper.name);
    transport_->SetResponseMutator(ids[0], tamper.mutator);
    transport_->SetResponseMutator(ids[2], tamper.mutator);
    RecoverResult result = Recover(*client);
    ASSERT_FALSE(result.ok());
    // Two realms each with its own (differently flipped) commitment disagree with each
    // other and with the honest one: no group of two, which is an Assertion.
    ErrorKind expected = tamper.alone;
    if (std::string(tamper.name) == "unlock_key_commitment") {
      // Both flipped the same bit, so they agree with each other and form the group; the
      // OPRF output does not match it: InvalidPin.
      expected = ErrorKind::kInvalidPin;
    }
    EXPECT_EQ(result.kind(), expected) << result.error().ToString();
  }
}

TEST_F(ClientTest, BadUnlockKeyTagIsInvalidPin) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  auto bad_tag = [](uint16_t remaining) {
    return [remaining](SecretsResponse& response) {
      if (std::holds_alternative<protocol::Recover3Response>(response)) {
        protocol::Recover3Response replaced;
        replaced.status = protocol::Recover3Response::Status::kBadUnlockKeyTag;
        replaced.guesses_remaining = remaining;
        response = std::move(replaced);
      }
    };
  };
  // One realm rejecting the tag is outvoted.
  transport_->SetResponseMutator(ids[0], bad_tag(3));
  ExpectRecovers(*client);
  // Two: InvalidPin with the fewest guesses remaining.
  transport_->SetResponseMutator(ids[1], bad_tag(1));
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(result.error().guesses_remaining, 1);
}

TEST_F(ClientTest, InvalidPinReportsTheFewestGuessesRemaining) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client, /*num_guesses=*/6);
  // Someone spent two guesses at the first realm only.
  InMemoryRealm& spent = RealmOf(config.realms()[0].id);
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(protocol::BlindedInput blinded, protocol::Blind(AsBytes("x")));
    protocol::Recover2Request guess{*spent.RegisteredVersion(User("alice")), blinded.blinded_input};
    ASSERT_OK(spent.Handle(User("alice"), guess));
  }
  RecoverResult result = Recover(*client, "0000");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(result.error().guesses_remaining, 3);  // 6 - 3 at the first realm, not 6 - 1
}

// ---- Error precedence ----

TEST_F(ClientTest, ErrorPrecedenceFollowsTheSdk) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  const RealmId first = config.realms()[0].id;
  const RealmId second = config.realms()[1].id;
  // Whatever the order in which they arrive, InvalidAuth beats RateLimited, which beats
  // Transient.
  for (bool swap : {false, true}) {
    transport_->SetFailure(swap ? second : first, TransportErrorKind::kRateLimited);
    transport_->SetFailure(swap ? first : second, TransportErrorKind::kInvalidAuth);
    RecoverResult result = Recover(*client);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), ErrorKind::kInvalidAuth);
    EXPECT_THAT(result.error().message, HasSubstr("2 of 3 realms failed"));
  }
  transport_->SetFailure(first, TransportErrorKind::kTransient);
  transport_->SetFailure(second, TransportErrorKind::kRateLimited);
  EXPECT_EQ(Recover(*client).kind(), ErrorKind::kRateLimited);
  transport_->SetFailure(second, TransportErrorKind::kUpgradeRequired);
  EXPECT_EQ(Recover(*client).kind(), ErrorKind::kUpgradeRequired);
  // NotRegistered beats Transient.
  transport_->SetFailure(second, std::nullopt);
  ASSERT_OK(RealmOf(second).Handle(User("alice"), protocol::DeleteRequest{}));
  RecoverResult result = Recover(*client);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
}

TEST(ErrorPrecedesTest, Order) {
  auto e = [](ErrorKind kind, uint16_t guesses = 0) { return ClientError{kind, guesses, ""}; };
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kInvalidPin, 5), e(ErrorKind::kNotRegistered)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kInvalidPin, 1), e(ErrorKind::kInvalidPin, 2)));
  EXPECT_FALSE(ErrorPrecedes(e(ErrorKind::kInvalidPin, 2), e(ErrorKind::kInvalidPin, 1)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kNotRegistered), e(ErrorKind::kInvalidAuth)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kInvalidAuth), e(ErrorKind::kUpgradeRequired)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kUpgradeRequired), e(ErrorKind::kRateLimited)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kRateLimited), e(ErrorKind::kAssertion)));
  EXPECT_TRUE(ErrorPrecedes(e(ErrorKind::kAssertion), e(ErrorKind::kTransient)));
  EXPECT_FALSE(ErrorPrecedes(e(ErrorKind::kTransient), e(ErrorKind::kTransient)));
  EXPECT_EQ(e(ErrorKind::kInvalidPin, 3).ToString(), "InvalidPin (guesses remaining: 3)");
  EXPECT_EQ(ErrorKindName(ErrorKind::kRateLimited), "RateLimitExceeded");
}

// ---- Delete ----

TEST_F(ClientTest, DeleteNeedsEveryRealmAndReportsTheFirstFailureInIdOrder) {
  std::vector<RealmId> ids = AddRealms(3);
  ASSERT_OK_AND_ASSIGN(Configuration config, Config(ids, 3, 2));
  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(config));
  RegisterOk(*client);
  transport_->SetFailure(config.realms()[2].id, TransportErrorKind::kInvalidAuth);
  transport_->SetDown(config.realms()[1].id, true);
  DeleteResult result = client->Delete();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kTransient);  // realms()[1] comes first
  EXPECT_THAT(result.error().message, HasSubstr(RealmIdHex(config.realms()[1].id)));
  // The realm that could be reached was deleted anyway.
  EXPECT_EQ(RealmOf(config.realms()[0].id).State(User("alice")),
            InMemoryRealm::RecordState::kNotRegistered);
  EXPECT_EQ(RealmOf(config.realms()[1].id).State(User("alice")),
            InMemoryRealm::RecordState::kRegistered);
}

// ---- Previous configurations ----

TEST_F(ClientTest, FallsBackToPreviousConfigurations) {
  std::vector<RealmId> oldest = AddRealms(1, 1);
  std::vector<RealmId> old = AddRealms(3, 2);
  std::vector<RealmId> current = AddRealms(5, 3);
  ASSERT_OK_AND_ASSIGN(Configuration oldest_config, Config(oldest, 1, 1));
  ASSERT_OK_AND_ASSIGN(Configuration old_config, Config(old, 3, 2));
  ASSERT_OK_AND_ASSIGN(Configuration current_config, Config(current, 5, 3));
  {
    ASSERT_OK_AND_ASSIGN(auto old_client, MakeClient(old_config));
    RegisterOk(*old_client, 5, "from the old realms");
  }

  ASSERT_OK_AND_ASSIGN(auto client, MakeClient(current_config, {old_config, oldest_config}));
  ExpectRecovers(*client, "from the old realms");
  for (const RealmId& id : oldest) EXPECT_EQ(transport_->TotalRequests(id), 0u);
  // A wrong PIN on the old realms is InvalidPin, not a fallback to the oldest.
  RecoverResult wrong = Recover(*client, "0000");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.kind(), ErrorKind::kInvalidPin);
  for (const RealmId& id : oldest) EXPECT_EQ(transport_->TotalRequests(id), 0u);

  // Once registered on the current realms, they win.
  RegisterOk(*client, 5, "migrated");
  ExpectRecovers(*client, "migrated");

  // Registered nowhere: NotRegistered after trying every configuration.
  ASSERT_OK_AND_ASSIGN(auto carol,
                       MakeClient(current_config, {old_config, oldest_config}, "carol"));
  RecoverResult result = Recover(*carol);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kNotRegistered);
  for (const RealmId& id : oldest) EXPECT_EQ(transport_->RequestCount(id, "Recover1"), 1u);

  // Register and Delete act on the current configuration only.
  ASSERT_TRUE(client->Delete().ok());
  for (const RealmId& id : old) {
    EXPECT_EQ(RealmOf(id).State(User("alice")), InMemoryRealm::RecordState::kRegistered);
  }
  ExpectRecovers(*client, "from the old realms");
}

}  // namespace
}  // namespace pinvault::backup
