// Cross-implementation: in-memory realms are loaded directly with the Register2 fields the
// real Juicebox SDK 0.3.7 sent (tests/data/juicebox/case*.json), and our client must
// recover the recorded secret with the recorded PIN and count wrong guesses down exactly
// as the SDK saw.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "backup/client/client.h"
#include "tests/testing/in_memory_realm.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::FixedTokenProvider;
using ::pinvault::testing::InMemoryRealm;
using ::pinvault::testing::InMemoryTransport;
using Json = nlohmann::json;

constexpr char kUser[] = "a1b2c3d4e5f60718293a4b5c6d7e8f90";  // the transcripts' secret_id

Json LoadCase(const std::string& name) {
  std::ifstream in(std::string(PINVAULT_TEST_DATA) + "/juicebox/" + name);
  std::stringstream buffer;
  buffer << in.rdbuf();
  Json j = Json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << name;
  return j;
}

Bytes Hex(const Json& value) {
  StatusOr<Bytes> bytes = HexDecode(value.get<std::string>());
  EXPECT_OK(bytes) << value;
  return bytes.ok() ? *bytes : Bytes();
}

template <size_t N>
std::array<uint8_t, N> HexArray(const Json& value) {
  Bytes bytes = Hex(value);
  std::array<uint8_t, N> out{};
  EXPECT_EQ(bytes.size(), N) << value;
  std::copy_n(bytes.begin(), std::min(N, bytes.size()), out.begin());
  return out;
}

SecretBytes HexSecret(const Json& value) { return SecretBytes::CopyFrom(Hex(value)); }

// Register2FromTranscript rebuilds the Register2 request the SDK sent to one realm.
protocol::Register2Request Register2FromTranscript(const Json& r) {
  protocol::Register2Request request;
  request.version = HexArray<protocol::kVersionSize>(r["version"]);
  request.oprf_private_key = HexSecret(r["oprf_private_key"]);
  request.oprf_signed_public_key.public_key =
      HexArray<protocol::kPointSize>(r["oprf_signed_public_key"]["public_key"]);
  request.oprf_signed_public_key.verifying_key =
      HexArray<protocol::kEd25519PublicKeySize>(r["oprf_signed_public_key"]["verifying_key"]);
  request.oprf_signed_public_key.signature =
      HexArray<protocol::kEd25519SignatureSize>(r["oprf_signed_public_key"]["signature"]);
  request.unlock_key_commitment =
      HexArray<protocol::kUnlockKeyCommitmentSize>(r["unlock_key_commitment"]);
  request.unlock_key_tag = HexArray<protocol::kUnlockKeyTagSize>(r["unlock_key_tag"]);
  request.encryption_key_scalar_share = HexSecret(r["encryption_key_scalar_share"]);
  request.encrypted_secret = HexArray<protocol::kEncryptedSecretSize>(r["encrypted_secret"]);
  request.encrypted_secret_commitment =
      HexArray<protocol::kEncryptedSecretCommitmentSize>(r["encrypted_secret_commitment"]);
  request.policy.num_guesses = r["policy"]["num_guesses"].get<uint16_t>();
  return request;
}

// Fixture: the transcript's realms, loaded with what the SDK registered, behind a routing
// transport, and a client for the transcript's configuration.
class TranscriptRealms {
 public:
  explicit TranscriptRealms(const Json& transcript)
      : transcript_(transcript), transport_(std::make_shared<InMemoryTransport>()) {}

  // Load registers the transcript's realms and creates the client; call it under
  // ASSERT_NO_FATAL_FAILURE before anything else.
  void Load() {
    for (const Json& entry : transcript_["realms"]) {
      ASSERT_OK_AND_ASSIGN(RealmId id, ParseRealmId(entry["id"].get<std::string>()));
      auto realm = std::make_shared<InMemoryRealm>(id);
      StatusOr<protocol::SecretsResponse> loaded =
          realm->Handle(vault::RequestContext{std::string(InMemoryTransport::kTenant), kUser},
                        Register2FromTranscript(entry["register2"]));
      EXPECT_OK(loaded);
      transport_->AddRealm(id, realm);
      realms_.push_back(realm);
      ids_.push_back(id);
    }
    ASSERT_OK_AND_ASSIGN(configuration_,
                         Configuration::FromJson(transcript_["configuration"].dump()));
    ASSERT_OK_AND_ASSIGN(client_, Client::Create(*configuration_, {}, transport_,
                                                 std::make_shared<FixedTokenProvider>(kUser)));
  }

