// Token set-up inside the process (pkcs11/token_setup.h), each test in a fresh SoftHSM2
// directory: initialising a token and its user PIN, wrong PINs refused without the PIN in the
// message, provisioning the realm key set idempotently, and the session owner closing what it
// opened.
#include "pkcs11/token_setup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "pkcs11/key_set.h"
#include "pkcs11/objects.h"
#include "pkcs11/session_pool.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "vault/bytes.h"
#include "vault/record.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::IsOk;
using ::pinvault::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kLabel[] = "setup-test";
// Distinctive PIN texts, so that a message quoting one would be noticed.
constexpr char kSoPin[] = "so-pin-4417-right";
constexpr char kUserPin[] = "user-pin-9083-right";
constexpr char kWrongPin[] = "pin-2256-wrong";

SecretBytes Pin(std::string_view text) { return SecretBytes::CopyFrom(AsBytes(text)); }

// MentionsNoPin matches a Status whose message contains none of the test's PIN texts.
auto MentionsNoPin() {
  return AllOf(Not(HasSubstr(kSoPin)), Not(HasSubstr(kUserPin)), Not(HasSubstr(kWrongPin)));
}

std::string MessageOf(const Status& status) { return status.message(); }

// TokenSetupTest gives each test a SoftHSM2 directory with no token yet and the module loaded
// on it (SoftHSM2 reads SOFTHSM2_CONF in C_Initialize).
class TokenSetupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(dir_, testing::MakeTempDir("pinvault-token-setup-"));
    ASSERT_OK_AND_ASSIGN(std::string conf, WriteSoftHsmConfig(dir_));
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    LoadModule();
  }

  void TearDown() override {
    module_.reset();
    ::unsetenv("SOFTHSM2_CONF");
    if (!dir_.empty()) testing::RemoveTree(dir_);
  }

  // LoadModule (re)loads SoftHSM2, which then reads the token directory afresh.
  void LoadModule() {
    module_.reset();
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Module> module, Module::Load(kDefaultModulePath));
    module_ = std::move(module);
  }

  StatusOr<TokenDescription> Initialize() {
    return InitializeToken(*module_, kLabel, Pin(kSoPin), Pin(kUserPin));
  }

  ProvisionOptions WithUserPin(std::string_view pin) {
    ProvisionOptions options;
    options.user_pin = Pin(pin);
    return options;
  }

  std::string dir_;
  std::shared_ptr<Module> module_;
};

TEST_F(TokenSetupTest, InitializesATokenWhoseUserPinLogsIn) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  EXPECT_EQ(token.label, kLabel);
  EXPECT_NE(token.flags & CKF_TOKEN_INITIALIZED, 0u);
  EXPECT_NE(token.flags & CKF_USER_PIN_INITIALIZED, 0u);

  ASSERT_OK_AND_ASSIGN(Session session, Session::Open(*module_, token.slot));
  EXPECT_THAT(session.Login(CKU_USER, Pin(kUserPin)), IsOk());
  EXPECT_FALSE(session.so_logged_in());
}

TEST_F(TokenSetupTest, InitializedTokenIsThereAfterTheModuleIsReloaded) {
  ASSERT_THAT(Initialize(), IsOk());
  LoadModule();
  TokenUri uri;
  uri.token = kLabel;
  ASSERT_OK_AND_ASSIGN(TokenDescription token, module_->FindToken(uri));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<SessionPool> pool,
      SessionPool::OpenWithPin(module_, std::move(uri), Pin(kUserPin), SessionPool::Options()));
  EXPECT_EQ(pool->token().label, kLabel);
}

TEST_F(TokenSetupTest, EachTokenGetsItsOwnFreeSlot) {
  ASSERT_THAT(Initialize(), IsOk());
  ASSERT_OK_AND_ASSIGN(TokenDescription second,
                       InitializeToken(*module_, "setup-test-2", Pin(kSoPin), Pin(kUserPin)));
  EXPECT_EQ(second.label, "setup-test-2");
  ASSERT_OK_AND_ASSIGN(std::vector<TokenDescription> tokens, module_->ListTokens());
  std::set<std::string> labels;
  for (const TokenDescription& t : tokens) {
    if (t.flags & CKF_TOKEN_INITIALIZED) labels.insert(t.label);
  }
  EXPECT_EQ(labels, (std::set<std::string>{kLabel, "setup-test-2"}));
}

TEST_F(TokenSetupTest, SecondTokenWithTheSameLabelIsRefused) {
  ASSERT_THAT(Initialize(), IsOk());
  EXPECT_THAT(Initialize(), StatusIs(StatusCode::kAlreadyExists, HasSubstr(kLabel)));
}

TEST_F(TokenSetupTest, LabelLongerThanTheTokenFieldIsRefused) {
  std::string label(33, 'x');
  EXPECT_THAT(InitializeToken(*module_, label, Pin(kSoPin), Pin(kUserPin)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("32 bytes")));
}

