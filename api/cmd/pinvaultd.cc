// pinvaultd: the realm server. Opens the realm's record store (SQLite in data_dir, or
// PostgreSQL with store.backend "postgres") and HSM token (PKCS#11), runs the core
// (vault::Realm), and serves the Juicebox endpoint (POST /req), the native API
// (POST /v1/secrets), /livez, /readyz and /metrics over HTTP/1.1 (TLS or loopback HTTP).
//
//   pinvaultd [--config FILE] [--check-config]
//
// Configuration: api/server/config.h and deploy/pinvaultd.example.json (every key), with
// PINVAULT_* environment overrides. Tenant keys for JWT validation come from the keys file
// and PINVAULT_TENANT_<NAME>_<VERSION> variables (api/auth/tenant_keys.h); SIGHUP reloads
// them. SIGTERM or SIGINT stops accepting, lets in-flight requests finish (up to
// drain_timeout_ms), stops the core and exits 0.
//
// Logs go to stderr, one JSON object per line: start-up and shutdown events, and one line
// per request (api/server/request_log.h).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/auth/tenant_keys.h"
#include "api/server/config.h"
#include "api/server/metrics.h"
#include "api/server/rate_limiter.h"
#include "api/server/realm_assembly.h"
#include "api/server/request_log.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "backup/store/postgres_record_store.h"
#include "backup/store/sqlite_record_store.h"
#include "pkcs11/hsm_keys.h"
#include "vault/bytes.h"
#include "vault/realm.h"
#include "vault/realm_service.h"

extern char** environ;

namespace pinvault::api {
namespace {

constexpr char kUsage[] =
    "usage: pinvaultd [--config FILE] [--check-config]\n"
    "\n"
    "Runs a pinvault realm: POST /req (Juicebox SDK), POST /v1/secrets (native API),\n"
    "GET /livez, /readyz, /metrics.\n"
    "\n"
    "  --config FILE    JSON configuration (see deploy/pinvaultd.example.json)\n"
    "  --check-config   validate the configuration and tenant keys, then exit\n"
    "\n"
    "Environment overrides: PINVAULT_REALM_ID, PINVAULT_LISTEN, PINVAULT_THREADS,\n"
    "PINVAULT_TLS_CERT, PINVAULT_TLS_KEY, PINVAULT_ALLOW_INSECURE_HTTP,\n"
    "PINVAULT_REQUEST_TIMEOUT_MS, PINVAULT_DATA_DIR, PINVAULT_TOKEN_URI,\n"
    "PINVAULT_TENANT_KEYS_FILE, PINVAULT_TENANT_<NAME>_<VERSION>, PINVAULT_REQUEST_LOG,\n"
    "PINVAULT_STORE_URI, PINVAULT_STORE_PASSWORD_FILE.\n"
    "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the tenant keys.\n";

// Event writes one JSON line to stderr.
void Event(std::string_view event,
           nlohmann::ordered_json fields = nlohmann::ordered_json::object()) {
  nlohmann::ordered_json line;
  auto now = std::chrono::system_clock::now();
  line["ts_unix_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  line["event"] = event;
  for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  std::string text =
      line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

// OpenStore opens the configured record store and names it for logs. A PostgreSQL database
// whose schema is not this build's is FAILED_PRECONDITION (naming `pinvault-admin store
// migrate`): pinvaultd never migrates it. UNAVAILABLE while the server cannot be reached.
StatusOr<std::unique_ptr<vault::RecordStore>> OpenStore(const PinvaultdConfig& config,
                                                        std::string& name) {
  if (config.store_backend == StoreBackend::kPostgres) {
    backup::PostgresRecordStore::Options options;
    options.uri = config.store_postgres_uri;
    options.password_file = config.store_postgres_password_file.string();
    options.pool_size = config.store_postgres_pool_size;
    ASSIGN_OR_RETURN(std::unique_ptr<backup::PostgresRecordStore> store,
                     backup::PostgresRecordStore::Open(options));
    name = "PostgreSQL " + store->target();
    return std::unique_ptr<vault::RecordStore>(std::move(store));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<backup::SqliteRecordStore> store,
                   backup::SqliteRecordStore::Open(config.data_dir.string()));
  name = "SQLite " + store->path();
  return std::unique_ptr<vault::RecordStore>(std::move(store));
}

// OpenRealm opens the store first, so that a store pinvaultd must refuse (an unmigrated
// database) is reported even while the HSM is unreachable.
StatusOr<std::unique_ptr<RealmCore>> OpenRealm(const PinvaultdConfig& config,
                                               const std::shared_ptr<Metrics>& metrics) {
  std::string store_name;
  ASSIGN_OR_RETURN(std::unique_ptr<vault::RecordStore> store, OpenStore(config, store_name));
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::TokenHsm> token,
                   pkcs11::TokenHsm::Open(config.token_uri));
  return OpenRealmCore(std::move(token), std::move(store), std::move(store_name),
                       config.ToRealmOptions(), metrics.get());
}

// DeferredRealm is the RealmService the router sees: it forwards to the core once that has
// started, and until then answers UNAVAILABLE (and /readyz says why). This lets pinvaultd
// come up and report while the HSM or storage is still unreachable. Thread-safe.
class DeferredRealm : public vault::RealmService {
 public:
  void Submit(vault::RequestContext context, protocol::SecretsRequest request,
              vault::ResponseCallback done) override {
    std::shared_ptr<vault::RealmService> inner;
    Status pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      inner = inner_;
      pending = pending_;
    }
    if (!inner) {
      done(UnavailableError("realm not started: " + pending.message()));
      return;
    }
    inner->Submit(std::move(context), std::move(request), std::move(done));
  }

  Status Ready() const override {
    std::shared_ptr<vault::RealmService> inner;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!inner_) return pending_;
      inner = inner_;
    }
    return inner->Ready();
  }

