// Tenant keys: the keys that JWT auth tokens are verified with, one per (tenant, version).
//
// A tenant may hold several key versions at once so that it can rotate keys: tokens name
// their key in the header (`kid: "<tenant>:<version>"`). Keys come from a JSON keys file
// or from the environment, never from the command line.
//
// Keys file format (UTF-8 JSON; the file should be mode 0600):
//
//   {"tenants": {
//      "acme": {
//        "1": {"algorithm": "HS256", "encoding": "hex",  "data": "<hex secret>"},
//        "2": {"algorithm": "EdDSA", "encoding": "pem",  "data": "-----BEGIN PUBLIC KEY-----..."},
//        "3": {"algorithm": "RS256", "encoding": "base64", "data": "<SPKI or PKCS#8 DER>"}}}}
//
// - algorithm: "HS256" | "RS256" | "EdDSA", or the Juicebox software-realm spellings
//   "HmacSha256" | "RsaPkcs1Sha256" | "Edwards25519".
// - encoding: "hex" | "utf8" | "base64" | "pem" (case-insensitive, so the software realm's
//   "Hex" and "UTF8" work). For HS256 the decoded bytes are the HMAC secret. For RS256 and
//   EdDSA the decoded bytes are a DER public key (SubjectPublicKeyInfo, "PKIX") or a DER
//   PKCS#8 private key; "pem" takes a PUBLIC KEY or PRIVATE KEY PEM block. A private key
//   lets `pinvault-admin token mint` sign; the realm itself only needs the public key.
// - A version value may also be a JSON string holding such an object (the software realm
//   stores its secrets that way).
// - Tenant names match ^(test-)?[a-zA-Z0-9]+$; versions are decimal u64.
//
// Environment (read by AddFromEnvironment / LoadConfigured):
// - PINVAULT_TENANT_KEYS_FILE=<path>: a keys file as above.
// - PINVAULT_TENANT_<NAME>_<VERSION>=<value>: one key. NAME is the tenant name as written
//   (case preserved; a leading "test_" stands for "test-"), VERSION decimal. The value is a
//   JSON object as above, or else raw UTF-8 bytes meaning an HS256 secret.
#ifndef PINVAULT_API_AUTH_TENANT_KEYS_H_
#define PINVAULT_API_AUTH_TENANT_KEYS_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vault/bytes.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::api {

// JwtAlgorithm: the JWS algorithms a tenant key can have.
enum class JwtAlgorithm {
  kHs256,  // HMAC-SHA256 with a shared secret
  kRs256,  // RSASSA-PKCS1-v1_5 with SHA-256
  kEdDsa,  // Ed25519
};

// JwtAlgorithmName returns the JWS spelling ("HS256", "RS256", "EdDSA").
std::string_view JwtAlgorithmName(JwtAlgorithm algorithm);

// ParseJwtAlgorithm accepts the JWS spellings (exact case) and the Juicebox software-realm
// spellings ("HmacSha256", "RsaPkcs1Sha256", "Edwards25519"); InvalidArgument otherwise.
StatusOr<JwtAlgorithm> ParseJwtAlgorithm(std::string_view name);

// IsValidTenantName is true iff `name` matches ^(test-)?[a-zA-Z0-9]+$.
bool IsValidTenantName(std::string_view name);

// TenantKey: one key of one algorithm. Cheap to copy (the key material is shared and
// immutable); safe to use from many threads at once.
class TenantKey {
 public:
  // FromHmacSecret makes an HS256 key. InvalidArgument if `secret` is empty.
  static StatusOr<TenantKey> FromHmacSecret(SecretBytes secret);

  // FromDer parses an RS256/EdDSA key from DER: a SubjectPublicKeyInfo public key or a
  // PKCS#8 private key. InvalidArgument if it does not parse, if the key type does not match
  // `algorithm` (RSA for RS256, Ed25519 for EdDSA), if an RSA modulus is under 2048 bits,
  // or if `algorithm` is HS256.
  static StatusOr<TenantKey> FromDer(JwtAlgorithm algorithm, ByteView der);

  // FromPem is FromDer for a "PUBLIC KEY" or "PRIVATE KEY" PEM block.
  static StatusOr<TenantKey> FromPem(JwtAlgorithm algorithm, std::string_view pem);

  // Generate makes a fresh key: 32 random bytes for HS256, a 2048-bit RSA key for RS256,
  // an Ed25519 key for EdDSA (asymmetric keys include the private half). Internal on an
  // OpenSSL failure.
  static StatusOr<TenantKey> Generate(JwtAlgorithm algorithm);

  JwtAlgorithm algorithm() const;

  // can_sign is true for HS256 keys and for RS256/EdDSA keys holding the private half.
  bool can_sign() const;

  // PublicOnly returns this key without its private half (HS256 keys are returned as is).
  TenantKey PublicOnly() const;

  // PublicKeyDer returns the SubjectPublicKeyInfo DER; FailedPrecondition for HS256.
  StatusOr<Bytes> PublicKeyDer() const;

