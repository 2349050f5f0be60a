// The pinvaultd binary on PostgreSQL (store.backend "postgres"): a SoftHSM2 token with realm
// keys made by pinvault-admin, a database migrated with `pinvault-admin store migrate`; the
// SDK's recorded registration and recovery go over HTTP through the real core into the
// database, and recover again after a restart. An unmigrated database stops pinvaultd with a
// message naming `store migrate`; a database server that is down keeps it not-ready until the
// server is back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backup/store/postgres_record_store.h"
#include "api/auth/tenant_keys.h"
#include "api/client/jwt_mint.h"
#include "api/codec/cbor_codec.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_test_fixture.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "vault/partition.h"

namespace pinvault::api::test {
namespace {

using nlohmann::json;
using ::pinvault::testing::FreshDatabaseName;
using ::pinvault::testing::PostgresServer;
using ::pinvault::testing::ProgramOutput;
using ::pinvault::testing::RunCaptured;
using ::pinvault::testing::SharedPostgresServer;
using ::testing::HasSubstr;

const std::string kPinvaultd = std::string(PINVAULT_BINARY_DIR) + "/api/pinvaultd";
const std::string kAdmin = std::string(PINVAULT_BINARY_DIR) + "/api/pinvault-admin";
constexpr char kRealmHex[] = "0102030405060708090a0b0c0d0e0f10";

// Daemon is one pinvaultd process with stderr captured to a file; no store variable of the
// caller's environment reaches it, only those of `extra_env`.
class Daemon : public testing::DaemonProcess {
 public:
  Daemon(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
         const std::string& log_path)
      : DaemonProcess(kPinvaultd, args, extra_env, log_path,
                      {"PINVAULT_STORE_URI", "PINVAULT_STORE_PASSWORD_FILE"}) {}
};

std::map<std::string, std::string> SdkHeaders(const std::string& token) {
  return {{"Authorization", "Bearer " + token}, {"X-Juicebox-Version", "0.3.7"}};
}

// Migrate runs `pinvault-admin store migrate` on `uri` (with `extra` arguments).
ProgramOutput Migrate(const std::string& uri, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {kAdmin, "store", "migrate", "--postgres", uri};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCaptured(argv, {}, {"PINVAULT_STORE_URI", "PINVAULT_STORE_PASSWORD_FILE"});
}

class PinvaultdPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(token_, testing::SoftHsmToken::Create());
    dir_ = token_->dir();
    std::string output;
    Status init = testing::RunProgram({kAdmin, "hsm", "init", "--token", token_->uri()}, &output);
    ASSERT_OK(init) << output;

    ASSERT_OK_AND_ASSIGN(
        key_, TenantKey::FromHmacSecret(SecretBytes::CopyFrom(AsBytes("pinvaultd pg secret"))));
    TenantKeyStore keys;
    ASSERT_OK(keys.Add("acme", 1, *key_));
    ASSERT_OK(keys.SaveFile(dir_ + "/tenant-keys.json"));
  }

  // WriteConfig writes pinvaultd.json for the PostgreSQL store at `uri`. data_dir names a
  // folder that cannot be created: the SQLite store must not be touched.
  void WriteConfig(const std::string& uri) {
    json config = {
        {"realm_id", kRealmHex},
        {"listen", "127.0.0.1:0"},
        {"data_dir", "/nonexistent/never-used"},
        {"hsm", {{"token_uri", token_->uri()}}},
        {"tenant_keys_file", dir_ + "/tenant-keys.json"},
        {"store", {{"backend", "postgres"}, {"postgres", {{"uri", uri}, {"pool_size", 4}}}}}};
    ASSERT_OK(testing::WriteFile(dir_ + "/pinvaultd.json", config.dump(2), 0600));
  }

  std::vector<std::string> Args() const { return {"--config", dir_ + "/pinvaultd.json"}; }

  std::string Token(const std::string& user) {
    JwtMintRequest request;
    request.tenant = "acme";
    request.user = user;
    request.realm_id_hex = kRealmHex;
    request.issued_at = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto token = MintJwt(*key_, request);
    EXPECT_OK(token);
    return token.ok() ? *token : "";
  }

