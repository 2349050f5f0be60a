#include "backup/client/configuration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/testing/status_matchers.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A three-realm configuration listed out of id order, one id written with dashes and
// upper case.
constexpr char kThreeRealms[] = R"({
  "realms": [
    {"id": "c0ffee00-0000-0000-0000-000000000003", "address": "https://c.example/"},
    {"id": "1A000000000000000000000000000001", "address": "http://127.0.0.1:8080/"},
    {"id": "7f000000000000000000000000000002", "address": "https://b.example/base/",
     "public_key": null, "unknown_field": 17}
  ],
  "register_threshold": 3,
  "recover_threshold": 2,
  "pin_hashing_mode": "Standard2019",
  "some_future_key": [1, 2, 3]
})";

std::string WithThresholds(int realms, int register_threshold, int recover_threshold) {
  nlohmann::json j;
  j["realms"] = nlohmann::json::array();
  for (int i = 0; i < realms; ++i) {
    char id[33];
    std::snprintf(id, sizeof(id), "%030x%02x", 0u, static_cast<unsigned>((i + 1) & 0xff));
    j["realms"].push_back({{"id", id}, {"address", "https://r" + std::to_string(i) + "/"}});
  }
  j["register_threshold"] = register_threshold;
  j["recover_threshold"] = recover_threshold;
  j["pin_hashing_mode"] = "FastInsecure";
  return j.dump();
}

Status ParseStatus(const std::string& json) { return Configuration::FromJson(json).status(); }

TEST(ConfigurationTest, ParsesSdkJsonAndSortsRealmsById) {
  StatusOr<Configuration> c = Configuration::FromJson(kThreeRealms);
  ASSERT_OK(c);
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ(RealmIdHex(c->realms()[0].id), "1a000000000000000000000000000001");
  EXPECT_EQ(RealmIdHex(c->realms()[1].id), "7f000000000000000000000000000002");
  EXPECT_EQ(RealmIdHex(c->realms()[2].id), "c0ffee00000000000000000000000003");
  EXPECT_EQ(c->realms()[0].address, "http://127.0.0.1:8080/");
  EXPECT_EQ(c->register_threshold(), 3u);
  EXPECT_EQ(c->recover_threshold(), 2u);
  EXPECT_EQ(c->pin_hashing_mode(), protocol::PinHashingMode::kStandard2019);
  EXPECT_FALSE(c->has_hardware_realms());
}

TEST(ConfigurationTest, ShareIndicesFollowSortedIdsNotListOrder) {
  // PROTOCOL-NOTES (c): c0ffee…03 -> 3, 1a…01 -> 1, 7f…02 -> 2.
  StatusOr<Configuration> c = Configuration::FromJson(kThreeRealms);
  ASSERT_OK(c);
  auto index_of = [&](const char* hex) {
    StatusOr<RealmId> id = ParseRealmId(hex);
    EXPECT_OK(id);
    if (!id.ok()) return protocol::ShareIndex{0};
    StatusOr<protocol::ShareIndex> index = c->ShareIndexOf(*id);
    EXPECT_OK(index);
    return index.ok() ? *index : 0;
  };
  EXPECT_EQ(index_of("c0ffee00000000000000000000000003"), 3u);
  EXPECT_EQ(index_of("1a000000000000000000000000000001"), 1u);
  EXPECT_EQ(index_of("7f000000000000000000000000000002"), 2u);
  for (size_t i = 0; i < c->size(); ++i) EXPECT_EQ(c->share_index(i), i + 1);
  ASSERT_OK_AND_ASSIGN(RealmId unknown, ParseRealmId("00000000000000000000000000000009"));
  EXPECT_THAT(c->ShareIndexOf(unknown), StatusIs(StatusCode::kNotFound));
}

TEST(ConfigurationTest, ParsesEveryTranscriptConfiguration) {
  for (const char* name : {"case1_fastinsecure_1realm.json", "case2_standard2019_1realm.json",
                           "case3_fastinsecure_3realms_2of3.json"}) {
    SCOPED_TRACE(name);
    nlohmann::json transcript =
        nlohmann::json::parse(ReadFile(std::string(PINVAULT_TEST_DATA) + "/juicebox/" + name));
    StatusOr<Configuration> c = Configuration::FromJson(transcript["configuration"].dump());
    ASSERT_OK(c);
    EXPECT_EQ(c->size(), transcript["configuration"]["realms"].size());
    EXPECT_EQ(c->recover_threshold(),
              transcript["configuration"]["recover_threshold"].get<uint32_t>());
    // realm_ids_sorted in the transcript is exactly our order.
    for (size_t i = 0; i < c->size(); ++i) {
      EXPECT_EQ(RealmIdHex(c->realms()[i].id), transcript["realm_ids_sorted"][i]);
    }
  }
}

