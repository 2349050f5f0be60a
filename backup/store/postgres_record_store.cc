#include "backup/store/postgres_record_store.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <pqxx/pqxx>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "vault/bytes.h"
#include "vault/secret_bytes.h"

namespace pinvault::backup {

using vault::BucketEntry;
using vault::BucketScan;
using vault::CommitBatch;
using vault::RecordId;
using vault::StoredRecord;
using vault::StoreHead;
using vault::TreeNode;
using vault::TreeSnapshot;

namespace {

// Migrations[v - 1] brings a database from schema version v - 1 to v. They run inside one
// transaction (PostgreSQL's DDL is transactional), after kCreateSchemaTable.
constexpr const char* kMigrations[] = {
    // 1: records (shared by all partitions) and one head row per partition.
    "CREATE TABLE records ("
    "  id bytea PRIMARY KEY,"
    "  version bigint NOT NULL,"
    "  record_hash bytea NOT NULL,"
    "  sealed bytea NOT NULL);"
    "CREATE TABLE partition_heads ("
    "  partition integer PRIMARY KEY,"
    "  epoch bigint NOT NULL,"
    "  certificate bytea NOT NULL);",
    // 2: the persisted Merkle frontier of each partition.
    "CREATE TABLE tree_nodes ("
    "  partition integer NOT NULL,"
    "  idx bigint NOT NULL,"
    "  kind smallint NOT NULL,"
    "  hash bytea NOT NULL,"
    "  PRIMARY KEY (partition, idx));",
    // 3: one lease row per partition (DESIGN.md section 8). Expiry is in database time.
    "CREATE TABLE partition_leases ("
    "  partition integer PRIMARY KEY,"
    "  owner text NOT NULL,"
    "  term bigint NOT NULL,"
    "  expires_at timestamptz NOT NULL);",
};
static_assert(std::size(kMigrations) == PostgresRecordStore::kLatestSchemaVersion);

constexpr const char* kCreateSchemaTable =
    "CREATE TABLE IF NOT EXISTS pinvault_schema ("
    "  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
    "  version integer NOT NULL)";
constexpr const char* kReadSchemaVersion = "SELECT version FROM pinvault_schema";
constexpr const char* kSchemaTableExists = "SELECT to_regclass('pinvault_schema') IS NOT NULL";
constexpr const char* kListPartitions = "SELECT partition FROM partition_heads ORDER BY partition";
constexpr const char* kWriteSchemaVersion =
    "INSERT INTO pinvault_schema (singleton, version) VALUES (true, $1) "
    "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version";
// kMigrationLock: the advisory lock key that serialises concurrent Migrate calls ("pinvault").
constexpr int64_t kMigrationLock = 0x70696e7661756c74;

// Prepared statements: (name, SQL), prepared on every connection of the pool.
struct Statement {
  const char* name;
  const char* sql;
};
constexpr Statement kCreateHead = {
    "create_head",
    "INSERT INTO partition_heads (partition, epoch, certificate) VALUES ($1, $2, $3) "
    "ON CONFLICT (partition) DO NOTHING"};
constexpr Statement kAdvanceHead = {"advance_head",
                                    "UPDATE partition_heads SET epoch = $2, certificate = $3 "
                                    "WHERE partition = $1 AND epoch = $4"};
constexpr Statement kHeadEpoch = {"head_epoch",
                                  "SELECT epoch FROM partition_heads WHERE partition = $1"};
constexpr Statement kInsertRecord = {
    "insert_record",
    "INSERT INTO records (id, version, record_hash, sealed) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (id) DO NOTHING"};
constexpr Statement kUpdateRecord = {
    "update_record",
    "UPDATE records SET version = $2, record_hash = $3, sealed = $4 "
    "WHERE id = $1 AND version = $5"};
constexpr Statement kRecordVersion = {"record_version",
                                      "SELECT version FROM records WHERE id = $1"};
constexpr Statement kPutNode = {
    "put_node",
    "INSERT INTO tree_nodes (partition, idx, kind, hash) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (partition, idx) DO UPDATE SET kind = EXCLUDED.kind, hash = EXCLUDED.hash"};
constexpr Statement kEraseNode = {"erase_node",
                                  "DELETE FROM tree_nodes WHERE partition = $1 AND idx = $2"};
constexpr Statement kReadHead = {
    "read_head", "SELECT epoch, certificate FROM partition_heads WHERE partition = $1"};
constexpr Statement kReadNodes = {
    "read_nodes", "SELECT idx, kind, hash FROM tree_nodes WHERE partition = $1 ORDER BY idx"};
// One statement, hence one snapshot; only the target row carries its version and blob.
constexpr Statement kScanBucket = {"scan_bucket",
                                   "SELECT id, record_hash, CASE WHEN id = $3 THEN version END, "
                                   "CASE WHEN id = $3 THEN sealed END "
                                   "FROM records WHERE id BETWEEN $1 AND $2 ORDER BY id"};
constexpr Statement kReadRecord = {
    "read_record", "SELECT id, record_hash, version, sealed FROM records WHERE id = $1"};
// The fence: it matches (and locks) the lease row only while `owner` holds it at `term`, so a
// takeover (which raises the term under the same row lock) and a commit are ordered.
constexpr Statement kFence = {"fence",
                              "UPDATE partition_leases SET term = term "
                              "WHERE partition = $1 AND owner = $2 AND term = $3"};
constexpr Statement kStatements[] = {
    kCreateHead, kAdvanceHead, kHeadEpoch, kInsertRecord, kUpdateRecord, kRecordVersion,
    kPutNode,    kEraseNode,   kReadHead,  kReadNodes,    kScanBucket,   kReadRecord,
    kFence,
};

// kSessionSetup runs once on every new connection.
constexpr const char* kSessionSetup =
    "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = '10s'";

// kDefaultConnectTimeout (seconds, per host) applies when the URI does not set one.
constexpr const char* kDefaultConnectTimeout = "10";
// kMaxPasswordFileSize bounds what ReadPasswordFile reads.
constexpr off_t kMaxPasswordFileSize = 64 * 1024;

// OneLine turns a libpq/libpqxx message (several lines, tabs, a trailing newline) into one
// line.
std::string OneLine(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Bin passes bytes to libpqxx as a binary (bytea) parameter.
pqxx::binarystring Bin(ByteView bytes) {
  static constexpr uint8_t kNothing = 0;
  return bytes.empty() ? pqxx::binarystring(&kNothing, 0)
                       : pqxx::binarystring(bytes.data(), bytes.size());
}

// IdPrefix names a record id in messages by its first bytes.
std::string IdPrefix(const RecordId& id) { return HexEncode(ByteView(id.data(), 4)) + ".."; }

// kMaxBigint: the largest counter PostgreSQL's bigint holds.
constexpr uint64_t kMaxBigint = static_cast<uint64_t>(INT64_MAX);
// kMaxPartition: the largest partition number PostgreSQL's integer holds.
constexpr uint32_t kMaxPartition = static_cast<uint32_t>(INT32_MAX);

// ReadInt parses an integer column (text format) that must lie in [lo, hi]; DATA_LOSS if it
// is NULL, unparsable or out of range.
StatusOr<int64_t> ReadInt(const pqxx::field& field, int64_t lo, int64_t hi, std::string_view what) {
  if (field.is_null()) return DataLossError("malformed " + std::string(what) + " (NULL)");
  int64_t value = 0;
  const char* begin = field.c_str();
  const char* end = begin + field.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || value < lo || value > hi) {
    return DataLossError("malformed " + std::string(what));
  }
  return value;
}

// ReadBlob returns a bytea column; DATA_LOSS if NULL.
StatusOr<Bytes> ReadBlob(const pqxx::field& field, std::string_view what) {
  if (field.is_null()) return DataLossError("malformed " + std::string(what) + " (NULL)");
  pqxx::binarystring blob(field);
  return Bytes(blob.data(), blob.data() + blob.size());
}

// ReadFixed copies a bytea column that must be exactly N bytes long; DATA_LOSS otherwise.
template <size_t N>
Status ReadFixed(const pqxx::field& field, std::array<uint8_t, N>& out, std::string_view what) {
  if (field.is_null()) return DataLossError("malformed " + std::string(what) + " (NULL)");
  pqxx::binarystring blob(field);
  if (blob.size() != N) {
    return DataLossError("malformed " + std::string(what) + " (" + std::to_string(blob.size()) +
                         " bytes, want " + std::to_string(N) + ")");
  }
  std::copy(blob.data(), blob.data() + N, out.begin());
  return OkStatus();
}

// ReadRecordRow decodes (id, record_hash, version, sealed) from `row`.
Status ReadRecordRow(const pqxx::row& row, StoredRecord& out) {
  RETURN_IF_ERROR(ReadFixed(row[0], out.id, "record id"));
  RETURN_IF_ERROR(ReadFixed(row[1], out.record_hash, "record hash"));
  ASSIGN_OR_RETURN(int64_t version, ReadInt(row[2], 1, INT64_MAX, "record version"));
  out.version = static_cast<uint64_t>(version);
  ASSIGN_OR_RETURN(out.sealed, ReadBlob(row[3], "sealed record"));
  return OkStatus();
}

// ReadPasswordFile returns the first line of `path` (without its line end) as a
// NUL-terminated secret, for libpq. Refuses a file that group or others may access, as ssh
// does with private keys.
StatusOr<SecretBytes> ReadPasswordFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = "password file " + path + ": " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(std::move(message));
    if (err == EACCES) return PermissionDeniedError(std::move(message));
    return UnavailableError(std::move(message));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return UnavailableError("password file " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return FailedPreconditionError("password file " + path + " is not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPreconditionError("password file " + path +
                                   " is accessible by group or others (mode " + mode +
                                   "); make it readable by its owner only (chmod 600)");
  }
  if (st.st_size > kMaxPasswordFileSize) {
    return InvalidArgumentError("password file " + path + " is too large");
  }
  SecretBytes contents(static_cast<size_t>(st.st_size));
  size_t filled = 0;
  std::span<uint8_t> buffer = contents.RevealMutable();
  while (filled < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return UnavailableError("password file " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  std::span<const uint8_t> text = contents.Reveal().first(filled);
  size_t length = 0;
  while (length < text.size() && text[length] != '\n') ++length;
  if (length > 0 && text[length - 1] == '\r') --length;
  if (length == 0)
    return InvalidArgumentError("password file " + path + " has an empty first line");
  if (std::find(text.begin(), text.begin() + length, uint8_t{0}) != text.begin() + length) {
    return InvalidArgumentError("password file " + path + " holds a NUL byte");
  }
  SecretBytes password(length + 1);  // zero-filled: the copy below leaves the NUL at the end
  std::copy(text.begin(), text.begin() + length, password.RevealMutable().begin());
  return password;
}

// ParsedUri is what Open needs to know about the URI without connecting.
struct ParsedUri {
  std::string target;  // "host=... port=... dbname=... user=...", never a password
  bool has_password = false;
  bool has_connect_timeout = false;
};

StatusOr<ParsedUri> ParseUri(const std::string& uri) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    // libpq's message may quote part of the string, which may be a password: not repeated.
    return InvalidArgumentError("cannot parse the PostgreSQL connection string");
  }
  ParsedUri parsed;
  for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val == nullptr || option->val[0] == '\0') continue;
    std::string_view keyword = option->keyword;
    if (keyword == "password") {
      parsed.has_password = true;
    } else if (keyword == "connect_timeout") {
      parsed.has_connect_timeout = true;
    }
    if (keyword == "host" || keyword == "hostaddr" || keyword == "port" || keyword == "dbname" ||
        keyword == "user" || keyword == "sslmode" || keyword == "target_session_attrs") {
      if (!parsed.target.empty()) parsed.target += ' ';
      parsed.target += std::string(keyword) + "=" + option->val;
    }
  }
  PQconninfoFree(options);
  if (parsed.target.empty()) parsed.target = "(libpq defaults)";
  return parsed;
}

