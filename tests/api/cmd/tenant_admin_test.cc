// pinvault-admin tenant/token commands: round trips through the keys file and the validator.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "api/auth/jwt.h"
#include "api/auth/tenant_keys.h"
#include "api/cmd/admin_tenant.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRealmHex[] = "0102030405060708090a0b0c0d0e0f10";

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Tenant(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunTenantCommand(args, out, err);
  return {code, out.str(), err.str()};
}
Result Token(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunTokenCommand(args, out, err);
  return {code, out.str(), err.str()};
}

class TenantAdminTest : public ::testing::Test {
 protected:
  TenantAdminTest() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tenant_admin_XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    keys_ = (dir_ / "sub" / "keys.json").string();
  }
  ~TenantAdminTest() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<TenantKeyStore> Load() {
    StatusOr<std::unique_ptr<TenantKeyStore>> s = TenantKeyStore::LoadFile(keys_, nullptr);
    EXPECT_OK(s);
    return s.ok() ? std::shared_ptr<TenantKeyStore>(std::move(*s))
                  : std::make_shared<TenantKeyStore>();
  }
  std::string SecretHex(const std::string& tenant, uint64_t version) {
    std::optional<TenantKey> key = Load()->Find(tenant, version);
    EXPECT_TRUE(key.has_value());
    if (!key) return "missing";
    StatusOr<SecretBytes> s = key->ExportSecret();
    EXPECT_OK(s);
    if (!s.ok()) return "unexportable";
    return HexEncode(s->Reveal());
  }
  StatusOr<VerifiedClaims> Validate(const std::string& printed_token) {
    EXPECT_FALSE(printed_token.empty());
    EXPECT_EQ(printed_token.back(), '\n');
    std::string token = printed_token.substr(0, printed_token.size() - 1);
    JwtValidator v(Load(), SystemUnixSecondsClock());
    StatusOr<Bytes> realm = HexDecode(kRealmHex);
    EXPECT_OK(realm);
    if (!realm.ok()) return realm.status();
    return v.ValidateUncached(token, *realm);
  }

  std::filesystem::path dir_;
  std::string keys_;
};

