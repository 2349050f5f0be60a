#include "api/cmd/demo.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include "api/auth/authenticator.h"
#include "api/client/http_transport.h"
#include "api/client/jwt_mint.h"
#include "api/server/metrics.h"
#include "api/server/realm_assembly.h"
#include "api/server/request_log.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "backup/client/client.h"
#include "backup/client/configuration.h"
#include "backup/store/sqlite_record_store.h"
#include "pkcs11/key_set.h"
#include "pkcs11/module.h"
#include "pkcs11/token_setup.h"
#include "vault/bytes.h"
#include "vault/realm.h"
#include "vault/secret_bytes.h"

namespace pinvault::api {

MintTokenProvider::MintTokenProvider(TenantKey key, std::string tenant, uint64_t version,
                                     std::string user, int64_t lifetime_seconds)
    : key_(std::move(key)),
      tenant_(std::move(tenant)),
      version_(version),
      user_(std::move(user)),
      lifetime_seconds_(lifetime_seconds) {}

StatusOr<std::string> MintTokenProvider::GetToken(const protocol::RealmId& realm) {
  std::lock_guard lock(mu_);
  if (auto it = cache_.find(realm); it != cache_.end()) return it->second;
  JwtMintRequest request;
  request.tenant = tenant_;
  request.version = version_;
  request.user = user_;
  request.realm_id_hex = backup::RealmIdHex(realm);
  request.issued_at = static_cast<int64_t>(std::time(nullptr));
  request.lifetime_seconds = lifetime_seconds_;
  ASSIGN_OR_RETURN(std::string token, MintJwt(key_, request));
  cache_[realm] = token;
  return token;
}

namespace {

constexpr char kTokenLabel[] = "pinvault-demo";
constexpr char kTenant[] = "demo";

SecretBytes SecretFromText(std::string_view text) { return SecretBytes::CopyFrom(AsBytes(text)); }

// ScopedEnv sets an environment variable and restores its old value when destroyed.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Step narrates one step and counts failures.
class Narrator {
 public:
  Narrator(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  void Say(std::string_view text) { out_ << text << std::endl; }

  // Expect reports one check: "  ok  what" or "  FAILED  what: why".
  bool Expect(bool ok, std::string_view what, std::string_view why = {}) {
    if (ok) {
      out_ << "    ok: " << what << std::endl;
    } else {
      ++failures_;
      out_ << "    FAILED: " << what << std::endl;
      err_ << "pinvault demo: step failed: " << what;
      if (!why.empty()) err_ << " (" << why << ")";
      err_ << std::endl;
    }
    return ok;
  }

  int failures() const { return failures_; }

 private:
  std::ostream& out_;
  std::ostream& err_;
  int failures_ = 0;
};

std::string Describe(const backup::ClientError& error) {
  if (error.kind == backup::ErrorKind::kInvalidPin) {
    if (error.guesses_remaining == 0) return "no guesses left: the backup is destroyed";
    return "wrong PIN: " + std::to_string(error.guesses_remaining) +
           (error.guesses_remaining == 1 ? " guess" : " guesses") + " remaining";
  }
  if (error.kind == backup::ErrorKind::kNotRegistered) return "not registered";
  return error.ToString();
}

const char* StateName(vault::RecordState state) {
  switch (state) {
    case vault::RecordState::kAbsent:
      return "Absent";
    case vault::RecordState::kRegistered:
      return "Registered";
    case vault::RecordState::kNoGuesses:
      return "NoGuesses (secrets erased)";
  }
  return "?";
}

// DemoRealm is the embedded realm: token, store, core and server, torn down in order.
struct DemoRealm {
  std::shared_ptr<pkcs11::Module> module;
  std::unique_ptr<RealmCore> core;
  std::unique_ptr<HttpServer> server;
  std::shared_ptr<TenantKeyStore> keys;
  std::optional<TenantKey> tenant_key;  // with its private half, for minting
  protocol::RealmId realm_id{};
  std::ostringstream request_log;

  ~DemoRealm() {
    if (server) server->Shutdown(std::chrono::seconds(5));
    server.reset();
    core.reset();
    module.reset();
  }
};

Status StartRealm(const std::filesystem::path& dir, DemoRealm& demo, Narrator& narrator) {
  // 1. A fresh SoftHSM2 token (SOFTHSM2_CONF names the configuration written here).
  RETURN_IF_ERROR(pkcs11::WriteSoftHsmConfig(dir.string()));
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                   pkcs11::Module::Load(pkcs11::kDefaultModulePath));
  demo.module = std::move(module);
  SecretBytes user_pin = pkcs11::RandomPin();
  RETURN_IF_ERROR(
      pkcs11::InitializeToken(*demo.module, kTokenLabel, pkcs11::RandomPin(), user_pin));
  narrator.Say("[1] SoftHSM2 token \"" + std::string(kTokenLabel) + "\" created in " +
               (dir / "tokens").string());

