// Tests for the Juicebox CBOR codec: canonical encodings, strict request decoding, and
// robustness against truncated, mutated and hostile input.
#include "api/codec/cbor_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <variant>

#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::StatusIs;
using protocol::SecretsRequest;
using protocol::SecretsResponse;
using ::testing::HasSubstr;

Bytes Hex(std::string_view hex) {
  auto bytes = HexDecode(hex);
  EXPECT_OK(bytes) << hex;
  return bytes.ok() ? *bytes : Bytes();
}

template <size_t N>
std::array<uint8_t, N> Filled(uint8_t seed) {
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = static_cast<uint8_t>(seed + i);
  return out;
}

SecretBytes SecretFilled(size_t n, uint8_t seed) {
  SecretBytes out(n);
  for (size_t i = 0; i < n; ++i) out.RevealMutable()[i] = static_cast<uint8_t>(seed * 3 + i);
  return out;
}

protocol::Register2Request SampleRegister2(uint16_t num_guesses) {
  protocol::Register2Request r;
  r.version = Filled<16>(1);
  r.oprf_private_key = SecretFilled(32, 2);
  r.oprf_signed_public_key.public_key = Filled<32>(3);
  r.oprf_signed_public_key.verifying_key = Filled<32>(4);
  r.oprf_signed_public_key.signature = Filled<64>(5);
  r.unlock_key_commitment = Filled<32>(6);
  r.unlock_key_tag = Filled<16>(7);
  r.encryption_key_scalar_share = SecretFilled(32, 8);
  r.encrypted_secret = Filled<145>(9);
  r.encrypted_secret_commitment = Filled<16>(10);
  r.policy.num_guesses = num_guesses;
  return r;
}

Bytes MustEncode(const SecretsRequest& request) {
  auto encoded = EncodeRequestCbor(request);
  EXPECT_OK(encoded);
  return encoded.ok() ? *encoded : Bytes();
}

Bytes MustEncode(const SecretsResponse& response) {
  auto encoded = EncodeResponseCbor(response);
  EXPECT_OK(encoded);
  return encoded.ok() ? *encoded : Bytes();
}

Bytes Register2Body(uint16_t num_guesses = 5) {
  return MustEncode(SecretsRequest(SampleRegister2(num_guesses)));
}

// All six request kinds, encoded canonically.
std::vector<Bytes> AllRequestBodies() {
  protocol::Recover2Request recover2{Filled<16>(20), Filled<32>(21)};
  protocol::Recover3Request recover3{Filled<16>(22), Filled<16>(23)};
  return {MustEncode(SecretsRequest(protocol::Register1Request{})),
          Register2Body(),
          MustEncode(SecretsRequest(protocol::Recover1Request{})),
          MustEncode(SecretsRequest(recover2)),
          MustEncode(SecretsRequest(recover3)),
          MustEncode(SecretsRequest(protocol::DeleteRequest{}))};
}

Status DecodeError(const Bytes& body) {
  auto decoded = DecodeRequestCbor(body);
  if (decoded.ok()) return OkStatus();
  return decoded.status();
}

// ---- canonical request encodings (PROTOCOL-NOTES g.3) ----

TEST(CborCodecTest, UnitRequestsAreBareTextStrings) {
  EXPECT_EQ(HexEncode(MustEncode(SecretsRequest(protocol::Register1Request{}))),
            "69526567697374657231");
  EXPECT_EQ(HexEncode(MustEncode(SecretsRequest(protocol::Recover1Request{}))),
            "685265636f76657231");
  EXPECT_EQ(HexEncode(MustEncode(SecretsRequest(protocol::DeleteRequest{}))), "6644656c657465");
}

TEST(CborCodecTest, Register2SizeDependsOnlyOnNumGuessesHead) {
  EXPECT_EQ(Register2Body(5).size(), 663u);
  EXPECT_EQ(Register2Body(23).size(), 663u);
  EXPECT_EQ(Register2Body(24).size(), 664u);
  EXPECT_EQ(Register2Body(255).size(), 664u);
  EXPECT_EQ(Register2Body(256).size(), 665u);
  EXPECT_EQ(Register2Body(65535).size(), 665u);
}