  RecoverResult Recover(const SecretBytes& pin) const {
    return client_->Recover(pin, Hex(transcript_["info_hex"]));
  }
  RecoverResult Recover(std::string_view pin_utf8) const {
    return Recover(SecretBytes::CopyFrom(AsBytes(pin_utf8)));
  }
  SecretBytes RecordedPin() const { return HexSecret(transcript_["pin_hex"]); }
  Bytes RecordedSecret() const { return Hex(transcript_["secret_hex"]); }

  void ExpectRecordedSecret() const {
    RecoverResult result = Recover(RecordedPin());
    ASSERT_TRUE(result.ok()) << result.error().ToString();
    EXPECT_TRUE(result.value().Equals(RecordedSecret()));
  }

  const Configuration& configuration() const { return *configuration_; }
  const std::vector<RealmId>& ids() const { return ids_; }
  InMemoryTransport& transport() const { return *transport_; }
  const Client& client() const { return *client_; }
  const InMemoryRealm& realm(size_t i) const { return *realms_[i]; }

 private:
  Json transcript_;
  std::shared_ptr<InMemoryTransport> transport_;
  std::vector<std::shared_ptr<InMemoryRealm>> realms_;
  std::vector<RealmId> ids_;                    // transcript order
  std::optional<Configuration> configuration_;  // set by Load
  std::unique_ptr<Client> client_;
};

