// record_store_contract.h: the contract suite of vault::RecordStore (vault/record_store.h),
// run against every implementation in the tree, as LevelDB runs its env tests against every
// Env.
//
// An implementation joins with a RecordStoreFactory and one line in a test file:
//
//   INSTANTIATE_TEST_SUITE_P(Postgres, RecordStoreContractTest,
//                            ::testing::Values(RecordStoreImplementation{
//                                "Postgres", [] { return std::make_unique<PgFactory>(); }}),
//                            RecordStoreImplementationName);
//
// The suite makes a fresh factory (hence fresh, empty storage) for every test. Optional
// capabilities (reopening durable storage, injecting an unknown-outcome commit) are methods of
// the factory; a case that needs one the implementation lacks is skipped and says why.
//
// This header defines the TEST_P cases: include it from one .cc file per test binary
// (tests/integration/record_store_contract_test.cc).
#ifndef PINVAULT_TESTS_TESTING_RECORD_STORE_CONTRACT_H_
#define PINVAULT_TESTS_TESTING_RECORD_STORE_CONTRACT_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/testing/vault_test_util.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::testing {

// CommitLands says whether a commit reported as "outcome unknown" really reached storage.
enum class CommitLands { kNo, kYes };

// RecordStoreFactory opens the stores of one implementation for the contract suite. The suite
// makes one factory per test, so a factory may own per-test state (a temporary directory, a
// database schema); it outlives every store it opens. Not used from several threads.
class RecordStoreFactory {
 public:
  virtual ~RecordStoreFactory() = default;

  // Open returns a store on this factory's storage: empty on the first call; on later calls,
  // which the suite makes only when CanReopen() is true and after destroying the previous
  // store, the same storage opened again. Any error fails the test.
  virtual StatusOr<std::unique_ptr<vault::RecordStore>> Open() = 0;

  // CanReopen is true for durable implementations: a store opened again after a close must
  // hold every acknowledged commit. SqliteRecordStore can; MemoryRecordStore cannot.
  virtual bool CanReopen() const { return false; }

  // ArmUnknownOutcome makes the next Commit on `store` (opened by this factory) return
  // UNAVAILABLE as if its final sync had failed, with the batch applied in full if `lands` is
  // kYes and not at all if kNo. Returns false if the implementation cannot inject this fault
  // (the cases that need it are then skipped). testing::MemoryRecordStore can
  // (MemoryRecordStore::CommitFault) and PostgresRecordStore can (a proxy cuts the connection
  // around COMMIT, tests/testing/postgres_server.h); SqliteRecordStore cannot (it would need a
  // SQLite VFS that fails the final sync).
  virtual bool ArmUnknownOutcome(vault::RecordStore& /*store*/, CommitLands /*lands*/) {
    return false;
  }
};

// RecordStoreImplementation is the suite's parameter: a name for test names (letters, digits
// and '_' only) and a function that makes a fresh factory for each test.
struct RecordStoreImplementation {
  std::string name;
  std::function<std::unique_ptr<RecordStoreFactory>()> make_factory;
};

// PrintTo prints an implementation as its name (in gtest's listings and failure messages).
inline void PrintTo(const RecordStoreImplementation& implementation, std::ostream* os) {
  *os << implementation.name;
}

// RecordStoreImplementationName names instantiations after the implementation; pass it as
// the last argument of INSTANTIATE_TEST_SUITE_P.
inline std::string RecordStoreImplementationName(
    const ::testing::TestParamInfo<RecordStoreImplementation>& info) {
  return info.param.name;
}

// StoreContents is everything a store holds, as its read methods report it.
struct StoreContents {
  std::optional<vault::StoreHead> head;
  std::vector<vault::TreeNode> nodes;        // ascending by index
  std::vector<vault::StoredRecord> records;  // ascending by id
  friend bool operator==(const StoreContents&, const StoreContents&) = default;
};

