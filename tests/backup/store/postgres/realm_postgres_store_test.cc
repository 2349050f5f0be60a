// The realm (vault/realm.h) on the PostgreSQL record store, with the software HSM: guesses
// counted across restarts, exhaustion, recovery, rows tampered with through SQL, and a
// database rolled back with SQL, which the realm refuses (the HSM anchor is ahead of it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <string>

#include "backup/store/postgres_record_store.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/realm_test_helpers.h"
#include "tests/testing/software_hsm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_client.h"
#include "tests/testing/vault_test_util.h"
#include "vault/realm.h"

namespace pinvault::backup {
namespace {

using ::pinvault::testing::As;
using ::pinvault::testing::FreshDatabaseName;
using ::pinvault::testing::kTestRealmId;
using ::pinvault::testing::PostgresServer;
using ::pinvault::testing::ScopedTempDir;
using ::pinvault::testing::SharedPostgresServer;
using ::pinvault::testing::SoftwareHsm;
using ::pinvault::testing::StatusIs;
using ::pinvault::testing::User;
using ::pinvault::testing::VaultTestClient;
using protocol::Recover1Request;
using protocol::Recover1Response;
using protocol::Recover2Response;
using protocol::Recover3Response;
using ::testing::HasSubstr;
using vault::Realm;
using vault::RealmOptions;

constexpr SoftwareHsm::Seed kSeed = {5, 4, 3};

// RealmPostgresTest is one realm node: the same HSM (seed + anchor file) and the same
// database across restarts, as with a real token and a database server.
class RealmPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, SharedPostgresServer());
    dbname_ = FreshDatabaseName();
    ASSERT_OK(server_->CreateDatabase(dbname_));
    options_.uri = server_->Uri(dbname_);
    ASSERT_OK(PostgresRecordStore::Migrate(options_));
  }

  // Start opens the node; call it under ASSERT_NO_FATAL_FAILURE.
  void Start() {
    hsm_ = std::make_unique<SoftwareHsm>(kSeed, dir_.File("anchor"));
    ASSERT_OK_AND_ASSIGN(store_, PostgresRecordStore::Open(options_));
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

  // Sql runs SQL on the realm's database behind its back, as a database administrator could.
  void Sql(const std::string& sql) { ASSERT_OK(server_->Sql(dbname_, sql)); }

  std::string IdLiteral(const vault::RequestContext& user) {
    StatusOr<vault::RecordId> id = vault::ComputeRecordId(*hsm_, user.tenant, user.user);
    EXPECT_OK(id);
    if (!id.ok()) return "NULL";
    return "'\\x" + HexEncode(*id) + "'::bytea";
  }

  PostgresServer* server_ = nullptr;
  std::string dbname_;
  PostgresRecordStore::Options options_;
  ScopedTempDir dir_;
  std::unique_ptr<SoftwareHsm> hsm_;
  std::unique_ptr<PostgresRecordStore> store_;
  std::unique_ptr<Realm> realm_;
};

TEST_F(RealmPostgresTest, GuessesAreCountedAcrossRestartsUntilExhaustedAndRecoveryWorks) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK(realm_->Ready());
  VaultTestClient alice_client(kTestRealmId);
  VaultTestClient bob_client(kTestRealmId);
  const auto alice = User("alice");
  const auto bob = User("bob");
  testing::Register(*realm_, alice_client, alice, "1234", 5);
  testing::Register(*realm_, bob_client, bob, "2468", 3);
  // Each partition of the realm has its own head row.
  ASSERT_OK_AND_ASSIGN(std::string heads,
                       server_->Sql(dbname_, "SELECT count(*) FROM partition_heads;"));
  EXPECT_EQ(heads, std::to_string(realm_->Stats().partitions) + "\n");

  // Bob spends every guess on wrong PINs, across a restart.
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, bob_client.Recover2("0000"))).guess_count, 1);
  Stop();
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK(realm_->Ready());
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, bob_client.Recover2("1111"))).guess_count, 2);
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, bob_client.Recover2("2222"))).guess_count, 3);
  // Exhausted: even the right PIN gets nothing, now and after a restart.
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, bob_client.Recover2("2468"))).status,
            Recover2Response::Status::kNoGuesses);
  Stop();
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK(realm_->Ready());
  EXPECT_EQ(As<Recover2Response>(realm_->Handle(bob, bob_client.Recover2("2468"))).status,
            Recover2Response::Status::kNoGuesses);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(bob, Recover1Request{})).status,
            Recover1Response::Status::kNoGuesses);

  // Alice's wrong guesses are counted across restarts too; then she recovers.
  for (int restart = 0; restart < 2; ++restart) {
    EXPECT_EQ(
        As<Recover2Response>(realm_->Handle(alice, alice_client.Recover2("0000"))).guess_count,
        restart + 1);
    Stop();
    ASSERT_NO_FATAL_FAILURE(Start());
    ASSERT_OK(realm_->Ready());
  }
  auto r2 = As<Recover2Response>(realm_->Handle(alice, alice_client.Recover2("1234")));
  EXPECT_EQ(r2.status, Recover2Response::Status::kOk);
  EXPECT_EQ(r2.guess_count, 3);
  ASSERT_OK_AND_ASSIGN(std::optional<protocol::UnlockKeyTag> tag, alice_client.FinishRecover2(r2));
  ASSERT_TRUE(tag.has_value());
  EXPECT_EQ(As<Recover3Response>(realm_->Handle(alice, alice_client.Recover3(*tag))).status,
            Recover3Response::Status::kOk);
  // A successful recovery resets the count, and that is durable as well.
  Stop();
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK(realm_->Ready());
  ASSERT_OK_AND_ASSIGN(vault::RecordSummary summary, realm_->Inspect(alice));
  EXPECT_EQ(summary.guess_count, 0);
  ASSERT_OK_AND_ASSIGN(summary, realm_->Inspect(bob));
  EXPECT_EQ(summary.state, vault::RecordState::kNoGuesses);
}

