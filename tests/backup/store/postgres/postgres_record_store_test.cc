// PostgresRecordStore on a throwaway PostgreSQL 15 cluster (tests/testing/postgres_server.h):
// the RecordStore contract suite, then what is PostgreSQL's own: the schema version gate,
// passwords and TLS modes, the server going away and coming back, the connection breaking
// before and during COMMIT, rows corrupted with SQL, partitions, concurrent committers.
#include "backup/store/postgres_record_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/postgres_server.h"
#include "tests/testing/record_store_contract.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_util.h"

namespace pinvault::testing {
namespace {

// ---- The contract suite ----

// PostgresStoreFactory opens stores on a fresh, migrated database of the shared cluster,
// through a PostgresFaultProxy: ArmUnknownOutcome is a real connection loss during COMMIT,
// so the store sees libpqxx's in_doubt_error exactly as in production. The proxy either drops
// the COMMIT (the server rolls back) or forwards it and drops the server's reply (committed).
// Only Commit sends COMMIT (the store ends its read-only snapshots with ROLLBACK), so the cut
// hits the commit under test.
class PostgresStoreFactory final : public RecordStoreFactory {
 public:
  StatusOr<std::unique_ptr<vault::RecordStore>> Open() override {
    if (proxy_ == nullptr) {
      ASSIGN_OR_RETURN(PostgresServer * server, SharedPostgresServer());
      dbname_ = FreshDatabaseName();
      RETURN_IF_ERROR(server->CreateDatabase(dbname_));
      backup::PostgresRecordStore::Options direct;
      direct.uri = server->Uri(dbname_);
      RETURN_IF_ERROR(backup::PostgresRecordStore::Migrate(direct));
      ASSIGN_OR_RETURN(proxy_, PostgresFaultProxy::Start(*server));
    }
    backup::PostgresRecordStore::Options options;
    options.uri = proxy_->Uri(dbname_);
    ASSIGN_OR_RETURN(std::unique_ptr<backup::PostgresRecordStore> store,
                     backup::PostgresRecordStore::Open(options));
    return std::unique_ptr<vault::RecordStore>(std::move(store));
  }

  bool CanReopen() const override { return true; }

  bool ArmUnknownOutcome(vault::RecordStore& /*store*/, CommitLands lands) override {
    proxy_->Arm(lands == CommitLands::kYes ? PostgresFaultProxy::Cut::kCommitReplyDropped
                                           : PostgresFaultProxy::Cut::kCommitNotForwarded);
    return true;
  }

 private:
  std::string dbname_;
  std::unique_ptr<PostgresFaultProxy> proxy_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, RecordStoreContractTest,
                         ::testing::Values(RecordStoreImplementation{
                             "Postgres", [] { return std::make_unique<PostgresStoreFactory>(); }}),
                         RecordStoreImplementationName);

}  // namespace
}  // namespace pinvault::testing

namespace pinvault::backup {
namespace {

using ::pinvault::testing::FreshDatabaseName;
using ::pinvault::testing::IdWithPrefix;
using ::pinvault::testing::IsOk;
using ::pinvault::testing::IsOkAndHolds;
using ::pinvault::testing::PostgresFaultProxy;
using ::pinvault::testing::PostgresServer;
using ::pinvault::testing::ScopedTempDir;
using ::pinvault::testing::SharedPostgresServer;
using ::pinvault::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using vault::CommitBatch;
using vault::Digest;
using vault::RecordId;
using vault::RecordPut;
using vault::StoredRecord;
using vault::StoreHead;
using vault::TreeNode;
using vault::TreeSnapshot;

// ---- PostgreSQL-specific behaviour ----

Digest Fill(uint8_t value) {
  Digest digest;
  digest.fill(value);
  return digest;
}

StoredRecord Row(const RecordId& id, uint64_t version, uint8_t tag) {
  StoredRecord record;
  record.id = id;
  record.version = version;
  record.record_hash = Fill(tag);
  record.sealed = Bytes(60, tag);
  return record;
}

CommitBatch Batch(std::optional<uint64_t> expected, uint64_t epoch, uint32_t partition = 0) {
  CommitBatch batch;
  batch.partition = partition;
  batch.expected_epoch = expected;
  batch.head = StoreHead{epoch, Bytes{0xce, static_cast<uint8_t>(epoch)}};
  return batch;
}

// WriteFile writes `text` to `path` with permissions `mode`.
void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream file(path, std::ios::trunc);
    file << text;
    ASSERT_TRUE(file.good()) << path;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// PostgresRecordStoreTest gives each test a fresh database on the shared cluster.
class PostgresRecordStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, SharedPostgresServer());
    dbname_ = FreshDatabaseName();
    ASSERT_OK(server_->CreateDatabase(dbname_));
  }

  PostgresRecordStore::Options Options() const {
    PostgresRecordStore::Options options;
    options.uri = server_->Uri(dbname_);
    return options;
  }

  // OpenMigrated migrates the database and opens a store.
  StatusOr<std::unique_ptr<PostgresRecordStore>> OpenMigrated() {
    RETURN_IF_ERROR(PostgresRecordStore::Migrate(Options()));
    return PostgresRecordStore::Open(Options());
  }

  // Sql runs SQL in the test's database as the superuser and returns psql's output.
  StatusOr<std::string> Sql(const std::string& sql) { return server_->Sql(dbname_, sql); }

  PostgresServer* server_ = nullptr;
  std::string dbname_;
};