TEST(CborCodecTest, Register2LayoutMatchesTheSdk) {
  Bytes body = Register2Body(5);
  // a1 69"Register2" a9 67"version" 50<16>
  EXPECT_EQ(HexEncode(ByteView(body).first(24)),
            "a169526567697374657232a96776657273696f6e50" + HexEncode(Filled<16>(1)).substr(0, 6));
  // ... 66"policy" a1 6b"num_guesses" 05 at the very end.
  EXPECT_EQ(HexEncode(ByteView(body).last(21)), "66706f6c696379a16b6e756d5f6775657373657305");
}

TEST(CborCodecTest, Recover2AndRecover3HaveTheRecordedSizes) {
  protocol::Recover2Request recover2{Filled<16>(1), Filled<32>(2)};
  protocol::Recover3Request recover3{Filled<16>(3), Filled<16>(4)};
  EXPECT_EQ(MustEncode(SecretsRequest(recover2)).size(), 89u);
  EXPECT_EQ(MustEncode(SecretsRequest(recover3)).size(), 68u);
}

TEST(CborCodecTest, EveryRequestRoundTrips) {
  for (const Bytes& body : AllRequestBodies()) {
    auto decoded = DecodeRequestCbor(body);
    ASSERT_OK(decoded);
    EXPECT_EQ(MustEncode(*decoded), body);
  }
}

TEST(CborCodecTest, Register2FieldsSurviveDecoding) {
  auto decoded = DecodeRequestCbor(Register2Body(7));
  ASSERT_OK(decoded);
  const auto& r = std::get<protocol::Register2Request>(*decoded);
  protocol::Register2Request want = SampleRegister2(7);
  EXPECT_EQ(r.version, want.version);
  EXPECT_TRUE(r.oprf_private_key.Equals(want.oprf_private_key));
  EXPECT_EQ(r.oprf_signed_public_key, want.oprf_signed_public_key);
  EXPECT_EQ(r.unlock_key_commitment, want.unlock_key_commitment);
  EXPECT_EQ(r.unlock_key_tag, want.unlock_key_tag);
  EXPECT_TRUE(r.encryption_key_scalar_share.Equals(want.encryption_key_scalar_share));
  EXPECT_EQ(r.encrypted_secret, want.encrypted_secret);
  EXPECT_EQ(r.encrypted_secret_commitment, want.encrypted_secret_commitment);
  EXPECT_EQ(r.policy.num_guesses, 7);
}

TEST(CborCodecTest, StructKeysMayComeInAnyOrder) {
  // {"Recover3": {"unlock_key_tag": <16>, "version": <16>}}
  std::string hex = "a1685265636f76657233a2" + std::string("6e756e6c6f636b5f6b65795f746167") +
                    "50" + HexEncode(Filled<16>(4)) + "6776657273696f6e" + "50" +
                    HexEncode(Filled<16>(3));
  auto decoded = DecodeRequestCbor(Hex(hex));
  ASSERT_OK(decoded);
  const auto& r = std::get<protocol::Recover3Request>(*decoded);
  EXPECT_EQ(r.version, Filled<16>(3));
  EXPECT_EQ(r.unlock_key_tag, Filled<16>(4));
}

TEST(CborCodecTest, EncodingRejectsWrongSizedSecrets) {
  protocol::Register2Request r = SampleRegister2(5);
  r.oprf_private_key = SecretBytes(31);
  auto encoded = EncodeRequestCbor(SecretsRequest(std::move(r)));
  EXPECT_THAT(encoded, StatusIs(StatusCode::kInvalidArgument));

  protocol::Recover3Response response;
  response.status = protocol::Recover3Response::Status::kOk;  // share left empty
  EXPECT_THAT(EncodeResponseCbor(SecretsResponse(std::move(response))),
              StatusIs(StatusCode::kInvalidArgument));
}

// ---- canonical response encodings ----

TEST(CborCodecTest, UnitResponsesAreWrappedOk) {
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(protocol::Register1Response{}))),
            "a169526567697374657231624f6b");
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(protocol::Register2Response{}))),
            "a169526567697374657232624f6b");
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(protocol::DeleteResponse{}))),
            "a16644656c657465624f6b");
}