  // PublicKeyPem returns the "PUBLIC KEY" PEM block; FailedPrecondition for HS256.
  StatusOr<std::string> PublicKeyPem() const;

  // ExportSecret returns the HS256 secret, or the PKCS#8 DER of an asymmetric private key.
  // FailedPrecondition if there is no secret half. Used to write keys files.
  StatusOr<SecretBytes> ExportSecret() const;

  // Sign returns the raw JWS signature of `signing_input` (HMAC tag, PKCS#1 v1.5 signature
  // or 64-byte Ed25519 signature). FailedPrecondition if !can_sign(); Internal on an OpenSSL
  // failure.
  StatusOr<Bytes> Sign(ByteView signing_input) const;

  // Verify checks a raw JWS signature; OK if it is valid, Unauthenticated otherwise (the
  // HMAC comparison is constant-time).
  Status Verify(ByteView signing_input, ByteView signature) const;

  struct Impl;

 private:
  explicit TenantKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// TenantKeyInfo: what may be shown about a key (no key material).
struct TenantKeyInfo {
  std::string tenant;
  uint64_t version = 0;
  JwtAlgorithm algorithm = JwtAlgorithm::kHs256;
  bool has_private_part = false;  // asymmetric key stored with its private half
};

// TenantKeyStore: the keys of all tenants, by (tenant, version).
//
// Thread-safe: lookups take a shared lock, changes an exclusive one, so a running server
// can swap in a reloaded key set. generation() changes on every change, which lets caches
// of verified tokens notice that keys were removed or replaced.
class TenantKeyStore {
 public:
  TenantKeyStore() = default;
  TenantKeyStore(const TenantKeyStore&) = delete;
  TenantKeyStore& operator=(const TenantKeyStore&) = delete;

  // ParseJson reads a keys file's contents (format above). InvalidArgument naming the
  // tenant/version of the first bad entry (never its key material).
  static StatusOr<std::unique_ptr<TenantKeyStore>> ParseJson(std::string_view json);

  // LoadFile reads and parses a keys file. NotFound if it does not exist. If the file is
  // readable by group or others, a warning is appended to `warnings` (may be null).
  static StatusOr<std::unique_ptr<TenantKeyStore>> LoadFile(const std::filesystem::path& path,
                                                            std::vector<std::string>* warnings);

  // LoadConfigured builds the server's key set: the keys file `keys_file` if non-empty,
  // else the file named by PINVAULT_TENANT_KEYS_FILE in `envp` if set, plus every
  // PINVAULT_TENANT_<NAME>_<VERSION> variable in `envp` (a null-terminated environ-style
  // array; pass `environ`). A key defined twice is AlreadyExists.
  static StatusOr<std::unique_ptr<TenantKeyStore>> LoadConfigured(
      const std::filesystem::path& keys_file, const char* const* envp,
      std::vector<std::string>* warnings);

  // AddFromEnvironment adds the PINVAULT_TENANT_<NAME>_<VERSION> keys of `envp`.
  // InvalidArgument naming the variable (not its value) if one is malformed.
  Status AddFromEnvironment(const char* const* envp);

  // Add stores `key` as (tenant, version). InvalidArgument for a bad tenant name,
  // AlreadyExists if that version is present.
  Status Add(std::string_view tenant, uint64_t version, TenantKey key);

  // Remove drops (tenant, version). NotFound if absent.
  Status Remove(std::string_view tenant, uint64_t version);

  // ReplaceAllFrom makes this store hold exactly the keys of `other` (a reload).
  void ReplaceAllFrom(const TenantKeyStore& other);

  // Find returns the key for (tenant, version), or nullopt.
  std::optional<TenantKey> Find(std::string_view tenant, uint64_t version) const;

  // LatestVersion returns the highest version of `tenant`, or nullopt if it has none.
  std::optional<uint64_t> LatestVersion(std::string_view tenant) const;

  // List describes every key, sorted by tenant then version.
  std::vector<TenantKeyInfo> List() const;

  // size is the number of (tenant, version) keys.
  size_t size() const;

  // generation increases on every Add, Remove or ReplaceAllFrom.
  uint64_t generation() const;

  // ToJson serialises the store in the keys-file format (HS256 secrets as hex, asymmetric
  // keys as PEM: PRIVATE KEY when held, else PUBLIC KEY). The result holds secrets, hence
  // SecretBytes.
  StatusOr<SecretBytes> ToJson() const;

  // SaveFile writes ToJson() to `path` atomically: a temporary file in the same directory
  // created with mode 0600, written, fsynced, renamed over `path`, then the directory
  // fsynced. On failure `path` is unchanged. Not synchronised with other writers.
  Status SaveFile(const std::filesystem::path& path) const;

 private:
  using Key = std::pair<std::string, uint64_t>;
  mutable std::shared_mutex mu_;
  std::map<Key, TenantKey> keys_;  // guarded by mu_
  uint64_t generation_ = 0;        // guarded by mu_
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_AUTH_TENANT_KEYS_H_
