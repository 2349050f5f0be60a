#include "api/cmd/admin_store.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/cmd/cli_args.h"
#include "backup/store/postgres_record_store.h"
#include "backup/store/sqlite_record_store.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::api {
namespace {

using backup::PostgresRecordStore;
using backup::SqliteRecordStore;
using cli::ParseArgs;
using cli::ParsedArgs;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] =
    "usage: pinvault-admin store migrate (--postgres URI [--password-file FILE] | --data-dir DIR)\n"
    "                                    [--to-version N] [--json]\n"
    "       pinvault-admin store status  (--postgres URI [--password-file FILE] | --data-dir DIR)\n"
    "                                    [--json]\n"
    "migrate brings the record store's schema to this build's version (or N) and prints the\n"
    "version before and after; running it again changes nothing. pinvaultd never migrates a\n"
    "PostgreSQL database itself. status prints the schema version and each partition's epoch.\n"
    "URI is a libpq URI or key=value string without a password; the password is the first\n"
    "line of FILE (mode 0600). Defaults: $PINVAULT_STORE_URI, $PINVAULT_STORE_PASSWORD_FILE.\n";

constexpr char kUriEnv[] = "PINVAULT_STORE_URI";
constexpr char kPasswordFileEnv[] = "PINVAULT_STORE_PASSWORD_FILE";

// Store is the store a command works on, as chosen by the options and the environment.
struct Store {
  bool postgres = false;
  PostgresRecordStore::Options postgres_options;  // postgres
  std::string data_dir;                           // !postgres
  std::string backend;                            // "postgres" or "sqlite"
  std::string name;  // the target (never a password) or the database file's path
  int latest_version = 0;
};

// Env returns the environment variable `name`, or "" if it is not set.
std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

// RefusePasswordOptions refuses any option that would put a password on the command line.
Status RefusePasswordOptions(std::string_view name) {
  if (name.rfind("password", 0) == 0 && name != "password-file") {
    return InvalidArgumentError(
        "--" + std::string(name) +
        " is not accepted: a password is never taken on the command line; put it in a file "
        "only you can read (chmod 600) and pass --password-file FILE");
  }
  return OkStatus();
}

// ChooseStore picks the store from --postgres / --data-dir / $PINVAULT_STORE_URI.
// INVALID_ARGUMENT (a usage error) if none or both are given.
StatusOr<Store> ChooseStore(const ParsedArgs& args) {
  const std::string* uri = args.Get("postgres");
  const std::string* data_dir = args.Get("data-dir");
  const std::string* password_file = args.Get("password-file");
  if (uri != nullptr && data_dir != nullptr) {
    return InvalidArgumentError("give either --postgres or --data-dir, not both");
  }
  Store store;
  if (data_dir != nullptr) {
    if (password_file != nullptr) {
      return InvalidArgumentError("--password-file goes with --postgres, not --data-dir");
    }
    if (data_dir->empty()) return InvalidArgumentError("--data-dir is empty");
    store.data_dir = *data_dir;
    store.backend = "sqlite";
    store.name = (std::filesystem::path(*data_dir) / SqliteRecordStore::kDatabaseFileName).string();
    store.latest_version = SqliteRecordStore::kLatestSchemaVersion;
    return store;
  }
  std::string chosen_uri = uri != nullptr ? *uri : Env(kUriEnv);
  if (chosen_uri.empty()) {
    return InvalidArgumentError(std::string("give --postgres URI or --data-dir DIR (or set ") +
                                kUriEnv + ")");
  }
  store.postgres = true;
  store.backend = "postgres";
  store.postgres_options.uri = std::move(chosen_uri);
  store.postgres_options.password_file =
      password_file != nullptr ? *password_file : Env(kPasswordFileEnv);
  store.postgres_options.pool_size = 1;
  StatusOr<std::string> target = PostgresRecordStore::DescribeTarget(store.postgres_options.uri);
  store.name = target.ok() ? *target : std::string("(unparsable connection string)");
  store.latest_version = PostgresRecordStore::kLatestSchemaVersion;
  return store;
}

