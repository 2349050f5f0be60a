// The attribute reader and the key policy audit, on fresh tokens of both modules.
#include "pkcs11/audit.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/objects.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/token_backends.h"

namespace pinvault::pkcs11 {
namespace {

using Finding = std::pair<std::string, std::string>;  // (label or subject, attribute)

std::set<Finding> Violations(const AuditReport& report) {
  std::set<Finding> out;
  for (const ObjectReport& o : report.objects) {
    for (const Violation& v : o.violations)
      out.insert({o.attributes.label.value_or(""), v.attribute});
  }
  for (const TokenFinding& f : report.findings) out.insert({f.subject, f.violation.attribute});
  return out;
}

class AuditTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    StatusOr<TestToken> token = MakeTestToken(GetParam());
    ASSERT_OK(token);
    token_ = std::make_unique<TestToken>(*std::move(token));
    StatusOr<std::unique_ptr<Module>> module = token_->LoadModule();
    ASSERT_OK(module);
    module_ = *std::move(module);
    ASSERT_OK_AND_ASSIGN(TokenUri uri, ParseTokenUri(token_->uri));
    StatusOr<std::unique_ptr<SessionPool>> pool = SessionPool::Open(module_, std::move(uri));
    ASSERT_OK(pool);
    pool_ = *std::move(pool);
    TokenDescription d = pool_->token();
    StatusOr<Capabilities> caps = DetectCapabilities(*module_, d.slot, d.flags);
    ASSERT_OK(caps);
    caps_ = *caps;
  }
  void TearDown() override {
    pool_.reset();
    module_.reset();
    token_.reset();
  }

  AuditReport Audit(bool require_local = true) {
    AuditPolicy policy;
    policy.require_local = require_local;
    StatusOr<AuditReport> report = AuditToken(*pool_, caps_, policy);
    EXPECT_OK(report);
    return report.ok() ? *std::move(report) : AuditReport();
  }

  // ExpectedModuleFindings: what the module itself contributes to every audit.
  std::set<Finding> ExpectedModuleFindings() {
    if (GetParam() == Backend::kNss) return {{"module", "CKA_EXTRACTABLE"}};
    return {};
  }

  CK_OBJECT_HANDLE GenerateAes(AttributeTemplate& t) {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    Status s = pool_->Run([&](CK_SESSION_HANDLE session) {
      CK_MECHANISM m{CKM_AES_KEY_GEN, nullptr, 0};
      return CallResult{pool_->functions()->C_GenerateKey(session, &m, t.data(), t.size(), &handle),
                        "C_GenerateKey"};
    });
    EXPECT_OK(s);
    return handle;
  }

  std::unique_ptr<TestToken> token_;
  std::shared_ptr<Module> module_;
  std::shared_ptr<SessionPool> pool_;
  Capabilities caps_;
};

TEST_P(AuditTest, WrapEnforcementProbeMatchesTheModule) {
  StatusOr<std::optional<bool>> enforced = ProbeWrapEnforcement(*pool_, caps_);
  ASSERT_OK(enforced);
  ASSERT_TRUE(enforced->has_value());
  // NSS softokn 3.87 wraps CKA_EXTRACTABLE=false keys; SoftHSM2 refuses.
  EXPECT_EQ(**enforced, GetParam() == Backend::kSoftHsm);
}

TEST_P(AuditTest, EmptyTokenFailsNamingEveryMissingKey) {
  AuditReport report = Audit();
  EXPECT_FALSE(report.pass());
  std::set<Finding> expected = {{"pinvault-record-seal-1", "presence"},
                                {"pinvault-record-id-mac", "presence"},
                                {"pinvault-anchor-mac", "presence"},
                                {"pinvault-audit-sign", "presence"}};
  for (const Finding& f : ExpectedModuleFindings()) expected.insert(f);
  EXPECT_EQ(Violations(report), expected);
}

