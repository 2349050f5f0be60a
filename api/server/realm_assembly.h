// realm_assembly.h: the one place that turns parts into a running realm. pinvaultd,
// `pinvault demo`, pinvault-bench and the server tests all assemble through it.
//
//   ASSIGN_OR_RETURN(auto core, OpenRealmCore(hsm, data_dir, options, metrics.get()));
//   ASSIGN_OR_RETURN(auto server, StartHttpFrontend(router_options, server_options,
//                                                   RouterDeps{core->realm, auth, ...}));
//
// RealmCore owns the HSM, the record store (SQLite in `data_dir`, or any vault::RecordStore
// the caller opened) and the core (vault::Realm) and tears them down in order;
// StartHttpFrontend puts the router and the HTTP server in front of any vault::RealmService.
#ifndef PINVAULT_API_SERVER_REALM_ASSEMBLY_H_
#define PINVAULT_API_SERVER_REALM_ASSEMBLY_H_

#include <filesystem>
#include <memory>
#include <string>

#include "api/auth/authenticator.h"
#include "api/auth/tenant_keys.h"
#include "api/server/metrics.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "backup/store/sqlite_record_store.h"
#include "vault/hsm.h"
#include "vault/realm.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::api {

// RealmCore is a realm's HSM, store and core. Its destructor stops the core first (which
// drains accepted requests), then closes the store, then the HSM. Not copyable.
struct RealmCore {
  RealmCore() = default;
  RealmCore(const RealmCore&) = delete;
  RealmCore& operator=(const RealmCore&) = delete;
  ~RealmCore();

  std::shared_ptr<vault::Hsm> token;              // the HSM as opened
  std::unique_ptr<InstrumentedHsm> instrumented;  // set when metrics were given
  std::unique_ptr<vault::RecordStore> store;
  std::string store_name;  // for logs: "SQLite <path>" or "PostgreSQL <target>"
  std::shared_ptr<vault::Realm> realm;

  // hsm is what the core uses: the instrumented wrapper when there is one.
  vault::Hsm& hsm() { return instrumented ? *instrumented : *token; }
};

// OpenRealmCore opens (creating if needed) the SQLite store in `data_dir` and starts the core
// over `hsm` with `options`. With `metrics`, every HSM call is timed into it (it must
// outlive the RealmCore). Errors: those of SqliteRecordStore::Open and vault::Realm::Create
// (UNAVAILABLE while the HSM or storage is unreachable). A core that started but is not
// ready (e.g. storage does not match the anchor) is returned; check realm->Ready().
StatusOr<std::unique_ptr<RealmCore>> OpenRealmCore(std::shared_ptr<vault::Hsm> hsm,
                                                   const std::filesystem::path& data_dir,
                                                   const vault::RealmOptions& options,
                                                   Metrics* metrics = nullptr);

// OpenRealmCore starts the core over `hsm` and an already opened `store` (e.g. a
// backup::PostgresRecordStore, which pinvaultd opens itself so that only it links libpq),
// taking both over; `store_name` names the store in logs (never a password). Otherwise as
// above, with the errors of vault::Realm::Create.
StatusOr<std::unique_ptr<RealmCore>> OpenRealmCore(std::shared_ptr<vault::Hsm> hsm,
                                                   std::unique_ptr<vault::RecordStore> store,
                                                   std::string store_name,
                                                   const vault::RealmOptions& options,
                                                   Metrics* metrics = nullptr);

// JwtAuthenticatorFor is the CallerAuthenticator that checks tenant JWTs against `keys`.
std::shared_ptr<const CallerAuthenticator> JwtAuthenticatorFor(
    std::shared_ptr<const TenantKeyStore> keys);

// StartHttpFrontend creates the router over `deps` and an HTTP server for it, and starts
// serving. The server shares `deps.metrics` and `deps.logger`. Errors: INVALID_ARGUMENT for
// a missing dependency or bad options, UNAVAILABLE if the address cannot be bound.
StatusOr<std::unique_ptr<HttpServer>> StartHttpFrontend(const RouterOptions& router_options,
                                                        const ServerOptions& server_options,
                                                        RouterDeps deps);

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_REALM_ASSEMBLY_H_