TEST(ConfigurationTest, JsonRoundTrip) {
  StatusOr<Configuration> c = Configuration::FromJson(kThreeRealms);
  ASSERT_OK(c);
  StatusOr<Configuration> again = Configuration::FromJson(c->ToJson());
  ASSERT_OK(again);
  EXPECT_EQ(*c, *again);
  EXPECT_THAT(c->ToJson(), HasSubstr("\"pin_hashing_mode\": \"Standard2019\""));
}

TEST(ConfigurationTest, HardwareRealmIsFlagged) {
  std::string json = R"({"realms": [{"id": "0102030405060708090a0b0c0d0e0f10",
      "address": "https://hsm.example/",
      "public_key": "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"}],
      "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "FastInsecure"})";
  StatusOr<Configuration> c = Configuration::FromJson(json);
  ASSERT_OK(c);
  EXPECT_TRUE(c->has_hardware_realms());
  EXPECT_TRUE(c->realms()[0].is_hardware());
  StatusOr<Configuration> again = Configuration::FromJson(c->ToJson());
  ASSERT_OK(again);
  EXPECT_EQ(*c, *again);
}

TEST(ConfigurationTest, ThresholdRules) {
  EXPECT_OK(Configuration::FromJson(WithThresholds(1, 1, 1)));
  EXPECT_OK(Configuration::FromJson(WithThresholds(3, 2, 2)));
  EXPECT_OK(Configuration::FromJson(WithThresholds(5, 5, 3)));
  EXPECT_OK(Configuration::FromJson(WithThresholds(4, 4, 3)));

  Status s = ParseStatus(WithThresholds(3, 3, 0));
  EXPECT_THAT(
      s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("recover_threshold must be at least 1")));

  s = ParseStatus(WithThresholds(3, 3, 4));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument,
                          HasSubstr("recover_threshold 4 exceeds the 3 realms")));

  // 2 of 4 is not a strict majority; neither is 1 of 2.
  s = ParseStatus(WithThresholds(4, 4, 2));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a strict majority")));
  EXPECT_THAT(ParseStatus(WithThresholds(2, 2, 1)), StatusIs(StatusCode::kInvalidArgument));

  s = ParseStatus(WithThresholds(3, 1, 2));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument,
                          HasSubstr("register_threshold 1 is below recover_threshold 2")));

  s = ParseStatus(WithThresholds(3, 4, 2));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument,
                          HasSubstr("register_threshold 4 exceeds the 3 realms")));
}

TEST(ConfigurationTest, RealmRules) {
  Status s = ParseStatus(
      R"({"realms": [], "register_threshold": 1, "recover_threshold": 1,
          "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("at least one realm")));

  s = ParseStatus(R"({"realms": [
        {"id": "0102030405060708090a0b0c0d0e0f10", "address": "https://a/"},
        {"id": "01020304-0506-0708-090A-0B0C0D0E0F10", "address": "https://b/"},
        {"id": "1102030405060708090a0b0c0d0e0f10", "address": "https://c/"}],
      "register_threshold": 3, "recover_threshold": 2, "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(
      s, StatusIs(StatusCode::kInvalidArgument,
                  HasSubstr("realm id 0102030405060708090a0b0c0d0e0f10 appears more than once")));

  s = ParseStatus(R"({"realms": [{"id": "0102", "address": "https://a/"}],
      "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("realms[0].id")));
  EXPECT_THAT(s.message(), HasSubstr("not 16 bytes of hex"));

  s = ParseStatus(R"({"realms": [{"id": "zz02030405060708090a0b0c0d0e0f10",
      "address": "https://a/"}],
      "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument));

  s = ParseStatus(R"({"realms": [{"id": "0102030405060708090a0b0c0d0e0f10",
      "address": "ftp://a/"}],
      "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(
      s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("is not an http:// or https:// URL")));

  s = ParseStatus(R"({"realms": [{"id": "0102030405060708090a0b0c0d0e0f10",
      "address": "https://a/", "public_key": "0102"}],
      "register_threshold": 1, "recover_threshold": 1, "pin_hashing_mode": "FastInsecure"})");
  EXPECT_THAT(
      s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("public_key must be 32 bytes of hex")));

  nlohmann::json many = nlohmann::json::parse(WithThresholds(1, 1, 1));
  many["realms"] = nlohmann::json::array();
  for (int i = 0; i < 256; ++i) {
    char id[33];
    std::snprintf(id, sizeof(id), "%028x%04x", 0, i);
    many["realms"].push_back({{"id", id}, {"address", "https://r/"}});
  }
  many["recover_threshold"] = 200;
  many["register_threshold"] = 200;
  s = ParseStatus(many.dump());
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("at most 255")));
}

