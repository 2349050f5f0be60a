// Module loading, token selection by URI, and the session pool's login and recovery, on a
// fresh SoftHSM2 token per test.
#include "pkcs11/session_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pkcs11/module.h"
#include "pkcs11/uri.h"
#include "tests/testing/fault_module.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/token_backends.h"

namespace pinvault::pkcs11 {
namespace {

using ::pinvault::testing::StatusIs;

using testing::FaultModule;
using testing::SoftHsmToken;

TokenUri Uri(const std::string& text) {
  StatusOr<TokenUri> uri = ParseTokenUri(text);
  EXPECT_OK(uri);
  return *std::move(uri);
}

SessionPool::Options FastOptions() {
  SessionPool::Options options;
  options.retry_backoff = std::chrono::milliseconds(0);
  return options;
}

// RandomCall runs C_GenerateRandom on a leased session.
Status RandomCall(SessionPool& pool) {
  return pool.Run([&](CK_SESSION_HANDLE session) {
    CK_BYTE buf[16];
    return CallResult{pool.functions()->C_GenerateRandom(session, buf, sizeof(buf)),
                      "C_GenerateRandom"};
  });
}

// PoolTest runs on a fresh token of each backend.
class PoolTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    StatusOr<TestToken> token = MakeTestToken(GetParam());
    ASSERT_OK(token);
    token_ = std::make_unique<TestToken>(*std::move(token));
    StatusOr<std::unique_ptr<Module>> module = token_->LoadModule();
    ASSERT_OK(module);
    module_ = *std::move(module);
  }
  void TearDown() override {
    module_.reset();
    token_.reset();
  }
  std::string Label() const {
    return token_->softhsm ? token_->softhsm->label() : testing::NssToken::kTokenLabel;
  }
  std::string PinFile() const {
    return token_->softhsm ? token_->softhsm->pin_file() : token_->nss->pin_file();
  }
  std::string Dir() const { return token_->softhsm ? token_->softhsm->dir() : token_->nss->dir(); }
  std::string UriWithPinFile(const std::string& pin_file) const {
    return "pkcs11:token=" + PercentEncode(Label()) + "?pin-source=file:" + pin_file;
  }

  std::unique_ptr<TestToken> token_;
  std::shared_ptr<Module> module_;
};

class SoftHsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<SoftHsmToken>> token = SoftHsmToken::Create();
    ASSERT_OK(token);
    token_ = *std::move(token);
  }
  void TearDown() override {
    module_.reset();
    token_.reset();
  }
  void LoadModule() {
    StatusOr<std::unique_ptr<Module>> module = Module::Load(SoftHsmToken::kModulePath);
    ASSERT_OK(module);
    module_ = *std::move(module);
  }

  std::unique_ptr<SoftHsmToken> token_;
  std::shared_ptr<Module> module_;
};

TEST(ModuleLoadTest, MissingLibraryIsNotFound) {
  StatusOr<std::unique_ptr<Module>> module = Module::Load("/nonexistent/libnothing.so");
  EXPECT_THAT(module, StatusIs(StatusCode::kNotFound));
  EXPECT_NE(module.status().message().find("/nonexistent/libnothing.so"), std::string::npos);
}

