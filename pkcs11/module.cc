#include "pkcs11/module.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <utility>

#include "pkcs11/rv.h"

namespace pinvault::pkcs11 {
namespace {

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string VersionString(const CK_VERSION& v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u", static_cast<unsigned>(v.major),
                static_cast<unsigned>(v.minor));
  return buf;
}

constexpr const char* kModuleConfigDirs[] = {"/etc/pkcs11/modules", "/usr/share/p11-kit/modules"};
constexpr const char* kModuleLibraryDirs[] = {
    "/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib/aarch64-linux-gnu/pkcs11", "/usr/lib/pkcs11"};

std::string Trim(std::string s) {
  size_t start = s.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return {};
  size_t end = s.find_last_not_of(" \t\r\n");
  return s.substr(start, end - start + 1);
}

// ModuleLineOf returns the "module:" value of a p11-kit NAME.module file, or "".
std::string ModuleLineOf(const std::string& config_path) {
  std::ifstream in(config_path);
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.rfind("module:", 0) == 0) return Trim(line.substr(7));
  }
  return {};
}

bool Matches(const std::optional<std::string>& wanted, const std::string& actual) {
  return !wanted.has_value() || *wanted == actual;
}

}  // namespace

std::string PaddedToString(const CK_UTF8CHAR* field, size_t size) {
  size_t end = size;
  while (end > 0 && (field[end - 1] == ' ' || field[end - 1] == '\0')) --end;
  return std::string(reinterpret_cast<const char*>(field), end);
}

StatusOr<std::string> Module::ResolveModulePath(std::string_view path_or_name) {
  std::string name(path_or_name);
  if (name.empty()) return InvalidArgumentError("empty PKCS#11 module path");
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : kModuleConfigDirs) {
    std::string config = std::string(dir) + "/" + name + ".module";
    if (!FileExists(config)) continue;
    std::string module = ModuleLineOf(config);
    if (module.empty()) {
      return NotFoundError("p11-kit module config '" + config + "' has no 'module:' line");
    }
    if (module.find('/') != std::string::npos) return module;
    for (const char* libdir : kModuleLibraryDirs) {
      std::string candidate = std::string(libdir) + "/" + module;
      if (FileExists(candidate)) return candidate;
    }
    return NotFoundError("p11-kit module '" + name + "' names '" + module +
                         "', which is not in the pkcs11 library directory");
  }
  for (const char* libdir : kModuleLibraryDirs) {
    std::string candidate = std::string(libdir) + "/" + name;
    if (FileExists(candidate)) return candidate;
  }
  return NotFoundError("no PKCS#11 module named '" + name +
                       "' (give a path, or a p11-kit module name such as 'softhsm2')");
}

StatusOr<std::unique_ptr<Module>> Module::Load(std::string_view path_or_name,
                                               std::string init_parameters) {
  ASSIGN_OR_RETURN(std::string path, ResolveModulePath(path_or_name));
  if (!FileExists(path)) {
    return NotFoundError("cannot load PKCS#11 module '" + path + "': no such file");
  }
  void* library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* error = ::dlerror();
    return FailedPreconditionError("cannot load PKCS#11 module '" + path +
                                   "': " + (error != nullptr ? error : "dlopen failed"));
  }
  std::unique_ptr<Module> module(new Module());
  module->library_ = library;
  module->path_ = path;
  auto get_function_list =
      reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"));
  if (get_function_list == nullptr) {
    return FailedPreconditionError("'" + path + "' is not a PKCS#11 module (no C_GetFunctionList)");
  }
  CK_FUNCTION_LIST* functions = nullptr;
  CK_RV rv = get_function_list(&functions);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetFunctionList").WithContext(path);
  if (functions == nullptr) {
    return FailedPreconditionError("'" + path + "': C_GetFunctionList returned no list");
  }
  module->functions_ = functions;
  return Initialize(std::move(module), std::move(init_parameters));
}

StatusOr<std::unique_ptr<Module>> Module::CreateFromFunctionList(CK_FUNCTION_LIST* functions,
                                                                 std::string init_parameters,
                                                                 std::shared_ptr<void> keep_alive,
                                                                 std::string description) {
  if (functions == nullptr) return InvalidArgumentError("null PKCS#11 function list");
  std::unique_ptr<Module> module(new Module());
  module->functions_ = functions;
  module->keep_alive_ = std::move(keep_alive);
  module->path_ = std::move(description);
  return Initialize(std::move(module), std::move(init_parameters));
}

StatusOr<std::unique_ptr<Module>> Module::Initialize(std::unique_ptr<Module> module,
                                                     std::string init_parameters) {
  InitializeArgs args{};
  args.args.flags = CKF_OS_LOCKING_OK;
  args.args.pReserved = init_parameters.empty() ? nullptr : init_parameters.data();
  args.nss_trailing_reserved = nullptr;
  CK_RV rv = module->functions_->C_Initialize(&args.args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    return FailedPreconditionError(DescribeRv(rv, "C_Initialize") + ": '" + module->path_ +
                                   "' is already initialised in this process; share its Module");
  }
  if (rv != CKR_OK) return RvToStatus(rv, "C_Initialize").WithContext(module->path_);
  module->initialized_ = true;
  return module;
}

