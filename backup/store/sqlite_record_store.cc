#include "backup/store/sqlite_record_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <utility>

namespace pinvault::backup {
namespace {

using vault::BucketEntry;
using vault::BucketScan;
using vault::CommitBatch;
using vault::Digest;
using vault::RecordId;
using vault::StoredRecord;
using vault::StoreHead;
using vault::TreeNode;
using vault::TreeSnapshot;

// SqliteError turns a SQLite result code into a Status. Busy and I/O conditions are
// UNAVAILABLE (retry later), corruption is DATA_LOSS, everything else INTERNAL.
Status SqliteError(int rc, sqlite3* db, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_errmsg(db) != nullptr) {
    message += " (";
    message += sqlite3_errmsg(db);
    message += ")";
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
      return UnavailableError(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

// Migrations[v - 1] brings a file from user_version v - 1 to v.
constexpr const char* kMigrations[] = {
    // 1: records and the head.
    "CREATE TABLE records ("
    "  id BLOB NOT NULL PRIMARY KEY,"
    "  version INTEGER NOT NULL,"
    "  record_hash BLOB NOT NULL,"
    "  sealed BLOB NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE head ("
    "  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),"
    "  epoch INTEGER NOT NULL,"
    "  certificate BLOB NOT NULL"
    ");",
    // 2: the persisted Merkle frontier.
    "CREATE TABLE tree_nodes ("
    "  idx INTEGER PRIMARY KEY NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  hash BLOB NOT NULL"
    ");",
    // 3: partitions: one head and one frontier per partition; the single-tree layout's head
    // and nodes become partition 0's (a realm of one partition, as it was created).
    "CREATE TABLE partition_heads ("
    "  part INTEGER PRIMARY KEY NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  certificate BLOB NOT NULL"
    ");"
    "INSERT INTO partition_heads (part, epoch, certificate) SELECT 0, epoch, certificate FROM head;"
    "DROP TABLE head;"
    "CREATE TABLE partition_nodes ("
    "  part INTEGER NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  PRIMARY KEY (part, idx)"
    ") WITHOUT ROWID;"
    "INSERT INTO partition_nodes (part, idx, kind, hash) SELECT 0, idx, kind, hash FROM tree_nodes;"
    "DROP TABLE tree_nodes;",
};
static_assert(std::size(kMigrations) == SqliteRecordStore::kLatestSchemaVersion);

constexpr const char* kScanBucketSql =
    "SELECT id, record_hash, version, sealed FROM records WHERE id BETWEEN ?1 AND ?2 "
    "ORDER BY id";
constexpr const char* kReadRecordSql =
    "SELECT id, record_hash, version, sealed FROM records WHERE id = ?1";
constexpr const char* kReadHeadSql = "SELECT epoch, certificate FROM partition_heads WHERE part = ?1";
constexpr const char* kReadNodesSql =
    "SELECT idx, kind, hash FROM partition_nodes WHERE part = ?1 ORDER BY idx";
constexpr const char* kListPartitionsSql = "SELECT part FROM partition_heads ORDER BY part";
constexpr const char* kRecordVersionSql = "SELECT version FROM records WHERE id = ?1";
constexpr const char* kPutRecordSql =
    "INSERT OR REPLACE INTO records (id, version, record_hash, sealed) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kPutNodeSql =
    "INSERT OR REPLACE INTO partition_nodes (part, idx, kind, hash) VALUES (?4, ?1, ?2, ?3)";
constexpr const char* kEraseNodeSql = "DELETE FROM partition_nodes WHERE part = ?2 AND idx = ?1";
constexpr const char* kPutHeadSql =
    "INSERT OR REPLACE INTO partition_heads (part, epoch, certificate) VALUES (?3, ?1, ?2)";

// BlobColumn views column `col` of the current row as bytes.
ByteView BlobColumn(sqlite3_stmt* stmt, int col) {
  const void* data = sqlite3_column_blob(stmt, col);
  int size = sqlite3_column_bytes(stmt, col);
  if (data == nullptr || size <= 0) return {};
  return ByteView(static_cast<const uint8_t*>(data), static_cast<size_t>(size));
}

// CopyFixed copies a column that must be exactly N bytes; DATA_LOSS otherwise.
template <size_t N>
Status CopyFixed(sqlite3_stmt* stmt, int col, std::array<uint8_t, N>& out, std::string_view what) {
  ByteView v = BlobColumn(stmt, col);
  if (v.size() != N) return DataLossError(std::string("malformed ") + std::string(what));
  std::copy(v.begin(), v.end(), out.begin());
  return OkStatus();
}

// ReadRecordRow decodes (id, record_hash, version, sealed) from the current row.
Status ReadRecordRow(sqlite3_stmt* stmt, StoredRecord& out) {
  RETURN_IF_ERROR(CopyFixed(stmt, 0, out.id, "record id"));
  RETURN_IF_ERROR(CopyFixed(stmt, 1, out.record_hash, "record hash"));
  sqlite3_int64 version = sqlite3_column_int64(stmt, 2);
  if (version <= 0) return DataLossError("malformed record version");
  out.version = static_cast<uint64_t>(version);
  ByteView sealed = BlobColumn(stmt, 3);
  out.sealed.assign(sealed.begin(), sealed.end());
  return OkStatus();
}

}  // namespace

// Connection owns one sqlite3 handle and its cached prepared statements. Not thread-safe:
// the store hands each connection to one thread at a time.
class SqliteRecordStore::Connection {
 public:
  // Statement is a prepared statement in use; it resets and clears its bindings when done.
  class Statement {
   public:
    explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~Statement() {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    sqlite3_stmt* get() const { return stmt_; }

   private:
    sqlite3_stmt* stmt_;
  };

  static StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool create) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<Connection>(new Connection(db));
    if (rc != SQLITE_OK) return SqliteError(rc, db, "opening " + path);
    sqlite3_extended_result_codes(db, 1);
    RETURN_IF_ERROR(conn->Exec("PRAGMA busy_timeout = 10000"));
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  sqlite3* db() const { return db_; }

  // Exec runs SQL without results (possibly several statements).
  Status Exec(const char* sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    if (error != nullptr) sqlite3_free(error);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
    return OkStatus();
  }

  // QueryText runs a single-row, single-column query and returns the text.
  StatusOr<std::string> QueryText(const char* sql) {
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(sql));
    Statement stmt(raw);
    int rc = sqlite3_step(raw);
    if (rc != SQLITE_ROW) return SqliteError(rc, db_, sql);
    const unsigned char* text = sqlite3_column_text(raw, 0);
    return std::string(text == nullptr ? "" : reinterpret_cast<const char*>(text));
  }

  // Prepare returns the cached statement for `sql` (compiling it on first use).
  StatusOr<sqlite3_stmt*> Prepare(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
    statements_.emplace(sql, stmt);
    return stmt;
  }

  // Step runs a statement that returns no rows.
  Status StepDone(sqlite3_stmt* stmt, std::string_view what) {
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return SqliteError(rc, db_, what);
    return OkStatus();
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements_;
};

// ReaderLease borrows an idle read connection and gives it back on destruction.
class SqliteRecordStore::ReaderLease {
 public:
  explicit ReaderLease(SqliteRecordStore* store) : store_(store) {
    std::unique_lock lock(store_->readers_mu_);
    store_->readers_cv_.wait(lock, [&] { return !store_->idle_readers_.empty(); });
    conn_ = std::move(store_->idle_readers_.back());
    store_->idle_readers_.pop_back();
  }
  ~ReaderLease() {
    {
      std::lock_guard lock(store_->readers_mu_);
      store_->idle_readers_.push_back(std::move(conn_));
    }
    store_->readers_cv_.notify_one();
  }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;
  Connection* operator->() const { return conn_.get(); }

 private:
  SqliteRecordStore* store_;
  std::unique_ptr<Connection> conn_;
};

namespace {

// Bind helpers; a failed bind is a programming error reported as INTERNAL.
Status BindBlob(sqlite3_stmt* stmt, int index, ByteView data) {
  int rc = sqlite3_bind_blob(stmt, index, data.empty() ? "" : static_cast<const void*>(data.data()),
                             static_cast<int>(data.size()), SQLITE_STATIC);
  if (rc != SQLITE_OK) return SqliteError(rc, nullptr, "bind");
  return OkStatus();
}

Status BindInt64(sqlite3_stmt* stmt, int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt, index, value);
  if (rc != SQLITE_OK) return SqliteError(rc, nullptr, "bind");
  return OkStatus();
}

// ToSqliteInt checks that an unsigned counter fits SQLite's signed 64-bit integers.
StatusOr<int64_t> ToSqliteInt(uint64_t value, std::string_view what) {
  if (value > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidArgumentError(std::string(what) + " out of range");
  }
  return static_cast<int64_t>(value);
}

}  // namespace

SqliteRecordStore::SqliteRecordStore(std::string path, int schema_version)
    : path_(std::move(path)), schema_version_(schema_version) {}

SqliteRecordStore::~SqliteRecordStore() = default;

StatusOr<std::unique_ptr<SqliteRecordStore>> SqliteRecordStore::Open(const std::string& data_dir,
                                                                     Options options) {
  std::string path = data_dir;
  if (!path.empty() && path.back() != '/') path += '/';
  path += kDatabaseFileName;
  return OpenFile(path, options);
}

StatusOr<std::unique_ptr<SqliteRecordStore>> SqliteRecordStore::OpenFile(const std::string& path,
                                                                         Options options) {
  if (options.read_connections < 1) return InvalidArgumentError("read_connections must be >= 1");
  if (options.schema_version < 1 || options.schema_version > kLatestSchemaVersion) {
    return InvalidArgumentError("schema_version out of range");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, Connection::Open(path, /*create=*/true));

  // journal_mode=WAL is persistent in the file; synchronous is per connection.
  ASSIGN_OR_RETURN(std::string mode, writer->QueryText("PRAGMA journal_mode = WAL"));
  if (mode != "wal")
    return UnavailableError("cannot enable WAL on " + path + " (got " + mode + ")");
  RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = FULL"));

  ASSIGN_OR_RETURN(std::string version_text, writer->QueryText("PRAGMA user_version"));
  int version = std::atoi(version_text.c_str());
  if (version > kLatestSchemaVersion) {
    return FailedPreconditionError("record store " + path + " has schema version " +
                                   std::to_string(version) + ", newer than this build's " +
                                   std::to_string(kLatestSchemaVersion));
  }
  for (int next = version + 1; next <= options.schema_version; ++next) {
    RETURN_IF_ERROR(writer->Exec("BEGIN IMMEDIATE"));
    Status applied = writer->Exec(kMigrations[next - 1]);
    if (applied.ok()) {
      std::string pragma = "PRAGMA user_version = " + std::to_string(next);
      applied = writer->Exec(pragma.c_str());
    }
    if (applied.ok()) applied = writer->Exec("COMMIT");
    if (!applied.ok()) {
      writer->Exec("ROLLBACK").IgnoreError();
      return applied.WithContext("migrating " + path + " to schema " + std::to_string(next));
    }
    version = next;
  }

  auto store = std::unique_ptr<SqliteRecordStore>(new SqliteRecordStore(path, version));
  store->writer_ = std::move(writer);
  for (int i = 0; i < options.read_connections; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader, Connection::Open(path, /*create=*/false));
    RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = 1"));
    store->idle_readers_.push_back(std::move(reader));
  }
  return store;
}

StatusOr<int> SqliteRecordStore::ReadSchemaVersion(const std::string& data_dir) {
  std::string path = data_dir;
  if (!path.empty() && path.back() != '/') path += '/';
  path += kDatabaseFileName;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) return UnavailableError("cannot look for " + path + ": " + ec.message());
    return NotFoundError("no record store at " + path);
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  struct Closer {
    sqlite3* db;
    ~Closer() { sqlite3_close_v2(db); }
  } closer{raw};
  if (rc != SQLITE_OK) return SqliteError(rc, raw, "opening " + path + " read-only");
  sqlite3_stmt* stmt = nullptr;
  rc = sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, raw, "reading the schema version of " + path);
  rc = sqlite3_step(stmt);
  int version = rc == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return SqliteError(rc, raw, "reading the schema version of " + path);
  if (version < 0) return DataLossError("record store " + path + " has a negative schema version");
  return version;
}

