#include "backup/store/sqlite_record_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_util.h"
#include "vault/bytes.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::StatusIs;

using testing::IdWithPrefix;
using testing::ScopedTempDir;
using vault::CommitBatch;
using vault::Digest;
using vault::RecordId;
using vault::RecordPut;
using vault::StoredRecord;
using vault::StoreHead;
using vault::TreeNode;
using vault::TreeSnapshot;

StoredRecord MakeRecord(const RecordId& id, uint64_t version, uint8_t tag) {
  StoredRecord r;
  r.id = id;
  r.version = version;
  r.record_hash.fill(tag);
  r.sealed = Bytes(100, tag);
  return r;
}

Digest Fill(uint8_t v) {
  Digest d;
  d.fill(v);
  return d;
}

CommitBatch Batch(std::optional<uint64_t> expected, uint64_t epoch) {
  CommitBatch batch;
  batch.expected_epoch = expected;
  batch.head = StoreHead{epoch, Bytes{static_cast<uint8_t>(epoch), 0xcc}};
  return batch;
}

// RawExec runs SQL on the file through a separate connection, as an attacker or an older
// build would.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

std::string RawQueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(stmt, 0);
    out = t ? reinterpret_cast<const char*>(t) : "";
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

TEST(SqliteRecordStoreTest, FreshStoreIsEmptyWalAndLatestSchema) {
  ScopedTempDir dir;
  auto store = SqliteRecordStore::Open(dir.path());
  ASSERT_OK(store);
  EXPECT_EQ((*store)->SchemaVersion(), SqliteRecordStore::kLatestSchemaVersion);
  EXPECT_EQ((*store)->path(), dir.File(SqliteRecordStore::kDatabaseFileName));
  auto tree = (*store)->ReadTree(0);
  ASSERT_OK(tree);
  EXPECT_FALSE(tree->head.has_value());
  EXPECT_TRUE(tree->nodes.empty());
  EXPECT_EQ(RawQueryText((*store)->path(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawQueryText((*store)->path(), "PRAGMA user_version"), "3");
  auto missing = (*store)->ReadRecord(IdWithPrefix(1, 2, 3));
  ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST(SqliteRecordStoreTest, CommitWritesEverythingAndScanSeesIt) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  CommitBatch batch = Batch(std::nullopt, 0);
  RecordId a = IdWithPrefix(0x10, 0x00, 0x01);
  RecordId b = IdWithPrefix(0x10, 0xff, 0x02);
  RecordId c = IdWithPrefix(0x11, 0x00, 0x03);
  batch.records = {RecordPut{MakeRecord(a, 1, 0xa1), 0}, RecordPut{MakeRecord(b, 1, 0xb1), 0},
                   RecordPut{MakeRecord(c, 1, 0xc1), 0}};
  batch.nodes = {TreeNode{0x10, 2, Fill(7)}, TreeNode{0x11, 1, Fill(8)}};
  ASSERT_OK(store->Commit(batch));

  auto tree = store->ReadTree(0);
  ASSERT_OK(tree);
  ASSERT_TRUE(tree->head.has_value());
  EXPECT_EQ(*tree->head, batch.head);
  ASSERT_EQ(tree->nodes.size(), 2u);
  EXPECT_EQ(tree->nodes[0], batch.nodes[0]);
  EXPECT_EQ(tree->nodes[1], batch.nodes[1]);

  RecordId lo = IdWithPrefix(0x10, 0x00, 0x00);
  RecordId hi = IdWithPrefix(0x10, 0xff, 0xff);
  auto scan = store->ScanBucket(lo, hi, b);
  ASSERT_OK(scan);
  ASSERT_EQ(scan->entries.size(), 2u);
  EXPECT_EQ(scan->entries[0].id, a);
  EXPECT_EQ(scan->entries[1].id, b);
  EXPECT_EQ(scan->entries[1].record_hash, Fill(0xb1));
  ASSERT_TRUE(scan->target.has_value());
  EXPECT_EQ(*scan->target, MakeRecord(b, 1, 0xb1));

  // A target outside the range, or absent, is not returned.
  auto scan2 = store->ScanBucket(lo, hi, c);
  ASSERT_OK(scan2);
  EXPECT_FALSE(scan2->target.has_value());
  EXPECT_EQ(scan2->entries.size(), 2u);

  auto read = store->ReadRecord(c);
  ASSERT_OK(read);
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, MakeRecord(c, 1, 0xc1));
}

TEST(SqliteRecordStoreTest, EpochCompareAndSwap) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  ASSERT_TRUE(store->Commit(Batch(std::nullopt, 0)).ok());
  // A second genesis (expects no head) is refused.
  EXPECT_EQ(store->Commit(Batch(std::nullopt, 0)).code(), StatusCode::kAborted);
  // A stale epoch is refused.
  ASSERT_TRUE(store->Commit(Batch(0, 1)).ok());
  Status stale = store->Commit(Batch(0, 1));
  EXPECT_THAT(stale, StatusIs(StatusCode::kAborted));
  EXPECT_NE(stale.message().find("epoch is 1"), std::string::npos) << stale;
  auto tree = store->ReadTree(0);
  ASSERT_OK(tree);
  EXPECT_EQ(tree->head->epoch, 1u);
}

