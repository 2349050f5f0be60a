// The Hsm contract suite (tests/testing/hsm_contract.h) on every Hsm in the tree: the software
// HSM of the unit tests and TokenHsm on a fresh SoftHSM2 token and a fresh NSS softokn
// database.
#include "tests/testing/hsm_contract.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "pkcs11/hsm_keys.h"
#include "pkcs11/module.h"
#include "pkcs11/token_setup.h"
#include "tests/testing/nss_token.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/token_backends.h"

namespace pinvault::testing {
namespace {

// SoftwareHsmFactory opens a SoftwareHsm with a random seed and its anchor in memory.
class SoftwareHsmFactory final : public HsmFactory {
 public:
  StatusOr<std::unique_ptr<vault::Hsm>> Open() override {
    return std::unique_ptr<vault::Hsm>(std::make_unique<SoftwareHsm>());
  }

  StatusOr<uint32_t> AddSealingKey(vault::Hsm& hsm) override {
    // Every Hsm this factory opens is a SoftwareHsm.
    auto& software = static_cast<SoftwareHsm&>(hsm);
    const uint32_t next = software.CurrentSealingKeyId() + 1;
    software.RotateTo(next);
    return next;
  }
};

// TokenHsmFactory makes a fresh token on `backend`, creates the realm keys on it and opens a
// TokenHsm. It keeps the token and the module until it is destroyed, after the TokenHsm.
class TokenHsmFactory final : public HsmFactory {
 public:
  explicit TokenHsmFactory(pkcs11::Backend backend) : backend_(backend) {}

  StatusOr<std::unique_ptr<vault::Hsm>> Open() override {
    ASSIGN_OR_RETURN(token_, pkcs11::MakeTestToken(backend_));
    ASSIGN_OR_RETURN(module_, token_.LoadModule());
    pkcs11::ProvisionOptions options;
    options.hsm.pool.retry_backoff = std::chrono::milliseconds(0);
    ASSIGN_OR_RETURN(pkcs11::ProvisionedRealm realm,
                     pkcs11::ProvisionRealm(module_, token_.uri, std::move(options)));
    return std::unique_ptr<vault::Hsm>(std::move(realm.hsm));
  }

  StatusOr<uint32_t> AddSealingKey(vault::Hsm& hsm) override {
    // Every Hsm this factory opens is a TokenHsm.
    return static_cast<pkcs11::TokenHsm&>(hsm).AddSealingKey();
  }

 private:
  const pkcs11::Backend backend_;
  pkcs11::TestToken token_;                 // destroyed after the module
  std::shared_ptr<pkcs11::Module> module_;  // shared with the TokenHsm's session pool
};

INSTANTIATE_TEST_SUITE_P(
    AllHsms, HsmContractTest,
    ::testing::Values(
        HsmImplementation{"SoftwareHsm", [] { return std::make_unique<SoftwareHsmFactory>(); }},
        HsmImplementation{
            "TokenHsm_SoftHSM2",
            [] { return std::make_unique<TokenHsmFactory>(pkcs11::Backend::kSoftHsm); }},
        HsmImplementation{"TokenHsm_NssSoftokn",
                          [] { return std::make_unique<TokenHsmFactory>(pkcs11::Backend::kNss); },
                          [] {
                            return NssToken::ModulePath().empty()
                                       ? std::string("NSS softokn is not installed")
                                       : std::string();
                          }}),
    HsmImplementationName);

}  // namespace
}  // namespace pinvault::testing
