#include "api/cmd/cli_args.h"

#include <optional>

namespace pinvault::api::cli {

StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                               const std::set<std::string>& valued,
                               const std::set<std::string>& switches, const OptionCheck& check) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" && switches.contains("help")) {
      out.switches.insert("help");
      continue;
    }
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (check) RETURN_IF_ERROR(check(name));
    if (switches.contains(name)) {
      if (value) return InvalidArgumentError("--" + name + " takes no value");
      out.switches.insert(name);
      continue;
    }
    if (!valued.contains(name)) return InvalidArgumentError("unknown option --" + name);
    if (!value) {
      if (i + 1 >= args.size()) return InvalidArgumentError("--" + name + " needs a value");
      value = args[++i];
    }
    if (out.values.contains(name)) return InvalidArgumentError("--" + name + " given twice");
    out.values[name] = *value;
  }
  return out;
}

}  // namespace pinvault::api::cli