TEST(ConfigurationTest, MalformedJsonAndFields) {
  EXPECT_THAT(ParseStatus("{not json").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseStatus("[]").message(), HasSubstr("must be a JSON object"));
  EXPECT_THAT(ParseStatus(R"({"register_threshold": 1})").message(),
              HasSubstr("\"realms\" must be an array"));

  nlohmann::json j = nlohmann::json::parse(WithThresholds(3, 3, 2));
  j.erase("recover_threshold");
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("missing \"recover_threshold\""));

  j = nlohmann::json::parse(WithThresholds(3, 3, 2));
  j["register_threshold"] = -1;
  EXPECT_THAT(ParseStatus(j.dump()).message(),
              HasSubstr("\"register_threshold\" must be an unsigned 32-bit integer"));
  j["register_threshold"] = 2.5;
  EXPECT_THAT(ParseStatus(j.dump()), StatusIs(StatusCode::kInvalidArgument));
  j["register_threshold"] = "3";
  EXPECT_THAT(ParseStatus(j.dump()), StatusIs(StatusCode::kInvalidArgument));

  j = nlohmann::json::parse(WithThresholds(3, 3, 2));
  j["pin_hashing_mode"] = "standard2019";  // case matters, as in the SDK
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("unknown pin_hashing_mode"));
  j.erase("pin_hashing_mode");
  EXPECT_THAT(ParseStatus(j.dump()), StatusIs(StatusCode::kInvalidArgument));

  j = nlohmann::json::parse(WithThresholds(3, 3, 2));
  j["realms"][1].erase("address");
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("realms[1].address must be a string"));
  j = nlohmann::json::parse(WithThresholds(3, 3, 2));
  j["realms"][2]["id"] = 5;
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("realms[2].id must be a string"));
}

TEST(ConfigurationTest, ListFromJson) {
  std::string list = "[" + WithThresholds(1, 1, 1) + "," + WithThresholds(3, 3, 2) + "]";
  StatusOr<std::vector<Configuration>> configurations = Configuration::ListFromJson(list);
  ASSERT_OK(configurations);
  ASSERT_EQ(configurations->size(), 2u);
  EXPECT_EQ((*configurations)[1].size(), 3u);

  list = "[" + WithThresholds(1, 1, 1) + "," + WithThresholds(3, 3, 1) + "]";
  Status s = Configuration::ListFromJson(list).status();
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("configurations[1]")));
  EXPECT_THAT(Configuration::ListFromJson("{}"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ConfigurationTest, CreateValidatesLikeFromJson) {
  ASSERT_OK_AND_ASSIGN(RealmId a_id, ParseRealmId("0102030405060708090a0b0c0d0e0f10"));
  RealmEndpoint a{a_id, "https://a/", std::nullopt};
  EXPECT_OK(Configuration::Create({a}, 1, 1, protocol::PinHashingMode::kFastInsecure));
  EXPECT_THAT(Configuration::Create({a, a}, 2, 2, protocol::PinHashingMode::kFastInsecure),
              StatusIs(StatusCode::kInvalidArgument));
  RealmEndpoint no_address = a;
  no_address.address = "";
  EXPECT_THAT(Configuration::Create({no_address}, 1, 1, protocol::PinHashingMode::kFastInsecure),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(ConfigurationTest, ParseRealmId) {
  StatusOr<RealmId> id = ParseRealmId("01020304-0506-0708-090a-0b0c0d0e0f10");
  ASSERT_OK(id);
  EXPECT_EQ((*id)[0], 0x01);
  EXPECT_EQ((*id)[15], 0x10);
  EXPECT_THAT(ParseRealmId("0102030405060708090a0b0c0d0e0f"), Not(IsOk()));      // 15 bytes
  EXPECT_THAT(ParseRealmId("0102030405060708090a0b0c0d0e0f1011"), Not(IsOk()));  // 17 bytes
  EXPECT_THAT(ParseRealmId(""), Not(IsOk()));
  std::string long_input(1000, 'a');
  Status s = ParseRealmId(long_input).status();
  EXPECT_LT(s.message().size(), 200u);  // the quote is capped
}

}  // namespace
}  // namespace pinvault::backup