// PrintTo summarises contents (epoch, node indices, row id prefixes and versions).
inline void PrintTo(const StoreContents& contents, std::ostream* os) {
  *os << "{head: ";
  if (contents.head) {
    *os << "epoch " << contents.head->epoch;
  } else {
    *os << "none";
  }
  *os << ", nodes:";
  for (const auto& node : contents.nodes) *os << " " << node.index;
  *os << ", rows:";
  for (const auto& record : contents.records) {
    *os << " " << HexEncode(ByteView(record.id.data(), 2)) << "..@v" << record.version;
  }
  *os << "}";
}

// RecordStoreContractTest is the fixture of the suite: a fresh factory and store per test.
class RecordStoreContractTest : public ::testing::TestWithParam<RecordStoreImplementation> {
 protected:
  void SetUp() override {
    factory_ = GetParam().make_factory();
    ASSERT_NE(factory_, nullptr);
    ASSERT_OK_AND_ASSIGN(store_, factory_->Open());
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();
    factory_.reset();
  }

  // store is the store under test; factory the factory that opened it.
  vault::RecordStore& store() { return *store_; }
  RecordStoreFactory& factory() { return *factory_; }

  // ReopenStore destroys the store and opens the same storage again (CanReopen() only).
  void ReopenStore() {
    store_.reset();
    ASSERT_OK_AND_ASSIGN(store_, factory_->Open());
    ASSERT_NE(store_, nullptr);
  }

  // Fill returns a digest with every byte `value`.
  static vault::Digest Fill(uint8_t value) {
    vault::Digest digest;
    digest.fill(value);
    return digest;
  }

  // Row returns a row whose hash and sealed bytes are derived from `tag` (the sealed bytes
  // include 0x00 and 0xff and vary in length, so that they are kept verbatim).
  static vault::StoredRecord Row(const vault::RecordId& id, uint64_t version, uint8_t tag) {
    vault::StoredRecord record;
    record.id = id;
    record.version = version;
    record.record_hash = Fill(tag);
    record.sealed = Bytes(40 + tag % 16, tag);
    record.sealed.front() = 0x00;
    record.sealed.back() = 0xff;
    return record;
  }

  // Head returns the head of `epoch` with a certificate derived from it.
  static vault::StoreHead Head(uint64_t epoch) {
    return vault::StoreHead{epoch, Bytes{0xce, static_cast<uint8_t>(epoch), 0x00, 0xff}};
  }

  // Batch returns an empty batch from `expected` to the head of `epoch`.
  static vault::CommitBatch Batch(std::optional<uint64_t> expected, uint64_t epoch) {
    vault::CommitBatch batch;
    batch.expected_epoch = expected;
    batch.head = Head(epoch);
    return batch;
  }

  // ReadContents reads everything: ReadTree, then a scan of the whole id space and ReadRecord
  // of every id it lists.
  StatusOr<StoreContents> ReadContents() {
    StoreContents contents;
    ASSIGN_OR_RETURN(vault::TreeSnapshot tree, store_->ReadTree(0));
    contents.head = std::move(tree.head);
    contents.nodes = std::move(tree.nodes);
    vault::RecordId lo;
    lo.fill(0x00);
    vault::RecordId hi;
    hi.fill(0xff);
    ASSIGN_OR_RETURN(vault::BucketScan scan, store_->ScanBucket(lo, hi, lo));
    for (const auto& entry : scan.entries) {
      ASSIGN_OR_RETURN(std::optional<vault::StoredRecord> record, store_->ReadRecord(entry.id));
      if (!record) return InternalError("a scanned row is missing from ReadRecord");
      contents.records.push_back(std::move(*record));
    }
    return contents;
  }