// Save the rows of epoch N with SQL, spend K guesses, put the old rows back with SQL and
// restart: the realm refuses to serve instead of handing out K fresh guesses.
TEST_F(RealmPostgresTest, RowsRolledBackWithSqlAreRefused) {
  ASSERT_NO_FATAL_FAILURE(Start());
  VaultTestClient client(kTestRealmId);
  const auto user = User("victim");
  testing::Register(*realm_, client, user, "1234", 6);
  As<Recover2Response>(realm_->Handle(user, client.Recover2("0000")));
  const uint64_t snapshot_epoch = realm_->Stats().epoch;
  Sql("CREATE TABLE saved_records AS SELECT * FROM records;"
      "CREATE TABLE saved_heads AS SELECT * FROM partition_heads;"
      "CREATE TABLE saved_nodes AS SELECT * FROM tree_nodes;");
  constexpr int kSpent = 4;
  for (int i = 0; i < kSpent; ++i) {
    EXPECT_EQ(As<Recover2Response>(realm_->Handle(user, client.Recover2("0000"))).guess_count,
              i + 2);
  }
  const uint64_t anchored_epoch = realm_->Stats().epoch;
  ASSERT_EQ(anchored_epoch, snapshot_epoch + kSpent);
  Stop();
  Sql("BEGIN;"
      "DELETE FROM records; INSERT INTO records SELECT * FROM saved_records;"
      "DELETE FROM partition_heads; INSERT INTO partition_heads SELECT * FROM saved_heads;"
      "DELETE FROM tree_nodes; INSERT INTO tree_nodes SELECT * FROM saved_nodes;"
      "COMMIT;");

  for (int restart = 0; restart < 2; ++restart) {
    ASSERT_NO_FATAL_FAILURE(Start());
    // The refusal names the rolled-back tree's epochs: storage kSpent commits behind the
    // anchor (the victim's tree; with several partitions, the others are fine).
    Status ready = realm_->Ready();
    EXPECT_THAT(ready, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("refusing to serve")));
    std::smatch epochs;
    static const std::regex kEpochs(
        "storage is at epoch ([0-9]+) but the HSM anchor is at epoch ([0-9]+)");
    ASSERT_TRUE(std::regex_search(ready.message(), epochs, kEpochs)) << ready;
    EXPECT_EQ(std::stoull(epochs[2].str()) - std::stoull(epochs[1].str()), uint64_t{kSpent})
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

TEST_F(RealmPostgresTest, RowsTamperedWithSqlAreDataLoss) {
  ASSERT_NO_FATAL_FAILURE(Start());
  VaultTestClient a(kTestRealmId), b(kTestRealmId);
  const auto alice = User("alice");
  const auto bob = User("bob");
  testing::Register(*realm_, a, alice, "1234", 5);
  testing::Register(*realm_, b, bob, "1234", 5);
  As<Recover2Response>(realm_->Handle(alice, a.Recover2("0000")));
  const std::string alice_id = IdLiteral(alice);
  const std::string bob_id = IdLiteral(bob);
  Sql("CREATE TABLE saved AS SELECT * FROM records;");
  const std::string restore = "DELETE FROM records; INSERT INTO records SELECT * FROM saved;";

  // Flip the bits of one byte of the sealed blob.
  Sql("UPDATE records SET sealed = set_byte(sealed, 40, get_byte(sealed, 40) # 255) "
      "WHERE id = " +
      alice_id + ";");
  EXPECT_THAT(realm_->Handle(alice, a.Recover2("1234")), StatusIs(StatusCode::kDataLoss));
  Sql(restore);
  EXPECT_EQ(As<Recover1Response>(realm_->Handle(alice, Recover1Request{})).status,
            Recover1Response::Status::kOk);

  // Give alice bob's row (bob never spent a guess).
  Sql("UPDATE records AS r SET version = s.version, record_hash = s.record_hash, "
      "sealed = s.sealed FROM saved AS s WHERE s.id = " +
      bob_id + " AND r.id = " + alice_id + ";");
  EXPECT_THAT(realm_->Handle(alice, a.Recover2("1234")), StatusIs(StatusCode::kDataLoss));
  Sql(restore);

  // Drop alice's row.
  Sql("DELETE FROM records WHERE id = " + alice_id + ";");
  EXPECT_THAT(realm_->Handle(alice, Recover1Request{}), StatusIs(StatusCode::kDataLoss));
  Sql(restore);

  EXPECT_EQ(realm_->Inspect(alice)->guess_count, 1);
  EXPECT_EQ(realm_->Inspect(bob)->guess_count, 0);
}

}  // namespace
}  // namespace pinvault::backup
