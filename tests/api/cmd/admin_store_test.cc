// `pinvault-admin store migrate|status` as an operator runs them: the built binary against
// databases of a throwaway PostgreSQL cluster (tests/testing/postgres_server.h) and against
// SQLite data folders. A realm run in process on the store (software HSM) gives `status`
// partitions and epochs to report.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backup/store/postgres_record_store.h"
#include "backup/store/sqlite_record_store.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "tests/testing/vault_test_util.h"
#include "vault/realm.h"

namespace pinvault::api {
namespace {

// The PostgreSQL schema version this build migrates to.
constexpr int kPgVersion = backup::PostgresRecordStore::kLatestSchemaVersion;
const std::string kPg = std::to_string(kPgVersion);

using backup::PostgresRecordStore;
using backup::SqliteRecordStore;
using nlohmann::json;
using ::pinvault::testing::FreshDatabaseName;
using ::pinvault::testing::PostgresServer;
using ::pinvault::testing::ProgramOutput;
using ::pinvault::testing::RunCaptured;
using ::pinvault::testing::ScopedTempDir;
using ::pinvault::testing::SharedPostgresServer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kAdmin = PINVAULT_BINARY_DIR "/api/pinvault-admin";

// Admin runs `pinvault-admin ARGS` with `set_env` and without any store variable of the
// caller's environment.
ProgramOutput Admin(std::vector<std::string> args, const std::vector<std::string>& set_env = {}) {
  args.insert(args.begin(), kAdmin);
  return RunCaptured(args, set_env, {"PINVAULT_STORE_URI", "PINVAULT_STORE_PASSWORD_FILE"});
}

// Lines counts the lines of `text`.
size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// WriteFile writes `text` to `path` with permissions `mode`.
void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream file(path, std::ios::trunc);
    file << text;
    ASSERT_TRUE(file.good()) << path;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// Epochs reads every partition's epoch straight from a store, as `status` should print them.
template <typename Store>
std::map<uint32_t, uint64_t> Epochs(Store& store) {
  std::map<uint32_t, uint64_t> epochs;
  StatusOr<std::vector<uint32_t>> partitions = store.Partitions();
  EXPECT_OK(partitions);
  if (!partitions.ok()) return epochs;
  for (uint32_t p : *partitions) {
    StatusOr<vault::TreeSnapshot> tree = store.ReadTree(p);
    EXPECT_OK(tree);
    if (tree.ok() && tree->head) epochs[p] = tree->head->epoch;
  }
  return epochs;
}

// ExpectStatusShows checks `status` output (text and --json) against `epochs`.
void ExpectStatusShows(const ProgramOutput& text, const ProgramOutput& as_json,
                       const std::map<uint32_t, uint64_t>& epochs, int latest) {
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("schema version: " + std::to_string(latest) +
                                  " (this build: " + std::to_string(latest) + ")\n"));
  EXPECT_THAT(text.out, HasSubstr("partitions: " + std::to_string(epochs.size()) + "\n"));
  for (const auto& [partition, epoch] : epochs) {
    EXPECT_THAT(text.out, HasSubstr("  partition " + std::to_string(partition) + ": epoch " +
                                    std::to_string(epoch) + "\n"));
  }
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json j = json::parse(as_json.out);
  EXPECT_EQ(j["schema_version"], latest);
  EXPECT_EQ(j["latest_schema_version"], latest);
  EXPECT_EQ(j["migration_needed"], false);
  std::map<uint32_t, uint64_t> listed;
  for (const json& p : j["partitions"]) {
    listed[p["partition"].get<uint32_t>()] = p["epoch"].get<uint64_t>();
  }
  EXPECT_EQ(listed, epochs);
}

// ---- PostgreSQL, on the shared cluster (a fresh database per test) ----

class AdminStorePostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, SharedPostgresServer());
    dbname_ = FreshDatabaseName();
    ASSERT_OK(server_->CreateDatabase(dbname_));
    uri_ = server_->Uri(dbname_);
  }

  PostgresRecordStore::Options Options() const {
    PostgresRecordStore::Options options;
    options.uri = uri_;
    return options;
  }

  PostgresServer* server_ = nullptr;
  std::string dbname_;
  std::string uri_;
};

