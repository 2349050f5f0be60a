// token_setup.h: setting a token up for a realm, with RAII owners for what it opens.
//
//   ASSIGN_OR_RETURN(std::string conf, WriteSoftHsmConfig(dir));      // SoftHSM2 only
//   ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);                        // before Module::Load
//   ASSIGN_OR_RETURN(std::unique_ptr<Module> loaded, Module::Load(kDefaultModulePath));
//   std::shared_ptr<Module> module = std::move(loaded);
//   SecretBytes user_pin = RandomPin();
//   RETURN_IF_ERROR(InitializeToken(*module, "realm-1", RandomPin(), user_pin));
//   ProvisionOptions options;
//   options.user_pin = std::move(user_pin);
//   ASSIGN_OR_RETURN(ProvisionedRealm realm,
//                    ProvisionRealm(module, "pkcs11:token=realm-1", std::move(options)));
//
// InitializeToken does what `softhsm2-util --init-token --free` does, inside the process:
// C_InitToken on a free slot, then an SO session that sets the user PIN. ProvisionRealm does
// what `pinvault-admin hsm init` does and opens the realm's TokenHsm on the result.
//
// PINs travel as SecretBytes only. The module gets a clone in secure memory that is wiped when
// the call returns; error messages name the PKCS#11 function and return code, never a PIN.
#ifndef PINVAULT_PKCS11_TOKEN_SETUP_H_
#define PINVAULT_PKCS11_TOKEN_SETUP_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/module.h"
#include "pkcs11/session_pool.h"
#include "pkcs11/uri.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// Session owns one read-write session opened outside a SessionPool, for set-up work (an SO
// login, C_InitPIN). Move-only; the destructor (noexcept) logs out an SO login made through
// Login and closes the session. A user login is left to the close: C_Logout would log out
// every session the process has on the token, a SessionPool's included. The Module must
// outlive the Session. Not thread-safe: one thread uses a Session at a time.
class Session {
 public:
  // Open opens a read-write serial session on `slot`. Errors as RvToStatus("C_OpenSession"),
  // e.g. UNAVAILABLE if the token is gone, NOT_FOUND for an unknown slot.
  static StatusOr<Session> Open(const Module& module, CK_SLOT_ID slot);

  // Session() owns nothing.
  Session() = default;
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // ~Session calls Close().
  ~Session();

  // Login logs in as `user_type` (CKU_SO or CKU_USER) with `pin`. PERMISSION_DENIED for a
  // wrong or locked PIN ("C_Login(SO): CKR_PIN_INCORRECT (0xa0)"), FAILED_PRECONDITION if
  // nothing is open; otherwise as RvToStatus. The message never contains the PIN.
  Status Login(CK_USER_TYPE user_type, const SecretBytes& pin);

  // Logout logs out whoever is logged in (C_Logout), which ends the login of every session
  // the process has on the token. Errors as RvToStatus.
  Status Logout();

  // InitPin sets the token's user PIN (C_InitPIN); the session must be logged in as the SO.
  // UNAUTHENTICATED if it is not, PERMISSION_DENIED if the token refuses the PIN (e.g.
  // CKR_PIN_LEN_RANGE). The message never contains the PIN.
  Status InitPin(const SecretBytes& user_pin);

  // Close logs out an SO login made through Login, then closes the session; errors are
  // ignored. Idempotent.
  void Close() noexcept;

  // handle is the session handle (CK_INVALID_HANDLE when nothing is owned).
  CK_SESSION_HANDLE handle() const { return handle_; }

  // so_logged_in tells whether Login(CKU_SO, ...) succeeded and no Logout followed.
  bool so_logged_in() const { return so_logged_in_; }

 private:
  Session(CK_FUNCTION_LIST* functions, CK_SESSION_HANDLE handle)
      : functions_(functions), handle_(handle) {}

  CK_FUNCTION_LIST* functions_ = nullptr;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  bool so_logged_in_ = false;
};

