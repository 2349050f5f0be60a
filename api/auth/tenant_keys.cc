#include "api/auth/tenant_keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

namespace pinvault::api {

struct TenantKey::Impl {
  JwtAlgorithm algorithm = JwtAlgorithm::kHs256;
  SecretBytes hmac_secret;   // HS256 only
  EVP_PKEY* pkey = nullptr;  // RS256 / EdDSA only; owned
  bool has_private = false;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_PKEY_free(pkey); }
};

namespace {

constexpr size_t kGeneratedHmacSecretBytes = 32;
constexpr int kMinRsaBits = 2048;
constexpr int kGeneratedRsaBits = 2048;
constexpr std::string_view kEnvPrefix = "PINVAULT_TENANT_";
constexpr std::string_view kEnvKeysFile = "PINVAULT_TENANT_KEYS_FILE";

// OpenSSL leaves reasons on a per-thread queue; drop them so they do not leak into later,
// unrelated error reports.
void ClearOpenSslErrors() { ERR_clear_error(); }

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// A PEM passphrase callback that refuses, so an encrypted key never prompts on a terminal.
int NoPassphrase(char*, int, int, void*) { return -1; }

std::string_view TrimAscii(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// ParseVersion parses a decimal u64 (digits only).
std::optional<uint64_t> ParseVersion(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

Status CheckKeyType(JwtAlgorithm algorithm, EVP_PKEY* pkey) {
  switch (algorithm) {
    case JwtAlgorithm::kEdDsa:
      if (!EVP_PKEY_is_a(pkey, "ED25519")) {
        return InvalidArgumentError("EdDSA tenant key is not an Ed25519 key");
      }
      return OkStatus();
    case JwtAlgorithm::kRs256:
      if (!EVP_PKEY_is_a(pkey, "RSA")) {
        return InvalidArgumentError("RS256 tenant key is not an RSA key");
      }
      if (EVP_PKEY_get_bits(pkey) < kMinRsaBits) {
        return InvalidArgumentError("RS256 tenant key is shorter than 2048 bits");
      }
      return OkStatus();
    case JwtAlgorithm::kHs256:
      break;
  }
  return InvalidArgumentError("HS256 keys are secrets, not DER or PEM keys");
}

// Base64Decode decodes standard base64 (padding optional, ASCII whitespace ignored) into
// secure memory.
StatusOr<SecretBytes> Base64Decode(std::string_view text) {
  SecretBytes clean(text.size() + 4);
  size_t n = 0;
  size_t pad = 0;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=';
    if (!ok) return InvalidArgumentError("data is not valid base64");
    if (c == '=') {
      ++pad;
    } else if (pad != 0) {
      return InvalidArgumentError("data is not valid base64");
    }
    clean.RevealMutable()[n++] = static_cast<uint8_t>(c);
  }
  if (pad > 2) return InvalidArgumentError("data is not valid base64");
  if (pad == 0) {
    if (n % 4 == 1) return InvalidArgumentError("data is not valid base64");
    while (n % 4 != 0) {
      clean.RevealMutable()[n++] = '=';
      ++pad;
    }
  } else if (n % 4 != 0) {
    return InvalidArgumentError("data is not valid base64");
  }
  SecretBytes out(n / 4 * 3);
  if (n == 0) return SecretBytes();
  int len = EVP_DecodeBlock(out.RevealMutable().data(), clean.Reveal().data(), static_cast<int>(n));
  if (len < 0 || static_cast<size_t>(len) < pad) {
    ClearOpenSslErrors();
    return InvalidArgumentError("data is not valid base64");
  }
  SecretBytes trimmed = SecretBytes::CopyFrom(out.Reveal().first(static_cast<size_t>(len) - pad));
  return trimmed;
}

// SecretHexDecode decodes hex (either case) into secure memory.
StatusOr<SecretBytes> SecretHexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return InvalidArgumentError("data is not valid hex");
  SecretBytes out(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgumentError("data is not valid hex");
    out.RevealMutable()[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

// WipeJsonStrings overwrites every string in `j` (keys are not secret) before it is freed.
// nlohmann's parser may leave other transient copies on the heap; this is best effort.
void WipeJsonStrings(nlohmann::json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    SecureWipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(s.data()), s.size()));
  } else if (j.is_structured()) {
    for (auto& child : j) WipeJsonStrings(child);
  }
}

struct JsonWiper {
  nlohmann::json* j;
  ~JsonWiper() { WipeJsonStrings(*j); }
};

// KeyFromJsonEntry builds a key from {algorithm, encoding, data} (or a JSON string
// holding that object).
StatusOr<TenantKey> KeyFromJsonEntry(const nlohmann::json& entry, int depth = 0) {
  if (entry.is_string() && depth == 0) {
    const std::string& inner = entry.get_ref<const std::string&>();
    nlohmann::json parsed = nlohmann::json::parse(inner, nullptr, false);
    JsonWiper wiper{&parsed};
    if (parsed.is_discarded() || !parsed.is_object()) {
      return InvalidArgumentError("key entry is a string that is not a JSON key object");
    }
    return KeyFromJsonEntry(parsed, depth + 1);
  }
  if (!entry.is_object()) return InvalidArgumentError("key entry is not a JSON object");
  auto alg_it = entry.find("algorithm");
  auto enc_it = entry.find("encoding");
  auto data_it = entry.find("data");
  if (alg_it == entry.end() || !alg_it->is_string()) {
    return InvalidArgumentError("key entry has no \"algorithm\" string");
  }
  if (enc_it == entry.end() || !enc_it->is_string()) {
    return InvalidArgumentError("key entry has no \"encoding\" string");
  }
  if (data_it == entry.end() || !data_it->is_string()) {
    return InvalidArgumentError("key entry has no \"data\" string");
  }
  for (auto it = entry.begin(); it != entry.end(); ++it) {
    if (it.key() != "algorithm" && it.key() != "encoding" && it.key() != "data") {
      return InvalidArgumentError("key entry has an unknown member \"" + it.key() + "\"");
    }
  }
  ASSIGN_OR_RETURN(JwtAlgorithm algorithm,
                   ParseJwtAlgorithm(alg_it->get_ref<const std::string&>()));
  std::string encoding = Lower(enc_it->get_ref<const std::string&>());
  const std::string& data = data_it->get_ref<const std::string&>();

  if (encoding == "pem") {
    if (algorithm == JwtAlgorithm::kHs256) {
      return InvalidArgumentError("encoding \"pem\" is for RS256/EdDSA keys");
    }
    return TenantKey::FromPem(algorithm, data);
  }
  SecretBytes bytes;
  if (encoding == "hex") {
    ASSIGN_OR_RETURN(bytes, SecretHexDecode(data));
  } else if (encoding == "utf8" || encoding == "utf-8") {
    bytes = SecretBytes::CopyFrom(AsBytes(data));
  } else if (encoding == "base64") {
    ASSIGN_OR_RETURN(bytes, Base64Decode(data));
  } else {
    return InvalidArgumentError("unknown encoding (want hex, utf8, base64 or pem)");
  }
  if (algorithm == JwtAlgorithm::kHs256) return TenantKey::FromHmacSecret(std::move(bytes));
  return TenantKey::FromDer(algorithm, bytes.Reveal());
}

// SecretWriter appends text to a growing SecretBytes.
class SecretWriter {
 public:
  void Append(std::string_view s) { Append(AsBytes(s)); }
  void Append(std::span<const uint8_t> s) {
    if (size_ + s.size() > buf_.size()) {
      SecretBytes bigger(std::max(buf_.size() * 2, size_ + s.size() + 256));
      if (size_ != 0) std::memcpy(bigger.RevealMutable().data(), buf_.Reveal().data(), size_);
      buf_ = std::move(bigger);
    }
    if (!s.empty()) std::memcpy(buf_.RevealMutable().data() + size_, s.data(), s.size());
    size_ += s.size();
  }
  void AppendHex(std::span<const uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (uint8_t b : bytes) {
      uint8_t pair[2] = {static_cast<uint8_t>(kDigits[b >> 4]),
                         static_cast<uint8_t>(kDigits[b & 15])};
      Append(std::span<const uint8_t>(pair, 2));
      SecureWipe(pair);
    }
  }
  SecretBytes Finish() && { return SecretBytes::CopyFrom(buf_.Reveal().first(size_)); }

