// FanOut: parallel requests, arrival order, bounded retry of transient failures,
// abandonment of calls still in flight.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backup/client/fan_out.h"

namespace pinvault::backup {
namespace {

RealmId Id(uint8_t n) {
  RealmId id{};
  id[15] = n;
  return id;
}

RealmEndpoint RealmNamed(uint8_t n) { return RealmEndpoint{Id(n), "https://r/", std::nullopt}; }

// ScriptedTransport records every Send and keeps its callback; the test completes calls
// in whatever order it likes, or lets them fail at once with a scripted error.
class ScriptedTransport : public Transport {
 public:
  struct Sent {
    RealmId realm{};
    std::string token;
    std::string kind;
    TransportCallback done;
  };

  void Send(const RealmEndpoint& realm, const std::string& auth_token,
            protocol::SecretsRequest request, TransportCallback done) override {
    std::optional<TransportError> fail;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = failures_.find(realm.id);
      if (it != failures_.end() && !it->second.empty()) {
        fail = it->second.front();
        it->second.pop_front();
      }
      sent_.push_back(
          Sent{realm.id, auth_token, std::string(protocol::RequestKindName(request)), nullptr});
      if (!fail) {
        sent_.back().done = std::move(done);
        return;
      }
    }
    done(std::move(*fail));  // inline, as a transport may
  }

  // FailNext scripts the next sends to `realm` to fail inline with `kind`.
  void FailNext(const RealmId& realm, TransportErrorKind kind, int times = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < times; ++i) failures_[realm].push_back(TransportError{kind, "scripted"});
  }

  // Complete answers the i-th send (which must still be open) with a Register1 Ok.
  void Complete(size_t i) {
    TransportCallback done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done = std::move(sent_.at(i).done);
    }
    ASSERT_TRUE(done != nullptr);
    done(protocol::SecretsResponse(protocol::Register1Response{}));
  }

  size_t SentCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_.size();
  }
  Sent SentAt(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    Sent copy = sent_.at(i);
    return copy;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Sent> sent_;
  std::map<RealmId, std::deque<TransportError>> failures_;
};

class Tokens : public AuthTokenProvider {
 public:
  StatusOr<std::string> GetToken(const RealmId& realm) override {
    if (realm == Id(99)) return UnavailableError("backend down");
    return "token-" + std::to_string(realm[15]);
  }
};

TEST(FanOutTest, AnswersComeBackInArrivalOrder) {
  auto transport = std::make_shared<ScriptedTransport>();
  Tokens tokens;
  FanOut fan(transport, tokens, RetryPolicy{});
  for (uint8_t i = 0; i < 3; ++i)
    EXPECT_EQ(fan.Start(RealmNamed(i), protocol::Register1Request{}), i);
  ASSERT_EQ(transport->SentCount(), 3u);
  EXPECT_EQ(transport->SentAt(1).token, "token-1");
  EXPECT_EQ(transport->SentAt(1).kind, "Register1");
  EXPECT_EQ(fan.outstanding(), 3u);

  transport->Complete(2);
  transport->Complete(0);
  std::optional<FanOut::Arrival> a = fan.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->slot, 2u);
  EXPECT_EQ(a->attempts, 1);
  EXPECT_TRUE(std::holds_alternative<protocol::SecretsResponse>(a->result));
  a = fan.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->slot, 0u);
  EXPECT_EQ(fan.outstanding(), 1u);

  // The last one is completed from another thread while Next waits.
  std::thread completer([&] { transport->Complete(1); });
  a = fan.Next();
  completer.join();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->slot, 1u);
  EXPECT_FALSE(fan.Next().has_value());
  EXPECT_EQ(fan.outstanding(), 0u);
}

TEST(FanOutTest, TransientIsRetriedUpToTheBound) {
  auto transport = std::make_shared<ScriptedTransport>();
  Tokens tokens;
  FanOut fan(transport, tokens, RetryPolicy{3, std::chrono::milliseconds(1)});
  transport->FailNext(Id(0), TransportErrorKind::kTransient, 2);  // then succeeds
  transport->FailNext(Id(1), TransportErrorKind::kTransient, 5);  // always fails
  fan.Start(RealmNamed(0), protocol::Recover1Request{});
  fan.Start(RealmNamed(1), protocol::Recover1Request{});

  // Realm 0's third attempt is left open; realm 1 gives up after 3 attempts.
  std::optional<FanOut::Arrival> a = fan.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->slot, 1u);
  EXPECT_EQ(a->attempts, 3);
  ASSERT_TRUE(std::holds_alternative<TransportError>(a->result));
  EXPECT_EQ(std::get<TransportError>(a->result).kind, TransportErrorKind::kTransient);

  // Realm 0: sends 0 and 1 failed; find its open third send and answer it.
  size_t open = SIZE_MAX;
  for (size_t i = 0; i < transport->SentCount(); ++i) {
    if (transport->SentAt(i).realm == Id(0) && transport->SentAt(i).done) open = i;
  }
  ASSERT_NE(open, SIZE_MAX);
  transport->Complete(open);
  a = fan.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->slot, 0u);
  EXPECT_EQ(a->attempts, 3);
  EXPECT_TRUE(std::holds_alternative<protocol::SecretsResponse>(a->result));
  EXPECT_EQ(transport->SentCount(), 6u);  // 3 + 3
  for (size_t i = 0; i < transport->SentCount(); ++i) {
    EXPECT_EQ(transport->SentAt(i).kind, "Recover1");  // the same request each time
  }
}