TEST_F(AdminStorePostgresTest, MigrateFromEmptyPrintsBothVersionsAndAgainChangesNothing) {
  ProgramOutput first = Admin({"store", "migrate", "--postgres", uri_});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, StartsWith("PostgreSQL "));
  EXPECT_THAT(first.out, HasSubstr("dbname=" + dbname_));
  EXPECT_THAT(first.out, HasSubstr(": schema version 0 -> " + kPg + "\n"));
  EXPECT_EQ(first.err, "");
  EXPECT_OK(PostgresRecordStore::Open(Options()));

  ProgramOutput again = Admin({"store", "migrate", "--postgres", uri_});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr(": schema version " + kPg + " -> " + kPg + "\n"));

  ProgramOutput as_json = Admin({"store", "migrate", "--postgres", uri_, "--json"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json j = json::parse(as_json.out);
  EXPECT_EQ(j["backend"], "postgres");
  EXPECT_THAT(j["store"].get<std::string>(), HasSubstr("dbname=" + dbname_));
  EXPECT_EQ(j["schema_version_before"], kPgVersion);
  EXPECT_EQ(j["schema_version_after"], kPgVersion);
}

TEST_F(AdminStorePostgresTest, StatusOfAnOlderSchemaSaysToMigrateAndChangesNothing) {
  // A database without the schema: version 0, and status creates nothing.
  ProgramOutput empty = Admin({"store", "status", "--postgres", uri_});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_THAT(empty.out, HasSubstr("schema version: 0 (this build: " + kPg + "); run `pinvault-admin "
                                   "store migrate` before starting pinvaultd\n"));
  EXPECT_THAT(empty.out, Not(HasSubstr("partitions")));
  EXPECT_THAT(server_->Sql(dbname_, "SELECT to_regclass('pinvault_schema') IS NULL;"),
              testing::IsOkAndHolds(std::string("t\n")));

  ProgramOutput to_one = Admin({"store", "migrate", "--postgres", uri_, "--to-version", "1"});
  ASSERT_EQ(to_one.exit_code, 0) << to_one.err;
  EXPECT_THAT(to_one.out, HasSubstr(": schema version 0 -> 1\n"));
  ProgramOutput status = Admin({"store", "status", "--postgres", uri_, "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json j = json::parse(status.out);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["latest_schema_version"], kPgVersion);
  EXPECT_EQ(j["migration_needed"], true);
  EXPECT_TRUE(j["partitions"].is_null());
  EXPECT_THAT(server_->Sql(dbname_, "SELECT version FROM pinvault_schema;"),
              testing::IsOkAndHolds(std::string("1\n")));

  ProgramOutput rest = Admin({"store", "migrate", "--postgres", uri_});
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_THAT(rest.out, HasSubstr(": schema version 1 -> " + kPg + "\n"));
}

TEST_F(AdminStorePostgresTest, StatusListsEveryPartitionWithItsEpochAfterARealmRan) {
  ASSERT_EQ(Admin({"store", "migrate", "--postgres", uri_}).exit_code, 0);
  ScopedTempDir dir;
  {
    testing::SoftwareHsm hsm(testing::SoftwareHsm::Seed{7, 7, 7}, dir.File("anchor"));
    ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(Options()));
    vault::RealmOptions options;
    options.partitions = 4;
    options.worker_threads = 2;
    ASSERT_OK_AND_ASSIGN(auto realm, vault::Realm::Create(hsm, *store, options));
    ASSERT_OK(realm->Ready());
    for (const char* name : {"alice", "bob", "carol", "dave", "erin"}) {
      testing::VaultTestClient client(testing::kTestRealmId);
      testing::Register(*realm, client, testing::User(name), "1234", 5);
    }
  }
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(Options()));
  std::map<uint32_t, uint64_t> epochs = Epochs(*store);
  ASSERT_EQ(epochs.size(), 4u);
  uint64_t commits = 0;
  for (const auto& [partition, epoch] : epochs) commits += epoch;
  EXPECT_GT(commits, 4u);  // registrations committed beyond each partition's first head

  ProgramOutput text = Admin({"store", "status", "--postgres", uri_});
  EXPECT_THAT(text.out, HasSubstr("store: PostgreSQL "));
  EXPECT_THAT(text.out, HasSubstr("dbname=" + dbname_));
  ExpectStatusShows(text, Admin({"store", "status", "--postgres", uri_, "--json"}), epochs,
                    PostgresRecordStore::kLatestSchemaVersion);

  // The URI may come from the environment instead.
  ProgramOutput from_env = Admin({"store", "status"}, {"PINVAULT_STORE_URI=" + uri_});
  ASSERT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_EQ(from_env.out, text.out);
}

// ---- Password files, on a cluster of its own that listens on TCP ----

TEST(AdminStorePasswordTest, PasswordFileLogsInAndOthersCanReadItIsRefused) {
  constexpr const char* kPassword = "admin-store-pw 'quoted' 8812";
  PostgresServer::Options server_options;
  server_options.tcp = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PostgresServer> server,
                       PostgresServer::Start(server_options));
  ASSERT_OK(server->CreateRole("app", kPassword));
  ASSERT_OK(server->CreateDatabase("vault", "app"));
  ScopedTempDir dir;
  const std::string pw = dir.File("pw");
  ASSERT_NO_FATAL_FAILURE(WriteFile(pw, std::string(kPassword) + "\n", 0600));
  const std::string uri = server->TcpUri("vault", "app", "sslmode=disable");

  ProgramOutput migrate = Admin({"store", "migrate", "--postgres", uri, "--password-file", pw});
  ASSERT_EQ(migrate.exit_code, 0) << migrate.err;
  EXPECT_THAT(migrate.out, HasSubstr("host=127.0.0.1"));
  EXPECT_THAT(migrate.out, HasSubstr(": schema version 0 -> " + kPg + "\n"));
  EXPECT_THAT(migrate.out, Not(HasSubstr(kPassword)));

  // Both from the environment.
  ProgramOutput status = Admin({"store", "status"},
                               {"PINVAULT_STORE_URI=" + uri, "PINVAULT_STORE_PASSWORD_FILE=" + pw});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("schema version: " + kPg + " (this build: " + kPg + ")\n"));
  EXPECT_THAT(status.out, HasSubstr("partitions: 0\n"));

  // Without the password file the login fails: exit 1, one line naming the target.
  ProgramOutput no_password = Admin({"store", "status", "--postgres", uri});
  EXPECT_EQ(no_password.exit_code, 1);
  EXPECT_EQ(Lines(no_password.err), 1u) << no_password.err;
  EXPECT_THAT(no_password.err, HasSubstr("host=127.0.0.1"));
  EXPECT_THAT(no_password.err, HasSubstr("user=app"));

  // A password file that group or others can read is refused before connecting.
  for (mode_t mode : {0644, 0640, 0604}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(WriteFile(pw, std::string(kPassword) + "\n", mode));
    ProgramOutput refused = Admin({"store", "migrate", "--postgres", uri, "--password-file", pw});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(Lines(refused.err), 1u) << refused.err;
    EXPECT_THAT(refused.err, HasSubstr("group or others"));
    EXPECT_THAT(refused.err, HasSubstr("PostgreSQL "));
    EXPECT_THAT(refused.err + refused.out, Not(HasSubstr(kPassword)));
  }

  // A password inside the URI is refused with a pointer to the password file.
  ProgramOutput in_uri =
      Admin({"store", "migrate", "--postgres", uri + " password=uri-secret-5521"});
  EXPECT_EQ(in_uri.exit_code, 1);
  EXPECT_THAT(in_uri.err, HasSubstr("holds a password"));
  EXPECT_THAT(in_uri.err, HasSubstr("--password-file"));
  EXPECT_THAT(in_uri.err, Not(HasSubstr("uri-secret-5521")));

  // A password is never an option either; its value is not repeated.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"store", "migrate", "--postgres", uri, "--password",
                                 "opt-secret-7719"},
        std::vector<std::string>{"store", "status", "--postgres", uri,
                                 "--password=opt-secret-7719"}}) {
    ProgramOutput refused = Admin(args);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_THAT(refused.err, HasSubstr("never taken on the command line"));
    EXPECT_THAT(refused.err, Not(HasSubstr("opt-secret-7719")));
  }
}

