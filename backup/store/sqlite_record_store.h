// SqliteRecordStore: the embedded RecordStore (vault/record_store.h) on one SQLite file in
// the realm's data directory.
//
// - WAL journal with synchronous=FULL: a Commit that returned OK survives power loss.
// - Every Commit is one IMMEDIATE transaction; compare-and-swap checks (head epoch, row
//   versions) run inside it, so a failed check rolls the whole batch back.
// - Readers use a small pool of their own connections (WAL lets them run alongside the
//   writer); each ScanBucket is one statement, hence one consistent snapshot.
// - Prepared statements are compiled once per connection and reused.
// - Schema versioned with PRAGMA user_version; Open applies every missing migration, each in
//   its own transaction, and refuses a file whose version is newer than this code.
//
// Schema history (kLatestSchemaVersion = 3):
//   1: records (clustered by id) and head (epoch + certificate)
//   2: tree_nodes (the persisted Merkle frontier)
//   3: partition_heads and partition_nodes replace head and tree_nodes (one head and frontier
//      per partition, vault/partition.h); the single-tree layout's become partition 0's, so
//      an older realm opens as a realm of one partition, as it was created.
//
// Thread-safety: all methods are safe for concurrent use.
#ifndef PINVAULT_BACKUP_STORE_SQLITE_RECORD_STORE_H_
#define PINVAULT_BACKUP_STORE_SQLITE_RECORD_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vault/record_store.h"
#include "vault/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace pinvault::backup {

class SqliteRecordStore final : public vault::RecordStore {
 public:
  // kDatabaseFileName is the file Open creates in the data directory (plus SQLite's -wal and
  // -shm files next to it).
  static constexpr const char* kDatabaseFileName = "records.sqlite";
  static constexpr int kLatestSchemaVersion = 3;

  struct Options {
    // read_connections: size of the reader pool (at least 1).
    int read_connections = 4;
    // schema_version: migrate only up to this version. Tests use it to build old files;
    // anything but kLatestSchemaVersion leaves the store unusable for the core.
    int schema_version = kLatestSchemaVersion;
  };

  // Open opens (creating if needed) `data_dir`/records.sqlite; `data_dir` must exist.
  // UNAVAILABLE if the file cannot be opened, FAILED_PRECONDITION if its schema is newer
  // than kLatestSchemaVersion, DATA_LOSS if it is not a database.
  static StatusOr<std::unique_ptr<SqliteRecordStore>> Open(const std::string& data_dir,
                                                           Options options);
  static StatusOr<std::unique_ptr<SqliteRecordStore>> Open(const std::string& data_dir) {
    return Open(data_dir, Options());
  }

  // OpenFile is Open with the database file path given directly.
  static StatusOr<std::unique_ptr<SqliteRecordStore>> OpenFile(const std::string& path,
                                                               Options options);

  // ReadSchemaVersion opens `data_dir`/records.sqlite read-only and returns its PRAGMA
  // user_version without migrating or creating anything. NOT_FOUND if the file does not
  // exist, DATA_LOSS if it is not a database, UNAVAILABLE if it cannot be opened.
  static StatusOr<int> ReadSchemaVersion(const std::string& data_dir);

  ~SqliteRecordStore() override;
  SqliteRecordStore(const SqliteRecordStore&) = delete;
  SqliteRecordStore& operator=(const SqliteRecordStore&) = delete;

  // SchemaVersion returns the file's PRAGMA user_version after migration.
  int SchemaVersion() const { return schema_version_; }

  // path returns the database file path.
  const std::string& path() const { return path_; }

  // Partitions returns, ascending, the partitions that have a head (those committed to at
  // least once). For operators' tools; the core does not use it. Needs the latest schema.
  StatusOr<std::vector<uint32_t>> Partitions();

  StatusOr<vault::TreeSnapshot> ReadTree(uint32_t partition) override;
  StatusOr<vault::BucketScan> ScanBucket(const vault::RecordId& lo, const vault::RecordId& hi,
                                         const vault::RecordId& target) override;
  StatusOr<std::optional<vault::StoredRecord>> ReadRecord(const vault::RecordId& id) override;
  Status Commit(const vault::CommitBatch& batch) override;

 private:
  class Connection;
  class ReaderLease;

  SqliteRecordStore(std::string path, int schema_version);

  std::string path_;
  int schema_version_ = 0;

  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;  // guarded by readers_mu_
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_STORE_SQLITE_RECORD_STORE_H_
