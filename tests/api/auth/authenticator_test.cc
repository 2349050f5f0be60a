// Authorization header parsing and token verification as the server sees it.
#include "api/auth/authenticator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "api/client/jwt_mint.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1'800'000'000;
constexpr char kRealmHex[] = "00112233445566778899aabbccddeeff";

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(key_, TenantKey::Generate(JwtAlgorithm::kEdDsa));
    auto store = std::make_shared<TenantKeyStore>();
    EXPECT_OK(store->Add("acme", 3, key_->PublicOnly()));
    store_ = store;
    auth_ = std::make_unique<Authenticator>(
        store_, [this] { return now_; }, JwtValidator::Options());
    ASSERT_OK_AND_ASSIGN(realm_, HexDecode(kRealmHex));
  }
  std::string Mint(const std::string& user, int64_t lifetime = 600) {
    JwtMintRequest req;
    req.tenant = "acme";
    req.version = 3;
    req.user = user;
    req.realm_id_hex = kRealmHex;
    req.issued_at = now_;
    req.lifetime_seconds = lifetime;
    StatusOr<std::string> jwt = MintJwt(*key_, req);
    EXPECT_OK(jwt);
    if (!jwt.ok()) return "";
    return *jwt;
  }
  void ExpectRejected(std::string_view header, std::string_view reason) {
    StatusOr<AuthenticatedCaller> r = auth_->Authenticate(header, realm_);
    ASSERT_THAT(r, Not(IsOk())) << header;
    EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, HasSubstr(reason))) << header;
  }

  std::optional<TenantKey> key_;  // set by SetUp
  std::shared_ptr<TenantKeyStore> store_;
  int64_t now_ = kNow;
  std::unique_ptr<Authenticator> auth_;
  Bytes realm_;
};

TEST_F(AuthenticatorTest, AcceptsBearerTokens) {
  std::string token = Mint("alice");
  for (const std::string& header :
       {"Bearer " + token, "bearer " + token, "BEARER   " + token, "  Bearer\t" + token + " "}) {
    StatusOr<AuthenticatedCaller> r = auth_->Authenticate(header, realm_);
    ASSERT_OK(r);
    EXPECT_EQ(r->tenant, "acme");
    EXPECT_EQ(r->user, "alice");
    EXPECT_EQ(r->expires_at, kNow + 600);
    EXPECT_EQ(r->key_version, 3u);
  }
  EXPECT_GE(auth_->validator().cache_hits(), 3u);
}

TEST_F(AuthenticatorTest, RejectsMissingOrNonBearerHeaders) {
  ExpectRejected("", "missing Authorization header");
  ExpectRejected("   ", "missing Authorization header");
  ExpectRejected("Basic YWxpY2U6cGFzcw==", "not a Bearer token");
  ExpectRejected(Mint("alice"), "not a Bearer token");
  ExpectRejected("Bearer" + Mint("alice"), "not a Bearer token");
  ExpectRejected("Bearer", "empty bearer token");
  ExpectRejected("Bearer    ", "empty bearer token");
  ExpectRejected("Token " + Mint("alice"), "not a Bearer token");
}

TEST_F(AuthenticatorTest, RejectsBadTokensWithTheJwtReason) {
  ExpectRejected("Bearer not.a.token", "jwt: header is not valid base64url");
  ExpectRejected("Bearer " + Mint("alice") + " extra", "jwt: ");
  std::string token = Mint("alice", 60);
  now_ = kNow + 66;
  ExpectRejected("Bearer " + token, "jwt: token expired");
  now_ = kNow;
  ASSERT_OK_AND_ASSIGN(Bytes other, HexDecode("ffffffffffffffffffffffffffffffff"));
  StatusOr<AuthenticatedCaller> r = auth_->Authenticate("Bearer " + Mint("bob"), other);
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_THAT(r.status().message(), HasSubstr("aud is not this realm"));
}

TEST_F(AuthenticatorTest, EachTokenSpeaksForItsOwnUser) {
  StatusOr<AuthenticatedCaller> alice = auth_->Authenticate("Bearer " + Mint("alice"), realm_);
  StatusOr<AuthenticatedCaller> bob = auth_->Authenticate("Bearer " + Mint("bob"), realm_);
  ASSERT_OK(alice);
  ASSERT_OK(bob);
  EXPECT_EQ(alice->user, "alice");
  EXPECT_EQ(bob->user, "bob");
}

}  // namespace
}  // namespace pinvault::api