TEST(SqliteRecordStoreTest, BatchIsAllOrNothing) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  RecordId a = IdWithPrefix(1, 0, 0);
  RecordId b = IdWithPrefix(2, 0, 0);
  CommitBatch first = Batch(std::nullopt, 0);
  first.records = {RecordPut{MakeRecord(a, 1, 1), 0}};
  first.nodes = {TreeNode{1, 1, Fill(1)}};
  ASSERT_OK(store->Commit(first));

  // The second put's version check fails: b does not exist but version 5 is expected.
  CommitBatch bad = Batch(0, 1);
  bad.records = {RecordPut{MakeRecord(a, 2, 2), 1}, RecordPut{MakeRecord(b, 6, 2), 5}};
  bad.nodes = {TreeNode{1, 1, Fill(2)}, TreeNode{2, 1, Fill(2)}};
  bad.erased_nodes = {1};
  EXPECT_THAT(store->Commit(bad), StatusIs(StatusCode::kAborted));

  auto row = store->ReadRecord(a);
  ASSERT_OK(row);
  EXPECT_EQ(**row, MakeRecord(a, 1, 1));
  EXPECT_FALSE(store->ReadRecord(b)->has_value());
  auto tree = store->ReadTree(0);
  ASSERT_OK(tree);
  EXPECT_EQ(tree->head->epoch, 0u);
  ASSERT_EQ(tree->nodes.size(), 1u);
  EXPECT_EQ(tree->nodes[0], first.nodes[0]);

  // Updating a with the wrong expected version is refused as well.
  CommitBatch wrong_version = Batch(0, 1);
  wrong_version.records = {RecordPut{MakeRecord(a, 2, 2), 0}};
  EXPECT_THAT(store->Commit(wrong_version), StatusIs(StatusCode::kAborted));

  // The same batch with correct expectations applies fully, including the erase.
  CommitBatch good = Batch(0, 1);
  good.records = {RecordPut{MakeRecord(a, 2, 2), 1}, RecordPut{MakeRecord(b, 1, 2), 0}};
  good.nodes = {TreeNode{2, 2, Fill(2)}};
  good.erased_nodes = {1, 99};
  ASSERT_OK(store->Commit(good));
  EXPECT_EQ(**store->ReadRecord(a), MakeRecord(a, 2, 2));
  EXPECT_EQ(**store->ReadRecord(b), MakeRecord(b, 1, 2));
  tree = store->ReadTree(0);
  ASSERT_EQ(tree->nodes.size(), 1u);
  EXPECT_EQ(tree->nodes[0], good.nodes[0]);
}