  void Set(std::shared_ptr<vault::RealmService> inner) {
    std::lock_guard<std::mutex> lock(mu_);
    inner_ = std::move(inner);
  }

  void SetPending(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(status);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<vault::RealmService> inner_;                  // guarded by mu_
  Status pending_ = UnavailableError("the realm is starting");  // guarded by mu_
};

// Starter opens the realm, retrying in the background while the failure is UNAVAILABLE.
class Starter {
 public:
  Starter(const PinvaultdConfig& config, std::shared_ptr<Metrics> metrics,
          std::shared_ptr<DeferredRealm> deferred)
      : config_(config), metrics_(std::move(metrics)), deferred_(std::move(deferred)) {}

  ~Starter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // By now the server has drained. Drop the router's path to the core first, so that the
    // RealmCore's order (core, then store, then HSM) really is the destruction order.
    deferred_->Set(nullptr);
    stack_.reset();
  }

  // Start tries once. A non-UNAVAILABLE failure is returned (fatal); UNAVAILABLE starts the
  // background retries and returns OK.
  Status Start() {
    Status first = TryOnce();
    if (first.ok()) return first;
    if (first.code() != StatusCode::kUnavailable) return first;
    Event("realm_unavailable_retrying", {{"reason", first.ToString()}});
    thread_ = std::thread([this] { RetryLoop(); });
    return OkStatus();
  }

 private:
  Status TryOnce() {
    auto stack = OpenRealm(config_, metrics_);
    if (!stack.ok()) {
      deferred_->SetPending(stack.status());
      return stack.status();
    }
    Status ready = (*stack)->realm->Ready();
    Event(
        "realm_started",
        {{"store", (*stack)->store_name}, {"ready", ready.ok()}, {"readiness", ready.ToString()}});
    {
      std::lock_guard<std::mutex> lock(mu_);
      stack_ = std::move(*stack);
    }
    deferred_->Set(stack_->realm);
    return OkStatus();
  }

  void RetryLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::seconds(2));
      if (stop_) return;
      lock.unlock();
      Status s = TryOnce();
      lock.lock();
      if (s.ok()) return;
      if (s.code() != StatusCode::kUnavailable) {
        Event("realm_start_failed", {{"reason", s.ToString()}});
      }
    }
  }

  const PinvaultdConfig& config_;
  std::shared_ptr<Metrics> metrics_;
  std::shared_ptr<DeferredRealm> deferred_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                 // guarded by mu_
  std::unique_ptr<RealmCore> stack_;  // set once, under mu_
  std::thread thread_;
};