TEST(CborCodecTest, Recover1Responses) {
  protocol::Recover1Response ok;
  ok.status = protocol::Recover1Response::Status::kOk;
  ok.version = Filled<16>(0x10);
  Bytes body = MustEncode(SecretsResponse(ok));
  EXPECT_EQ(body.size(), 40u);
  EXPECT_EQ(HexEncode(body),
            "a1685265636f76657231a1624f6ba16776657273696f6e50" + HexEncode(Filled<16>(0x10)));
  protocol::Recover1Response not_registered;
  not_registered.status = protocol::Recover1Response::Status::kNotRegistered;
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(not_registered))),
            "a1685265636f766572316d4e6f7452656769737465726564");
  protocol::Recover1Response no_guesses;
  no_guesses.status = protocol::Recover1Response::Status::kNoGuesses;
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(no_guesses))),
            "a1685265636f76657231694e6f47756573736573");
}

protocol::Recover2Response SampleRecover2Ok(uint16_t num_guesses, uint16_t guess_count) {
  protocol::Recover2Response r;
  r.status = protocol::Recover2Response::Status::kOk;
  r.oprf_signed_public_key.public_key = Filled<32>(1);
  r.oprf_signed_public_key.verifying_key = Filled<32>(2);
  r.oprf_signed_public_key.signature = Filled<64>(3);
  r.oprf_blinded_result = Filled<32>(4);
  r.oprf_proof.c = Filled<32>(5);
  r.oprf_proof.beta_z = Filled<32>(6);
  r.unlock_key_commitment = Filled<32>(7);
  r.num_guesses = num_guesses;
  r.guess_count = guess_count;
  return r;
}

TEST(CborCodecTest, Recover2OkHasTheRecordedSizeAndProofLayout) {
  Bytes body = MustEncode(SecretsResponse(SampleRecover2Ok(5, 1)));
  EXPECT_EQ(body.size(), 433u);
  std::string hex = HexEncode(body);
  // oprf_proof is {c, beta_z} in that order.
  EXPECT_THAT(
      hex, HasSubstr("6a6f7072665f70726f6f66a2616358"
                     "20" +
                     HexEncode(Filled<32>(5)) + "66626574615f7a5820" + HexEncode(Filled<32>(6))));
  // The two counters are shortest-form uints; 300 needs a two-byte head.
  EXPECT_EQ(MustEncode(SecretsResponse(SampleRecover2Ok(300, 24))).size(), 433u + 2 + 1);
}

TEST(CborCodecTest, Recover2NonOkResponses) {
  using S = protocol::Recover2Response::Status;
  const std::pair<S, std::string> cases[] = {{S::kVersionMismatch, "VersionMismatch"},
                                             {S::kNotRegistered, "NotRegistered"},
                                             {S::kNoGuesses, "NoGuesses"}};
  for (const auto& [status, name] : cases) {
    protocol::Recover2Response r;
    r.status = status;
    Bytes want = Hex("a1685265636f76657232");
    want.push_back(static_cast<uint8_t>(0x60 + name.size()));
    want.insert(want.end(), name.begin(), name.end());
    EXPECT_EQ(MustEncode(SecretsResponse(std::move(r))), want) << name;
  }
}

TEST(CborCodecTest, Recover3Responses) {
  protocol::Recover3Response ok;
  ok.status = protocol::Recover3Response::Status::kOk;
  ok.encryption_key_scalar_share = SecretFilled(32, 1);
  ok.encrypted_secret = Filled<145>(2);
  ok.encrypted_secret_commitment = Filled<16>(3);
  EXPECT_EQ(MustEncode(SecretsResponse(std::move(ok))).size(), 288u);

  protocol::Recover3Response bad;
  bad.status = protocol::Recover3Response::Status::kBadUnlockKeyTag;
  bad.guesses_remaining = 3;
  // {"Recover3": {"BadUnlockKeyTag": {"guesses_remaining": 3}}}
  EXPECT_EQ(HexEncode(MustEncode(SecretsResponse(std::move(bad)))),
            "a1685265636f76657233a16f426164556e6c6f636b4b6579546167a1"
            "7167756573736573"
            "5f72656d61696e696e6703");
}