TEST_F(TokenSetupTest, WrongUserPinIsPermissionDeniedAndTheMessageHasNoPin) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  ASSERT_OK_AND_ASSIGN(Session session, Session::Open(*module_, token.slot));
  Status login = session.Login(CKU_USER, Pin(kWrongPin));
  EXPECT_THAT(login, StatusIs(StatusCode::kPermissionDenied,
                              AllOf(HasSubstr("C_Login"), HasSubstr("CKR_PIN_INCORRECT"))));
  EXPECT_THAT(MessageOf(login), MentionsNoPin());

  StatusOr<ProvisionedRealm> realm =
      ProvisionRealm(module_, "pkcs11:token=setup-test", WithUserPin(kWrongPin));
  EXPECT_THAT(realm, StatusIs(StatusCode::kPermissionDenied, HasSubstr("CKR_PIN_INCORRECT")));
  EXPECT_THAT(MessageOf(realm.status()), MentionsNoPin());
}

TEST_F(TokenSetupTest, WrongSoPinIsPermissionDeniedAndTheMessageHasNoPin) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  Status reset = InitUserPin(*module_, kLabel, Pin(kWrongPin), Pin("user-pin-0000-new"));
  EXPECT_THAT(reset, StatusIs(StatusCode::kPermissionDenied,
                              AllOf(HasSubstr("C_Login(SO)"), HasSubstr("CKR_PIN_INCORRECT"))));
  EXPECT_THAT(MessageOf(reset), AllOf(MentionsNoPin(), Not(HasSubstr("user-pin-0000-new"))));

  // The user PIN is unchanged and no SO login was left behind.
  ASSERT_OK_AND_ASSIGN(Session session, Session::Open(*module_, token.slot));
  EXPECT_THAT(session.Login(CKU_USER, Pin(kUserPin)), IsOk());
}

TEST_F(TokenSetupTest, TooShortSoPinIsRefusedAndTheMessageHasNoPin) {
  // SoftHSM2 wants 4 to 255 bytes; it reports a shorter SO PIN as CKR_PIN_INCORRECT.
  StatusOr<TokenDescription> token = InitializeToken(*module_, kLabel, Pin("zq7"), Pin(kUserPin));
  EXPECT_THAT(token, StatusIs(StatusCode::kPermissionDenied,
                              AllOf(HasSubstr("C_InitToken"), HasSubstr(kLabel))));
  EXPECT_THAT(MessageOf(token.status()), AllOf(MentionsNoPin(), Not(HasSubstr("zq7"))));
  // The slot is still free.
  EXPECT_THAT(Initialize(), IsOk());
}

TEST_F(TokenSetupTest, CorrectSoPinResetsTheUserPin) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  ASSERT_THAT(InitUserPin(*module_, kLabel, Pin(kSoPin), Pin("user-pin-0000-new")), IsOk());
  ASSERT_OK_AND_ASSIGN(Session session, Session::Open(*module_, token.slot));
  EXPECT_THAT(session.Login(CKU_USER, Pin(kUserPin)), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(session.Login(CKU_USER, Pin("user-pin-0000-new")), IsOk());
}

TEST_F(TokenSetupTest, ProvisioningTwiceCreatesNoDuplicateKeys) {
  ASSERT_THAT(Initialize(), IsOk());
  ASSERT_OK_AND_ASSIGN(ProvisionedRealm first,
                       ProvisionRealm(module_, "pkcs11:token=setup-test", WithUserPin(kUserPin)));
  ASSERT_FALSE(first.actions.empty());
  for (const KeySetAction& action : first.actions) {
    EXPECT_TRUE(action.created) << action.label;
  }
  Bytes aad = ToBytes("associated data");
  SecretBytes plaintext = SecretBytes::Random(vault::kRecordPlaintextSize);
  ASSERT_OK_AND_ASSIGN(vault::SealedBlob sealed,
                       first.hsm->Seal(first.hsm->CurrentSealingKeyId(), plaintext.Reveal(), aad));
  AttributeTemplate token_objects;
  token_objects.Bool(CKA_TOKEN, true);
  ASSERT_OK_AND_ASSIGN(std::vector<CK_OBJECT_HANDLE> objects_before,
                       FindObjects(first.hsm->pool(), token_objects));
  first.hsm.reset();

  ASSERT_OK_AND_ASSIGN(ProvisionedRealm second,
                       ProvisionRealm(module_, "pkcs11:token=setup-test", WithUserPin(kUserPin)));
  ASSERT_EQ(second.actions.size(), first.actions.size());
  for (const KeySetAction& action : second.actions) {
    EXPECT_FALSE(action.created) << action.label;
  }
  ASSERT_OK_AND_ASSIGN(std::vector<CK_OBJECT_HANDLE> objects_after,
                       FindObjects(second.hsm->pool(), token_objects));
  EXPECT_EQ(objects_after.size(), objects_before.size());
  // FindRealmKeys refuses a duplicated label; and the keys are the same ones as before.
  EXPECT_THAT(FindRealmKeys(second.hsm->pool()), IsOk());
  ASSERT_OK_AND_ASSIGN(SecretBytes opened, second.hsm->Unseal(sealed, aad));
  EXPECT_TRUE(opened.Equals(plaintext));
}