TEST(SdkTranscriptTest, Case1RecoversTheRecordedSecret) {
  Json transcript = LoadCase("case1_fastinsecure_1realm.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  realms.ExpectRecordedSecret();
  EXPECT_EQ(realms.realm(0).GuessCount(
                vault::RequestContext{std::string(InMemoryTransport::kTenant), kUser}),
            0);
}

TEST(SdkTranscriptTest, Case1WrongPinCountsDownAsTheSdkSaw) {
  Json transcript = LoadCase("case1_fastinsecure_1realm.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());

  // recover_wrong_pin, then recover_correct_pin (which resets the count).
  RecoverResult wrong =
      realms.Recover(transcript["recover_wrong_pin"]["pin_utf8"].get<std::string>());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(wrong.error().guesses_remaining,
            transcript["recover_wrong_pin"]["sdk_result"]["guesses_remaining"].get<int>());
  EXPECT_EQ(wrong.error().guesses_remaining, 4);
  realms.ExpectRecordedSecret();

  // exhaust_guesses: the SDK saw InvalidPin 4, 3, 2, 1, 0 and then 0 (Recover1 NoGuesses).
  const Json& attempts = transcript["exhaust_guesses"]["attempts"];
  ASSERT_EQ(attempts.size(), 6u);
  const std::string pin = transcript["exhaust_guesses"]["pin_utf8"].get<std::string>();
  std::vector<int> seen;
  for (const Json& attempt : attempts) {
    RecoverResult result = realms.Recover(pin);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(ErrorKindName(result.kind()),
              attempt["sdk_result"]["reason_name"].get<std::string>());
    EXPECT_EQ(result.error().guesses_remaining,
              attempt["sdk_result"]["guesses_remaining"].get<int>());
    seen.push_back(result.error().guesses_remaining);
  }
  EXPECT_EQ(seen, (std::vector<int>{4, 3, 2, 1, 0, 0}));
  // The last attempt was answered at Recover1 (NoGuesses), as in the transcript.
  EXPECT_EQ(attempts[5]["exchanges"].size(), 1u);

  // Nothing left: the recorded PIN fails too.
  RecoverResult after = realms.Recover(realms.RecordedPin());
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(after.error().guesses_remaining, 0);
  EXPECT_EQ(
      realms.realm(0).State(vault::RequestContext{std::string(InMemoryTransport::kTenant), kUser}),
      InMemoryRealm::RecordState::kNoGuesses);
}

TEST(SdkTranscriptTest, Case1DeleteThenNotRegistered) {
  Json transcript = LoadCase("case1_fastinsecure_1realm.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  ASSERT_TRUE(realms.client().Delete().ok());
  RecoverResult result = realms.Recover(realms.RecordedPin());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(ErrorKindName(result.kind()),
            transcript["recover_after_delete"]["sdk_result"]["reason_name"].get<std::string>());
}

TEST(SdkTranscriptTest, Case2Standard2019RecoversTheRecordedSecret) {
  Json transcript = LoadCase("case2_standard2019_1realm.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  EXPECT_EQ(realms.configuration().pin_hashing_mode(), protocol::PinHashingMode::kStandard2019);
  realms.ExpectRecordedSecret();
}

TEST(SdkTranscriptTest, Case3ShareIndicesMatchTheSdk) {
  Json transcript = LoadCase("case3_fastinsecure_3realms_2of3.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  for (const Json& entry : transcript["realms"]) {
    ASSERT_OK_AND_ASSIGN(RealmId id, ParseRealmId(entry["id"].get<std::string>()));
    StatusOr<protocol::ShareIndex> index = realms.configuration().ShareIndexOf(id);
    ASSERT_OK(index);
    EXPECT_EQ(*index, entry["share_index"].get<protocol::ShareIndex>());
  }
}

TEST(SdkTranscriptTest, Case3RecoversWithAllThreeRealms) {
  Json transcript = LoadCase("case3_fastinsecure_3realms_2of3.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  realms.ExpectRecordedSecret();
}

TEST(SdkTranscriptTest, Case3RecoversWithAnyTwoRealms) {
  Json transcript = LoadCase("case3_fastinsecure_3realms_2of3.json");
  for (size_t down = 0; down < 3; ++down) {
    SCOPED_TRACE("realm down: " + transcript["realms"][down]["id"].get<std::string>());
    TranscriptRealms realms(transcript);
    ASSERT_NO_FATAL_FAILURE(realms.Load());
    realms.transport().SetDown(realms.ids()[down], true);
    realms.ExpectRecordedSecret();
    EXPECT_EQ(realms.transport().RequestCount(realms.ids()[down], "Recover2"), 0u);
    // Only the two live realms took part: each was asked once per step.
    for (size_t i = 0; i < 3; ++i) {
      if (i == down) continue;
      EXPECT_EQ(realms.transport().RequestCount(realms.ids()[i], "Recover2"), 1u);
      EXPECT_EQ(realms.transport().RequestCount(realms.ids()[i], "Recover3"), 1u);
    }
  }
}

TEST(SdkTranscriptTest, Case3WithTwoRealmsDownFails) {
  // Two realms down out of three: below the threshold, nothing is recovered.
  Json transcript = LoadCase("case3_fastinsecure_3realms_2of3.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  realms.transport().SetDown(realms.ids()[0], true);
  realms.transport().SetDown(realms.ids()[1], true);
  RecoverResult result = realms.Recover(realms.RecordedPin());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.kind(), ErrorKind::kTransient);
}

TEST(SdkTranscriptTest, Case3WrongPinCountsDown) {
  Json transcript = LoadCase("case3_fastinsecure_3realms_2of3.json");
  TranscriptRealms realms(transcript);
  ASSERT_NO_FATAL_FAILURE(realms.Load());
  const int num_guesses = transcript["num_guesses"].get<int>();
  for (int expected = num_guesses - 1; expected >= 0; --expected) {
    RecoverResult result = realms.Recover("wrong horse");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.kind(), ErrorKind::kInvalidPin);
    EXPECT_EQ(result.error().guesses_remaining, expected);
  }
  RecoverResult after = realms.Recover(realms.RecordedPin());
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.kind(), ErrorKind::kInvalidPin);
  EXPECT_EQ(after.error().guesses_remaining, 0);
}

}  // namespace
}  // namespace pinvault::backup