TEST_F(PostgresRecordStoreTest, OpenRefusesADatabaseWithoutTheSchema) {
  EXPECT_THAT(PostgresRecordStore::Open(Options()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("pinvault-admin store migrate")));
}

TEST_F(PostgresRecordStoreTest, OpenRefusesAnOlderSchemaAndNamesTheMigrateCommand) {
  PostgresRecordStore::Options old = Options();
  old.schema_version = 1;
  ASSERT_OK(PostgresRecordStore::Migrate(old));
  EXPECT_THAT(Sql("SELECT version FROM pinvault_schema;"), IsOkAndHolds(std::string("1\n")));
  Status refused = PostgresRecordStore::Open(Options()).status();
  EXPECT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("older")));
  EXPECT_THAT(refused.message(), HasSubstr("run `pinvault-admin store migrate`"));
  // Open did not migrate behind the operator's back.
  EXPECT_THAT(Sql("SELECT version FROM pinvault_schema;"), IsOkAndHolds(std::string("1\n")));
  EXPECT_THAT(Sql("SELECT to_regclass('tree_nodes') IS NULL;"), IsOkAndHolds(std::string("t\n")));

  // Migrating brings it to the latest version, and the store opens.
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  EXPECT_THAT(Sql("SELECT version FROM pinvault_schema;"),
              IsOkAndHolds(std::to_string(PostgresRecordStore::kLatestSchemaVersion) + "\n"));
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(Options()));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1)));
}

TEST_F(PostgresRecordStoreTest, OpenAndMigrateRefuseANewerSchema) {
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  ASSERT_OK(Sql("UPDATE pinvault_schema SET version = " +
                std::to_string(PostgresRecordStore::kLatestSchemaVersion + 1) + ";"));
  EXPECT_THAT(PostgresRecordStore::Open(Options()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("newer than this build")));
  EXPECT_THAT(PostgresRecordStore::Migrate(Options()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("newer than this build")));
}

TEST_F(PostgresRecordStoreTest, MigrateIsIdempotentAndKeepsTheData) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  CommitBatch batch = Batch(std::nullopt, 1);
  batch.records = {RecordPut{Row(IdWithPrefix(1, 2, 3), 1, 0xa1), 0}};
  batch.nodes = {TreeNode{7, 1, Fill(0x77)}};
  ASSERT_OK(store->Commit(batch));
  for (int i = 0; i < 3; ++i) ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  // Asking for an older version never downgrades.
  PostgresRecordStore::Options old = Options();
  old.schema_version = 1;
  ASSERT_OK(PostgresRecordStore::Migrate(old));
  EXPECT_THAT(Sql("SELECT version FROM pinvault_schema;"),
              IsOkAndHolds(std::to_string(PostgresRecordStore::kLatestSchemaVersion) + "\n"));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(0));
  EXPECT_EQ(tree.head, batch.head);
  EXPECT_EQ(tree.nodes, batch.nodes);
  EXPECT_THAT(store->ReadRecord(IdWithPrefix(1, 2, 3)),
              IsOkAndHolds(std::optional(Row(IdWithPrefix(1, 2, 3), 1, 0xa1))));
}

TEST_F(PostgresRecordStoreTest, ConcurrentMigrationsAllSucceed) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!PostgresRecordStore::Migrate(Options()).ok()) failures.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_OK(PostgresRecordStore::Open(Options()));
}

