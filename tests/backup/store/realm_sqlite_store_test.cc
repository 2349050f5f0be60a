// The realm on the SQLite record store: restart, rollback of the database files, and rows
// tampered with through SQL.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>

#include "backup/store/sqlite_record_store.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "tests/testing/vault_test_util.h"
#include "vault/realm.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::As;
using ::pinvault::testing::kTestRealmId;
using ::pinvault::testing::ScopedTempDir;
using ::pinvault::testing::SoftwareHsm;
using ::pinvault::testing::StatusIs;
using ::pinvault::testing::User;
using ::pinvault::testing::VaultTestClient;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using ::testing::HasSubstr;
using vault::Realm;
using vault::RealmOptions;

constexpr SoftwareHsm::Seed kSeed = {7, 7, 7};

// Node is one realm process: the same HSM (seed + anchor file) and data directory across
// restarts, as with a real token and disk.
class RealmSqliteTest : public ::testing::Test {
 protected:
  // Start opens the node; call it under ASSERT_NO_FATAL_FAILURE.
  void Start() {
    hsm_ = std::make_unique<SoftwareHsm>(kSeed, dir_.File("anchor"));
    ASSERT_OK_AND_ASSIGN(store_, SqliteRecordStore::Open(dir_.path()));
    RealmOptions options;
    options.genesis_bucket_bits = 8;
    options.worker_threads = 2;
    ASSERT_OK_AND_ASSIGN(realm_, Realm::Create(*hsm_, *store_, options));
  }

  void Stop() {
    realm_.reset();
    store_.reset();
    hsm_.reset();
  }

  std::string DbFile(const std::string& suffix = "") const {
    return dir_.File(SqliteRecordStore::kDatabaseFileName) + suffix;
  }

  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbFile().c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }

  std::string IdHex(const vault::RequestContext& user) {
    StatusOr<vault::RecordId> id = vault::ComputeRecordId(*hsm_, user.tenant, user.user);
    EXPECT_OK(id);
    if (!id.ok()) return "";
    return HexEncode(*id);
  }

  ScopedTempDir dir_;
  std::unique_ptr<SoftwareHsm> hsm_;
  std::unique_ptr<SqliteRecordStore> store_;
  std::unique_ptr<Realm> realm_;
};

TEST_F(RealmSqliteTest, StateSurvivesRestarts) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK(realm_->Ready());
  VaultTestClient client(kTestRealmId);
  auto user = User("alice");
  testing::Register(*realm_, client, user, "1234", 5);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count, 1);
  for (int restart = 0; restart < 3; ++restart) {
    Stop();
    ASSERT_NO_FATAL_FAILURE(Start());
    ASSERT_OK(realm_->Ready());
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count,
              restart + 2);
  }
  auto r2 = As<Recover2Response>(realm_->Handle(user, client.Recover2("1234")));
  auto tag = client.FinishRecover2(r2);
  ASSERT_OK(tag);
  ASSERT_TRUE(tag->has_value());
  EXPECT_EQ(As<protocol::Recover3Response>(realm_->Handle(user, client.Recover3(**tag))).status,
            protocol::Recover3Response::Status::kOk);
}

