#include "api/client/jwt_mint.h"

#include <nlohmann/json.hpp>

#include "api/auth/jwt.h"

namespace pinvault::api {
namespace {

bool IsLowerHex32(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

StatusOr<std::string> SignJwtParts(const TenantKey& key, std::string_view header_json,
                                   std::string_view claims_json) {
  if (!key.can_sign()) return FailedPreconditionError("key holds only a public key; cannot sign");
  std::string signing_input =
      Base64UrlEncode(AsBytes(header_json)) + "." + Base64UrlEncode(AsBytes(claims_json));
  ASSIGN_OR_RETURN(Bytes signature, key.Sign(AsBytes(signing_input)));
  return signing_input + "." + Base64UrlEncode(signature);
}

StatusOr<std::string> MintJwt(const TenantKey& key, const JwtMintRequest& request) {
  if (!IsValidTenantName(request.tenant)) {
    return InvalidArgumentError("tenant name does not match ^(test-)?[a-zA-Z0-9]+$");
  }
  if (request.user.empty()) return InvalidArgumentError("user id is empty");
  if (!IsLowerHex32(request.realm_id_hex)) {
    return InvalidArgumentError("realm id must be 32 lowercase hex characters");
  }
  if (request.lifetime_seconds < 1 || request.lifetime_seconds > kJwtMaxLifetimeSeconds) {
    return InvalidArgumentError("token lifetime must be between 1 and 86400 seconds");
  }
  if (request.issued_at < 0 ||
      request.issued_at > std::numeric_limits<int64_t>::max() / 2 - request.lifetime_seconds) {
    return InvalidArgumentError("issue time out of range");
  }
  if (!key.can_sign()) return FailedPreconditionError("key holds only a public key; cannot sign");

  // ordered_json keeps the member order of the SDK's generator.
  nlohmann::ordered_json header;
  header["alg"] = std::string(JwtAlgorithmName(key.algorithm()));
  header["kid"] = request.tenant + ":" + std::to_string(request.version);
  header["typ"] = "JWT";
  nlohmann::ordered_json claims;
  claims["iat"] = request.issued_at;
  claims["exp"] = request.issued_at + request.lifetime_seconds;
  claims["nbf"] = request.issued_at;
  claims["iss"] = request.tenant;
  claims["sub"] = request.user;
  claims["aud"] = request.realm_id_hex;
  if (request.scope) claims["scope"] = *request.scope;

  std::string header_text;
  std::string claims_text;
  try {
    header_text = header.dump();
    claims_text = claims.dump();
  } catch (const std::exception&) {
    return InvalidArgumentError("user id or scope is not valid UTF-8");
  }
  ASSIGN_OR_RETURN(std::string token, SignJwtParts(key, header_text, claims_text));
  if (token.size() > kMaxJwtLength) {
    return InvalidArgumentError("token would be longer than 1000 characters");
  }
  return token;
}

}  // namespace pinvault::api