Status ReloadKeys(const PinvaultdConfig& config, TenantKeyStore& keys) {
  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(std::unique_ptr<TenantKeyStore> fresh,
                   TenantKeyStore::LoadConfigured(config.tenant_keys_file, environ, &warnings));
  for (const std::string& w : warnings) Event("tenant_keys_warning", {{"warning", w}});
  keys.ReplaceAllFrom(*fresh);
  Event("tenant_keys_loaded", {{"keys", keys.size()}});
  return OkStatus();
}

int Fail(const Status& status) {
  Event("fatal", {{"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  std::filesystem::path config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = std::string(arg.substr(9));
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      // Do not echo the argument: it might be a secret pasted in the wrong place.
      std::fprintf(stderr, "pinvaultd: unknown argument #%d\n%s", i, kUsage);
      return 2;
    }
  }

  // Signals are taken synchronously by the main thread (sigwait); block them before any
  // other thread exists so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto config = LoadPinvaultdConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (Status s = ApplyEnvironment(*config, environ); !s.ok()) return Fail(s);
  if (Status s = ValidatePinvaultdConfig(*config); !s.ok()) return Fail(s);

  auto keys = std::make_shared<TenantKeyStore>();
  if (Status s = ReloadKeys(*config, *keys); !s.ok()) return Fail(s);
  if (keys->size() == 0) {
    Event("tenant_keys_warning",
          {{"warning", "no tenant keys configured: every request will be answered 401"}});
  }
  const std::string realm_hex = HexEncode(config->realm_id);
  if (check_only) {
    std::printf("configuration OK: realm %s, listen %s:%u, %zu tenant key(s)\n", realm_hex.c_str(),
                config->listen_address.c_str(), config->listen_port, keys->size());
    return 0;
  }

  if (config->store_backend == StoreBackend::kSqlite) {
    std::error_code ec;
    std::filesystem::create_directories(config->data_dir, ec);
    if (ec) return Fail(UnavailableError("cannot create data_dir " + config->data_dir.string()));
    std::filesystem::permissions(config->data_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }

  auto metrics = std::make_shared<Metrics>();
  auto deferred = std::make_shared<DeferredRealm>();
  auto starter = std::make_unique<Starter>(*config, metrics, deferred);
  if (Status s = starter->Start(); !s.ok()) return Fail(s);

  std::shared_ptr<RateLimiter> limiter;
  if (config->rate_limits.tenant.rate_per_second > 0 ||
      config->rate_limits.user.rate_per_second > 0) {
    limiter = std::make_shared<RateLimiter>(config->rate_limits);
  }
  auto logger = std::make_shared<RequestLogger>(&std::cerr, config->request_log);
  auto server =
      StartHttpFrontend(config->ToRouterOptions(), config->ToServerOptions(),
                        RouterDeps{deferred, JwtAuthenticatorFor(keys), limiter, metrics, logger});
  if (!server.ok()) return Fail(server.status());
  Event("listening", {{"address", config->listen_address},
                      {"port", (*server)->port()},
                      {"tls", config->tls.has_value()},
                      {"realm_id", realm_hex},
                      {"pid", static_cast<int64_t>(::getpid())}});

  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGHUP) {
      if (Status s = ReloadKeys(*config, *keys); !s.ok()) {
        Event("tenant_keys_reload_failed", {{"error", s.ToString()}});
      }
      continue;
    }
    Event("shutting_down", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                            {"in_flight", (*server)->in_flight()}});
    break;
  }
  bool drained = (*server)->Shutdown(config->drain_timeout);
  server->reset();
  starter.reset();  // stops retries, then the core (which drains), store and HSM
  Event("stopped", {{"drained", drained}});
  return 0;
}

}  // namespace
}  // namespace pinvault::api

int main(int argc, char** argv) {
  try {
    return pinvault::api::Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pinvaultd: unexpected exception: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pinvaultd: unexpected exception\n");
  }
  return 1;
}