 private:
  SecretBytes buf_;
  size_t size_ = 0;
};

Status ErrnoError(const std::string& what, const std::filesystem::path& path) {
  int e = errno;
  std::string msg = what + " " + path.string() + ": " + std::strerror(e);
  if (e == ENOENT) return NotFoundError(msg);
  if (e == EACCES || e == EPERM) return PermissionDeniedError(msg);
  return UnavailableError(msg);
}

// ReadWholeFile reads `path` into secure memory (keys files hold secrets).
StatusOr<SecretBytes> ReadWholeFile(const std::filesystem::path& path, mode_t* mode) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open keys file", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = ErrnoError("cannot stat keys file", path);
    ::close(fd);
    return s;
  }
  constexpr off_t kMaxKeysFile = 16 * 1024 * 1024;
  if (!S_ISREG(st.st_mode) || st.st_size > kMaxKeysFile) {
    ::close(fd);
    return InvalidArgumentError("keys file " + path.string() +
                                " is not a regular file of at most 16 MiB");
  }
  *mode = st.st_mode;
  SecretBytes buf(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t r = ::read(fd, buf.RevealMutable().data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      Status s = ErrnoError("cannot read keys file", path);
      ::close(fd);
      return s;
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return SecretBytes::CopyFrom(buf.Reveal().first(got));
}

}  // namespace