TEST_F(PostgresRecordStoreTest, BadOptionsAreInvalidArgument) {
  PostgresRecordStore::Options options = Options();
  options.pool_size = 0;
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kInvalidArgument));
  options = Options();
  options.uri = "";
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kInvalidArgument));
  options.uri = "postgresql://[broken";
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kInvalidArgument));
  options = Options();
  options.schema_version = PostgresRecordStore::kLatestSchemaVersion + 1;
  EXPECT_THAT(PostgresRecordStore::Migrate(options), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(PostgresRecordStoreTest, PasswordInTheUriIsRefusedWithoutRepeatingIt) {
  constexpr const char* kPassword = "uri-secret-41";
  for (const std::string& uri :
       {server_->Uri(dbname_) + " password=" + kPassword,
        "postgresql://postgres:" + std::string(kPassword) + "@localhost/" + dbname_}) {
    PostgresRecordStore::Options options = Options();
    options.uri = uri;
    Status refused = PostgresRecordStore::Open(options).status();
    EXPECT_THAT(refused, StatusIs(StatusCode::kInvalidArgument, HasSubstr("password file")));
    EXPECT_THAT(refused.message(), Not(HasSubstr(kPassword)));
    Status migrate = PostgresRecordStore::Migrate(options);
    EXPECT_THAT(migrate, StatusIs(StatusCode::kInvalidArgument));
    EXPECT_THAT(migrate.message(), Not(HasSubstr(kPassword)));
  }
}

TEST_F(PostgresRecordStoreTest, ScanOrderIsBytewiseUnsigned) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  // Ids that differ in one byte at several positions, with the byte values a signed or
  // collation-aware comparison would misorder.
  std::vector<RecordId> ids;
  for (size_t position : {0, 1, 15, 31}) {
    for (uint8_t value : {0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff}) {
      RecordId id;
      id.fill(0x55);
      id[position] = value;
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
  }
  CommitBatch batch = Batch(std::nullopt, 1);
  for (const RecordId& id : ids) batch.records.push_back(RecordPut{Row(id, 1, id[0]), 0});
  ASSERT_OK(store->Commit(batch));
  std::sort(ids.begin(), ids.end());  // std::array compares bytewise, unsigned
  RecordId lo;
  lo.fill(0x00);
  RecordId hi;
  hi.fill(0xff);
  ASSERT_OK_AND_ASSIGN(vault::BucketScan scan, store->ScanBucket(lo, hi, ids[3]));
  std::vector<RecordId> scanned;
  for (const auto& entry : scan.entries) scanned.push_back(entry.id);
  EXPECT_EQ(scanned, ids);
  EXPECT_EQ(scan.target, std::optional(Row(ids[3], 1, ids[3][0])));
}

TEST_F(PostgresRecordStoreTest, CorruptRowsAreDataLossNeverACrash) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  const RecordId a = IdWithPrefix(0x10, 0x00, 0x0a);
  const RecordId b = IdWithPrefix(0x20, 0x00, 0x0b);
  CommitBatch batch = Batch(std::nullopt, 1);
  batch.records = {RecordPut{Row(a, 1, 0xa1), 0}, RecordPut{Row(b, 1, 0xb1), 0}};
  batch.nodes = {TreeNode{1, 1, Fill(0x11)}};
  ASSERT_OK(store->Commit(batch));
  ASSERT_OK(
      Sql("CREATE TABLE saved_records AS SELECT * FROM records;"
          "CREATE TABLE saved_nodes AS SELECT * FROM tree_nodes;"
          "CREATE TABLE saved_heads AS SELECT * FROM partition_heads;"));
  const std::string a_hex = "'\\x" + HexEncode(a) + "'::bytea";
  const RecordId lo = IdWithPrefix(0x00, 0x00, 0x00);
  const RecordId hi = IdWithPrefix(0xff, 0xff, 0xff);
  auto restore = [&] {
    ASSERT_OK(
        Sql("DELETE FROM records; INSERT INTO records SELECT * FROM saved_records;"
            "DELETE FROM tree_nodes; INSERT INTO tree_nodes SELECT * FROM saved_nodes;"
            "DELETE FROM partition_heads;"
            "INSERT INTO partition_heads SELECT * FROM saved_heads;"));
    ASSERT_OK(store->ReadTree(0));
    ASSERT_OK(store->ScanBucket(lo, hi, a));
  };

  // A record hash one byte short.
  ASSERT_OK(Sql(
      "UPDATE records SET record_hash = substring(record_hash from 2) WHERE id = " + a_hex + ";"));
  EXPECT_THAT(store->ReadRecord(a), StatusIs(StatusCode::kDataLoss, HasSubstr("record hash")));
  EXPECT_THAT(store->ScanBucket(lo, hi, b), StatusIs(StatusCode::kDataLoss));
  ASSERT_NO_FATAL_FAILURE(restore());

  // A record id one byte long, inside the scanned range.
  ASSERT_OK(Sql("INSERT INTO records VALUES ('\\x15'::bytea, 1, '\\x00'::bytea, '\\x00'::bytea);"));
  EXPECT_THAT(store->ScanBucket(lo, hi, a),
              StatusIs(StatusCode::kDataLoss, HasSubstr("record id")));
  ASSERT_NO_FATAL_FAILURE(restore());

  // Versions that are not >= 1, an oversized hash.
  for (const char* update :
       {"version = 0", "version = -5", "record_hash = record_hash || '\\x00'::bytea"}) {
    SCOPED_TRACE(update);
    ASSERT_OK(Sql(std::string("UPDATE records SET ") + update + " WHERE id = " + a_hex + ";"));
    EXPECT_THAT(store->ReadRecord(a), StatusIs(StatusCode::kDataLoss));
    ASSERT_NO_FATAL_FAILURE(restore());
  }

  // Tree nodes and heads out of range.
  for (const char* update :
       {"UPDATE tree_nodes SET hash = '\\x0102'::bytea;", "UPDATE tree_nodes SET idx = -1;",
        "UPDATE tree_nodes SET idx = 4294967296;", "UPDATE tree_nodes SET kind = 256;",
        "UPDATE tree_nodes SET kind = -1;", "UPDATE partition_heads SET epoch = -1;"}) {
    SCOPED_TRACE(update);
    ASSERT_OK(Sql(update));
    EXPECT_THAT(store->ReadTree(0), StatusIs(StatusCode::kDataLoss));
    ASSERT_NO_FATAL_FAILURE(restore());
  }
  // The store is still usable.
  ASSERT_OK(store->Commit(Batch(1, 2)));
}