// ---- Connecting with the password as a parameter ----
//
// libpqxx 6.4 connects through a "connection policy" that only receives a conninfo string.
// ParamsPolicy connects with PQconnectdbParams instead, reading the keyword/value arrays from
// t_connect_params, which Connection::Open sets on its own thread for the duration of the
// constructor. Outside that window (libpqxx trying to reactivate a broken connection) the
// policy refuses, so a broken connection stays broken and the pool replaces it.
struct ConnectArrays {
  const char* const* keywords;
  const char* const* values;
};
thread_local const ConnectArrays* t_connect_params = nullptr;

class ParamsPolicy final : public pqxx::connectionpolicy {
 public:
  explicit ParamsPolicy(const std::string& options) : pqxx::connectionpolicy(options) {}

  handle do_startconnect(handle orig) override {
    if (orig != nullptr) return orig;
    const ConnectArrays* params = t_connect_params;
    if (params == nullptr) {
      throw pqxx::broken_connection("connection lost (the store reconnects through its pool)");
    }
    PGconn* conn = PQconnectdbParams(params->keywords, params->values, /*expand_dbname=*/1);
    if (conn == nullptr) throw std::bad_alloc();
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn);
      PQfinish(conn);
      throw pqxx::broken_connection(message);
    }
    return conn;
  }
};
using PgConnection = pqxx::basic_connection_base<ParamsPolicy>;