Module::Module(Module&& other) noexcept
    : library_(std::exchange(other.library_, nullptr)),
      functions_(std::exchange(other.functions_, nullptr)),
      initialized_(std::exchange(other.initialized_, false)),
      keep_alive_(std::move(other.keep_alive_)),
      path_(std::move(other.path_)) {}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    Release();
    library_ = std::exchange(other.library_, nullptr);
    functions_ = std::exchange(other.functions_, nullptr);
    initialized_ = std::exchange(other.initialized_, false);
    keep_alive_ = std::move(other.keep_alive_);
    path_ = std::move(other.path_);
  }
  return *this;
}

Module::~Module() { Release(); }

void Module::Release() noexcept {
  if (initialized_ && functions_ != nullptr) functions_->C_Finalize(nullptr);
  initialized_ = false;
  functions_ = nullptr;
  keep_alive_.reset();
  if (library_ != nullptr) ::dlclose(library_);
  library_ = nullptr;
}

StatusOr<ModuleInfo> Module::GetInfo() const {
  CK_INFO info{};
  CK_RV rv = functions_->C_GetInfo(&info);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetInfo");
  ModuleInfo out;
  out.cryptoki_version = VersionString(info.cryptokiVersion);
  out.manufacturer = PaddedToString(info.manufacturerID, sizeof(info.manufacturerID));
  out.description = PaddedToString(info.libraryDescription, sizeof(info.libraryDescription));
  out.library_version = VersionString(info.libraryVersion);
  return out;
}

StatusOr<std::vector<TokenDescription>> Module::ListTokens() const {
  CK_ULONG count = 0;
  CK_RV rv = functions_->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    rv = functions_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetSlotList");
    slots.resize(count);
  }
  std::vector<TokenDescription> tokens;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    rv = functions_->C_GetTokenInfo(slot, &info);
    // A token may vanish between the two calls; skip it rather than fail the listing.
    if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED || rv == CKR_SLOT_ID_INVALID ||
        rv == CKR_TOKEN_NOT_RECOGNIZED) {
      continue;
    }
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetTokenInfo");
    CK_SLOT_INFO slot_info{};
    rv = functions_->C_GetSlotInfo(slot, &slot_info);
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetSlotInfo");
    TokenDescription token;
    token.slot = slot;
    token.label = PaddedToString(info.label, sizeof(info.label));
    token.manufacturer = PaddedToString(info.manufacturerID, sizeof(info.manufacturerID));
    token.model = PaddedToString(info.model, sizeof(info.model));
    token.serial = PaddedToString(info.serialNumber, sizeof(info.serialNumber));
    token.flags = info.flags;
    token.slot_description =
        PaddedToString(slot_info.slotDescription, sizeof(slot_info.slotDescription));
    token.slot_manufacturer =
        PaddedToString(slot_info.manufacturerID, sizeof(slot_info.manufacturerID));
    token.hardware_version = VersionString(info.hardwareVersion);
    token.firmware_version = VersionString(info.firmwareVersion);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

StatusOr<TokenDescription> Module::FindToken(const TokenUri& uri) const {
  if (uri.library_manufacturer || uri.library_description || uri.library_version) {
    ASSIGN_OR_RETURN(ModuleInfo info, GetInfo());
    if (!Matches(uri.library_manufacturer, info.manufacturer) ||
        !Matches(uri.library_description, info.description) ||
        !Matches(uri.library_version, info.library_version)) {
      return NotFoundError("module '" + path_ + "' (" + info.manufacturer + ", " +
                           info.description + " " + info.library_version +
                           ") does not match the library attributes of " + uri.ToString());
    }
  }
  ASSIGN_OR_RETURN(std::vector<TokenDescription> tokens, ListTokens());
  std::vector<TokenDescription> matches;
  std::string present;
  for (TokenDescription& token : tokens) {
    // An uninitialised token (SoftHSM keeps one free slot) has no label and no keys.
    if ((token.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    if (!present.empty()) present += ", ";
    present += "'" + token.label + "'";
    if (Matches(uri.token, token.label) && Matches(uri.serial, token.serial) &&
        Matches(uri.manufacturer, token.manufacturer) && Matches(uri.model, token.model) &&
        Matches(uri.slot_description, token.slot_description) &&
        Matches(uri.slot_manufacturer, token.slot_manufacturer)) {
      matches.push_back(std::move(token));
    }
  }
  if (matches.empty()) {
    return NotFoundError("no token matches " + uri.ToString() + " in module '" + path_ +
                         "' (tokens present: " + (present.empty() ? "none" : present) + ")");
  }
  if (matches.size() > 1) {
    return FailedPreconditionError(std::to_string(matches.size()) + " tokens match " +
                                   uri.ToString() + "; add serial=... to pick one");
  }
  return std::move(matches.front());
}

StatusOr<std::vector<CK_MECHANISM_TYPE>> Module::Mechanisms(CK_SLOT_ID slot) const {
  CK_ULONG count = 0;
  CK_RV rv = functions_->C_GetMechanismList(slot, nullptr, &count);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismList");
  std::vector<CK_MECHANISM_TYPE> mechanisms(count);
  if (count > 0) {
    rv = functions_->C_GetMechanismList(slot, mechanisms.data(), &count);
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismList");
    mechanisms.resize(count);
  }
  return mechanisms;
}

StatusOr<CK_MECHANISM_INFO> Module::MechanismInfo(CK_SLOT_ID slot,
                                                  CK_MECHANISM_TYPE mechanism) const {
  CK_MECHANISM_INFO info{};
  CK_RV rv = functions_->C_GetMechanismInfo(slot, mechanism, &info);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismInfo");
  return info;
}

}  // namespace pinvault::pkcs11
