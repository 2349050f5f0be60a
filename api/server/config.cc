#include "api/server/config.h"

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "vault/bytes.h"
#include "vault/partition.h"

namespace pinvault::api {
namespace {

using nlohmann::json;

Status Bad(std::string_view key, std::string_view what) {
  return InvalidArgumentError("config: " + std::string(key) + ": " + std::string(what));
}

Status CheckKeys(const json& object, std::string_view where,
                 std::initializer_list<std::string_view> allowed) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = false;
    for (std::string_view k : allowed) known = known || k == it.key();
    if (!known) {
      std::string name = where.empty() ? it.key() : std::string(where) + "." + it.key();
      return Bad(name, "unknown key");
    }
  }
  return OkStatus();
}

StatusOr<const json*> Object(const json& parent, std::string_view key, std::string_view path) {
  auto it = parent.find(std::string(key));
  if (it == parent.end()) return static_cast<const json*>(nullptr);
  if (!it->is_object()) return Bad(path, "must be an object");
  return &*it;
}

Status ReadString(const json& parent, std::string_view key, std::string_view path,
                  std::string& out) {
  auto it = parent.find(std::string(key));
  if (it == parent.end()) return OkStatus();
  if (!it->is_string()) return Bad(path, "must be a string");
  out = it->get<std::string>();
  return OkStatus();
}

Status ReadBool(const json& parent, std::string_view key, std::string_view path, bool& out) {
  auto it = parent.find(std::string(key));
  if (it == parent.end()) return OkStatus();
  if (!it->is_boolean()) return Bad(path, "must be true or false");
  out = it->get<bool>();
  return OkStatus();
}