TEST(FanOutTest, OtherErrorsAreFinal) {
  auto transport = std::make_shared<ScriptedTransport>();
  Tokens tokens;
  FanOut fan(transport, tokens, RetryPolicy{});
  for (TransportErrorKind kind :
       {TransportErrorKind::kInvalidAuth, TransportErrorKind::kUpgradeRequired,
        TransportErrorKind::kRateLimited, TransportErrorKind::kMalformedResponse}) {
    transport->FailNext(Id(static_cast<uint8_t>(kind)), kind);
    fan.Start(RealmNamed(static_cast<uint8_t>(kind)), protocol::DeleteRequest{});
    std::optional<FanOut::Arrival> a = fan.Next();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attempts, 1);
    EXPECT_EQ(std::get<TransportError>(a->result).kind, kind);
  }
  EXPECT_EQ(transport->SentCount(), 4u);
}

TEST(FanOutTest, MissingTokenFailsWithoutSending) {
  auto transport = std::make_shared<ScriptedTransport>();
  Tokens tokens;
  FanOut fan(transport, tokens, RetryPolicy{});
  fan.Start(RealmNamed(99), protocol::Recover1Request{});
  std::optional<FanOut::Arrival> a = fan.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->attempts, 0);
  const TransportError& error = std::get<TransportError>(a->result);
  EXPECT_EQ(error.kind, TransportErrorKind::kInvalidAuth);
  EXPECT_NE(error.detail.find("backend down"), std::string::npos);
  EXPECT_EQ(transport->SentCount(), 0u);
}

TEST(FanOutTest, AbandonedCallsCompleteHarmlessly) {
  auto transport = std::make_shared<ScriptedTransport>();
  Tokens tokens;
  {
    FanOut fan(transport, tokens, RetryPolicy{});
    fan.Start(RealmNamed(0), protocol::Recover1Request{});
    fan.Start(RealmNamed(1), protocol::Recover1Request{});
    transport->Complete(0);
    ASSERT_TRUE(fan.Next().has_value());
  }  // realm 1 still open
  // Completing after the FanOut is gone (from another thread, as a network would) is safe;
  // run under AddressSanitizer this would catch a dangling reference.
  std::thread late([&] { transport->Complete(1); });
  late.join();
}

TEST(FanOutTest, CloneRequestCopiesKeySharesDeeply) {
  protocol::Register2Request r2;
  r2.oprf_private_key = SecretBytes::Random(32);
  r2.encryption_key_scalar_share = SecretBytes::Random(32);
  r2.version.fill(7);
  r2.encrypted_secret.fill(9);
  r2.policy.num_guesses = 12;
  protocol::SecretsRequest original(std::move(r2));
  protocol::SecretsRequest copy = CloneRequest(original);
  const auto& a = std::get<protocol::Register2Request>(original);
  const auto& b = std::get<protocol::Register2Request>(copy);
  EXPECT_TRUE(a.oprf_private_key.Equals(b.oprf_private_key));
  EXPECT_NE(a.oprf_private_key.Reveal().data(), b.oprf_private_key.Reveal().data());
  EXPECT_TRUE(a.encryption_key_scalar_share.Equals(b.encryption_key_scalar_share));
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.encrypted_secret, b.encrypted_secret);
  EXPECT_EQ(b.policy.num_guesses, 12);

  protocol::Recover2Request r;
  r.oprf_blinded_input.fill(3);
  protocol::SecretsRequest copy2 = CloneRequest(protocol::SecretsRequest(r));
  EXPECT_EQ(std::get<protocol::Recover2Request>(copy2).oprf_blinded_input, r.oprf_blinded_input);
  EXPECT_TRUE(std::holds_alternative<protocol::DeleteRequest>(
      CloneRequest(protocol::SecretsRequest(protocol::DeleteRequest{}))));
}

}  // namespace
}  // namespace pinvault::backup