TEST(CborCodecTest, EveryResponseRoundTrips) {
  std::vector<SecretsResponse> responses;
  responses.emplace_back(protocol::Register1Response{});
  responses.emplace_back(protocol::Register2Response{});
  responses.emplace_back(protocol::DeleteResponse{});
  for (auto s :
       {protocol::Recover1Response::Status::kOk, protocol::Recover1Response::Status::kNotRegistered,
        protocol::Recover1Response::Status::kNoGuesses}) {
    protocol::Recover1Response r;
    r.status = s;
    r.version = Filled<16>(9);
    responses.emplace_back(r);
  }
  responses.emplace_back(SampleRecover2Ok(1000, 999));
  for (auto s : {protocol::Recover2Response::Status::kVersionMismatch,
                 protocol::Recover2Response::Status::kNotRegistered,
                 protocol::Recover2Response::Status::kNoGuesses}) {
    protocol::Recover2Response r;
    r.status = s;
    responses.emplace_back(std::move(r));
  }
  for (auto s : {protocol::Recover3Response::Status::kOk,
                 protocol::Recover3Response::Status::kBadUnlockKeyTag,
                 protocol::Recover3Response::Status::kVersionMismatch,
                 protocol::Recover3Response::Status::kNotRegistered,
                 protocol::Recover3Response::Status::kNoGuesses}) {
    protocol::Recover3Response r;
    r.status = s;
    r.encryption_key_scalar_share = SecretFilled(32, 4);
    r.guesses_remaining = 0;
    responses.emplace_back(std::move(r));
  }
  for (const SecretsResponse& response : responses) {
    Bytes body = MustEncode(response);
    auto decoded = DecodeResponseCbor(body);
    ASSERT_OK(decoded) << " " << HexEncode(body);
    EXPECT_EQ(decoded->index(), response.index());
    EXPECT_EQ(MustEncode(*decoded), body);
  }
}

// ---- strict, bounded request decoding ----

TEST(CborCodecTest, RejectsEmptyAndOversizedBodies) {
  Status empty = DecodeError({});
  EXPECT_THAT(empty, StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty")));

  Bytes big = Register2Body();
  big.resize(kMaxJuiceboxBodySize + 1, 0);
  Status over = DecodeError(big);
  EXPECT_THAT(over, StatusIs(StatusCode::kInvalidArgument, HasSubstr("limit is 2048")));
}

TEST(CborCodecTest, RejectsTrailingBytes) {
  Bytes body = MustEncode(SecretsRequest(protocol::Recover1Request{}));
  body.push_back(0x00);
  Status s = DecodeError(body);
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("1 trailing bytes")));
}

TEST(CborCodecTest, RejectsIndefiniteLengths) {
  // Indefinite text "Delete" in two chunks.
  EXPECT_THAT(DecodeError(Hex("7f6344656c63657465ff")).message(), HasSubstr("indefinite"));
  // {_ "Recover3": ...}: indefinite outer map.
  EXPECT_THAT(DecodeError(Hex("bf685265636f76657233a0ff")).message(), HasSubstr("indefinite"));
  // Recover2 with an indefinite-length byte string for the version.
  std::string hex =
      "a1685265636f76657232a26776657273696f6e5f4801020304050607084801020304050607"
      "08ff726f7072665f626c696e6465645f696e7075745820" +
      HexEncode(Filled<32>(1));
  Status s = DecodeError(Hex(hex));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("Recover2.version")));
  EXPECT_THAT(s.message(), HasSubstr("indefinite"));
}

TEST(CborCodecTest, RejectsDeepNestingWithoutRecursing) {
  for (uint8_t opener : {0x81, 0xa1}) {
    Bytes body(kMaxJuiceboxBodySize - 1, opener);
    body.push_back(0x00);
    Status s = DecodeError(body);
    EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  }
  // {"Recover2": {"version": [[[[...]]]]...}}
  Bytes nested = Hex("a1685265636f76657232a26776657273696f6e");
  nested.resize(nested.size() + 1000, 0x81);
  nested.push_back(0x00);
  Status s = DecodeError(nested);
  EXPECT_THAT(s.message(), HasSubstr("Recover2.version: expected a byte string, got an array"));
}