TEST(ModuleLoadTest, LibraryWithoutPkcs11IsRefused) {
  StatusOr<std::unique_ptr<Module>> module = Module::Load("/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_THAT(module, StatusIs(StatusCode::kFailedPrecondition)) << module.status();
  EXPECT_NE(module.status().message().find("C_GetFunctionList"), std::string::npos);
}

TEST(ModuleLoadTest, ResolvesP11KitModuleNames) {
  StatusOr<std::string> path = Module::ResolveModulePath("softhsm2");
  ASSERT_OK(path);
  EXPECT_NE(path->find("libsofthsm2.so"), std::string::npos) << *path;
  EXPECT_EQ(Module::ResolveModulePath("no-such-module").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*Module::ResolveModulePath("/x/y.so"), "/x/y.so");
}

TEST_F(SoftHsmTest, ModuleInfoAndTokens) {
  LoadModule();
  StatusOr<ModuleInfo> info = module_->GetInfo();
  ASSERT_OK(info);
  EXPECT_EQ(info->manufacturer, "SoftHSM");
  StatusOr<std::vector<TokenDescription>> tokens = module_->ListTokens();
  ASSERT_OK(tokens);
  bool found = false;
  for (const TokenDescription& t : *tokens) found |= t.label == token_->label();
  EXPECT_TRUE(found);
}

TEST_F(SoftHsmTest, SecondInitialisationOfTheSameLibraryIsRefused) {
  LoadModule();
  StatusOr<std::unique_ptr<Module>> again = Module::Load(SoftHsmToken::kModulePath);
  EXPECT_THAT(again, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_NE(again.status().message().find("CKR_CRYPTOKI_ALREADY_INITIALIZED"), std::string::npos);
}

TEST_F(SoftHsmTest, ModuleCanBeLoadedAgainAfterDestruction) {
  LoadModule();
  module_.reset();
  LoadModule();
  EXPECT_OK(module_->FindToken(Uri(token_->uri())));
}

TEST_F(SoftHsmTest, FindsTokenByLabelSerialAndManufacturer) {
  LoadModule();
  StatusOr<TokenDescription> token = module_->FindToken(Uri(token_->uri()));
  ASSERT_OK(token);
  EXPECT_EQ(token->label, token_->label());
  EXPECT_FALSE(token->serial.empty());
  StatusOr<TokenDescription> by_serial =
      module_->FindToken(Uri("pkcs11:serial=" + token->serial + ";manufacturer=SoftHSM%20project"));
  ASSERT_OK(by_serial);
  EXPECT_EQ(by_serial->label, token_->label());
}

TEST_P(PoolTest, UnknownLabelIsNotFoundAndListsTokens) {
  StatusOr<TokenDescription> token = module_->FindToken(Uri("pkcs11:token=nope"));
  EXPECT_THAT(token, StatusIs(StatusCode::kNotFound));
  EXPECT_NE(token.status().message().find(Label()), std::string::npos) << token.status();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri("pkcs11:token=nope?pin-source=file:" + PinFile()));
  EXPECT_THAT(pool, StatusIs(StatusCode::kNotFound));
}

TEST_F(SoftHsmTest, AmbiguousSelectionIsRefused) {
  ASSERT_TRUE(token_->AddToken("second").ok());
  LoadModule();
  StatusOr<TokenDescription> token = module_->FindToken(Uri("pkcs11:model=SoftHSM%20v2"));
  EXPECT_THAT(token, StatusIs(StatusCode::kFailedPrecondition)) << token.status();
  EXPECT_TRUE(module_->FindToken(Uri("pkcs11:token=second")).ok());
}

TEST_P(PoolTest, WrongPinIsPermissionDenied) {
  std::string bad = Dir() + "/bad-pin";
  ASSERT_TRUE(testing::WriteFile(bad, "not-the-pin\n", 0600).ok());
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(UriWithPinFile(bad)));
  ASSERT_THAT(pool, StatusIs(StatusCode::kPermissionDenied)) << pool.status();
  EXPECT_NE(pool.status().message().find("CKR_PIN_INCORRECT"), std::string::npos);
  EXPECT_EQ(pool.status().message().find("not-the-pin"), std::string::npos);
  // The right PIN still works afterwards.
  EXPECT_TRUE(SessionPool::Open(module_, Uri(token_->uri)).ok());
}

TEST_P(PoolTest, MissingPinIsRefused) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri("pkcs11:token=" + PercentEncode(Label())));
  EXPECT_THAT(pool, StatusIs(StatusCode::kFailedPrecondition)) << pool.status();
  StatusOr<std::unique_ptr<SessionPool>> missing_file =
      SessionPool::Open(module_, Uri(UriWithPinFile("/nonexistent/pin")));
  EXPECT_THAT(missing_file, StatusIs(StatusCode::kNotFound));
}

TEST_P(PoolTest, RunsOperationsAndReusesSessions) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri), FastOptions());
  ASSERT_OK(pool);
  CK_SESSION_HANDLE first = CK_INVALID_HANDLE;
  for (int i = 0; i < 10; ++i) {
    StatusOr<SessionPool::Lease> lease = (*pool)->Acquire();
    ASSERT_OK(lease);
    if (i == 0) first = lease->handle();
    EXPECT_EQ(lease->handle(), first);  // LIFO reuse of one idle session
  }
  EXPECT_OK(RandomCall(**pool));
  EXPECT_EQ((*pool)->recoveries(), 0u);
}

TEST_P(PoolTest, NonRecoverableErrorsAreMappedNotRetried) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri), FastOptions());
  ASSERT_OK(pool);
  int calls = 0;
  Status s = (*pool)->Run([&](CK_SESSION_HANDLE session) {
    ++calls;
    CK_MECHANISM mechanism{CKM_AES_GCM, nullptr, 0};
    return CallResult{(*pool)->functions()->C_EncryptInit(session, &mechanism, 987654),
                      "C_EncryptInit"};
  });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_NE(s.message().find("C_EncryptInit: CKR_"), std::string::npos) << s;
}