TEST_F(PostgresRecordStoreTest, PartitionsKeepTheirOwnHeadsAndNodesButShareRecords) {
  // Two stores on one database, as two nodes owning partitions 0 and 7 would be.
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  ASSERT_OK_AND_ASSIGN(auto p0, PostgresRecordStore::Open(Options()));
  ASSERT_OK_AND_ASSIGN(auto p7, PostgresRecordStore::Open(Options()));
  const RecordId a = IdWithPrefix(0x10, 0x00, 0x0a);

  CommitBatch first = Batch(std::nullopt, 1, 0);
  first.records = {RecordPut{Row(a, 1, 0xa1), 0}};
  first.nodes = {TreeNode{1, 1, Fill(0x01)}, TreeNode{2, 1, Fill(0x02)}};
  ASSERT_OK(p0->Commit(first));

  // Partition 7 has no head and no nodes yet; it sees the shared row.
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree7, p7->ReadTree(7));
  EXPECT_EQ(tree7.head, std::nullopt);
  EXPECT_THAT(tree7.nodes, ::testing::IsEmpty());
  EXPECT_THAT(p7->ReadRecord(a), IsOkAndHolds(std::optional(Row(a, 1, 0xa1))));

  // Its own head starts from nothing, at any epoch; the same node index is its own.
  CommitBatch other = Batch(std::nullopt, 40, 7);
  other.nodes = {TreeNode{1, 2, Fill(0x71)}};
  ASSERT_OK(p7->Commit(other));
  // Records are shared: creating `a` again is a failed compare-and-swap ...
  CommitBatch again = Batch(40, 41, 7);
  again.records = {RecordPut{Row(a, 1, 0xa7), 0}};
  EXPECT_THAT(p7->Commit(again), StatusIs(StatusCode::kAborted));
  // ... and updating it from its current version works from either partition.
  again.records = {RecordPut{Row(a, 2, 0xa2), 1}};
  ASSERT_OK(p7->Commit(again));
  EXPECT_THAT(p0->ReadRecord(a), IsOkAndHolds(std::optional(Row(a, 2, 0xa2))));

  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree0, p0->ReadTree(0));
  EXPECT_EQ(tree0.head, first.head);
  EXPECT_EQ(tree0.nodes, first.nodes);
  ASSERT_OK_AND_ASSIGN(tree7, p0->ReadTree(7));  // any store reads any partition
  EXPECT_EQ(tree7.head, again.head);
  EXPECT_EQ(tree7.nodes, other.nodes);
  // A partition's epoch is its own: partition 0 is at 1, not 41.
  EXPECT_THAT(p0->Commit(Batch(41, 42, 0)), StatusIs(StatusCode::kAborted));
  // Erasing a node in one partition leaves the other's alone.
  CommitBatch erase = Batch(1, 2, 0);
  erase.erased_nodes = {1};
  ASSERT_OK(p0->Commit(erase));
  ASSERT_OK_AND_ASSIGN(tree7, p7->ReadTree(7));
  EXPECT_EQ(tree7.nodes, other.nodes);
  ASSERT_OK_AND_ASSIGN(tree0, p7->ReadTree(0));
  EXPECT_EQ(tree0.nodes, (std::vector<TreeNode>{first.nodes[1]}));
  EXPECT_THAT(Sql("SELECT partition, epoch FROM partition_heads ORDER BY partition;"),
              IsOkAndHolds(std::string("0|2\n7|41\n")));
}

TEST_F(PostgresRecordStoreTest, SchemaVersionAndPartitionsAreReadWithoutChangingAnything) {
  // A database without the schema is version 0, and reading it creates nothing.
  EXPECT_THAT(PostgresRecordStore::ReadSchemaVersion(Options()), IsOkAndHolds(0));
  EXPECT_THAT(Sql("SELECT to_regclass('pinvault_schema') IS NULL;"),
              IsOkAndHolds(std::string("t\n")));
  PostgresRecordStore::Options old = Options();
  old.schema_version = 1;
  ASSERT_OK(PostgresRecordStore::Migrate(old));
  EXPECT_THAT(PostgresRecordStore::ReadSchemaVersion(Options()), IsOkAndHolds(1));
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  EXPECT_THAT(PostgresRecordStore::ReadSchemaVersion(Options()),
              IsOkAndHolds(PostgresRecordStore::kLatestSchemaVersion));

  // Partitions lists those with a head, ascending, whatever the commit order.
  EXPECT_THAT(store->Partitions(), IsOkAndHolds(std::vector<uint32_t>{}));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 3, 9)));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1, 0)));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 5, 2)));
  EXPECT_THAT(store->Partitions(), IsOkAndHolds(std::vector<uint32_t>{0, 2, 9}));

  // A target is described without connecting and never with a password.
  EXPECT_THAT(PostgresRecordStore::DescribeTarget("host=db.example port=5433 dbname=vault"),
              IsOkAndHolds(std::string("dbname=vault host=db.example port=5433")));
  ASSERT_OK_AND_ASSIGN(std::string target, PostgresRecordStore::DescribeTarget(
                                               "postgresql://app:pw-9931@db.example/vault"));
  EXPECT_THAT(target, Not(HasSubstr("pw-9931")));
  EXPECT_THAT(target, HasSubstr("dbname=vault"));
  EXPECT_THAT(PostgresRecordStore::DescribeTarget("postgresql://[broken"),
              StatusIs(StatusCode::kInvalidArgument));
  // Errors are those of connecting.
  PostgresRecordStore::Options missing = Options();
  missing.uri = server_->Uri("no_such_database");
  EXPECT_THAT(PostgresRecordStore::ReadSchemaVersion(missing),
              StatusIs(StatusCode::kUnavailable, HasSubstr("no_such_database")));
}

