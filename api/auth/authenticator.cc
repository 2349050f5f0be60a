#include "api/auth/authenticator.h"

namespace pinvault::api {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

}  // namespace

Authenticator::Authenticator(std::shared_ptr<const TenantKeyStore> keys, UnixSecondsClock clock,
                             JwtValidator::Options options)
    : validator_(std::move(keys), std::move(clock), options) {}

StatusOr<AuthenticatedCaller> Authenticator::Authenticate(std::string_view authorization,
                                                          ByteView realm_id) const {
  std::string_view value = authorization;
  while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
  while (!value.empty() && IsSpace(value.back())) value.remove_suffix(1);
  if (value.empty()) return UnauthenticatedError("missing Authorization header");

  constexpr std::string_view kScheme = "bearer";
  bool bearer = value.size() >= kScheme.size();
  for (size_t i = 0; bearer && i < kScheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bearer = c == kScheme[i];
  }
  if (!bearer || (value.size() > kScheme.size() && !IsSpace(value[kScheme.size()]))) {
    return UnauthenticatedError("Authorization header is not a Bearer token");
  }
  std::string_view token = value.substr(kScheme.size());
  while (!token.empty() && IsSpace(token.front())) token.remove_prefix(1);
  if (token.empty()) return UnauthenticatedError("empty bearer token");

  ASSIGN_OR_RETURN(VerifiedClaims claims, validator_.Validate(token, realm_id));
  AuthenticatedCaller caller;
  caller.tenant = std::move(claims.tenant);
  caller.user = std::move(claims.user);
  caller.expires_at = claims.expires_at;
  caller.key_version = claims.key_version;
  return caller;
}

}  // namespace pinvault::api
