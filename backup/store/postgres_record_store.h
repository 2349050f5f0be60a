// PostgresRecordStore: the RecordStore (vault/record_store.h) on PostgreSQL, the first step
// towards a realm of several nodes (DESIGN.md section 8). Built on libpqxx 6.4 / libpq.
//
// - Connection: `Options::uri` is a libpq URI or key=value conninfo, possibly multi-host with
//   target_session_attrs=read-write. TLS is chosen there too (sslmode=disable / require /
//   verify-full, sslrootcert=...); libpq does the rest. The password never appears in the
//   URI or on a command line: it is read from `password_file` (first line) and handed to
//   libpq as a separate connection parameter. Error messages name the target without it.
// - Pool: up to `pool_size` connections, opened on demand and shared by readers and the
//   committer. A pooled connection is checked before use (a closed socket is noticed without
//   a round trip); a connection that broke is dropped and a new one is opened on next use, so
//   the store recovers by itself once the server is back. libpqxx's own silent reconnect is
//   disabled: a new session must not lose its settings half-way through a transaction.
//   Every session runs with synchronous_commit=on and idle_in_transaction_session_timeout=10s
//   (a paused process cannot hold row locks for long).
// - Commit is one READ COMMITTED transaction whose first statement is the fence of section 8:
//   a conditional UPDATE (or INSERT ... ON CONFLICT DO NOTHING for the first commit) of the
//   batch's partition's head row on the expected epoch. Zero rows means the CAS failed: ABORTED,
//   rolled back. The head row lock then serialises the committers of a partition, and each
//   record CAS is a conditional UPDATE/INSERT on its row in id order (one lock order for every
//   committer, so committers of different partitions cannot deadlock). READ COMMITTED is
//   enough because every check is a row-level compare-and-set that PostgreSQL re-evaluates on
//   the newest row version after waiting for the lock; SERIALIZABLE would add predicate locks
//   and spurious serialization failures against the readers' range scans and buy nothing.
//   A deadlock or serialization failure (only possible with other clients on the tables) is
//   retried up to 3 times, then reported as UNAVAILABLE (nothing applied; retry later).
//   A connection lost before COMMIT is UNAVAILABLE (the server rolls the transaction back).
//   A connection lost during COMMIT (libpqxx's in_doubt_error) is UNAVAILABLE with a message
//   saying that the outcome is unknown: the caller re-reads the head.
// - Reads: ReadTree is one REPEATABLE READ READ ONLY transaction; ScanBucket and ReadRecord are
//   one statement each (a single snapshot). Ids compare as bytea, i.e. bytewise unsigned, the
//   order of vault::RecordId. Every value read is checked (lengths of ids and hashes, ranges
//   of integers): anything malformed is DATA_LOSS.
// - Schema: versioned in table pinvault_schema. Migrate() creates or upgrades it (each run is
//   one transaction, serialised by an advisory lock, and idempotent); Open never migrates and
//   refuses a database whose schema is older (run `pinvault-admin store migrate`) or newer
//   than this build, with FAILED_PRECONDITION.
//   Tables: records(id, version, record_hash, sealed), keyed by id alone;
//   partition_heads(partition, epoch, certificate) and tree_nodes(partition, idx, kind, hash),
//   keyed by partition (vault/partition.h), so partitions commit independently. A store
//   serves every partition; several nodes may each commit some of them to one database.
//
// Leases (DESIGN.md section 8): one row per partition (owner, term, expiry in database time).
// AcquireLease takes a partition whose lease expired (term + 1) or renews one's own live
// lease (same term); a commit made under CommitBatch::fence first updates the lease row where
// owner and term still match, so a node that lost the partition commits nothing (ABORTED);
// clocks decide only when a lease may be taken, never whether a commit is safe.
//
// Schema history (kLatestSchemaVersion = 3):
//   1: pinvault_schema, records, partition_heads
//   2: tree_nodes (the persisted Merkle frontier, keyed by partition)
//   3: partition_leases
//
// Errors: UNAVAILABLE when the server cannot be reached, refuses the login or the TLS mode,
// is read-only, or the connection breaks; ABORTED when a compare-and-swap fails; DATA_LOSS
// for malformed rows; FAILED_PRECONDITION for a schema of another version and for a password
// file that others can read; INVALID_ARGUMENT for bad options.
//
// Thread-safety: all methods are safe for concurrent use, Commit included (the committers of
// different partitions run at once; each waits for a pooled connection).
#ifndef PINVAULT_BACKUP_STORE_POSTGRES_RECORD_STORE_H_
#define PINVAULT_BACKUP_STORE_POSTGRES_RECORD_STORE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::backup {

class PostgresRecordStore final : public vault::RecordStore {
 public:
  static constexpr int kLatestSchemaVersion = 3;
  // kCommitAttempts: how often Commit runs a batch that hit a deadlock or serialization
  // failure before it answers UNAVAILABLE.
  static constexpr int kCommitAttempts = 3;

  struct Options {
    // uri: libpq connection URI or key=value string (must not hold a password).
    std::string uri;
    // password_file: if not empty, the password is the first line of this file (trailing
    // newline stripped). The file must not be accessible to group or others.
    std::string password_file;
    // pool_size: most connections open at a time (at least 1).
    int pool_size = 4;
    // schema_version: the version Migrate brings the database to (tests build old schemas
    // with it). Open ignores it and requires kLatestSchemaVersion.
    int schema_version = kLatestSchemaVersion;
  };

