// PinvaultdConfig: the realm server's configuration, from a JSON file plus environment
// overrides. deploy/pinvaultd.example.json documents every key; the environment variables
// below override the file (values are never taken from the command line, so that secrets
// such as the token PIN never show in `ps`).
//
//   key                           env override                    default
//   realm_id                      PINVAULT_REALM_ID               (required) 32 hex chars
//   listen                        PINVAULT_LISTEN                 "127.0.0.1:8080"
//   threads                       PINVAULT_THREADS                2
//   tls.certificate_chain         PINVAULT_TLS_CERT               (none: plain HTTP)
//   tls.private_key               PINVAULT_TLS_KEY                (none)
//   allow_insecure_plain_http     PINVAULT_ALLOW_INSECURE_HTTP    false
//   request_timeout_ms            PINVAULT_REQUEST_TIMEOUT_MS     10000
//   idle_timeout_ms                                               30000
//   drain_timeout_ms                                              10000
//   max_connections                                               1024
//   native_body_limit_bytes                                       8192
//   min_juicebox_version                                          "0.3"
//   data_dir                      PINVAULT_DATA_DIR               "var/data" (SQLite store)
//   store.backend                                                 "sqlite" | "postgres"
//   store.postgres.uri            PINVAULT_STORE_URI              (required for postgres)
//   store.postgres.password_file  PINVAULT_STORE_PASSWORD_FILE    "" (no password)
//   store.postgres.pool_size                                      8
//   hsm.token_uri                 PINVAULT_TOKEN_URI              (required) pkcs11 URI
//   tenant_keys_file              PINVAULT_TENANT_KEYS_FILE       "" (see tenant_keys.h)
//   rate_limits.tenant.{rate_per_second,burst}                    500, 1000
//   rate_limits.user.{rate_per_second,burst}                      5, 30
//   rate_limits.{max_tenants,max_users}                           10000, 200000
//   realm.partitions                                              0 (as created; 4 when new)
//   realm.worker_threads                                          0 (number of CPUs)
//   realm.record_cache_size                                       4096
//   realm.record_id_cache_size                                    16384
//   realm.bucket_cache_size                                       4096
//   realm.health_check_ms                                         5000 (0: off)
//   request_log                   PINVAULT_REQUEST_LOG            true
//
// Relative paths are taken relative to the working directory. Unknown keys are rejected
// (a misspelt key would otherwise silently fall back to its default).
#ifndef PINVAULT_API_SERVER_CONFIG_H_
#define PINVAULT_API_SERVER_CONFIG_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "api/server/rate_limiter.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "vault/protocol/messages.h"
#include "vault/realm.h"
#include "vault/status.h"

namespace pinvault::api {

// StoreBackend: where the realm keeps its records. kSqlite: records.sqlite in data_dir,
// migrated on open. kPostgres: backup/store/postgres_record_store.h, whose schema only
// `pinvault-admin store migrate` creates or upgrades.
enum class StoreBackend { kSqlite, kPostgres };

struct PinvaultdConfig {
  protocol::RealmId realm_id{};
  bool realm_id_set = false;

  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 8080;
  int threads = 2;
  std::optional<TlsFiles> tls;
  bool allow_insecure_plain_http = false;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds drain_timeout{10000};
  size_t max_connections = 1024;
  size_t native_body_limit = 8192;
  JuiceboxVersion min_juicebox_version{0, 3};

  std::filesystem::path data_dir = "var/data";
  std::string token_uri;
  std::filesystem::path tenant_keys_file;
  RateLimiterConfig rate_limits;
  uint32_t realm_partitions = 0;
  int realm_worker_threads = 0;
  size_t realm_record_cache_size = 4096;
  size_t realm_record_id_cache_size = 16384;
  size_t realm_bucket_cache_size = 4096;
  int realm_health_check_ms = 5000;
  bool request_log = true;
  StoreBackend store_backend = StoreBackend::kSqlite;
  std::string store_postgres_uri;  // never holds a password (the store refuses one)
  std::filesystem::path store_postgres_password_file;
  int store_postgres_pool_size = 8;

  // ServerOptions / RouterOptions / the core's RealmOptions derived from the above.
  ServerOptions ToServerOptions() const;
  RouterOptions ToRouterOptions() const;
  vault::RealmOptions ToRealmOptions() const;
};

// ParseListenAddress splits "host:port" ("[v6]:port" for IPv6) into `address` and `port`.
// INVALID_ARGUMENT if malformed or the port is out of range (0 is allowed: any free port).
Status ParseListenAddress(std::string_view listen, std::string& address, uint16_t& port);

// ParseRealmId reads 32 hex characters (either case; '-' separators ignored, as the SDK
// does). INVALID_ARGUMENT otherwise.
StatusOr<protocol::RealmId> ParseRealmId(std::string_view text);

// ParsePinvaultdConfig reads a configuration file's JSON text onto the defaults.
// INVALID_ARGUMENT naming the key for malformed JSON, unknown keys and bad values.
StatusOr<PinvaultdConfig> ParsePinvaultdConfig(std::string_view json);

// LoadPinvaultdConfig reads `path` (NOT_FOUND if missing), or returns the defaults when
// `path` is empty.
StatusOr<PinvaultdConfig> LoadPinvaultdConfig(const std::filesystem::path& path);

// ApplyEnvironment overrides `config` from the PINVAULT_* variables in `envp` (a
// null-terminated environ-style array). INVALID_ARGUMENT naming the variable (never its
// value) if one is malformed.
Status ApplyEnvironment(PinvaultdConfig& config, const char* const* envp);

// ValidatePinvaultdConfig checks what the server needs before starting: a realm id, a token
// URI, TLS files named in pairs, sane limits, a URI for the postgres store (and no
// store.postgres settings for the sqlite one). INVALID_ARGUMENT naming what is wrong.
Status ValidatePinvaultdConfig(const PinvaultdConfig& config);

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_CONFIG_H_
