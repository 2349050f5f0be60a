// session_pool.h: logged-in sessions on one token, leased per operation, with recovery.
//
//   ASSIGN_OR_RETURN(auto pool, SessionPool::Open(module, uri));
//   Status s = pool->Run([&](CK_SESSION_HANDLE session) {
//     CK_RV rv = f->C_SignInit(session, &mechanism, key);
//     if (rv != CKR_OK) return CallResult{rv, "C_SignInit"};
//     return CallResult{f->C_Sign(session, ...), "C_Sign"};
//   });
//
// Sessions are read-write and logged in as the user (the PIN comes from the URI's pin-source or
// is given explicitly; it is kept in secure memory for the pool's lifetime so the pool can log in
// again). Idle sessions are reused LIFO, so a steady single-threaded caller keeps using one.
//
// Recovery: when a call fails with CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT or CKR_USER_NOT_LOGGED_IN, Run forgets the broken
// sessions, finds the token again by its URI (its slot id may have changed), opens a new session,
// logs in, and runs the closure again, up to Options::max_attempts times in all. While the token
// is absent Run returns UNAVAILABLE; once it is back the next call succeeds, with no restart.
// A session the module may already have closed is forgotten, never closed again: its handle
// number may have been reused by a newer session.
//
// The closure may run more than once (once per attempt), so it must be safe to repeat: it must
// not depend on state a failed attempt changed, and must choose fresh IVs each time.
//
// Thread-safety: all methods are safe to call concurrently. The pool keeps its Module alive
// through a shared_ptr.
#ifndef PINVAULT_PKCS11_SESSION_POOL_H_
#define PINVAULT_PKCS11_SESSION_POOL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/module.h"
#include "pkcs11/rv.h"
#include "pkcs11/uri.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// CallResult is what a closure given to SessionPool::Run reports: the first failing CK_RV and
// the name of the PKCS#11 function that returned it (CKR_OK when everything succeeded).
struct CallResult {
  CK_RV rv = CKR_OK;
  const char* function = "";
  RvContext context = RvContext::kDefault;

  bool ok() const { return rv == CKR_OK; }
};

// IsSessionRecoverable is true for the codes after which the pool reconnects and retries.
bool IsSessionRecoverable(CK_RV rv);

class SessionPool {
 public:
  struct Options {
    // Idle sessions kept open for reuse; more may be open while leased.
    size_t max_idle_sessions = 8;
    // Attempts per Run (the first try plus reconnects). At least 1.
    int max_attempts = 3;
    // Pause before each reconnect attempt after the first.
    std::chrono::milliseconds retry_backoff{1};
  };

  // Open finds the token `uri` names in `module`, opens a session and logs in with the PIN the
  // URI names (pin-source file or pin-value). Errors: NOT_FOUND (no such token, or no PIN file),
  // FAILED_PRECONDITION (several tokens match, or the token needs a PIN and none was given),
  // PERMISSION_DENIED (wrong PIN, PIN locked), UNAVAILABLE (token not reachable).
  static StatusOr<std::unique_ptr<SessionPool>> Open(std::shared_ptr<Module> module, TokenUri uri,
                                                     Options options);
  static StatusOr<std::unique_ptr<SessionPool>> Open(std::shared_ptr<Module> module, TokenUri uri);

  // OpenWithPin is Open with an explicit user PIN (the URI's PIN, if any, is ignored). An empty
  // optional means "do not log in" (only allowed if the token does not require login).
  static StatusOr<std::unique_ptr<SessionPool>> OpenWithPin(std::shared_ptr<Module> module,
                                                            TokenUri uri,
                                                            std::optional<SecretBytes> pin,
                                                            Options options);

  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  // ~SessionPool closes the idle sessions it knows to be valid. Leases must be gone by then.
  ~SessionPool();

  // Lease is one session borrowed from the pool; move-only. Its destructor returns the session
  // to the pool (or closes it when the pool is full). Discard() drops it instead.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    CK_SESSION_HANDLE handle() const { return handle_; }

    // Discard forgets the session without closing it (used when the module says it is gone).
    void Discard() { pool_ = nullptr; }

   private:
    friend class SessionPool;
    Lease(SessionPool* pool, CK_SESSION_HANDLE handle, uint64_t generation)
        : pool_(pool), handle_(handle), generation_(generation) {}
    void Return() noexcept;