// IsRetryable: a deadlock or serialization failure; the transaction was rolled back.
bool IsRetryable(const std::string& sqlstate) { return sqlstate == "40001" || sqlstate == "40P01"; }

// IsConnectionState: SQLSTATEs after which the session is of no further use (connection
// exceptions, the server shutting down, a server that is (now) read-only, a session killed
// for idling in a transaction).
bool IsConnectionState(const std::string& sqlstate) {
  return sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 || sqlstate == "25006" ||
         sqlstate == "25P03";
}

}  // namespace

struct PostgresRecordStore::ConnectParams {
  std::string uri;
  SecretBytes password;  // NUL-terminated; empty: none
  std::string target;
  bool default_connect_timeout = false;
};

// Connection is one libpqxx connection with this store's session settings and prepared
// statements. Not thread-safe: the pool hands it to one thread at a time.
class PostgresRecordStore::Connection {
 public:
  // Open connects; UNAVAILABLE (with libpq's reason) if that fails.
  static StatusOr<std::unique_ptr<Connection>> Open(const ConnectParams& params) {
    std::vector<const char*> keywords = {"dbname", "fallback_application_name"};
    std::vector<const char*> values = {params.uri.c_str(), "pinvault"};
    if (!params.password.empty()) {
      keywords.push_back("password");
      values.push_back(reinterpret_cast<const char*>(params.password.Reveal().data()));
    }
    if (params.default_connect_timeout) {
      keywords.push_back("connect_timeout");
      values.push_back(kDefaultConnectTimeout);
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    const ConnectArrays arrays{keywords.data(), values.data()};
    try {
      t_connect_params = &arrays;
      std::unique_ptr<Connection> conn(new Connection(params.target));
      t_connect_params = nullptr;
      {
        pqxx::nontransaction setup(conn->pq_);
        setup.exec(kSessionSetup);
        setup.commit();
      }
      for (const Statement& statement : kStatements)
        conn->pq_.prepare(statement.name, statement.sql);
      return conn;
    } catch (const std::exception& e) {
      t_connect_params = nullptr;
      return UnavailableError("cannot connect to PostgreSQL " + params.target + ": " +
                              OneLine(e.what()));
    }
  }

  PgConnection& pq() { return pq_; }

  // broken: the connection must not be reused.
  bool broken() const { return broken_ || !pq_.is_open(); }
  void MarkBroken() { broken_ = true; }

  // reused: the connection has been handed out before (so it may have gone stale).
  bool reused() const { return reused_; }
  void MarkReused() { reused_ = true; }

  // StillOpen checks an idle connection without a round trip: the server has nothing to say
  // on an idle session, so anything readable (its goodbye before a shutdown, a closed socket)
  // means the connection is of no further use.
  bool StillOpen() {
    if (broken()) return false;
    pollfd p{};
    p.fd = pq_.sock();
    p.events = POLLIN;
    if (p.fd < 0) return false;
    int n = ::poll(&p, 1, 0);
    return n == 0 || (n < 0 && errno == EINTR);
  }

 private:
  explicit Connection(const std::string& target) : pq_(target) {}

  PgConnection pq_;
  bool broken_ = false;
  bool reused_ = false;
};

// Lease holds a connection of the pool and gives it back (or drops it) on destruction.
class PostgresRecordStore::Lease {
 public:
  Lease(PostgresRecordStore* store, std::unique_ptr<Connection> conn)
      : store_(store), conn_(std::move(conn)) {}
  ~Lease() { store_->Release(std::move(conn_)); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection* operator->() const { return conn_.get(); }
  Connection& operator*() const { return *conn_; }

 private:
  PostgresRecordStore* store_;
  std::unique_ptr<Connection> conn_;
};

namespace {

// MapException maps the exception being handled (call it from a catch block) to a Status.
// `broken` is set when the session cannot be reused; `sqlstate` receives the SQLSTATE of an
// SQL error. Messages name the server by `target` (never the password).
Status MapException(std::string_view what, const std::string& target, bool& broken,
                    std::string& sqlstate) {
  const std::string prefix = std::string(what) + ": ";
  try {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    broken = true;
    return UnavailableError(prefix + "the connection to PostgreSQL " + target +
                            " was lost during COMMIT; the outcome is unknown (re-read the head)");
  } catch (const pqxx::broken_connection& e) {
    broken = true;
    return UnavailableError(prefix + "connection to PostgreSQL " + target +
                            " lost: " + OneLine(e.what()));
  } catch (const pqxx::sql_error& e) {
    sqlstate = e.sqlstate();
    std::string message = prefix + OneLine(e.what()) + " (SQLSTATE " + sqlstate + ")";
    if (IsConnectionState(sqlstate)) {
      broken = true;
      return UnavailableError(std::move(message));
    }
    if (IsRetryable(sqlstate) || sqlstate.rfind("53", 0) == 0 || sqlstate == "57014") {
      return UnavailableError(std::move(message));
    }
    if (sqlstate == "XX001" || sqlstate == "XX002") return DataLossError(std::move(message));
    if (sqlstate == "42P01" || sqlstate == "42703") {
      return FailedPreconditionError(message + "; the schema is not the one this build knows (" +
                                     std::to_string(PostgresRecordStore::kLatestSchemaVersion) +
                                     "): run `pinvault-admin store migrate`");
    }
    return InternalError(std::move(message));
  } catch (const std::bad_alloc&) {
    broken = true;
    return ResourceExhaustedError(prefix + "out of memory");
  } catch (const std::exception& e) {
    broken = true;
    return InternalError(prefix + OneLine(e.what()));
  } catch (...) {
    broken = true;
    return InternalError(prefix + "unknown exception");
  }
}

// QuerySchemaVersion reads the schema version (0: the table exists but holds no row). Throws
// libpqxx exceptions (undefined_table, 42P01, when there is no pinvault_schema table).
template <typename Txn>
StatusOr<int64_t> QuerySchemaVersion(Txn& txn) {
  pqxx::result rows = txn.exec(kReadSchemaVersion);
  if (rows.empty()) return int64_t{0};
  if (rows.size() != 1) return DataLossError("pinvault_schema holds several rows");
  return ReadInt(rows[0][0], 0, INT32_MAX, "schema version");
}

}  // namespace

PostgresRecordStore::PostgresRecordStore(std::unique_ptr<ConnectParams> params, int pool_size)
    : params_(std::move(params)), pool_size_(pool_size) {}

PostgresRecordStore::~PostgresRecordStore() = default;

const std::string& PostgresRecordStore::target() const { return params_->target; }

StatusOr<std::unique_ptr<PostgresRecordStore::ConnectParams>>
PostgresRecordStore::MakeConnectParams(const Options& options) {
  if (options.uri.empty()) return InvalidArgumentError("PostgreSQL URI is empty");
  ASSIGN_OR_RETURN(ParsedUri parsed, ParseUri(options.uri));
  if (parsed.has_password) {
    return InvalidArgumentError("the PostgreSQL URI for " + parsed.target +
                                " holds a password; put it in a password file instead");
  }
  auto params = std::make_unique<ConnectParams>();
  params->uri = options.uri;
  params->target = parsed.target;
  params->default_connect_timeout = !parsed.has_connect_timeout;
  if (!options.password_file.empty()) {
    ASSIGN_OR_RETURN(params->password, ReadPasswordFile(options.password_file));
  }
  return params;
}

StatusOr<std::unique_ptr<PostgresRecordStore>> PostgresRecordStore::Open(const Options& options) {
  if (options.pool_size < 1) return InvalidArgumentError("pool_size must be >= 1");
  ASSIGN_OR_RETURN(std::unique_ptr<ConnectParams> params, MakeConnectParams(options));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(*params));

