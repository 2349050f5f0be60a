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
// Unplug() also closes every real session on the module (as a real removal would), so after
// Replug() old session handles are invalid and the login is gone: the caller must recover.
// While unplugged: C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList and C_GetSlotInfo
// pass through; C_GetSlotList with tokenPresent lists no slots; C_GetTokenInfo, C_OpenSession,
// C_GetMechanismList/Info and C_InitToken return CKR_TOKEN_NOT_PRESENT; every other function
// returns the code given to Unplug (CKR_DEVICE_REMOVED by default).
//
// FailNext makes specific functions fail a number of times; CallCount counts calls that reached
// the wrapper (including failed ones), e.g. to check an operation does no object search.
//
// Only one FaultModule may exist at a time in a process (the C trampolines find it through a
// global). The FaultModule must outlive every Module created on it; CreateModule arranges that.
// Thread-safe.
#ifndef PINVAULT_TESTS_TESTING_FAULT_MODULE_H_
#define PINVAULT_TESTS_TESTING_FAULT_MODULE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

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

  // Unplug simulates removal of the device: real sessions are closed, and calls fail as
  // described above with `rv` for session functions.
  void Unplug(CK_RV rv = CKR_DEVICE_REMOVED);
  // Replug ends Unplug; the module works again (with no sessions and no login).
  void Replug();
  bool unplugged() const { return unplugged_.load(); }

  // FailNext makes the next `times` calls of `function` (e.g. "C_Encrypt") return `rv`;
  // times < 0 means every call until ClearFaults. INVALID_ARGUMENT for an unknown name.
  Status FailNext(std::string_view function, CK_RV rv, int times = 1);
  // ClearFaults cancels every FailNext.
  void ClearFaults();

  // CallCount is how many times `function` was called through the wrapper (0 for unknown
  // names); ResetCounts zeroes every counter.
  uint64_t CallCount(std::string_view function) const;
  void ResetCounts();

  // Called by the trampolines: the CK_RV to inject for function `index`, or CKR_OK to pass.
  CK_RV Inject(size_t index);
  // Called by the C_GetSlotList trampoline.
  bool HideTokens() const { return unplugged_.load(); }

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
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_FAULT_MODULE_H_
