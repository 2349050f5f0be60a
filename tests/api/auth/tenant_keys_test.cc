// Tenant key store: file formats (ours and the Juicebox software realm's), environment,
// atomic saving, permissions, rotation bookkeeping.
#include "api/auth/tenant_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "api/auth/jwt.h"
#include "api/client/jwt_mint.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1'800'000'000;
constexpr char kRealmHex[] = "0102030405060708090a0b0c0d0e0f10";

std::string Text(const SecretBytes& s) {
  return std::string(reinterpret_cast<const char*>(s.Reveal().data()), s.size());
}

// Works checks that `signer` mints a token that `store` accepts for tenant:version.
void ExpectWorks(const std::shared_ptr<TenantKeyStore>& store, const TenantKey& signer,
                 const std::string& tenant, uint64_t version) {
  JwtMintRequest req;
  req.tenant = tenant;
  req.version = version;
  req.user = "u";
  req.realm_id_hex = kRealmHex;
  req.issued_at = kNow;
  StatusOr<std::string> token = MintJwt(signer, req);
  ASSERT_OK(token);
  JwtValidator v(store, [] { return kNow; });
  ASSERT_OK_AND_ASSIGN(Bytes realm, HexDecode(kRealmHex));
  StatusOr<VerifiedClaims> r = v.ValidateUncached(*token, realm);
  EXPECT_OK(r) << tenant << ":" << version << " " << r.status();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tenant_keys_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void WriteFile(const std::filesystem::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
}

TEST(TenantNameTest, MatchesJuiceboxPattern) {
  for (const char* ok : {"acme", "Acme9", "test-acme", "0"}) EXPECT_TRUE(IsValidTenantName(ok));
  for (const char* bad : {"", "test-", "ac-me", "ac me", "acme_", "test-test-a", "é", "a:b"}) {
    EXPECT_FALSE(IsValidTenantName(bad)) << bad;
  }
}

TEST(JwtAlgorithmTest, BothSpellings) {
  EXPECT_THAT(ParseJwtAlgorithm("HS256"), IsOkAndHolds(JwtAlgorithm::kHs256));
  EXPECT_THAT(ParseJwtAlgorithm("HmacSha256"), IsOkAndHolds(JwtAlgorithm::kHs256));
  EXPECT_THAT(ParseJwtAlgorithm("RS256"), IsOkAndHolds(JwtAlgorithm::kRs256));
  EXPECT_THAT(ParseJwtAlgorithm("RsaPkcs1Sha256"), IsOkAndHolds(JwtAlgorithm::kRs256));
  EXPECT_THAT(ParseJwtAlgorithm("EdDSA"), IsOkAndHolds(JwtAlgorithm::kEdDsa));
  EXPECT_THAT(ParseJwtAlgorithm("Edwards25519"), IsOkAndHolds(JwtAlgorithm::kEdDsa));
  EXPECT_THAT(ParseJwtAlgorithm("none"), Not(IsOk()));
  EXPECT_THAT(ParseJwtAlgorithm("hs256"), Not(IsOk()));
  EXPECT_EQ(JwtAlgorithmName(JwtAlgorithm::kEdDsa), "EdDSA");
}

TEST(TenantKeyTest, GeneratedKeysSignAndVerify) {
  for (JwtAlgorithm alg : {JwtAlgorithm::kHs256, JwtAlgorithm::kRs256, JwtAlgorithm::kEdDsa}) {
    ASSERT_OK_AND_ASSIGN(TenantKey key, TenantKey::Generate(alg));
    EXPECT_EQ(key.algorithm(), alg);
    EXPECT_TRUE(key.can_sign());
    ASSERT_OK_AND_ASSIGN(Bytes sig, key.Sign(ToBytes("message")));
    EXPECT_OK(key.Verify(ToBytes("message"), sig));
    EXPECT_THAT(key.Verify(ToBytes("messagf"), sig), StatusIs(StatusCode::kUnauthenticated));
    TenantKey pub = key.PublicOnly();
    EXPECT_OK(pub.Verify(ToBytes("message"), sig));
    if (alg == JwtAlgorithm::kHs256) {
      EXPECT_EQ(sig.size(), 32u);
      EXPECT_THAT(key.PublicKeyDer(), StatusIs(StatusCode::kFailedPrecondition));
      ASSERT_OK_AND_ASSIGN(SecretBytes secret, key.ExportSecret());
      EXPECT_EQ(secret.size(), 32u);
    } else {
      EXPECT_FALSE(pub.can_sign());
      EXPECT_THAT(pub.Sign(ToBytes("m")), StatusIs(StatusCode::kFailedPrecondition));
      EXPECT_THAT(pub.ExportSecret(), StatusIs(StatusCode::kFailedPrecondition));
      ASSERT_OK_AND_ASSIGN(Bytes key_der, key.PublicKeyDer());
      EXPECT_THAT(pub.PublicKeyDer(), IsOkAndHolds(key_der));
      EXPECT_THAT(key.PublicKeyPem(), IsOkAndHolds(HasSubstr("-----BEGIN PUBLIC KEY-----")));
      // PKCS#8 export round-trips to a key with the same public half.
      ASSERT_OK_AND_ASSIGN(SecretBytes pkcs8, key.ExportSecret());
      ASSERT_OK_AND_ASSIGN(TenantKey again, TenantKey::FromDer(alg, pkcs8.Reveal()));
      EXPECT_TRUE(again.can_sign());
      EXPECT_THAT(again.PublicKeyDer(), IsOkAndHolds(key_der));
      EXPECT_EQ(sig.size(), alg == JwtAlgorithm::kEdDsa ? 64u : 256u);
    }
  }
  ASSERT_OK_AND_ASSIGN(TenantKey a, TenantKey::Generate(JwtAlgorithm::kHs256));
  ASSERT_OK_AND_ASSIGN(TenantKey b, TenantKey::Generate(JwtAlgorithm::kHs256));
  ASSERT_OK_AND_ASSIGN(Bytes b_sig, b.Sign(ToBytes("m")));
  EXPECT_THAT(a.Verify(ToBytes("m"), b_sig), Not(IsOk()));
}

TEST(TenantKeyTest, RejectsWrongOrWeakKeys) {
  EXPECT_THAT(TenantKey::FromHmacSecret(SecretBytes()), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(TenantKey ed_key, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK_AND_ASSIGN(Bytes ed, ed_key.PublicKeyDer());
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kRs256, ed).status().message(),
              HasSubstr("not an RSA key"));
  ASSERT_OK_AND_ASSIGN(TenantKey rsa_key, TenantKey::Generate(JwtAlgorithm::kRs256));
  ASSERT_OK_AND_ASSIGN(Bytes rsa, rsa_key.PublicKeyDer());
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kEdDsa, rsa).status().message(),
              HasSubstr("not an Ed25519 key"));
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kHs256, ed), Not(IsOk()));
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kEdDsa, Bytes{1, 2, 3}), Not(IsOk()));
  Bytes trailing = ed;
  trailing.push_back(0);
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kEdDsa, trailing), Not(IsOk()));
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kEdDsa, Bytes(32, 7)), Not(IsOk()));  // raw key

  EVP_PKEY* weak = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  ASSERT_NE(weak, nullptr);
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(weak, &der);
  ASSERT_GT(len, 0);
  Bytes weak_der(der, der + len);
  OPENSSL_free(der);
  EVP_PKEY_free(weak);
  EXPECT_THAT(TenantKey::FromDer(JwtAlgorithm::kRs256, weak_der).status().message(),
              HasSubstr("2048"));
  EXPECT_THAT(TenantKey::FromPem(JwtAlgorithm::kEdDsa,
                                 "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                 "-----END PUBLIC KEY-----\n"),
              Not(IsOk()));
}

