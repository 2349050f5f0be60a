// softhsm_token.h: a fresh SoftHSM2 token in its own temporary directory, for tests.
//
//   ASSERT_OK_AND_ASSIGN... auto token = SoftHsmToken::Create();
//   auto module = pkcs11::Module::Load(SoftHsmToken::kModulePath);   // after Create
//   auto pool = pkcs11::SessionPool::Open(std::move(module), *pkcs11::ParseTokenUri(token->uri()));
//
// Create makes a directory with mkdtemp, writes softhsm2.conf (token directory inside it,
// pkcs11::WriteSoftHsmConfig), points SOFTHSM2_CONF at it (setenv; SoftHSM reads it in
// C_Initialize, so load the module after Create and use a fresh Module per token), initialises
// a token inside the process (pkcs11::InitializeToken on a Module of its own, finalised before
// Create returns), and writes the user PIN to a mode-600 file named by the URI's pin-source.
// The destructor deletes the directory. SoftHSM2 can be initialised only once per process, so
// Create and AddToken fail (FAILED_PRECONDITION) while another SoftHSM2 Module is loaded. Not
// thread-safe (it changes the environment); create tokens from the test's main thread.
#ifndef PINVAULT_TESTS_TESTING_SOFTHSM_TOKEN_H_
#define PINVAULT_TESTS_TESTING_SOFTHSM_TOKEN_H_

#include <memory>
#include <string>
#include <vector>

#include "vault/status.h"

namespace pinvault::testing {

// RunProgram runs argv[0] (searched in PATH) with the current environment and waits for it.
// OK on exit status 0; otherwise INTERNAL with the exit status and the program's output.
// If `output` is not null it receives stdout and stderr combined.
Status RunProgram(const std::vector<std::string>& argv, std::string* output = nullptr);

// TokenBaseDir is where test token directories go: $PINVAULT_TEST_TMPDIR if set, else /dev/shm
// (tmpfs) if writable, else $TMPDIR or /tmp. Memory is preferred because SoftHSM rewrites and
// truncates object files on every token change, which on a disk mounted with online discard
// costs ~150 ms per object.
std::string TokenBaseDir();

// MakeTempDir creates a fresh directory under TokenBaseDir() with mkdtemp.
StatusOr<std::string> MakeTempDir(const std::string& prefix);

// RemoveTree deletes `path` recursively; errors are ignored.
void RemoveTree(const std::string& path);

// WriteFile writes `content` to `path` with `mode` (e.g. 0600), replacing it.
Status WriteFile(const std::string& path, const std::string& content, unsigned mode);

class SoftHsmToken {
 public:
  static constexpr char kModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";

  struct Options {
    std::string label = "pinvault-test";
    std::string user_pin = "user-pin-1234";
    std::string so_pin = "so-pin-12345678";
  };

  // Create makes the directory, the configuration and one initialised token.
  static StatusOr<std::unique_ptr<SoftHsmToken>> Create(Options options);
  static StatusOr<std::unique_ptr<SoftHsmToken>> Create();

  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;
  // ~SoftHsmToken removes the directory and unsets SOFTHSM2_CONF if it still points here.
  // Destroy every Module using the token first.
  ~SoftHsmToken();

  // AddToken initialises another token (same PINs) in the same directory and returns its URI.
  // Call it while no SoftHSM2 Module is loaded (see above); load one afterwards to see the token.
  StatusOr<std::string> AddToken(const std::string& label);

  // UriFor returns "pkcs11:token=LABEL?pin-source=file:<pin file>".
  std::string UriFor(const std::string& label) const;

  const std::string& dir() const { return dir_; }
  const std::string& conf_path() const { return conf_path_; }
  const std::string& pin_file() const { return pin_file_; }
  const std::string& label() const { return options_.label; }
  const std::string& user_pin() const { return options_.user_pin; }
  const std::string& so_pin() const { return options_.so_pin; }
  std::string uri() const { return UriFor(options_.label); }

 private:
  SoftHsmToken() = default;

  Options options_;
  std::string dir_;
  std::string conf_path_;
  std::string pin_file_;
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_SOFTHSM_TOKEN_H_