Status ReadInteger(const json& parent, std::string_view key, std::string_view path, int64_t min,
                   int64_t max, int64_t& out) {
  auto it = parent.find(std::string(key));
  if (it == parent.end()) return OkStatus();
  if (!it->is_number_integer()) return Bad(path, "must be an integer");
  int64_t v = 0;
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(path, "out of range");
    }
    v = static_cast<int64_t>(u);
  } else {
    v = it->get<int64_t>();
  }
  if (v < min || v > max) {
    return Bad(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  out = v;
  return OkStatus();
}

Status ReadDouble(const json& parent, std::string_view key, std::string_view path, double& out) {
  auto it = parent.find(std::string(key));
  if (it == parent.end()) return OkStatus();
  if (!it->is_number()) return Bad(path, "must be a number");
  double v = it->get<double>();
  if (!std::isfinite(v) || v < 0) return Bad(path, "must be a finite number >= 0");
  out = v;
  return OkStatus();
}

template <typename T>
Status ReadIntInto(const json& parent, std::string_view key, std::string_view path, int64_t min,
                   int64_t max, T& out) {
  int64_t v = static_cast<int64_t>(out);
  RETURN_IF_ERROR(ReadInteger(parent, key, path, min, max, v));
  out = static_cast<T>(v);
  return OkStatus();
}

Status ReadMillis(const json& parent, std::string_view key, std::string_view path,
                  std::chrono::milliseconds& out) {
  int64_t v = out.count();
  RETURN_IF_ERROR(ReadInteger(parent, key, path, 1, 24LL * 3600 * 1000, v));
  out = std::chrono::milliseconds(v);
  return OkStatus();
}

Status ReadBucket(const json& parent, std::string_view key, std::string_view path,
                  TokenBucketConfig& out) {
  ASSIGN_OR_RETURN(const json* bucket, Object(parent, key, path));
  if (bucket == nullptr) return OkStatus();
  RETURN_IF_ERROR(CheckKeys(*bucket, path, {"rate_per_second", "burst"}));
  RETURN_IF_ERROR(ReadDouble(*bucket, "rate_per_second", std::string(path) + ".rate_per_second",
                             out.rate_per_second));
  return ReadDouble(*bucket, "burst", std::string(path) + ".burst", out.burst);
}

Status ParseMinVersion(std::string_view text, JuiceboxVersion& out) {
  std::optional<JuiceboxVersion> v = ParseJuiceboxVersion(text);
  if (!v) return Bad("min_juicebox_version", "must look like \"0.3\" or \"0.3.0\"");
  out = *v;
  return OkStatus();
}

std::optional<bool> ParseBoolText(std::string_view text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

std::optional<int64_t> ParseIntText(std::string_view text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

vault::RealmOptions PinvaultdConfig::ToRealmOptions() const {
  vault::RealmOptions options;
  options.partitions = realm_partitions;
  options.worker_threads = realm_worker_threads;
  options.record_cache_size = realm_record_cache_size;
  options.record_id_cache_size = realm_record_id_cache_size;
  options.bucket_cache_size = realm_bucket_cache_size;
  options.health_check_interval = std::chrono::milliseconds(realm_health_check_ms);
  return options;
}

ServerOptions PinvaultdConfig::ToServerOptions() const {
  ServerOptions o;
  o.address = listen_address;
  o.port = listen_port;
  o.threads = threads;
  o.tls = tls;
  o.allow_insecure_plain_http = allow_insecure_plain_http;
  o.request_timeout = request_timeout;
  o.idle_timeout = idle_timeout;
  o.max_connections = max_connections;
  return o;
}

RouterOptions PinvaultdConfig::ToRouterOptions() const {
  RouterOptions o;
  o.realm_id = realm_id;
  o.min_juicebox_version = min_juicebox_version;
  o.native_body_limit = native_body_limit;
  return o;
}

Status ParseListenAddress(std::string_view listen, std::string& address, uint16_t& port) {
  std::string_view host;
  std::string_view port_text;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgumentError("listen address must be [IPv6]:port");
    }
    host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos || listen.find(':') != colon) {
      return InvalidArgumentError("listen address must be host:port (IPv6 as [addr]:port)");
    }
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
  }
  std::optional<int64_t> p = ParseIntText(port_text);
  if (host.empty() || !p || *p > 65535) {
    return InvalidArgumentError("listen address must be host:port with a port of 0..65535");
  }
  address = std::string(host);
  if (address == "localhost") address = "127.0.0.1";
  port = static_cast<uint16_t>(*p);
  return OkStatus();
}

StatusOr<protocol::RealmId> ParseRealmId(std::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c != '-') hex.push_back(c);
  }
  auto bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != protocol::kRealmIdSize) {
    return InvalidArgumentError("realm id must be 16 bytes written as 32 hex characters");
  }
  protocol::RealmId id{};
  std::copy(bytes->begin(), bytes->end(), id.begin());
  return id;
}

