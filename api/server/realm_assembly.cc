#include "api/server/realm_assembly.h"

#include <utility>

namespace pinvault::api {

RealmCore::~RealmCore() {
  realm.reset();  // drains accepted requests
  store.reset();
  instrumented.reset();
  token.reset();
}

StatusOr<std::unique_ptr<RealmCore>> OpenRealmCore(std::shared_ptr<vault::Hsm> hsm,
                                                   const std::filesystem::path& data_dir,
                                                   const vault::RealmOptions& options,
                                                   Metrics* metrics) {
  if (hsm == nullptr) return InvalidArgumentError("OpenRealmCore needs an HSM");
  ASSIGN_OR_RETURN(std::unique_ptr<backup::SqliteRecordStore> store,
                   backup::SqliteRecordStore::Open(data_dir.string()));
  std::string name = "SQLite " + store->path();
  return OpenRealmCore(std::move(hsm), std::move(store), std::move(name), options, metrics);
}

StatusOr<std::unique_ptr<RealmCore>> OpenRealmCore(std::shared_ptr<vault::Hsm> hsm,
                                                   std::unique_ptr<vault::RecordStore> store,
                                                   std::string store_name,
                                                   const vault::RealmOptions& options,
                                                   Metrics* metrics) {
  if (hsm == nullptr) return InvalidArgumentError("OpenRealmCore needs an HSM");
  if (store == nullptr) return InvalidArgumentError("OpenRealmCore needs a record store");
  auto core = std::make_unique<RealmCore>();
  core->token = std::move(hsm);
  if (metrics != nullptr) {
    core->instrumented = std::make_unique<InstrumentedHsm>(core->token.get(), metrics);
  }
  core->store = std::move(store);
  core->store_name = std::move(store_name);
  ASSIGN_OR_RETURN(std::unique_ptr<vault::Realm> realm,
                   vault::Realm::Create(core->hsm(), *core->store, options));
  core->realm = std::move(realm);
  return core;
}

std::shared_ptr<const CallerAuthenticator> JwtAuthenticatorFor(
    std::shared_ptr<const TenantKeyStore> keys) {
  return std::make_shared<JwtCallerAuthenticator>(std::make_shared<Authenticator>(std::move(keys)));
}

StatusOr<std::unique_ptr<HttpServer>> StartHttpFrontend(const RouterOptions& router_options,
                                                        const ServerOptions& server_options,
                                                        RouterDeps deps) {
  std::shared_ptr<Metrics> metrics = deps.metrics;
  std::shared_ptr<RequestLogger> logger = deps.logger;
  ASSIGN_OR_RETURN(std::unique_ptr<Router> router, Router::Create(router_options, std::move(deps)));
  ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server,
                   HttpServer::Create(server_options, std::shared_ptr<Router>(std::move(router)),
                                      std::move(metrics), std::move(logger)));
  server->Start();
  return server;
}

}  // namespace pinvault::api