TEST_F(PostgresRecordStoreTest, PartitionsBeyondPostgresIntegersAreInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  EXPECT_THAT(store->ReadTree(1u << 31), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store->Commit(Batch(std::nullopt, 1, 1u << 31)),
              StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1, (1u << 31) - 1)));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree((1u << 31) - 1));
  EXPECT_EQ(tree.head, Batch(std::nullopt, 1).head);
}

TEST_F(PostgresRecordStoreTest, PartitionsCommitConcurrentlyThroughOneStore) {
  // One committer thread per partition (as the realm runs them), sharing a pool smaller than
  // their number, each writing rows of its own id range and nodes of its own tree.
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  PostgresRecordStore::Options options = Options();
  options.pool_size = 3;
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  constexpr uint32_t kPartitions = 8;
  constexpr uint64_t kCommits = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> committers;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    committers.emplace_back([&, p] {
      for (uint64_t n = 1; n <= kCommits; ++n) {
        CommitBatch batch = Batch(n == 1 ? std::nullopt : std::optional(n - 1), n, p);
        const auto prefix = static_cast<uint8_t>(p << 5);
        for (uint8_t i = 0; i < 3; ++i) {
          batch.records.push_back(
              RecordPut{Row(IdWithPrefix(prefix, i, 0x00), n, static_cast<uint8_t>(n)), n - 1});
        }
        batch.nodes = {TreeNode{static_cast<uint32_t>(n % 4), 1, Fill(static_cast<uint8_t>(n))}};
        Status status = store->Commit(batch);
        if (!status.ok()) {
          failures.fetch_add(1);
          ADD_FAILURE() << "partition " << p << " commit " << n << ": " << status;
          return;
        }
      }
    });
  }
  for (auto& t : committers) t.join();
  ASSERT_EQ(failures.load(), 0);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(p));
    EXPECT_EQ(tree.head, Batch(std::nullopt, kCommits).head) << p;
    EXPECT_EQ(tree.nodes.size(), 4u) << p;
    EXPECT_THAT(store->ReadRecord(IdWithPrefix(static_cast<uint8_t>(p << 5), 2, 0x00)),
                IsOkAndHolds(std::optional(Row(IdWithPrefix(static_cast<uint8_t>(p << 5), 2, 0x00),
                                               kCommits, static_cast<uint8_t>(kCommits)))));
  }
}

TEST_F(PostgresRecordStoreTest, ConcurrentCommittersFromOneEpochNeverBothWin) {
  // Two stores (as two nodes would) race from the same expected epoch, with rows in opposite
  // orders; exactly one commit wins each round, the other is ABORTED and changes nothing.
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  ASSERT_OK_AND_ASSIGN(auto x, PostgresRecordStore::Open(Options()));
  ASSERT_OK_AND_ASSIGN(auto y, PostgresRecordStore::Open(Options()));
  ASSERT_OK(x->Commit(Batch(std::nullopt, 1)));
  const RecordId a = IdWithPrefix(0x10, 0x00, 0x0a);
  const RecordId b = IdWithPrefix(0xf0, 0x00, 0x0b);
  uint64_t version_a = 0;
  uint64_t version_b = 0;
  constexpr int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t epoch = static_cast<uint64_t>(round) + 1;
    CommitBatch bx = Batch(epoch, epoch + 1);
    bx.records = {RecordPut{Row(a, version_a + 1, 0x0a), version_a},
                  RecordPut{Row(b, version_b + 1, 0x0a), version_b}};
    bx.head.certificate = {0x0a};
    CommitBatch by = bx;
    std::reverse(by.records.begin(), by.records.end());
    for (auto& put : by.records) put.record.record_hash = Fill(0x0b);
    by.head.certificate = {0x0b};
    std::barrier start(2);
    Status sx, sy;
    std::thread tx([&] {
      start.arrive_and_wait();
      sx = x->Commit(bx);
    });
    std::thread ty([&] {
      start.arrive_and_wait();
      sy = y->Commit(by);
    });
    tx.join();
    ty.join();
    SCOPED_TRACE("round " + std::to_string(round) + ": " + sx.ToString() + " / " + sy.ToString());
    ASSERT_TRUE(sx.ok() != sy.ok());
    ASSERT_THAT(sx.ok() ? sy : sx, StatusIs(StatusCode::kAborted));
    const uint8_t winner = sx.ok() ? 0x0a : 0x0b;
    ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, x->ReadTree(0));
    EXPECT_EQ(tree.head, (StoreHead{epoch + 1, Bytes{winner}}));
    ASSERT_OK_AND_ASSIGN(auto row_a, y->ReadRecord(a));
    ASSERT_OK_AND_ASSIGN(auto row_b, y->ReadRecord(b));
    ASSERT_TRUE(row_a && row_b);
    EXPECT_EQ(row_a->record_hash, Fill(winner));
    EXPECT_EQ(row_b->record_hash, Fill(winner));
    version_a = row_a->version;
    version_b = row_b->version;
  }
}