  // Open connects (one connection, kept in the pool) and checks the schema version.
  // INVALID_ARGUMENT for bad options, FAILED_PRECONDITION for a schema that is missing, older
  // or newer than kLatestSchemaVersion or an unsafe password file, UNAVAILABLE if the server
  // cannot be reached or refuses the login.
  static StatusOr<std::unique_ptr<PostgresRecordStore>> Open(const Options& options);

  // Migrate creates the schema in an empty database, or upgrades it, to
  // `options.schema_version`, in one transaction; a database already at or above that
  // version is left alone. FAILED_PRECONDITION if the database is newer than this build.
  // Safe to run concurrently with other Migrate calls and with running stores.
  static Status Migrate(const Options& options);

  // ReadSchemaVersion connects (one connection, closed again) and returns the database's
  // schema version without changing anything: 0 for a database without pinvault's schema.
  // Errors as Migrate's (INVALID_ARGUMENT, FAILED_PRECONDITION for an unsafe password file,
  // UNAVAILABLE); DATA_LOSS for a malformed schema table.
  static StatusOr<int> ReadSchemaVersion(const Options& options);

  // DescribeTarget returns the connection target of `uri` as target() would name it (host,
  // port, dbname, user; never a password), without connecting. INVALID_ARGUMENT if `uri`
  // cannot be parsed (the message does not quote it).
  static StatusOr<std::string> DescribeTarget(const std::string& uri);

  ~PostgresRecordStore() override;
  PostgresRecordStore(const PostgresRecordStore&) = delete;
  PostgresRecordStore& operator=(const PostgresRecordStore&) = delete;

  // target returns the connection target as it may be logged (host, port, dbname, user; never
  // the password).
  const std::string& target() const;

  // Partitions returns, ascending, the partitions that have a head row (those committed to
  // at least once), in one read-only statement. For operators' tools; the core does not use
  // it. Errors as ReadTree's.
  StatusOr<std::vector<uint32_t>> Partitions();

  // PartitionLease is a partition's lease as a node holds it or the database shows it.
  struct PartitionLease {
    uint32_t partition = 0;
    std::string owner;
    uint64_t term = 0;
    bool live = false;  // AcquireLease: it was already held by this owner (a renewal);
                        // ReadLeases: it has not expired
    vault::LeaseFence fence() const { return vault::LeaseFence{owner, term}; }
  };

  // AcquireLease gives `owner` the lease of `partition` for `ttl` (database time): a renewal
  // at the same term if `owner` holds it live, else at term + 1 if it expired (or was never
  // taken). ABORTED naming the holder if another owner holds it live.
  StatusOr<PartitionLease> AcquireLease(uint32_t partition, const std::string& owner,
                                        std::chrono::milliseconds ttl);
  // RenewLease extends `lease` by `ttl`; ABORTED if it is no longer held at its term.
  Status RenewLease(const PartitionLease& lease, std::chrono::milliseconds ttl);
  // ReleaseLease lets the lease expire now (others may take it at once); ABORTED as RenewLease.
  Status ReleaseLease(const PartitionLease& lease);
  // ReadLeases lists every partition's lease row.
  StatusOr<std::vector<PartitionLease>> ReadLeases();

  // ReadTree and Commit address partitions 0..2^31-1 (INVALID_ARGUMENT beyond).
  StatusOr<vault::TreeSnapshot> ReadTree(uint32_t partition) override;
  StatusOr<vault::BucketScan> ScanBucket(const vault::RecordId& lo, const vault::RecordId& hi,
                                         const vault::RecordId& target) override;
  StatusOr<std::optional<vault::StoredRecord>> ReadRecord(const vault::RecordId& id) override;
  Status Commit(const vault::CommitBatch& batch) override;

 private:
  class Connection;
  class Lease;
  struct ConnectParams;

  PostgresRecordStore(std::unique_ptr<ConnectParams> params, int pool_size);

  // MakeConnectParams checks the options Open and Migrate share and reads the password file.
  static StatusOr<std::unique_ptr<ConnectParams>> MakeConnectParams(const Options& options);

  // Acquire returns a connection of the pool (opening one if fewer than pool_size are open),
  // waiting while all are in use; UNAVAILABLE if a new one cannot be opened.
  StatusOr<std::unique_ptr<Connection>> Acquire();
  // Release returns `conn` to the pool, or drops it if it broke.
  void Release(std::unique_ptr<Connection> conn);

  // RunRead runs `read` (a function of Connection& returning StatusOr<T>, which may throw
  // libpqxx exceptions) on a pooled connection and maps exceptions to a Status. A read that
  // failed because a reused connection had gone stale is run once more on a new connection.
  template <typename T, typename Fn>
  StatusOr<T> RunRead(const char* what, Fn&& read);
  // RunWrite runs `write` once on a pooled connection (no retry: a write may have landed).
  template <typename T, typename Fn>
  StatusOr<T> RunWrite(const char* what, Fn&& write);

  // CommitOnce runs one attempt of Commit; `retry` is set when the attempt failed with a
  // deadlock or serialization failure and nothing was applied.
  Status CommitOnce(const vault::CommitBatch& batch, const std::vector<size_t>& order, bool& retry);

  const std::unique_ptr<ConnectParams> params_;
  const int pool_size_;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by pool_mu_
  int open_ = 0;  // connections idle or leased; guarded by pool_mu_
};

}  // namespace pinvault::backup

#endif  // PINVAULT_BACKUP_STORE_POSTGRES_RECORD_STORE_H_
