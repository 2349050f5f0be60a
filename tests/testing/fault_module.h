// fault_module.h: a PKCS#11 function list that wraps a real module and fails on command, so
// tests can make the HSM vanish mid-operation and come back.
//
//   auto token = SoftHsmToken::Create();                       // sets SOFTHSM2_CONF
//   auto fault = FaultModule::Load(SoftHsmToken::kModulePath);  // dlopen, no C_Initialize
//   std::shared_ptr<pkcs11::Module> module = *(*fault)->CreateModule();  // C_Initialize via
//   wrapper auto hsm = pkcs11::TokenHsm::Open(module, (*token)->uri());
//   (*fault)->Unplug();     // every call now fails (CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT)
//   ... hsm->Seal(...) returns UNAVAILABLE ...
//   (*fault)->Replug();     // the next call reconnects and succeeds
//
// Sessions are virtual: the wrapper hands out handles of its own (never reused) that map to the
// real module's sessions, so a stale handle can never reach a newer session that happens to get
// the same real number. Unplug() makes every existing session dead, as a real removal would
// (calls on it fail; after Replug() they fail with CKR_SESSION_HANDLE_INVALID), and closes the
// real sessions, each only once no call is in flight on it: a call already inside the real
// module when the device "goes away" finishes there first. The wrapped module therefore never
// sees a session closed under a running call. Closing every session also ends the login.
// While unplugged: C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList and C_GetSlotInfo
// pass through; C_GetSlotList with tokenPresent lists no slots; C_GetTokenInfo, C_OpenSession,
// C_GetMechanismList/Info and C_InitToken return CKR_TOKEN_NOT_PRESENT; every other function
// returns the code given to Unplug (CKR_DEVICE_REMOVED by default).
//
// FailNext makes specific functions fail a number of times; CallCount counts calls that reached
// the wrapper (including failed ones), e.g. to check an operation does no object search.
// PauseNext holds the next call of a function once it is in flight on its session (past every
// fault check, before the real module), so a test can unplug under a running call.
//
// Only one FaultModule may exist at a time in a process (the C trampolines find it through a
// global). The FaultModule must outlive every Module created on it; CreateModule arranges that.
// Thread-safe.
#ifndef PINVAULT_TESTS_TESTING_FAULT_MODULE_H_
#define PINVAULT_TESTS_TESTING_FAULT_MODULE_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/module.h"
#include "vault/status.h"

namespace pinvault::testing {

class FaultModule : public std::enable_shared_from_this<FaultModule> {
 public:
  // kFunctionCount is the number of functions in a PKCS#11 2.40 function list.
  static constexpr size_t kFunctionCount = 68;

  // Load dlopens `path` and wraps its function list (it does not call C_Initialize).
  // FAILED_PRECONDITION if another FaultModule exists.
  static StatusOr<std::shared_ptr<FaultModule>> Load(const std::string& path);

  // Wrap wraps a function list owned by someone else, who must keep it valid.
  static StatusOr<std::shared_ptr<FaultModule>> Wrap(CK_FUNCTION_LIST* real);

  FaultModule(const FaultModule&) = delete;
  FaultModule& operator=(const FaultModule&) = delete;
  ~FaultModule();

  // functions is the wrapping function list, for pkcs11::Module::CreateFromFunctionList.
  CK_FUNCTION_LIST* functions() { return &wrapper_; }
  // real is the wrapped module's own list (calls on it bypass every fault).
  CK_FUNCTION_LIST* real() const { return real_; }

  // CreateModule initialises the wrapped module through the wrapper and returns a Module that
  // keeps this FaultModule alive.
  StatusOr<std::unique_ptr<pkcs11::Module>> CreateModule(std::string init_parameters = {});

  // Unplug simulates removal of the device: every session dies (its real session is closed
  // once no call is in flight on it), and calls fail as described above with `rv`. Unplug
  // never waits for a call in flight.
  void Unplug(CK_RV rv = CKR_DEVICE_REMOVED);
  // Replug ends Unplug; the module works again (with no sessions and no login).
  void Replug();
  bool unplugged() const { return unplugged_.load(); }