// ---- Usage and unreachable servers ----

TEST(AdminStoreCliTest, BadUsageExitsTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {"store"},
      {"store", "frobnicate"},
      {"store", "migrate"},  // no store given and none in the environment
      {"store", "status", "--postgres", "dbname=x", "--data-dir", "/tmp"},
      {"store", "status", "--data-dir", "/tmp", "--password-file", "/tmp/pw"},
      {"store", "migrate", "--data-dir", "/tmp", "--to-version", "0"},
      {"store", "migrate", "--postgres", "dbname=x", "--to-version", "99"},
      {"store", "migrate", "--postgres", "dbname=x", "--to-version", "two"},
      {"store", "status", "--postgres", "dbname=x", "--to-version", "1"},
      {"store", "status", "--postgres", "dbname=x", "--bogus"},
      {"store", "status", "--postgres", "dbname=x", "stray-word-4410"},
      {"store", "status", "--postgres"},
  };
  for (const auto& args : cases) {
    ProgramOutput r = Admin(args);
    EXPECT_EQ(r.exit_code, 2) << ::testing::PrintToString(args) << "\n" << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("usage: pinvault-admin store"));
    EXPECT_THAT(r.err, Not(HasSubstr("stray-word-4410")));
  }
  ProgramOutput help = Admin({"store", "help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("pinvault-admin store migrate"));
  ProgramOutput top = Admin({});
  EXPECT_EQ(top.exit_code, 2);
  EXPECT_THAT(top.err, HasSubstr("store migrate|status"));
}

TEST(AdminStoreCliTest, UnreachableServerExitsOneWithOneLineNamingTheTarget) {
  // Nothing listens on port 1; a socket folder that does not exist has no server either.
  for (const std::string& uri :
       {std::string("host=127.0.0.1 port=1 dbname=nowhere user=app connect_timeout=5"),
        std::string("host=/nonexistent/pinvault-socket dbname=nowhere")}) {
    for (const char* command : {"migrate", "status"}) {
      SCOPED_TRACE(uri + " " + command);
      ProgramOutput r = Admin({"store", command, "--postgres", uri});
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(Lines(r.err), 1u) << r.err;
      EXPECT_THAT(r.err, StartsWith(std::string("pinvault-admin store ") + command + ": "));
      EXPECT_THAT(r.err, HasSubstr("cannot connect to PostgreSQL"));
      EXPECT_THAT(r.err, HasSubstr("dbname=nowhere"));
    }
  }
}

// ---- SQLite data folders ----

TEST(AdminStoreSqliteTest, DataDirMigrateAndStatus) {
  ScopedTempDir dir;
  const std::string file = dir.File(SqliteRecordStore::kDatabaseFileName);
  ProgramOutput first = Admin({"store", "migrate", "--data-dir", dir.path()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "SQLite " + file + ": schema version 0 -> 3\n");
  ProgramOutput again = Admin({"store", "migrate", "--data-dir", dir.path()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "SQLite " + file + ": schema version 3 -> 3\n");

  // Heads in two partitions, as a realm's commits leave them.
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
    for (auto [partition, epoch] : {std::pair<uint32_t, uint64_t>{0, 7}, {5, 2}}) {
      vault::CommitBatch batch;
      batch.partition = partition;
      batch.head = vault::StoreHead{epoch, Bytes{1, 2, 3}};
      ASSERT_OK(store->Commit(batch));
    }
  }
  ProgramOutput text = Admin({"store", "status", "--data-dir", dir.path()});
  EXPECT_THAT(text.out, HasSubstr("store: SQLite " + file + "\n"));
  ExpectStatusShows(text, Admin({"store", "status", "--data-dir", dir.path(), "--json"}),
                    {{0, 7}, {5, 2}}, SqliteRecordStore::kLatestSchemaVersion);

  // An older file: status says so and leaves it alone; migrate upgrades it.
  ScopedTempDir old_dir;
  {
    SqliteRecordStore::Options old;
    old.schema_version = 1;
    ASSERT_OK(SqliteRecordStore::Open(old_dir.path(), old));
  }
  ProgramOutput old_status = Admin({"store", "status", "--data-dir", old_dir.path()});
  ASSERT_EQ(old_status.exit_code, 0) << old_status.err;
  EXPECT_THAT(old_status.out, HasSubstr("schema version: 1 (this build: 3); run `pinvault-admin "
                                        "store migrate` (pinvaultd also migrates it)\n"));
  EXPECT_THAT(SqliteRecordStore::ReadSchemaVersion(old_dir.path()), testing::IsOkAndHolds(1));
  ProgramOutput upgrade = Admin({"store", "migrate", "--data-dir", old_dir.path()});
  ASSERT_EQ(upgrade.exit_code, 0) << upgrade.err;
  EXPECT_THAT(upgrade.out, HasSubstr(": schema version 1 -> 3\n"));

  // No store, no folder: exit 1 naming the path.
  ScopedTempDir empty;
  ProgramOutput none = Admin({"store", "status", "--data-dir", empty.path()});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("no record store at " + empty.path()));
  EXPECT_FALSE(std::filesystem::exists(empty.File(SqliteRecordStore::kDatabaseFileName)));
  ProgramOutput missing = Admin({"store", "migrate", "--data-dir", dir.File("no/such/dir")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("does not exist"));
}

}  // namespace
}  // namespace pinvault::api