  // CommitTwoRows commits, in two batches, the state most cases start from: head epoch 2,
  // rows kA at version 1 and kB at version 2, nodes 1 and 2.
  void CommitTwoRows() {
    vault::CommitBatch first = Batch(std::nullopt, 1);
    first.records = {vault::RecordPut{Row(kA, 1, 0xa1), 0}, vault::RecordPut{Row(kB, 1, 0xb1), 0}};
    first.nodes = {vault::TreeNode{1, 1, Fill(0x11)}, vault::TreeNode{2, 2, Fill(0x22)}};
    ASSERT_OK(store_->Commit(first));
    vault::CommitBatch second = Batch(1, 2);
    second.records = {vault::RecordPut{Row(kB, 2, 0xb2), 1}};
    ASSERT_OK(store_->Commit(second));
  }

  // ValidBatchAfterTwoRows returns a batch that commits on CommitTwoRows' state: a new row kC,
  // kA updated to version 2, node 1 replaced, node 3 inserted, node 2 erased, head epoch 3.
  // Cases append a put whose compare-and-swap fails, or change its expected epoch.
  static vault::CommitBatch ValidBatchAfterTwoRows() {
    vault::CommitBatch batch = Batch(2, 3);
    batch.records = {vault::RecordPut{Row(kC, 1, 0xc1), 0}, vault::RecordPut{Row(kA, 2, 0xa2), 1}};
    batch.nodes = {vault::TreeNode{1, 1, Fill(0x12)}, vault::TreeNode{3, 3, Fill(0x33)}};
    batch.erased_nodes = {2};
    return batch;
  }

  // kA, kB, kC are record ids in ascending order, with first bytes on both sides of 0x80.
  static inline const vault::RecordId kA = IdWithPrefix(0x40, 0x00, 0x0a);
  static inline const vault::RecordId kB = IdWithPrefix(0x80, 0x00, 0x0b);
  static inline const vault::RecordId kC = IdWithPrefix(0xc0, 0x00, 0x0c);

 private:
  std::unique_ptr<RecordStoreFactory> factory_;
  std::unique_ptr<vault::RecordStore> store_;
};

TEST_P(RecordStoreContractTest, FreshStoreHasNoHeadNodesOrRows) {
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, std::nullopt);
  EXPECT_THAT(tree.nodes, ::testing::IsEmpty());
  EXPECT_THAT(store().ReadRecord(kA), IsOkAndHolds(std::optional<vault::StoredRecord>()));
  vault::RecordId lo;
  lo.fill(0x00);
  vault::RecordId hi;
  hi.fill(0xff);
  ASSERT_OK_AND_ASSIGN(vault::BucketScan scan, store().ScanBucket(lo, hi, kA));
  EXPECT_THAT(scan.entries, ::testing::IsEmpty());
  EXPECT_EQ(scan.target, std::nullopt);
}

TEST_P(RecordStoreContractTest, FirstCommitWithoutExpectedEpochSetsTheHead) {
  vault::CommitBatch batch = Batch(std::nullopt, 7);
  batch.records = {vault::RecordPut{Row(kA, 1, 0xa1), 0}};
  batch.nodes = {vault::TreeNode{4, 9, Fill(0x44)}};
  ASSERT_OK(store().Commit(batch));
  ASSERT_OK_AND_ASSIGN(StoreContents contents, ReadContents());
  EXPECT_EQ(contents, (StoreContents{Head(7), {batch.nodes[0]}, {Row(kA, 1, 0xa1)}}));
}

TEST_P(RecordStoreContractTest, FirstCommitExpectingAnEpochIsAbortedAndChangesNothing) {
  vault::CommitBatch batch = Batch(0, 1);
  batch.records = {vault::RecordPut{Row(kA, 1, 0xa1), 0}};
  batch.nodes = {vault::TreeNode{1, 1, Fill(0x11)}};
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(ReadContents(), IsOkAndHolds(StoreContents{}));
  // The store is still usable: the same batch without an expected epoch goes through.
  batch.expected_epoch = std::nullopt;
  ASSERT_OK(store().Commit(batch));
  EXPECT_THAT(store().ReadRecord(kA), IsOkAndHolds(std::optional(Row(kA, 1, 0xa1))));
}

