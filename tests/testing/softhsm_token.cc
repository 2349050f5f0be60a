#include "tests/testing/softhsm_token.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pkcs11/module.h"
#include "pkcs11/token_setup.h"
#include "vault/bytes.h"
#include "vault/secret_bytes.h"

extern char** environ;

namespace pinvault::testing {
namespace {

SecretBytes Secret(const std::string& text) { return SecretBytes::CopyFrom(AsBytes(text)); }

}  // namespace

Status RunProgram(const std::vector<std::string>& argv, std::string* output) {
  if (argv.empty()) return InvalidArgumentError("RunProgram: empty argv");
  StatusOr<std::string> dir = MakeTempDir("pinvault-run-");
  if (!dir.ok()) return dir.status();
  std::string log = *dir + "/output";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    RemoveTree(*dir);
    return InternalError("RunProgram: cannot create " + log);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fd, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fd);
  if (err != 0) {
    RemoveTree(*dir);
    return InternalError("cannot run " + argv[0] + ": " + std::strerror(err));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  RemoveTree(*dir);
  if (output != nullptr) *output = text.str();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return OkStatus();
  std::string what = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                       : "abnormal termination";
  return InternalError(argv[0] + " failed (" + what + "): " + text.str());
}

std::string TokenBaseDir() {
  const char* configured = std::getenv("PINVAULT_TEST_TMPDIR");
  if (configured != nullptr && *configured != '\0') return configured;
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

StatusOr<std::string> MakeTempDir(const std::string& prefix) {
  std::string pattern = TokenBaseDir() + "/" + prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return InternalError("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  return std::string(buf.data());
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

Status WriteFile(const std::string& path, const std::string& content, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return InternalError("cannot create " + path + ": " + std::strerror(errno));
  ::fchmod(fd, mode);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return InternalError("cannot write " + path + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return OkStatus();
}

StatusOr<std::unique_ptr<SoftHsmToken>> SoftHsmToken::Create() { return Create(Options()); }

StatusOr<std::unique_ptr<SoftHsmToken>> SoftHsmToken::Create(Options options) {
  std::unique_ptr<SoftHsmToken> token(new SoftHsmToken());
  token->options_ = std::move(options);
  ASSIGN_OR_RETURN(token->dir_, MakeTempDir("pinvault-softhsm-"));
  ASSIGN_OR_RETURN(token->conf_path_, pkcs11::WriteSoftHsmConfig(token->dir_));
  token->pin_file_ = token->dir_ + "/user-pin";
  RETURN_IF_ERROR(WriteFile(token->pin_file_, token->options_.user_pin + "\n", 0600));
  ::setenv("SOFTHSM2_CONF", token->conf_path_.c_str(), 1);
  StatusOr<std::string> uri = token->AddToken(token->options_.label);
  if (!uri.ok()) return uri.status();
  return token;
}

StatusOr<std::string> SoftHsmToken::AddToken(const std::string& label) {
  ::setenv("SOFTHSM2_CONF", conf_path_.c_str(), 1);
  // A Module of its own, finalised on return, so that the caller's next Module::Load reads
  // the token directory afresh.
  StatusOr<std::unique_ptr<pkcs11::Module>> module = pkcs11::Module::Load(kModulePath);
  if (!module.ok()) {
    return module.status().WithContext("initialising token '" + label +
                                       "' (no other SoftHSM2 Module may be loaded)");
  }
  StatusOr<pkcs11::TokenDescription> token =
      pkcs11::InitializeToken(**module, label, Secret(options_.so_pin), Secret(options_.user_pin));
  if (!token.ok()) return token.status();
  return UriFor(label);
}

std::string SoftHsmToken::UriFor(const std::string& label) const {
  std::string encoded;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : label) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return "pkcs11:token=" + encoded + "?pin-source=file:" + pin_file_;
}

SoftHsmToken::~SoftHsmToken() {
  const char* current = std::getenv("SOFTHSM2_CONF");
  if (current != nullptr && conf_path_ == current) ::unsetenv("SOFTHSM2_CONF");
  if (!dir_.empty()) RemoveTree(dir_);
}

}  // namespace pinvault::testing
