// Tests for the native API's protobuf codec (binary and canonical JSON).
#include "api/codec/proto_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <variant>

#include "api/codec/cbor_codec.h"

namespace pinvault::api {
namespace {

using protocol::SecretsRequest;
using protocol::SecretsResponse;
using ::testing::HasSubstr;

template <size_t N>
std::array<uint8_t, N> Filled(uint8_t seed) {
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = static_cast<uint8_t>(seed + 7 * i);
  return out;
}

SecretBytes SecretFilled(size_t n, uint8_t seed) {
  SecretBytes out(n);
  for (size_t i = 0; i < n; ++i) out.RevealMutable()[i] = static_cast<uint8_t>(seed + i);
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

std::vector<SecretsRequest> AllRequests() {
  std::vector<SecretsRequest> out;
  out.emplace_back(protocol::Register1Request{});
  out.emplace_back(SampleRegister2(10));
  out.emplace_back(protocol::Recover1Request{});
  out.emplace_back(protocol::Recover2Request{Filled<16>(11), Filled<32>(12)});
  out.emplace_back(protocol::Recover3Request{Filled<16>(13), Filled<16>(14)});
  out.emplace_back(protocol::DeleteRequest{});
  return out;
}

std::vector<SecretsResponse> AllResponses() {
  std::vector<SecretsResponse> out;
  out.emplace_back(protocol::Register1Response{});
  out.emplace_back(protocol::Register2Response{});
  out.emplace_back(protocol::DeleteResponse{});
  for (auto s :
       {protocol::Recover1Response::Status::kOk, protocol::Recover1Response::Status::kNotRegistered,
        protocol::Recover1Response::Status::kNoGuesses}) {
    protocol::Recover1Response r;
    r.status = s;
    if (s == protocol::Recover1Response::Status::kOk) r.version = Filled<16>(1);
    out.emplace_back(r);
  }
  for (auto s : {protocol::Recover2Response::Status::kOk,
                 protocol::Recover2Response::Status::kVersionMismatch,
                 protocol::Recover2Response::Status::kNotRegistered,
                 protocol::Recover2Response::Status::kNoGuesses}) {
    protocol::Recover2Response r;
    r.status = s;
    if (s == protocol::Recover2Response::Status::kOk) {
      r.oprf_signed_public_key = {Filled<32>(1), Filled<32>(2), Filled<64>(3)};
      r.oprf_blinded_result = Filled<32>(4);
      r.oprf_proof = {Filled<32>(5), Filled<32>(6)};
      r.unlock_key_commitment = Filled<32>(7);
      r.num_guesses = 10;
      r.guess_count = 3;
    }
    out.emplace_back(std::move(r));
  }
  for (auto s : {protocol::Recover3Response::Status::kOk,
                 protocol::Recover3Response::Status::kBadUnlockKeyTag,
                 protocol::Recover3Response::Status::kVersionMismatch,
                 protocol::Recover3Response::Status::kNotRegistered,
                 protocol::Recover3Response::Status::kNoGuesses}) {
    protocol::Recover3Response r;
    r.status = s;
    if (s == protocol::Recover3Response::Status::kOk) {
      r.encryption_key_scalar_share = SecretFilled(32, 1);
      r.encrypted_secret = Filled<145>(2);
      r.encrypted_secret_commitment = Filled<16>(3);
    }
    if (s == protocol::Recover3Response::Status::kBadUnlockKeyTag) r.guesses_remaining = 2;
    out.emplace_back(std::move(r));
  }
  return out;
}

// The CBOR encoding is a convenient canonical fingerprint of a protocol value.
Bytes Fingerprint(const SecretsRequest& r) {
  auto b = EncodeRequestCbor(r);
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : Bytes();
}
Bytes Fingerprint(const SecretsResponse& r) {
  auto b = EncodeResponseCbor(r);
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : Bytes();
}

Bytes Text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Status RequestError(const Bytes& body, ProtoFormat format) {
  auto r = DecodeRequestProto(body, format);
  return r.ok() ? OkStatus() : r.status();
}

TEST(ProtoCodecTest, ContentTypes) {
  EXPECT_EQ(ProtoFormatForContentType("application/x-protobuf"), ProtoFormat::kBinary);
  EXPECT_EQ(ProtoFormatForContentType("Application/Protobuf"), ProtoFormat::kBinary);
  EXPECT_EQ(ProtoFormatForContentType("application/json; charset=utf-8"), ProtoFormat::kJson);
  EXPECT_EQ(ProtoFormatForContentType(" application/json "), ProtoFormat::kJson);
  EXPECT_EQ(ProtoFormatForContentType("text/plain"), std::nullopt);
  EXPECT_EQ(ProtoFormatForContentType("application/cbor"), std::nullopt);
  EXPECT_EQ(ProtoFormatForContentType(""), std::nullopt);
  EXPECT_EQ(ProtoContentType(ProtoFormat::kBinary), "application/x-protobuf");
  EXPECT_EQ(ProtoContentType(ProtoFormat::kJson), "application/json");
}

TEST(ProtoCodecTest, EveryRequestRoundTripsInBothFormats) {
  for (ProtoFormat format : {ProtoFormat::kBinary, ProtoFormat::kJson}) {
    for (const SecretsRequest& request : AllRequests()) {
      auto body = EncodeRequestProto(request, format);
      ASSERT_TRUE(body.ok()) << body.status();
      auto decoded = DecodeRequestProto(*body, format);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(Fingerprint(*decoded), Fingerprint(request));
    }
  }
}

TEST(ProtoCodecTest, EveryResponseRoundTripsInBothFormats) {
  for (ProtoFormat format : {ProtoFormat::kBinary, ProtoFormat::kJson}) {
    for (const SecretsResponse& response : AllResponses()) {
      auto body = EncodeResponseProto(response, format);
      ASSERT_TRUE(body.ok()) << body.status();
      auto decoded = DecodeResponseProto(*body, format);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      EXPECT_EQ(Fingerprint(*decoded), Fingerprint(response));
    }
  }
}

TEST(ProtoCodecTest, JsonIsTheCanonicalMapping) {
  protocol::Recover2Request recover2{Filled<16>(0), Filled<32>(0)};
  auto body = EncodeRequestProto(SecretsRequest(recover2), ProtoFormat::kJson);
  ASSERT_TRUE(body.ok());
  auto json = nlohmann::json::parse(std::string(body->begin(), body->end()));
  // lowerCamelCase names, bytes as standard base64.
  ASSERT_TRUE(json.contains("recover2")) << json.dump();
  EXPECT_EQ(json["recover2"]["version"], "AAcOFRwjKjE4P0ZNVFtiaQ==");
  EXPECT_TRUE(json["recover2"].contains("oprfBlindedInput"));

  protocol::Recover3Response bad;
  bad.status = protocol::Recover3Response::Status::kBadUnlockKeyTag;
  bad.guesses_remaining = 4;
  auto response = EncodeResponseProto(SecretsResponse(std::move(bad)), ProtoFormat::kJson);
  ASSERT_TRUE(response.ok());
  auto rj = nlohmann::json::parse(std::string(response->begin(), response->end()));
  EXPECT_EQ(rj["recover3"]["status"], "STATUS_BAD_UNLOCK_KEY_TAG");
  EXPECT_EQ(rj["recover3"]["guessesRemaining"], 4);

  // The parser also takes the proto field names and the empty unit messages.
  auto d = DecodeRequestProto(Text(R"({"delete": {}})"), ProtoFormat::kJson);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(std::holds_alternative<protocol::DeleteRequest>(*d));
  auto r3 = DecodeRequestProto(
      Text(
          R"({"recover3": {"version": "AAcOFRwjKjE4P0ZNVFtiaQ==", "unlock_key_tag": "AAcOFRwjKjE4P0ZNVFtiaQ=="}})"),
      ProtoFormat::kJson);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(std::get<protocol::Recover3Request>(*r3).unlock_key_tag, Filled<16>(0));
}

TEST(ProtoCodecTest, RejectsWrongSizesWithTheFieldName) {
  Status s = RequestError(Text(R"({"recover2": {"version": "AAAA", "oprfBlindedInput": "AAAA"}})"),
                          ProtoFormat::kJson);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("recover2.version: expected 16 bytes, got 3"));

  // Register2 with a 31-byte key share.
  protocol::Register2Request r = SampleRegister2(5);
  auto body = EncodeRequestProto(SecretsRequest(std::move(r)), ProtoFormat::kJson);
  ASSERT_TRUE(body.ok());
  auto json = nlohmann::json::parse(std::string(body->begin(), body->end()));
  json["register2"]["oprfPrivateKey"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";  // 31 bytes
  s = RequestError(Text(json.dump()), ProtoFormat::kJson);
  EXPECT_THAT(s.message(), HasSubstr("register2.oprf_private_key: expected 32 bytes, got 31"));

  json = nlohmann::json::parse(std::string(body->begin(), body->end()));
  json["register2"]["policy"]["numGuesses"] = 70000;
  s = RequestError(Text(json.dump()), ProtoFormat::kJson);
  EXPECT_THAT(s.message(), HasSubstr("register2.policy.num_guesses: 70000 is out of range"));

  json = nlohmann::json::parse(std::string(body->begin(), body->end()));
  json["register2"].erase("policy");
  s = RequestError(Text(json.dump()), ProtoFormat::kJson);
  EXPECT_THAT(s.message(), HasSubstr("register2.policy: missing"));
}

// The JSON parser's reason may quote the body; the reason given for the log never does.
TEST(ProtoCodecTest, LogReasonNeverQuotesTheBody) {
  std::string log_reason;
  auto bad_json = DecodeRequestProto(Text(R"({"register3": "c2VjcmV0LXNoYXJl"})"),
                                     ProtoFormat::kJson, &log_reason);
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(log_reason, "request JSON does not match SecretsRequest");
  EXPECT_EQ(log_reason.find("c2VjcmV0"), std::string::npos);
  auto bad_field = DecodeRequestProto(Text(R"({"recover2": {"version": "AAAA"}})"),
                                      ProtoFormat::kJson, &log_reason);
  ASSERT_FALSE(bad_field.ok());
  EXPECT_EQ(log_reason, bad_field.status().message());
  auto bad_binary = DecodeRequestProto(Bytes{0x12, 0x40, 0x0a}, ProtoFormat::kBinary, &log_reason);
  ASSERT_FALSE(bad_binary.ok());
  EXPECT_EQ(log_reason, bad_binary.status().message());
}

TEST(ProtoCodecTest, RejectsEmptyAndUnknownContent) {
  EXPECT_THAT(RequestError({}, ProtoFormat::kBinary).message(), HasSubstr("no request is set"));
  EXPECT_THAT(RequestError(Text("{}"), ProtoFormat::kJson).message(),
              HasSubstr("no request is set"));
  EXPECT_THAT(RequestError(Text(R"({"register3": {}})"), ProtoFormat::kJson).message(),
              HasSubstr("JSON does not match SecretsRequest"));
  EXPECT_THAT(RequestError(Text(R"({"delete": {}, "recover1": {}})"), ProtoFormat::kJson).code(),
              StatusCode::kInvalidArgument);
  EXPECT_THAT(RequestError(Text("{\"delete\": "), ProtoFormat::kJson).code(),
              StatusCode::kInvalidArgument);
  EXPECT_THAT(RequestError(Text("not json"), ProtoFormat::kJson).code(),
              StatusCode::kInvalidArgument);
  // Binary: field 6 (delete, empty) followed by an unknown field 99 (varint 1).
  Bytes unknown = {0x32, 0x00, 0x98, 0x06, 0x01};
  EXPECT_THAT(RequestError(unknown, ProtoFormat::kBinary).message(),
              HasSubstr("unknown field number 99"));
  // An unknown field nested inside recover1.
  Bytes nested = {0x1a, 0x02, 0x08, 0x01};
  EXPECT_THAT(RequestError(nested, ProtoFormat::kBinary).message(),
              HasSubstr("recover1: unknown field number 1"));
  // A wire-type mismatch is not a valid message.
  Bytes garbage = {0x32, 0x05, 0x00};
  EXPECT_THAT(RequestError(garbage, ProtoFormat::kBinary).message(),
              HasSubstr("not a valid SecretsRequest message"));
  // Over the size limit.
  Bytes big(kMaxProtoBodySize + 1, 0);
  EXPECT_THAT(RequestError(big, ProtoFormat::kBinary).message(), HasSubstr("the limit is 8192"));
}

TEST(ProtoCodecTest, ResponseStatusMustBeKnown) {
  auto r = DecodeResponseProto(Text(R"({"recover1": {}})"), ProtoFormat::kJson);
  EXPECT_THAT(r.status().message(), HasSubstr("recover1.status: unknown or unspecified"));
  // Binary recover2 with status 42 (an open-enum value the schema does not define).
  Bytes unknown_status = {0x22, 0x02, 0x08, 0x2a};
  auto r2 = DecodeResponseProto(unknown_status, ProtoFormat::kBinary);
  EXPECT_THAT(r2.status().message(), HasSubstr("recover2.status"));
}

TEST(ProtoCodecTest, EveryTruncationIsRejected) {
  for (ProtoFormat format : {ProtoFormat::kBinary, ProtoFormat::kJson}) {
    for (const SecretsRequest& request : AllRequests()) {
      auto body = EncodeRequestProto(request, format);
      ASSERT_TRUE(body.ok());
      for (size_t n = 0; n < body->size(); ++n) {
        Status s = RequestError(Bytes(body->begin(), body->begin() + n), format);
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument)
            << (format == ProtoFormat::kJson ? "json" : "binary") << " length " << n;
      }
    }
  }
}

TEST(ProtoCodecTest, RandomMutationsNeverCrash) {
  std::mt19937 rng(7);
  std::vector<Bytes> seeds;
  for (ProtoFormat format : {ProtoFormat::kBinary, ProtoFormat::kJson}) {
    for (const SecretsRequest& request : AllRequests()) {
      seeds.push_back(*EncodeRequestProto(request, format));
    }
  }
  int accepted = 0;
  for (int iteration = 0; iteration < 6000; ++iteration) {
    size_t which = iteration % seeds.size();
    ProtoFormat format = which < seeds.size() / 2 ? ProtoFormat::kBinary : ProtoFormat::kJson;
    Bytes body = seeds[which];
    if (body.empty()) body.push_back(0);
    for (int e = 0, edits = 1 + static_cast<int>(rng() % 3); e < edits; ++e) {
      size_t at = rng() % body.size();
      if (rng() % 2) {
        body[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
      } else {
        body[at] = static_cast<uint8_t>(rng());
      }
    }
    auto decoded = DecodeRequestProto(body, format);
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
      continue;
    }
    ++accepted;
    auto again = EncodeRequestProto(*decoded, format);
    ASSERT_TRUE(again.ok());
    auto redecoded = DecodeRequestProto(*again, format);
    ASSERT_TRUE(redecoded.ok()) << redecoded.status();
    EXPECT_EQ(Fingerprint(*redecoded), Fingerprint(*decoded));
  }
  EXPECT_GT(accepted, 50);
}

}  // namespace
}  // namespace pinvault::api