TEST_P(RecordStoreContractTest, WrongExpectedEpochIsAbortedAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  for (uint64_t wrong : {uint64_t{0}, uint64_t{1}, uint64_t{3}, uint64_t{1} << 40}) {
    SCOPED_TRACE("expected epoch " + std::to_string(wrong));
    vault::CommitBatch batch = ValidBatchAfterTwoRows();
    batch.expected_epoch = wrong;
    EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
    EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
  }
  // The right epoch still commits after the refusals.
  ASSERT_OK(store().Commit(ValidBatchAfterTwoRows()));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(3));
}

TEST_P(RecordStoreContractTest, NoExpectedEpochOnAStoreWithAHeadIsAborted) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  batch.expected_epoch = std::nullopt;
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
}

TEST_P(RecordStoreContractTest, MatchingExpectedEpochAdvancesTheHeadEachTime) {
  ASSERT_OK(store().Commit(Batch(std::nullopt, 1)));
  ASSERT_OK(store().Commit(Batch(1, 2)));
  ASSERT_OK(store().Commit(Batch(2, 10)));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(10));
  // Replaying an earlier commit is a stale epoch.
  EXPECT_THAT(store().Commit(Batch(2, 10)), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(store().Commit(Batch(1, 2)), StatusIs(StatusCode::kAborted));
  ASSERT_OK(store().Commit(Batch(10, 11)));
  ASSERT_OK_AND_ASSIGN(tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(11));
}

TEST_P(RecordStoreContractTest, NewRowWhereOneExistsAbortsTheWholeBatch) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  batch.records.push_back(vault::RecordPut{Row(kB, 3, 0xb3), 0});  // kB is at version 2
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
}

TEST_P(RecordStoreContractTest, StaleRowVersionAbortsTheWholeBatch) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  for (uint64_t stale : {uint64_t{1}, uint64_t{3}}) {  // kB is at version 2
    SCOPED_TRACE("expected version " + std::to_string(stale));
    vault::CommitBatch batch = ValidBatchAfterTwoRows();
    batch.records.push_back(vault::RecordPut{Row(kB, 3, 0xb3), stale});
    EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
    EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
  }
  // The same batch with the current version applies every part of it.
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  batch.records.push_back(vault::RecordPut{Row(kB, 3, 0xb3), 2});
  ASSERT_OK(store().Commit(batch));
  EXPECT_THAT(ReadContents(),
              IsOkAndHolds(StoreContents{
                  Head(3),
                  {vault::TreeNode{1, 1, Fill(0x12)}, vault::TreeNode{3, 3, Fill(0x33)}},
                  {Row(kA, 2, 0xa2), Row(kB, 3, 0xb3), Row(kC, 1, 0xc1)}}));
}

TEST_P(RecordStoreContractTest, ExpectedVersionOfAnAbsentRowAbortsTheWholeBatch) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  const vault::RecordId absent = IdWithPrefix(0xd0, 0x00, 0x0d);
  batch.records.push_back(vault::RecordPut{Row(absent, 2, 0xd2), 1});
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
}

TEST_P(RecordStoreContractTest, MatchingRowVersionReplacesTheRow) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  vault::CommitBatch batch = Batch(2, 3);
  vault::StoredRecord replacement = Row(kB, 9, 0xb9);  // versions need not be consecutive
  batch.records = {vault::RecordPut{replacement, 2}};
  ASSERT_OK(store().Commit(batch));
  EXPECT_THAT(store().ReadRecord(kB), IsOkAndHolds(std::optional(replacement)));
  EXPECT_THAT(store().ReadRecord(kA), IsOkAndHolds(std::optional(Row(kA, 1, 0xa1))));
}

