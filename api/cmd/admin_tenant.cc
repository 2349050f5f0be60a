#include "api/cmd/admin_tenant.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "api/auth/jwt.h"
#include "api/auth/tenant_keys.h"
#include "api/client/jwt_mint.h"
#include "api/cmd/cli_args.h"

namespace pinvault::api {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr char kDefaultKeysFile[] = "var/tenant-keys.json";

constexpr char kTenantUsage[] =
    "usage: pinvault-admin tenant add NAME --algorithm HS256|EdDSA|RS256 [--keys-file PATH] "
    "[--show-secret]\n"
    "       pinvault-admin tenant rotate NAME [--algorithm ALG] [--keys-file PATH] "
    "[--show-secret]\n"
    "       pinvault-admin tenant remove NAME --version N [--keys-file PATH]\n"
    "       pinvault-admin tenant list [--keys-file PATH]\n"
    "The keys file defaults to $PINVAULT_TENANT_KEYS_FILE, else var/tenant-keys.json.\n";

constexpr char kTokenUsage[] =
    "usage: pinvault-admin token mint --tenant NAME [--version N] --user USER --realm HEX\n"
    "                                 [--ttl SECONDS] [--scope SCOPE] [--keys-file PATH]\n"
    "Prints a JWT for testing (default lifetime 600 s, scope \"user\").\n";

using cli::ParseArgs;
using cli::ParsedArgs;

template <typename Int>
StatusOr<Int> ParseInt(const std::string& flag, const std::string& text) {
  Int v{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return InvalidArgumentError("--" + flag + " must be a decimal integer");
  }
  return v;
}

std::filesystem::path KeysFilePath(const ParsedArgs& args) {
  if (auto it = args.values.find("keys-file"); it != args.values.end()) return it->second;
  if (const char* env = std::getenv("PINVAULT_TENANT_KEYS_FILE"); env != nullptr && *env) {
    return env;
  }
  return kDefaultKeysFile;
}

// LoadOrEmpty loads the keys file, or an empty store when it does not exist yet.
StatusOr<std::unique_ptr<TenantKeyStore>> LoadOrEmpty(const std::filesystem::path& path,
                                                      std::ostream& err) {
  std::vector<std::string> warnings;
  StatusOr<std::unique_ptr<TenantKeyStore>> store = TenantKeyStore::LoadFile(path, &warnings);
  for (const std::string& w : warnings) err << "warning: " << w << "\n";
  if (!store.ok() && store.status().code() == StatusCode::kNotFound) {
    return std::make_unique<TenantKeyStore>();
  }
  return store;
}

StatusOr<std::unique_ptr<TenantKeyStore>> LoadExisting(const std::filesystem::path& path,
                                                       std::ostream& err) {
  std::vector<std::string> warnings;
  StatusOr<std::unique_ptr<TenantKeyStore>> store = TenantKeyStore::LoadFile(path, &warnings);
  for (const std::string& w : warnings) err << "warning: " << w << "\n";
  return store;
}

Status Save(const TenantKeyStore& store, const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return UnavailableError("cannot create directory " + dir.string() + ": " + ec.message());
  }
  return store.SaveFile(path);
}

void PrintHex(std::ostream& out, std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (uint8_t b : bytes) out << kDigits[b >> 4] << kDigits[b & 15];
}