StatusOr<PinvaultdConfig> ParsePinvaultdConfig(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false,
                          /*ignore_comments=*/true);
  if (root.is_discarded()) return InvalidArgumentError("config: not valid JSON");
  if (!root.is_object()) return InvalidArgumentError("config: the top level must be an object");
  RETURN_IF_ERROR(
      CheckKeys(root, "",
                {"realm_id", "listen", "threads", "tls", "allow_insecure_plain_http",
                 "request_timeout_ms", "idle_timeout_ms", "drain_timeout_ms", "max_connections",
                 "native_body_limit_bytes", "min_juicebox_version", "data_dir", "hsm",
                 "tenant_keys_file", "rate_limits", "realm", "request_log", "store"}));

  PinvaultdConfig c;
  std::string s;
  if (root.contains("realm_id")) {
    RETURN_IF_ERROR(ReadString(root, "realm_id", "realm_id", s));
    auto id = ParseRealmId(s);
    if (!id.ok()) return Bad("realm_id", id.status().message());
    c.realm_id = *id;
    c.realm_id_set = true;
  }
  if (root.contains("listen")) {
    RETURN_IF_ERROR(ReadString(root, "listen", "listen", s));
    Status st = ParseListenAddress(s, c.listen_address, c.listen_port);
    if (!st.ok()) return Bad("listen", st.message());
  }
  RETURN_IF_ERROR(ReadIntInto(root, "threads", "threads", 1, 256, c.threads));
  ASSIGN_OR_RETURN(const json* tls, Object(root, "tls", "tls"));
  if (tls != nullptr) {
    RETURN_IF_ERROR(CheckKeys(*tls, "tls", {"certificate_chain", "private_key"}));
    std::string cert;
    std::string key;
    RETURN_IF_ERROR(ReadString(*tls, "certificate_chain", "tls.certificate_chain", cert));
    RETURN_IF_ERROR(ReadString(*tls, "private_key", "tls.private_key", key));
    if (!cert.empty() || !key.empty()) c.tls = TlsFiles{cert, key};
  }
  RETURN_IF_ERROR(ReadBool(root, "allow_insecure_plain_http", "allow_insecure_plain_http",
                           c.allow_insecure_plain_http));
  RETURN_IF_ERROR(ReadMillis(root, "request_timeout_ms", "request_timeout_ms", c.request_timeout));
  RETURN_IF_ERROR(ReadMillis(root, "idle_timeout_ms", "idle_timeout_ms", c.idle_timeout));
  RETURN_IF_ERROR(ReadMillis(root, "drain_timeout_ms", "drain_timeout_ms", c.drain_timeout));
  RETURN_IF_ERROR(
      ReadIntInto(root, "max_connections", "max_connections", 1, 1000000, c.max_connections));
  RETURN_IF_ERROR(ReadIntInto(root, "native_body_limit_bytes", "native_body_limit_bytes", 1024,
                              1 << 20, c.native_body_limit));
  if (root.contains("min_juicebox_version")) {
    RETURN_IF_ERROR(ReadString(root, "min_juicebox_version", "min_juicebox_version", s));
    RETURN_IF_ERROR(ParseMinVersion(s, c.min_juicebox_version));
  }
  if (root.contains("data_dir")) {
    RETURN_IF_ERROR(ReadString(root, "data_dir", "data_dir", s));
    c.data_dir = s;
  }
  ASSIGN_OR_RETURN(const json* hsm, Object(root, "hsm", "hsm"));
  if (hsm != nullptr) {
    RETURN_IF_ERROR(CheckKeys(*hsm, "hsm", {"token_uri"}));
    RETURN_IF_ERROR(ReadString(*hsm, "token_uri", "hsm.token_uri", c.token_uri));
  }
  if (root.contains("tenant_keys_file")) {
    RETURN_IF_ERROR(ReadString(root, "tenant_keys_file", "tenant_keys_file", s));
    c.tenant_keys_file = s;
  }
  ASSIGN_OR_RETURN(const json* limits, Object(root, "rate_limits", "rate_limits"));
  if (limits != nullptr) {
    RETURN_IF_ERROR(
        CheckKeys(*limits, "rate_limits", {"tenant", "user", "max_tenants", "max_users"}));
    RETURN_IF_ERROR(ReadBucket(*limits, "tenant", "rate_limits.tenant", c.rate_limits.tenant));
    RETURN_IF_ERROR(ReadBucket(*limits, "user", "rate_limits.user", c.rate_limits.user));
    RETURN_IF_ERROR(ReadIntInto(*limits, "max_tenants", "rate_limits.max_tenants", 1, 100000000,
                                c.rate_limits.max_tenants));
    RETURN_IF_ERROR(ReadIntInto(*limits, "max_users", "rate_limits.max_users", 1, 100000000,
                                c.rate_limits.max_users));
  }
  ASSIGN_OR_RETURN(const json* realm, Object(root, "realm", "realm"));
  if (realm != nullptr) {
    RETURN_IF_ERROR(CheckKeys(*realm, "realm",
                              {"partitions", "worker_threads", "record_cache_size",
                               "record_id_cache_size", "bucket_cache_size", "health_check_ms"}));
    RETURN_IF_ERROR(ReadIntInto(*realm, "partitions", "realm.partitions", 0,
                                vault::kMaxPartitionCount, c.realm_partitions));
    if (c.realm_partitions != 0) {
      RETURN_IF_ERROR(vault::ValidatePartitionCount(c.realm_partitions)
                          .WithContext("realm.partitions"));
    }
    RETURN_IF_ERROR(ReadIntInto(*realm, "worker_threads", "realm.worker_threads", 0, 1024,
                                c.realm_worker_threads));
    RETURN_IF_ERROR(ReadIntInto(*realm, "record_cache_size", "realm.record_cache_size", 0,
                                100000000, c.realm_record_cache_size));
    RETURN_IF_ERROR(ReadIntInto(*realm, "record_id_cache_size", "realm.record_id_cache_size", 0,
                                100000000, c.realm_record_id_cache_size));
    RETURN_IF_ERROR(ReadIntInto(*realm, "bucket_cache_size", "realm.bucket_cache_size", 0,
                                100000000, c.realm_bucket_cache_size));
    RETURN_IF_ERROR(ReadIntInto(*realm, "health_check_ms", "realm.health_check_ms", 0, 3600000,
                                c.realm_health_check_ms));
  }
  RETURN_IF_ERROR(ReadBool(root, "request_log", "request_log", c.request_log));
  ASSIGN_OR_RETURN(const json* store, Object(root, "store", "store"));
  if (store != nullptr) {
    RETURN_IF_ERROR(CheckKeys(*store, "store", {"backend", "postgres"}));
    if (store->contains("backend")) {
      RETURN_IF_ERROR(ReadString(*store, "backend", "store.backend", s));
      if (s == "sqlite") {
        c.store_backend = StoreBackend::kSqlite;
      } else if (s == "postgres") {
        c.store_backend = StoreBackend::kPostgres;
      } else {
        return Bad("store.backend", "must be \"sqlite\" or \"postgres\"");
      }
    }
    ASSIGN_OR_RETURN(const json* pg, Object(*store, "postgres", "store.postgres"));
    if (pg != nullptr) {
      RETURN_IF_ERROR(CheckKeys(*pg, "store.postgres", {"uri", "password_file", "pool_size"}));
      RETURN_IF_ERROR(ReadString(*pg, "uri", "store.postgres.uri", c.store_postgres_uri));
      if (pg->contains("password_file")) {
        RETURN_IF_ERROR(ReadString(*pg, "password_file", "store.postgres.password_file", s));
        c.store_postgres_password_file = s;
      }
      RETURN_IF_ERROR(ReadIntInto(*pg, "pool_size", "store.postgres.pool_size", 1, 1024,
                                  c.store_postgres_pool_size));
    }
  }
  return c;
}

