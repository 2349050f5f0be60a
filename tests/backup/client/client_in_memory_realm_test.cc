// The in-memory test realm follows the realm-side rules of PROTOCOL-NOTES (f), so that the
// client tests (and server tests that borrow it) exercise the real guess semantics.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/testing/in_memory_realm.h"
#include "tests/testing/status_matchers.h"
#include "vault/protocol/oprf.h"

namespace pinvault::testing {
namespace {

using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using protocol::SecretsResponse;
using State = InMemoryRealm::RecordState;

template <size_t N>
std::array<uint8_t, N> HexArray(const nlohmann::json& value) {
  StatusOr<Bytes> bytes = HexDecode(value.get<std::string>());
  EXPECT_OK(bytes);
  std::array<uint8_t, N> out{};
  if (!bytes.ok()) return out;
  std::copy_n(bytes->begin(), N, out.begin());
  return out;
}

// The Register2 the real SDK sent in case 1 (num_guesses 5).
protocol::Register2Request RecordedRegister2() {
  std::ifstream in(std::string(PINVAULT_TEST_DATA) + "/juicebox/case1_fastinsecure_1realm.json");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const nlohmann::json r = nlohmann::json::parse(buffer.str())["realms"][0]["register2"];
  protocol::Register2Request request;
  request.version = HexArray<16>(r["version"]);
  request.oprf_private_key = SecretBytes::CopyFrom(HexArray<32>(r["oprf_private_key"]));
  request.oprf_signed_public_key.public_key =
      HexArray<32>(r["oprf_signed_public_key"]["public_key"]);
  request.oprf_signed_public_key.verifying_key =
      HexArray<32>(r["oprf_signed_public_key"]["verifying_key"]);
  request.oprf_signed_public_key.signature = HexArray<64>(r["oprf_signed_public_key"]["signature"]);
  request.unlock_key_commitment = HexArray<32>(r["unlock_key_commitment"]);
  request.unlock_key_tag = HexArray<16>(r["unlock_key_tag"]);
  request.encryption_key_scalar_share =
      SecretBytes::CopyFrom(HexArray<32>(r["encryption_key_scalar_share"]));
  request.encrypted_secret = HexArray<145>(r["encrypted_secret"]);
  request.encrypted_secret_commitment = HexArray<16>(r["encrypted_secret_commitment"]);
  request.policy.num_guesses = r["policy"]["num_guesses"].get<uint16_t>();
  return request;
}

class InMemoryRealmTest : public ::testing::Test {
 protected:
  InMemoryRealmTest() : realm_(protocol::RealmId{1}), registration_(RecordedRegister2()) {}

  SecretsResponse Do(protocol::SecretsRequest request, const std::string& user = "alice") {
    StatusOr<SecretsResponse> response =
        realm_.Handle(vault::RequestContext{"tenant", user}, std::move(request));
    EXPECT_OK(response);
    return response.ok() ? std::move(response).value() : SecretsResponse();
  }

  void Register() {
    protocol::Register2Request copy;
    copy.version = registration_.version;
    copy.oprf_private_key = registration_.oprf_private_key.Clone();
    copy.oprf_signed_public_key = registration_.oprf_signed_public_key;
    copy.unlock_key_commitment = registration_.unlock_key_commitment;
    copy.unlock_key_tag = registration_.unlock_key_tag;
    copy.encryption_key_scalar_share = registration_.encryption_key_scalar_share.Clone();
    copy.encrypted_secret = registration_.encrypted_secret;
    copy.encrypted_secret_commitment = registration_.encrypted_secret_commitment;
    copy.policy = registration_.policy;
    EXPECT_TRUE(std::holds_alternative<protocol::Register2Response>(Do(std::move(copy))));
  }

  Recover2Response Recover2(const protocol::PointBytes& input) {
    protocol::Recover2Request request{registration_.version, input};
    return std::get<Recover2Response>(Do(request));
  }

  Recover3Response Recover3(const protocol::UnlockKeyTag& tag) {
    protocol::Recover3Request request{registration_.version, tag};
    return std::get<Recover3Response>(Do(request));
  }

