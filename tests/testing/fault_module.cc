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

// Trampoline<Index, Member, F>::Call forwards to the real module unless a fault is injected.
template <size_t Index, auto Member, typename F>
struct Trampoline;

template <size_t Index, auto Member, typename... Args>
struct Trampoline<Index, Member, CK_RV (*)(Args...)> {
  static CK_RV Call(Args... args) {
    FaultModule* fault = g_active.load();
    if (fault == nullptr) return CKR_GENERAL_ERROR;
    CK_RV rv = fault->Inject(Index);
    if (rv != CKR_OK) return rv;
    return (fault->real()->*Member)(args...);
  }
};

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
  // A removed device loses every session (and with them the login).
  CK_ULONG count = 0;
  if (real_->C_GetSlotList(CK_FALSE, nullptr, &count) != CKR_OK || count == 0) return;
  std::vector<CK_SLOT_ID> slots(count);
  if (real_->C_GetSlotList(CK_FALSE, slots.data(), &count) != CKR_OK) return;
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) real_->C_CloseAllSessions(slot);
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