TEST_F(PostgresRecordStoreTest, APoolOfOneServesManyThreads) {
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  PostgresRecordStore::Options options = Options();
  options.pool_size = 1;
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  const RecordId a = IdWithPrefix(0x10, 0x00, 0x0a);
  CommitBatch batch = Batch(std::nullopt, 1);
  batch.records = {RecordPut{Row(a, 1, 0xa1), 0}};
  ASSERT_OK(store->Commit(batch));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (!store->ReadTree(0).ok() || !store->ReadRecord(a).ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // The sessions are the store's, with its settings applied.
  EXPECT_THAT(Sql("SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name = 'pinvault';"),
              IsOkAndHolds(std::string("t\n")));
}

TEST_F(PostgresRecordStoreTest, ConnectionLostBeforeCommitIsUnavailableAndAppliesNothing) {
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  ASSERT_OK_AND_ASSIGN(auto proxy, PostgresFaultProxy::Start(*server_));
  PostgresRecordStore::Options options = Options();
  options.uri = proxy->Uri(dbname_);
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1)));

  // The connection breaks after BEGIN, at the first statement of the transaction.
  proxy->Arm(PostgresFaultProxy::Cut::kNextBind);
  CommitBatch batch = Batch(1, 2);
  batch.records = {RecordPut{Row(IdWithPrefix(1, 1, 1), 1, 0x11), 0}};
  Status lost = store->Commit(batch);
  EXPECT_EQ(proxy->fired(), 1);
  EXPECT_THAT(lost, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(lost.message(), Not(HasSubstr("unknown")));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(0));
  EXPECT_EQ(tree.head, Batch(std::nullopt, 1).head);
  EXPECT_THAT(store->ReadRecord(IdWithPrefix(1, 1, 1)),
              IsOkAndHolds(std::optional<StoredRecord>()));
  // The pool opens a new connection: the same batch goes through.
  ASSERT_OK(store->Commit(batch));
}

TEST_F(PostgresRecordStoreTest, ConnectionLostDuringCommitSaysTheOutcomeIsUnknown) {
  ASSERT_OK(PostgresRecordStore::Migrate(Options()));
  ASSERT_OK_AND_ASSIGN(auto proxy, PostgresFaultProxy::Start(*server_));
  PostgresRecordStore::Options options = Options();
  options.uri = proxy->Uri(dbname_);
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1)));

  // COMMIT never reaches the server: rolled back, but the store cannot know.
  proxy->Arm(PostgresFaultProxy::Cut::kCommitNotForwarded);
  EXPECT_THAT(store->Commit(Batch(1, 2)),
              StatusIs(StatusCode::kUnavailable, HasSubstr("outcome is unknown")));
  EXPECT_EQ(proxy->fired(), 1);
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(0));
  EXPECT_EQ(tree.head, Batch(std::nullopt, 1).head);

  // COMMIT is done but its answer is lost: committed, and the store cannot know either.
  proxy->Arm(PostgresFaultProxy::Cut::kCommitReplyDropped);
  EXPECT_THAT(store->Commit(Batch(1, 2)),
              StatusIs(StatusCode::kUnavailable, HasSubstr("outcome is unknown")));
  EXPECT_EQ(proxy->fired(), 2);
  ASSERT_OK_AND_ASSIGN(tree, store->ReadTree(0));
  EXPECT_EQ(tree.head, Batch(1, 2).head);
  ASSERT_OK(store->Commit(Batch(2, 3)));
}

// ---- Password, TLS mode and server restarts (each on a cluster of its own) ----

class PostgresRecordStoreServerTest : public ::testing::Test {
 protected:
  // StartServer starts this test's cluster (with TCP if asked) and a migrated database.
  void StartServer(bool tcp) {
    PostgresServer::Options options;
    options.tcp = tcp;
    ASSERT_OK_AND_ASSIGN(server_, PostgresServer::Start(options));
    PostgresRecordStore::Options migrate;
    if (tcp) {
      // The database belongs to a password-protected role, which also creates the schema.
      ASSERT_OK(server_->CreateRole("app", kPassword));
      ASSERT_OK(server_->CreateDatabase("vault", "app"));
      ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("pw"), std::string(kPassword) + "\n", 0600));
      migrate.uri = server_->TcpUri("vault", "app", "sslmode=disable");
      migrate.password_file = dir_.File("pw");
    } else {
      ASSERT_OK(server_->CreateDatabase("vault"));
      migrate.uri = server_->Uri("vault");
    }
    ASSERT_OK(PostgresRecordStore::Migrate(migrate));
  }

  static constexpr const char* kPassword = "correct horse 'battery' staple";
  ScopedTempDir dir_;
  std::unique_ptr<PostgresServer> server_;
};