StatusOr<std::vector<uint32_t>> SqliteRecordStore::Partitions() {
  ReaderLease conn(this);
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn->Prepare(kListPartitionsSql));
  Connection::Statement stmt(raw);
  std::vector<uint32_t> partitions;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    sqlite3_int64 part = sqlite3_column_int64(raw, 0);
    if (part < 0 || part > UINT32_MAX) return DataLossError("malformed partition number");
    partitions.push_back(static_cast<uint32_t>(part));
  }
  if (rc != SQLITE_DONE) return SqliteError(rc, conn->db(), "listing partitions");
  return partitions;
}

StatusOr<TreeSnapshot> SqliteRecordStore::ReadTree(uint32_t partition) {
  ReaderLease conn(this);
  RETURN_IF_ERROR(conn->Exec("BEGIN"));
  auto read = [&]() -> StatusOr<TreeSnapshot> {
    TreeSnapshot snapshot;
    {
      ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn->Prepare(kReadHeadSql));
      Connection::Statement stmt(raw);
      RETURN_IF_ERROR(BindInt64(raw, 1, partition));
      int rc = sqlite3_step(raw);
      if (rc == SQLITE_ROW) {
        sqlite3_int64 epoch = sqlite3_column_int64(raw, 0);
        if (epoch < 0) return DataLossError("malformed head epoch");
        ByteView cert = BlobColumn(raw, 1);
        snapshot.head = StoreHead{static_cast<uint64_t>(epoch), Bytes(cert.begin(), cert.end())};
      } else if (rc != SQLITE_DONE) {
        return SqliteError(rc, conn->db(), "reading head");
      }
    }
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn->Prepare(kReadNodesSql));
    Connection::Statement stmt(raw);
    RETURN_IF_ERROR(BindInt64(raw, 1, partition));
    int rc;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      TreeNode node;
      sqlite3_int64 index = sqlite3_column_int64(raw, 0);
      sqlite3_int64 kind = sqlite3_column_int64(raw, 1);
      if (index < 0 || index > UINT32_MAX || kind < 0 || kind > 255) {
        return DataLossError("malformed tree node");
      }
      node.index = static_cast<uint32_t>(index);
      node.kind = static_cast<uint8_t>(kind);
      RETURN_IF_ERROR(CopyFixed(raw, 2, node.hash, "tree node hash"));
      snapshot.nodes.push_back(node);
    }
    if (rc != SQLITE_DONE) return SqliteError(rc, conn->db(), "reading tree nodes");
    return snapshot;
  };
  StatusOr<TreeSnapshot> result = read();
  conn->Exec("COMMIT").IgnoreError();
  return result;
}