// InitializeToken initialises the token of a free slot of `module` (one whose token has
// CKF_TOKEN_INITIALIZED clear; SoftHSM2 always keeps one) with `label` and `so_pin`, finds it
// again by label (SoftHSM2 gives it a new slot id), sets its user PIN to `user_pin` through an
// SO session, and returns its description. Errors: INVALID_ARGUMENT for a label that is empty
// or longer than 32 bytes, or an empty PIN; ALREADY_EXISTS if an initialised token already has
// `label`; NOT_FOUND if no slot is free; the module's refusal otherwise (PERMISSION_DENIED for
// a PIN it does not accept, e.g. one shorter than SoftHSM2's 4 bytes). If setting the user PIN
// fails, the token stays initialised without one (InitUserPin can retry). The caller keeps the
// PINs. Not thread-safe with other set-up on the same module.
StatusOr<TokenDescription> InitializeToken(Module& module, std::string_view label,
                                           const SecretBytes& so_pin, const SecretBytes& user_pin);

// InitUserPin sets (or resets) the user PIN of the initialised token labelled `label`: an SO
// login with `so_pin`, C_InitPIN, logout. Errors: NOT_FOUND if no token has `label`,
// PERMISSION_DENIED for a wrong or locked SO PIN or while a user login is active on the token
// (CKR_USER_ANOTHER_ALREADY_LOGGED_IN); otherwise as RvToStatus. The message never contains a
// PIN. Not thread-safe with other logins on the same token.
Status InitUserPin(Module& module, std::string_view label, const SecretBytes& so_pin,
                   const SecretBytes& user_pin);

// ProvisionOptions tune ProvisionRealm.
struct ProvisionOptions {
  // The TokenHsm's options; `hsm.pool` also serves the key creation. `module_init_parameters`
  // is not used (the module is given already initialised).
  TokenHsm::Options hsm;
  // Which audit key algorithm to generate, if the audit key is absent.
  KeySetOptions keys;
  // If set, the user PIN to log in with; otherwise the PIN the URI names (pin-source or
  // pin-value).
  std::optional<SecretBytes> user_pin;
};

// ProvisionedRealm is what ProvisionRealm returns: the open TokenHsm (which keeps the module
// alive through its session pool) and what was done for each realm key.
struct ProvisionedRealm {
  std::unique_ptr<TokenHsm> hsm;
  std::vector<KeySetAction> actions;  // created == false for keys that were already there
};

// ProvisionRealm creates the realm key set on the token `uri` names, as `pinvault-admin hsm
// init` does (every absent key is generated; present ones are left alone, so a second call
// creates nothing and never duplicates a key), then opens a TokenHsm on the same logged-in
// session pool. Errors as SessionPool::Open (NOT_FOUND: no such token or PIN file;
// PERMISSION_DENIED: wrong user PIN; UNAVAILABLE: token unreachable), DetectCapabilities and
// EnsureRealmKeys (FAILED_PRECONDITION: a needed mechanism is missing or a label is
// duplicated); INVALID_ARGUMENT for a null module or (string form) an unparsable URI. Two
// ProvisionRealm calls must not race on one token.
StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<Module> module, TokenUri uri,
                                          ProvisionOptions options = {});
StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<Module> module, std::string_view uri,
                                          ProvisionOptions options = {});

// ProvisionRealm (pool form) does the same on a pool the caller has already logged in, for a
// caller that reports the login's errors itself (`pinvault-admin hsm init`); the TokenHsm
// shares `pool`. Errors as DetectCapabilities, EnsureRealmKeys and TokenHsm::Create;
// INVALID_ARGUMENT for a null pool.
StatusOr<ProvisionedRealm> ProvisionRealm(std::shared_ptr<SessionPool> pool,
                                          const KeySetOptions& keys = {});

// WriteSoftHsmConfig prepares a SoftHSM2 store in `dir`: creates `dir` and `dir`/tokens
// (owner-only), writes `dir`/softhsm2.conf naming that token directory (file object store, log
// level ERROR; replaced if present; tokens already there are kept) and returns the conf's
// path. It does not set SOFTHSM2_CONF: SoftHSM2 reads it in C_Initialize, so the caller sets
// it before Module::Load. INTERNAL if a directory or the file cannot be written. Thread-safe
// for distinct directories.
StatusOr<std::string> WriteSoftHsmConfig(const std::string& dir);

// RandomPin returns a fresh PIN of 2 * `bytes` lowercase hex digits from libsodium's CSPRNG,
// for throwaway tokens. `bytes` is at least 2 (a 4-digit PIN, SoftHSM2's minimum). Never
// fails; thread-safe.
SecretBytes RandomPin(size_t bytes = 16);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_TOKEN_SETUP_H_
