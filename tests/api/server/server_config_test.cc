// pinvaultd's configuration: the documented example parses, environment overrides win,
// and mistakes are reported by key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "api/server/config.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
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

TEST(ServerConfigTest, DocumentedExampleParsesToTheDefaults) {
  auto config = LoadPinvaultdConfig(kExample);
  ASSERT_OK(config);
  EXPECT_OK(ValidatePinvaultdConfig(*config));
  PinvaultdConfig defaults;
  EXPECT_EQ(HexEncode(config->realm_id), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_EQ(config->listen_address, defaults.listen_address);
  EXPECT_EQ(config->listen_port, defaults.listen_port);
  EXPECT_EQ(config->threads, defaults.threads);
  EXPECT_FALSE(config->tls.has_value());
  EXPECT_EQ(config->allow_insecure_plain_http, defaults.allow_insecure_plain_http);
  EXPECT_EQ(config->request_timeout, defaults.request_timeout);
  EXPECT_EQ(config->idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(config->drain_timeout, defaults.drain_timeout);
  EXPECT_EQ(config->max_connections, defaults.max_connections);
  EXPECT_EQ(config->native_body_limit, defaults.native_body_limit);
  EXPECT_EQ(config->min_juicebox_version.major, 0u);
  EXPECT_EQ(config->min_juicebox_version.minor, 3u);
  EXPECT_EQ(config->data_dir, defaults.data_dir);
  EXPECT_EQ(config->token_uri, "pkcs11:token=pinvault-realm?pin-source=file:var/softhsm/user-pin");
  EXPECT_EQ(config->tenant_keys_file, "var/tenant-keys.json");
  EXPECT_EQ(config->rate_limits.tenant.rate_per_second,
            defaults.rate_limits.tenant.rate_per_second);
  EXPECT_EQ(config->rate_limits.tenant.burst, defaults.rate_limits.tenant.burst);
  EXPECT_EQ(config->rate_limits.user.rate_per_second, defaults.rate_limits.user.rate_per_second);
  EXPECT_EQ(config->rate_limits.user.burst, defaults.rate_limits.user.burst);
  EXPECT_EQ(config->rate_limits.max_tenants, defaults.rate_limits.max_tenants);
  EXPECT_EQ(config->rate_limits.max_users, defaults.rate_limits.max_users);
  EXPECT_EQ(config->realm_partitions, 4u);  // the example fixes it; the default reads it
  EXPECT_EQ(defaults.realm_partitions, 0u);   // from the HSM
  EXPECT_EQ(config->ToRealmOptions().partitions, 4u);
  EXPECT_EQ(config->realm_worker_threads, defaults.realm_worker_threads);
  EXPECT_EQ(config->realm_record_cache_size, defaults.realm_record_cache_size);
  EXPECT_EQ(config->realm_record_id_cache_size, defaults.realm_record_id_cache_size);
  EXPECT_EQ(config->realm_bucket_cache_size, defaults.realm_bucket_cache_size);
  EXPECT_EQ(config->realm_health_check_ms, defaults.realm_health_check_ms);
  EXPECT_EQ(config->request_log, defaults.request_log);
}

TEST(ServerConfigTest, EnvironmentOverridesTheFile) {
  auto config = LoadPinvaultdConfig(kExample);
  ASSERT_OK(config);
  auto env =
      Env({"PATH=/usr/bin", "PINVAULT_LISTEN=[::1]:9443",
           "PINVAULT_REALM_ID=FFEEDDCC-BBAA-9988-7766-554433221100",
           "PINVAULT_DATA_DIR=/srv/pinvault", "PINVAULT_TOKEN_URI=pkcs11:token=other",
           "PINVAULT_TLS_CERT=/etc/c.pem", "PINVAULT_TLS_KEY=/etc/k.pem", "PINVAULT_THREADS=8",
           "PINVAULT_REQUEST_LOG=false", "PINVAULT_ALLOW_INSECURE_HTTP=1",
           "PINVAULT_REQUEST_TIMEOUT_MS=2500", "PINVAULT_TENANT_KEYS_FILE=/etc/keys.json"});
  ASSERT_OK(ApplyEnvironment(*config, env.data()));
  EXPECT_EQ(config->listen_address, "::1");
  EXPECT_EQ(config->listen_port, 9443);
  EXPECT_EQ(HexEncode(config->realm_id), "ffeeddccbbaa99887766554433221100");
  EXPECT_EQ(config->data_dir, "/srv/pinvault");
  EXPECT_EQ(config->token_uri, "pkcs11:token=other");
  ASSERT_TRUE(config->tls.has_value());
  EXPECT_EQ(config->tls->certificate_chain, "/etc/c.pem");
  EXPECT_EQ(config->tls->private_key, "/etc/k.pem");
  EXPECT_EQ(config->threads, 8);
  EXPECT_FALSE(config->request_log);
  EXPECT_TRUE(config->allow_insecure_plain_http);
  EXPECT_EQ(config->request_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(config->tenant_keys_file, "/etc/keys.json");
  EXPECT_OK(ValidatePinvaultdConfig(*config));

  ServerOptions server = config->ToServerOptions();
  EXPECT_EQ(server.address, "::1");
  EXPECT_EQ(server.port, 9443);
  EXPECT_EQ(server.threads, 8);
  RouterOptions router = config->ToRouterOptions();
  EXPECT_EQ(router.realm_id, config->realm_id);
}

TEST(ServerConfigTest, BadEnvironmentValuesNameTheVariableNotTheValue) {
  PinvaultdConfig config;
  auto env = Env({"PINVAULT_THREADS=secret-looking-value"});
  Status s = ApplyEnvironment(config, env.data());
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, HasSubstr("PINVAULT_THREADS")));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("secret-looking-value")));
  auto bad_id = Env({"PINVAULT_REALM_ID=0102"});
  EXPECT_THAT(ApplyEnvironment(config, bad_id.data()).message(), HasSubstr("PINVAULT_REALM_ID"));
  auto bad_listen = Env({"PINVAULT_LISTEN=127.0.0.1"});
  EXPECT_THAT(ApplyEnvironment(config, bad_listen.data()).message(), HasSubstr("PINVAULT_LISTEN"));
}

