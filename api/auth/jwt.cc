#include "api/auth/jwt.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace pinvault::api {
namespace {

using Json = nlohmann::json;

Status Fail(std::string_view what) { return UnauthenticatedError("jwt: " + std::string(what)); }

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

std::string UpperAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// ParseJsonObject parses `bytes` as one JSON object, rejecting duplicate top-level members
// (which different parsers resolve differently). Never throws.
StatusOr<Json> ParseJsonObject(const Bytes& bytes, std::string_view part) {
  std::set<std::string> seen;
  bool duplicate = false;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1) {
      if (parsed.is_string() && !seen.insert(parsed.get<std::string>()).second) {
        duplicate = true;
      }
    }
    return true;
  };
  Json doc;
  try {
    doc = Json::parse(bytes.begin(), bytes.end(), cb, /*allow_exceptions=*/false);
  } catch (const std::exception&) {
    return Fail(std::string(part) + " is not valid JSON");
  }
  if (doc.is_discarded()) return Fail(std::string(part) + " is not valid JSON");
  if (!doc.is_object()) return Fail(std::string(part) + " is not a JSON object");
  if (duplicate) return Fail(std::string(part) + " has a duplicate member");
  return doc;
}

// Member returns the member `name`, or null if it is absent or JSON null (serde reads an
// explicit null as an absent optional claim).
const Json* Member(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// NumericDate reads a required or optional timestamp claim as a non-negative integer.
StatusOr<std::optional<int64_t>> NumericDate(const Json& claims, const char* name) {
  const Json* v = Member(claims, name);
  if (v == nullptr) return std::optional<int64_t>();
  if (!v->is_number_unsigned()) {
    return Fail(std::string(name) + " is not a non-negative integer");
  }
  uint64_t u = v->get<uint64_t>();
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 2)) {
    return Fail(std::string(name) + " is out of range");
  }
  return std::optional<int64_t>(static_cast<int64_t>(u));
}

// ParseKid splits "<tenant>:<version>" at the first ':'.
bool ParseKid(std::string_view kid, std::string* tenant, uint64_t* version) {
  size_t colon = kid.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view t = kid.substr(0, colon);
  std::string_view v = kid.substr(colon + 1);
  if (!IsValidTenantName(t) || v.empty() || v.size() > 20) return false;
  uint64_t value = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *tenant = std::string(t);
  *version = value;
  return true;
}