// --- names -------------------------------------------------------------------------------

std::string_view JwtAlgorithmName(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::kHs256:
      return "HS256";
    case JwtAlgorithm::kRs256:
      return "RS256";
    case JwtAlgorithm::kEdDsa:
      return "EdDSA";
  }
  return "unknown";
}

StatusOr<JwtAlgorithm> ParseJwtAlgorithm(std::string_view name) {
  if (name == "HS256" || name == "HmacSha256") return JwtAlgorithm::kHs256;
  if (name == "RS256" || name == "RsaPkcs1Sha256") return JwtAlgorithm::kRs256;
  if (name == "EdDSA" || name == "Edwards25519") return JwtAlgorithm::kEdDsa;
  return InvalidArgumentError("unknown key algorithm (want HS256, RS256 or EdDSA)");
}

bool IsValidTenantName(std::string_view name) {
  if (name.substr(0, 5) == "test-") name.remove_prefix(5);
  if (name.empty()) return false;
  for (char c : name) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) return false;
  }
  return true;
}

// --- TenantKey ---------------------------------------------------------------------------

StatusOr<TenantKey> TenantKey::FromHmacSecret(SecretBytes secret) {
  if (secret.empty()) return InvalidArgumentError("HS256 secret is empty");
  auto impl = std::make_shared<Impl>();
  impl->algorithm = JwtAlgorithm::kHs256;
  impl->hmac_secret = std::move(secret);
  return TenantKey(std::move(impl));
}

StatusOr<TenantKey> TenantKey::FromDer(JwtAlgorithm algorithm, ByteView der) {
  if (algorithm == JwtAlgorithm::kHs256) {
    return InvalidArgumentError("HS256 keys are secrets, not DER keys");
  }
  if (der.empty() || der.size() > static_cast<size_t>(std::numeric_limits<long>::max())) {
    return InvalidArgumentError("key DER is empty");
  }
  auto impl = std::make_shared<Impl>();
  impl->algorithm = algorithm;
  const unsigned char* p = der.data();
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (pkey != nullptr && p == der.data() + der.size()) {
    impl->pkey = pkey;
    impl->has_private = false;
  } else {
    EVP_PKEY_free(pkey);
    ClearOpenSslErrors();
    p = der.data();
    pkey = d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size()));
    if (pkey == nullptr || p != der.data() + der.size()) {
      EVP_PKEY_free(pkey);
      ClearOpenSslErrors();
      return InvalidArgumentError(
          "key DER is neither a SubjectPublicKeyInfo nor a PKCS#8 private key");
    }
    impl->pkey = pkey;
    impl->has_private = true;
  }
  RETURN_IF_ERROR(CheckKeyType(algorithm, impl->pkey));
  return TenantKey(std::move(impl));
}