StatusOr<BucketScan> SqliteRecordStore::ScanBucket(const RecordId& lo, const RecordId& hi,
                                                   const RecordId& target) {
  ReaderLease conn(this);
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn->Prepare(kScanBucketSql));
  Connection::Statement stmt(raw);
  RETURN_IF_ERROR(BindBlob(raw, 1, lo));
  RETURN_IF_ERROR(BindBlob(raw, 2, hi));
  BucketScan scan;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    BucketEntry entry;
    RETURN_IF_ERROR(CopyFixed(raw, 0, entry.id, "record id"));
    RETURN_IF_ERROR(CopyFixed(raw, 1, entry.record_hash, "record hash"));
    if (entry.id == target) {
      StoredRecord record;
      RETURN_IF_ERROR(ReadRecordRow(raw, record));
      scan.target = std::move(record);
    }
    scan.entries.push_back(entry);
  }
  if (rc != SQLITE_DONE) return SqliteError(rc, conn->db(), "scanning bucket");
  return scan;
}

StatusOr<std::optional<StoredRecord>> SqliteRecordStore::ReadRecord(const RecordId& id) {
  ReaderLease conn(this);
  ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn->Prepare(kReadRecordSql));
  Connection::Statement stmt(raw);
  RETURN_IF_ERROR(BindBlob(raw, 1, id));
  int rc = sqlite3_step(raw);
  if (rc == SQLITE_DONE) return std::optional<StoredRecord>();
  if (rc != SQLITE_ROW) return SqliteError(rc, conn->db(), "reading record");
  StoredRecord record;
  RETURN_IF_ERROR(ReadRecordRow(raw, record));
  return std::optional<StoredRecord>(std::move(record));
}

