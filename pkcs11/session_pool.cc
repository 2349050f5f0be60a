#include "pkcs11/session_pool.h"

#include <utility>

namespace pinvault::pkcs11 {

bool IsSessionRecoverable(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_USER_NOT_LOGGED_IN:
      return true;
    default:
      return false;
  }
}

namespace {

bool TokenGone(CK_RV rv) {
  return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SLOT_ID_INVALID ||
         rv == CKR_TOKEN_NOT_RECOGNIZED;
}

}  // namespace

SessionPool::SessionPool(std::shared_ptr<Module> module, TokenUri uri,
                         std::optional<SecretBytes> pin, Options options)
    : module_(std::move(module)),
      functions_(module_->functions()),
      uri_(std::move(uri)),
      pin_(std::move(pin)),
      options_(options) {}

StatusOr<std::unique_ptr<SessionPool>> SessionPool::Open(std::shared_ptr<Module> module,
                                                         TokenUri uri) {
  return Open(std::move(module), std::move(uri), Options());
}

StatusOr<std::unique_ptr<SessionPool>> SessionPool::Open(std::shared_ptr<Module> module,
                                                         TokenUri uri, Options options) {
  std::optional<SecretBytes> pin;
  if (uri.pin_source.has_value() || uri.pin_value.has_value()) {
    ASSIGN_OR_RETURN(SecretBytes loaded, LoadPin(uri));
    pin = std::move(loaded);
  }
  return OpenWithPin(std::move(module), std::move(uri), std::move(pin), options);
}

StatusOr<std::unique_ptr<SessionPool>> SessionPool::OpenWithPin(std::shared_ptr<Module> module,
                                                                TokenUri uri,
                                                                std::optional<SecretBytes> pin,
                                                                Options options) {
  if (module == nullptr) return InvalidArgumentError("SessionPool needs a module");
  ASSIGN_OR_RETURN(TokenDescription token, module->FindToken(uri));
  if (!pin.has_value() && (token.flags & CKF_LOGIN_REQUIRED) != 0) {
    return FailedPreconditionError("token '" + token.label +
                                   "' requires a PIN; add ?pin-source=file:PATH to the URI");
  }
  std::unique_ptr<SessionPool> pool(
      new SessionPool(std::move(module), std::move(uri), std::move(pin), options));
  pool->token_ = std::move(token);
  pool->token_known_ = true;
  pool->logged_in_ = !pool->pin_.has_value();
  // Open the first session now so that a wrong PIN is reported here, not on first use.
  {
    StatusOr<Lease> first = pool->Acquire();
    if (!first.ok()) return first.status();
  }
  return pool;
}

SessionPool::~SessionPool() {
  std::vector<CK_SESSION_HANDLE> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle.swap(idle_);
  }
  for (CK_SESSION_HANDLE session : idle) functions_->C_CloseSession(session);
}

TokenDescription SessionPool::token() const {
  std::lock_guard<std::mutex> lock(mu_);
  return token_;
}

StatusOr<SessionPool::Lease> SessionPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty() && logged_in_) {
      CK_SESSION_HANDLE session = idle_.back();
      idle_.pop_back();
      return Lease(this, session, generation_);
    }
  }
  return OpenSession();
}

Status SessionPool::Login(CK_SESSION_HANDLE session) {
  if (!pin_.has_value()) return OkStatus();
  std::span<const uint8_t> pin = pin_->Reveal();
  CK_RV rv = functions_->C_Login(session, CKU_USER, const_cast<CK_UTF8CHAR*>(pin.data()),
                                 static_cast<CK_ULONG>(pin.size()));
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) return OkStatus();
  Status status = RvToStatus(rv, "C_Login");
  if (rv == CKR_PIN_INCORRECT) {
    return PermissionDeniedError(status.message() + ": wrong PIN for token " + uri_.ToString());
  }
  return status;
}