TEST_F(PostgresRecordStoreServerTest, PasswordFromAFileLogsInOverTcp) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/true));
  ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("pw"), std::string(kPassword) + "\n", 0600));
  PostgresRecordStore::Options options;
  options.uri = server_->TcpUri("vault", "app", "sslmode=disable");
  options.password_file = dir_.File("pw");
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1)));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(0));
  EXPECT_EQ(tree.head, Batch(std::nullopt, 1).head);
  EXPECT_THAT(store->target(), Not(HasSubstr("correct horse")));
  // Migrate logs in the same way (the database belongs to the role).
  ASSERT_OK(PostgresRecordStore::Migrate(options));
  // A URI is as good as key=value, and CRLF line ends are stripped too.
  ASSERT_NO_FATAL_FAILURE(
      WriteFile(dir_.File("pw"), std::string(kPassword) + "\r\nignored\n", 0400));
  options.uri =
      "postgresql://app@127.0.0.1:" + std::to_string(server_->port()) + "/vault?sslmode=disable";
  ASSERT_OK(PostgresRecordStore::Open(options));
}

TEST_F(PostgresRecordStoreServerTest, WrongOrMissingPasswordIsUnavailableAndNeverQuoted) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/true));
  constexpr const char* kWrong = "not-the-password-9187";
  ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("pw"), std::string(kWrong) + "\n", 0600));
  PostgresRecordStore::Options options;
  options.uri = server_->TcpUri("vault", "app", "sslmode=disable");
  options.password_file = dir_.File("pw");
  Status refused = PostgresRecordStore::Open(options).status();
  EXPECT_THAT(refused,
              StatusIs(StatusCode::kUnavailable, HasSubstr("password authentication failed")));
  EXPECT_THAT(refused.message(), Not(HasSubstr(kWrong)));
  EXPECT_THAT(refused.message(), Not(HasSubstr("correct horse")));
  EXPECT_THAT(refused.message(), HasSubstr("host=127.0.0.1"));  // the target, to act on
  Status migrate = PostgresRecordStore::Migrate(options);
  EXPECT_THAT(migrate, StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(migrate.message(), Not(HasSubstr(kWrong)));
  // Without a password file at all.
  options.password_file.clear();
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kUnavailable));
}

TEST_F(PostgresRecordStoreServerTest, PasswordFileOthersCanReadIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/true));
  PostgresRecordStore::Options options;
  options.uri = server_->TcpUri("vault", "app", "sslmode=disable");
  options.password_file = dir_.File("pw");
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("pw"), std::string(kPassword) + "\n", mode));
    Status refused = PostgresRecordStore::Open(options).status();
    EXPECT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("group or others")));
    EXPECT_THAT(refused.message(), Not(HasSubstr("correct horse")));
    EXPECT_THAT(PostgresRecordStore::Migrate(options), StatusIs(StatusCode::kFailedPrecondition));
  }
  // Missing and empty files.
  options.password_file = dir_.File("absent");
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kNotFound));
  ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("empty"), "\n", 0600));
  options.password_file = dir_.File("empty");
  EXPECT_THAT(PostgresRecordStore::Open(options), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(PostgresRecordStoreServerTest, SslRequiredAgainstAServerWithoutSslIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/true));
  ASSERT_NO_FATAL_FAILURE(WriteFile(dir_.File("pw"), std::string(kPassword) + "\n", 0600));
  PostgresRecordStore::Options options;
  options.uri = server_->TcpUri("vault", "app", "sslmode=require");
  options.password_file = dir_.File("pw");
  EXPECT_THAT(PostgresRecordStore::Open(options),
              StatusIs(StatusCode::kUnavailable, HasSubstr("server does not support SSL")));
  // The same server with sslmode=disable is fine.
  options.uri = server_->TcpUri("vault", "app", "sslmode=disable");
  EXPECT_OK(PostgresRecordStore::Open(options));
}

TEST_F(PostgresRecordStoreServerTest, StoppedServerIsUnavailableAndTheSameStoreRecovers) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/false));
  PostgresRecordStore::Options options;
  options.uri = server_->Uri("vault");
  ASSERT_OK_AND_ASSIGN(auto store, PostgresRecordStore::Open(options));
  ASSERT_OK(store->Commit(Batch(std::nullopt, 1)));
  const RecordId a = IdWithPrefix(0x10, 0x00, 0x0a);

  for (int cycle = 0; cycle < 2; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    const uint64_t epoch = static_cast<uint64_t>(cycle) + 1;
    if (cycle == 0) {
      ASSERT_OK(server_->Stop());
    } else {
      ASSERT_OK(server_->Kill());
    }
    EXPECT_THAT(store->ReadTree(0), StatusIs(StatusCode::kUnavailable));
    EXPECT_THAT(store->ReadRecord(a), StatusIs(StatusCode::kUnavailable));
    EXPECT_THAT(store->ScanBucket(a, a, a), StatusIs(StatusCode::kUnavailable));
    EXPECT_THAT(store->Commit(Batch(epoch, epoch + 1)), StatusIs(StatusCode::kUnavailable));
    // Back again: the pool opens new connections on the next use.
    ASSERT_OK(server_->Restart());
    ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store->ReadTree(0));
    EXPECT_EQ(tree.head, Batch(std::nullopt, epoch).head);
    CommitBatch next = Batch(epoch, epoch + 1);
    next.records = {RecordPut{Row(a, epoch, 0xa0), epoch - 1}};
    ASSERT_OK(store->Commit(next));
    EXPECT_THAT(store->ReadRecord(a), IsOkAndHolds(std::optional(Row(a, epoch, 0xa0))));
  }
}

