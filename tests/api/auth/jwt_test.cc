// JWT validation: every rule of the Juicebox realm validator, with a fake clock.
#include "api/auth/jwt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "api/auth/tenant_keys.h"
#include "api/client/jwt_mint.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::ordered_json;

constexpr int64_t kNow = 1'800'000'000;

// Decoded returns the bytes of `hex`, failing the test (and returning none) if it is bad.
Bytes Decoded(std::string_view hex) {
  StatusOr<Bytes> bytes = HexDecode(hex);
  EXPECT_OK(bytes);
  return bytes.ok() ? *bytes : Bytes();
}

Bytes RealmId() { return Decoded("0102030405060708090a0b0c0d0e0f10"); }
Bytes OtherRealmId() { return Decoded("ffeeddccbbaa99887766554433221100"); }

// Keys shared by all tests (RSA generation is slow-ish, so once per binary). A key that cannot
// be generated fails the test that first asks for the keys and stays empty; JwtTest::SetUp
// stops every test when one is missing.
struct Keys {
  Keys() {
    Generate(JwtAlgorithm::kHs256, hs);
    Generate(JwtAlgorithm::kRs256, rs);
    Generate(JwtAlgorithm::kEdDsa, ed);
    Generate(JwtAlgorithm::kEdDsa, ed2);
  }
  static void Generate(JwtAlgorithm algorithm, std::optional<TenantKey>& key) {
    StatusOr<TenantKey> generated = TenantKey::Generate(algorithm);
    EXPECT_OK(generated);
    if (generated.ok()) key.emplace(std::move(generated).value());
  }
  bool complete() const { return hs && rs && ed && ed2; }

  std::optional<TenantKey> hs, rs, ed, ed2;
};
const Keys& K() {
  static const Keys* keys = new Keys();
  return *keys;
}

class JwtTest : public ::testing::Test {
 protected:
  JwtTest() : store_(std::make_shared<TenantKeyStore>()) {}

  void SetUp() override {
    ASSERT_TRUE(K().complete()) << "a shared test key could not be generated";
    EXPECT_OK(store_->Add("acme", 1, *K().hs));
    EXPECT_OK(store_->Add("rsaco", 7, K().rs->PublicOnly()));
    EXPECT_OK(store_->Add("edco", 2, K().ed->PublicOnly()));
    EXPECT_OK(store_->Add("test-other", 1, K().ed2->PublicOnly()));
    validator_ = std::make_unique<JwtValidator>(store_, [this] { return now_.load(); });
  }

  static Json Header(const std::string& alg, const std::string& kid) {
    Json h;
    h["alg"] = alg;
    h["kid"] = kid;
    h["typ"] = "JWT";
    return h;
  }
  static Json Claims(const std::string& tenant) {
    Json c;
    c["iat"] = kNow - 10;
    c["exp"] = kNow + 590;
    c["nbf"] = kNow - 10;
    c["iss"] = tenant;
    c["sub"] = "user-1";
    c["aud"] = "0102030405060708090a0b0c0d0e0f10";
    c["scope"] = "user";
    return c;
  }
  static std::string Sign(const TenantKey& key, const Json& header, const Json& claims) {
    StatusOr<std::string> t = SignJwtParts(key, header.dump(), claims.dump());
    EXPECT_OK(t);
    return t.ok() ? *t : std::string();
  }
  // An HS256 token for acme:1 with `claims`.
  static std::string Hs(const Json& claims) {
    return Sign(*K().hs, Header("HS256", "acme:1"), claims);
  }

  StatusOr<VerifiedClaims> Check(std::string_view token, const Bytes& realm = RealmId()) {
    return validator_->ValidateUncached(token, realm);
  }
  void ExpectRejected(std::string_view token, std::string_view reason,
                      const Bytes& realm = RealmId()) {
    StatusOr<VerifiedClaims> r = Check(token, realm);
    ASSERT_THAT(r, Not(IsOk())) << "accepted a token that should fail with: " << reason;
    EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, HasSubstr(reason)));
    if (token.size() > 20) {
      EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr(std::string(token))));
    }
  }

  std::shared_ptr<TenantKeyStore> store_;
  std::atomic<int64_t> now_{kNow};
  std::unique_ptr<JwtValidator> validator_;
};