TEST(TenantKeyStoreTest, AddRemoveLatestGeneration) {
  TenantKeyStore store;
  EXPECT_EQ(store.generation(), 0u);
  ASSERT_OK_AND_ASSIGN(TenantKey k, TenantKey::Generate(JwtAlgorithm::kHs256));
  EXPECT_OK(store.Add("acme", 3, k));
  EXPECT_OK(store.Add("acme", 10, k));
  EXPECT_OK(store.Add("acmf", 1, k));
  EXPECT_OK(store.Add("acm", 99, k));
  EXPECT_THAT(store.Add("acme", 3, k), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(store.Add("bad name", 1, k), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(store.size(), 4u);
  EXPECT_EQ(store.generation(), 4u);
  EXPECT_EQ(store.LatestVersion("acme"), 10u);
  EXPECT_EQ(store.LatestVersion("acmf"), 1u);
  EXPECT_EQ(store.LatestVersion("ac"), std::nullopt);
  EXPECT_TRUE(store.Find("acme", 3).has_value());
  EXPECT_FALSE(store.Find("acme", 4).has_value());
  EXPECT_OK(store.Remove("acme", 10));
  EXPECT_THAT(store.Remove("acme", 10), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(store.LatestVersion("acme"), 3u);
  EXPECT_EQ(store.generation(), 5u);

  std::vector<TenantKeyInfo> list = store.List();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].tenant, "acm");
  EXPECT_EQ(list[1].tenant, "acme");
  EXPECT_EQ(list[1].version, 3u);
  EXPECT_EQ(list[1].algorithm, JwtAlgorithm::kHs256);

  TenantKeyStore other;
  EXPECT_OK(other.Add("zeta", 1, k));
  store.ReplaceAllFrom(other);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_FALSE(store.Find("acme", 3).has_value());
  EXPECT_EQ(store.generation(), 6u);
}

TEST(TenantKeyStoreTest, ParsesEveryEncodingAndTheSoftwareRealmShape) {
  ASSERT_OK_AND_ASSIGN(TenantKey ed, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK_AND_ASSIGN(TenantKey rs, TenantKey::Generate(JwtAlgorithm::kRs256));
  ASSERT_OK_AND_ASSIGN(TenantKey ed2, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK_AND_ASSIGN(Bytes ed_spki, ed.PublicKeyDer());
  ASSERT_OK_AND_ASSIGN(Bytes ed2_spki, ed2.PublicKeyDer());
  const std::string ed_spki_hex = HexEncode(ed_spki);
  const std::string ed2_spki_hex = HexEncode(ed2_spki);
  ASSERT_OK_AND_ASSIGN(SecretBytes rs_pkcs8, rs.ExportSecret());
  ASSERT_OK_AND_ASSIGN(std::string ed_pem, ed.PublicKeyPem());
  std::string rs_pkcs8_b64 = Base64UrlEncode(rs_pkcs8.Reveal());  // converted below
  for (char& c : rs_pkcs8_b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (rs_pkcs8_b64.size() % 4 != 0) rs_pkcs8_b64.push_back('=');

  nlohmann::json doc;
  auto& t = doc["tenants"];
  t["hexco"]["1"] = {{"algorithm", "HS256"}, {"encoding", "hex"}, {"data", "00112233445566778899"}};
  t["utfco"]["1"] = {{"algorithm", "HmacSha256"}, {"encoding", "UTF8"}, {"data", "it's-a-me!"}};
  t["b64co"]["4"] = {{"algorithm", "HS256"}, {"encoding", "base64"}, {"data", "c2VjcmV0\n"}};
  t["edco"]["1"] = {{"algorithm", "EdDSA"}, {"encoding", "pem"}, {"data", ed_pem}};
  t["edco"]["2"] = {{"algorithm", "Edwards25519"}, {"encoding", "Hex"}, {"data", ed2_spki_hex}};
  t["rsco"]["1"] = {
      {"algorithm", "RsaPkcs1Sha256"}, {"encoding", "base64"}, {"data", rs_pkcs8_b64}};
  // The software realm stores each secret as a JSON string.
  t["test-wrapped"]["9"] =
      nlohmann::json({{"data", ed_spki_hex}, {"encoding", "Hex"}, {"algorithm", "Edwards25519"}})
          .dump();
  StatusOr<std::unique_ptr<TenantKeyStore>> parsed = TenantKeyStore::ParseJson(doc.dump());
  ASSERT_OK(parsed);
  std::shared_ptr<TenantKeyStore> store = std::move(*parsed);
  EXPECT_EQ(store->size(), 7u);

  ASSERT_OK_AND_ASSIGN(Bytes hexco_secret, HexDecode("00112233445566778899"));
  ASSERT_OK_AND_ASSIGN(TenantKey hexco,
                       TenantKey::FromHmacSecret(SecretBytes::CopyFrom(hexco_secret)));
  ExpectWorks(store, hexco, "hexco", 1);
  ASSERT_OK_AND_ASSIGN(TenantKey utfco,
                       TenantKey::FromHmacSecret(SecretBytes::CopyFrom(ToBytes("it's-a-me!"))));
  ExpectWorks(store, utfco, "utfco", 1);
  ASSERT_OK_AND_ASSIGN(TenantKey b64co,
                       TenantKey::FromHmacSecret(SecretBytes::CopyFrom(ToBytes("secret"))));
  ExpectWorks(store, b64co, "b64co", 4);
  ExpectWorks(store, ed, "edco", 1);
  ExpectWorks(store, ed2, "edco", 2);
  ExpectWorks(store, rs, "rsco", 1);
  ExpectWorks(store, ed, "test-wrapped", 9);
  // Keys are bound to their own slot: ed's signature does not pass as edco:2.
  JwtMintRequest req{"edco", 2, "u", kRealmHex, kNow, 600, "user"};
  JwtValidator v(store, [] { return kNow; });
  ASSERT_OK_AND_ASSIGN(std::string ed_token, MintJwt(ed, req));
  ASSERT_OK_AND_ASSIGN(Bytes realm, HexDecode(kRealmHex));
  EXPECT_THAT(v.ValidateUncached(ed_token, realm), Not(IsOk()));

  std::vector<TenantKeyInfo> list = store->List();
  auto rsco = std::find_if(list.begin(), list.end(), [](auto& i) { return i.tenant == "rsco"; });
  ASSERT_NE(rsco, list.end());
  EXPECT_TRUE(rsco->has_private_part);
  EXPECT_EQ(rsco->algorithm, JwtAlgorithm::kRs256);
}

TEST(TenantKeyStoreTest, BadFilesFailWithoutLeakingKeyMaterial) {
  const std::string secret_hex = "5ec7e75ec7e75ec7e75ec7e7";
  struct Case {
    std::string json;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"not json " + secret_hex, "not valid JSON"},
      {"[]", "not a JSON object"},
      {"{}", "no \"tenants\""},
      {R"({"tenants": []})", "\"tenants\" is not an object"},
      {R"({"tenants": {"ac me": {}}})", "does not match"},
      {R"({"tenants": {"acme": []}})", "acme is not an object"},
      {R"({"tenants": {"acme": {"v1": {}}}})", "not a decimal u64"},
      {R"({"tenants": {"acme": {"-1": {}}}})", "not a decimal u64"},
      {R"({"tenants": {"acme": {"1": 5}}})", "not a JSON object"},
      {R"({"tenants": {"acme": {"1": {"encoding": "hex", "data": "SECRET"}}}})", "algorithm"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS512", "encoding": "hex", "data": "SECRET"}}}})",
       "unknown key algorithm"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "rot13", "data": "SECRET"}}}})",
       "unknown encoding"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "hex", "data": "SECRETzz"}}}})",
       "not valid hex"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "hex", "data": ""}}}})",
       "empty"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "base64", "data": "SECRET*"}}}})",
       "not valid base64"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "pem", "data": "SECRET"}}}})",
       "pem"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "EdDSA", "encoding": "hex", "data": "SECRET00"}}}})",
       "neither"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "hex", "data": "SECRET", "extra": 1}}}})",
       "unknown member"},
      {R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "utf8", "data": "x"}, "01": {"algorithm": "HS256", "encoding": "utf8", "data": "y"}}}})",
       "already has key version 1"},
  };
  for (Case& c : cases) {
    size_t pos;
    while ((pos = c.json.find("SECRET")) != std::string::npos) c.json.replace(pos, 6, secret_hex);
    StatusOr<std::unique_ptr<TenantKeyStore>> r = TenantKeyStore::ParseJson(c.json);
    ASSERT_THAT(r, Not(IsOk())) << c.json;
    EXPECT_THAT(r.status().message(), HasSubstr(c.reason)) << c.json;
    EXPECT_THAT(r.status().message(), Not(HasSubstr(secret_hex))) << c.json;
  }
}