TEST(CborCodecTest, RejectsTagsFloatsAndSimpleValues) {
  EXPECT_THAT(DecodeError(Hex("c06644656c657465")).message(), HasSubstr("got a tag"));
  EXPECT_THAT(DecodeError(Hex("fb3ff0000000000000")).message(), HasSubstr("got a float"));
  EXPECT_THAT(DecodeError(Hex("f6")).message(), HasSubstr("got a simple value"));
  EXPECT_THAT(DecodeError(Hex("ff")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeError(Hex("1c")), StatusIs(StatusCode::kInvalidArgument));  // reserved info
}

TEST(CborCodecTest, RejectsUnknownVariantsAndWrongVariantShapes) {
  EXPECT_THAT(DecodeError(Hex("69526567697374657233")).message(),
              HasSubstr("unknown request variant \"Register3\""));
  // "Register2" as a bare string: a struct variant needs its value.
  EXPECT_THAT(DecodeError(Hex("69526567697374657232")).message(), HasSubstr("needs a map"));
  // {"Register1": null}: a unit variant must be a bare string.
  EXPECT_THAT(DecodeError(Hex("a169526567697374657231f6")).message(),
              HasSubstr("bare text string"));
  // A map of two variants.
  EXPECT_THAT(DecodeError(Hex("a26644656c657465f66644656c657465f6")).message(),
              HasSubstr("one entry"));
  // A non-text key.
  EXPECT_THAT(DecodeError(Hex("a101f6")).message(), HasSubstr("text key"));
  // An integer at the top.
  EXPECT_THAT(DecodeError(Hex("05")).message(),
              HasSubstr("expected a text string or a map of one entry, got an unsigned integer"));
}

// Replaces the first occurrence of `from` with `to` in the hex spelling of `body`.
Bytes ReplaceHex(const Bytes& body, const std::string& from, const std::string& to) {
  std::string hex = HexEncode(body);
  size_t at = hex.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return body;
  hex.replace(at, from.size(), to);
  return Hex(hex);
}

TEST(CborCodecTest, RejectsWrongByteStringLengths) {
  Bytes body = MustEncode(SecretsRequest(protocol::Recover3Request{Filled<16>(0), Filled<16>(1)}));
  // Shorten the version: 50 <16 bytes> -> 4f <15 bytes>.
  std::string version = "6776657273696f6e50" + HexEncode(Filled<16>(0));
  Bytes short_version =
      ReplaceHex(body, version, "6776657273696f6e4f" + HexEncode(Filled<16>(0)).substr(2));
  Status s = DecodeError(short_version);
  EXPECT_THAT(s.message(),
              HasSubstr("Recover3.version: expected a byte string of 16 bytes, got 15"));

  // Lengthen the unlock key tag to 17 bytes.
  Bytes long_tag = ReplaceHex(body, "6e756e6c6f636b5f6b65795f74616750",
                              "6e756e6c6f636b5f6b65795f74616751"
                              "ee");
  EXPECT_THAT(DecodeError(long_tag).message(),
              HasSubstr("Recover3.unlock_key_tag: expected a byte string of 16 bytes, got 17"));
}

TEST(CborCodecTest, RejectsByteFieldsAsIntegerArrays) {
  // The SDK accepts arrays of uints in responses, but it never sends them; a request with one
  // is rejected with a type error.
  std::string version_array = "90";
  for (int i = 0; i < 16; ++i) version_array += "01";
  std::string hex = "a1685265636f76657233a26776657273696f6e" + version_array +
                    "6e756e6c6f636b5f6b65795f74616750" + HexEncode(Filled<16>(1));
  EXPECT_THAT(DecodeError(Hex(hex)).message(),
              HasSubstr("Recover3.version: expected a byte string, got an array"));
}

TEST(CborCodecTest, RejectsMissingDuplicateAndUnknownKeys) {
  std::string version = "6776657273696f6e50" + HexEncode(Filled<16>(0));
  std::string tag = "6e756e6c6f636b5f6b65795f74616750" + HexEncode(Filled<16>(1));
  // Missing: a map of one entry.
  EXPECT_THAT(DecodeError(Hex("a1685265636f76657233a1" + version)).message(),
              HasSubstr("Recover3: expected a map of 2 entries, got 1"));
  // Duplicate: version twice.
  EXPECT_THAT(DecodeError(Hex("a1685265636f76657233a2" + version + version)).message(),
              HasSubstr("duplicate field \"version\""));
  // Unknown key in place of unlock_key_tag.
  EXPECT_THAT(
      DecodeError(Hex("a1685265636f76657233a2" + version + "6378797a50" + HexEncode(Filled<16>(1))))
          .message(),
      HasSubstr("unknown field \"xyz\""));
  // Extra key: a map of three entries.
  EXPECT_THAT(DecodeError(Hex("a1685265636f76657233a3" + version + tag + "6378797a00")).message(),
              HasSubstr("expected a map of 2 entries, got 3"));
  // Policy without num_guesses.
  Bytes body = ReplaceHex(Register2Body(5), "66706f6c696379a16b6e756d5f6775657373657305",
                          "66706f6c696379a0");
  EXPECT_THAT(DecodeError(body).message(),
              HasSubstr("Register2.policy: expected a map of 1 entries, got 0"));
}

TEST(CborCodecTest, RejectsOutOfRangeAndWronglyTypedCounters) {
  Bytes big = ReplaceHex(Register2Body(5), "6b6e756d5f6775657373657305",
                         "6b6e756d5f677565737365731a00011170");
  EXPECT_THAT(DecodeError(big).message(),
              HasSubstr("Register2.policy.num_guesses: 70000 is out of range"));
  Bytes negative =
      ReplaceHex(Register2Body(5), "6b6e756d5f6775657373657305", "6b6e756d5f6775657373657320");
  EXPECT_THAT(DecodeError(negative).message(),
              HasSubstr("expected an unsigned integer, got a negative integer"));
}

TEST(CborCodecTest, ErrorMessagesDoNotEchoUnboundedInput) {
  // An unknown variant name of 1000 characters is cut short in the message.
  std::string name(1000, 'A');
  Bytes body = Hex("7903e8");
  body.insert(body.end(), name.begin(), name.end());
  Status s = DecodeError(body);
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_LT(s.message().size(), 120u);
}

TEST(CborCodecTest, EveryTruncationIsRejected) {
  for (const Bytes& body : AllRequestBodies()) {
    for (size_t n = 0; n < body.size(); ++n) {
      Bytes prefix(body.begin(), body.begin() + n);
      Status s = DecodeError(prefix);
      EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument))
          << "length " << n << " of " << body.size();
    }
  }
}

