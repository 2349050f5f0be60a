#include "tests/testing/nss_token.h"

#include <sys/stat.h>

#include "tests/testing/softhsm_token.h"

namespace pinvault::testing {

std::string NssToken::ModulePath() {
  for (const char* path :
       {"/usr/lib/x86_64-linux-gnu/libsoftokn3.so", "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
        "/usr/lib/libsoftokn3.so", "/usr/lib64/libsoftokn3.so"}) {
    struct stat st {};
    if (::stat(path, &st) == 0) return path;
  }
  return {};
}

StatusOr<std::unique_ptr<NssToken>> NssToken::Create(std::string password) {
  if (ModulePath().empty()) return NotFoundError("libsoftokn3.so is not installed");
  std::unique_ptr<NssToken> token(new NssToken());
  token->password_ = std::move(password);
  ASSIGN_OR_RETURN(token->dir_, MakeTempDir("pinvault-nss-"));
  std::string db = token->dir_ + "/db";
  if (::mkdir(db.c_str(), 0700) != 0) return InternalError("mkdir " + db);
  if (token->password_.empty()) {
    RETURN_IF_ERROR(RunProgram({"certutil", "-N", "-d", "sql:" + db, "--empty-password"}));
  } else {
    token->pin_file_ = token->dir_ + "/user-pin";
    RETURN_IF_ERROR(WriteFile(token->pin_file_, token->password_ + "\n", 0600));
    RETURN_IF_ERROR(RunProgram({"certutil", "-N", "-d", "sql:" + db, "-f", token->pin_file_}));
  }
  return token;
}

NssToken::~NssToken() {
  if (!dir_.empty()) RemoveTree(dir_);
}

std::string NssToken::init_parameters() const {
  return "configdir='sql:" + dir_ + "/db' certPrefix='' keyPrefix='' secmod='secmod.db'";
}

std::string NssToken::uri() const {
  std::string uri = "pkcs11:token=NSS%20Certificate%20DB";
  if (!pin_file_.empty()) uri += "?pin-source=file:" + pin_file_;
  return uri;
}

}  // namespace pinvault::testing
