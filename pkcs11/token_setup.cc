#include "pkcs11/token_setup.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "pkcs11/mechanisms.h"
#include "pkcs11/rv.h"
#include "pkcs11/session_pool.h"

namespace pinvault::pkcs11 {
namespace {

// kLabelSize is the size of CK_TOKEN_INFO.label (blank-padded, not terminated).
constexpr size_t kLabelSize = 32;

Status Check(CK_RV rv, std::string_view function) {
  return rv == CKR_OK ? OkStatus() : RvToStatus(rv, function);
}

StatusOr<TokenDescription> FindTokenByLabel(const Module& module, std::string_view label) {
  TokenUri uri;
  uri.token = std::string(label);
  return module.FindToken(uri);
}

}  // namespace

// ---- Session ----

StatusOr<Session> Session::Open(const Module& module, CK_SLOT_ID slot) {
  CK_FUNCTION_LIST* f = module.functions();
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  RETURN_IF_ERROR(
      Check(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &handle),
            "C_OpenSession"));
  return Session(f, handle);
}

Session::Session(Session&& other) noexcept
    : functions_(std::exchange(other.functions_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      so_logged_in_(std::exchange(other.so_logged_in_, false)) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    Close();
    functions_ = std::exchange(other.functions_, nullptr);
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    so_logged_in_ = std::exchange(other.so_logged_in_, false);
  }
  return *this;
}

Session::~Session() { Close(); }

void Session::Close() noexcept {
  if (handle_ == CK_INVALID_HANDLE) return;
  if (so_logged_in_) functions_->C_Logout(handle_);
  functions_->C_CloseSession(handle_);
  handle_ = CK_INVALID_HANDLE;
  so_logged_in_ = false;
}

Status Session::Login(CK_USER_TYPE user_type, const SecretBytes& pin) {
  if (handle_ == CK_INVALID_HANDLE) return FailedPreconditionError("C_Login: no open session");
  SecretBytes copy = pin.Clone();  // the module's argument is not const; wiped on return
  CK_RV rv = functions_->C_Login(handle_, user_type, copy.RevealMutable().data(), copy.size());
  if (rv != CKR_OK) return RvToStatus(rv, user_type == CKU_SO ? "C_Login(SO)" : "C_Login");
  if (user_type == CKU_SO) so_logged_in_ = true;
  return OkStatus();
}

Status Session::Logout() {
  if (handle_ == CK_INVALID_HANDLE) return FailedPreconditionError("C_Logout: no open session");
  CK_RV rv = functions_->C_Logout(handle_);
  so_logged_in_ = false;
  return Check(rv, "C_Logout");
}

Status Session::InitPin(const SecretBytes& user_pin) {
  if (handle_ == CK_INVALID_HANDLE) return FailedPreconditionError("C_InitPIN: no open session");
  SecretBytes copy = user_pin.Clone();
  return Check(functions_->C_InitPIN(handle_, copy.RevealMutable().data(), copy.size()),
               "C_InitPIN");
}

// ---- Tokens ----

StatusOr<TokenDescription> InitializeToken(Module& module, std::string_view label,
                                           const SecretBytes& so_pin, const SecretBytes& user_pin) {
  if (label.empty() || label.size() > kLabelSize) {
    return InvalidArgumentError("a token label has 1 to 32 bytes; '" + std::string(label) +
                                "' has " + std::to_string(label.size()));
  }
  if (so_pin.empty() || user_pin.empty()) {
    return InvalidArgumentError("initialising token '" + std::string(label) +
                                "': the SO PIN and the user PIN must not be empty");
  }
  ASSIGN_OR_RETURN(std::vector<TokenDescription> tokens, module.ListTokens());
  const TokenDescription* free_slot = nullptr;
  for (const TokenDescription& token : tokens) {
    bool initialized = (token.flags & CKF_TOKEN_INITIALIZED) != 0;
    if (initialized && token.label == label) {
      return AlreadyExistsError("a token labelled '" + std::string(label) +
                                "' already exists in module '" + module.path() + "'");
    }
    if (!initialized && free_slot == nullptr) free_slot = &token;
  }
  if (free_slot == nullptr) {
    return NotFoundError("module '" + module.path() + "' has no slot with an uninitialised token");
  }
  CK_UTF8CHAR padded[kLabelSize];
  std::memset(padded, ' ', sizeof(padded));
  std::memcpy(padded, label.data(), label.size());
  SecretBytes so = so_pin.Clone();  // the module's argument is not const; wiped on return
  RETURN_IF_ERROR(Check(module.functions()->C_InitToken(free_slot->slot, so.RevealMutable().data(),
                                                        so.size(), padded),
                        "C_InitToken")
                      .WithContext("initialising token '" + std::string(label) + "'"));
  RETURN_IF_ERROR(InitUserPin(module, label, so_pin, user_pin));
  return FindTokenByLabel(module, label);
}

