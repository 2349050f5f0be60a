#include "tests/testing/fault_module.h"

#include <dlfcn.h>

#include <vector>

namespace pinvault::testing {
namespace {

// Every member of CK_FUNCTION_LIST after `version`, in order.
// clang-format off
#define PINVAULT_P11_FUNCTIONS(X) \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo) \
  X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN) \
  X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo) \
  X(C_GetOperationState) X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject) \
  X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue) X(C_SetAttributeValue) \
  X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) \
  X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt) X(C_DecryptUpdate) \
  X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey) X(C_DigestFinal) \
  X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit) X(C_SignRecover) \
  X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal) X(C_VerifyRecoverInit) \
  X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) \
  X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) \
  X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus) X(C_CancelFunction) \
  X(C_WaitForSlotEvent)
// clang-format on

enum FunctionIndex : size_t {
#define PINVAULT_P11_ENUM(name) k_##name,
  PINVAULT_P11_FUNCTIONS(PINVAULT_P11_ENUM)
#undef PINVAULT_P11_ENUM
      kCount
};
static_assert(kCount == FaultModule::kFunctionCount);

constexpr std::string_view kNames[] = {
#define PINVAULT_P11_NAME(name) #name,
    PINVAULT_P11_FUNCTIONS(PINVAULT_P11_NAME)
#undef PINVAULT_P11_NAME
};

std::atomic<FaultModule*> g_active{nullptr};

int IndexOf(std::string_view name) {
  for (size_t i = 0; i < kCount; ++i) {
    if (kNames[i] == name) return static_cast<int>(i);
  }
  return -1;
}

// TakesSession is true for the functions whose first argument is a session handle.
constexpr bool TakesSession(size_t index) {
  return index >= k_C_InitPIN && index <= k_C_CancelFunction && index != k_C_OpenSession &&
         index != k_C_CloseAllSessions;
}

// Trampoline<Index, Member, F>::Call forwards to the real module unless a fault is injected,
// translating the wrapper's session handles to the real module's.
template <size_t Index, auto Member, typename F>
struct Trampoline;

template <size_t Index, auto Member, typename First, typename... Rest>
struct Trampoline<Index, Member, CK_RV (*)(First, Rest...)> {
  static CK_RV Call(First first, Rest... rest) {
    FaultModule* fault = g_active.load();
    if (fault == nullptr) return CKR_GENERAL_ERROR;
    CK_RV rv = fault->Inject(Index);
    if (rv != CKR_OK) return rv;
    if constexpr (TakesSession(Index)) {
      CK_SESSION_HANDLE real = CK_INVALID_HANDLE;
      rv = fault->BeginSessionCall(Index, first, &real);
      if (rv != CKR_OK) return rv;
      rv = (fault->real()->*Member)(real, rest...);
      fault->EndSessionCall(first);
      return rv;
    } else {
      return (fault->real()->*Member)(first, rest...);
    }
  }
};

CK_RV WrappedOpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application,
                         CK_NOTIFY notify, CK_SESSION_HANDLE* session) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr) return CKR_GENERAL_ERROR;
  CK_RV rv = fault->Inject(k_C_OpenSession);
  if (rv != CKR_OK) return rv;
  return fault->OpenSession(slot, flags, application, notify, session);
}

CK_RV WrappedCloseSession(CK_SESSION_HANDLE session) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr) return CKR_GENERAL_ERROR;
  CK_RV rv = fault->Inject(k_C_CloseSession);
  if (rv != CKR_OK) return rv;
  return fault->CloseSession(session);
}

CK_RV WrappedCloseAllSessions(CK_SLOT_ID slot) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr) return CKR_GENERAL_ERROR;
  CK_RV rv = fault->Inject(k_C_CloseAllSessions);
  if (rv != CKR_OK) return rv;
  return fault->CloseAllSessions(slot);
}

CK_RV WrappedFinalize(CK_VOID_PTR reserved) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr) return CKR_GENERAL_ERROR;
  CK_RV rv = fault->Inject(k_C_Finalize);
  if (rv != CKR_OK) return rv;
  return fault->Finalize(reserved);
}

CK_RV WrappedGetFunctionList(CK_FUNCTION_LIST** list) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr || list == nullptr) return CKR_ARGUMENTS_BAD;
  fault->Inject(k_C_GetFunctionList);
  *list = fault->functions();
  return CKR_OK;
}

CK_RV WrappedGetSlotList(CK_BBOOL token_present, CK_SLOT_ID* slots, CK_ULONG* count) {
  FaultModule* fault = g_active.load();
  if (fault == nullptr) return CKR_GENERAL_ERROR;
  CK_RV rv = fault->Inject(k_C_GetSlotList);
  if (rv != CKR_OK) return rv;
  if (token_present && fault->HideTokens()) {
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    *count = 0;
    return CKR_OK;
  }
  return fault->real()->C_GetSlotList(token_present, slots, count);
}

}  // namespace

