// `pinvault-admin hsm` as a user runs it: the built binary against fresh tokens.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/nss_token.h"
#include "tests/testing/softhsm_token.h"
#include "tests/testing/status_matchers.h"

namespace pinvault::pkcs11 {
namespace {

using testing::NssToken;
using testing::RunProgram;
using testing::SoftHsmToken;

const std::string kAdmin = PINVAULT_BINARY_DIR "/api/pinvault-admin";

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Admin runs pinvault-admin; RunProgram reports the exit status in its message.
Result Admin(std::vector<std::string> args) {
  args.insert(args.begin(), kAdmin);
  Result r;
  Status s = RunProgram(args, &r.output);
  if (s.ok()) {
    r.exit_code = 0;
  } else {
    size_t pos = s.message().find("exit status ");
    r.exit_code = pos == std::string::npos ? -1 : std::stoi(s.message().substr(pos + 12));
  }
  return r;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class AdminCliTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK_AND_ASSIGN(token_, SoftHsmToken::Create()); }
  std::unique_ptr<SoftHsmToken> token_;
};

TEST_F(AdminCliTest, InitThenAuditPassesAndInitIsIdempotent) {
  Result init = Admin({"hsm", "init", "--token", token_->uri()});
  ASSERT_EQ(init.exit_code, 0) << init.output;
  for (const char* label : {"pinvault-record-seal-1", "pinvault-record-id-mac",
                            "pinvault-anchor-mac", "pinvault-audit-sign"}) {
    EXPECT_TRUE(Contains(init.output, std::string("created  ") + label)) << init.output;
  }
  EXPECT_TRUE(Contains(init.output, "Ed25519 key pair"));
  EXPECT_TRUE(Contains(init.output, "init: 4 key(s) created, 0 already present"));

  Result again = Admin({"hsm", "init", "--token", token_->uri()});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(Contains(again.output, "init: 0 key(s) created, 4 already present")) << again.output;

  Result audit = Admin({"hsm", "audit", "--token", token_->uri()});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "audit: PASS - 5 object(s), no violations")) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "module enforces CKA_EXTRACTABLE=false on C_WrapKey: yes"));
  EXPECT_FALSE(Contains(audit.output, "[FAIL]"));
  EXPECT_FALSE(Contains(audit.output, token_->user_pin()));
}

TEST_F(AdminCliTest, ExtractableKeyMadeWithPkcs11ToolFailsTheAudit) {
  ASSERT_EQ(Admin({"hsm", "init", "--token", token_->uri()}).exit_code, 0);
  std::string tool_output;
  Status made = RunProgram({"pkcs11-tool", "--module", SoftHsmToken::kModulePath, "--token-label",
                            token_->label(), "--login", "--pin", token_->user_pin(), "--keygen",
                            "--key-type", "AES:32", "--label", "rogue", "--extractable"},
                           &tool_output);
  ASSERT_OK(made);

  Result audit = Admin({"hsm", "audit", "--token", token_->uri()});
  EXPECT_EQ(audit.exit_code, 1) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "[FAIL] secret key AES \"rogue\"")) << audit.output;
  EXPECT_TRUE(Contains(audit.output,
                       "violation: CKA_EXTRACTABLE is true on a key that is not "
                       "part of the realm"))
      << audit.output;
  EXPECT_TRUE(Contains(audit.output, "audit: FAIL")) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "\"rogue\" CKA_EXTRACTABLE")) << audit.output;

  Result json = Admin({"hsm", "audit", "--json", "--token", token_->uri()});
  EXPECT_EQ(json.exit_code, 1);
  nlohmann::json report = nlohmann::json::parse(json.output, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded()) << json.output;
  EXPECT_EQ(report["result"], "FAIL");
  bool found = false;
  for (const auto& object : report["objects"]) {
    if (object["label"] == "rogue") {
      found = true;
      EXPECT_EQ(object["result"], "FAIL");
      EXPECT_EQ(object["attributes"]["extractable"], true);
      EXPECT_EQ(object["realm_object"], false);
      ASSERT_FALSE(object["violations"].empty());
      EXPECT_EQ(object["violations"][0]["attribute"], "CKA_EXTRACTABLE");
    } else {
      EXPECT_EQ(object["result"], "PASS") << object.dump();
      EXPECT_EQ(object["realm_object"], true);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(AdminCliTest, AuditOfAnEmptyTokenNamesTheMissingKeys) {
  Result audit = Admin({"hsm", "audit", "--token", token_->uri()});
  EXPECT_EQ(audit.exit_code, 1) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "pinvault-anchor-mac: presence")) << audit.output;
}