TEST(Base64UrlTest, RoundTripsAndIsStrict) {
  for (size_t n = 0; n < 40; ++n) {
    Bytes data(n);
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 37 + 250);
    std::string enc = Base64UrlEncode(data);
    EXPECT_EQ(enc.find('='), std::string::npos);
    StatusOr<Bytes> dec = Base64UrlDecode(enc);
    ASSERT_OK(dec) << n;
    EXPECT_EQ(*dec, data);
  }
  EXPECT_EQ(Base64UrlEncode(ToBytes("\xfb\xff")), "-_8");
  EXPECT_THAT(Base64UrlDecode("-_8="), Not(IsOk()));   // padding
  EXPECT_THAT(Base64UrlDecode("+/8"), Not(IsOk()));    // standard alphabet
  EXPECT_THAT(Base64UrlDecode("-_9"), Not(IsOk()));    // non-zero unused bits
  EXPECT_THAT(Base64UrlDecode("abcde"), Not(IsOk()));  // impossible length
  EXPECT_THAT(Base64UrlDecode("ab cd"), Not(IsOk()));  // whitespace
}

TEST_F(JwtTest, AcceptsValidHs256Token) {
  StatusOr<VerifiedClaims> r = Check(Hs(Claims("acme")));
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant, "acme");
  EXPECT_EQ(r->key_version, 1u);
  EXPECT_EQ(r->user, "user-1");
  EXPECT_EQ(r->expires_at, kNow + 590);
  EXPECT_EQ(r->not_before, kNow - 10);
  EXPECT_EQ(r->issued_at, kNow - 10);
}

TEST_F(JwtTest, AcceptsValidRs256Token) {
  StatusOr<VerifiedClaims> r = Check(Sign(*K().rs, Header("RS256", "rsaco:7"), Claims("rsaco")));
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant, "rsaco");
  EXPECT_EQ(r->key_version, 7u);
}

TEST_F(JwtTest, AcceptsValidEdDsaTokenAndTestTenants) {
  StatusOr<VerifiedClaims> r = Check(Sign(*K().ed, Header("EdDSA", "edco:2"), Claims("edco")));
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant, "edco");
  r = Check(Sign(*K().ed2, Header("EdDSA", "test-other:1"), Claims("test-other")));
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant, "test-other");
}