StatusOr<TenantKey> TenantKey::FromPem(JwtAlgorithm algorithm, std::string_view pem) {
  if (algorithm == JwtAlgorithm::kHs256) {
    return InvalidArgumentError("HS256 keys are secrets, not PEM keys");
  }
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgumentError("key PEM is too large");
  }
  auto impl = std::make_shared<Impl>();
  impl->algorithm = algorithm;
  bool is_private = pem.find("PRIVATE KEY-----") != std::string_view::npos;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return InternalError("BIO_new_mem_buf failed");
  EVP_PKEY* pkey = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr)
                              : PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr);
  if (pkey == nullptr) {
    ClearOpenSslErrors();
    return InvalidArgumentError(
        "key PEM is neither a PUBLIC KEY nor an unencrypted PRIVATE KEY block");
  }
  impl->pkey = pkey;
  impl->has_private = is_private;
  RETURN_IF_ERROR(CheckKeyType(algorithm, impl->pkey));
  return TenantKey(std::move(impl));
}

StatusOr<TenantKey> TenantKey::Generate(JwtAlgorithm algorithm) {
  if (algorithm == JwtAlgorithm::kHs256) {
    return FromHmacSecret(SecretBytes::Random(kGeneratedHmacSecretBytes));
  }
  EVP_PKEY* pkey =
      algorithm == JwtAlgorithm::kEdDsa
          ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
          : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(kGeneratedRsaBits));
  if (pkey == nullptr) {
    ClearOpenSslErrors();
    return InternalError("key generation failed");
  }
  auto impl = std::make_shared<Impl>();
  impl->algorithm = algorithm;
  impl->pkey = pkey;
  impl->has_private = true;
  return TenantKey(std::move(impl));
}

JwtAlgorithm TenantKey::algorithm() const { return impl_->algorithm; }

bool TenantKey::can_sign() const {
  return impl_->algorithm == JwtAlgorithm::kHs256 || impl_->has_private;
}

TenantKey TenantKey::PublicOnly() const {
  if (impl_->algorithm == JwtAlgorithm::kHs256 || !impl_->has_private) return *this;
  StatusOr<Bytes> der = PublicKeyDer();
  if (der.ok()) {
    StatusOr<TenantKey> pub = FromDer(impl_->algorithm, *der);
    if (pub.ok()) return *std::move(pub);
  }
  // Re-encoding our own valid key cannot fail short of memory exhaustion; keep the key.
  return *this;
}

StatusOr<Bytes> TenantKey::PublicKeyDer() const {
  if (impl_->algorithm == JwtAlgorithm::kHs256) {
    return FailedPreconditionError("HS256 keys have no public key");
  }
  int len = i2d_PUBKEY(impl_->pkey, nullptr);
  if (len <= 0) {
    ClearOpenSslErrors();
    return InternalError("i2d_PUBKEY failed");
  }
  Bytes out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  if (i2d_PUBKEY(impl_->pkey, &p) != len) {
    ClearOpenSslErrors();
    return InternalError("i2d_PUBKEY failed");
  }
  return out;
}

StatusOr<std::string> TenantKey::PublicKeyPem() const {
  if (impl_->algorithm == JwtAlgorithm::kHs256) {
    return FailedPreconditionError("HS256 keys have no public key");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), impl_->pkey) != 1) {
    ClearOpenSslErrors();
    return InternalError("PEM_write_bio_PUBKEY failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return InternalError("PEM_write_bio_PUBKEY wrote nothing");
  return std::string(data, static_cast<size_t>(len));
}

StatusOr<SecretBytes> TenantKey::ExportSecret() const {
  if (impl_->algorithm == JwtAlgorithm::kHs256) return impl_->hmac_secret.Clone();
  if (!impl_->has_private) return FailedPreconditionError("key holds only a public key");
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(impl_->pkey);
  if (p8 == nullptr) {
    ClearOpenSslErrors();
    return InternalError("EVP_PKEY2PKCS8 failed");
  }
  int len = i2d_PKCS8_PRIV_KEY_INFO(p8, nullptr);
  if (len <= 0) {
    PKCS8_PRIV_KEY_INFO_free(p8);
    ClearOpenSslErrors();
    return InternalError("i2d_PKCS8_PRIV_KEY_INFO failed");
  }
  SecretBytes out(static_cast<size_t>(len));
  unsigned char* p = out.RevealMutable().data();
  int written = i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (written != len) {
    ClearOpenSslErrors();
    return InternalError("i2d_PKCS8_PRIV_KEY_INFO failed");
  }
  return out;
}

StatusOr<Bytes> TenantKey::Sign(ByteView signing_input) const {
  if (!can_sign()) return FailedPreconditionError("key holds only a public key; cannot sign");
  if (impl_->algorithm == JwtAlgorithm::kHs256) {
    Bytes tag(EVP_MAX_MD_SIZE);
    size_t tag_len = 0;
    std::span<const uint8_t> secret = impl_->hmac_secret.Reveal();
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                  signing_input.data(), signing_input.size(), tag.data(), tag.size(),
                  &tag_len) == nullptr) {
      ClearOpenSslErrors();
      return InternalError("HMAC-SHA256 failed");
    }
    tag.resize(tag_len);
    return tag;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md = impl_->algorithm == JwtAlgorithm::kRs256 ? EVP_sha256() : nullptr;
  size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, impl_->pkey) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, signing_input.data(), signing_input.size()) !=
          1) {
    ClearOpenSslErrors();
    return InternalError("signature initialisation failed");
  }
  Bytes sig(sig_len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &sig_len, signing_input.data(), signing_input.size()) !=
      1) {
    ClearOpenSslErrors();
    return InternalError("signing failed");
  }
  sig.resize(sig_len);
  return sig;
}