TEST_P(RecordStoreContractTest, ScanBucketReturnsAscendingEntriesInTheInclusiveRange) {
  const vault::RecordId lo = IdWithPrefix(0x20, 0x01, 0x00);
  const vault::RecordId hi = IdWithPrefix(0x20, 0xff, 0xff);
  // Rows on both bounds, inside (with bytes on both sides of 0x80, so that a signed
  // comparison would misorder them) and just outside, committed out of order.
  const std::vector<vault::RecordId> inside = {
      lo,
      IdWithPrefix(0x20, 0x01, 0x7f),
      IdWithPrefix(0x20, 0x01, 0x80),
      IdWithPrefix(0x20, 0x7f, 0xff),
      IdWithPrefix(0x20, 0x80, 0x00),
      hi,
  };
  const std::vector<vault::RecordId> outside = {
      IdWithPrefix(0x00, 0x00, 0x00),
      IdWithPrefix(0x20, 0x00, 0xff),
      IdWithPrefix(0x21, 0x00, 0x00),
      IdWithPrefix(0xff, 0xff, 0xff),
  };
  vault::CommitBatch batch = Batch(std::nullopt, 1);
  for (size_t i = inside.size(); i-- > 0;) {
    batch.records.push_back(vault::RecordPut{Row(inside[i], 1, static_cast<uint8_t>(i + 1)), 0});
  }
  for (size_t i = 0; i < outside.size(); ++i) {
    batch.records.push_back(
        vault::RecordPut{Row(outside[i], 1, static_cast<uint8_t>(0x80 + i)), 0});
  }
  ASSERT_OK(store().Commit(batch));

  std::vector<vault::BucketEntry> expected;
  for (size_t i = 0; i < inside.size(); ++i) {
    expected.push_back(vault::BucketEntry{inside[i], Fill(static_cast<uint8_t>(i + 1))});
  }
  ASSERT_OK_AND_ASSIGN(vault::BucketScan scan, store().ScanBucket(lo, hi, inside[2]));
  EXPECT_EQ(scan.entries, expected);
  EXPECT_EQ(scan.target, std::optional(Row(inside[2], 1, 3)));

  // A target on either bound is returned too.
  ASSERT_OK_AND_ASSIGN(scan, store().ScanBucket(lo, hi, hi));
  EXPECT_EQ(scan.target, std::optional(Row(hi, 1, 6)));
  ASSERT_OK_AND_ASSIGN(scan, store().ScanBucket(lo, hi, lo));
  EXPECT_EQ(scan.target, std::optional(Row(lo, 1, 1)));

  // A range of one id.
  ASSERT_OK_AND_ASSIGN(scan, store().ScanBucket(inside[3], inside[3], inside[3]));
  EXPECT_EQ(scan.entries, (std::vector<vault::BucketEntry>{expected[3]}));
  EXPECT_EQ(scan.target, std::optional(Row(inside[3], 1, 4)));
}

TEST_P(RecordStoreContractTest, ScanBucketWithAnAbsentTargetReturnsEntriesAndNoTarget) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  const vault::RecordId lo = IdWithPrefix(0x40, 0x00, 0x00);
  const vault::RecordId hi = IdWithPrefix(0x80, 0xff, 0xff);
  ASSERT_OK_AND_ASSIGN(vault::BucketScan scan,
                       store().ScanBucket(lo, hi, IdWithPrefix(0x60, 0x00, 0x00)));
  EXPECT_EQ(scan.entries, (std::vector<vault::BucketEntry>{{kA, Fill(0xa1)}, {kB, Fill(0xb2)}}));
  EXPECT_EQ(scan.target, std::nullopt);
  // A range holding no rows.
  ASSERT_OK_AND_ASSIGN(
      scan, store().ScanBucket(IdWithPrefix(0x50, 0x00, 0x00), IdWithPrefix(0x5f, 0xff, 0xff),
                               IdWithPrefix(0x50, 0x00, 0x00)));
  EXPECT_THAT(scan.entries, ::testing::IsEmpty());
  EXPECT_EQ(scan.target, std::nullopt);
}

