// The RecordStore contract suite (tests/testing/record_store_contract.h) on every store in the
// tree: the in-memory test store and the SQLite store.
#include "tests/testing/record_store_contract.h"

#include <memory>
#include <utility>

#include "backup/store/sqlite_record_store.h"
#include "tests/testing/memory_record_store.h"
#include "tests/testing/vault_test_util.h"

namespace pinvault::testing {
namespace {

// MemoryStoreFactory opens one MemoryRecordStore; it cannot reopen (nothing is durable) but
// injects unknown-outcome commits through MemoryRecordStore::SetNextCommitFault.
class MemoryStoreFactory final : public RecordStoreFactory {
 public:
  StatusOr<std::unique_ptr<vault::RecordStore>> Open() override {
    return std::unique_ptr<vault::RecordStore>(std::make_unique<MemoryRecordStore>());
  }

  bool ArmUnknownOutcome(vault::RecordStore& store, CommitLands lands) override {
    // Every store this factory opens is a MemoryRecordStore.
    static_cast<MemoryRecordStore&>(store).SetNextCommitFault(
        lands == CommitLands::kYes ? MemoryRecordStore::CommitFault::kFailAfterApply
                                   : MemoryRecordStore::CommitFault::kFailBeforeApply);
    return true;
  }
};

// SqliteStoreFactory opens a SqliteRecordStore in its own temporary directory, again on the
// same file after a close.
class SqliteStoreFactory final : public RecordStoreFactory {
 public:
  StatusOr<std::unique_ptr<vault::RecordStore>> Open() override {
    ASSIGN_OR_RETURN(std::unique_ptr<backup::SqliteRecordStore> store,
                     backup::SqliteRecordStore::Open(dir_.path()));
    return std::unique_ptr<vault::RecordStore>(std::move(store));
  }

  bool CanReopen() const override { return true; }

 private:
  ScopedTempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(
    AllStores, RecordStoreContractTest,
    ::testing::Values(
        RecordStoreImplementation{"Memory", [] { return std::make_unique<MemoryStoreFactory>(); }},
        RecordStoreImplementation{"Sqlite", [] { return std::make_unique<SqliteStoreFactory>(); }}),
    RecordStoreImplementationName);

}  // namespace
}  // namespace pinvault::testing