TEST(SqliteRecordStoreTest, RejectsMalformedBatches) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  RecordId a = IdWithPrefix(1, 0, 0);
  CommitBatch dup = Batch(std::nullopt, 0);
  dup.records = {RecordPut{MakeRecord(a, 1, 1), 0}, RecordPut{MakeRecord(a, 1, 2), 0}};
  EXPECT_THAT(store->Commit(dup), StatusIs(StatusCode::kInvalidArgument));
  CommitBatch zero = Batch(std::nullopt, 0);
  zero.records = {RecordPut{MakeRecord(a, 0, 1), 0}};
  EXPECT_THAT(store->Commit(zero), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(store->ReadTree(0)->head.has_value());
}

TEST(SqliteRecordStoreTest, ReopenKeepsCommittedData) {
  ScopedTempDir dir;
  RecordId a = IdWithPrefix(9, 9, 9);
  {
    ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
    CommitBatch batch = Batch(std::nullopt, 0);
    batch.records = {RecordPut{MakeRecord(a, 1, 4), 0}};
    batch.nodes = {TreeNode{9, 1, Fill(4)}};
    ASSERT_OK(store->Commit(batch));
    CommitBatch second = Batch(0, 1);
    second.records = {RecordPut{MakeRecord(a, 2, 5), 1}};
    ASSERT_OK(store->Commit(second));
  }
  auto store = SqliteRecordStore::Open(dir.path());
  ASSERT_OK(store);
  EXPECT_EQ((*store)->SchemaVersion(), SqliteRecordStore::kLatestSchemaVersion);
  EXPECT_EQ(**(*store)->ReadRecord(a), MakeRecord(a, 2, 5));
  auto tree = (*store)->ReadTree(0);
  EXPECT_EQ(tree->head->epoch, 1u);
  ASSERT_EQ(tree->nodes.size(), 1u);
}

// Files of the earlier layouts, written with the SQL those versions ran, open with every row
// kept: the single tree's head and nodes become partition 0's.
TEST(SqliteRecordStoreTest, MigratesOldSchemaKeepingData) {
  RecordId a = IdWithPrefix(3, 3, 3);
  const std::string a_hex = HexEncode(a);
  for (int old_version : {1, 2}) {
    SCOPED_TRACE("from schema " + std::to_string(old_version));
    ScopedTempDir dir;
    const std::string path = dir.File(SqliteRecordStore::kDatabaseFileName);
    {
      SqliteRecordStore::Options options;
      options.schema_version = old_version;
      ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path(), options));
      EXPECT_EQ(store->SchemaVersion(), old_version);
    }
    RawExec(path, "INSERT INTO records VALUES (x'" + a_hex + "', 4, x'" +
                      HexEncode(Fill(6)) + "', x'0102');"
                      "INSERT INTO head VALUES (1, 7, x'c0ffee');");
    if (old_version == 2) {
      RawExec(path, "INSERT INTO tree_nodes VALUES (5, 1, x'" + HexEncode(Fill(1)) + "');");
    }
    EXPECT_EQ(RawQueryText(path, "PRAGMA user_version"), std::to_string(old_version));

    ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
    EXPECT_EQ(store->SchemaVersion(), SqliteRecordStore::kLatestSchemaVersion);
    ASSERT_OK_AND_ASSIGN(std::optional<StoredRecord> row, store->ReadRecord(a));
    ASSERT_TRUE(row.has_value());
    EXPECT_EQ(row->version, 4u);
    EXPECT_EQ(row->record_hash, Fill(6));
    ASSERT_OK_AND_ASSIGN(TreeSnapshot tree, store->ReadTree(0));
    ASSERT_TRUE(tree.head.has_value());
    EXPECT_EQ(*tree.head, (StoreHead{7, Bytes{0xc0, 0xff, 0xee}}));
    if (old_version == 2) {
      ASSERT_EQ(tree.nodes.size(), 1u);
      EXPECT_EQ(tree.nodes[0], (TreeNode{5, 1, Fill(1)}));
    } else {
      EXPECT_TRUE(tree.nodes.empty());
    }
    ASSERT_OK_AND_ASSIGN(TreeSnapshot other, store->ReadTree(1));
    EXPECT_FALSE(other.head.has_value());
    // The migrated partition keeps committing.
    CommitBatch next = Batch(7, 8);
    next.nodes = {TreeNode{6, 1, Fill(2)}};
    ASSERT_OK(store->Commit(next));
    // Opening again runs no migration and changes nothing.
    store.reset();
    ASSERT_OK_AND_ASSIGN(store, SqliteRecordStore::Open(dir.path()));
    EXPECT_EQ(store->ReadTree(0)->head->epoch, 8u);
  }
}