// DescribeNewKey prints what an operator needs after adding a key.
Status DescribeNewKey(const TenantKey& key, const std::string& tenant, uint64_t version,
                      const std::filesystem::path& path, bool show_secret, std::ostream& out) {
  out << "Added tenant " << tenant << " key version " << version << " ("
      << JwtAlgorithmName(key.algorithm()) << ") to " << path.string() << " (mode 0600).\n";
  out << "Tokens must carry kid \"" << tenant << ":" << version << "\" and iss \"" << tenant
      << "\".\n";
  if (key.algorithm() == JwtAlgorithm::kHs256) {
    if (show_secret) {
      ASSIGN_OR_RETURN(SecretBytes secret, key.ExportSecret());
      out << "HS256 secret (hex): ";
      PrintHex(out, secret.Reveal());
      out << "\n";
    } else {
      out << "The HS256 secret is stored only in " << path.string()
          << "; give it to the tenant's token issuer from there, or pass --show-secret to "
             "print it. Test tokens: pinvault-admin token mint --tenant "
          << tenant << " ...\n";
    }
    return OkStatus();
  }
  ASSIGN_OR_RETURN(std::string pem, key.PublicKeyPem());
  ASSIGN_OR_RETURN(Bytes der, key.PublicKeyDer());
  out << "Public key:\n" << pem;
  out << "Public key (SubjectPublicKeyInfo DER, hex): " << HexEncode(der) << "\n";
  if (show_secret) {
    ASSIGN_OR_RETURN(SecretBytes pkcs8, key.ExportSecret());
    out << "Private key (PKCS#8 DER, hex): ";
    PrintHex(out, pkcs8.Reveal());
    out << "\n";
  } else {
    out << "The private key is stored in " << path.string()
        << " (for `pinvault-admin token mint`); pass --show-secret to print it for the "
           "tenant's token issuer, and keep only the public key on production realms.\n";
  }
  return OkStatus();
}

int Fail(std::ostream& err, const Status& status, int code = kExitFailure) {
  err << "error: " << status.message() << "\n";
  return code;
}

int TenantAddOrRotate(bool rotate, const std::vector<std::string>& rest, std::ostream& out,
                      std::ostream& err) {
  StatusOr<ParsedArgs> args = ParseArgs(rest, {"algorithm", "keys-file"}, {"show-secret"});
  if (!args.ok()) {
    err << "error: " << args.status().message() << "\n" << kTenantUsage;
    return kExitUsage;
  }
  if (args->positional.size() != 1) {
    err << "error: expected exactly one tenant NAME\n" << kTenantUsage;
    return kExitUsage;
  }
  const std::string& tenant = args->positional[0];
  if (!IsValidTenantName(tenant)) {
    err << "error: tenant name must match ^(test-)?[a-zA-Z0-9]+$\n";
    return kExitUsage;
  }
  std::optional<JwtAlgorithm> algorithm;
  if (auto it = args->values.find("algorithm"); it != args->values.end()) {
    StatusOr<JwtAlgorithm> a = ParseJwtAlgorithm(it->second);
    if (!a.ok()) return Fail(err, a.status(), kExitUsage);
    algorithm = *a;
  } else if (!rotate) {
    err << "error: tenant add needs --algorithm HS256|EdDSA|RS256\n" << kTenantUsage;
    return kExitUsage;
  }
  const std::filesystem::path path = KeysFilePath(*args);
  StatusOr<std::unique_ptr<TenantKeyStore>> store =
      rotate ? LoadExisting(path, err) : LoadOrEmpty(path, err);
  if (!store.ok()) return Fail(err, store.status());

  std::optional<uint64_t> latest = (*store)->LatestVersion(tenant);
  uint64_t version = 1;
  if (rotate) {
    if (!latest) {
      err << "error: no tenant " << tenant << " in " << path.string()
          << "; use `tenant add` first\n";
      return kExitFailure;
    }
    if (*latest == std::numeric_limits<uint64_t>::max()) {
      err << "error: tenant " << tenant << " has no version number left\n";
      return kExitFailure;
    }
    version = *latest + 1;
    if (!algorithm) algorithm = (*store)->Find(tenant, *latest)->algorithm();
  } else if (latest) {
    err << "error: tenant " << tenant << " already exists in " << path.string()
        << "; use `tenant rotate " << tenant << "` to add a key version\n";
    return kExitFailure;
  }

  StatusOr<TenantKey> key = TenantKey::Generate(*algorithm);
  if (!key.ok()) return Fail(err, key.status());
  Status added = (*store)->Add(tenant, version, *key);
  if (!added.ok()) return Fail(err, added);
  Status saved = Save(**store, path);
  if (!saved.ok()) return Fail(err, saved);
  Status described =
      DescribeNewKey(*key, tenant, version, path, args->switches.contains("show-secret"), out);
  if (!described.ok()) return Fail(err, described);
  if (rotate) {
    out << "Older versions stay valid until removed with `pinvault-admin tenant remove " << tenant
        << " --version N`.\n";
  }
  return kExitOk;
}