TEST(TenantKeyStoreTest, SaveFileIsAtomicPrivateAndRoundTrips) {
  TempDir dir;
  std::filesystem::path path = dir.path() / "keys.json";
  auto store = std::make_shared<TenantKeyStore>();
  ASSERT_OK_AND_ASSIGN(TenantKey hs, TenantKey::Generate(JwtAlgorithm::kHs256));
  ASSERT_OK_AND_ASSIGN(TenantKey ed, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK_AND_ASSIGN(TenantKey rs, TenantKey::Generate(JwtAlgorithm::kRs256));
  ASSERT_OK_AND_ASSIGN(TenantKey ed_pub_signer, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK(store->Add("acme", 1, hs));
  ASSERT_OK(store->Add("acme", 2, ed));
  ASSERT_OK(store->Add("test-rs", 5, rs));
  ASSERT_OK(store->Add("pubonly", 1, ed_pub_signer.PublicOnly()));

  WriteFile(path, "old contents", 0644);
  ASSERT_OK(store->SaveFile(path));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  size_t entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u) << "temporary file left behind";

  std::vector<std::string> warnings;
  StatusOr<std::unique_ptr<TenantKeyStore>> loaded = TenantKeyStore::LoadFile(path, &warnings);
  ASSERT_OK(loaded);
  EXPECT_TRUE(warnings.empty());
  std::shared_ptr<TenantKeyStore> back = std::move(*loaded);
  ASSERT_EQ(back->size(), 4u);
  ExpectWorks(back, hs, "acme", 1);
  ExpectWorks(back, ed, "acme", 2);
  ExpectWorks(back, rs, "test-rs", 5);
  ExpectWorks(back, ed_pub_signer, "pubonly", 1);
  // Private halves survive the round trip (so the admin tool can mint); public-only stays so.
  EXPECT_TRUE(back->Find("acme", 2)->can_sign());
  EXPECT_TRUE(back->Find("test-rs", 5)->can_sign());
  EXPECT_FALSE(back->Find("pubonly", 1)->can_sign());
  ExpectWorks(store, *back->Find("acme", 2), "acme", 2);

  // The file is the documented format.
  std::ifstream in(path);
  nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc["tenants"]["acme"]["2"]["algorithm"], "EdDSA");
  EXPECT_EQ(doc["tenants"]["acme"]["2"]["encoding"], "hex");
  ASSERT_OK_AND_ASSIGN(Bytes ed_pub_der, ed_pub_signer.PublicKeyDer());
  EXPECT_EQ(doc["tenants"]["pubonly"]["1"]["data"], HexEncode(ed_pub_der));

  // Empty store serialises to a loadable file too.
  TenantKeyStore empty;
  ASSERT_OK(empty.SaveFile(path));
  ASSERT_OK_AND_ASSIGN(auto reloaded, TenantKeyStore::LoadFile(path, nullptr));
  EXPECT_EQ(reloaded->size(), 0u);

  // Saving into a missing directory fails and creates nothing.
  EXPECT_THAT(store->SaveFile(dir.path() / "missing" / "keys.json"), Not(IsOk()));
}

