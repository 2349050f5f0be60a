// pinvault-admin's `hsm` commands: create, audit and describe a realm's key set on a token.
//
//   pinvault-admin hsm init   --token URI [--module PATH] [--module-args STRING]
//                             [--audit-key ed25519|p256]
//   pinvault-admin hsm audit  --token URI [--module PATH] [--module-args STRING] [--json]
//                             [--no-require-local]
//   pinvault-admin hsm status --token URI [--module PATH] [--module-args STRING]
//
// URI is a PKCS#11 URI naming the token and, with pin-source=file:PATH, the file holding the
// user PIN (pkcs11/uri.h). The module is --module, else the URI's module-path / module-name,
// else /usr/lib/softhsm/libsofthsm2.so. --module-args is the C_Initialize parameter string some
// modules need (NSS softokn: "configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db'").
//
// Exit status: 0 success (audit: every object passes); 1 the audit found violations; 2 bad
// usage; 3 the module, token or PIN could not be used, or the token refused an operation.
// PINs are never printed.
#ifndef PINVAULT_API_CMD_ADMIN_HSM_H_
#define PINVAULT_API_CMD_ADMIN_HSM_H_

#include <ostream>
#include <string>
#include <vector>

namespace pinvault::api {

inline constexpr int kHsmExitOk = 0;
inline constexpr int kHsmExitViolations = 1;
inline constexpr int kHsmExitUsage = 2;
inline constexpr int kHsmExitError = 3;

// RunHsmCommand runs `hsm <args...>` (`args` starts after the word "hsm") and returns the exit
// status above. Reports go to `out`, errors to `err`.
int RunHsmCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace pinvault::api

#endif  // PINVAULT_API_CMD_ADMIN_HSM_H_