int TenantRemove(const std::vector<std::string>& rest, std::ostream& out, std::ostream& err) {
  StatusOr<ParsedArgs> args = ParseArgs(rest, {"version", "keys-file"}, {});
  if (!args.ok()) return Fail(err, args.status(), kExitUsage);
  if (args->positional.size() != 1 || !args->values.contains("version")) {
    err << "error: expected NAME --version N\n" << kTenantUsage;
    return kExitUsage;
  }
  StatusOr<uint64_t> version = ParseInt<uint64_t>("version", args->values["version"]);
  if (!version.ok()) return Fail(err, version.status(), kExitUsage);
  const std::filesystem::path path = KeysFilePath(*args);
  StatusOr<std::unique_ptr<TenantKeyStore>> store = LoadExisting(path, err);
  if (!store.ok()) return Fail(err, store.status());
  Status removed = (*store)->Remove(args->positional[0], *version);
  if (!removed.ok()) return Fail(err, removed);
  Status saved = Save(**store, path);
  if (!saved.ok()) return Fail(err, saved);
  out << "Removed tenant " << args->positional[0] << " key version " << *version << " from "
      << path.string() << "; tokens naming it are rejected once realms reload their keys.\n";
  return kExitOk;
}

int TenantList(const std::vector<std::string>& rest, std::ostream& out, std::ostream& err) {
  StatusOr<ParsedArgs> args = ParseArgs(rest, {"keys-file"}, {});
  if (!args.ok()) return Fail(err, args.status(), kExitUsage);
  if (!args->positional.empty()) {
    err << "error: tenant list takes no arguments\n" << kTenantUsage;
    return kExitUsage;
  }
  const std::filesystem::path path = KeysFilePath(*args);
  StatusOr<std::unique_ptr<TenantKeyStore>> store = LoadExisting(path, err);
  if (!store.ok()) return Fail(err, store.status());
  std::vector<TenantKeyInfo> keys = (*store)->List();
  size_t width = 6;
  for (const TenantKeyInfo& k : keys) width = std::max(width, k.tenant.size());
  out << std::left << std::setw(static_cast<int>(width) + 2) << "TENANT" << std::setw(9)
      << "VERSION" << std::setw(11) << "ALGORITHM"
      << "KEY\n";
  for (const TenantKeyInfo& k : keys) {
    const char* kind = k.algorithm == JwtAlgorithm::kHs256 ? "shared secret"
                       : k.has_private_part                ? "private + public"
                                                           : "public only";
    out << std::left << std::setw(static_cast<int>(width) + 2) << k.tenant << std::setw(9)
        << k.version << std::setw(11) << JwtAlgorithmName(k.algorithm) << kind << "\n";
  }
  if (keys.empty()) out << "(no tenants in " << path.string() << ")\n";
  return kExitOk;
}

// NormalizeRealmId accepts a realm id in hex with optional '-' separators, either case,
// and returns 32 lowercase hex characters.
StatusOr<std::string> NormalizeRealmId(const std::string& text) {
  std::string hex;
  for (char c : text) {
    if (c == '-') continue;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return InvalidArgumentError("--realm must be the realm id in hex");
    }
    hex.push_back(c);
  }
  if (hex.size() != 32) return InvalidArgumentError("--realm must be 16 bytes (32 hex digits)");
  return hex;
}