// Dump renders `j` on one line; bytes of a path that are not UTF-8 become U+FFFD.
std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Describe names the store in messages: "PostgreSQL host=... dbname=..." or "SQLite PATH".
std::string Describe(const Store& store) {
  return (store.postgres ? "PostgreSQL " : "SQLite ") + store.name;
}

// Fail prints one line naming the store (unless the message already does) and returns 1.
int Fail(std::ostream& err, std::string_view command, const Store& store, const Status& status) {
  std::string message = status.message();
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  err << "pinvault-admin store " << command << ": ";
  if (message.find(store.name) == std::string::npos) err << Describe(store) << ": ";
  err << message;
  if (store.postgres && status.code() == StatusCode::kInvalidArgument &&
      message.find("holds a password") != std::string::npos) {
    err << " (--password-file FILE or $" << kPasswordFileEnv << ")";
  }
  err << "\n";
  return kExitFailure;
}

// Usage prints the usage error and the usage text, and returns 2.
int Usage(std::ostream& err, const Status& status) {
  err << "error: " << status.message() << "\n" << kUsage;
  return kExitUsage;
}

// ReadVersion reads the schema version without changing anything; a SQLite folder without
// a database file is version 0 when `missing_is_zero`.
StatusOr<int> ReadVersion(const Store& store, bool missing_is_zero) {
  if (store.postgres) return PostgresRecordStore::ReadSchemaVersion(store.postgres_options);
  StatusOr<int> version = SqliteRecordStore::ReadSchemaVersion(store.data_dir);
  if (!version.ok() && version.status().code() == StatusCode::kNotFound && missing_is_zero) {
    return 0;
  }
  return version;
}

// Migrate brings `store` to `to_version` and returns the schema versions before and after.
StatusOr<std::pair<int, int>> Migrate(const Store& store, int to_version) {
  if (!store.postgres) {
    std::error_code ec;
    if (!std::filesystem::is_directory(store.data_dir, ec)) {
      return NotFoundError("data directory " + store.data_dir + " does not exist");
    }
  }
  ASSIGN_OR_RETURN(int before, ReadVersion(store, /*missing_is_zero=*/true));
  if (store.postgres) {
    PostgresRecordStore::Options options = store.postgres_options;
    options.schema_version = to_version;
    RETURN_IF_ERROR(PostgresRecordStore::Migrate(options));
    ASSIGN_OR_RETURN(int after, ReadVersion(store, /*missing_is_zero=*/false));
    return std::make_pair(before, after);
  }
  // Opening a SQLite store applies its migrations.
  SqliteRecordStore::Options options;
  options.read_connections = 1;
  options.schema_version = to_version;
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteRecordStore> opened,
                   SqliteRecordStore::Open(store.data_dir, options));
  return std::make_pair(before, opened->SchemaVersion());
}

// PartitionEpoch is one partition's epoch as `status` reports it.
struct PartitionEpoch {
  uint32_t partition = 0;
  uint64_t epoch = 0;
};

// ReadEpochs lists the partitions with a head and their epochs (the store must be at the
// latest schema). Opening changes nothing at that version.
StatusOr<std::vector<PartitionEpoch>> ReadEpochs(const Store& store) {
  std::unique_ptr<vault::RecordStore> opened;
  std::vector<uint32_t> partitions;
  if (store.postgres) {
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresRecordStore> pg,
                     PostgresRecordStore::Open(store.postgres_options));
    ASSIGN_OR_RETURN(partitions, pg->Partitions());
    opened = std::move(pg);
  } else {
    SqliteRecordStore::Options options;
    options.read_connections = 1;
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteRecordStore> sqlite,
                     SqliteRecordStore::Open(store.data_dir, options));
    ASSIGN_OR_RETURN(partitions, sqlite->Partitions());
    opened = std::move(sqlite);
  }
  std::vector<PartitionEpoch> epochs;
  epochs.reserve(partitions.size());
  for (uint32_t partition : partitions) {
    ASSIGN_OR_RETURN(vault::TreeSnapshot tree, opened->ReadTree(partition));
    if (!tree.head.has_value()) continue;  // gone since the listing: not possible today
    epochs.push_back(PartitionEpoch{partition, tree.head->epoch});
  }
  return epochs;
}