TEST_P(PoolTest, ConcurrentUse) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri), FastOptions());
  ASSERT_OK(pool);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (!RandomCall(**pool).ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(PoolTest, RecoversAfterAllSessionsAreClosedUnderThePool) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri), FastOptions());
  ASSERT_OK(pool);
  ASSERT_OK(RandomCall(**pool));
  // Someone else in the process closes every session on the slot from their own handle.
  CK_FUNCTION_LIST* f = module_->functions();
  CK_SLOT_ID slot = (*pool)->token().slot;
  CK_SESSION_HANDLE other = CK_INVALID_HANDLE;
  ASSERT_EQ(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &other), CKR_OK);
  ASSERT_EQ(f->C_CloseAllSessions(slot), CKR_OK);
  // The pool's idle session is now invalid and the login is gone; the next call recovers.
  Status s = (*pool)->Run([&](CK_SESSION_HANDLE session) {
    CK_SESSION_INFO info;
    CK_RV rv = f->C_GetSessionInfo(session, &info);
    if (rv != CKR_OK) return CallResult{rv, "C_GetSessionInfo"};
    // Private objects need the login back: search for private objects to prove it.
    if (info.state != CKS_RW_USER_FUNCTIONS) return CallResult{CKR_USER_NOT_LOGGED_IN, "state"};
    return CallResult{};
  });
  EXPECT_OK(s);
  EXPECT_GE((*pool)->recoveries(), 1u);
  EXPECT_OK(RandomCall(**pool));
}

TEST_P(PoolTest, LogsInAgainAfterLogoutElsewhere) {
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri), FastOptions());
  ASSERT_OK(pool);
  CK_FUNCTION_LIST* f = module_->functions();
  {
    StatusOr<SessionPool::Lease> lease = (*pool)->Acquire();
    ASSERT_OK(lease);
    ASSERT_EQ(f->C_Logout(lease->handle()), CKR_OK);
  }
  Status s = (*pool)->Run([&](CK_SESSION_HANDLE session) {
    CK_SESSION_INFO info;
    CK_RV rv = f->C_GetSessionInfo(session, &info);
    if (rv != CKR_OK) return CallResult{rv, "C_GetSessionInfo"};
    if (info.state != CKS_RW_USER_FUNCTIONS) return CallResult{CKR_USER_NOT_LOGGED_IN, "state"};
    return CallResult{};
  });
  EXPECT_OK(s);
  EXPECT_EQ((*pool)->recoveries(), 1u);
}

class FaultTest : public SoftHsmTest {
 protected:
  void LoadFaultyModule() {
    StatusOr<std::shared_ptr<FaultModule>> fault = FaultModule::Load(SoftHsmToken::kModulePath);
    ASSERT_OK(fault);
    fault_ = *fault;
    StatusOr<std::unique_ptr<Module>> module = fault_->CreateModule();
    ASSERT_OK(module);
    module_ = *std::move(module);
  }
  void TearDown() override {
    module_.reset();
    fault_.reset();
    SoftHsmTest::TearDown();
  }
  std::shared_ptr<FaultModule> fault_;
};

TEST_F(FaultTest, OnlyOneFaultModuleAtATime) {
  LoadFaultyModule();
  EXPECT_EQ(FaultModule::Load(SoftHsmToken::kModulePath).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(FaultTest, TransientSessionLossIsRetriedTransparently) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  ASSERT_TRUE(fault_->FailNext("C_GenerateRandom", CKR_SESSION_HANDLE_INVALID, 1).ok());
  fault_->ResetCounts();
  EXPECT_OK(RandomCall(**pool));
  EXPECT_EQ(fault_->CallCount("C_GenerateRandom"), 2u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 1u);
  EXPECT_EQ(fault_->CallCount("C_Login"), 1u);
}

// A token that goes away mid-call may fail the call with a device-level code rather than a
// session code; if the session turns out to be gone, the call is repaired and retried.
TEST_F(FaultTest, GeneralErrorOnALostSessionIsRetried) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  ASSERT_TRUE(fault_->FailNext("C_GenerateRandom", CKR_GENERAL_ERROR, 1).ok());
  ASSERT_TRUE(fault_->FailNext("C_GetSessionInfo", CKR_SESSION_HANDLE_INVALID, 1).ok());
  fault_->ResetCounts();
  EXPECT_OK(RandomCall(**pool));
  EXPECT_EQ(fault_->CallCount("C_GenerateRandom"), 2u);
  EXPECT_EQ(fault_->CallCount("C_OpenSession"), 1u);
  EXPECT_EQ((*pool)->recoveries(), 1u);
}