TEST_P(AuditTest, FreshKeySetPassesTheAudit) {
  ASSERT_OK(EnsureRealmKeys(*pool_, caps_, {}));
  // Store an anchor too: its holder is recognised and checked.
  StatusOr<std::unique_ptr<TokenHsm>> hsm = TokenHsm::Create(pool_);
  ASSERT_OK(hsm);
  ASSERT_OK((*hsm)->StoreAnchor(0, 0, ToBytes("root||epoch||mac")));

  AuditReport report = Audit();
  ASSERT_EQ(report.objects.size(), 6u);
  std::set<std::string> roles;
  for (const ObjectReport& o : report.objects) {
    ASSERT_TRUE(o.role.has_value()) << o.attributes.label.value_or("");
    roles.insert(o.description.substr(0, o.description.find(" (")));
    // Every boolean and usage attribute a realm key has was read.
    if (o.attributes.object_class == CKO_SECRET_KEY && *o.role != RealmKeyRole::kAnchorHolder) {
      for (Flag f : {Flag::kSensitive, Flag::kAlwaysSensitive, Flag::kExtractable,
                     Flag::kNeverExtractable, Flag::kLocal, Flag::kModifiable, Flag::kEncrypt,
                     Flag::kSign, Flag::kWrap, Flag::kDerive}) {
        EXPECT_TRUE(o.attributes.Get(f).has_value()) << InfoFor(f).attribute;
      }
      EXPECT_EQ(o.attributes.value_len, 32u);
      EXPECT_TRUE(o.attributes.id.has_value());
    }
  }
  EXPECT_EQ(roles, (std::set<std::string>{"record-sealing key", "record-id MAC key",
                                          "anchor MAC key", "audit signing key",
                                          "audit verification key", "rollback-anchor holder"}));
  if (GetParam() == Backend::kSoftHsm) {
    EXPECT_TRUE(report.pass());
    EXPECT_EQ(Violations(report), std::set<Finding>{});
  } else {
    // NSS softokn never reports CKA_LOCAL true, even for keys it generated, and does not
    // enforce CKA_EXTRACTABLE on wrap: the strict audit says so, object by object.
    std::set<Finding> expected = {{"pinvault-record-seal-1", "CKA_LOCAL"},
                                  {"pinvault-record-id-mac", "CKA_LOCAL"},
                                  {"pinvault-anchor-mac", "CKA_LOCAL"},
                                  {"pinvault-audit-sign", "CKA_LOCAL"},
                                  {"module", "CKA_EXTRACTABLE"}};
    EXPECT_EQ(Violations(report), expected);
    AuditReport relaxed = Audit(/*require_local=*/false);
    EXPECT_EQ(Violations(relaxed), (std::set<Finding>{{"module", "CKA_EXTRACTABLE"}}));
  }
}

TEST_P(AuditTest, HandMadeExtractableKeyFailsTheAudit) {
  ASSERT_OK(EnsureRealmKeys(*pool_, caps_, {}));
  AttributeTemplate rogue;
  rogue.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, true)
      .Bool(CKA_ENCRYPT, true)
      .String(CKA_LABEL, "rogue");
  GenerateAes(rogue);
  AuditReport report = Audit(/*require_local=*/GetParam() == Backend::kSoftHsm);
  EXPECT_FALSE(report.pass());
  std::set<Finding> expected = {{"rogue", "CKA_EXTRACTABLE"}};
  for (const Finding& f : ExpectedModuleFindings()) expected.insert(f);
  EXPECT_EQ(Violations(report), expected);
  for (const ObjectReport& o : report.objects) {
    if (o.attributes.label == "rogue") {
      EXPECT_FALSE(o.role.has_value());
      EXPECT_EQ(o.attributes.Get(Flag::kExtractable), true);
      EXPECT_EQ(o.attributes.Get(Flag::kNeverExtractable), false);
    }
  }
}

TEST_P(AuditTest, UnknownNonExtractableKeyIsListedAndPasses) {
  ASSERT_OK(EnsureRealmKeys(*pool_, caps_, {}));
  AttributeTemplate other;
  other.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, 16)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_ENCRYPT, true)
      .String(CKA_LABEL, "other-app");
  GenerateAes(other);
  AuditReport report = Audit(/*require_local=*/GetParam() == Backend::kSoftHsm);
  EXPECT_EQ(Violations(report), ExpectedModuleFindings());
  bool listed = false;
  for (const ObjectReport& o : report.objects) {
    if (o.attributes.label == "other-app") {
      listed = true;
      EXPECT_EQ(o.description, "not a realm object");
      EXPECT_TRUE(o.pass());
    }
  }
  EXPECT_TRUE(listed);
}