Status TenantKey::Verify(ByteView signing_input, ByteView signature) const {
  if (impl_->algorithm == JwtAlgorithm::kHs256) {
    StatusOr<Bytes> expected = Sign(signing_input);
    if (!expected.ok()) return expected.status();
    if (expected->size() != signature.size() ||
        CRYPTO_memcmp(expected->data(), signature.data(), signature.size()) != 0) {
      return UnauthenticatedError("signature verification failed");
    }
    return OkStatus();
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md = impl_->algorithm == JwtAlgorithm::kRs256 ? EVP_sha256() : nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, impl_->pkey) != 1) {
    ClearOpenSslErrors();
    return InternalError("signature verification could not start");
  }
  int ok = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), signing_input.data(),
                            signing_input.size());
  ClearOpenSslErrors();
  if (ok != 1) return UnauthenticatedError("signature verification failed");
  return OkStatus();
}

// --- TenantKeyStore ----------------------------------------------------------------------

StatusOr<std::unique_ptr<TenantKeyStore>> TenantKeyStore::ParseJson(std::string_view json) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception&) {
    return InvalidArgumentError("keys file is not valid JSON");
  }
  JsonWiper wiper{&doc};
  if (doc.is_discarded()) return InvalidArgumentError("keys file is not valid JSON");
  if (!doc.is_object()) return InvalidArgumentError("keys file is not a JSON object");
  auto store = std::make_unique<TenantKeyStore>();
  auto tenants_it = doc.find("tenants");
  if (tenants_it == doc.end()) {
    return InvalidArgumentError("keys file has no \"tenants\" object");
  }
  if (!tenants_it->is_object()) {
    return InvalidArgumentError("keys file's \"tenants\" is not an object");
  }
  for (auto t = tenants_it->begin(); t != tenants_it->end(); ++t) {
    const std::string& tenant = t.key();
    if (!IsValidTenantName(tenant)) {
      return InvalidArgumentError("keys file: tenant name \"" + tenant +
                                  "\" does not match ^(test-)?[a-zA-Z0-9]+$");
    }
    if (!t->is_object()) {
      return InvalidArgumentError("keys file: tenant " + tenant + " is not an object");
    }
    for (auto v = t->begin(); v != t->end(); ++v) {
      std::optional<uint64_t> version = ParseVersion(v.key());
      if (!version) {
        return InvalidArgumentError("keys file: tenant " + tenant + " has version \"" + v.key() +
                                    "\" that is not a decimal u64");
      }
      StatusOr<TenantKey> key = KeyFromJsonEntry(*v);
      if (!key.ok()) {
        return key.status().WithContext("keys file: tenant " + tenant + " version " +
                                        std::to_string(*version));
      }
      RETURN_IF_ERROR(store->Add(tenant, *version, *std::move(key)));
    }
  }
  return store;
}

