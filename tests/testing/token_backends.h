// token_backends.h: the PKCS#11 modules the pkcs11 suites run against, one fresh token each.
#ifndef PINVAULT_TESTS_TESTING_TOKEN_BACKENDS_H_
#define PINVAULT_TESTS_TESTING_TOKEN_BACKENDS_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "pkcs11/module.h"
#include "pkcs11/uri.h"
#include "tests/testing/nss_token.h"
#include "tests/testing/softhsm_token.h"

namespace pinvault::pkcs11 {

enum class Backend { kSoftHsm, kNss };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSoftHsm ? "SoftHSM2" : "NssSoftokn";
}

// TestToken is a fresh token on one backend plus how to load its module.
struct TestToken {
  Backend backend = Backend::kSoftHsm;
  std::unique_ptr<testing::SoftHsmToken> softhsm;
  std::unique_ptr<testing::NssToken> nss;
  std::string module_path;
  std::string init_parameters;
  std::string uri;

  StatusOr<std::unique_ptr<Module>> LoadModule() const {
    return Module::Load(module_path, init_parameters);
  }
};

inline StatusOr<TestToken> MakeTestToken(Backend backend) {
  TestToken token;
  token.backend = backend;
  if (backend == Backend::kSoftHsm) {
    ASSIGN_OR_RETURN(token.softhsm, testing::SoftHsmToken::Create());
    token.module_path = testing::SoftHsmToken::kModulePath;
    token.uri = token.softhsm->uri();
  } else {
    ASSIGN_OR_RETURN(token.nss, testing::NssToken::Create());
    token.module_path = testing::NssToken::ModulePath();
    token.init_parameters = token.nss->init_parameters();
    token.uri = token.nss->uri();
  }
  return token;
}

inline TokenUri MustParseUri(const std::string& text) {
  StatusOr<TokenUri> uri = ParseTokenUri(text);
  EXPECT_TRUE(uri.ok()) << uri.status();
  return *std::move(uri);
}

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_TESTS_TESTING_TOKEN_BACKENDS_H_