TEST_F(PostgresRecordStoreServerTest, StoreOpenedWhileTheServerIsDownIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*tcp=*/false));
  ASSERT_OK(server_->Stop());
  PostgresRecordStore::Options options;
  options.uri = server_->Uri("vault");
  EXPECT_THAT(PostgresRecordStore::Open(options),
              StatusIs(StatusCode::kUnavailable, HasSubstr("cannot connect")));
  EXPECT_THAT(PostgresRecordStore::Migrate(options), StatusIs(StatusCode::kUnavailable));
}

// Leases: a partition never taken is taken at term 1; a live lease is refused to others and
// renewed at the same term for its owner; once released (or expired) the next owner gets the
// next term. Expiry is database time; releasing makes it happen now, so no test waits.
TEST_F(PostgresRecordStoreTest, LeasesAreTakenAtTheNextTermOnlyOnceFree) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  const auto ttl = std::chrono::minutes(5);
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease a, store->AcquireLease(2, "node-a", ttl));
  EXPECT_EQ(a.term, 1u);
  EXPECT_FALSE(a.live);
  EXPECT_THAT(store->AcquireLease(2, "node-b", ttl),
              StatusIs(StatusCode::kAborted, HasSubstr("leased to node-a at term 1")));
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease again,
                       store->AcquireLease(2, "node-a", ttl));
  EXPECT_EQ(again.term, 1u);
  EXPECT_TRUE(again.live);
  EXPECT_OK(store->RenewLease(a, ttl));
  ASSERT_OK(store->ReleaseLease(a));
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease b, store->AcquireLease(2, "node-b", ttl));
  EXPECT_EQ(b.term, 2u);
  // The old owner can neither renew nor release what it lost.
  EXPECT_THAT(store->RenewLease(a, ttl), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(store->ReleaseLease(a), StatusIs(StatusCode::kAborted));
  // Another partition is independent.
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease other,
                       store->AcquireLease(3, "node-a", ttl));
  EXPECT_EQ(other.term, 1u);
  ASSERT_OK_AND_ASSIGN(std::vector<PostgresRecordStore::PartitionLease> leases, store->ReadLeases());
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].partition, 2u);
  EXPECT_EQ(leases[0].owner, "node-b");
  EXPECT_EQ(leases[0].term, 2u);
  EXPECT_TRUE(leases[0].live);
  EXPECT_EQ(leases[1].owner, "node-a");
  EXPECT_THAT(store->AcquireLease(2, "", ttl), StatusIs(StatusCode::kInvalidArgument));
}

// The fence is checked inside the commit: a node whose lease was taken over commits nothing,
// whatever its epoch; the new owner commits at its term.
TEST_F(PostgresRecordStoreTest, AStaleLeaseHolderCommitsNothing) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMigrated());
  const auto ttl = std::chrono::minutes(5);
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease a, store->AcquireLease(1, "node-a", ttl));
  CommitBatch first = Batch(std::nullopt, 1, 1);
  first.fence = a.fence();
  first.records = {RecordPut{Row(IdWithPrefix(0x40, 1, 1), 1, 0xa1), 0}};
  ASSERT_OK(store->Commit(first));

  // node-a pauses; its lease is released (as if it expired) and node-b takes the partition.
  ASSERT_OK(store->ReleaseLease(a));
  ASSERT_OK_AND_ASSIGN(PostgresRecordStore::PartitionLease b, store->AcquireLease(1, "node-b", ttl));
  ASSERT_EQ(b.term, 2u);

  // node-a wakes with a batch built on the epoch it knew: refused, nothing applied.
  CommitBatch stale = Batch(1, 2, 1);
  stale.fence = a.fence();
  stale.records = {RecordPut{Row(IdWithPrefix(0x40, 1, 1), 2, 0xa2), 1}};
  stale.nodes = {TreeNode{9, 1, Fill(9)}};
  EXPECT_THAT(store->Commit(stale),
              StatusIs(StatusCode::kAborted, HasSubstr("no longer leased to node-a at term 1")));
  EXPECT_THAT(store->ReadRecord(IdWithPrefix(0x40, 1, 1)),
              IsOkAndHolds(std::optional(Row(IdWithPrefix(0x40, 1, 1), 1, 0xa1))));
  ASSERT_OK_AND_ASSIGN(TreeSnapshot tree, store->ReadTree(1));
  EXPECT_EQ(tree.head->epoch, 1u);
  EXPECT_TRUE(tree.nodes.empty());

  // The same batch under node-b's lease commits.
  stale.fence = b.fence();
  EXPECT_OK(store->Commit(stale));
  // A fence naming a partition with no lease row at all is refused too.
  CommitBatch unleased = Batch(std::nullopt, 1, 7);
  unleased.fence = vault::LeaseFence{"node-a", 1};
  EXPECT_THAT(store->Commit(unleased), StatusIs(StatusCode::kAborted));
  EXPECT_FALSE(store->ReadTree(7)->head.has_value());
}

}  // namespace
}  // namespace pinvault::backup