  // The schema must be exactly the one this build knows; Open never migrates.
  StatusOr<int64_t> version = InternalError("schema version not read");
  bool broken = false;
  std::string sqlstate;
  try {
    pqxx::nontransaction txn(conn->pq());
    version = QuerySchemaVersion(txn);
  } catch (...) {
    Status status = MapException("reading the schema version", params->target, broken, sqlstate);
    if (sqlstate == "42P01") {
      return FailedPreconditionError("PostgreSQL database " + params->target +
                                     " has no pinvault schema; run `pinvault-admin store migrate`");
    }
    return status;
  }
  if (!version.ok()) return version.status();
  if (*version > kLatestSchemaVersion) {
    return FailedPreconditionError("PostgreSQL database " + params->target +
                                   " has schema version " + std::to_string(*version) +
                                   ", newer than this build's " +
                                   std::to_string(kLatestSchemaVersion));
  }
  if (*version < kLatestSchemaVersion) {
    return FailedPreconditionError(
        "PostgreSQL database " + params->target + " has schema version " +
        std::to_string(*version) + ", older than this build's " +
        std::to_string(kLatestSchemaVersion) + "; run `pinvault-admin store migrate`");
  }

  auto store = std::unique_ptr<PostgresRecordStore>(
      new PostgresRecordStore(std::move(params), options.pool_size));
  store->idle_.push_back(std::move(conn));
  store->open_ = 1;
  return store;
}

Status PostgresRecordStore::Migrate(const Options& options) {
  if (options.schema_version < 1 || options.schema_version > kLatestSchemaVersion) {
    return InvalidArgumentError("schema_version out of range");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ConnectParams> params, MakeConnectParams(options));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(*params));
  bool broken = false;
  std::string sqlstate;
  try {
    pqxx::work txn(conn->pq());
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    txn.exec(kCreateSchemaTable);
    ASSIGN_OR_RETURN(int64_t version, QuerySchemaVersion(txn));
    if (version > kLatestSchemaVersion) {
      return FailedPreconditionError("PostgreSQL database " + params->target +
                                     " has schema version " + std::to_string(version) +
                                     ", newer than this build's " +
                                     std::to_string(kLatestSchemaVersion));
    }
    if (version >= options.schema_version) return OkStatus();
    for (int64_t next = version + 1; next <= options.schema_version; ++next) {
      txn.exec(kMigrations[next - 1]);
    }
    txn.exec_params(kWriteSchemaVersion, options.schema_version);
    txn.commit();
    return OkStatus();
  } catch (...) {
    return MapException(
        "migrating " + params->target + " to schema " + std::to_string(options.schema_version),
        params->target, broken, sqlstate);
  }
}