StatusOr<std::shared_ptr<FaultModule>> FaultModule::Load(const std::string& path) {
  void* library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* error = ::dlerror();
    return NotFoundError("FaultModule: cannot load '" + path +
                         "': " + (error != nullptr ? error : "dlopen failed"));
  }
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  CK_FUNCTION_LIST* real = nullptr;
  if (get == nullptr || get(&real) != CKR_OK || real == nullptr) {
    ::dlclose(library);
    return FailedPreconditionError("FaultModule: '" + path + "' is not a PKCS#11 module");
  }
  StatusOr<std::shared_ptr<FaultModule>> fault = Install(real, library);
  if (!fault.ok()) ::dlclose(library);
  return fault;
}

StatusOr<std::shared_ptr<FaultModule>> FaultModule::Wrap(CK_FUNCTION_LIST* real) {
  if (real == nullptr) return InvalidArgumentError("FaultModule: null function list");
  return Install(real, nullptr);
}

StatusOr<std::shared_ptr<FaultModule>> FaultModule::Install(CK_FUNCTION_LIST* real, void* library) {
  std::shared_ptr<FaultModule> fault(new FaultModule());
  fault->real_ = real;
  fault->library_ = library;
  fault->wrapper_.version = real->version;
#define PINVAULT_P11_FILL(name) \
  fault->wrapper_.name =        \
      &Trampoline<k_##name, &CK_FUNCTION_LIST::name, decltype(CK_FUNCTION_LIST::name)>::Call;
  PINVAULT_P11_FUNCTIONS(PINVAULT_P11_FILL)
#undef PINVAULT_P11_FILL
  fault->wrapper_.C_GetFunctionList = &WrappedGetFunctionList;
  fault->wrapper_.C_GetSlotList = &WrappedGetSlotList;
  fault->wrapper_.C_OpenSession = &WrappedOpenSession;
  fault->wrapper_.C_CloseSession = &WrappedCloseSession;
  fault->wrapper_.C_CloseAllSessions = &WrappedCloseAllSessions;
  fault->wrapper_.C_Finalize = &WrappedFinalize;
  FaultModule* expected = nullptr;
  if (!g_active.compare_exchange_strong(expected, fault.get())) {
    fault->library_ = nullptr;  // the caller closes it
    return FailedPreconditionError("FaultModule: only one may exist at a time");
  }
  return fault;
}

FaultModule::~FaultModule() {
  FaultModule* self = this;
  g_active.compare_exchange_strong(self, nullptr);
  if (library_ != nullptr) ::dlclose(library_);
}

StatusOr<std::unique_ptr<pkcs11::Module>> FaultModule::CreateModule(std::string init_parameters) {
  return pkcs11::Module::CreateFromFunctionList(functions(), std::move(init_parameters),
                                                shared_from_this(), "fault-injecting wrapper");
}

CK_RV FaultModule::Inject(size_t index) {
  if (index >= kCount) return CKR_GENERAL_ERROR;
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  if (unplugged_.load()) {
    switch (index) {
      case k_C_Initialize:
      case k_C_Finalize:
      case k_C_GetInfo:
      case k_C_GetFunctionList:
      case k_C_GetSlotList:
      case k_C_GetSlotInfo:
        break;
      case k_C_GetTokenInfo:
      case k_C_OpenSession:
      case k_C_GetMechanismList:
      case k_C_GetMechanismInfo:
      case k_C_InitToken:
        return CKR_TOKEN_NOT_PRESENT;
      default:
        return unplugged_rv_.load();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_times_[index] != 0) {
    if (fail_times_[index] > 0) --fail_times_[index];
    return fail_rv_[index];
  }
  return CKR_OK;
}

void FaultModule::Unplug(CK_RV rv) {
  unplugged_rv_.store(rv);
  unplugged_.store(true);
  // A removed device loses every session (and with them the login). A call already inside the
  // real module finishes there; its session is closed when it returns.
  std::vector<CK_SESSION_HANDLE> close_now;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    ++removals_;
    for (auto it = sessions_.begin(); it != sessions_.end();) KillLocked(it++, &close_now);
  }
  CloseReal(close_now);
}

void FaultModule::KillLocked(std::unordered_map<CK_SESSION_HANDLE, Session>::iterator it,
                             std::vector<CK_SESSION_HANDLE>* close_now) {
  it->second.dead = true;
  if (it->second.in_flight == 0) {
    close_now->push_back(it->second.real);
    sessions_.erase(it);
  }
}

void FaultModule::CloseReal(const std::vector<CK_SESSION_HANDLE>& handles) {
  // Each real handle is still open here (only its entry was removed), so the module cannot
  // have given its number to another session yet.
  for (CK_SESSION_HANDLE real : handles) real_->C_CloseSession(real);
}