  // Replay sends the recorded SDK requests of `exchanges` for `user` and checks each answer
  // against the recording (a Recover2 by its status, guess count and OPRF result, as its
  // proof is randomised).
  void Replay(uint16_t port, const std::string& user, const std::vector<json>& exchanges) {
    TestClient client(port);
    const std::string token = Token(user);
    for (const json& e : exchanges) {
      std::string kind = e["request_decoded"].is_string() ? e["request_decoded"].get<std::string>()
                                                          : e["request_decoded"].begin().key();
      SCOPED_TRACE(kind);
      TestResponse r =
          client.Send("POST", "/req", SdkHeaders(token), HexBytes(e["request_cbor_hex"]));
      ASSERT_EQ(r.status, 200) << r.text();
      if (kind != "Recover2") {
        EXPECT_EQ(HexEncode(r.body), e["response_hex"].get<std::string>());
        continue;
      }
      ASSERT_OK_AND_ASSIGN(auto got, DecodeResponseCbor(r.body));
      const auto& g = std::get<protocol::Recover2Response>(got);
      EXPECT_EQ(g.status, protocol::Recover2Response::Status::kOk);
      EXPECT_EQ(g.guess_count, 1);
      EXPECT_EQ(HexEncode(g.oprf_blinded_result),
                e["response_decoded"]["Recover2"]["Ok"]["oprf_blinded_result"]["bstr"]
                    .get<std::string>());
    }
  }