StatusOr<int> PostgresRecordStore::ReadSchemaVersion(const Options& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<ConnectParams> params, MakeConnectParams(options));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(*params));
  bool broken = false;
  std::string sqlstate;
  try {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(conn->pq());
    pqxx::result exists = txn.exec(kSchemaTableExists);
    if (exists.size() != 1 || exists[0][0].is_null()) {
      return DataLossError("malformed answer to the schema table lookup");
    }
    if (!exists[0][0].as<bool>()) return 0;
    ASSIGN_OR_RETURN(int64_t version, QuerySchemaVersion(txn));
    return static_cast<int>(version);
  } catch (...) {
    return MapException("reading the schema version of " + params->target, params->target, broken,
                        sqlstate);
  }
}

StatusOr<std::string> PostgresRecordStore::DescribeTarget(const std::string& uri) {
  ASSIGN_OR_RETURN(ParsedUri parsed, ParseUri(uri));
  return parsed.target;
}

StatusOr<std::vector<uint32_t>> PostgresRecordStore::Partitions() {
  using Result = std::vector<uint32_t>;
  return RunRead<Result>("listing partitions", [&](Connection& conn) -> StatusOr<Result> {
    pqxx::nontransaction txn(conn.pq());
    pqxx::result rows = txn.exec(kListPartitions);
    Result partitions;
    partitions.reserve(rows.size());
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(int64_t partition, ReadInt(row[0], 0, kMaxPartition, "partition number"));
      partitions.push_back(static_cast<uint32_t>(partition));
    }
    return partitions;
  });
}

