// pinvault-admin's `store` commands: the schema of a realm's record store, and what it holds.
//
//   pinvault-admin store migrate (--postgres URI [--password-file FILE] | --data-dir DIR)
//                                [--to-version N] [--json]
//   pinvault-admin store status  (--postgres URI [--password-file FILE] | --data-dir DIR) [--json]
//
// `migrate` brings the store's schema to this build's version (or N) and prints the version
// before and after ("schema version 0 -> 2"); running it again changes nothing. PostgreSQL
// stores are only ever migrated by this command (pinvaultd refuses an older schema); a SQLite
// data folder is also migrated by pinvaultd when it opens it. `status` changes nothing: it
// prints the schema version and, for a store at this build's version, every partition that
// has been committed to with its epoch.
//
// Without --postgres and --data-dir the URI comes from $PINVAULT_STORE_URI; without
// --password-file the password file comes from $PINVAULT_STORE_PASSWORD_FILE. A password is
// never taken on the command line (neither as an option nor inside the URI). Messages name
// the store by its target (host, port, dbname, user) or path, never by the password.
#ifndef PINVAULT_API_CMD_ADMIN_STORE_H_
#define PINVAULT_API_CMD_ADMIN_STORE_H_

#include <ostream>
#include <string>
#include <vector>

namespace pinvault::api {

// RunStoreCommand runs `store <args...>` (`args` starts after the word "store") and returns
// the process exit code: 0 on success, 2 on bad usage, 1 when the store cannot be reached,
// read or migrated (one line on `err` naming the store). Output goes to `out`.
int RunStoreCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace pinvault::api

#endif  // PINVAULT_API_CMD_ADMIN_STORE_H_