// One node, no leases: a fenced batch is a caller's mistake and changes nothing.
TEST(SqliteRecordStoreTest, FencedBatchesAreRefused) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  CommitBatch fenced = Batch(std::nullopt, 0);
  fenced.fence = vault::LeaseFence{"node-a", 1};
  EXPECT_THAT(store->Commit(fenced), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(store->ReadTree(0)->head.has_value());
}

// Partitions keep their own heads and nodes; records are shared by id.
TEST(SqliteRecordStoreTest, PartitionsHaveTheirOwnHeadsAndNodes) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  CommitBatch first = Batch(std::nullopt, 0);
  first.partition = 3;
  first.nodes = {TreeNode{1, 1, Fill(1)}};
  ASSERT_OK(store->Commit(first));
  ASSERT_OK_AND_ASSIGN(TreeSnapshot zero, store->ReadTree(0));
  EXPECT_FALSE(zero.head.has_value());
  EXPECT_TRUE(zero.nodes.empty());
  // Partition 0's first commit expects no head although partition 3 has one.
  CommitBatch other = Batch(std::nullopt, 0);
  other.nodes = {TreeNode{1, 2, Fill(9)}};
  ASSERT_OK(store->Commit(other));
  ASSERT_OK_AND_ASSIGN(TreeSnapshot three, store->ReadTree(3));
  ASSERT_EQ(three.nodes.size(), 1u);
  EXPECT_EQ(three.nodes[0].hash, Fill(1));
  // An epoch CAS of one partition says nothing about another.
  CommitBatch stale = Batch(5, 6);
  stale.partition = 3;
  EXPECT_THAT(store->Commit(stale), StatusIs(StatusCode::kAborted));
}

// The read-only look an operator's tool takes: the schema version without migrating, and the
// partitions that have a head.
TEST(SqliteRecordStoreTest, SchemaVersionAndPartitionsAreReadWithoutChangingAnything) {
  ScopedTempDir dir;
  const std::string path = dir.File(SqliteRecordStore::kDatabaseFileName);
  EXPECT_THAT(SqliteRecordStore::ReadSchemaVersion(dir.path()), StatusIs(StatusCode::kNotFound));
  EXPECT_FALSE(std::filesystem::exists(path));  // not created by the look
  {
    SqliteRecordStore::Options old;
    old.schema_version = 2;
    ASSERT_OK(SqliteRecordStore::Open(dir.path(), old));
  }
  ASSERT_OK_AND_ASSIGN(int version, SqliteRecordStore::ReadSchemaVersion(dir.path()));
  EXPECT_EQ(version, 2);
  EXPECT_EQ(RawQueryText(path, "PRAGMA user_version"), "2");  // still not migrated

  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  ASSERT_OK_AND_ASSIGN(version, SqliteRecordStore::ReadSchemaVersion(dir.path()));
  EXPECT_EQ(version, SqliteRecordStore::kLatestSchemaVersion);
  ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> partitions, store->Partitions());
  EXPECT_TRUE(partitions.empty());
  for (uint32_t partition : {9u, 0u, 2u}) {
    CommitBatch batch = Batch(std::nullopt, 4);
    batch.partition = partition;
    ASSERT_OK(store->Commit(batch));
  }
  ASSERT_OK_AND_ASSIGN(partitions, store->Partitions());
  EXPECT_EQ(partitions, (std::vector<uint32_t>{0, 2, 9}));

  ScopedTempDir junk_dir;
  {
    std::ofstream junk(junk_dir.File(SqliteRecordStore::kDatabaseFileName), std::ios::binary);
    junk << std::string(8192, 'x');
  }
  EXPECT_THAT(SqliteRecordStore::ReadSchemaVersion(junk_dir.path()),
              StatusIs(StatusCode::kDataLoss));
}