StatusOr<PinvaultdConfig> LoadPinvaultdConfig(const std::filesystem::path& path) {
  if (path.empty()) return PinvaultdConfig();
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read config file " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParsePinvaultdConfig(text.str());
  if (!config.ok()) return config.status().WithContext(path.string());
  return config;
}

Status ApplyEnvironment(PinvaultdConfig& config, const char* const* envp) {
  if (envp == nullptr) return OkStatus();
  for (const char* const* e = envp; *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    std::string_view value = entry.substr(eq + 1);
    auto bad = [&](std::string_view what) {
      return InvalidArgumentError("environment: " + std::string(name) + ": " + std::string(what));
    };
    if (name == "PINVAULT_REALM_ID") {
      auto id = ParseRealmId(value);
      if (!id.ok()) return bad(id.status().message());
      config.realm_id = *id;
      config.realm_id_set = true;
    } else if (name == "PINVAULT_LISTEN") {
      Status st = ParseListenAddress(value, config.listen_address, config.listen_port);
      if (!st.ok()) return bad(st.message());
    } else if (name == "PINVAULT_THREADS") {
      auto n = ParseIntText(value);
      if (!n || *n < 1 || *n > 256) return bad("must be an integer between 1 and 256");
      config.threads = static_cast<int>(*n);
    } else if (name == "PINVAULT_TLS_CERT") {
      if (!config.tls) config.tls = TlsFiles{};
      config.tls->certificate_chain = std::string(value);
    } else if (name == "PINVAULT_TLS_KEY") {
      if (!config.tls) config.tls = TlsFiles{};
      config.tls->private_key = std::string(value);
    } else if (name == "PINVAULT_ALLOW_INSECURE_HTTP") {
      auto b = ParseBoolText(value);
      if (!b) return bad("must be true or false");
      config.allow_insecure_plain_http = *b;
    } else if (name == "PINVAULT_REQUEST_TIMEOUT_MS") {
      auto n = ParseIntText(value);
      if (!n || *n < 1 || *n > 24LL * 3600 * 1000) return bad("must be a positive integer");
      config.request_timeout = std::chrono::milliseconds(*n);
    } else if (name == "PINVAULT_DATA_DIR") {
      config.data_dir = std::string(value);
    } else if (name == "PINVAULT_TOKEN_URI") {
      config.token_uri = std::string(value);
    } else if (name == "PINVAULT_TENANT_KEYS_FILE") {
      config.tenant_keys_file = std::string(value);
    } else if (name == "PINVAULT_STORE_URI") {
      config.store_postgres_uri = std::string(value);
    } else if (name == "PINVAULT_STORE_PASSWORD_FILE") {
      config.store_postgres_password_file = std::string(value);
    } else if (name == "PINVAULT_REQUEST_LOG") {
      auto b = ParseBoolText(value);
      if (!b) return bad("must be true or false");
      config.request_log = *b;
    }
  }
  return OkStatus();
}

