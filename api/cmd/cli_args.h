// Command-line option parsing shared by the pinvault binaries.
#ifndef PINVAULT_API_CMD_CLI_ARGS_H_
#define PINVAULT_API_CMD_CLI_ARGS_H_

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vault/status.h"

namespace pinvault::api::cli {

// ParsedArgs: positional words, options with a value, and boolean switches.
struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> switches;

  // Get returns the value of option `name`, or nullptr if it was not given.
  const std::string* Get(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second;
  }
};

// OptionCheck is called with each option name before it is looked up; a non-OK status
// refuses the option (e.g. one that must never be given on a command line).
using OptionCheck = std::function<Status(std::string_view name)>;

// ParseArgs accepts `--name value` and `--name=value` for the names in `valued`, the
// boolean `--name` for those in `switches` ("-h" counts as --help when "help" is a switch),
// and any other word as positional. INVALID_ARGUMENT names the option for an unknown
// option, a missing value, a value given to a switch, or an option given twice; option
// values are never quoted in messages (they may be secrets typed in the wrong place).
StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                               const std::set<std::string>& valued,
                               const std::set<std::string>& switches,
                               const OptionCheck& check = nullptr);

}  // namespace pinvault::api::cli

#endif  // PINVAULT_API_CMD_CLI_ARGS_H_