StatusOr<std::unique_ptr<PostgresRecordStore::Connection>> PostgresRecordStore::Acquire() {
  std::unique_lock lock(pool_mu_);
  while (true) {
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (conn->StillOpen()) return conn;
      conn.reset();  // closed outside the lock
      lock.lock();
      --open_;
      continue;
    }
    if (open_ < pool_size_) {
      ++open_;
      lock.unlock();
      StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(*params_);
      if (!conn.ok()) {
        lock.lock();
        --open_;
        lock.unlock();
        pool_cv_.notify_one();
      }
      return conn;
    }
    pool_cv_.wait(lock);
  }
}

void PostgresRecordStore::Release(std::unique_ptr<Connection> conn) {
  if (conn == nullptr) return;
  const bool keep = !conn->broken();
  if (keep) {
    conn->MarkReused();
  } else {
    conn.reset();  // closed outside the lock
  }
  {
    std::lock_guard lock(pool_mu_);
    if (keep) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
  }
  pool_cv_.notify_one();
}

template <typename T, typename Fn>
StatusOr<T> PostgresRecordStore::RunRead(const char* what, Fn&& read) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> raw, Acquire());
    const bool reused = raw->reused();
    Lease conn(this, std::move(raw));
    bool broken = false;
    std::string sqlstate;
    Status status;
    try {
      return read(*conn);
    } catch (...) {
      status = MapException(what, params_->target, broken, sqlstate);
    }
    if (broken) conn->MarkBroken();
    // A stale pooled connection is not the server's answer: ask once more on a new one.
    if (!(broken && reused && attempt == 0)) return status;
  }
}

StatusOr<TreeSnapshot> PostgresRecordStore::ReadTree(uint32_t partition) {
  if (partition > kMaxPartition) return InvalidArgumentError("partition out of range");
  const auto part = static_cast<int32_t>(partition);
  return RunRead<TreeSnapshot>("reading the tree", [&](Connection& conn) -> StatusOr<TreeSnapshot> {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(conn.pq());
    pqxx::result head = txn.exec_prepared(kReadHead.name, part);
    pqxx::result nodes = txn.exec_prepared(kReadNodes.name, part);
    txn.abort();  // read-only: nothing to commit

    TreeSnapshot snapshot;
    if (head.size() > 1) return DataLossError("several head rows for one partition");
    if (head.size() == 1) {
      ASSIGN_OR_RETURN(int64_t epoch, ReadInt(head[0][0], 0, INT64_MAX, "head epoch"));
      ASSIGN_OR_RETURN(Bytes certificate, ReadBlob(head[0][1], "head certificate"));
      snapshot.head = StoreHead{static_cast<uint64_t>(epoch), std::move(certificate)};
    }
    snapshot.nodes.reserve(nodes.size());
    for (const pqxx::row& row : nodes) {
      TreeNode node;
      ASSIGN_OR_RETURN(int64_t index, ReadInt(row[0], 0, UINT32_MAX, "tree node index"));
      ASSIGN_OR_RETURN(int64_t kind, ReadInt(row[1], 0, UINT8_MAX, "tree node kind"));
      node.index = static_cast<uint32_t>(index);
      node.kind = static_cast<uint8_t>(kind);
      RETURN_IF_ERROR(ReadFixed(row[2], node.hash, "tree node hash"));
      snapshot.nodes.push_back(node);
    }
    return snapshot;
  });
}

StatusOr<BucketScan> PostgresRecordStore::ScanBucket(const RecordId& lo, const RecordId& hi,
                                                     const RecordId& target) {
  return RunRead<BucketScan>("scanning a bucket", [&](Connection& conn) -> StatusOr<BucketScan> {
    pqxx::nontransaction txn(conn.pq());
    pqxx::result rows = txn.exec_prepared(kScanBucket.name, Bin(lo), Bin(hi), Bin(target));
    BucketScan scan;
    scan.entries.reserve(rows.size());
    for (const pqxx::row& row : rows) {
      BucketEntry entry;
      RETURN_IF_ERROR(ReadFixed(row[0], entry.id, "record id"));
      RETURN_IF_ERROR(ReadFixed(row[1], entry.record_hash, "record hash"));
      if (!scan.entries.empty() && !(scan.entries.back().id < entry.id)) {
        return DataLossError("bucket rows out of order");
      }
      if (entry.id == target) {
        StoredRecord record;
        RETURN_IF_ERROR(ReadRecordRow(row, record));
        scan.target = std::move(record);
      }
      scan.entries.push_back(entry);
    }
    return scan;
  });
}

StatusOr<std::optional<StoredRecord>> PostgresRecordStore::ReadRecord(const RecordId& id) {
  using Result = std::optional<StoredRecord>;
  return RunRead<Result>("reading a record", [&](Connection& conn) -> StatusOr<Result> {
    pqxx::nontransaction txn(conn.pq());
    pqxx::result rows = txn.exec_prepared(kReadRecord.name, Bin(id));
    if (rows.empty()) return Result();
    if (rows.size() > 1) return DataLossError("several rows for one record id");
    StoredRecord record;
    RETURN_IF_ERROR(ReadRecordRow(rows[0], record));
    if (record.id != id) return DataLossError("record row has another id");
    return Result(std::move(record));
  });
}

