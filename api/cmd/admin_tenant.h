// pinvault-admin's `tenant` and `token` commands: manage the tenant keys file and mint
// test tokens.
//
//   pinvault-admin tenant add NAME --algorithm HS256|EdDSA|RS256 [--keys-file PATH] [--show-secret]
//   pinvault-admin tenant rotate NAME [--algorithm ALG] [--keys-file PATH] [--show-secret]
//   pinvault-admin tenant remove NAME --version N [--keys-file PATH]
//   pinvault-admin tenant list [--keys-file PATH]
//   pinvault-admin token mint --tenant NAME [--version N] --user USER --realm HEX
//                             [--ttl SECONDS] [--scope SCOPE] [--keys-file PATH]
//
// The keys file defaults to $PINVAULT_TENANT_KEYS_FILE, else var/tenant-keys.json. It is
// rewritten atomically (temporary file, fsync, rename) with mode 0600. Secrets are never
// printed unless --show-secret is given; `tenant add`/`rotate` print the public key
// (RS256/EdDSA) or say where the HS256 secret is stored.
#ifndef PINVAULT_API_CMD_ADMIN_TENANT_H_
#define PINVAULT_API_CMD_ADMIN_TENANT_H_

#include <ostream>
#include <string>
#include <vector>

namespace pinvault::api {

// RunTenantCommand runs `tenant <args...>` (`args` starts after the word "tenant") and
// returns the process exit code: 0 on success, 2 on bad usage, 1 on other failures, with
// a message on `err`. Output goes to `out`.
int RunTenantCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err);
int RunTenantCommand(const std::vector<std::string>& args);  // stdout/stderr

// RunTokenCommand runs `token <args...>` (`args` starts after the word "token"); `mint`
// prints one token and a newline on `out`. Exit codes as RunTenantCommand.
int RunTokenCommand(const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err);
int RunTokenCommand(const std::vector<std::string>& args);  // stdout/stderr

}  // namespace pinvault::api

#endif  // PINVAULT_API_CMD_ADMIN_TENANT_H_