  // 2. The realm keys, generated on the token (never extractable).
  pkcs11::ProvisionOptions provision;
  provision.user_pin = std::move(user_pin);
  ASSIGN_OR_RETURN(pkcs11::ProvisionedRealm realm,
                   pkcs11::ProvisionRealm(demo.module, std::string("pkcs11:token=") + kTokenLabel,
                                          std::move(provision)));
  narrator.Say("[2] realm keys generated on the token (sensitive, not extractable):");
  for (const pkcs11::KeySetAction& action : realm.actions) {
    narrator.Say("      " + action.label + ": " + action.kind);
  }

  // 3. Storage and the core.
  std::filesystem::path data = dir / "data";
  std::filesystem::create_directories(data);
  ASSIGN_OR_RETURN(demo.core, OpenRealmCore(std::move(realm.hsm), data, vault::RealmOptions()));
  RETURN_IF_ERROR(demo.core->realm->Ready().WithContext("the realm is not ready"));
  narrator.Say("[3] realm core started on " + demo.core->store_name +
               " (Merkle root anchored in the HSM)");

  // 4. A tenant key and the HTTP server.
  ASSIGN_OR_RETURN(TenantKey key, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  demo.tenant_key = key;
  demo.keys = std::make_shared<TenantKeyStore>();
  RETURN_IF_ERROR(demo.keys->Add(kTenant, 1, key.PublicOnly()));
  RETURN_IF_ERROR(demo.core->hsm().GenerateRandom(demo.realm_id));
  RouterOptions router_options;
  router_options.realm_id = demo.realm_id;
  ServerOptions server_options;
  server_options.address = "127.0.0.1";
  server_options.port = 0;
  server_options.threads = 2;
  ASSIGN_OR_RETURN(
      demo.server,
      StartHttpFrontend(router_options, server_options,
                        RouterDeps{demo.core->realm, JwtAuthenticatorFor(demo.keys), nullptr,
                                   std::make_shared<Metrics>(),
                                   std::make_shared<RequestLogger>(&demo.request_log,
                                                                   /*enabled=*/false)}));
  narrator.Say("[4] pinvaultd serving realm " + backup::RealmIdHex(demo.realm_id) +
               " on http://127.0.0.1:" + std::to_string(demo.server->port()) + "/ (tenant \"" +
               kTenant + "\", EdDSA key made just now)");
  return OkStatus();
}

// DemoClient is one user's client: the client library over HTTP with minted tokens.
StatusOr<std::unique_ptr<backup::Client>> MakeClient(const DemoRealm& demo,
                                                     const std::string& user) {
  backup::RealmEndpoint realm;
  realm.id = demo.realm_id;
  realm.address = "http://127.0.0.1:" + std::to_string(demo.server->port()) + "/";
  ASSIGN_OR_RETURN(
      backup::Configuration configuration,
      backup::Configuration::Create({realm}, 1, 1, protocol::PinHashingMode::kStandard2019));
  ASSIGN_OR_RETURN(std::unique_ptr<HttpTransport> transport, HttpTransport::Create());
  auto tokens = std::make_shared<MintTokenProvider>(*demo.tenant_key, kTenant, 1, user);
  return backup::Client::Create(std::move(configuration), {},
                                std::shared_ptr<backup::Transport>(std::move(transport)),
                                std::move(tokens));
}

// ExpectWrongPin runs one recovery with a wrong PIN and checks the guesses left.
void ExpectWrongPin(Narrator& n, const backup::Client& client, std::string_view pin, ByteView info,
                    uint16_t expected_remaining) {
  backup::RecoverResult result = client.Recover(SecretFromText(pin), info);
  std::string shown = result.ok() ? "recovered a secret" : Describe(result.error());
  std::string expected = expected_remaining == 0
                             ? "no guesses left: the backup is destroyed"
                             : "wrong PIN: " + std::to_string(expected_remaining) +
                                   (expected_remaining == 1 ? " guess" : " guesses") + " remaining";
  n.Expect(!result.ok() && result.kind() == backup::ErrorKind::kInvalidPin &&
               result.error().guesses_remaining == expected_remaining,
           "PIN \"" + std::string(pin) + "\" -> " + shown, "expected: " + expected);
}

void ShowRecord(Narrator& n, DemoRealm& demo, const std::string& user,
                vault::RecordState expected) {
  StatusOr<vault::RecordSummary> summary = demo.core->realm->Inspect({kTenant, user});
  if (!summary.ok()) {
    n.Expect(false, "read " + user + "'s record on the realm", summary.status().ToString());
    return;
  }
  std::string text = std::string("realm's record for ") + user + ": " + StateName(summary->state);
  if (summary->state == vault::RecordState::kRegistered) {
    text += ", guess_count " + std::to_string(summary->guess_count) + " of " +
            std::to_string(summary->num_guesses);
  }
  n.Expect(summary->state == expected, text, std::string("expected ") + StateName(expected));
}

void RunScenario(DemoRealm& demo, Narrator& n) {
  const std::string alice_secret = "alice's messaging identity key backup";
  const std::string alice_pin = "1234";
  ByteView alice_info = AsBytes("alice@example");
  StatusOr<std::unique_ptr<backup::Client>> alice = MakeClient(demo, "alice");
  if (!alice.ok()) {
    n.Expect(false, "client for alice", alice.status().ToString());
    return;
  }

  n.Say("[5] alice registers a " + std::to_string(alice_secret.size()) +
        "-byte secret under PIN \"" + alice_pin + "\", 3 guesses allowed");
  backup::RegisterResult registered =
      (*alice)->Register(SecretFromText(alice_pin), SecretFromText(alice_secret), alice_info, 3);
  if (!n.Expect(registered.ok(), "registered",
                registered.ok() ? "" : registered.error().ToString())) {
    return;
  }
  ShowRecord(n, demo, "alice", vault::RecordState::kRegistered);

  n.Say("[6] wrong PINs count down");
  ExpectWrongPin(n, **alice, "0000", alice_info, 2);
  ExpectWrongPin(n, **alice, "9999", alice_info, 1);
  ShowRecord(n, demo, "alice", vault::RecordState::kRegistered);

  n.Say("[7] the right PIN recovers the secret and resets the count");
  backup::RecoverResult recovered = (*alice)->Recover(SecretFromText(alice_pin), alice_info);
  bool same = recovered.ok() && recovered.value().Equals(AsBytes(alice_secret));
  n.Expect(same,
           recovered.ok()
               ? "recovered \"" +
                     std::string(reinterpret_cast<const char*>(recovered.value().Reveal().data()),
                                 recovered.value().size()) +
                     "\""
               : "recover: " + Describe(recovered.error()),
           "expected the registered secret back");
  ExpectWrongPin(n, **alice, "1111", alice_info, 2);

  n.Say("[8] bob registers (2 guesses) and runs out of guesses");
  StatusOr<std::unique_ptr<backup::Client>> bob = MakeClient(demo, "bob");
  if (!bob.ok()) {
    n.Expect(false, "client for bob", bob.status().ToString());
    return;
  }
  ByteView bob_info = AsBytes("bob@example");
  registered = (*bob)->Register(SecretFromText("2468"),
                                SecretFromText("bob's messaging identity key backup"), bob_info, 2);
  if (!n.Expect(registered.ok(), "registered",
                registered.ok() ? "" : registered.error().ToString())) {
    return;
  }
  ExpectWrongPin(n, **bob, "1357", bob_info, 1);
  ExpectWrongPin(n, **bob, "8642", bob_info, 0);
  ShowRecord(n, demo, "bob", vault::RecordState::kRegistered);
  backup::RecoverResult late = (*bob)->Recover(SecretFromText("2468"), bob_info);
  n.Expect(!late.ok() && late.kind() == backup::ErrorKind::kInvalidPin &&
               late.error().guesses_remaining == 0,
           "even the right PIN now gets: " +
               (late.ok() ? std::string("the secret") : Describe(late.error())),
           "the backup should be gone for good");
  n.Say("    (the realm erased bob's secrets when that attempt found no guesses left)");
  ShowRecord(n, demo, "bob", vault::RecordState::kNoGuesses);

  n.Say("[9] alice is unaffected, then deletes her backup");
  recovered = (*alice)->Recover(SecretFromText(alice_pin), alice_info);
  n.Expect(recovered.ok() && recovered.value().Equals(AsBytes(alice_secret)),
           "alice still recovers her secret",
           recovered.ok() ? "a different secret" : Describe(recovered.error()));
  backup::DeleteResult deleted = (*alice)->Delete();
  n.Expect(deleted.ok(), "deleted", deleted.ok() ? "" : deleted.error().ToString());
  recovered = (*alice)->Recover(SecretFromText(alice_pin), alice_info);
  n.Expect(
      !recovered.ok() && recovered.kind() == backup::ErrorKind::kNotRegistered,
      "after delete: " + (recovered.ok() ? std::string("the secret") : Describe(recovered.error())),
      "expected not registered");
}

}  // namespace

int RunDemo(const DemoOptions& options, std::ostream& out, std::ostream& err) {
  std::string pattern = (std::filesystem::temp_directory_path() / "pinvault-demo-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    err << "pinvault demo: cannot create a temporary directory: " << std::strerror(errno)
        << std::endl;
    return 1;
  }
  std::filesystem::path dir = pattern;
  Narrator narrator(out, err);
  int code = 0;
  {
    ScopedEnv softhsm_conf("SOFTHSM2_CONF", (dir / "softhsm2.conf").string());
    DemoRealm demo;
    Status started = StartRealm(dir, demo, narrator);
    if (!started.ok()) {
      err << "pinvault demo: cannot start the embedded realm: " << started << std::endl;
      code = 1;
    } else {
      RunScenario(demo, narrator);
      code = narrator.failures() == 0 ? 0 : 1;
    }
  }
  if (options.keep_directory) {
    out << "kept " << dir.string() << std::endl;
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  if (code == 0) {
    out << "demo passed: every step behaved as expected" << std::endl;
  } else if (narrator.failures() > 0) {
    err << "pinvault demo: " << narrator.failures() << " step(s) did not behave as expected"
        << std::endl;
  }
  return code;
}

}  // namespace pinvault::api