Status PostgresRecordStore::Commit(const CommitBatch& batch) {
  // Validate before touching the database.
  std::set<RecordId> ids;
  for (const auto& put : batch.records) {
    if (!ids.insert(put.record.id).second) {
      return InvalidArgumentError("commit batch writes one record id twice");
    }
    if (put.record.version == 0) return InvalidArgumentError("record version must be >= 1");
    if (put.record.version > kMaxBigint || put.expected_version > kMaxBigint) {
      return InvalidArgumentError("record version out of range");
    }
  }
  if (batch.head.epoch > kMaxBigint || batch.expected_epoch.value_or(0) > kMaxBigint) {
    return InvalidArgumentError("epoch out of range");
  }
  if (batch.partition > kMaxPartition) return InvalidArgumentError("partition out of range");
  if (batch.fence && batch.fence->term > kMaxBigint) return InvalidArgumentError("term out of range");
  // Rows are written in id order: every committer takes the row locks in the same order.
  std::vector<size_t> order(batch.records.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return batch.records[a].record.id < batch.records[b].record.id;
  });

  Status status;
  for (int attempt = 1; attempt <= kCommitAttempts; ++attempt) {
    bool retry = false;
    status = CommitOnce(batch, order, retry);
    if (!retry) return status;
  }
  return UnavailableError("commit gave up after " + std::to_string(kCommitAttempts) +
                          " attempts: " + status.message());
}

Status PostgresRecordStore::CommitOnce(const CommitBatch& batch, const std::vector<size_t>& order,
                                       bool& retry) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> raw, Acquire());
  Lease conn(this, std::move(raw));
  const auto epoch = static_cast<int64_t>(batch.head.epoch);
  const auto part = static_cast<int32_t>(batch.partition);
  bool committing = false;
  bool broken = false;
  std::string sqlstate;
  Status status;
  try {
    pqxx::work txn(conn->pq());

    // The lease fence comes first: a node that lost the partition commits nothing.
    if (batch.fence) {
      pqxx::result fenced = txn.exec_prepared(kFence.name, part, batch.fence->owner,
                                              static_cast<int64_t>(batch.fence->term));
      if (fenced.affected_rows() != 1) {
        return AbortedError("partition " + std::to_string(part) + " is no longer leased to " +
                            batch.fence->owner + " at term " + std::to_string(batch.fence->term) +
                            "; nothing was applied");
      }
    }

    // The epoch check: the head row moves from the expected epoch, or is created if none may
    // exist.
    pqxx::result head =
        batch.expected_epoch
            ? txn.exec_prepared(kAdvanceHead.name, part, epoch, Bin(batch.head.certificate),
                                static_cast<int64_t>(*batch.expected_epoch))
            : txn.exec_prepared(kCreateHead.name, part, epoch, Bin(batch.head.certificate));
    if (head.affected_rows() != 1) {
      pqxx::result current = txn.exec_prepared(kHeadEpoch.name, part);
      return AbortedError(
          "partition " + std::to_string(part) + " epoch is " +
          (current.empty() ? std::string("none") : std::string(current[0][0].c_str())) +
          ", commit expected " +
          (batch.expected_epoch ? std::to_string(*batch.expected_epoch) : std::string("none")));
    }

    for (size_t i : order) {
      const vault::RecordPut& put = batch.records[i];
      const auto version = static_cast<int64_t>(put.record.version);
      pqxx::result written =
          put.expected_version == 0
              ? txn.exec_prepared(kInsertRecord.name, Bin(put.record.id), version,
                                  Bin(put.record.record_hash), Bin(put.record.sealed))
              : txn.exec_prepared(kUpdateRecord.name, Bin(put.record.id), version,
                                  Bin(put.record.record_hash), Bin(put.record.sealed),
                                  static_cast<int64_t>(put.expected_version));
      if (written.affected_rows() != 1) {
        pqxx::result current = txn.exec_prepared(kRecordVersion.name, Bin(put.record.id));
        return AbortedError(
            "record " + IdPrefix(put.record.id) + " version is " +
            (current.empty() ? std::string("0") : std::string(current[0][0].c_str())) +
            ", commit expected " + std::to_string(put.expected_version));
      }
    }
    for (const TreeNode& node : batch.nodes) {
      txn.exec_prepared(kPutNode.name, part, static_cast<int64_t>(node.index),
                        static_cast<int>(node.kind), Bin(node.hash));
    }
    for (uint32_t index : batch.erased_nodes) {
      txn.exec_prepared(kEraseNode.name, part, static_cast<int64_t>(index));
    }

    if (!conn->pq().is_open()) {
      // Lost before COMMIT could be sent: the server rolls the transaction back.
      conn->MarkBroken();
      return UnavailableError("committing: connection to PostgreSQL " + params_->target +
                              " lost before COMMIT; nothing was applied");
    }
    committing = true;
    txn.commit();
    return OkStatus();
  } catch (const pqxx::sql_error&) {
    // The server answered with an error, COMMIT included: the transaction is rolled back,
    // unless the session died with it (libpqxx then throws in_doubt_error instead).
    status = MapException("committing", params_->target, broken, sqlstate);
    retry = IsRetryable(sqlstate);
  } catch (...) {
    status = MapException("committing", params_->target, broken, sqlstate);
    if (committing && status.code() != StatusCode::kUnavailable) {
      status = UnavailableError(status.message() +
                                "; the outcome of COMMIT is unknown (re-read the head)");
    }
  }
  if (broken) conn->MarkBroken();
  return status;
}

