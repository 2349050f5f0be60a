// pinvault-admin: the operator's command-line tool.
//
//   pinvault-admin hsm init|audit|status ...   the realm's keys on a PKCS#11 token (admin_hsm.h)
//   pinvault-admin tenant add|rotate|remove|list ...   tenant signing keys (admin_tenant.h)
//   pinvault-admin token mint ...               test tokens for a tenant (admin_tenant.h)
//   pinvault-admin store migrate|status ...     the record store's schema (admin_store.h)
//
// This is the api/ boundary for the tool: any exception a library throws is caught here and
// reported, never propagated.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "api/cmd/admin_hsm.h"
#include "api/cmd/admin_store.h"
#include "api/cmd/admin_tenant.h"

namespace {

constexpr char kUsage[] =
    "usage: pinvault-admin hsm init|audit|status --token URI [options]\n"
    "       pinvault-admin tenant add|rotate|remove|list ...\n"
    "       pinvault-admin token mint ...\n"
    "       pinvault-admin store migrate|status --postgres URI | --data-dir DIR ...\n"
    "Run `pinvault-admin <group> help` for the options of each group.\n";

int Run(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "hsm") return pinvault::api::RunHsmCommand(rest, std::cout, std::cerr);
  if (args[0] == "tenant") return pinvault::api::RunTenantCommand(rest, std::cout, std::cerr);
  if (args[0] == "token") return pinvault::api::RunTokenCommand(rest, std::cout, std::cerr);
  if (args[0] == "store") return pinvault::api::RunStoreCommand(rest, std::cout, std::cerr);
  if (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "pinvault-admin: unknown command \"" << args[0] << "\"\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    int code = Run(args);
    std::cout.flush();
    return code;
  } catch (const std::exception& e) {
    std::cerr << "pinvault-admin: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "pinvault-admin: internal error\n";
  }
  return 3;
}