int RunMigrate(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  StatusOr<Store> store = ChooseStore(args);
  if (!store.ok()) return Usage(err, store.status());
  int to_version = store->latest_version;
  if (const std::string* text = args.Get("to-version"); text != nullptr) {
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), to_version);
    if (text->empty() || ec != std::errc() || ptr != text->data() + text->size() ||
        to_version < 1 || to_version > store->latest_version) {
      return Usage(err, InvalidArgumentError("--to-version must be between 1 and " +
                                             std::to_string(store->latest_version)));
    }
  }
  StatusOr<std::pair<int, int>> versions = Migrate(*store, to_version);
  if (!versions.ok()) return Fail(err, "migrate", *store, versions.status());
  if (args.switches.contains("json")) {
    nlohmann::ordered_json j;
    j["backend"] = store->backend;
    j["store"] = store->name;
    j["schema_version_before"] = versions->first;
    j["schema_version_after"] = versions->second;
    out << Dump(j) << "\n";
  } else {
    out << Describe(*store) << ": schema version " << versions->first << " -> " << versions->second
        << "\n";
  }
  return kExitOk;
}

int RunStatus(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  StatusOr<Store> store = ChooseStore(args);
  if (!store.ok()) return Usage(err, store.status());
  StatusOr<int> version = ReadVersion(*store, /*missing_is_zero=*/false);
  if (!version.ok()) return Fail(err, "status", *store, version.status());
  std::optional<std::vector<PartitionEpoch>> epochs;
  if (*version == store->latest_version) {
    StatusOr<std::vector<PartitionEpoch>> read = ReadEpochs(*store);
    if (!read.ok()) return Fail(err, "status", *store, read.status());
    epochs = std::move(*read);
  }
  if (args.switches.contains("json")) {
    nlohmann::ordered_json j;
    j["backend"] = store->backend;
    j["store"] = store->name;
    j["schema_version"] = *version;
    j["latest_schema_version"] = store->latest_version;
    j["migration_needed"] = *version < store->latest_version;
    if (epochs) {
      j["partitions"] = nlohmann::ordered_json::array();
      for (const PartitionEpoch& e : *epochs) {
        j["partitions"].push_back({{"partition", e.partition}, {"epoch", e.epoch}});
      }
    } else {
      j["partitions"] = nullptr;
    }
    out << Dump(j) << "\n";
    return kExitOk;
  }
  out << "store: " << Describe(*store) << "\n";
  out << "schema version: " << *version << " (this build: " << store->latest_version << ")";
  if (*version < store->latest_version) {
    out << "; run `pinvault-admin store migrate`"
        << (store->postgres ? " before starting pinvaultd" : " (pinvaultd also migrates it)");
  } else if (*version > store->latest_version) {
    out << "; newer than this build: use a newer pinvault";
  }
  out << "\n";
  if (epochs) {
    out << "partitions: " << epochs->size() << "\n";
    for (const PartitionEpoch& e : *epochs) {
      out << "  partition " << e.partition << ": epoch " << e.epoch << "\n";
    }
  }
  return kExitOk;
}

}  // namespace

int RunStoreCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "help" || command == "--help" || command == "-h") {
    out << kUsage;
    return kExitOk;
  }
  if (command != "migrate" && command != "status") {
    err << "pinvault-admin store: unknown command \"" << command << "\"\n" << kUsage;
    return kExitUsage;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::set<std::string> valued = {"postgres", "password-file", "data-dir"};
  if (command == "migrate") valued.insert("to-version");
  StatusOr<ParsedArgs> parsed = ParseArgs(rest, valued, {"json", "help"}, RefusePasswordOptions);
  if (!parsed.ok()) return Usage(err, parsed.status());
  if (parsed->switches.contains("help")) {
    out << kUsage;
    return kExitOk;
  }
  if (!parsed->positional.empty()) {
    // Not echoed: it might be a secret typed in the wrong place.
    return Usage(err, InvalidArgumentError("unexpected argument"));
  }
  return command == "migrate" ? RunMigrate(*parsed, out, err) : RunStatus(*parsed, out, err);
}

}  // namespace pinvault::api