int TokenMint(const std::vector<std::string>& rest, std::ostream& out, std::ostream& err) {
  StatusOr<ParsedArgs> args =
      ParseArgs(rest, {"tenant", "version", "user", "realm", "ttl", "scope", "keys-file"}, {});
  if (!args.ok()) return Fail(err, args.status(), kExitUsage);
  if (!args->positional.empty()) {
    err << "error: unexpected argument " << args->positional[0] << "\n" << kTokenUsage;
    return kExitUsage;
  }
  for (const char* required : {"tenant", "user", "realm"}) {
    if (!args->values.contains(required)) {
      err << "error: token mint needs --" << required << "\n" << kTokenUsage;
      return kExitUsage;
    }
  }
  JwtMintRequest req;
  req.tenant = args->values["tenant"];
  req.user = args->values["user"];
  if (!IsValidTenantName(req.tenant)) {
    err << "error: tenant name must match ^(test-)?[a-zA-Z0-9]+$\n";
    return kExitUsage;
  }
  if (req.user.empty()) {
    err << "error: --user must not be empty\n";
    return kExitUsage;
  }
  StatusOr<std::string> realm = NormalizeRealmId(args->values["realm"]);
  if (!realm.ok()) return Fail(err, realm.status(), kExitUsage);
  req.realm_id_hex = *realm;
  if (args->values.contains("ttl")) {
    StatusOr<int64_t> ttl = ParseInt<int64_t>("ttl", args->values["ttl"]);
    if (!ttl.ok()) return Fail(err, ttl.status(), kExitUsage);
    if (*ttl < 1 || *ttl > kJwtMaxLifetimeSeconds) {
      err << "error: --ttl must be between 1 and 86400 seconds\n";
      return kExitUsage;
    }
    req.lifetime_seconds = *ttl;
  }
  if (args->values.contains("scope")) req.scope = args->values["scope"];

  const std::filesystem::path path = KeysFilePath(*args);
  StatusOr<std::unique_ptr<TenantKeyStore>> store = LoadExisting(path, err);
  if (!store.ok()) return Fail(err, store.status());
  if (args->values.contains("version")) {
    StatusOr<uint64_t> v = ParseInt<uint64_t>("version", args->values["version"]);
    if (!v.ok()) return Fail(err, v.status(), kExitUsage);
    req.version = *v;
  } else {
    std::optional<uint64_t> latest = (*store)->LatestVersion(req.tenant);
    if (!latest) {
      err << "error: no tenant " << req.tenant << " in " << path.string() << "\n";
      return kExitFailure;
    }
    req.version = *latest;
  }
  std::optional<TenantKey> key = (*store)->Find(req.tenant, req.version);
  if (!key) {
    err << "error: no key version " << req.version << " for tenant " << req.tenant << " in "
        << path.string() << "\n";
    return kExitFailure;
  }
  if (!key->can_sign()) {
    err << "error: " << path.string() << " holds only the public key of " << req.tenant << ":"
        << req.version << "; tokens must come from the tenant's issuer\n";
    return kExitFailure;
  }
  req.issued_at = SystemUnixSecondsClock()();
  StatusOr<std::string> token = MintJwt(*key, req);
  if (!token.ok()) return Fail(err, token.status());
  out << *token << "\n";
  return kExitOk;
}

}  // namespace

int RunTenantCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kTenantUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "add") return TenantAddOrRotate(false, rest, out, err);
  if (args[0] == "rotate") return TenantAddOrRotate(true, rest, out, err);
  if (args[0] == "remove") return TenantRemove(rest, out, err);
  if (args[0] == "list") return TenantList(rest, out, err);
  err << "error: unknown tenant command \"" << args[0] << "\"\n" << kTenantUsage;
  return kExitUsage;
}

int RunTenantCommand(const std::vector<std::string>& args) {
  return RunTenantCommand(args, std::cout, std::cerr);
}

int RunTokenCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kTokenUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "mint") {
    return TokenMint(std::vector<std::string>(args.begin() + 1, args.end()), out, err);
  }
  err << "error: unknown token command \"" << args[0] << "\"\n" << kTokenUsage;
  return kExitUsage;
}

int RunTokenCommand(const std::vector<std::string>& args) {
  return RunTokenCommand(args, std::cout, std::cerr);
}

}  // namespace pinvault::api