Status InitUserPin(Module& module, std::string_view label, const SecretBytes& so_pin,
                   const SecretBytes& user_pin) {
  std::string context = "setting the user PIN of token '" + std::string(label) + "'";
  ASSIGN_OR_RETURN(TokenDescription token, FindTokenByLabel(module, label));
  StatusOr<Session> session = Session::Open(module, token.slot);
  if (!session.ok()) return session.status().WithContext(context);
  RETURN_IF_ERROR(session->Login(CKU_SO, so_pin).WithContext(context));
  RETURN_IF_ERROR(session->InitPin(user_pin).WithContext(context));
  return session->Logout().WithContext(context);
}

// ---- The realm key set ----

StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<Module> module, TokenUri uri,
                                          ProvisionOptions options) {
  if (module == nullptr) return InvalidArgumentError("ProvisionRealm needs a module");
  StatusOr<std::unique_ptr<SessionPool>> opened =
      options.user_pin.has_value()
          ? SessionPool::OpenWithPin(module, std::move(uri), std::move(options.user_pin),
                                     options.hsm.pool)
          : SessionPool::Open(module, std::move(uri), options.hsm.pool);
  if (!opened.ok()) return opened.status();
  return ProvisionRealm(std::shared_ptr<SessionPool>(std::move(opened).value()), options.keys);
}

StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<SessionPool> pool,
                                          const KeySetOptions& keys) {
  if (pool == nullptr) return InvalidArgumentError("ProvisionRealm needs a session pool");
  TokenDescription token = pool->token();
  ASSIGN_OR_RETURN(Capabilities caps, DetectCapabilities(*pool->module(), token.slot, token.flags));
  ProvisionedRealm realm;
  ASSIGN_OR_RETURN(realm.actions, EnsureRealmKeys(*pool, caps, keys));
  ASSIGN_OR_RETURN(realm.hsm, TokenHsm::Create(std::move(pool)));
  return realm;
}

StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<Module> module, std::string_view uri,
                                          ProvisionOptions options) {
  ASSIGN_OR_RETURN(TokenUri parsed, ParseTokenUri(uri));
  return ProvisionRealm(std::move(module), std::move(parsed), std::move(options));
}

// ---- SoftHSM2 stores and PINs ----

StatusOr<std::string> WriteSoftHsmConfig(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path tokens = fs::path(dir) / "tokens";
  std::error_code ec;
  fs::create_directories(tokens, ec);
  if (ec) return InternalError("cannot create " + tokens.string() + ": " + ec.message());
  for (const fs::path& p : {fs::path(dir), tokens}) {
    fs::permissions(p, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) return InternalError("cannot restrict " + p.string() + ": " + ec.message());
  }
  const fs::path conf = fs::path(dir) / "softhsm2.conf";
  {
    std::ofstream out(conf, std::ios::trunc);
    out << "directories.tokendir = " << tokens.string()
        << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    out.close();
    if (!out) return InternalError("cannot write " + conf.string());
  }
  return conf.string();
}

SecretBytes RandomPin(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  SecretBytes random = SecretBytes::Random(std::max<size_t>(bytes, 2));
  SecretBytes pin(2 * random.size());
  std::span<uint8_t> out = pin.RevealMutable();
  std::span<const uint8_t> in = random.Reveal();
  for (size_t i = 0; i < in.size(); ++i) {
    out[2 * i] = static_cast<uint8_t>(kHex[in[i] >> 4]);
    out[2 * i + 1] = static_cast<uint8_t>(kHex[in[i] & 0x0f]);
  }
  return pin;
}

}  // namespace pinvault::pkcs11