TEST_P(RecordStoreContractTest, ReadRecordReturnsTheExactRowOrNothing) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  EXPECT_THAT(store().ReadRecord(kA), IsOkAndHolds(std::optional(Row(kA, 1, 0xa1))));
  EXPECT_THAT(store().ReadRecord(kB), IsOkAndHolds(std::optional(Row(kB, 2, 0xb2))));
  EXPECT_THAT(store().ReadRecord(kC), IsOkAndHolds(std::optional<vault::StoredRecord>()));
  // An id that differs from a stored one in its last byte only.
  vault::RecordId near_a = kA;
  near_a.back() ^= 0x01;
  EXPECT_THAT(store().ReadRecord(near_a), IsOkAndHolds(std::optional<vault::StoredRecord>()));
}

TEST_P(RecordStoreContractTest, NodesAreInsertedReplacedAndErased) {
  vault::CommitBatch first = Batch(std::nullopt, 1);
  // Out of order, with the extremes of index and kind.
  first.nodes = {vault::TreeNode{5, 0x05, Fill(0x55)}, vault::TreeNode{0, 0x00, Fill(0x00)},
                 vault::TreeNode{0xffffffff, 0xff, Fill(0xff)},
                 vault::TreeNode{3, 0x03, Fill(0x33)}};
  ASSERT_OK(store().Commit(first));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.nodes, (std::vector<vault::TreeNode>{first.nodes[1], first.nodes[3],
                                                      first.nodes[0], first.nodes[2]}));

  vault::CommitBatch second = Batch(1, 2);
  second.nodes = {vault::TreeNode{3, 0x13, Fill(0x34)}, vault::TreeNode{7, 0x07, Fill(0x77)}};
  second.erased_nodes = {0, 0xffffffff, 42};  // 42 was never there: ignored
  ASSERT_OK(store().Commit(second));
  ASSERT_OK_AND_ASSIGN(tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(2));
  EXPECT_EQ(tree.nodes,
            (std::vector<vault::TreeNode>{second.nodes[0], first.nodes[0], second.nodes[1]}));

  // A batch that only erases absent nodes still commits its head.
  vault::CommitBatch third = Batch(2, 3);
  third.erased_nodes = {1, 2};
  ASSERT_OK(store().Commit(third));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot after, store().ReadTree(0));
  EXPECT_EQ(after.head, Head(3));
  EXPECT_EQ(after.nodes, tree.nodes);
}