TEST_P(AuditTest, RealmLabelOnAKeyWithTooManyUsagesFails) {
  // A sealing key made by hand: modifiable, with wrap and sign on top of its role.
  AttributeTemplate t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_MODIFIABLE, true)
      .Bool(CKA_ENCRYPT, true)
      .Bool(CKA_DECRYPT, true)
      .Bool(CKA_WRAP, true)
      .Bool(CKA_SIGN, true)
      // Usages left out of a template take the module's defaults (SoftHSM: verify and unwrap
      // true), which is why the realm templates name every usage; name them here too.
      .Bool(CKA_VERIFY, false)
      .Bool(CKA_UNWRAP, false)
      .Bool(CKA_DERIVE, false)
      .String(CKA_LABEL, SealingKeyLabel(1));
  GenerateAes(t);
  ASSERT_OK(EnsureRealmKeys(*pool_, caps_, {}));  // creates the others, keeps this one
  AuditReport report = Audit(/*require_local=*/GetParam() == Backend::kSoftHsm);
  std::set<Finding> expected = {{"pinvault-record-seal-1", "CKA_MODIFIABLE"},
                                {"pinvault-record-seal-1", "CKA_WRAP"},
                                {"pinvault-record-seal-1", "CKA_SIGN"}};
  for (const Finding& f : ExpectedModuleFindings()) expected.insert(f);
  EXPECT_EQ(Violations(report), expected);
}

TEST_P(AuditTest, DuplicateRealmLabelIsAFinding) {
  ASSERT_OK(EnsureRealmKeys(*pool_, caps_, {}));
  AttributeTemplate t = SealingKeyTemplate(1);
  GenerateAes(t);
  AuditReport report = Audit(/*require_local=*/GetParam() == Backend::kSoftHsm);
  std::set<Finding> expected = ExpectedModuleFindings();
  size_t sealing_keys = 0;
  for (const ObjectReport& o : report.objects) {
    sealing_keys += o.role == RealmKeyRole::kRecordSeal ? 1 : 0;
  }
  if (GetParam() == Backend::kSoftHsm) {
    expected.insert({"pinvault-record-seal-1", "CKA_LABEL"});
    EXPECT_EQ(sealing_keys, 2u);
  } else {
    // NSS softokn does not create a second token key with the class, label and id of an
    // existing one: it regenerates the existing key in place (the old key value is lost). This
    // is why `hsm init` looks before it generates, and never generates over an existing label.
    EXPECT_EQ(sealing_keys, 1u);
  }
  EXPECT_EQ(Violations(report), expected);
}

INSTANTIATE_TEST_SUITE_P(Modules, AuditTest, ::testing::Values(Backend::kSoftHsm, Backend::kNss),
                         BackendName);

ObjectAttributes RealmSecretKey(const std::string& label, CK_KEY_TYPE type) {
  ObjectAttributes a;
  a.object_class = CKO_SECRET_KEY;
  a.key_type = type;
  a.label = label;
  a.value_len = 32;
  for (Flag f : {Flag::kToken, Flag::kPrivate, Flag::kSensitive, Flag::kAlwaysSensitive,
                 Flag::kNeverExtractable, Flag::kLocal}) {
    a.Set(f, true);
  }
  for (const FlagInfo& info : AllFlags()) {
    if (info.usage) a.Set(info.flag, false);
  }
  a.Set(Flag::kExtractable, false);
  a.Set(Flag::kModifiable, false);
  return a;
}