CK_RV FaultModule::BeginSessionCall(size_t index, CK_SESSION_HANDLE session,
                                    CK_SESSION_HANDLE* real) {
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end() || it->second.dead) {
      // Dead by an Unplug that began after this call passed Inject: report the removal.
      return unplugged_.load() ? unplugged_rv_.load() : CKR_SESSION_HANDLE_INVALID;
    }
    ++it->second.in_flight;
    *real = it->second.real;
  }
  MaybePause(index);
  return CKR_OK;
}

void FaultModule::EndSessionCall(CK_SESSION_HANDLE session) {
  std::vector<CK_SESSION_HANDLE> close_now;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    --it->second.in_flight;
    if (it->second.dead) KillLocked(it, &close_now);
  }
  CloseReal(close_now);
}

CK_RV FaultModule::OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application,
                               CK_NOTIFY notify, CK_SESSION_HANDLE* session) {
  if (session == nullptr) return CKR_ARGUMENTS_BAD;
  uint64_t removals;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    removals = removals_;
  }
  CK_SESSION_HANDLE real = CK_INVALID_HANDLE;
  CK_RV rv = real_->C_OpenSession(slot, flags, application, notify, &real);
  if (rv != CKR_OK) return rv;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    if (removals_ == removals) {
      CK_SESSION_HANDLE handle = next_session_++;
      sessions_.emplace(handle, Session{real, slot, 0, false});
      *session = handle;
      return CKR_OK;
    }
  }
  // The device was removed while the session was being opened: it did not survive that.
  real_->C_CloseSession(real);
  return unplugged_.load() ? CKR_TOKEN_NOT_PRESENT : CKR_DEVICE_REMOVED;
}

CK_RV FaultModule::CloseSession(CK_SESSION_HANDLE session) {
  std::vector<CK_SESSION_HANDLE> close_now;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end() || it->second.dead) return CKR_SESSION_HANDLE_INVALID;
    KillLocked(it, &close_now);
  }
  CloseReal(close_now);
  return CKR_OK;
}

CK_RV FaultModule::CloseAllSessions(CK_SLOT_ID slot) {
  std::vector<CK_SESSION_HANDLE> close_now;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      auto current = it++;
      if (current->second.slot == slot && !current->second.dead) KillLocked(current, &close_now);
    }
  }
  CloseReal(close_now);
  return CKR_OK;
}

CK_RV FaultModule::Finalize(CK_VOID_PTR reserved) {
  CK_RV rv = real_->C_Finalize(reserved);
  if (rv == CKR_OK) {
    // The real module closed every session.
    std::lock_guard<std::mutex> lock(sessions_mu_);
    sessions_.clear();
  }
  return rv;
}

size_t FaultModule::open_sessions() const {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  return sessions_.size();
}

Status FaultModule::PauseNext(std::string_view function) {
  int index = IndexOf(function);
  if (index < 0 || !TakesSession(static_cast<size_t>(index))) {
    return InvalidArgumentError("FaultModule: cannot pause '" + std::string(function) + "'");
  }
  std::lock_guard<std::mutex> lock(pause_mu_);
  paused_ = false;
  resume_ = false;
  pause_index_.store(index);
  return OkStatus();
}

void FaultModule::MaybePause(size_t index) {
  if (pause_index_.load() != static_cast<int>(index)) return;
  std::unique_lock<std::mutex> lock(pause_mu_);
  int expected = static_cast<int>(index);
  if (!pause_index_.compare_exchange_strong(expected, -1)) return;  // another call took it
  paused_ = true;
  pause_cv_.notify_all();
  pause_cv_.wait(lock, [this] { return resume_; });
  paused_ = false;
}

void FaultModule::WaitPaused() {
  std::unique_lock<std::mutex> lock(pause_mu_);
  pause_cv_.wait(lock, [this] { return paused_; });
}

void FaultModule::Resume() {
  std::lock_guard<std::mutex> lock(pause_mu_);
  resume_ = true;
  pause_cv_.notify_all();
}

void FaultModule::Replug() { unplugged_.store(false); }

Status FaultModule::FailNext(std::string_view function, CK_RV rv, int times) {
  int index = IndexOf(function);
  if (index < 0) {
    return InvalidArgumentError("FaultModule: unknown function '" + std::string(function) + "'");
  }
  std::lock_guard<std::mutex> lock(mu_);
  fail_times_[static_cast<size_t>(index)] = times;
  fail_rv_[static_cast<size_t>(index)] = rv;
  return OkStatus();
}

void FaultModule::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_times_.fill(0);
}

uint64_t FaultModule::CallCount(std::string_view function) const {
  int index = IndexOf(function);
  if (index < 0) return 0;
  return counts_[static_cast<size_t>(index)].load();
}

void FaultModule::ResetCounts() {
  for (auto& count : counts_) count.store(0);
}

}  // namespace pinvault::testing