TEST_P(RecordStoreContractTest, ReadersSeeEachCommitWholeOrNotAtAll) {
  // Commit n writes head epoch n, nodes 0..3 and rows kA, kB, kC all stamped with n; a reader
  // running alongside must never see two stamps in one ReadTree or one ScanBucket. The writer
  // waits for one more read before each commit, so that reads interleave with commits even on
  // a store that commits faster than a thread starts (no sleeps, no timing margins).
  constexpr uint64_t kCommits = 40;
  const vault::RecordId lo = IdWithPrefix(0x00, 0x00, 0x00);
  const vault::RecordId hi = IdWithPrefix(0xff, 0xff, 0xff);
  std::atomic<bool> done{false};
  std::atomic<bool> reader_stopped{false};
  std::atomic<int> reads{0};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done.load() && torn.load() == 0) {
      StatusOr<vault::TreeSnapshot> tree = store().ReadTree(0);
      EXPECT_THAT(tree, IsOk());
      if (tree.ok() && tree->head) {
        const uint8_t stamp = static_cast<uint8_t>(tree->head->epoch);
        bool whole = tree->nodes.size() == 4;
        for (const auto& node : tree->nodes) whole = whole && node.hash == Fill(stamp);
        if (!whole) {
          torn.fetch_add(1);
          ADD_FAILURE() << "ReadTree at epoch " << tree->head->epoch << " has "
                        << tree->nodes.size() << " nodes, not all of that commit";
        }
      }
      StatusOr<vault::BucketScan> scan = store().ScanBucket(lo, hi, kB);
      EXPECT_THAT(scan, IsOk());
      if (scan.ok() && !scan->entries.empty()) {
        const vault::Digest stamp = scan->entries.front().record_hash;
        bool whole = scan->entries.size() == 3 && scan->target.has_value() &&
                     scan->target->record_hash == stamp &&
                     scan->target->version == static_cast<uint64_t>(stamp[0]);
        for (const auto& entry : scan->entries) whole = whole && entry.record_hash == stamp;
        if (!whole) {
          torn.fetch_add(1);
          ADD_FAILURE() << "ScanBucket saw rows of more than one commit";
        }
      }
      reads.fetch_add(1);
    }
    reader_stopped = true;
  });
  // wait_for_a_read spins until the reader finishes one more read (or has stopped).
  auto wait_for_a_read = [&] {
    const int from = reads.load();
    while (reads.load() == from && !reader_stopped.load()) std::this_thread::yield();
  };
  for (uint64_t n = 1; n <= kCommits; ++n) {
    wait_for_a_read();
    vault::CommitBatch batch = Batch(n == 1 ? std::nullopt : std::optional(n - 1), n);
    const uint8_t stamp = static_cast<uint8_t>(n);
    for (const auto& id : {kA, kB, kC}) {
      batch.records.push_back(vault::RecordPut{Row(id, n, stamp), n - 1});
    }
    for (uint32_t index = 0; index < 4; ++index) {
      batch.nodes.push_back(vault::TreeNode{index, 1, Fill(stamp)});
    }
    Status status = store().Commit(batch);
    EXPECT_THAT(status, IsOk());
    if (!status.ok()) break;
  }
  wait_for_a_read();
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), static_cast<int>(kCommits));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(kCommits));
}

TEST_P(RecordStoreContractTest, ReopenKeepsEveryAcknowledgedCommit) {
  if (!factory().CanReopen()) {
    GTEST_SKIP() << GetParam().name << " has no durable storage to reopen";
  }
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK(store().Commit(ValidBatchAfterTwoRows()));
  // A refused commit before the close must not appear after it.
  vault::CommitBatch refused = Batch(3, 4);
  refused.records = {vault::RecordPut{Row(kB, 3, 0xb3), 1}};
  EXPECT_THAT(store().Commit(refused), StatusIs(StatusCode::kAborted));
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  EXPECT_EQ(before,
            (StoreContents{Head(3),
                           {vault::TreeNode{1, 1, Fill(0x12)}, vault::TreeNode{3, 3, Fill(0x33)}},
                           {Row(kA, 2, 0xa2), Row(kB, 2, 0xb2), Row(kC, 1, 0xc1)}}));

  ASSERT_NO_FATAL_FAILURE(ReopenStore());
  EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
  // The reopened store goes on from the same head, with the same compare-and-swap checks.
  EXPECT_THAT(store().Commit(Batch(std::nullopt, 4)), StatusIs(StatusCode::kAborted));
  vault::CommitBatch next = Batch(3, 4);
  next.records = {vault::RecordPut{Row(kB, 3, 0xb3), 2}};
  ASSERT_OK(store().Commit(next));
  ASSERT_NO_FATAL_FAILURE(ReopenStore());
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(4));
  EXPECT_THAT(store().ReadRecord(kB), IsOkAndHolds(std::optional(Row(kB, 3, 0xb3))));
}

TEST_P(RecordStoreContractTest, UnknownOutcomeCommitThatLandedIsUnavailableAndTheHeadShowsIt) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  if (!factory().ArmUnknownOutcome(store(), CommitLands::kYes)) {
    GTEST_SKIP() << GetParam().name << " cannot inject an unknown-outcome commit";
  }
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kUnavailable));
  // Re-reading the head tells the caller that the batch is in, whole.
  EXPECT_THAT(ReadContents(),
              IsOkAndHolds(StoreContents{
                  Head(3),
                  {vault::TreeNode{1, 1, Fill(0x12)}, vault::TreeNode{3, 3, Fill(0x33)}},
                  {Row(kA, 2, 0xa2), Row(kB, 2, 0xb2), Row(kC, 1, 0xc1)}}));
  // Retrying it is refused; the caller goes on from the head it re-read.
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kAborted));
  ASSERT_OK(store().Commit(Batch(3, 4)));
}