TEST_F(AdminCliTest, StatusListsMechanisms) {
  Result status = Admin({"hsm", "status", "--token", token_->uri()});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(Contains(status.output, "present CKM_AES_GCM")) << status.output;
  EXPECT_TRUE(Contains(status.output, "present CKM_EDDSA"));
  EXPECT_TRUE(Contains(status.output, "audit signing key: Ed25519"));
  EXPECT_TRUE(Contains(status.output, "realm keys: no record-sealing key"));
  ASSERT_EQ(Admin({"hsm", "init", "--token", token_->uri()}).exit_code, 0);
  Result after = Admin({"hsm", "status", "--token", token_->uri()});
  EXPECT_TRUE(Contains(after.output, "realm keys: present (sealing key ids: 1; audit key Ed25519)"))
      << after.output;
}

TEST_F(AdminCliTest, ClearErrorsForWrongModulePinAndToken) {
  Result module =
      Admin({"hsm", "audit", "--module", "/nonexistent/libpkcs11.so", "--token", token_->uri()});
  EXPECT_EQ(module.exit_code, 3);
  EXPECT_TRUE(Contains(module.output, "cannot load PKCS#11 module '/nonexistent/libpkcs11.so'"))
      << module.output;

  std::string bad_pin_file = token_->dir() + "/wrong-pin";
  ASSERT_OK(testing::WriteFile(bad_pin_file, "wrong-pin-4321\n", 0600));
  Result pin = Admin({"hsm", "init", "--token",
                      "pkcs11:token=" + token_->label() + "?pin-source=file:" + bad_pin_file});
  EXPECT_EQ(pin.exit_code, 3);
  EXPECT_TRUE(Contains(pin.output, "CKR_PIN_INCORRECT")) << pin.output;
  EXPECT_TRUE(Contains(pin.output, "wrong PIN"));
  EXPECT_FALSE(Contains(pin.output, "wrong-pin-4321"));

  Result token = Admin({"hsm", "audit", "--token",
                        "pkcs11:token=no-such-token?pin-source=file:" + token_->pin_file()});
  EXPECT_EQ(token.exit_code, 3);
  EXPECT_TRUE(Contains(token.output, "no token matches")) << token.output;
  EXPECT_TRUE(Contains(token.output, "'" + token_->label() + "'"));

  Result uri = Admin({"hsm", "audit", "--token", "token=x"});
  EXPECT_EQ(uri.exit_code, 3);
  EXPECT_TRUE(Contains(uri.output, "not a PKCS#11 URI"));

  Result value = Admin({"hsm", "status", "--token",
                        "pkcs11:token=" + token_->label() + "?pin-value=" + token_->user_pin()});
  EXPECT_EQ(value.exit_code, 0) << value.output;
  EXPECT_TRUE(Contains(value.output, "warning: the PKCS#11 URI carries pin-value"));

  EXPECT_EQ(Admin({"hsm", "init"}).exit_code, 2);
  EXPECT_EQ(Admin({"hsm", "shred", "--token", token_->uri()}).exit_code, 2);
  EXPECT_EQ(Admin({"hsm", "audit", "--token", token_->uri(), "--bogus"}).exit_code, 2);
}

TEST(AdminCliNssTest, NssTokenInitWorksAndTheAuditSaysWhatNssLacks) {
  StatusOr<std::unique_ptr<NssToken>> token = NssToken::Create();
  ASSERT_OK(token);
  std::vector<std::string> module = {"--module",      NssToken::ModulePath(),
                                     "--module-args", (*token)->init_parameters(),
                                     "--token",       (*token)->uri()};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), module.begin(), module.end());
    return head;
  };
  Result init = Admin(with({"hsm", "init"}));
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_TRUE(Contains(init.output, "ECDSA P-256 key pair")) << init.output;

  Result status = Admin(with({"hsm", "status"}));
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_TRUE(Contains(status.output, "MISSING CKM_EDDSA")) << status.output;
  EXPECT_TRUE(Contains(status.output, "ECDSA P-256 (this token has no CKM_EDDSA)"));

  Result audit = Admin(with({"hsm", "audit"}));
  EXPECT_EQ(audit.exit_code, 1) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "\"pinvault-record-seal-1\" CKA_LOCAL")) << audit.output;
  EXPECT_TRUE(Contains(audit.output, "module enforces CKA_EXTRACTABLE=false on C_WrapKey: NO"));

  Result relaxed = Admin(with({"hsm", "audit", "--no-require-local"}));
  EXPECT_EQ(relaxed.exit_code, 1) << relaxed.output;
  EXPECT_TRUE(Contains(relaxed.output, "WARNING: CKA_LOCAL is not required"));
  EXPECT_FALSE(Contains(relaxed.output, "CKA_LOCAL is false")) << relaxed.output;
  EXPECT_TRUE(Contains(relaxed.output, "audit: FAIL - 1 violation(s): module CKA_EXTRACTABLE;"))
      << relaxed.output;
}

}  // namespace
}  // namespace pinvault::pkcs11
