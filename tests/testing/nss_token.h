// nss_token.h: a fresh NSS softokn database in a temporary directory, for tests that run the
// PKCS#11 suite over a second, quite different module.
//
// Create runs `certutil -N -d sql:DIR` with a password file (the token's user PIN), so the token
// requires login like an HSM. NSS softokn has two slots; keys live on the database token, whose
// label is "NSS Certificate DB". The module needs its parameter string at C_Initialize:
//   auto token = NssToken::Create();
//   auto module = pkcs11::Module::Load(NssToken::ModulePath(), (*token)->init_parameters());
//   auto hsm = pkcs11::TokenHsm::Open(std::move(*module), (*token)->uri());
// The destructor deletes the directory. Destroy every Module using it first.
#ifndef PINVAULT_TESTS_TESTING_NSS_TOKEN_H_
#define PINVAULT_TESTS_TESTING_NSS_TOKEN_H_

#include <memory>
#include <string>

#include "vault/status.h"

namespace pinvault::testing {

class NssToken {
 public:
  // kTokenLabel is the label of NSS softokn's key-storage token.
  static constexpr char kTokenLabel[] = "NSS Certificate DB";

  // ModulePath returns the path of libsoftokn3.so (multiarch directory), or "" if absent.
  static std::string ModulePath();

  // Create makes the database. An empty `password` makes a database without a password (the
  // token then needs no login).
  static StatusOr<std::unique_ptr<NssToken>> Create(std::string password = "nss-user-pin-1234");

  NssToken(const NssToken&) = delete;
  NssToken& operator=(const NssToken&) = delete;
  ~NssToken();

  const std::string& dir() const { return dir_; }
  const std::string& pin_file() const { return pin_file_; }
  const std::string& password() const { return password_; }

  // init_parameters is the C_Initialize parameter string:
  //   configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db'
  std::string init_parameters() const;

  // uri is "pkcs11:token=NSS%20Certificate%20DB?pin-source=file:<pin file>" (no pin-source when
  // the database has no password).
  std::string uri() const;

 private:
  NssToken() = default;

  std::string dir_;
  std::string pin_file_;
  std::string password_;
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_NSS_TOKEN_H_