  protocol::PointBytes Input() {
    StatusOr<protocol::BlindedInput> blinded = protocol::Blind(AsBytes("some access key"));
    EXPECT_OK(blinded);
    if (!blinded.ok()) return protocol::PointBytes{};
    return blinded->blinded_input;
  }

  protocol::UnlockKeyTag WrongTag() {
    protocol::UnlockKeyTag tag = registration_.unlock_key_tag;
    tag[0] ^= 1;
    return tag;
  }

  vault::RequestContext Alice() { return {"tenant", "alice"}; }

  InMemoryRealm realm_;
  protocol::Register2Request registration_;
};

TEST_F(InMemoryRealmTest, UnregisteredAnswers) {
  EXPECT_TRUE(
      std::holds_alternative<protocol::Register1Response>(Do(protocol::Register1Request{})));
  EXPECT_EQ(std::get<Recover1Response>(Do(protocol::Recover1Request{})).status,
            Recover1Response::Status::kNotRegistered);
  EXPECT_EQ(Recover2(Input()).status, Recover2Response::Status::kNotRegistered);
  EXPECT_EQ(Recover3(registration_.unlock_key_tag).status,
            Recover3Response::Status::kNotRegistered);
  EXPECT_TRUE(std::holds_alternative<protocol::DeleteResponse>(Do(protocol::DeleteRequest{})));
  EXPECT_EQ(realm_.State(Alice()), State::kNotRegistered);
}

TEST_F(InMemoryRealmTest, Recover2CountsTheGuessAndProves) {
  Register();
  Recover1Response r1 = std::get<Recover1Response>(Do(protocol::Recover1Request{}));
  EXPECT_EQ(r1.status, Recover1Response::Status::kOk);
  EXPECT_EQ(r1.version, registration_.version);
  EXPECT_EQ(realm_.GuessCount(Alice()), 0);  // Recover1 is free

  protocol::PointBytes input = Input();
  Recover2Response r2 = Recover2(input);
  ASSERT_EQ(r2.status, Recover2Response::Status::kOk);
  EXPECT_EQ(r2.guess_count, 1);  // the incremented count
  EXPECT_EQ(r2.num_guesses, 5);
  EXPECT_EQ(r2.unlock_key_commitment, registration_.unlock_key_commitment);
  EXPECT_EQ(r2.oprf_signed_public_key, registration_.oprf_signed_public_key);
  EXPECT_OK(protocol::VerifyProof(r2.oprf_signed_public_key.public_key, input,
                                  r2.oprf_blinded_result, r2.oprf_proof));
  EXPECT_EQ(realm_.GuessCount(Alice()), 1);
  // Another user is untouched.
  EXPECT_EQ(realm_.State(vault::RequestContext{"tenant", "bob"}), State::kNotRegistered);
  EXPECT_EQ(realm_.State(vault::RequestContext{"other-tenant", "alice"}), State::kNotRegistered);
}

TEST_F(InMemoryRealmTest, VersionMismatchIsCheckedBeforeTheGuessLimit) {
  Register();
  protocol::Recover2Request request{registration_.version, Input()};
  request.version[0] ^= 1;
  EXPECT_EQ(std::get<Recover2Response>(Do(request)).status,
            Recover2Response::Status::kVersionMismatch);
  protocol::Recover3Request r3{request.version, registration_.unlock_key_tag};
  EXPECT_EQ(std::get<Recover3Response>(Do(r3)).status, Recover3Response::Status::kVersionMismatch);
  EXPECT_EQ(realm_.GuessCount(Alice()), 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Recover2(Input()).status, Recover2Response::Status::kOk);
  // Out of guesses, a wrong version still reads VersionMismatch and destroys nothing.
  EXPECT_EQ(std::get<Recover2Response>(Do(request)).status,
            Recover2Response::Status::kVersionMismatch);
  EXPECT_EQ(realm_.State(Alice()), State::kRegistered);
}

TEST_F(InMemoryRealmTest, BadInputsChangeNothing) {
  Register();
  protocol::PointBytes identity{};
  protocol::PointBytes noncanonical;
  noncanonical.fill(0xff);
  for (const protocol::PointBytes& bad : {identity, noncanonical}) {
    StatusOr<SecretsResponse> response =
        realm_.Handle(Alice(), protocol::Recover2Request{registration_.version, bad});
    EXPECT_THAT(response, StatusIs(StatusCode::kInvalidArgument));
  }
  EXPECT_EQ(realm_.GuessCount(Alice()), 0);

  protocol::Register2Request bad = RecordedRegister2();
  for (uint8_t& b : bad.oprf_private_key.RevealMutable()) b = 0xff;  // not < l
  EXPECT_THAT(realm_.Handle(Alice(), std::move(bad)), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(realm_.RegisteredVersion(Alice()), registration_.version);

  realm_.SetUnavailable(true);
  EXPECT_THAT(realm_.Ready(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(realm_.Handle(Alice(), protocol::Recover1Request{}),
              StatusIs(StatusCode::kUnavailable));
  realm_.SetUnavailable(false);
  EXPECT_OK(realm_.Ready());
}

TEST_F(InMemoryRealmTest, BadTagCountsDownAndDestroysAtZero) {
  Register();
  EXPECT_EQ(Recover2(Input()).guess_count, 1);
  Recover3Response bad = Recover3(WrongTag());
  EXPECT_EQ(bad.status, Recover3Response::Status::kBadUnlockKeyTag);
  EXPECT_EQ(bad.guesses_remaining, 4);
  for (uint16_t count = 2; count <= 5; ++count) EXPECT_EQ(Recover2(Input()).guess_count, count);
  EXPECT_EQ(Recover2(Input()).status, Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(realm_.State(Alice()), State::kNoGuesses);
  EXPECT_EQ(std::get<Recover1Response>(Do(protocol::Recover1Request{})).status,
            Recover1Response::Status::kNoGuesses);
  EXPECT_EQ(Recover3(registration_.unlock_key_tag).status, Recover3Response::Status::kNoGuesses);
  // Register2 starts over from NoGuesses.
  Register();
  EXPECT_EQ(realm_.GuessCount(Alice()), 0);
}

TEST_F(InMemoryRealmTest, BadTagAtTheLastGuessDestroys) {
  Register();
  for (int i = 0; i < 5; ++i) Recover2(Input());
  Recover3Response bad = Recover3(WrongTag());
  EXPECT_EQ(bad.status, Recover3Response::Status::kBadUnlockKeyTag);
  EXPECT_EQ(bad.guesses_remaining, 0);
  EXPECT_EQ(realm_.State(Alice()), State::kNoGuesses);
}

TEST_F(InMemoryRealmTest, GoodTagAfterTheLastGuessStillSucceedsAndResets) {
  Register();
  for (int i = 0; i < 5; ++i) Recover2(Input());
  Recover3Response good = Recover3(registration_.unlock_key_tag);
  ASSERT_EQ(good.status, Recover3Response::Status::kOk);
  EXPECT_TRUE(good.encryption_key_scalar_share.Equals(registration_.encryption_key_scalar_share));
  EXPECT_EQ(good.encrypted_secret, registration_.encrypted_secret);
  EXPECT_EQ(good.encrypted_secret_commitment, registration_.encrypted_secret_commitment);
  EXPECT_EQ(realm_.GuessCount(Alice()), 0);
}

TEST_F(InMemoryRealmTest, Recover1DestroysAnExhaustedRecord) {
  Register();
  for (int i = 0; i < 5; ++i) Recover2(Input());
  EXPECT_EQ(realm_.State(Alice()), State::kRegistered);
  EXPECT_EQ(std::get<Recover1Response>(Do(protocol::Recover1Request{})).status,
            Recover1Response::Status::kNoGuesses);
  EXPECT_EQ(realm_.State(Alice()), State::kNoGuesses);
  // Delete clears even a NoGuesses record.
  Do(protocol::DeleteRequest{});
  EXPECT_EQ(realm_.State(Alice()), State::kNotRegistered);
}

}  // namespace
}  // namespace pinvault::testing
