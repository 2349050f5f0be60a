// The guess rules as a pure function (vault/guess_rules.h): each row of the table, the next
// record it yields, and that nothing else changes.
#include "vault/guess_rules.h"

#include <gtest/gtest.h>

#include <utility>
#include <variant>

#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"

namespace pinvault::vault {
namespace {

using ::pinvault::testing::StatusIs;

using protocol::DeleteRequest;
using protocol::DeleteResponse;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using protocol::Register1Request;
using protocol::Register1Response;
using protocol::SecretsRequest;
using testing::kTestRealmId;
using testing::VaultTestClient;

// Apply runs the rules on a copy of `record` and expects them to succeed.
GuessStep Apply(const Record& record, SecretsRequest request) {
  EXPECT_OK(ValidateRequest(request));
  StatusOr<GuessStep> step = ApplyGuessRules(CloneRecord(record), request);
  if (!step.ok()) {
    ADD_FAILURE() << step.status();
    return GuessStep{};
  }
  return std::move(step).value();
}

Record Registered(VaultTestClient& client, uint16_t guesses) {
  GuessStep step = Apply(Record{}, client.Register2("1234", guesses));
  EXPECT_TRUE(std::holds_alternative<protocol::Register2Response>(step.response));
  EXPECT_TRUE(step.next.has_value());
  return std::move(*step.next);
}

TEST(GuessRulesTest, Register1NeedsNoRecordAndChangesNothing) {
  EXPECT_FALSE(NeedsRecord(Register1Request{}));
  EXPECT_TRUE(NeedsRecord(Recover1Request{}));
  GuessStep step = Apply(Record{}, Register1Request{});
  EXPECT_TRUE(std::holds_alternative<Register1Response>(step.response));
  EXPECT_FALSE(step.next.has_value());
}

TEST(GuessRulesTest, Register2OverwritesWithGuessCountZero) {
  VaultTestClient client(kTestRealmId);
  Record record = Registered(client, 5);
  record.guess_count = 3;
  GuessStep step = Apply(record, client.Register2("9999", 7));
  ASSERT_TRUE(step.next.has_value());
  EXPECT_EQ(step.next->state, RecordState::kRegistered);
  EXPECT_EQ(step.next->guess_count, 0);
  EXPECT_EQ(step.next->registration->num_guesses, 7);
}

TEST(GuessRulesTest, Recover2CountsTheGuessInTheNextRecord) {
  VaultTestClient client(kTestRealmId);
  Record record = Registered(client, 2);
  GuessStep step = Apply(record, client.Recover2("1234"));
  const auto& response = std::get<Recover2Response>(step.response);
  EXPECT_EQ(response.status, Recover2Response::Status::kOk);
  EXPECT_EQ(response.guess_count, 1);
  ASSERT_TRUE(step.next.has_value());
  EXPECT_EQ(step.next->guess_count, 1);
}

TEST(GuessRulesTest, ExhaustedRecordIsDestroyedByRecover1AndRecover2) {
  VaultTestClient client(kTestRealmId);
  Record record = Registered(client, 2);
  record.guess_count = 2;
  GuessStep r1 = Apply(record, Recover1Request{});
  EXPECT_EQ(std::get<Recover1Response>(r1.response).status, Recover1Response::Status::kNoGuesses);
  ASSERT_TRUE(r1.next.has_value());
  EXPECT_EQ(r1.next->state, RecordState::kNoGuesses);
  EXPECT_FALSE(r1.next->registration.has_value());
  GuessStep r2 = Apply(record, client.Recover2("1234"));
  EXPECT_EQ(std::get<Recover2Response>(r2.response).status, Recover2Response::Status::kNoGuesses);
  ASSERT_TRUE(r2.next.has_value());
  EXPECT_EQ(r2.next->state, RecordState::kNoGuesses);
}

TEST(GuessRulesTest, VersionMismatchIsCheckedBeforeTheGuessLimit) {
  VaultTestClient client(kTestRealmId);
  VaultTestClient other(kTestRealmId);
  Record record = Registered(client, 2);
  record.guess_count = 2;
  other.Register2("1234", 2);  // a different registration version
  GuessStep step = Apply(record, other.Recover2("1234"));
  EXPECT_EQ(std::get<Recover2Response>(step.response).status,
            Recover2Response::Status::kVersionMismatch);
  EXPECT_FALSE(step.next.has_value());
}

TEST(GuessRulesTest, Recover3BadTagRewritesTheRecordAndDestroysItAtZero) {
  VaultTestClient client(kTestRealmId);
  Record record = Registered(client, 2);
  record.guess_count = 1;
  GuessStep one_left = Apply(record, client.Recover3(client.WrongTag()));
  const auto& bad = std::get<Recover3Response>(one_left.response);
  EXPECT_EQ(bad.status, Recover3Response::Status::kBadUnlockKeyTag);
  EXPECT_EQ(bad.guesses_remaining, 1);
  ASSERT_TRUE(one_left.next.has_value());  // written unchanged: storage sees a write either way
  EXPECT_EQ(one_left.next->state, RecordState::kRegistered);
  EXPECT_EQ(one_left.next->guess_count, 1);

  record.guess_count = 2;
  GuessStep none_left = Apply(record, client.Recover3(client.WrongTag()));
  EXPECT_EQ(std::get<Recover3Response>(none_left.response).guesses_remaining, 0);
  ASSERT_TRUE(none_left.next.has_value());
  EXPECT_EQ(none_left.next->state, RecordState::kNoGuesses);
}

TEST(GuessRulesTest, Recover3GoodTagResetsTheCount) {
  VaultTestClient client(kTestRealmId);
  Record record = Registered(client, 3);
  record.guess_count = 2;
  GuessStep step = Apply(record, client.Recover3(client.CorrectTag()));
  EXPECT_EQ(std::get<Recover3Response>(step.response).status, Recover3Response::Status::kOk);
  ASSERT_TRUE(step.next.has_value());
  EXPECT_EQ(step.next->guess_count, 0);
}

TEST(GuessRulesTest, DeleteWritesATombstoneUnlessAlreadyAbsent) {
  VaultTestClient client(kTestRealmId);
  GuessStep step = Apply(Registered(client, 3), DeleteRequest{});
  EXPECT_TRUE(std::holds_alternative<DeleteResponse>(step.response));
  ASSERT_TRUE(step.next.has_value());
  EXPECT_EQ(step.next->state, RecordState::kAbsent);
  EXPECT_FALSE(Apply(Record{}, DeleteRequest{}).next.has_value());
}

TEST(GuessRulesTest, AbsentAndNoGuessesRecordsAnswerWithoutWriting) {
  VaultTestClient client(kTestRealmId);
  client.Register2("1234", 3);
  Record exhausted;
  exhausted.state = RecordState::kNoGuesses;
  EXPECT_EQ(std::get<Recover1Response>(Apply(Record{}, Recover1Request{}).response).status,
            Recover1Response::Status::kNotRegistered);
  EXPECT_EQ(std::get<Recover2Response>(Apply(exhausted, client.Recover2("1234")).response).status,
            Recover2Response::Status::kNoGuesses);
  GuessStep r3 = Apply(exhausted, client.Recover3(client.CorrectTag()));
  EXPECT_EQ(std::get<Recover3Response>(r3.response).status, Recover3Response::Status::kNoGuesses);
  EXPECT_FALSE(r3.next.has_value());
}

TEST(GuessRulesTest, InvalidBlindedInputIsRejectedBeforeAnyRecord) {
  VaultTestClient client(kTestRealmId);
  client.Register2("1234", 3);
  protocol::Recover2Request request = client.Recover2("1234");
  request.oprf_blinded_input.fill(0xff);
  EXPECT_THAT(ValidateRequest(request), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace pinvault::vault
