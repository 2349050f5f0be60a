#include "api/cmd/demo.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http/authenticator.h"
#include "api/http/http_transport.h"
#include "api/http/jwt_mint.h"
#include "api/http/metrics.h"
#include "api/http/realm_assembly.h"
#include "api/http/request_log.h"
#include "api/http/routes.h"
#include "api/http/server.h"
#include "backup/client/client.h"
#include "backup/client/configuration.h"
#include "backup/store/sqlite_record_store.h"
#include "pkcs11/cryptoki.h"
#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/module.h"
#include "pkcs11/rv.h"
#include "pkcs11/session_pool.h"
#include "pkcs11/uri.h"
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
constexpr char kModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";

// RandomHex returns `bytes` random bytes as hex (for the throwaway token's PINs).
std::string RandomHex(size_t bytes) {
  SecretBytes random = SecretBytes::Random(bytes);
  return HexEncode(random.Reveal());
}

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

Status Check(CK_RV rv, std::string_view function) {
  return rv == CKR_OK ? OkStatus() : pkcs11::RvToStatus(rv, function);
}

// FindSlot returns the slot whose token has `label`, or (with an empty label) a slot with
// an uninitialised token.
StatusOr<CK_SLOT_ID> FindSlot(CK_FUNCTION_LIST* f, std::string_view label) {
  CK_ULONG count = 0;
  RETURN_IF_ERROR(Check(f->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList"));
  std::vector<CK_SLOT_ID> slots(count);
  RETURN_IF_ERROR(Check(f->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList"));
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    bool initialized = (info.flags & CKF_TOKEN_INITIALIZED) != 0;
    if (label.empty()
            ? !initialized
            : initialized && pkcs11::PaddedToString(info.label, sizeof(info.label)) == label) {
      return slot;
    }
  }
  return NotFoundError(label.empty() ? "SoftHSM2 offers no free slot"
                                     : "token " + std::string(label) + " not found");
}

// InitToken initialises a token labelled kTokenLabel in the SoftHSM2 store SOFTHSM2_CONF
// names, with the given SO and user PINs.
Status InitToken(const std::string& so_pin, const SecretBytes& user_pin) {
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module, pkcs11::Module::Load(kModulePath));
  CK_FUNCTION_LIST* f = module->functions();
  ASSIGN_OR_RETURN(CK_SLOT_ID free_slot, FindSlot(f, ""));
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', sizeof(label));
  std::memcpy(label, kTokenLabel, std::strlen(kTokenLabel));
  std::string so(so_pin);
  RETURN_IF_ERROR(
      Check(f->C_InitToken(free_slot, reinterpret_cast<CK_UTF8CHAR*>(so.data()), so.size(), label),
            "C_InitToken"));
  ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindSlot(f, kTokenLabel));  // SoftHSM renumbers it
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  RETURN_IF_ERROR(
      Check(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session),
            "C_OpenSession"));
  Status status =
      Check(f->C_Login(session, CKU_SO, reinterpret_cast<CK_UTF8CHAR*>(so.data()), so.size()),
            "C_Login(SO)");
  if (status.ok()) {
    SecretBytes pin = user_pin.Clone();
    status = Check(f->C_InitPIN(session, pin.RevealMutable().data(), pin.size()), "C_InitPIN");
    f->C_Logout(session);
  }
  f->C_CloseSession(session);
  SecureWipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(so.data()), so.size()));
  return status;
}

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
  // 1. A fresh SoftHSM2 token.
  std::filesystem::path tokens = dir / "tokens";
  std::filesystem::create_directories(tokens);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  std::ofstream(dir / "softhsm2.conf") << "directories.tokendir = " << tokens.string()
                                       << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  SecretBytes user_pin = SecretFromText(RandomHex(16));
  RETURN_IF_ERROR(InitToken(RandomHex(16), user_pin));
  narrator.Say("[1] SoftHSM2 token \"" + std::string(kTokenLabel) + "\" created in " +
               tokens.string());

  // 2. The realm keys, generated on the token (never extractable).
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module, pkcs11::Module::Load(kModulePath));
  demo.module = std::move(module);
  ASSIGN_OR_RETURN(pkcs11::TokenUri uri,
                   pkcs11::ParseTokenUri(std::string("pkcs11:token=") + kTokenLabel));
  ASSIGN_OR_RETURN(pkcs11::TokenDescription token, demo.module->FindToken(uri));
  ASSIGN_OR_RETURN(pkcs11::Capabilities caps,
                   pkcs11::DetectCapabilities(*demo.module, token.slot, token.flags));
  ASSIGN_OR_RETURN(
      std::unique_ptr<pkcs11::SessionPool> pool,
      pkcs11::SessionPool::OpenWithPin(demo.module, std::move(uri), std::move(user_pin),
                                       pkcs11::SessionPool::Options()));
  std::shared_ptr<pkcs11::SessionPool> shared_pool = std::move(pool);
  ASSIGN_OR_RETURN(std::vector<pkcs11::KeySetAction> actions,
                   pkcs11::EnsureRealmKeys(*shared_pool, caps, pkcs11::KeySetOptions()));
  narrator.Say("[2] realm keys generated on the token (sensitive, not extractable):");
  for (const pkcs11::KeySetAction& action : actions) {
    narrator.Say("      " + action.label + ": " + action.kind);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::TokenHsm> hsm, pkcs11::TokenHsm::Create(shared_pool));

  // 3. Storage and the core.
  std::filesystem::path data = dir / "data";
  std::filesystem::create_directories(data);
  ASSIGN_OR_RETURN(demo.core, OpenRealmCore(std::move(hsm), data, vault::RealmOptions()));
  RETURN_IF_ERROR(demo.core->realm->Ready().WithContext("the realm is not ready"));
  narrator.Say("[3] realm core started on SQLite " + demo.core->store->path() +
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
  backup::Realm realm;
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