Status SqliteRecordStore::Commit(const CommitBatch& batch) {
  // Validate before touching the database.
  if (batch.fence) {
    return InvalidArgumentError("the SQLite store serves one node and has no leases to fence on");
  }
  {
    std::set<RecordId> ids;
    for (const auto& put : batch.records) {
      if (!ids.insert(put.record.id).second) {
        return InvalidArgumentError("commit batch writes one record id twice");
      }
      if (put.record.version == 0) return InvalidArgumentError("record version must be >= 1");
    }
  }
  ASSIGN_OR_RETURN(int64_t new_epoch, ToSqliteInt(batch.head.epoch, "epoch"));

  std::lock_guard lock(write_mu_);
  Connection& conn = *writer_;
  RETURN_IF_ERROR(conn.Exec("BEGIN IMMEDIATE"));
  auto apply = [&]() -> Status {
    {  // Compare-and-swap on the head epoch.
      ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kReadHeadSql));
      Connection::Statement stmt(raw);
      RETURN_IF_ERROR(BindInt64(raw, 1, batch.partition));
      int rc = sqlite3_step(raw);
      std::optional<uint64_t> current;
      if (rc == SQLITE_ROW) {
        current = static_cast<uint64_t>(sqlite3_column_int64(raw, 0));
      } else if (rc != SQLITE_DONE) {
        return SqliteError(rc, conn.db(), "reading head");
      }
      if (current != batch.expected_epoch) {
        return AbortedError(
            "store epoch is " + (current ? std::to_string(*current) : std::string("none")) +
            ", commit expected " +
            (batch.expected_epoch ? std::to_string(*batch.expected_epoch) : std::string("none")));
      }
    }
    for (const auto& put : batch.records) {
      {  // Compare-and-swap on the row version.
        ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kRecordVersionSql));
        Connection::Statement stmt(raw);
        RETURN_IF_ERROR(BindBlob(raw, 1, put.record.id));
        int rc = sqlite3_step(raw);
        uint64_t current = 0;
        if (rc == SQLITE_ROW) {
          current = static_cast<uint64_t>(sqlite3_column_int64(raw, 0));
        } else if (rc != SQLITE_DONE) {
          return SqliteError(rc, conn.db(), "reading record version");
        }
        if (current != put.expected_version) {
          return AbortedError("record version is " + std::to_string(current) +
                              ", commit expected " + std::to_string(put.expected_version));
        }
      }
      ASSIGN_OR_RETURN(int64_t version, ToSqliteInt(put.record.version, "record version"));
      ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kPutRecordSql));
      Connection::Statement stmt(raw);
      RETURN_IF_ERROR(BindBlob(raw, 1, put.record.id));
      RETURN_IF_ERROR(BindInt64(raw, 2, version));
      RETURN_IF_ERROR(BindBlob(raw, 3, put.record.record_hash));
      RETURN_IF_ERROR(BindBlob(raw, 4, put.record.sealed));
      RETURN_IF_ERROR(conn.StepDone(raw, "writing record"));
    }
    for (const auto& node : batch.nodes) {
      ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kPutNodeSql));
      Connection::Statement stmt(raw);
      RETURN_IF_ERROR(BindInt64(raw, 1, node.index));
      RETURN_IF_ERROR(BindInt64(raw, 2, node.kind));
      RETURN_IF_ERROR(BindBlob(raw, 3, node.hash));
      RETURN_IF_ERROR(BindInt64(raw, 4, batch.partition));
      RETURN_IF_ERROR(conn.StepDone(raw, "writing tree node"));
    }
    for (uint32_t index : batch.erased_nodes) {
      ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kEraseNodeSql));
      Connection::Statement stmt(raw);
      RETURN_IF_ERROR(BindInt64(raw, 1, index));
      RETURN_IF_ERROR(BindInt64(raw, 2, batch.partition));
      RETURN_IF_ERROR(conn.StepDone(raw, "erasing tree node"));
    }
    ASSIGN_OR_RETURN(sqlite3_stmt * raw, conn.Prepare(kPutHeadSql));
    Connection::Statement stmt(raw);
    RETURN_IF_ERROR(BindInt64(raw, 1, new_epoch));
    RETURN_IF_ERROR(BindBlob(raw, 2, batch.head.certificate));
    RETURN_IF_ERROR(BindInt64(raw, 3, batch.partition));
    return conn.StepDone(raw, "writing head");
  };
  Status status = apply();
  if (!status.ok()) {
    conn.Exec("ROLLBACK").IgnoreError();
    return status;
  }
  status = conn.Exec("COMMIT");
  if (!status.ok()) {
    // The outcome of a failed COMMIT is not known to us: report UNAVAILABLE so that the
    // caller re-reads the head.
    if (!sqlite3_get_autocommit(conn.db())) conn.Exec("ROLLBACK").IgnoreError();
    return UnavailableError(status.message());
  }
  return OkStatus();
}

}  // namespace pinvault::backup