    SessionPool* pool_ = nullptr;
    CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
    uint64_t generation_ = 0;
  };

  // Acquire leases a logged-in session, reconnecting if needed. UNAVAILABLE while the token is
  // gone; PERMISSION_DENIED if logging in again fails on the PIN.
  StatusOr<Lease> Acquire();

  // Recover reports that `rv` (a recoverable code) was seen on `lease`'s session and repairs
  // the pool: logs in again for CKR_USER_NOT_LOGGED_IN, otherwise forgets the sessions of that
  // generation so the next Acquire reconnects. `lease` is discarded unless it is still usable.
  // Returns an error only if it is final (e.g. the PIN no longer works).
  Status Recover(Lease& lease, CK_RV rv);

  // SessionLostAfter tells whether a call that failed with `rv` on `lease`'s session failed
  // because the session went away under it: for the device-level codes a module reports
  // when a token disappears mid-call (CKR_GENERAL_ERROR, CKR_DEVICE_ERROR,
  // CKR_DEVICE_MEMORY), the session is probed with C_GetSessionInfo; returns the recoverable
  // code that probe saw, or CKR_OK if the session is fine (then the failure is the call's own).
  CK_RV SessionLostAfter(const Lease& lease, CK_RV rv);

  // Run leases a session, runs `fn(session)` (which returns a CallResult) and maps the outcome
  // with RvToStatus, recovering and retrying as described above (a device-level failure
  // counts as a session loss if SessionLostAfter says so). After the last attempt a
  // recoverable failure is reported as UNAVAILABLE. `fn` may itself call Run (nested leases are
  // independent sessions).
  template <typename Fn>
  Status Run(Fn&& fn);

  // functions is the module's function list.
  CK_FUNCTION_LIST* functions() const { return functions_; }
  const std::shared_ptr<Module>& module() const { return module_; }
  const TokenUri& uri() const { return uri_; }

  // token returns the token's description as last found (slot id may change on reconnect).
  TokenDescription token() const;

  // recoveries counts reconnects and re-logins so far (for tests and metrics).
  uint64_t recoveries() const { return recoveries_.load(std::memory_order_relaxed); }

 private:
  SessionPool(std::shared_ptr<Module> module, TokenUri uri, std::optional<SecretBytes> pin,
              Options options);

  StatusOr<Lease> OpenSession();
  Status Login(CK_SESSION_HANDLE session);
  void Release(CK_SESSION_HANDLE handle, uint64_t generation) noexcept;
  Status GiveUp(const CallResult& last, int attempts) const;

  const std::shared_ptr<Module> module_;
  CK_FUNCTION_LIST* const functions_;
  const TokenUri uri_;
  const std::optional<SecretBytes> pin_;
  const Options options_;

  // mu_ guards the idle list and the connection state; connect_mu_ serialises reconnects
  // (slow calls happen under connect_mu_ only).
  mutable std::mutex mu_;
  std::vector<CK_SESSION_HANDLE> idle_;
  uint64_t generation_ = 1;
  bool logged_in_ = false;
  bool token_known_ = false;
  TokenDescription token_;
  std::mutex connect_mu_;
  std::atomic<uint64_t> recoveries_{0};
};

template <typename Fn>
Status SessionPool::Run(Fn&& fn) {
  CallResult last;
  Status last_status;
  int attempts = options_.max_attempts < 1 ? 1 : options_.max_attempts;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 1 && options_.retry_backoff.count() > 0) {
      std::this_thread::sleep_for(options_.retry_backoff);
    }
    StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) {
      if (lease.status().code() != StatusCode::kUnavailable) return lease.status();
      last_status = lease.status();
      continue;
    }
    CallResult result = fn(lease->handle());
    if (result.ok()) return OkStatus();
    if (!IsSessionRecoverable(result.rv)) {
      CK_RV lost = SessionLostAfter(*lease, result.rv);
      if (lost == CKR_OK) return RvToStatus(result.rv, result.function, result.context);
      result.rv = lost;
    }
    last = result;
    last_status = Status();
    RETURN_IF_ERROR(Recover(*lease, result.rv));
  }
  if (!last_status.ok()) {
    return UnavailableError(last_status.message() + " (gave up after " + std::to_string(attempts) +
                            " attempts)");
  }
  return GiveUp(last, attempts);
}

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_SESSION_POOL_H_