// Snapshot the database files, spend K guesses, put the snapshot back, restart: the realm
// refuses to serve instead of handing out K fresh guesses.
TEST_F(RealmSqliteTest, RestoredDatabaseSnapshotIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start());
  VaultTestClient client(kTestRealmId);
  auto user = User("victim");
  testing::Register(*realm_, client, user, "1234", 6);
  As<Recover2Response>(realm_->Handle(user, client.Recover2("0000")));
  uint64_t snapshot_epoch = realm_->Stats().epoch;
  // An attacker copies the files of the running realm (database and WAL).
  ASSERT_TRUE(testing::CopyFileOrAbsence(DbFile(), dir_.File("snap.db")));
  ASSERT_TRUE(testing::CopyFileOrAbsence(DbFile("-wal"), dir_.File("snap.db-wal")));
  constexpr int kSpent = 4;
  for (int i = 0; i < kSpent; ++i) {
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count,
              i + 2);
  }
  uint64_t anchored_epoch = realm_->Stats().epoch;
  ASSERT_EQ(anchored_epoch, snapshot_epoch + kSpent);
  Stop();
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("snap.db"), DbFile()));
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("snap.db-wal"), DbFile("-wal")));
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("no-such-file"), DbFile("-shm")));

  for (int restart = 0; restart < 2; ++restart) {
    ASSERT_NO_FATAL_FAILURE(Start());
    Status ready = realm_->Ready();
    EXPECT_THAT(ready,
                StatusIs(StatusCode::kFailedPrecondition,
                         HasSubstr("storage is at epoch " + std::to_string(snapshot_epoch))));
    EXPECT_THAT(ready.message(), HasSubstr("anchor is at epoch " + std::to_string(anchored_epoch)))
        << ready;
    // No fresh guesses: every request is refused, nothing is evaluated or written.
    EXPECT_THAT(realm_->Handle(user, client.Recover2("1234")),
                StatusIs(StatusCode::kFailedPrecondition));
    EXPECT_THAT(realm_->Handle(user, Recover1Request{}), StatusIs(StatusCode::kFailedPrecondition));
    EXPECT_THAT(realm_->Resync(), StatusIs(StatusCode::kFailedPrecondition));
    EXPECT_EQ(realm_->Stats().batches, 0u);
    Stop();
  }
}

TEST_F(RealmSqliteTest, RowsTamperedThroughSqlAreDataLoss) {
  ASSERT_NO_FATAL_FAILURE(Start());
  VaultTestClient a(kTestRealmId), b(kTestRealmId);
  auto alice = User("alice");
  auto bob = User("bob");
  testing::Register(*realm_, a, alice, "1234", 5);
  testing::Register(*realm_, b, bob, "1234", 5);
  As<Recover2Response>(realm_->Handle(alice, a.Recover2("0000")));
  std::string alice_id = IdHex(alice);
  std::string bob_id = IdHex(bob);
  Sql("CREATE TABLE saved AS SELECT * FROM records");

  // Flip a bit in the sealed blob.
  Sql("UPDATE records SET sealed = (SELECT substr(sealed, 1, 100) || x'ff' || "
      "substr(sealed, 102) FROM records WHERE id = x'" +
      alice_id + "') WHERE id = x'" + alice_id + "'");
  EXPECT_THAT(realm_->Handle(alice, a.Recover2("1234")), StatusIs(StatusCode::kDataLoss));
  Sql("DELETE FROM records; INSERT INTO records SELECT * FROM saved");
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(alice, Recover1Request{})).status,
            Recover1Response::Status::kOk);

  // Give alice bob's row (bob never spent a guess).
  Sql("UPDATE records SET version = (SELECT version FROM saved WHERE id = x'" + bob_id +
      "'), record_hash = (SELECT record_hash FROM saved WHERE id = x'" + bob_id +
      "'), sealed = (SELECT sealed FROM saved WHERE id = x'" + bob_id + "') WHERE id = x'" +
      alice_id + "'");
  EXPECT_THAT(realm_->Handle(alice, a.Recover2("1234")), StatusIs(StatusCode::kDataLoss));
  Sql("DELETE FROM records; INSERT INTO records SELECT * FROM saved");

  // Drop alice's row.
  Sql("DELETE FROM records WHERE id = x'" + alice_id + "'");
  EXPECT_THAT(realm_->Handle(alice, Recover1Request{}), StatusIs(StatusCode::kDataLoss));
  Sql("DELETE FROM records; INSERT INTO records SELECT * FROM saved");

  EXPECT_EQ(realm_->Inspect(alice)->guess_count, 1);
  EXPECT_EQ(realm_->Inspect(bob)->guess_count, 0);
}

TEST_F(RealmSqliteTest, LostAnchorIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start());
  VaultTestClient client(kTestRealmId);
  testing::Register(*realm_, client, User("a"), "1234", 5);
  Stop();
  ASSERT_TRUE(testing::CopyFileOrAbsence(dir_.File("none"), dir_.File("anchor")));
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_THAT(realm_->Ready(),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("anchor is at epoch none")));
  Stop();
}

}  // namespace
}  // namespace pinvault::backup