TEST_F(TokenSetupTest, ProvisioningAnUnknownTokenIsNotFound) {
  ASSERT_THAT(Initialize(), IsOk());
  EXPECT_THAT(ProvisionRealm(module_, "pkcs11:token=no-such-token", WithUserPin(kUserPin)),
              StatusIs(StatusCode::kNotFound, HasSubstr("no-such-token")));
  EXPECT_THAT(ProvisionRealm(nullptr, "pkcs11:token=setup-test", WithUserPin(kUserPin)),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(TokenSetupTest, ProvisioningOnAnOpenPoolSharesItWithTheHsm) {
  ASSERT_THAT(Initialize(), IsOk());
  ASSERT_OK_AND_ASSIGN(TokenUri uri, ParseTokenUri("pkcs11:token=setup-test"));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<SessionPool> opened,
      SessionPool::OpenWithPin(module_, std::move(uri), Pin(kUserPin), SessionPool::Options()));
  std::shared_ptr<SessionPool> pool = std::move(opened);
  KeySetOptions keys;
  keys.audit_algorithm = vault::SignatureAlgorithm::kEcdsaP256;
  ASSERT_OK_AND_ASSIGN(ProvisionedRealm first, ProvisionRealm(pool, keys));
  EXPECT_EQ(&first.hsm->pool(), pool.get());
  ASSERT_FALSE(first.actions.empty());
  for (const KeySetAction& action : first.actions) {
    EXPECT_TRUE(action.created) << action.label;
  }
  EXPECT_EQ(first.hsm->keys().audit_algorithm, vault::SignatureAlgorithm::kEcdsaP256);

  ASSERT_OK_AND_ASSIGN(ProvisionedRealm second, ProvisionRealm(pool));
  ASSERT_EQ(second.actions.size(), first.actions.size());
  for (const KeySetAction& action : second.actions) {
    EXPECT_FALSE(action.created) << action.label;
  }
  EXPECT_THAT(ProvisionRealm(std::shared_ptr<SessionPool>()),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(TokenSetupTest, SessionOwnerClosesItsSession) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  CK_FUNCTION_LIST* f = module_->functions();
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  {
    ASSERT_OK_AND_ASSIGN(Session session, Session::Open(*module_, token.slot));
    handle = session.handle();
    CK_SESSION_INFO info{};
    ASSERT_EQ(f->C_GetSessionInfo(handle, &info), CKR_OK);
    EXPECT_NE(info.flags & CKF_RW_SESSION, 0u);
    // A move hands the session over; the moved-from owner closes nothing.
    Session moved = std::move(session);
    EXPECT_EQ(session.handle(), CK_INVALID_HANDLE);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(moved.handle(), handle);
    EXPECT_EQ(f->C_GetSessionInfo(handle, &info), CKR_OK);
  }
  CK_SESSION_INFO info{};
  EXPECT_EQ(f->C_GetSessionInfo(handle, &info), CKR_SESSION_HANDLE_INVALID);
}

TEST_F(TokenSetupTest, SessionOwnerLogsOutItsSoLogin) {
  ASSERT_OK_AND_ASSIGN(TokenDescription token, Initialize());
  // `other` stays open throughout, so the SO login would outlive the closed session unless
  // the owner logged it out.
  ASSERT_OK_AND_ASSIGN(Session other, Session::Open(*module_, token.slot));
  {
    ASSERT_OK_AND_ASSIGN(Session so, Session::Open(*module_, token.slot));
    ASSERT_THAT(so.Login(CKU_SO, Pin(kSoPin)), IsOk());
    EXPECT_TRUE(so.so_logged_in());
    EXPECT_THAT(
        other.Login(CKU_USER, Pin(kUserPin)),
        StatusIs(StatusCode::kPermissionDenied, HasSubstr("CKR_USER_ANOTHER_ALREADY_LOGGED_IN")));
  }
  EXPECT_THAT(other.Login(CKU_USER, Pin(kUserPin)), IsOk());
}

TEST(RandomPinTest, IsFreshLowercaseHex) {
  SecretBytes a = RandomPin();
  SecretBytes b = RandomPin();
  ASSERT_EQ(a.size(), 32u);
  EXPECT_FALSE(a.Equals(b));
  for (uint8_t c : a.Reveal()) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << int(c);
  }
  EXPECT_EQ(RandomPin(0).size(), 4u);
}

}  // namespace
}  // namespace pinvault::pkcs11