// Mutated bodies never crash the decoder; any mutation it accepts re-encodes to something
// that decodes again to the same encoding (the decoder only yields well-formed values).
TEST(CborCodecTest, RandomMutationsNeverCrash) {
  std::mt19937 rng(0x5eed);
  std::vector<Bytes> seeds = AllRequestBodies();
  int accepted = 0;
  int rejected = 0;
  for (int iteration = 0; iteration < 30000; ++iteration) {
    Bytes body = seeds[iteration % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:  // flip a bit
          body[rng() % body.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:  // random byte
          body[rng() % body.size()] = static_cast<uint8_t>(rng());
          break;
        case 2:  // delete a byte
          if (body.size() > 1) body.erase(body.begin() + (rng() % body.size()));
          break;
        default:  // insert a byte
          body.insert(body.begin() + (rng() % (body.size() + 1)), static_cast<uint8_t>(rng()));
          break;
      }
    }
    auto decoded = DecodeRequestCbor(body);
    if (!decoded.ok()) {
      ++rejected;
      EXPECT_THAT(decoded, StatusIs(StatusCode::kInvalidArgument));
      EXPECT_FALSE(decoded.status().message().empty());
      continue;
    }
    ++accepted;
    Bytes again = MustEncode(*decoded);
    auto redecoded = DecodeRequestCbor(again);
    ASSERT_OK(redecoded);
    EXPECT_EQ(MustEncode(*redecoded), again);
  }
  // Most mutations break the structure; flips inside byte-string payloads are accepted.
  EXPECT_GT(rejected, 10000);
  EXPECT_GT(accepted, 100);
}

// Random byte strings (no valid seed) are rejected without crashing.
TEST(CborCodecTest, RandomGarbageIsRejected) {
  std::mt19937 rng(42);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    Bytes body(1 + rng() % 64);
    for (auto& b : body) b = static_cast<uint8_t>(rng());
    auto decoded = DecodeRequestCbor(body);
    if (!decoded.ok()) {
      EXPECT_THAT(decoded, StatusIs(StatusCode::kInvalidArgument));
    }
  }
}

TEST(CborCodecTest, ResponseDecoderIsStrictToo) {
  // {"Register1": "Nope"}
  auto bad =
      DecodeResponseCbor(Hex("a16952656769737465723164"
                             "4e6f7065"));
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown variant \"Nope\"")));
  // {"Recover3": "BadUnlockKeyTag"}: the struct variant needs its value.
  auto unit = DecodeResponseCbor(Hex("a1685265636f766572336f426164556e6c6f636b4b6579546167"));
  EXPECT_THAT(unit.status().message(), HasSubstr("needs a map value"));
  // Every truncation of a Recover2 Ok response fails cleanly.
  Bytes body = MustEncode(SecretsResponse(SampleRecover2Ok(5, 1)));
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = DecodeResponseCbor(ByteView(body).first(n));
    EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << n;
  }
}

}  // namespace
}  // namespace pinvault::api