TEST_F(TenantAdminTest, AddHs256KeepsTheSecretOutOfTheOutput) {
  Result r = Tenant({"add", "acme", "--algorithm", "HS256", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(keys_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string secret = SecretHex("acme", 1);
  EXPECT_EQ(secret.size(), 64u);
  EXPECT_THAT(r.out, Not(HasSubstr(secret)));
  EXPECT_THAT(r.out, HasSubstr("stored only in " + keys_));
  EXPECT_THAT(r.out, HasSubstr("kid \"acme:1\""));

  Result shown =
      Tenant({"add", "other", "--algorithm=HS256", "--keys-file", keys_, "--show-secret"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("HS256 secret (hex): " + SecretHex("other", 1)));
  // Adding a tenant kept the first one intact.
  EXPECT_EQ(SecretHex("acme", 1), secret);
}

TEST_F(TenantAdminTest, AddEdDsaAndRs256PrintPublicKeys) {
  Result r = Tenant({"add", "edco", "--algorithm", "EdDSA", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  TenantKey ed = *Load()->Find("edco", 1);
  ASSERT_OK_AND_ASSIGN(std::string pem, ed.PublicKeyPem());
  EXPECT_THAT(r.out, HasSubstr(pem));
  ASSERT_OK_AND_ASSIGN(Bytes der, ed.PublicKeyDer());
  EXPECT_THAT(r.out, HasSubstr(HexEncode(der)));
  EXPECT_THAT(r.out, Not(HasSubstr(SecretHex("edco", 1))));

  r = Tenant({"add", "test-rsa", "--algorithm", "RS256", "--keys-file", keys_, "--show-secret"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Private key (PKCS#8 DER, hex): " + SecretHex("test-rsa", 1)));
  EXPECT_EQ(Load()->Find("test-rsa", 1)->algorithm(), JwtAlgorithm::kRs256);
}

TEST_F(TenantAdminTest, AddRejectsBadInput) {
  EXPECT_EQ(Tenant({"add", "bad-name", "--algorithm", "HS256", "--keys-file", keys_}).code, 2);
  EXPECT_EQ(Tenant({"add", "acme", "--keys-file", keys_}).code, 2);
  Result r = Tenant({"add", "acme", "--algorithm", "HS512", "--keys-file", keys_});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown key algorithm"));
  EXPECT_EQ(Tenant({"add", "acme", "--algorithm", "HS256", "--secret", "x"}).code, 2);
  EXPECT_EQ(Tenant({"add", "--algorithm", "HS256", "--keys-file", keys_}).code, 2);
  EXPECT_EQ(Tenant({"add", "a", "b", "--algorithm", "HS256", "--keys-file", keys_}).code, 2);
  EXPECT_EQ(Tenant({"add", "acme", "--algorithm"}).code, 2);
  EXPECT_EQ(Tenant({"frobnicate"}).code, 2);
  EXPECT_EQ(Tenant({}).code, 2);
  EXPECT_FALSE(std::filesystem::exists(keys_));

  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "HS256", "--keys-file", keys_}).code, 0);
  r = Tenant({"add", "acme", "--algorithm", "EdDSA", "--keys-file", keys_});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("already exists"));
  // A corrupt keys file is reported, not overwritten.
  std::ofstream(keys_) << "{ not json";
  r = Tenant({"add", "newco", "--algorithm", "HS256", "--keys-file", keys_});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("not valid JSON"));
}

TEST_F(TenantAdminTest, RotateAddsVersionsAndRemoveRetiresThem) {
  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "EdDSA", "--keys-file", keys_}).code, 0);
  Result r = Tenant({"rotate", "acme", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("key version 2 (EdDSA)"));
  r = Tenant({"rotate", "acme", "--algorithm", "HS256", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  std::shared_ptr<TenantKeyStore> store = Load();
  EXPECT_EQ(store->size(), 3u);
  EXPECT_EQ(store->Find("acme", 2)->algorithm(), JwtAlgorithm::kEdDsa);
  EXPECT_EQ(store->Find("acme", 3)->algorithm(), JwtAlgorithm::kHs256);
  ASSERT_OK_AND_ASSIGN(Bytes der_1, store->Find("acme", 1)->PublicKeyDer());
  ASSERT_OK_AND_ASSIGN(Bytes der_2, store->Find("acme", 2)->PublicKeyDer());
  EXPECT_NE(der_1, der_2);

  EXPECT_EQ(Tenant({"rotate", "nobody", "--keys-file", keys_}).code, 1);

  // Tokens for every version validate; after removing version 1 its token fails.
  std::string t1 = Token({"mint", "--tenant", "acme", "--version", "1", "--user", "u", "--realm",
                          kRealmHex, "--keys-file", keys_})
                       .out;
  std::string t3 =
      Token({"mint", "--tenant", "acme", "--user", "u", "--realm", kRealmHex, "--keys-file", keys_})
          .out;
  StatusOr<VerifiedClaims> c1 = Validate(t1);
  ASSERT_OK(c1);
  EXPECT_EQ(c1->key_version, 1u);
  StatusOr<VerifiedClaims> c3 = Validate(t3);
  ASSERT_OK(c3);
  EXPECT_EQ(c3->key_version, 3u);  // latest by default

  r = Tenant({"remove", "acme", "--version", "1", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  StatusOr<VerifiedClaims> gone = Validate(t1);
  ASSERT_THAT(gone, Not(IsOk()));
  EXPECT_THAT(gone.status().message(), HasSubstr("unknown key version 1 for tenant acme"));
  EXPECT_OK(Validate(t3));
  EXPECT_EQ(Tenant({"remove", "acme", "--version", "1", "--keys-file", keys_}).code, 1);
  EXPECT_EQ(Tenant({"remove", "acme", "--keys-file", keys_}).code, 2);
}

TEST_F(TenantAdminTest, ListShowsNoSecrets) {
  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "HS256", "--keys-file", keys_}).code, 0);
  ASSERT_EQ(Tenant({"add", "edco", "--algorithm", "EdDSA", "--keys-file", keys_}).code, 0);
  ASSERT_EQ(Tenant({"rotate", "edco", "--keys-file", keys_}).code, 0);
  Result r = Tenant({"list", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("TENANT"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("acme +1 +HS256 +shared secret"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("edco +1 +EdDSA +private \\+ public"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("edco +2 +EdDSA"));
  EXPECT_THAT(r.out, Not(HasSubstr(SecretHex("acme", 1))));
  EXPECT_THAT(r.out, Not(HasSubstr(SecretHex("edco", 2))));
  EXPECT_EQ(Tenant({"list", "--keys-file", (dir_ / "none.json").string()}).code, 1);
  EXPECT_EQ(Tenant({"list", "extra", "--keys-file", keys_}).code, 2);
}

TEST_F(TenantAdminTest, MintRoundTripsThroughTheValidator) {
  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "EdDSA", "--keys-file", keys_}).code, 0);
  Result r = Token({"mint", "--tenant", "acme", "--user", "alice", "--realm",
                    "01020304-0506-0708-090A-0B0C0D0E0F10", "--ttl", "120", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  StatusOr<VerifiedClaims> c = Validate(r.out);
  ASSERT_OK(c);
  EXPECT_EQ(c->tenant, "acme");
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->expires_at - c->not_before, 120);

  // A scope other than "user" is minted as asked and then refused by the realm.
  r = Token({"mint", "--tenant", "acme", "--user", "alice", "--realm", kRealmHex, "--scope",
             "audit", "--keys-file", keys_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Validate(r.out).status().message(), HasSubstr("scope"));
}

TEST_F(TenantAdminTest, MintUsesTheKeysFileFromTheEnvironment) {
  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "HS256", "--keys-file", keys_}).code, 0);
  ::setenv("PINVAULT_TENANT_KEYS_FILE", keys_.c_str(), 1);
  Result r = Token({"mint", "--tenant", "acme", "--user", "bob", "--realm", kRealmHex});
  ::unsetenv("PINVAULT_TENANT_KEYS_FILE");
  ASSERT_EQ(r.code, 0) << r.err;
  StatusOr<VerifiedClaims> c = Validate(r.out);
  ASSERT_OK(c);
  EXPECT_EQ(c->user, "bob");
}

TEST_F(TenantAdminTest, MintRejectsBadInput) {
  ASSERT_EQ(Tenant({"add", "acme", "--algorithm", "HS256", "--keys-file", keys_}).code, 0);
  std::vector<std::string> base = {"mint", "--tenant", "acme", "--keys-file", keys_};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return Token(a);
  };
  EXPECT_EQ(with({"--realm", kRealmHex}).code, 2);  // no --user
  EXPECT_EQ(with({"--user", "u"}).code, 2);         // no --realm
  EXPECT_EQ(with({"--user", "", "--realm", kRealmHex}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", "0102"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", std::string(32, 'g')}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--ttl", "0"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--ttl", "86401"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--ttl", "1m"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--version", "x"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--version", "2"}).code, 1);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "--user", "v"}).code, 2);
  EXPECT_EQ(with({"--user", "u", "--realm", kRealmHex, "stray"}).code, 2);
  EXPECT_EQ(Token({"mint", "--tenant", "nobody", "--user", "u", "--realm", kRealmHex, "--keys-file",
                   keys_})
                .code,
            1);
  EXPECT_EQ(Token({"burn"}).code, 2);

  // A keys file holding only a public key cannot mint.
  TenantKeyStore pub;
  ASSERT_OK_AND_ASSIGN(TenantKey pub_key, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK(pub.Add("pubco", 1, pub_key.PublicOnly()));
  std::string pub_path = (dir_ / "pub.json").string();
  ASSERT_OK(pub.SaveFile(pub_path));
  Result r = Token(
      {"mint", "--tenant", "pubco", "--user", "u", "--realm", kRealmHex, "--keys-file", pub_path});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("only the public key"));
  EXPECT_TRUE(r.out.empty());
}

}  // namespace
}  // namespace pinvault::api