TEST(CheckObjectTest, PolicyRulesOneByOne) {
  AuditPolicy policy;
  ObjectAttributes mac = RealmSecretKey(kRecordIdMacLabel, CKK_GENERIC_SECRET);
  mac.Set(Flag::kSign, true);
  mac.Set(Flag::kVerify, true);
  EXPECT_TRUE(CheckObject(mac, policy).pass());

  // Each weakening is named by its attribute.
  for (auto [flag, value] : std::vector<std::pair<Flag, bool>>{{Flag::kSensitive, false},
                                                               {Flag::kAlwaysSensitive, false},
                                                               {Flag::kExtractable, true},
                                                               {Flag::kNeverExtractable, false},
                                                               {Flag::kLocal, false},
                                                               {Flag::kModifiable, true},
                                                               {Flag::kToken, false},
                                                               {Flag::kPrivate, false},
                                                               {Flag::kDerive, true},
                                                               {Flag::kEncrypt, true},
                                                               {Flag::kWrap, true},
                                                               {Flag::kSign, false}}) {
    ObjectAttributes bad = mac;
    bad.Set(flag, value);
    ObjectReport report = CheckObject(bad, policy);
    ASSERT_EQ(report.violations.size(), 1u) << InfoFor(flag).attribute;
    EXPECT_EQ(report.violations[0].attribute, InfoFor(flag).attribute);
  }
  // An attribute the module does not report is a violation when the policy needs it.
  ObjectAttributes unreported = mac;
  unreported.Set(Flag::kNeverExtractable, std::nullopt);
  EXPECT_EQ(CheckObject(unreported, policy).violations.size(), 1u);
  // ... and only a note when it does not.
  ObjectAttributes no_copyable = mac;
  no_copyable.Set(Flag::kCopyable, std::nullopt);
  ObjectReport noted = CheckObject(no_copyable, policy);
  EXPECT_TRUE(noted.pass());
  ASSERT_FALSE(noted.notes.empty());
  EXPECT_NE(noted.notes[0].find("CKA_COPYABLE unavailable"), std::string::npos);
  // Relaxing CKA_LOCAL.
  ObjectAttributes nonlocal = mac;
  nonlocal.Set(Flag::kLocal, false);
  AuditPolicy relaxed;
  relaxed.require_local = false;
  EXPECT_TRUE(CheckObject(nonlocal, relaxed).pass());
  // Wrong key type and length.
  ObjectAttributes seal = RealmSecretKey(SealingKeyLabel(3), CKK_GENERIC_SECRET);
  seal.Set(Flag::kEncrypt, true);
  seal.Set(Flag::kDecrypt, true);
  seal.value_len = 16;
  std::set<std::string> attrs;
  for (const Violation& v : CheckObject(seal, policy).violations) attrs.insert(v.attribute);
  EXPECT_EQ(attrs, (std::set<std::string>{"CKA_KEY_TYPE", "CKA_VALUE_LEN"}));
}

TEST(CheckObjectTest, AnchorHolderMustHaveNoUsages) {
  ObjectAttributes holder;
  holder.object_class = CKO_DATA;
  holder.label = kAnchorLabel;
  holder.Set(Flag::kToken, true);
  holder.Set(Flag::kPrivate, true);
  AuditPolicy policy;
  ObjectReport ok = CheckObject(holder, policy);
  EXPECT_TRUE(ok.pass());
  EXPECT_EQ(ok.role, RealmKeyRole::kAnchorHolder);

  ObjectAttributes key_holder = RealmSecretKey(kAnchorLabel, CKK_GENERIC_SECRET);
  EXPECT_TRUE(CheckObject(key_holder, policy).pass());
  key_holder.Set(Flag::kSign, true);
  ObjectReport bad = CheckObject(key_holder, policy);
  ASSERT_EQ(bad.violations.size(), 1u);
  EXPECT_EQ(bad.violations[0].attribute, "CKA_SIGN");
  key_holder.Set(Flag::kSign, false);
  key_holder.Set(Flag::kExtractable, true);
  EXPECT_FALSE(CheckObject(key_holder, policy).pass());
}

TEST(CheckObjectTest, UnknownKeysMustNotLeaveTheToken) {
  AuditPolicy policy;
  ObjectAttributes key;
  key.object_class = CKO_PRIVATE_KEY;
  key.label = "someone-elses";
  key.Set(Flag::kSensitive, true);
  key.Set(Flag::kExtractable, false);
  EXPECT_TRUE(CheckObject(key, policy).pass());
  key.Set(Flag::kExtractable, std::nullopt);
  EXPECT_FALSE(CheckObject(key, policy).pass());
  ObjectAttributes cert;
  cert.object_class = CKO_CERTIFICATE;
  cert.label = "a cert";
  EXPECT_TRUE(CheckObject(cert, policy).pass());
}

}  // namespace
}  // namespace pinvault::pkcs11