TEST(SqliteRecordStoreTest, RefusesNewerSchemaAndNonDatabases) {
  ScopedTempDir dir;
  { ASSERT_TRUE(SqliteRecordStore::Open(dir.path()).ok()); }
  RawExec(dir.File(SqliteRecordStore::kDatabaseFileName), "PRAGMA user_version = 99");
  auto newer = SqliteRecordStore::Open(dir.path());
  ASSERT_FALSE(newer.ok());
  EXPECT_THAT(newer, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_NE(newer.status().message().find("99"), std::string::npos);

  ScopedTempDir junk_dir;
  {
    std::ofstream junk(junk_dir.File(SqliteRecordStore::kDatabaseFileName), std::ios::binary);
    junk << std::string(8192, 'x');
  }
  auto junk = SqliteRecordStore::Open(junk_dir.path());
  ASSERT_FALSE(junk.ok());
  EXPECT_THAT(junk, StatusIs(StatusCode::kDataLoss)) << junk.status();

  auto missing_dir = SqliteRecordStore::Open(dir.File("no/such/dir"));
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_THAT(missing_dir, StatusIs(StatusCode::kUnavailable)) << missing_dir.status();
}

TEST(SqliteRecordStoreTest, MalformedRowsAreDataLoss) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  // A row whose id is not 32 bytes, inside the scanned range.
  RawExec(store->path(),
          "INSERT INTO records VALUES (x'0500ff', 1, zeroblob(32), x'00');"
          "INSERT INTO partition_nodes VALUES (0, 1, 1, x'0102');");
  auto scan =
      store->ScanBucket(IdWithPrefix(5, 0, 0), IdWithPrefix(5, 0xff, 0xff), IdWithPrefix(5, 0, 1));
  ASSERT_FALSE(scan.ok());
  EXPECT_THAT(scan, StatusIs(StatusCode::kDataLoss));
  auto tree = store->ReadTree(0);
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(tree, StatusIs(StatusCode::kDataLoss));
}

// Readers running alongside commits always see a batch entirely or not at all.
TEST(SqliteRecordStoreTest, ScansSeeWholeBatchesUnderConcurrentCommits) {
  ScopedTempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, SqliteRecordStore::Open(dir.path()));
  RecordId a = IdWithPrefix(7, 1, 0);
  RecordId b = IdWithPrefix(7, 2, 0);
  CommitBatch genesis = Batch(std::nullopt, 0);
  genesis.records = {RecordPut{MakeRecord(a, 1, 0), 0}, RecordPut{MakeRecord(b, 1, 0), 0}};
  ASSERT_OK(store->Commit(genesis));

  constexpr int kCommits = 60;
  std::atomic<bool> done{false};
  std::atomic<int> mismatches{0};
  std::atomic<int> scans{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto scan = store->ScanBucket(IdWithPrefix(7, 0, 0), IdWithPrefix(7, 0xff, 0xff), a);
        if (!scan.ok() || scan->entries.size() != 2 ||
            scan->entries[0].record_hash != scan->entries[1].record_hash ||
            scan->target->record_hash != scan->entries[0].record_hash) {
          mismatches.fetch_add(1);
        }
        scans.fetch_add(1);
      }
    });
  }
  // Each commit starts only after the readers finished a scan since the previous one, so
  // scans interleave with every commit whatever the scheduler does (readers never wait, so
  // they are scanning while the commit runs).
  auto scans_since = [&](int from) {
    while (scans.load() <= from) std::this_thread::yield();
  };
  for (int i = 1; i <= kCommits; ++i) {
    scans_since(scans.load());
    CommitBatch batch = Batch(i - 1, i);
    uint8_t tag = static_cast<uint8_t>(i);
    batch.records = {RecordPut{MakeRecord(a, i + 1, tag), static_cast<uint64_t>(i)},
                     RecordPut{MakeRecord(b, i + 1, tag), static_cast<uint64_t>(i)}};
    ASSERT_OK(store->Commit(batch));
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GE(scans.load(), kCommits);
}

}  // namespace
}  // namespace pinvault::backup