TEST(ServerConfigTest, MistakesAreReportedByKey) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {"{", "not valid JSON"},
      {"[]", "top level must be an object"},
      {R"({"realm_idd": "00"})", "realm_idd: unknown key"},
      {R"({"realm_id": "0102"})", "realm_id: realm id must be 16 bytes"},
      {R"({"realm_id": 5})", "realm_id: must be a string"},
      {R"({"listen": "localhost"})", "listen:"},
      {R"({"listen": "127.0.0.1:70000"})", "listen:"},
      {R"({"threads": 0})", "threads: must be between 1 and 256"},
      {R"({"threads": "2"})", "threads: must be an integer"},
      {R"({"tls": {"cert": "x"}})", "tls.cert: unknown key"},
      {R"({"request_timeout_ms": -5})", "request_timeout_ms: must be between"},
      {R"({"native_body_limit_bytes": 100})", "native_body_limit_bytes: must be between"},
      {R"({"min_juicebox_version": "three"})", "min_juicebox_version"},
      {R"({"hsm": "pkcs11:token=x"})", "hsm: must be an object"},
      {R"({"rate_limits": {"user": {"rate": 1}}})", "rate_limits.user.rate: unknown key"},
      {R"({"rate_limits": {"user": {"burst": -1}}})", "rate_limits.user.burst"},
      {R"({"realm": {"worker_threads": 5000}})", "realm.worker_threads"},
      {R"({"realm": {"partitions": 3}})", "realm.partitions: the partition count must be a power"},
      {R"({"realm": {"partitions": 512}})", "realm.partitions"},
      {R"({"request_log": "yes"})", "request_log: must be true or false"},
  };
  for (const Case& c : cases) {
    auto config = ParsePinvaultdConfig(c.json);
    EXPECT_THAT(config, StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.json;
  }
}

TEST(ServerConfigTest, ValidationNeedsRealmIdAndTokenUri) {
  PinvaultdConfig config;
  EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("realm_id is required"));
  config.realm_id_set = true;
  EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("hsm.token_uri is required"));
  config.token_uri = "file:/tmp/token";
  EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("pkcs11: URI"));
  config.token_uri = "pkcs11:token=x";
  EXPECT_OK(ValidatePinvaultdConfig(config));
  config.tls = TlsFiles{"/etc/cert.pem", ""};
  EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("both certificate_chain"));
  config.tls.reset();
  config.rate_limits.user = {5, 0.5};
  EXPECT_THAT(ValidatePinvaultdConfig(config).message(), HasSubstr("rate_limits"));
}

TEST(ServerConfigTest, ListenAddresses) {
  std::string address;
  uint16_t port = 0;
  ASSERT_OK(ParseListenAddress("0.0.0.0:443", address, port));
  EXPECT_EQ(address, "0.0.0.0");
  EXPECT_EQ(port, 443);
  ASSERT_OK(ParseListenAddress("localhost:0", address, port));
  EXPECT_EQ(address, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_OK(ParseListenAddress("[::]:8080", address, port));
  EXPECT_EQ(address, "::");
  EXPECT_THAT(ParseListenAddress("::1:8080", address, port), Not(IsOk()));
  EXPECT_THAT(ParseListenAddress(":8080", address, port), Not(IsOk()));
  EXPECT_THAT(ParseListenAddress("host:", address, port), Not(IsOk()));
  EXPECT_THAT(ParseListenAddress("[::1]8080", address, port), Not(IsOk()));
}

TEST(ServerConfigTest, MissingFile) {
  EXPECT_THAT(LoadPinvaultdConfig("/nonexistent/pinvaultd.json"), StatusIs(StatusCode::kNotFound));
  auto defaults = LoadPinvaultdConfig("");
  ASSERT_OK(defaults);
  EXPECT_FALSE(defaults->realm_id_set);
}

}  // namespace
}  // namespace pinvault::api