Status ValidatePinvaultdConfig(const PinvaultdConfig& config) {
  if (!config.realm_id_set) {
    return InvalidArgumentError("config: realm_id is required (or PINVAULT_REALM_ID)");
  }
  if (config.token_uri.empty()) {
    return InvalidArgumentError("config: hsm.token_uri is required (or PINVAULT_TOKEN_URI)");
  }
  if (config.token_uri.rfind("pkcs11:", 0) != 0) {
    return InvalidArgumentError("config: hsm.token_uri must be a pkcs11: URI");
  }
  if (config.tls && (config.tls->certificate_chain.empty() || config.tls->private_key.empty())) {
    return InvalidArgumentError(
        "config: tls needs both certificate_chain and private_key (PINVAULT_TLS_CERT / "
        "PINVAULT_TLS_KEY)");
  }
  if (config.store_backend == StoreBackend::kPostgres) {
    if (config.store_postgres_uri.empty()) {
      return InvalidArgumentError(
          "config: store.postgres.uri is required when store.backend is \"postgres\" (or "
          "PINVAULT_STORE_URI)");
    }
  } else {
    // A PostgreSQL setting with the SQLite backend is a mistake that would otherwise start a
    // realm on an empty SQLite store.
    if (!config.store_postgres_uri.empty() || !config.store_postgres_password_file.empty()) {
      return InvalidArgumentError(
          "config: store.postgres.uri or password_file is set (or PINVAULT_STORE_URI / "
          "PINVAULT_STORE_PASSWORD_FILE) but store.backend is \"sqlite\"; set store.backend "
          "to \"postgres\" or remove them");
    }
    if (config.data_dir.empty()) return InvalidArgumentError("config: data_dir is empty");
  }
  RETURN_IF_ERROR(ValidateRateLimiterConfig(config.rate_limits).WithContext("config: rate_limits"));
  return OkStatus();
}

}  // namespace pinvault::api
