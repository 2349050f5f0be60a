// The CBOR codec against the transcripts recorded from the unmodified juicebox-sdk 0.3.7
// (tests/data/juicebox/case*.json): every request the SDK sent decodes and re-encodes
// byte-for-byte, and every response the recorded realm answered is reproduced byte-for-byte
// when the same decoded values are encoded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "api/codec/cbor_codec.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using nlohmann::json;
using ::pinvault::testing::StatusIs;
using protocol::SecretsRequest;
using protocol::SecretsResponse;

const std::filesystem::path kDataDir = std::filesystem::path(PINVAULT_TEST_DATA) / "juicebox";

json Load(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::vector<std::filesystem::path> CaseFiles() {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(kDataDir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("case", 0) == 0 && entry.path().extension() == ".json") {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Bytes Hex(const std::string& hex) {
  auto bytes = HexDecode(hex);
  EXPECT_OK(bytes) << hex;
  return bytes.ok() ? *bytes : Bytes();
}

// The transcripts write a byte string as {"bstr": "<hex>"} in *_decoded values and as a
// plain hex string in realms[].register2.
Bytes BytesOf(const json& value) {
  if (value.is_object()) return Hex(value.at("bstr").get<std::string>());
  return Hex(value.get<std::string>());
}

template <size_t N>
std::array<uint8_t, N> Fixed(const json& value) {
  Bytes bytes = BytesOf(value);
  EXPECT_EQ(bytes.size(), N);
  std::array<uint8_t, N> out{};
  std::copy_n(bytes.begin(), std::min(N, bytes.size()), out.begin());
  return out;
}

// ResponseFromJson builds the C++ response for a recorded `response_decoded` value.
SecretsResponse ResponseFromJson(const json& j) {
  EXPECT_TRUE(j.is_object() && j.size() == 1) << j.dump();
  const std::string kind = j.begin().key();
  const json& v = j.begin().value();
  if (kind == "Register1") return protocol::Register1Response{};
  if (kind == "Register2") return protocol::Register2Response{};
  if (kind == "Delete") return protocol::DeleteResponse{};
  if (kind == "Recover1") {
    protocol::Recover1Response r;
    using S = protocol::Recover1Response::Status;
    if (v.is_string()) {
      r.status = v == "NoGuesses" ? S::kNoGuesses : S::kNotRegistered;
      EXPECT_TRUE(v == "NoGuesses" || v == "NotRegistered") << v;
    } else {
      r.status = S::kOk;
      r.version = Fixed<16>(v.at("Ok").at("version"));
    }
    return r;
  }
  if (kind == "Recover2") {
    protocol::Recover2Response r;
    using S = protocol::Recover2Response::Status;
    if (v.is_string()) {
      r.status = v == "VersionMismatch" ? S::kVersionMismatch
                 : v == "NoGuesses"     ? S::kNoGuesses
                                        : S::kNotRegistered;
      return r;
    }
    const json& ok = v.at("Ok");
    r.status = S::kOk;
    r.oprf_signed_public_key.public_key =
        Fixed<32>(ok.at("oprf_signed_public_key").at("public_key"));
    r.oprf_signed_public_key.verifying_key =
        Fixed<32>(ok.at("oprf_signed_public_key").at("verifying_key"));
    r.oprf_signed_public_key.signature = Fixed<64>(ok.at("oprf_signed_public_key").at("signature"));
    r.oprf_blinded_result = Fixed<32>(ok.at("oprf_blinded_result"));
    r.oprf_proof.c = Fixed<32>(ok.at("oprf_proof").at("c"));
    r.oprf_proof.beta_z = Fixed<32>(ok.at("oprf_proof").at("beta_z"));
    r.unlock_key_commitment = Fixed<32>(ok.at("unlock_key_commitment"));
    r.num_guesses = ok.at("num_guesses").get<uint16_t>();
    r.guess_count = ok.at("guess_count").get<uint16_t>();
    return r;
  }
  EXPECT_EQ(kind, "Recover3");
  protocol::Recover3Response r;
  using S = protocol::Recover3Response::Status;
  if (v.is_string()) {
    r.status = v == "VersionMismatch" ? S::kVersionMismatch
               : v == "NoGuesses"     ? S::kNoGuesses
                                      : S::kNotRegistered;
    return r;
  }
  if (v.contains("BadUnlockKeyTag")) {
    r.status = S::kBadUnlockKeyTag;
    r.guesses_remaining = v.at("BadUnlockKeyTag").at("guesses_remaining").get<uint16_t>();
    return r;
  }
  const json& ok = v.at("Ok");
  r.status = S::kOk;
  r.encryption_key_scalar_share =
      SecretBytes::CopyFrom(BytesOf(ok.at("encryption_key_scalar_share")));
  r.encrypted_secret = Fixed<145>(ok.at("encrypted_secret"));
  r.encrypted_secret_commitment = Fixed<16>(ok.at("encrypted_secret_commitment"));
  return r;
}

// VariantName is the transcript's name for a request (the text, or the single map key).
std::string VariantName(const json& decoded) {
  return decoded.is_string() ? decoded.get<std::string>() : decoded.begin().key();
}

// Exchange: one recorded request/response pair, wherever it sits in a case file.
struct Exchange {
  std::string where;
  const json* node;
};

void Collect(const json& node, const std::string& where, std::vector<Exchange>& out) {
  if (node.is_object()) {
    if (node.contains("request_cbor_hex") || node.contains("response_decoded") ||
        node.contains("response")) {
      out.push_back({where, &node});
    }
    for (auto it = node.begin(); it != node.end(); ++it) Collect(*it, where + "." + it.key(), out);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      Collect(node[i], where + "[" + std::to_string(i) + "]", out);
    }
  }
}

TEST(VectorsCborTest, EveryRecordedRequestDecodesAndReencodesIdentically) {
  int requests = 0;
  for (const auto& path : CaseFiles()) {
    json doc = Load(path);
    std::vector<Exchange> exchanges;
    Collect(doc, path.filename().string(), exchanges);
    for (const Exchange& e : exchanges) {
      if (!e.node->contains("request_cbor_hex")) continue;
      SCOPED_TRACE(e.where);
      Bytes body = Hex(e.node->at("request_cbor_hex").get<std::string>());
      auto decoded = DecodeRequestCbor(body);
      ASSERT_OK(decoded);
      EXPECT_EQ(protocol::RequestKindName(*decoded), VariantName(e.node->at("request_decoded")));
      auto reencoded = EncodeRequestCbor(*decoded);
      ASSERT_OK(reencoded);
      EXPECT_EQ(HexEncode(*reencoded), HexEncode(body));
      // Field values as the transcript decoded them.
      const json& d = e.node->at("request_decoded");
      if (auto* r2 = std::get_if<protocol::Recover2Request>(&*decoded)) {
        EXPECT_EQ(r2->version, Fixed<16>(d.at("Recover2").at("version")));
        EXPECT_EQ(r2->oprf_blinded_input, Fixed<32>(d.at("Recover2").at("oprf_blinded_input")));
      }
      if (auto* r3 = std::get_if<protocol::Recover3Request>(&*decoded)) {
        EXPECT_EQ(r3->version, Fixed<16>(d.at("Recover3").at("version")));
        EXPECT_EQ(r3->unlock_key_tag, Fixed<16>(d.at("Recover3").at("unlock_key_tag")));
      }
      ++requests;
    }
  }
  EXPECT_GE(requests, 20);
}

TEST(VectorsCborTest, EveryRecordedResponseIsReproducedByteForByte) {
  int with_bytes = 0;
  int without_bytes = 0;
  for (const auto& path : CaseFiles()) {
    json doc = Load(path);
    std::vector<Exchange> exchanges;
    Collect(doc, path.filename().string(), exchanges);
    for (const Exchange& e : exchanges) {
      SCOPED_TRACE(e.where);
      const json* decoded = nullptr;
      if (e.node->contains("response_decoded")) decoded = &e.node->at("response_decoded");
      if (e.node->contains("response")) decoded = &e.node->at("response");
      if (decoded == nullptr || decoded->is_null()) continue;  // e.g. the realm that was down
      Bytes encoded;
      {
        auto r = EncodeResponseCbor(ResponseFromJson(*decoded));
        ASSERT_OK(r);
        encoded = *r;
      }
      if (e.node->contains("response_hex")) {
        EXPECT_EQ(e.node->at("response_status").get<int>(), 200);
        EXPECT_EQ(HexEncode(encoded), e.node->at("response_hex").get<std::string>());
        ++with_bytes;
      } else {
        ++without_bytes;
      }
      // Our own decoder reads it back to the same encoding.
      auto back = DecodeResponseCbor(encoded);
      ASSERT_OK(back);
      auto again = EncodeResponseCbor(*back);
      ASSERT_OK(again);
      EXPECT_EQ(*again, encoded);
    }
  }
  EXPECT_GE(with_bytes, 20);
  EXPECT_GE(without_bytes, 10);  // exhaust_guesses exchanges carry decoded values only
}

TEST(VectorsCborTest, PerRealmRegistrationRecordsMatch) {
  int realms = 0;
  for (const auto& path : CaseFiles()) {
    json doc = Load(path);
    for (const json& realm : doc.at("realms")) {
      SCOPED_TRACE(path.filename().string() + " realm " + realm.at("id").get<std::string>());
      // Register1: request and response.
      Bytes r1 = Hex(realm.at("register1_request_cbor_hex").get<std::string>());
      auto d1 = DecodeRequestCbor(r1);
      ASSERT_OK(d1);
      EXPECT_TRUE(std::holds_alternative<protocol::Register1Request>(*d1));
      auto resp1 = EncodeResponseCbor(protocol::Register1Response{});
      ASSERT_OK(resp1);
      EXPECT_EQ(HexEncode(*resp1), realm.at("register1_response_cbor_hex").get<std::string>());

      // Register2: every field as the transcript lists it.
      Bytes r2 = Hex(realm.at("register2_request_cbor_hex").get<std::string>());
      auto d2 = DecodeRequestCbor(r2);
      ASSERT_OK(d2);
      const auto& req = std::get<protocol::Register2Request>(*d2);
      const json& f = realm.at("register2");
      EXPECT_EQ(req.version, Fixed<16>(f.at("version")));
      EXPECT_TRUE(req.oprf_private_key.Equals(BytesOf(f.at("oprf_private_key"))));
      EXPECT_EQ(req.oprf_signed_public_key.public_key,
                Fixed<32>(f.at("oprf_signed_public_key").at("public_key")));
      EXPECT_EQ(req.oprf_signed_public_key.verifying_key,
                Fixed<32>(f.at("oprf_signed_public_key").at("verifying_key")));
      EXPECT_EQ(req.oprf_signed_public_key.signature,
                Fixed<64>(f.at("oprf_signed_public_key").at("signature")));
      EXPECT_EQ(req.unlock_key_commitment, Fixed<32>(f.at("unlock_key_commitment")));
      EXPECT_EQ(req.unlock_key_tag, Fixed<16>(f.at("unlock_key_tag")));
      EXPECT_TRUE(
          req.encryption_key_scalar_share.Equals(BytesOf(f.at("encryption_key_scalar_share"))));
      EXPECT_EQ(req.encrypted_secret, Fixed<145>(f.at("encrypted_secret")));
      EXPECT_EQ(req.encrypted_secret_commitment, Fixed<16>(f.at("encrypted_secret_commitment")));
      EXPECT_EQ(req.policy.num_guesses, f.at("policy").at("num_guesses").get<uint16_t>());
      auto re2 = EncodeRequestCbor(*d2);
      ASSERT_OK(re2);
      EXPECT_EQ(*re2, r2);
      auto resp2 = EncodeResponseCbor(protocol::Register2Response{});
      ASSERT_OK(resp2);
      EXPECT_EQ(HexEncode(*resp2), realm.at("register2_response_cbor_hex").get<std::string>());
      ++realms;
    }
  }
  EXPECT_EQ(realms, 5);  // 1 + 1 + 3
}

// The SDK tolerates byte fields as integer arrays in responses; the realm never sends them,
// and our response decoder (used by our own client) accepts only the canonical form.
TEST(VectorsCborTest, LenientProbeResponsesAreNotCanonical) {
  json doc = Load(kDataDir / "case1_fastinsecure_1realm.json");
  const json& probe = doc.at("probe_lenient_response_encoding");
  ASSERT_EQ(probe.at("responses_hex").size(), 3u);
  for (const json& hex : probe.at("responses_hex")) {
    auto decoded = DecodeResponseCbor(Hex(hex.get<std::string>()));
    EXPECT_THAT(decoded,
                StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("got an array")));
  }
}

}  // namespace
}  // namespace pinvault::api