std::string_view TrimWhitespace(std::string_view s) {
  auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

UnixSecondsClock SystemUnixSecondsClock() {
  return [] {
    return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
  };
}

std::string Base64UrlEncode(ByteView data) {
  if (data.empty()) return std::string();
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

StatusOr<Bytes> Base64UrlDecode(std::string_view text) {
  if (text.empty()) return Bytes();
  if (text.size() % 4 == 1 || text.size() > (1u << 20)) {
    return InvalidArgumentError("invalid base64url length");
  }
  std::string std64;
  std64.reserve(text.size() + 3);
  for (char c : text) {
    if (!IsBase64UrlChar(c)) return InvalidArgumentError("invalid base64url character");
    std64.push_back(c == '-' ? '+' : c == '_' ? '/' : c);
  }
  size_t pad = (4 - text.size() % 4) % 4;
  std64.append(pad, '=');
  Bytes out(std64.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(std64.data()),
                          static_cast<int>(std64.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) {
    ERR_clear_error();
    return InvalidArgumentError("invalid base64url");
  }
  out.resize(static_cast<size_t>(n) - pad);
  // Canonical form only: the unused bits of the last character must be zero.
  if (Base64UrlEncode(out) != text) return InvalidArgumentError("non-canonical base64url");
  return out;
}

// --- JwtValidator ------------------------------------------------------------------------

size_t JwtValidator::DigestHash::operator()(const Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof(h));
  return h;
}

JwtValidator::JwtValidator(std::shared_ptr<const TenantKeyStore> keys, UnixSecondsClock clock,
                           Options options)
    : keys_(std::move(keys)),
      clock_(clock ? std::move(clock) : SystemUnixSecondsClock()),
      options_(options) {}

StatusOr<VerifiedClaims> JwtValidator::ValidateUncached(std::string_view token,
                                                        ByteView realm_id) const {
  if (realm_id.size() != 16) return InternalError("realm id must be 16 bytes");
  if (keys_ == nullptr) return InternalError("no tenant key store");
  if (token.empty()) return Fail("empty token");
  if (token.size() > kMaxJwtLength) return Fail("token longer than 1000 characters");

  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Fail("token is not three dot-separated parts");
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view claims_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view sig_b64 = token.substr(dot2 + 1);

  // Header.
  StatusOr<Bytes> header_bytes = Base64UrlDecode(header_b64);
  if (!header_bytes.ok()) return Fail("header is not valid base64url");
  ASSIGN_OR_RETURN(Json header, ParseJsonObject(*header_bytes, "header"));

  if (const Json* typ = Member(header, "typ")) {
    if (!typ->is_string()) return Fail("typ is not a string");
    std::string upper = UpperAscii(typ->get_ref<const std::string&>());
    if (upper != "JWT" && !(upper.size() > 4 && upper.ends_with("+JWT"))) {
      return Fail("typ is not JWT");
    }
  }
  if (header.contains("crit")) return Fail("critical header extensions are not supported");
  const Json* alg_json = Member(header, "alg");
  if (alg_json == nullptr || !alg_json->is_string()) return Fail("missing alg");
  const std::string& alg_name = alg_json->get_ref<const std::string&>();
  JwtAlgorithm alg;
  if (alg_name == "HS256") {
    alg = JwtAlgorithm::kHs256;
  } else if (alg_name == "RS256") {
    alg = JwtAlgorithm::kRs256;
  } else if (alg_name == "EdDSA") {
    alg = JwtAlgorithm::kEdDsa;
  } else if (UpperAscii(alg_name) == "NONE") {
    return Fail("alg \"none\" (unsigned token) is not accepted");
  } else {
    return Fail("unsupported alg (want HS256, RS256 or EdDSA)");
  }

  const Json* kid_json = Member(header, "kid");
  if (kid_json == nullptr) return Fail("missing kid");
  std::string tenant;
  uint64_t version = 0;
  if (!kid_json->is_string() ||
      !ParseKid(kid_json->get_ref<const std::string&>(), &tenant, &version)) {
    return Fail("kid is not \"<tenant>:<version>\"");
  }

  // Key.
  std::optional<TenantKey> key = keys_->Find(tenant, version);
  if (!key) {
    if (!keys_->LatestVersion(tenant).has_value()) return Fail("unknown tenant " + tenant);
    return Fail("unknown key version " + std::to_string(version) + " for tenant " + tenant);
  }
  if (key->algorithm() != alg) {
    return Fail("alg " + alg_name + " does not match the key's algorithm " +
                std::string(JwtAlgorithmName(key->algorithm())));
  }

  // Signature.
  StatusOr<Bytes> signature = Base64UrlDecode(sig_b64);
  if (!signature.ok()) return Fail("signature is not valid base64url");
  Status verified = key->Verify(AsBytes(token.substr(0, dot2)), *signature);
  if (!verified.ok()) {
    if (verified.code() == StatusCode::kUnauthenticated) return Fail("bad signature");
    return verified;
  }

  // Claims.
  StatusOr<Bytes> claims_bytes = Base64UrlDecode(claims_b64);
  if (!claims_bytes.ok()) return Fail("claims set is not valid base64url");
  ASSIGN_OR_RETURN(Json claims, ParseJsonObject(*claims_bytes, "claims set"));

  ASSIGN_OR_RETURN(std::optional<int64_t> exp, NumericDate(claims, "exp"));
  ASSIGN_OR_RETURN(std::optional<int64_t> nbf, NumericDate(claims, "nbf"));
  ASSIGN_OR_RETURN(std::optional<int64_t> iat, NumericDate(claims, "iat"));
  if (!exp) return Fail("missing exp");
  if (!nbf) return Fail("missing nbf");
  if (*exp < *nbf) return Fail("exp is before nbf");
  if (*exp - *nbf > kJwtMaxLifetimeSeconds) {
    return Fail("lifetime (exp - nbf) is longer than 24 hours");
  }
  const int64_t now = clock_();
  if (*exp < now - kJwtClockLeewaySeconds) return Fail("token expired");
  if (*nbf > now + kJwtClockLeewaySeconds) return Fail("token not yet valid (nbf)");
  if (iat && *iat > now + kJwtClockLeewaySeconds) return Fail("token issued in the future (iat)");

  const Json* iss = Member(claims, "iss");
  if (iss == nullptr) return Fail("missing iss");
  if (!iss->is_string()) return Fail("iss is not a string");
  if (iss->get_ref<const std::string&>() != tenant) {
    return Fail("iss does not match the kid tenant");
  }

  const Json* sub = Member(claims, "sub");
  if (sub == nullptr) return Fail("missing sub");
  if (!sub->is_string()) return Fail("sub is not a string");
  if (sub->get_ref<const std::string&>().empty()) return Fail("sub is empty");

  const Json* aud = Member(claims, "aud");
  if (aud == nullptr) return Fail("missing aud");
  if (aud->is_array()) return Fail("aud must be a single string, not an array");
  if (!aud->is_string()) return Fail("aud is not a string");
  if (aud->get_ref<const std::string&>() != HexEncode(realm_id)) {
    return Fail("aud is not this realm's id in lowercase hex");
  }

  if (const Json* scope = Member(claims, "scope")) {
    if (!scope->is_string()) return Fail("scope is not a string");
    if (TrimWhitespace(scope->get_ref<const std::string&>()) != "user") {
      return Fail("scope is not \"user\"");
    }
  }

  VerifiedClaims out;
  out.tenant = std::move(tenant);
  out.key_version = version;
  out.user = sub->get<std::string>();
  out.expires_at = *exp;
  out.not_before = *nbf;
  out.issued_at = iat;
  return out;
}

StatusOr<VerifiedClaims> JwtValidator::Validate(std::string_view token, ByteView realm_id) const {
  if (options_.cache_capacity == 0 || token.size() > kMaxJwtLength || realm_id.size() != 16 ||
      keys_ == nullptr) {
    return ValidateUncached(token, realm_id);
  }
  Digest digest;
  {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    const uint8_t separator = 0;
    bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
              EVP_DigestUpdate(ctx, realm_id.data(), realm_id.size()) == 1 &&
              EVP_DigestUpdate(ctx, &separator, 1) == 1 &&
              EVP_DigestUpdate(ctx, token.data(), token.size()) == 1 &&
              EVP_DigestFinal_ex(ctx, digest.data(), &len) == 1 && len == digest.size();
    EVP_MD_CTX_free(ctx);
    if (!ok) {
      ERR_clear_error();
      return ValidateUncached(token, realm_id);
    }
  }

  const uint64_t generation = keys_->generation();
  {
    std::lock_guard lock(cache_mu_);
    if (generation != cache_generation_) {
      cache_.clear();
      lru_.clear();
      cache_generation_ = generation;
    }
    auto it = cache_.find(digest);
    if (it != cache_.end()) {
      const int64_t now = clock_();
      const VerifiedClaims& c = it->second.claims;
      if (c.expires_at < now - kJwtClockLeewaySeconds) {
        lru_.erase(it->second.lru_position);
        cache_.erase(it);
        return Fail("token expired");
      }
      if (c.not_before > now + kJwtClockLeewaySeconds) return Fail("token not yet valid (nbf)");
      lru_.splice(lru_.begin(), lru_, it->second.lru_position);
      ++cache_hits_;
      return c;
    }
  }

  StatusOr<VerifiedClaims> result = ValidateUncached(token, realm_id);
  if (!result.ok()) return result;

  std::lock_guard lock(cache_mu_);
  if (cache_generation_ != generation || keys_->generation() != generation) return result;
  if (cache_.contains(digest)) return result;
  while (cache_.size() >= options_.cache_capacity && !lru_.empty()) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(digest);
  cache_.emplace(digest, CacheEntry{*result, lru_.begin()});
  return result;
}

size_t JwtValidator::cache_size() const {
  std::lock_guard lock(cache_mu_);
  return cache_.size();
}

uint64_t JwtValidator::cache_hits() const {
  std::lock_guard lock(cache_mu_);
  return cache_hits_;
}

}  // namespace pinvault::api