TEST_F(JwtTest, MintJwtProducesValidTokens) {
  JwtMintRequest req;
  req.tenant = "edco";
  req.version = 2;
  req.user = "alice";
  req.realm_id_hex = "0102030405060708090a0b0c0d0e0f10";
  req.issued_at = kNow;
  StatusOr<std::string> token = MintJwt(*K().ed, req);
  ASSERT_OK(token);
  StatusOr<VerifiedClaims> r = Check(*token);
  ASSERT_OK(r);
  EXPECT_EQ(r->user, "alice");
  EXPECT_EQ(r->expires_at, kNow + 600);

  req.realm_id_hex = "0102030405060708090A0B0C0D0E0F10";
  EXPECT_THAT(MintJwt(*K().ed, req), StatusIs(StatusCode::kInvalidArgument));
  req.realm_id_hex = "0102030405060708090a0b0c0d0e0f10";
  req.lifetime_seconds = 86401;
  EXPECT_THAT(MintJwt(*K().ed, req), StatusIs(StatusCode::kInvalidArgument));
  req.lifetime_seconds = 60;
  req.user = "";
  EXPECT_THAT(MintJwt(*K().ed, req), StatusIs(StatusCode::kInvalidArgument));
  req.user = "bob";
  EXPECT_THAT(MintJwt(K().ed->PublicOnly(), req), StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(JwtTest, ExpiryWithFiveSecondLeeway) {
  Json c = Claims("acme");
  c["nbf"] = kNow - 100;
  c["iat"] = kNow - 100;
  c["exp"] = kNow - 5;
  EXPECT_OK(Check(Hs(c)));
  c["exp"] = kNow - 6;
  ExpectRejected(Hs(c), "token expired");
}

TEST_F(JwtTest, NotBeforeWithFiveSecondLeeway) {
  Json c = Claims("acme");
  c["nbf"] = kNow + 5;
  c.erase("iat");
  EXPECT_OK(Check(Hs(c)));
  c["nbf"] = kNow + 6;
  ExpectRejected(Hs(c), "not yet valid");
}

TEST_F(JwtTest, IssuedInTheFuture) {
  Json c = Claims("acme");
  c["iat"] = kNow + 5;
  EXPECT_OK(Check(Hs(c)));
  c["iat"] = kNow + 6;
  ExpectRejected(Hs(c), "issued in the future");
}

TEST_F(JwtTest, LifetimeAtMostOneDay) {
  Json c = Claims("acme");
  c["nbf"] = kNow - 10;
  c["exp"] = kNow - 10 + 86400;
  EXPECT_OK(Check(Hs(c)));
  c["exp"] = kNow - 10 + 86401;
  ExpectRejected(Hs(c), "longer than 24 hours");
  c["nbf"] = kNow + 1;
  c["exp"] = kNow;
  ExpectRejected(Hs(c), "exp is before nbf");
}

TEST_F(JwtTest, TimestampsRequiredAndIntegers) {
  Json c = Claims("acme");
  c.erase("exp");
  ExpectRejected(Hs(c), "missing exp");
  c = Claims("acme");
  c.erase("nbf");
  ExpectRejected(Hs(c), "missing nbf");
  c = Claims("acme");
  c["exp"] = nullptr;
  ExpectRejected(Hs(c), "missing exp");
  c = Claims("acme");
  c["exp"] = std::to_string(kNow + 60);
  ExpectRejected(Hs(c), "exp is not a non-negative integer");
  c = Claims("acme");
  c["nbf"] = -1;
  ExpectRejected(Hs(c), "nbf is not a non-negative integer");
  c = Claims("acme");
  c["exp"] = static_cast<double>(kNow) + 0.5;
  ExpectRejected(Hs(c), "exp is not a non-negative integer");
  c = Claims("acme");
  c["iat"] = "soon";
  ExpectRejected(Hs(c), "iat is not a non-negative integer");
}

TEST_F(JwtTest, AudienceMustBeThisRealmAsLowercaseHexString) {
  ExpectRejected(Hs(Claims("acme")), "aud is not this realm", OtherRealmId());
  Json c = Claims("acme");
  c["aud"] = "0102030405060708090A0B0C0D0E0F10";
  ExpectRejected(Hs(c), "aud is not this realm");
  c["aud"] = Json::array({"0102030405060708090a0b0c0d0e0f10"});
  ExpectRejected(Hs(c), "not an array");
  c["aud"] = "01020304-0506-0708-090a-0b0c0d0e0f10";
  ExpectRejected(Hs(c), "aud is not this realm");
  c["aud"] = 5;
  ExpectRejected(Hs(c), "aud is not a string");
  c.erase("aud");
  ExpectRejected(Hs(c), "missing aud");
}

TEST_F(JwtTest, IssuerMustBeTheKidTenant) {
  Json c = Claims("acme");
  c["iss"] = "edco";
  ExpectRejected(Hs(c), "iss does not match the kid tenant");
  c.erase("iss");
  ExpectRejected(Hs(c), "missing iss");
  c["iss"] = 1;
  ExpectRejected(Hs(c), "iss is not a string");
  // kid names edco (and is signed with edco's key) but iss claims acme.
  ExpectRejected(Sign(*K().ed, Header("EdDSA", "edco:2"), Claims("acme")),
                 "iss does not match the kid tenant");
}

TEST_F(JwtTest, SubjectRequiredAndNonEmpty) {
  Json c = Claims("acme");
  c.erase("sub");
  ExpectRejected(Hs(c), "missing sub");
  c["sub"] = "";
  ExpectRejected(Hs(c), "sub is empty");
  c["sub"] = 42;
  ExpectRejected(Hs(c), "sub is not a string");
}

TEST_F(JwtTest, ScopeAbsentOrUser) {
  Json c = Claims("acme");
  c.erase("scope");
  EXPECT_OK(Check(Hs(c)));
  c["scope"] = nullptr;
  EXPECT_OK(Check(Hs(c)));
  c["scope"] = "  user\t";
  EXPECT_OK(Check(Hs(c)));
  c["scope"] = "audit";
  ExpectRejected(Hs(c), "scope is not \"user\"");
  c["scope"] = "";
  ExpectRejected(Hs(c), "scope is not \"user\"");
  c["scope"] = "User";
  ExpectRejected(Hs(c), "scope is not \"user\"");
  c["scope"] = Json::array({"user"});
  ExpectRejected(Hs(c), "scope is not a string");
}

TEST_F(JwtTest, UnknownTenantAndVersion) {
  ExpectRejected(Sign(*K().hs, Header("HS256", "nobody:1"), Claims("nobody")),
                 "unknown tenant nobody");
  ExpectRejected(Sign(*K().hs, Header("HS256", "acme:2"), Claims("acme")),
                 "unknown key version 2 for tenant acme");
}

TEST_F(JwtTest, KidFormat) {
  for (const char* kid : {"acme", "acme:", "acme:latest", "ten:ant:1", "acme:+1", "acme:-1",
                          "some-non-alnum:2", ":1", "acme:18446744073709551616", "acme :1"}) {
    ExpectRejected(Sign(*K().hs, Header("HS256", kid), Claims("acme")), "kid is not");
  }
  Json h = Header("HS256", "acme:1");
  h.erase("kid");
  ExpectRejected(Sign(*K().hs, h, Claims("acme")), "missing kid");
  h["kid"] = 1;
  ExpectRejected(Sign(*K().hs, h, Claims("acme")), "kid is not");
  // Leading zeros still name version 1 (decimal parse).
  EXPECT_OK(Check(Sign(*K().hs, Header("HS256", "acme:001"), Claims("acme"))));
}

TEST_F(JwtTest, TypMustBeJwt) {
  Json h = Header("HS256", "acme:1");
  for (const char* ok : {"JWT", "jwt", "at+jwt", "application/foo+JWT"}) {
    h["typ"] = ok;
    EXPECT_OK(Check(Sign(*K().hs, h, Claims("acme")))) << ok;
  }
  h.erase("typ");
  EXPECT_OK(Check(Sign(*K().hs, h, Claims("acme"))));
  for (const char* bad : {"JWS", "+JWT", "JWTX", ""}) {
    h["typ"] = bad;
    ExpectRejected(Sign(*K().hs, h, Claims("acme")), "typ is not JWT");
  }
  h["typ"] = 1;
  ExpectRejected(Sign(*K().hs, h, Claims("acme")), "typ is not a string");
}

TEST_F(JwtTest, CriticalExtensionsRejected) {
  Json h = Header("HS256", "acme:1");
  h["crit"] = Json::array({"b64"});
  h["b64"] = false;
  ExpectRejected(Sign(*K().hs, h, Claims("acme")), "critical header");
}

TEST_F(JwtTest, AlgNoneRejected) {
  for (const char* none : {"none", "None", "NONE"}) {
    Json h = Header(none, "acme:1");
    std::string token = Base64UrlEncode(AsBytes(h.dump())) + "." +
                        Base64UrlEncode(AsBytes(Claims("acme").dump())) + ".";
    ExpectRejected(token, "alg \"none\"");
    // Even with a valid HS256 signature over it.
    ExpectRejected(Sign(*K().hs, h, Claims("acme")), "alg \"none\"");
  }
  Json h = Header("HS256", "acme:1");
  h.erase("alg");
  ExpectRejected(Sign(*K().hs, h, Claims("acme")), "missing alg");
  for (const char* other : {"HS384", "HS512", "RS512", "PS256", "ES256", "hs256", "Ed25519"}) {
    ExpectRejected(Sign(*K().hs, Header(other, "acme:1"), Claims("acme")), "unsupported alg");
  }
}

TEST_F(JwtTest, AlgMustMatchTenantKey) {
  // The classic confusion: an HS256 token whose HMAC key is the EdDSA tenant's public key,
  // in every public spelling an attacker might try.
  ASSERT_OK_AND_ASSIGN(Bytes der, K().ed->PublicKeyDer());
  ASSERT_OK_AND_ASSIGN(std::string pem, K().ed->PublicKeyPem());
  for (const Bytes& fake_secret : {der, ToBytes(pem), Bytes(der.end() - 32, der.end())}) {
    ASSERT_OK_AND_ASSIGN(TenantKey hmac,
                         TenantKey::FromHmacSecret(SecretBytes::CopyFrom(fake_secret)));
    ExpectRejected(Sign(hmac, Header("HS256", "edco:2"), Claims("edco")),
                   "alg HS256 does not match the key's algorithm EdDSA");
  }
  ASSERT_OK_AND_ASSIGN(Bytes rsa_der, K().rs->PublicKeyDer());
  ASSERT_OK_AND_ASSIGN(TenantKey hmac, TenantKey::FromHmacSecret(SecretBytes::CopyFrom(rsa_der)));
  ExpectRejected(Sign(hmac, Header("HS256", "rsaco:7"), Claims("rsaco")),
                 "alg HS256 does not match the key's algorithm RS256");
  // An EdDSA signature presented for an HS256 tenant, and RS256 vs EdDSA.
  ExpectRejected(Sign(*K().ed, Header("EdDSA", "acme:1"), Claims("acme")),
                 "alg EdDSA does not match the key's algorithm HS256");
  ExpectRejected(Sign(*K().ed, Header("RS256", "edco:2"), Claims("edco")),
                 "alg RS256 does not match the key's algorithm EdDSA");
}

// Flips every bit of the signature; each forgery must fail.
void ExpectEveryBitFlipRejected(JwtTest* t, const std::string& token,
                                const std::function<void(std::string_view)>& reject) {
  size_t dot = token.rfind('.');
  ASSERT_OK_AND_ASSIGN(Bytes sig, Base64UrlDecode(std::string_view(token).substr(dot + 1)));
  ASSERT_FALSE(sig.empty());
  for (size_t bit = 0; bit < sig.size() * 8; ++bit) {
    Bytes forged = sig;
    forged[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    reject(token.substr(0, dot + 1) + Base64UrlEncode(forged));
  }
  (void)t;
}

TEST_F(JwtTest, ForgedSignaturesRejected) {
  auto reject = [this](std::string_view token) { ExpectRejected(token, "bad signature"); };
  ExpectEveryBitFlipRejected(this, Hs(Claims("acme")), reject);
  ExpectEveryBitFlipRejected(this, Sign(*K().ed, Header("EdDSA", "edco:2"), Claims("edco")),
                             reject);
  ExpectEveryBitFlipRejected(this, Sign(*K().rs, Header("RS256", "rsaco:7"), Claims("rsaco")),
                             reject);
}

TEST_F(JwtTest, TamperedClaimsOrHeaderRejected) {
  std::string token = Sign(*K().ed, Header("EdDSA", "edco:2"), Claims("edco"));
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  Json c = Claims("edco");
  c["sub"] = "user-2";
  std::string swapped =
      token.substr(0, dot1 + 1) + Base64UrlEncode(AsBytes(c.dump())) + token.substr(dot2);
  ExpectRejected(swapped, "bad signature");
  Json h = Header("EdDSA", "edco:2");
  h["typ"] = "jwt";
  std::string reheaded = Base64UrlEncode(AsBytes(h.dump())) + token.substr(dot1);
  ExpectRejected(reheaded, "bad signature");
  // Truncated or missing signature.
  ExpectRejected(token.substr(0, dot2 + 1), "bad signature");
  ExpectRejected(token.substr(0, token.size() - 2), "bad signature");
  // A token signed by a different key of the right algorithm.
  ExpectRejected(Sign(*K().ed2, Header("EdDSA", "edco:2"), Claims("edco")), "bad signature");
  ASSERT_OK_AND_ASSIGN(TenantKey other_hs, TenantKey::Generate(JwtAlgorithm::kHs256));
  ExpectRejected(Sign(other_hs, Header("HS256", "acme:1"), Claims("acme")), "bad signature");
}

TEST_F(JwtTest, LengthLimit) {
  // Grow `sub` until the token passes 1000 characters: everything up to 1000 is accepted,
  // the first longer token is rejected before any other check.
  bool saw_limit = false;
  for (size_t n = 600; n < 800 && !saw_limit; ++n) {
    Json c = Claims("acme");
    c["sub"] = std::string(n, 'u');
    std::string token = Hs(c);
    if (token.size() <= kMaxJwtLength) {
      EXPECT_OK(Check(token)) << token.size();
    } else {
      ExpectRejected(token, "longer than 1000");
      saw_limit = true;
    }
  }
  EXPECT_TRUE(saw_limit);
  ExpectRejected(std::string(1001, 'a'), "longer than 1000");
  ExpectRejected("", "empty token");
}

TEST_F(JwtTest, MalformedStructure) {
  std::string token = Hs(Claims("acme"));
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  std::string header = token.substr(0, dot1);
  std::string claims = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string sig = token.substr(dot2 + 1);

  ExpectRejected(header + "." + claims, "three dot-separated parts");
  ExpectRejected(token + ".x", "three dot-separated parts");
  ExpectRejected("abc", "three dot-separated parts");
  ExpectRejected(header + "=." + claims + "." + sig, "header is not valid base64url");
  ExpectRejected("*" + header + "." + claims + "." + sig, "header is not valid base64url");
  ExpectRejected(header + "." + claims + "=." + sig, "bad signature");
  ExpectRejected(header + "." + claims + "." + sig + "=", "signature is not valid base64url");

  auto with_header = [&](std::string_view text) {
    return Base64UrlEncode(AsBytes(text)) + "." + claims + "." + sig;
  };
  ExpectRejected(with_header("{\"alg\":\"HS256\""), "header is not valid JSON");
  ExpectRejected(with_header("[\"HS256\"]"), "header is not a JSON object");
  ExpectRejected(with_header(""), "header is not valid JSON");
  ExpectRejected(with_header("{\"alg\":\"HS256\",\"kid\":\"acme:1\"} x"), "not valid JSON");
  ExpectRejected(with_header("{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"acme:1\"}"),
                 "header has a duplicate member");
  ExpectRejected(with_header("{\"alg\":\"HS256\",\"kid\":\"acme:1\",\"x\":\"\xff\"}"),
                 "header is not valid JSON");

  // Claims problems show only behind a valid signature.
  auto signed_claims = [&](std::string_view text) {
    StatusOr<std::string> token = SignJwtParts(*K().hs, Header("HS256", "acme:1").dump(), text);
    EXPECT_OK(token);
    return token.ok() ? *token : std::string();
  };
  ExpectRejected(signed_claims("{\"sub\":"), "claims set is not valid JSON");
  ExpectRejected(signed_claims("\"acme\""), "claims set is not a JSON object");
  Json c = Claims("acme");
  std::string dup = c.dump();
  dup.insert(1, "\"sub\":\"admin\",");
  ExpectRejected(signed_claims(dup), "claims set has a duplicate member");
  std::string good_prefix = Base64UrlEncode(AsBytes(Header("HS256", "acme:1").dump()));
  std::string bad_b64 = good_prefix + ".e30-=";
  ASSERT_OK_AND_ASSIGN(std::string with_sig,
                       SignJwtParts(*K().hs, Header("HS256", "acme:1").dump(), "{}"));
  // A signature over claims bytes that are not base64url: sign the raw text ourselves.
  ASSERT_OK_AND_ASSIGN(Bytes raw_sig, K().hs->Sign(AsBytes(bad_b64)));
  ExpectRejected(bad_b64 + "." + Base64UrlEncode(raw_sig), "claims set is not valid base64url");
  ExpectRejected(with_sig, "missing exp");
}

TEST_F(JwtTest, CacheHonoursExpiry) {
  Json c = Claims("acme");
  c["exp"] = kNow + 100;
  std::string token = Hs(c);
  ASSERT_OK(validator_->Validate(token, RealmId()));
  EXPECT_EQ(validator_->cache_size(), 1u);
  EXPECT_EQ(validator_->cache_hits(), 0u);
  StatusOr<VerifiedClaims> hit = validator_->Validate(token, RealmId());
  ASSERT_OK(hit);
  EXPECT_EQ(hit->user, "user-1");
  EXPECT_EQ(validator_->cache_hits(), 1u);
  // The cache is per realm.
  EXPECT_THAT(validator_->Validate(token, OtherRealmId()), Not(IsOk()));
  now_ = kNow + 105;
  EXPECT_OK(validator_->Validate(token, RealmId()));
  EXPECT_EQ(validator_->cache_hits(), 2u);
  now_ = kNow + 106;
  StatusOr<VerifiedClaims> expired = validator_->Validate(token, RealmId());
  ASSERT_THAT(expired, Not(IsOk()));
  EXPECT_THAT(expired.status().message(), HasSubstr("token expired"));
  EXPECT_EQ(validator_->cache_size(), 0u);
  EXPECT_THAT(validator_->Validate(token, RealmId()), Not(IsOk()));
}

TEST_F(JwtTest, CacheIsBoundedAndNeverCachesFailures) {
  JwtValidator small(
      store_, [this] { return now_.load(); }, JwtValidator::Options{3});
  for (int i = 0; i < 10; ++i) {
    Json c = Claims("acme");
    c["sub"] = "user-" + std::to_string(i);
    ASSERT_OK(small.Validate(Hs(c), RealmId()));
    EXPECT_LE(small.cache_size(), 3u);
  }
  Json c = Claims("acme");
  c["scope"] = "audit";
  std::string bad = Hs(c);
  EXPECT_THAT(small.Validate(bad, RealmId()), Not(IsOk()));
  EXPECT_THAT(small.Validate(bad, RealmId()), Not(IsOk()));
  EXPECT_EQ(small.cache_hits(), 0u);
}

TEST_F(JwtTest, KeyRotationAndRemoval) {
  ASSERT_OK_AND_ASSIGN(TenantKey v2, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK(store_->Add("acme", 2, v2.PublicOnly()));
  std::string old_token = Hs(Claims("acme"));
  std::string new_token = Sign(v2, Header("EdDSA", "acme:2"), Claims("acme"));
  ASSERT_OK(validator_->Validate(old_token, RealmId()));
  ASSERT_OK(validator_->Validate(new_token, RealmId()));
  // A token naming version 2 but signed with version 1's key fails.
  ExpectRejected(Sign(*K().hs, Header("HS256", "acme:2"), Claims("acme")),
                 "alg HS256 does not match");
  // Retire version 1: its tokens fail at once, even though one was cached.
  ASSERT_OK(store_->Remove("acme", 1));
  StatusOr<VerifiedClaims> r = validator_->Validate(old_token, RealmId());
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_THAT(r.status().message(), HasSubstr("unknown key version 1 for tenant acme"));
  EXPECT_OK(validator_->Validate(new_token, RealmId()));
}

// The real SDK's AuthTokenGenerator output, recorded in the transcripts.
class SdkTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(PINVAULT_TEST_DATA) + "/juicebox/case1_fastinsecure_1realm.json");
    ASSERT_TRUE(in.good());
    nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(doc.is_discarded());
    auth_ = doc["auth"];
  }
  nlohmann::json auth_;
};

TEST_F(SdkTokenTest, SampleTokenValidatesInsideItsWindowOnly) {
  const nlohmann::json& gen = auth_["generator"];
  const nlohmann::json& payload = auth_["sample_token_decoded"]["payload"];
  const std::string token = auth_["sample_token"];
  ASSERT_OK_AND_ASSIGN(Bytes spki, HexDecode(gen["public_key_spki_der_hex"].get<std::string>()));
  auto store = std::make_shared<TenantKeyStore>();
  ASSERT_OK_AND_ASSIGN(TenantKey generator_key, TenantKey::FromDer(JwtAlgorithm::kEdDsa, spki));
  ASSERT_OK(store->Add(gen["tenant"].get<std::string>(), gen["version"].get<uint64_t>(),
                       std::move(generator_key)));
  const int64_t iat = payload["iat"].get<int64_t>();
  const int64_t exp = payload["exp"].get<int64_t>();
  ASSERT_OK_AND_ASSIGN(Bytes realm, HexDecode(payload["aud"].get<std::string>()));

  int64_t now = iat + 60;
  JwtValidator fixed(store, [&now] { return now; });
  StatusOr<VerifiedClaims> r = fixed.ValidateUncached(token, realm);
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant, "acme");
  EXPECT_EQ(r->key_version, 1u);
  EXPECT_EQ(r->user, auth_["secret_id"].get<std::string>());
  EXPECT_EQ(r->expires_at, exp);

  now = exp + 6;
  EXPECT_THAT(fixed.ValidateUncached(token, realm).status().message(), HasSubstr("token expired"));
  now = iat - 6;
  EXPECT_THAT(fixed.ValidateUncached(token, realm).status().message(), HasSubstr("not yet valid"));

  // With the real clock the sample (minted when the transcripts were recorded) is stale.
  JwtValidator real(store, SystemUnixSecondsClock());
  StatusOr<VerifiedClaims> live = real.Validate(token, realm);
  ASSERT_THAT(live, Not(IsOk()));
  EXPECT_THAT(live, StatusIs(StatusCode::kUnauthenticated));
  if (SystemUnixSecondsClock()() > exp + kJwtClockLeewaySeconds) {
    EXPECT_THAT(live.status().message(), HasSubstr("token expired"));
  }
}