  // FailNext makes the next `times` calls of `function` (e.g. "C_Encrypt") return `rv`;
  // times < 0 means every call until ClearFaults. INVALID_ARGUMENT for an unknown name.
  Status FailNext(std::string_view function, CK_RV rv, int times = 1);
  // ClearFaults cancels every FailNext.
  void ClearFaults();

  // PauseNext holds the next call of `function` (a function that takes a session) once it is
  // in flight on its session, until Resume. WaitPaused blocks until that call is held.
  // INVALID_ARGUMENT for an unknown name or a function that takes no session.
  Status PauseNext(std::string_view function);
  void WaitPaused();
  void Resume();

  // open_sessions is the number of real sessions the wrapper holds open (including dead ones
  // whose close waits for a call in flight).
  size_t open_sessions() const;

  // CallCount is how many times `function` was called through the wrapper (0 for unknown
  // names); ResetCounts zeroes every counter.
  uint64_t CallCount(std::string_view function) const;
  void ResetCounts();

  // Called by the trampolines: the CK_RV to inject for function `index`, or CKR_OK to pass.
  CK_RV Inject(size_t index);
  // Called by the C_GetSlotList trampoline.
  bool HideTokens() const { return unplugged_.load(); }

  // Session bookkeeping, called by the trampolines. BeginSessionCall maps a virtual handle to
  // the real one and counts the call in flight (CKR_SESSION_HANDLE_INVALID for an unknown or
  // dead session); EndSessionCall ends it and closes the real session if it died meanwhile.
  CK_RV BeginSessionCall(size_t index, CK_SESSION_HANDLE session, CK_SESSION_HANDLE* real);
  void EndSessionCall(CK_SESSION_HANDLE session);
  CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,
                    CK_SESSION_HANDLE* session);
  CK_RV CloseSession(CK_SESSION_HANDLE session);
  CK_RV CloseAllSessions(CK_SLOT_ID slot);
  CK_RV Finalize(CK_VOID_PTR reserved);

 private:
  FaultModule() = default;
  static StatusOr<std::shared_ptr<FaultModule>> Install(CK_FUNCTION_LIST* real, void* library);

  void* library_ = nullptr;
  CK_FUNCTION_LIST* real_ = nullptr;
  CK_FUNCTION_LIST wrapper_{};
  std::atomic<bool> unplugged_{false};
  std::atomic<CK_RV> unplugged_rv_{CKR_DEVICE_REMOVED};
  std::array<std::atomic<uint64_t>, kFunctionCount> counts_{};
  mutable std::mutex mu_;
  std::array<int, kFunctionCount> fail_times_{};  // guarded by mu_
  std::array<CK_RV, kFunctionCount> fail_rv_{};   // guarded by mu_

  struct Session {
    CK_SESSION_HANDLE real = CK_INVALID_HANDLE;
    CK_SLOT_ID slot = 0;
    int in_flight = 0;
    bool dead = false;  // no new call may start; closed when in_flight reaches 0
  };
  // Kills `it` (guarded by sessions_mu_); appends its real handle to `close_now` when no call
  // is in flight on it (then the entry is gone), else the last call closes it.
  void KillLocked(std::unordered_map<CK_SESSION_HANDLE, Session>::iterator it,
                  std::vector<CK_SESSION_HANDLE>* close_now);
  void CloseReal(const std::vector<CK_SESSION_HANDLE>& handles);
  // Holds the calling thread if PauseNext chose function `index`.
  void MaybePause(size_t index);

  mutable std::mutex sessions_mu_;
  std::unordered_map<CK_SESSION_HANDLE, Session> sessions_;  // by virtual handle
  CK_SESSION_HANDLE next_session_ = 0x5e550001;              // guarded by sessions_mu_
  uint64_t removals_ = 0;                                    // guarded by sessions_mu_

  std::mutex pause_mu_;
  std::condition_variable pause_cv_;
  std::atomic<int> pause_index_{-1};  // written under pause_mu_
  bool paused_ = false;               // guarded by pause_mu_
  bool resume_ = false;               // guarded by pause_mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_FAULT_MODULE_H_