StatusOr<SessionPool::Lease> SessionPool::OpenSession() {
  std::lock_guard<std::mutex> connect(connect_mu_);
  bool token_known;
  bool logged_in;
  CK_SLOT_ID slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Another thread may have reconnected while we waited.
    if (!idle_.empty() && logged_in_) {
      CK_SESSION_HANDLE session = idle_.back();
      idle_.pop_back();
      return Lease(this, session, generation_);
    }
    token_known = token_known_;
    logged_in = logged_in_;
    slot = token_.slot;
  }
  if (!token_known) {
    StatusOr<TokenDescription> found = module_->FindToken(uri_);
    if (!found.ok()) {
      if (found.status().code() == StatusCode::kNotFound ||
          found.status().code() == StatusCode::kUnavailable) {
        return UnavailableError("token " + uri_.ToString() +
                                " is not present: " + found.status().message());
      }
      return found.status();
    }
    std::lock_guard<std::mutex> lock(mu_);
    token_ = *std::move(found);
    token_known_ = true;
    slot = token_.slot;
  }
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  CK_RV rv = functions_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                       &session);
  if (rv != CKR_OK) {
    if (TokenGone(rv)) {
      std::lock_guard<std::mutex> lock(mu_);
      token_known_ = false;
      logged_in_ = !pin_.has_value();
      recoveries_.fetch_add(1, std::memory_order_relaxed);
      return UnavailableError(DescribeRv(rv, "C_OpenSession") + ": token " + uri_.ToString() +
                              " is not reachable");
    }
    return RvToStatus(rv, "C_OpenSession");
  }
  if (!logged_in) {
    Status login = Login(session);
    if (!login.ok()) {
      // The session is ours and was opened just now, so closing it is safe.
      functions_->C_CloseSession(session);
      if (login.code() == StatusCode::kUnavailable) {
        std::lock_guard<std::mutex> lock(mu_);
        token_known_ = false;
      }
      return login;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  logged_in_ = true;
  return Lease(this, session, generation_);
}

Status SessionPool::Recover(Lease& lease, CK_RV rv) {
  recoveries_.fetch_add(1, std::memory_order_relaxed);
  if (rv == CKR_USER_NOT_LOGGED_IN) {
    // The sessions are fine; the login state was lost (e.g. C_Logout elsewhere).
    std::lock_guard<std::mutex> connect(connect_mu_);
    Status login = Login(lease.handle());
    if (login.ok()) return OkStatus();
    if (login.code() == StatusCode::kPermissionDenied) return login;
    // Fall through: treat the session as gone.
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lease.generation_ == generation_) {
      // Every session of this generation may be gone (C_CloseAllSessions, device removal):
      // forget them all. Handles are not closed, as their numbers may have been reused.
      ++generation_;
      idle_.clear();
      logged_in_ = !pin_.has_value();
      if (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT) token_known_ = false;
    }
  }
  lease.Discard();
  return OkStatus();
}

CK_RV SessionPool::SessionLostAfter(const Lease& lease, CK_RV rv) {
  if (rv != CKR_GENERAL_ERROR && rv != CKR_DEVICE_ERROR && rv != CKR_DEVICE_MEMORY) return CKR_OK;
  CK_SESSION_INFO info{};
  CK_RV probe = functions_->C_GetSessionInfo(lease.handle(), &info);
  return IsSessionRecoverable(probe) ? probe : CKR_OK;
}

Status SessionPool::GiveUp(const CallResult& last, int attempts) const {
  return UnavailableError(DescribeRv(last.rv, last.function) + " (token " + uri_.ToString() +
                          "; gave up after " + std::to_string(attempts) + " attempts)");
}

void SessionPool::Release(CK_SESSION_HANDLE handle, uint64_t generation) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation != generation_) return;  // from before a reconnect: forget it
    if (idle_.size() < options_.max_idle_sessions) {
      idle_.push_back(handle);
      return;
    }
  }
  functions_->C_CloseSession(handle);
}

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      handle_(other.handle_),
      generation_(other.generation_) {}

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Return();
    pool_ = std::exchange(other.pool_, nullptr);
    handle_ = other.handle_;
    generation_ = other.generation_;
  }
  return *this;
}

SessionPool::Lease::~Lease() { Return(); }

void SessionPool::Lease::Return() noexcept {
  if (pool_ != nullptr) pool_->Release(handle_, generation_);
  pool_ = nullptr;
}

}  // namespace pinvault::pkcs11