StatusOr<std::unique_ptr<TenantKeyStore>> TenantKeyStore::LoadFile(
    const std::filesystem::path& path, std::vector<std::string>* warnings) {
  mode_t mode = 0;
  ASSIGN_OR_RETURN(SecretBytes contents, ReadWholeFile(path, &mode));
  if ((mode & 077) != 0 && warnings != nullptr) {
    char octal[8];
    std::snprintf(octal, sizeof(octal), "%04o", static_cast<unsigned>(mode & 07777));
    warnings->push_back("keys file " + path.string() + " is readable by group or others (mode " +
                        octal + "); it holds secrets, run chmod 600 on it");
  }
  std::span<const uint8_t> bytes = contents.Reveal();
  StatusOr<std::unique_ptr<TenantKeyStore>> store =
      ParseJson(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!store.ok()) return store.status().WithContext(path.string());
  return store;
}

Status TenantKeyStore::AddFromEnvironment(const char* const* envp) {
  if (envp == nullptr) return OkStatus();
  for (const char* const* e = envp; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.substr(0, kEnvPrefix.size()) != kEnvPrefix) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    std::string_view value = entry.substr(eq + 1);
    if (name == kEnvKeysFile) continue;
    std::string_view rest = name.substr(kEnvPrefix.size());
    size_t underscore = rest.rfind('_');
    std::string var(name);
    if (underscore == std::string_view::npos) {
      return InvalidArgumentError("environment variable " + var +
                                  " is not PINVAULT_TENANT_<NAME>_<VERSION>");
    }
    std::string tenant(rest.substr(0, underscore));
    if (tenant.substr(0, 5) == "test_") tenant[4] = '-';
    std::optional<uint64_t> version = ParseVersion(rest.substr(underscore + 1));
    if (!version || !IsValidTenantName(tenant)) {
      return InvalidArgumentError("environment variable " + var +
                                  " is not PINVAULT_TENANT_<NAME>_<VERSION>");
    }
    StatusOr<TenantKey> key = InternalError("unset");
    std::string_view trimmed = TrimAscii(value);
    if (!trimmed.empty() && trimmed.front() == '{') {
      nlohmann::json entry_json;
      try {
        entry_json = nlohmann::json::parse(trimmed, nullptr, /*allow_exceptions=*/false);
      } catch (const std::exception&) {
        entry_json = nlohmann::json(nlohmann::json::value_t::discarded);
      }
      JsonWiper wiper{&entry_json};
      if (entry_json.is_discarded()) {
        return InvalidArgumentError("environment variable " + var + " is not valid JSON");
      }
      key = KeyFromJsonEntry(entry_json);
    } else {
      key = TenantKey::FromHmacSecret(SecretBytes::CopyFrom(AsBytes(value)));
    }
    if (!key.ok()) return key.status().WithContext("environment variable " + var);
    RETURN_IF_ERROR(Add(tenant, *version, *std::move(key)));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<TenantKeyStore>> TenantKeyStore::LoadConfigured(
    const std::filesystem::path& keys_file, const char* const* envp,
    std::vector<std::string>* warnings) {
  std::filesystem::path file = keys_file;
  if (file.empty() && envp != nullptr) {
    for (const char* const* e = envp; *e != nullptr; ++e) {
      std::string_view entry(*e);
      if (entry.substr(0, kEnvKeysFile.size() + 1) == std::string(kEnvKeysFile) + "=") {
        file = std::string(entry.substr(kEnvKeysFile.size() + 1));
      }
    }
  }
  std::unique_ptr<TenantKeyStore> store;
  if (!file.empty()) {
    ASSIGN_OR_RETURN(store, LoadFile(file, warnings));
  } else {
    store = std::make_unique<TenantKeyStore>();
  }
  RETURN_IF_ERROR(store->AddFromEnvironment(envp));
  return store;
}

Status TenantKeyStore::Add(std::string_view tenant, uint64_t version, TenantKey key) {
  if (!IsValidTenantName(tenant)) {
    return InvalidArgumentError("tenant name does not match ^(test-)?[a-zA-Z0-9]+$");
  }
  std::unique_lock lock(mu_);
  auto [it, inserted] = keys_.emplace(Key(std::string(tenant), version), std::move(key));
  if (!inserted) {
    return AlreadyExistsError("tenant " + std::string(tenant) + " already has key version " +
                              std::to_string(version));
  }
  ++generation_;
  return OkStatus();
}

Status TenantKeyStore::Remove(std::string_view tenant, uint64_t version) {
  std::unique_lock lock(mu_);
  auto it = keys_.find(Key(std::string(tenant), version));
  if (it == keys_.end()) {
    return NotFoundError("tenant " + std::string(tenant) + " has no key version " +
                         std::to_string(version));
  }
  keys_.erase(it);
  ++generation_;
  return OkStatus();
}

void TenantKeyStore::ReplaceAllFrom(const TenantKeyStore& other) {
  if (&other == this) return;
  std::map<Key, TenantKey> copy;
  {
    std::shared_lock lock(other.mu_);
    copy = other.keys_;
  }
  std::unique_lock lock(mu_);
  keys_ = std::move(copy);
  ++generation_;
}

std::optional<TenantKey> TenantKeyStore::Find(std::string_view tenant, uint64_t version) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(Key(std::string(tenant), version));
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

std::optional<uint64_t> TenantKeyStore::LatestVersion(std::string_view tenant) const {
  std::shared_lock lock(mu_);
  std::optional<uint64_t> latest;
  for (auto it = keys_.lower_bound(Key(std::string(tenant), 0));
       it != keys_.end() && it->first.first == tenant; ++it) {
    latest = it->first.second;
  }
  return latest;
}

std::vector<TenantKeyInfo> TenantKeyStore::List() const {
  std::shared_lock lock(mu_);
  std::vector<TenantKeyInfo> out;
  out.reserve(keys_.size());
  for (const auto& [k, key] : keys_) {
    TenantKeyInfo info;
    info.tenant = k.first;
    info.version = k.second;
    info.algorithm = key.algorithm();
    info.has_private_part = key.algorithm() != JwtAlgorithm::kHs256 && key.can_sign();
    out.push_back(std::move(info));
  }
  return out;
}

size_t TenantKeyStore::size() const {
  std::shared_lock lock(mu_);
  return keys_.size();
}

uint64_t TenantKeyStore::generation() const {
  std::shared_lock lock(mu_);
  return generation_;
}

StatusOr<SecretBytes> TenantKeyStore::ToJson() const {
  std::map<Key, TenantKey> copy;
  {
    std::shared_lock lock(mu_);
    copy = keys_;
  }
  SecretWriter w;
  w.Append("{\n  \"tenants\": {");
  std::string current_tenant;
  bool first_tenant = true;
  bool first_version = true;
  for (const auto& [k, key] : copy) {
    // Tenant names are [A-Za-z0-9-] and versions digits: nothing needs JSON escaping.
    if (first_tenant || k.first != current_tenant) {
      if (!first_tenant) w.Append("\n    }");
      w.Append(first_tenant ? "\n    \"" : ",\n    \"");
      w.Append(k.first);
      w.Append("\": {");
      current_tenant = k.first;
      first_tenant = false;
      first_version = true;
    }
    w.Append(first_version ? "\n      \"" : ",\n      \"");
    first_version = false;
    w.Append(std::to_string(k.second));
    w.Append("\": {\"algorithm\": \"");
    w.Append(JwtAlgorithmName(key.algorithm()));
    w.Append("\", \"encoding\": \"hex\", \"data\": \"");
    if (key.can_sign()) {
      ASSIGN_OR_RETURN(SecretBytes secret, key.ExportSecret());
      w.AppendHex(secret.Reveal());
    } else {
      ASSIGN_OR_RETURN(Bytes der, key.PublicKeyDer());
      w.AppendHex(der);
    }
    w.Append("\"}");
  }
  if (!first_tenant) w.Append("\n    }");
  w.Append(first_tenant ? "}\n}\n" : "\n  }\n}\n");
  return std::move(w).Finish();
}

Status TenantKeyStore::SaveFile(const std::filesystem::path& path) const {
  ASSIGN_OR_RETURN(SecretBytes json, ToJson());
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return ErrnoError("cannot create temporary file in", dir);
  std::filesystem::path tmp = tmpl;
  auto fail = [&](const std::string& what) {
    Status s = ErrnoError(what, tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (::fchmod(fd, 0600) != 0) return fail("cannot chmod");
  std::span<const uint8_t> bytes = json.Reveal();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return fail("cannot write");
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    Status s = ErrnoError("cannot close", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = ErrnoError("cannot rename temporary file onto", path);
    ::unlink(tmp.c_str());
    return s;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) return ErrnoError("cannot fsync directory", dir);
  }
  return OkStatus();
}

}  // namespace pinvault::api
