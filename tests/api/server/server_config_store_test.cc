// pinvaultd's record-store keys (store.*): SQLite stays the documented default, the
// PostgreSQL keys parse and take their environment overrides, and a half-configured store is
// refused by name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "api/server/config.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path kExample =
    std::filesystem::path(PINVAULT_TEST_DATA).parent_path().parent_path() / "deploy" /
    "pinvaultd.example.json";

std::vector<const char*> Env(std::initializer_list<const char*> entries) {
  std::vector<const char*> out(entries);
  out.push_back(nullptr);
  return out;
}

constexpr char kBase[] =
    R"({"realm_id": "0102030405060708090a0b0c0d0e0f10", "hsm": {"token_uri": "pkcs11:token=t"})";

// WithStore is a valid configuration with `store` as its store block.
std::string WithStore(const std::string& store) {
  return std::string(kBase) + R"(, "store": )" + store + "}";
}

TEST(ServerConfigStoreTest, TheExampleAndTheDefaultsUseSqlite) {
  ASSERT_OK_AND_ASSIGN(PinvaultdConfig example, LoadPinvaultdConfig(kExample));
  EXPECT_EQ(example.store_backend, StoreBackend::kSqlite);
  EXPECT_EQ(example.store_postgres_uri, "");
  EXPECT_EQ(example.store_postgres_password_file, "");
  EXPECT_OK(ValidatePinvaultdConfig(example));
  PinvaultdConfig defaults;
  EXPECT_EQ(defaults.store_backend, StoreBackend::kSqlite);
  EXPECT_EQ(defaults.store_postgres_pool_size, 8);
  EXPECT_EQ(example.store_postgres_pool_size, defaults.store_postgres_pool_size);
}

TEST(ServerConfigStoreTest, PostgresKeysParse) {
  ASSERT_OK_AND_ASSIGN(PinvaultdConfig config,
                       ParsePinvaultdConfig(WithStore(R"({"backend": "postgres", "postgres": {
          "uri": "postgresql://pinvault@db.example/pinvault?sslmode=verify-full",
          "password_file": "/etc/pinvault/db-password", "pool_size": 3}})")));
  EXPECT_EQ(config.store_backend, StoreBackend::kPostgres);
  EXPECT_EQ(config.store_postgres_uri,
            "postgresql://pinvault@db.example/pinvault?sslmode=verify-full");
  EXPECT_EQ(config.store_postgres_password_file, "/etc/pinvault/db-password");
  EXPECT_EQ(config.store_postgres_pool_size, 3);
  EXPECT_OK(ValidatePinvaultdConfig(config));

  // Only the URI is needed; the pool keeps its default.
  ASSERT_OK_AND_ASSIGN(config, ParsePinvaultdConfig(WithStore(
                                   R"({"backend": "postgres", "postgres": {"uri": "dbname=v"}})")));
  EXPECT_EQ(config.store_postgres_pool_size, 8);
  EXPECT_EQ(config.store_postgres_password_file, "");
  EXPECT_OK(ValidatePinvaultdConfig(config));
  // "sqlite" may be written out.
  ASSERT_OK_AND_ASSIGN(config, ParsePinvaultdConfig(WithStore(R"({"backend": "sqlite"})")));
  EXPECT_EQ(config.store_backend, StoreBackend::kSqlite);
}

TEST(ServerConfigStoreTest, EnvironmentOverridesTheUriAndThePasswordFile) {
  ASSERT_OK_AND_ASSIGN(PinvaultdConfig config,
                       ParsePinvaultdConfig(WithStore(R"({"backend": "postgres", "postgres": {
          "uri": "dbname=from_file", "password_file": "/from/file"}})")));
  auto env = Env({"PINVAULT_STORE_URI=host=db.internal dbname=from_env",
                  "PINVAULT_STORE_PASSWORD_FILE=/run/secrets/db"});
  ASSERT_OK(ApplyEnvironment(config, env.data()));
  EXPECT_EQ(config.store_postgres_uri, "host=db.internal dbname=from_env");
  EXPECT_EQ(config.store_postgres_password_file, "/run/secrets/db");
  EXPECT_OK(ValidatePinvaultdConfig(config));

  // The URI may come from the environment alone.
  ASSERT_OK_AND_ASSIGN(config, ParsePinvaultdConfig(WithStore(R"({"backend": "postgres"})")));
  auto uri_only = Env({"PINVAULT_STORE_URI=dbname=v"});
  ASSERT_OK(ApplyEnvironment(config, uri_only.data()));
  EXPECT_OK(ValidatePinvaultdConfig(config));
}

TEST(ServerConfigStoreTest, PostgresWithoutAUriIsRefused) {
  for (const char* store :
       {R"({"backend": "postgres"})", R"({"backend": "postgres", "postgres": {"pool_size": 4}})",
        R"({"backend": "postgres", "postgres": {"uri": ""}})"}) {
    SCOPED_TRACE(store);
    ASSERT_OK_AND_ASSIGN(PinvaultdConfig config, ParsePinvaultdConfig(WithStore(store)));
    EXPECT_THAT(ValidatePinvaultdConfig(config),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("store.postgres.uri")));
    EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("PINVAULT_STORE_URI"));
  }
}

TEST(ServerConfigStoreTest, PostgresSettingsWithTheSqliteBackendAreRefused) {
  // A URI without backend "postgres" would otherwise start the realm on an empty SQLite store.
  ASSERT_OK_AND_ASSIGN(PinvaultdConfig config,
                       ParsePinvaultdConfig(WithStore(R"({"postgres": {"uri": "dbname=v"}})")));
  EXPECT_THAT(ValidatePinvaultdConfig(config),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("store.backend")));
  ASSERT_OK_AND_ASSIGN(config, ParsePinvaultdConfig(kBase + std::string("}")));
  auto env = Env({"PINVAULT_STORE_URI=dbname=v"});
  ASSERT_OK(ApplyEnvironment(config, env.data()));
  EXPECT_THAT(ValidatePinvaultdConfig(config),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("PINVAULT_STORE_URI")));
}

TEST(ServerConfigStoreTest, MistakesAreReportedByKey) {
  struct Case {
    const char* store;
    const char* message;
  };
  const Case cases[] = {
      {R"({"backend": "mysql"})", "store.backend: must be \"sqlite\" or \"postgres\""},
      {R"({"backend": 1})", "store.backend: must be a string"},
      {R"({"engine": "postgres"})", "store.engine: unknown key"},
      {R"("postgres")", "store: must be an object"},
      {R"({"postgres": "dbname=v"})", "store.postgres: must be an object"},
      {R"({"postgres": {"url": "dbname=v"}})", "store.postgres.url: unknown key"},
      {R"({"postgres": {"password": "hunter2-9911"}})", "store.postgres.password: unknown key"},
      {R"({"postgres": {"uri": 5}})", "store.postgres.uri: must be a string"},
      {R"({"postgres": {"password_file": []}})", "store.postgres.password_file: must be a string"},
      {R"({"postgres": {"pool_size": 0}})", "store.postgres.pool_size: must be between 1 and"},
      {R"({"postgres": {"pool_size": "8"}})", "store.postgres.pool_size: must be an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.store);
    auto config = ParsePinvaultdConfig(WithStore(c.store));
    EXPECT_THAT(config, StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.message)));
    EXPECT_THAT(config.status().message(), Not(HasSubstr("hunter2-9911")));
  }
}

}  // namespace
}  // namespace pinvault::api