  // WaitForReady polls /readyz until it answers 200 (true) or 30 s pass (false).
  static bool WaitForReady(uint16_t port) {
    for (int i = 0; i < 300; ++i) {
      TestClient client(port);
      if (client.Send("GET", "/readyz", {}, {}).status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<testing::SoftHsmToken> token_;
  std::string dir_;
  std::optional<TenantKey> key_;
};

TEST_F(PinvaultdPostgresTest, RegistersAndRecoversOnAMigratedDatabaseAcrossARestart) {
  ASSERT_OK_AND_ASSIGN(PostgresServer * server, SharedPostgresServer());
  const std::string db = FreshDatabaseName();
  ASSERT_OK(server->CreateDatabase(db));
  const std::string uri = server->Uri(db);
  ProgramOutput migrated = Migrate(uri);
  ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  ASSERT_NO_FATAL_FAILURE(WriteConfig(uri));

  json c = LoadCase("case1_fastinsecure_1realm.json");
  std::vector<json> registration(c["http_log_register"].begin(), c["http_log_register"].end());
  std::vector<json> recovery(c["recover_correct_pin"]["http_log"].begin(),
                             c["recover_correct_pin"]["http_log"].end());
  {
    Daemon daemon(Args(), {}, dir_ + "/pinvaultd.log");
    uint16_t port = daemon.WaitForPort();
    ASSERT_NE(port, 0) << daemon.Log();
    ASSERT_TRUE(WaitForReady(port)) << daemon.Log();
    EXPECT_THAT(daemon.Log(), HasSubstr(R"("event":"realm_started","store":"PostgreSQL )"));
    EXPECT_THAT(daemon.Log(), HasSubstr("dbname=" + db));
    ASSERT_NO_FATAL_FAILURE(Replay(port, "pg-user", registration));
    ASSERT_NO_FATAL_FAILURE(Replay(port, "pg-user", recovery));
    daemon.Signal(SIGTERM);
    EXPECT_EQ(daemon.Wait(), 0) << daemon.Log();
  }
  // The record is in PostgreSQL (nothing went to a SQLite file), and every partition has a
  // head that `store status` reports.
  EXPECT_THAT(server->Sql(db, "SELECT count(*) FROM records;"),
              testing::IsOkAndHolds(std::string("1\n")));
  EXPECT_FALSE(std::filesystem::exists("/nonexistent/never-used"));
  ProgramOutput status = RunCaptured({kAdmin, "store", "status", "--postgres", uri, "--json"}, {},
                                     {"PINVAULT_STORE_URI", "PINVAULT_STORE_PASSWORD_FILE"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json j = json::parse(status.out);
  EXPECT_EQ(j["schema_version"], backup::PostgresRecordStore::kLatestSchemaVersion);
  // A new realm's default partition count, each with a head row.
  EXPECT_EQ(j["partitions"].size(), vault::kDefaultPartitionCount);
  EXPECT_THAT(server->Sql(db, "SELECT count(*) FROM partition_heads;"),
              testing::IsOkAndHolds(std::to_string(j["partitions"].size()) + "\n"));

  // A new process recovers the same record again from the database.
  Daemon again(Args(), {}, dir_ + "/pinvaultd2.log");
  uint16_t port = again.WaitForPort();
  ASSERT_NE(port, 0) << again.Log();
  ASSERT_TRUE(WaitForReady(port)) << again.Log();
  ASSERT_NO_FATAL_FAILURE(Replay(port, "pg-user", recovery));
  again.Signal(SIGINT);
  EXPECT_EQ(again.Wait(), 0) << again.Log();
}

TEST_F(PinvaultdPostgresTest, UnmigratedDatabaseStopsItWithAMessageNamingStoreMigrate) {
  ASSERT_OK_AND_ASSIGN(PostgresServer * server, SharedPostgresServer());
  {
    // No schema at all.
    const std::string db = FreshDatabaseName();
    ASSERT_OK(server->CreateDatabase(db));
    ASSERT_NO_FATAL_FAILURE(WriteConfig(server->Uri(db)));
    Daemon d(Args(), {}, dir_ + "/empty.log");
    EXPECT_EQ(d.Wait(), 1) << d.Log();
    EXPECT_THAT(d.Log(), HasSubstr(R"("event":"fatal")"));
    EXPECT_THAT(d.Log(), HasSubstr("pinvault-admin store migrate"));
    EXPECT_THAT(d.Log(), HasSubstr("dbname=" + db));
    // pinvaultd did not create the schema behind the operator's back.
    EXPECT_THAT(server->Sql(db, "SELECT to_regclass('pinvault_schema') IS NULL;"),
                testing::IsOkAndHolds(std::string("t\n")));
  }
  {
    // An older schema, with the URI from the environment.
    const std::string db = FreshDatabaseName();
    ASSERT_OK(server->CreateDatabase(db));
    ProgramOutput old = Migrate(server->Uri(db), {"--to-version", "1"});
    ASSERT_EQ(old.exit_code, 0) << old.err;
    ASSERT_NO_FATAL_FAILURE(WriteConfig("dbname=overridden_by_the_environment"));
    Daemon d(Args(), {"PINVAULT_STORE_URI=" + server->Uri(db)}, dir_ + "/old.log");
    EXPECT_EQ(d.Wait(), 1) << d.Log();
    EXPECT_THAT(d.Log(), HasSubstr("older than this build"));
    EXPECT_THAT(d.Log(), HasSubstr("pinvault-admin store migrate"));
  }
  {
    // The postgres backend without a URI is a configuration error.
    ASSERT_NO_FATAL_FAILURE(WriteConfig(""));
    Daemon d(Args(), {}, dir_ + "/no-uri.log");
    EXPECT_EQ(d.Wait(), 1) << d.Log();
    EXPECT_THAT(d.Log(), HasSubstr("store.postgres.uri is required"));
  }
}

TEST_F(PinvaultdPostgresTest, DatabaseServerDownKeepsItNotReadyUntilTheServerIsBack) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresServer> server, PostgresServer::Start());
  ASSERT_OK(server->CreateDatabase("vault"));
  ASSERT_EQ(Migrate(server->Uri("vault")).exit_code, 0);
  ASSERT_OK(server->Stop());
  ASSERT_NO_FATAL_FAILURE(WriteConfig(server->Uri("vault")));

  Daemon daemon(Args(), {}, dir_ + "/down.log");
  uint16_t port = daemon.WaitForPort();
  ASSERT_NE(port, 0) << daemon.Log();
  EXPECT_THAT(daemon.Log(), HasSubstr(R"("event":"realm_unavailable_retrying")"));
  {
    TestClient client(port);
    TestResponse readyz = client.Send("GET", "/readyz", {}, {});
    EXPECT_EQ(readyz.status, 503);
    EXPECT_THAT(readyz.text(), HasSubstr("cannot connect to PostgreSQL"));
  }
  ASSERT_OK(server->Restart());
  ASSERT_TRUE(WaitForReady(port)) << daemon.Log();
  json c = LoadCase("case1_fastinsecure_1realm.json");
  std::vector<json> registration(c["http_log_register"].begin(), c["http_log_register"].end());
  ASSERT_NO_FATAL_FAILURE(Replay(port, "pg-user", registration));
  daemon.Signal(SIGTERM);
  EXPECT_EQ(daemon.Wait(), 0) << daemon.Log();
}

}  // namespace
}  // namespace pinvault::api::test