TEST_F(SdkTokenTest, MintingWithTheGeneratorKeyReproducesTheSampleExactly) {
  const nlohmann::json& gen = auth_["generator"];
  const nlohmann::json& payload = auth_["sample_token_decoded"]["payload"];
  ASSERT_OK_AND_ASSIGN(Bytes pkcs8, HexDecode(gen["private_key_pkcs8_der_hex"].get<std::string>()));
  StatusOr<TenantKey> key = TenantKey::FromDer(JwtAlgorithm::kEdDsa, pkcs8);
  ASSERT_OK(key);
  ASSERT_TRUE(key->can_sign());
  ASSERT_OK_AND_ASSIGN(Bytes public_der, key->PublicKeyDer());
  EXPECT_EQ(HexEncode(public_der), gen["public_key_spki_der_hex"].get<std::string>());

  JwtMintRequest req;
  req.tenant = gen["tenant"];
  req.version = gen["version"];
  req.user = payload["sub"];
  req.realm_id_hex = payload["aud"];
  req.issued_at = payload["iat"];
  req.lifetime_seconds = payload["exp"].get<int64_t>() - payload["iat"].get<int64_t>();
  req.scope = payload["scope"].get<std::string>();
  StatusOr<std::string> token = MintJwt(*key, req);
  ASSERT_OK(token);
  // Header and claims match the generator's byte for byte. (The generator's Ed25519
  // signatures are hedged with random noise, so the signature itself differs per mint.)
  const std::string sample = auth_["sample_token"];
  EXPECT_EQ(token->substr(0, token->rfind('.')), sample.substr(0, sample.rfind('.')));

  // Our token validates under the generator's public key, like the sample.
  auto store = std::make_shared<TenantKeyStore>();
  ASSERT_OK(store->Add("acme", 1, key->PublicOnly()));
  int64_t now = req.issued_at + 1;
  JwtValidator validator(store, [&now] { return now; });
  ASSERT_OK_AND_ASSIGN(Bytes realm, HexDecode(req.realm_id_hex));
  EXPECT_OK(validator.ValidateUncached(*token, realm));
  EXPECT_OK(validator.ValidateUncached(sample, realm));
}

}  // namespace
}  // namespace pinvault::api