TEST_P(RecordStoreContractTest, UnknownOutcomeCommitThatDidNotLandIsUnavailableAndTheHeadShowsIt) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoRows());
  ASSERT_OK_AND_ASSIGN(StoreContents before, ReadContents());
  if (!factory().ArmUnknownOutcome(store(), CommitLands::kNo)) {
    GTEST_SKIP() << GetParam().name << " cannot inject an unknown-outcome commit";
  }
  vault::CommitBatch batch = ValidBatchAfterTwoRows();
  EXPECT_THAT(store().Commit(batch), StatusIs(StatusCode::kUnavailable));
  // Re-reading the head tells the caller that nothing of the batch is in.
  EXPECT_THAT(ReadContents(), IsOkAndHolds(before));
  // Retrying the same batch from the same head succeeds.
  ASSERT_OK(store().Commit(batch));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot tree, store().ReadTree(0));
  EXPECT_EQ(tree.head, Head(3));
}

// Partitions: heads and tree nodes are per partition (each with its own epoch CAS); records
// are shared by id.
TEST_P(RecordStoreContractTest, PartitionsKeepTheirOwnHeadsAndNodesAndShareRecords) {
  vault::CommitBatch five = Batch(std::nullopt, 1);
  five.partition = 5;
  five.records = {vault::RecordPut{Row(kA, 1, 0xa1), 0}};
  five.nodes = {vault::TreeNode{3, 1, Fill(0x53)}};
  ASSERT_OK(store().Commit(five));
  // Partition 0 is still fresh: no head, no nodes, and its first commit expects no head.
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot zero, store().ReadTree(0));
  EXPECT_FALSE(zero.head.has_value());
  EXPECT_TRUE(zero.nodes.empty());
  EXPECT_THAT(store().Commit(Batch(1, 2)), StatusIs(StatusCode::kAborted));
  vault::CommitBatch first_zero = Batch(std::nullopt, 7);
  first_zero.nodes = {vault::TreeNode{3, 2, Fill(0x03)}};
  ASSERT_OK(store().Commit(first_zero));
  // Same node index, different partitions, different values.
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot after_five, store().ReadTree(5));
  ASSERT_TRUE(after_five.head.has_value());
  EXPECT_EQ(*after_five.head, Head(1));
  ASSERT_EQ(after_five.nodes.size(), 1u);
  EXPECT_EQ(after_five.nodes[0].hash, Fill(0x53));
  ASSERT_OK_AND_ASSIGN(vault::TreeSnapshot after_zero, store().ReadTree(0));
  ASSERT_EQ(after_zero.nodes.size(), 1u);
  EXPECT_EQ(after_zero.nodes[0].hash, Fill(0x03));
  // Records are one table: a row partition 5 wrote is seen (and version-checked) by id.
  EXPECT_THAT(store().ReadRecord(kA), IsOkAndHolds(std::optional(Row(kA, 1, 0xa1))));
  vault::CommitBatch stale = Batch(7, 8);
  stale.records = {vault::RecordPut{Row(kA, 1, 0xa2), 0}};
  EXPECT_THAT(store().Commit(stale), StatusIs(StatusCode::kAborted));
  // Erasing a node of one partition leaves the other's.
  vault::CommitBatch erase = Batch(1, 2);
  erase.partition = 5;
  erase.erased_nodes = {3};
  ASSERT_OK(store().Commit(erase));
  EXPECT_TRUE(store().ReadTree(5)->nodes.empty());
  EXPECT_EQ(store().ReadTree(0)->nodes.size(), 1u);
}

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_RECORD_STORE_CONTRACT_H_
