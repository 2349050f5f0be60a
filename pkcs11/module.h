// module.h: a loaded and initialised PKCS#11 module (RAII over dlopen + C_Initialize).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Module> module,
//   Module::Load("/usr/lib/softhsm/libsofthsm2.so")); ASSIGN_OR_RETURN(TokenDescription token,
//   module->FindToken(uri));
//
// Load dlopens the library, calls C_GetFunctionList, then C_Initialize with
// CKF_OS_LOCKING_OK (the module does its own locking with OS primitives, so every function
// may be called from any thread). The destructor calls C_Finalize and dlcloses.
//
// A PKCS#11 library can be initialised only once per process at a time: a second Module for
// the same library fails with FAILED_PRECONDITION (CKR_CRYPTOKI_ALREADY_INITIALIZED) until the
// first is destroyed. Share one Module (std::shared_ptr) between the pools that use it.
// SoftHSM reads SOFTHSM2_CONF in C_Initialize, so set it before Load.
#ifndef PINVAULT_PKCS11_MODULE_H_
#define PINVAULT_PKCS11_MODULE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/uri.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// kDefaultModulePath is SoftHSM2's module on Debian, the default for pinvault's tools.
inline constexpr char kDefaultModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";

// ModuleInfo is CK_INFO with the blank padding removed.
struct ModuleInfo {
  std::string cryptoki_version;  // "2.40"
  std::string manufacturer;
  std::string description;
  std::string library_version;  // "2.6"
};

// TokenDescription is one slot with a token present: CK_SLOT_INFO and CK_TOKEN_INFO with the
// blank padding removed. `slot` is valid only until the module renumbers its slots; keep the
// URI, not the slot id.
struct TokenDescription {
  CK_SLOT_ID slot = 0;
  std::string label;
  std::string manufacturer;
  std::string model;
  std::string serial;
  CK_FLAGS flags = 0;  // CK_TOKEN_INFO.flags (CKF_LOGIN_REQUIRED, CKF_TOKEN_INITIALIZED, ...)
  std::string slot_description;
  std::string slot_manufacturer;
  std::string hardware_version;
  std::string firmware_version;
};

class Module {
 public:
  // Load resolves `path_or_name` (see ResolveModulePath), dlopens it and initialises it.
  // `init_parameters`, if not empty, is passed in CK_C_INITIALIZE_ARGS.pReserved (NSS softokn
  // needs "configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db'"). Errors:
  // NOT_FOUND if the library does not exist, FAILED_PRECONDITION if it cannot be loaded, is not
  // a PKCS#11 module, or is already initialised in this process; the module's C_Initialize
  // error otherwise.
  static StatusOr<std::unique_ptr<Module>> Load(std::string_view path_or_name,
                                                std::string init_parameters = {});

  // CreateFromFunctionList initialises a module reached through an existing function list
  // (e.g. a fault-injecting wrapper in tests). `keep_alive` is held until after C_Finalize, so
  // it may own whatever `functions` points into. Nothing is dlopened or dlclosed.
  static StatusOr<std::unique_ptr<Module>> CreateFromFunctionList(
      CK_FUNCTION_LIST* functions, std::string init_parameters = {},
      std::shared_ptr<void> keep_alive = nullptr, std::string description = "function list");

  // ResolveModulePath maps a module argument to a library path: anything containing '/' is
  // used as is; otherwise a p11-kit module name ("softhsm2") is looked up in
  // /etc/pkcs11/modules and /usr/share/p11-kit/modules (the "module:" line of NAME.module),
  // and a bare file name ("opensc-pkcs11.so") in the multiarch pkcs11 directory.
  // NOT_FOUND if a name resolves to nothing.
  static StatusOr<std::string> ResolveModulePath(std::string_view path_or_name);

  Module(Module&& other) noexcept;
  Module& operator=(Module&& other) noexcept;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  // ~Module calls C_Finalize (closing every session the process has on the module) and
  // dlcloses the library. Never fails.
  ~Module();

  // functions is the module's function list; valid while this Module lives.
  CK_FUNCTION_LIST* functions() const { return functions_; }

  // path is the library path, or the description given to CreateFromFunctionList.
  const std::string& path() const { return path_; }

  // GetInfo returns C_GetInfo.
  StatusOr<ModuleInfo> GetInfo() const;

  // ListTokens returns every slot with a token present.
  StatusOr<std::vector<TokenDescription>> ListTokens() const;

  // FindToken returns the one initialised token that matches `uri`. NOT_FOUND if none does
  // (the message lists the labels present), FAILED_PRECONDITION if several do (name it by
  // serial too). Uninitialised tokens (CKF_TOKEN_INITIALIZED clear) never match.
  StatusOr<TokenDescription> FindToken(const TokenUri& uri) const;

  // Mechanisms returns C_GetMechanismList for `slot`.
  StatusOr<std::vector<CK_MECHANISM_TYPE>> Mechanisms(CK_SLOT_ID slot) const;

  // MechanismInfo returns C_GetMechanismInfo; UNIMPLEMENTED if the token lacks `mechanism`.
  StatusOr<CK_MECHANISM_INFO> MechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE mechanism) const;

 private:
  Module() = default;
  static StatusOr<std::unique_ptr<Module>> Initialize(std::unique_ptr<Module> module,
                                                      std::string init_parameters);
  void Release() noexcept;

  void* library_ = nullptr;  // dlopen handle, or null for CreateFromFunctionList
  CK_FUNCTION_LIST* functions_ = nullptr;
  bool initialized_ = false;
  std::shared_ptr<void> keep_alive_;
  std::string path_;
};

// PaddedToString converts a blank-padded CK_UTF8CHAR field to a string without the padding.
std::string PaddedToString(const CK_UTF8CHAR* field, size_t size);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_MODULE_H_