// The same code on a session that is fine is the call's own failure: reported, not retried.
TEST_F(FaultTest, GeneralErrorOnAHealthySessionIsReported) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  ASSERT_TRUE(fault_->FailNext("C_GenerateRandom", CKR_GENERAL_ERROR, 1).ok());
  fault_->ResetCounts();
  Status s = RandomCall(**pool);
  EXPECT_THAT(s, StatusIs(StatusCode::kInternal)) << s;
  EXPECT_EQ(fault_->CallCount("C_GenerateRandom"), 1u);
  EXPECT_EQ(fault_->CallCount("C_GetSessionInfo"), 1u);
  EXPECT_EQ((*pool)->recoveries(), 0u);
  EXPECT_OK(RandomCall(**pool));
}

TEST_F(FaultTest, PersistentFailureGivesUpAfterBoundedAttempts) {
  LoadFaultyModule();
  SessionPool::Options options = FastOptions();
  options.max_attempts = 4;
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), options);
  ASSERT_OK(pool);
  ASSERT_TRUE(fault_->FailNext("C_GenerateRandom", CKR_SESSION_CLOSED, -1).ok());
  fault_->ResetCounts();
  Status s = RandomCall(**pool);
  EXPECT_THAT(s, StatusIs(StatusCode::kUnavailable));
  EXPECT_NE(s.message().find("C_GenerateRandom: CKR_SESSION_CLOSED (0xb0)"), std::string::npos)
      << s;
  EXPECT_EQ(fault_->CallCount("C_GenerateRandom"), 4u);
  fault_->ClearFaults();
  EXPECT_OK(RandomCall(**pool));
}

TEST_F(FaultTest, UnpluggedTokenIsUnavailableThenWorksWhenBack) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  ASSERT_OK(RandomCall(**pool));
  fault_->Unplug();
  for (int i = 0; i < 3; ++i) {
    Status s = RandomCall(**pool);
    EXPECT_THAT(s, StatusIs(StatusCode::kUnavailable)) << s;
  }
  fault_->Replug();
  Status s = RandomCall(**pool);
  EXPECT_OK(s);
  EXPECT_OK(RandomCall(**pool));
}

// A removal while a call runs inside the module: the wrapped module must never see its session
// closed under that call (SoftHSM2 corrupts its heap then). The call finishes on its real
// session, which is closed only when it returns; the stale handle never works again, not even
// after the token is back and new sessions were opened.
TEST_F(FaultTest, UnplugClosesASessionOnlyAfterTheCallInsideItReturns) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  CK_SESSION_HANDLE stale = CK_INVALID_HANDLE;
  {
    StatusOr<SessionPool::Lease> lease = (*pool)->Acquire();
    ASSERT_OK(lease);
    stale = lease->handle();
  }
  ASSERT_EQ(fault_->open_sessions(), 1u);
  ASSERT_TRUE(fault_->PauseNext("C_GenerateRandom").ok());
  Status in_flight;
  std::thread caller([&] { in_flight = RandomCall(**pool); });
  fault_->WaitPaused();
  fault_->Unplug();
  EXPECT_EQ(fault_->open_sessions(), 1u) << "closed under a running call";
  fault_->Resume();
  caller.join();
  EXPECT_OK(in_flight);  // it was inside the module before the removal
  EXPECT_EQ(fault_->open_sessions(), 0u);
  CK_BYTE buf[8];
  EXPECT_EQ(module_->functions()->C_GenerateRandom(stale, buf, sizeof(buf)), CKR_DEVICE_REMOVED);
  EXPECT_THAT(RandomCall(**pool), StatusIs(StatusCode::kUnavailable));
  fault_->Replug();
  EXPECT_OK(RandomCall(**pool));
  EXPECT_EQ(fault_->open_sessions(), 1u);
  EXPECT_EQ(module_->functions()->C_GenerateRandom(stale, buf, sizeof(buf)),
            CKR_SESSION_HANDLE_INVALID);
}

TEST_F(FaultTest, WrongPinOnReconnectIsReported) {
  LoadFaultyModule();
  StatusOr<std::unique_ptr<SessionPool>> pool =
      SessionPool::Open(module_, Uri(token_->uri()), FastOptions());
  ASSERT_OK(pool);
  fault_->Unplug();
  fault_->Replug();
  ASSERT_TRUE(fault_->FailNext("C_Login", CKR_PIN_INCORRECT, 1).ok());
  Status s = RandomCall(**pool);
  EXPECT_THAT(s, StatusIs(StatusCode::kPermissionDenied)) << s;
  EXPECT_OK(RandomCall(**pool));
}

INSTANTIATE_TEST_SUITE_P(Modules, PoolTest, ::testing::Values(Backend::kSoftHsm, Backend::kNss),
                         BackendName);

}  // namespace
}  // namespace pinvault::pkcs11