template <typename T, typename Fn>
StatusOr<T> PostgresRecordStore::RunWrite(const char* what, Fn&& write) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> raw, Acquire());
  Lease conn(this, std::move(raw));
  bool broken = false;
  std::string sqlstate;
  Status status;
  try {
    return write(*conn);
  } catch (...) {
    status = MapException(what, params_->target, broken, sqlstate);
  }
  if (broken) conn->MarkBroken();
  return status;
}

StatusOr<PostgresRecordStore::PartitionLease> PostgresRecordStore::AcquireLease(
    uint32_t partition, const std::string& owner, std::chrono::milliseconds ttl) {
  if (partition > kMaxPartition) return InvalidArgumentError("partition out of range");
  if (owner.empty()) return InvalidArgumentError("a lease owner needs a name");
  if (ttl.count() < 0) return InvalidArgumentError("a lease needs a non-negative duration");
  const auto part = static_cast<int32_t>(partition);
  const auto ttl_ms = static_cast<int64_t>(ttl.count());
  return RunWrite<PartitionLease>(
      "acquiring a lease", [&](Connection& conn) -> StatusOr<PartitionLease> {
        pqxx::work txn(conn.pq());
        // A partition never leased gets a row that has already expired, at term 0.
        txn.exec_params(
            "INSERT INTO partition_leases (partition, owner, term, expires_at) "
            "VALUES ($1, '', 0, '-infinity') ON CONFLICT (partition) DO NOTHING",
            part);
        pqxx::result row = txn.exec_params(
            "SELECT owner, term, expires_at > clock_timestamp() FROM partition_leases "
            "WHERE partition = $1 FOR UPDATE",
            part);
        if (row.size() != 1) return DataLossError("lease row missing after insert");
        const std::string holder = row[0][0].c_str();
        ASSIGN_OR_RETURN(int64_t term, ReadInt(row[0][1], 0, INT64_MAX, "lease term"));
        const bool live = row[0][2].as<bool>();
        if (live && holder != owner) {
          return AbortedError("partition " + std::to_string(partition) + " is leased to " + holder +
                              " at term " + std::to_string(term));
        }
        // Renewing a live lease of one's own keeps the term; anything else is a takeover.
        const int64_t next = live ? term : term + 1;
        txn.exec_params(
            "UPDATE partition_leases SET owner = $2, term = $3, "
            "expires_at = clock_timestamp() + $4 * interval '1 millisecond' WHERE partition = $1",
            part, owner, next, ttl_ms);
        txn.commit();
        return PartitionLease{partition, owner, static_cast<uint64_t>(next), live};
      });
}

Status PostgresRecordStore::RenewLease(const PartitionLease& lease, std::chrono::milliseconds ttl) {
  if (lease.partition > kMaxPartition || lease.term > kMaxBigint) {
    return InvalidArgumentError("lease out of range");
  }
  const auto part = static_cast<int32_t>(lease.partition);
  return RunWrite<bool>("renewing a lease",
                        [&](Connection& conn) -> StatusOr<bool> {
                          pqxx::work txn(conn.pq());
                          pqxx::result r = txn.exec_params(
                              "UPDATE partition_leases SET expires_at = clock_timestamp() + $4 "
                              "* interval '1 millisecond' "
                              "WHERE partition = $1 AND owner = $2 AND term = $3",
                              part, lease.owner, static_cast<int64_t>(lease.term),
                              static_cast<int64_t>(ttl.count()));
                          if (r.affected_rows() != 1) {
                            return AbortedError("partition " + std::to_string(lease.partition) +
                                                " is no longer leased to " + lease.owner +
                                                " at term " + std::to_string(lease.term));
                          }
                          txn.commit();
                          return true;
                        })
      .status();
}

Status PostgresRecordStore::ReleaseLease(const PartitionLease& lease) {
  return RenewLease(lease, std::chrono::milliseconds(0));
}

StatusOr<std::vector<PostgresRecordStore::PartitionLease>> PostgresRecordStore::ReadLeases() {
  using Result = std::vector<PartitionLease>;
  return RunRead<Result>("reading leases", [&](Connection& conn) -> StatusOr<Result> {
    pqxx::nontransaction txn(conn.pq());
    pqxx::result rows = txn.exec(
        "SELECT partition, owner, term, expires_at > clock_timestamp() FROM partition_leases "
        "ORDER BY partition");
    Result leases;
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(int64_t partition, ReadInt(row[0], 0, kMaxPartition, "lease partition"));
      ASSIGN_OR_RETURN(int64_t term, ReadInt(row[2], 0, INT64_MAX, "lease term"));
      leases.push_back(PartitionLease{static_cast<uint32_t>(partition), row[1].c_str(),
                                      static_cast<uint64_t>(term), row[3].as<bool>()});
    }
    return leases;
  });
}

}  // namespace pinvault::backup