TEST(TenantKeyStoreTest, LoadFileWarnsAboutLoosePermissions) {
  TempDir dir;
  std::filesystem::path path = dir.path() / "keys.json";
  EXPECT_THAT(TenantKeyStore::LoadFile(path, nullptr), StatusIs(StatusCode::kNotFound));
  WriteFile(
      path,
      R"({"tenants": {"acme": {"1": {"algorithm": "HS256", "encoding": "utf8", "data": "s"}}}})",
      0644);
  std::vector<std::string> warnings;
  ASSERT_OK(TenantKeyStore::LoadFile(path, &warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("0644"));
  EXPECT_THAT(warnings[0], HasSubstr("chmod 600"));
  warnings.clear();
  ::chmod(path.c_str(), 0600);
  ASSERT_OK(TenantKeyStore::LoadFile(path, &warnings));
  EXPECT_TRUE(warnings.empty());
  WriteFile(path, "{", 0600);
  StatusOr<std::unique_ptr<TenantKeyStore>> bad = TenantKeyStore::LoadFile(path, &warnings);
  ASSERT_THAT(bad, Not(IsOk()));
  EXPECT_THAT(bad.status().message(), HasSubstr(path.string()));
}

TEST(TenantKeyStoreTest, EnvironmentAndConfiguredFile) {
  TempDir dir;
  std::filesystem::path path = dir.path() / "keys.json";
  WriteFile(
      path,
      R"({"tenants": {"filed": {"1": {"algorithm": "HS256", "encoding": "utf8", "data": "file-secret"}}}})",
      0600);
  ASSERT_OK_AND_ASSIGN(TenantKey ed, TenantKey::Generate(JwtAlgorithm::kEdDsa));
  ASSERT_OK_AND_ASSIGN(std::string ed_pem, ed.PublicKeyPem());
  std::string ed_json =
      nlohmann::json({{"algorithm", "EdDSA"}, {"encoding", "pem"}, {"data", ed_pem}}).dump();
  std::string file_var = "PINVAULT_TENANT_KEYS_FILE=" + path.string();
  std::string raw_var = "PINVAULT_TENANT_acme_1=raw secret bytes";
  std::string json_var = "PINVAULT_TENANT_test_Ed_12=" + ed_json;
  std::vector<const char*> env = {"HOME=/root",     file_var.c_str(),   raw_var.c_str(),
                                  json_var.c_str(), "PINVAULT_OTHER=1", nullptr};
  std::vector<std::string> warnings;
  StatusOr<std::unique_ptr<TenantKeyStore>> loaded =
      TenantKeyStore::LoadConfigured("", env.data(), &warnings);
  ASSERT_OK(loaded);
  std::shared_ptr<TenantKeyStore> store = std::move(*loaded);
  EXPECT_EQ(store->size(), 3u);
  ASSERT_OK_AND_ASSIGN(TenantKey filed,
                       TenantKey::FromHmacSecret(SecretBytes::CopyFrom(ToBytes("file-secret"))));
  ExpectWorks(store, filed, "filed", 1);
  ASSERT_OK_AND_ASSIGN(
      TenantKey raw, TenantKey::FromHmacSecret(SecretBytes::CopyFrom(ToBytes("raw secret bytes"))));
  ExpectWorks(store, raw, "acme", 1);
  ExpectWorks(store, ed, "test-Ed", 12);

  // An explicit keys file wins over PINVAULT_TENANT_KEYS_FILE.
  std::filesystem::path other = dir.path() / "other.json";
  WriteFile(other, R"({"tenants": {}})", 0600);
  StatusOr<std::unique_ptr<TenantKeyStore>> explicit_file =
      TenantKeyStore::LoadConfigured(other, env.data(), nullptr);
  ASSERT_OK(explicit_file);
  EXPECT_FALSE((*explicit_file)->Find("filed", 1).has_value());
  EXPECT_TRUE((*explicit_file)->Find("acme", 1).has_value());

  // Malformed variables are errors naming the variable, not its value.
  for (const char* bad : {"PINVAULT_TENANT_acme=hunter2", "PINVAULT_TENANT_acme_x=hunter2",
                          "PINVAULT_TENANT_ac-me_1=hunter2", "PINVAULT_TENANT__1=hunter2",
                          "PINVAULT_TENANT_acme_1={hunter2", "PINVAULT_TENANT_acme_1="}) {
    std::vector<const char*> e = {bad, nullptr};
    TenantKeyStore s;
    Status st = s.AddFromEnvironment(e.data());
    EXPECT_THAT(st, Not(IsOk())) << bad;
    EXPECT_THAT(st.message(), Not(HasSubstr("hunter2"))) << bad;
    EXPECT_THAT(st.message(), HasSubstr("PINVAULT_TENANT_")) << bad;
  }
  // The same key defined in the file and the environment is a conflict.
  std::string dup = "PINVAULT_TENANT_filed_1=x";
  std::vector<const char*> e = {file_var.c_str(), dup.c_str(), nullptr};
  EXPECT_THAT(TenantKeyStore::LoadConfigured("", e.data(), nullptr),
              StatusIs(StatusCode::kAlreadyExists));
  // A missing keys file is an error, not an empty key set.
  std::vector<const char*> missing = {"PINVAULT_TENANT_KEYS_FILE=/nonexistent/keys.json", nullptr};
  EXPECT_THAT(TenantKeyStore::LoadConfigured("", missing.data(), nullptr),
              StatusIs(StatusCode::kNotFound));
}

TEST(TenantKeyStoreTest, ToJsonHoldsSecretsOnlyInSecretBytes) {
  TenantKeyStore store;
  SecretBytes secret = SecretBytes::CopyFrom(ToBytes("abc"));
  ASSERT_OK_AND_ASSIGN(TenantKey key, TenantKey::FromHmacSecret(std::move(secret)));
  ASSERT_OK(store.Add("acme", 1, std::move(key)));
  ASSERT_OK_AND_ASSIGN(SecretBytes json, store.ToJson());
  EXPECT_THAT(Text(json), HasSubstr("\"data\": \"616263\""));
  EXPECT_OK(TenantKeyStore::ParseJson(Text(json)));
}

}  // namespace
}  // namespace pinvault::api
