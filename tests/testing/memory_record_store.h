// MemoryRecordStore: an in-memory RecordStore (vault/record_store.h) for tests, with the
// powers of a hostile storage administrator: flip bits, swap rows between users, replay an
// old row, drop a row, snapshot and restore everything (rollback), and fail commits.
//
// Thread-safety: all methods are safe for concurrent use.
#ifndef PINVAULT_TESTS_TESTING_MEMORY_RECORD_STORE_H_
#define PINVAULT_TESTS_TESTING_MEMORY_RECORD_STORE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "vault/record_store.h"

namespace pinvault::testing {

class MemoryRecordStore final : public vault::RecordStore {
 public:
  // PartitionState is one partition's head and tree nodes.
  struct PartitionState {
    std::optional<vault::StoreHead> head;
    std::map<uint32_t, vault::TreeNode> nodes;
  };
  // State is everything the store holds; Snapshot/Restore copy it wholesale.
  struct State {
    std::map<vault::RecordId, vault::StoredRecord> records;
    std::map<uint32_t, PartitionState> partitions;
    // head / nodes: partition `p`'s (created empty if absent).
    std::optional<vault::StoreHead>& head(uint32_t p = 0) { return partitions[p].head; }
    std::map<uint32_t, vault::TreeNode>& nodes(uint32_t p = 0) { return partitions[p].nodes; }
  };

  // CommitFault says what the next Commit does instead of succeeding normally.
  enum class CommitFault {
    kNone,
    kFailBeforeApply,  // returns UNAVAILABLE, nothing applied
    kFailAfterApply,   // applies the batch, then returns UNAVAILABLE (outcome unknown)
  };

  MemoryRecordStore() = default;

  StatusOr<vault::TreeSnapshot> ReadTree(uint32_t partition) override;
  StatusOr<vault::BucketScan> ScanBucket(const vault::RecordId& lo, const vault::RecordId& hi,
                                         const vault::RecordId& target) override;
  StatusOr<std::optional<vault::StoredRecord>> ReadRecord(const vault::RecordId& id) override;
  Status Commit(const vault::CommitBatch& batch) override;

  // ---- Test controls ----

  // Snapshot returns a copy of everything; Restore puts a snapshot back (a rollback).
  State Snapshot() const;
  void Restore(State state);

  // RecordIds lists the ids of all stored rows in order.
  std::vector<vault::RecordId> RecordIds() const;

  // MutateRecord applies `fn` to the row `id` in place; false if there is no such row.
  bool MutateRecord(const vault::RecordId& id, const std::function<void(vault::StoredRecord&)>& fn);

  // PutRaw stores `record` as is (e.g. replaying an older copy); DropRecord removes a row.
  void PutRaw(const vault::StoredRecord& record);
  bool DropRecord(const vault::RecordId& id);

  // SwapRecordContents exchanges everything but the ids of rows `a` and `b`.
  bool SwapRecordContents(const vault::RecordId& a, const vault::RecordId& b);

  // SetUnavailable makes every call fail with UNAVAILABLE while true.
  void SetUnavailable(bool unavailable);

  // SetNextCommitFault arms a fault for the next Commit only.
  void SetNextCommitFault(CommitFault fault);

  // PauseCommits(true) makes Commit block (before applying) until PauseCommits(false);
  // reads keep working. commits_waiting counts Commits blocked there.
  void PauseCommits(bool paused);
  int commits_waiting() const;
  // WaitForCommitsWaiting blocks until at least `n` Commits are blocked by PauseCommits;
  // false after a minute (a hang, not a timing margin).
  bool WaitForCommitsWaiting(int n);

  // SetScanHook has every ScanBucket call `hook(target)` after taking its snapshot and
  // before returning it (outside the store's lock, so the hook may let a commit land in
  // between: a slow disk's window, opened on purpose). Null removes it.
  void SetScanHook(std::function<void(const vault::RecordId& target)> hook);

  // commit_count returns how many Commits applied a batch.
  uint64_t commit_count() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable resume_cv_;
  std::condition_variable waiting_cv_;  // commits_waiting_ grew
  bool paused_ = false;
  int commits_waiting_ = 0;
  State state_;
  bool unavailable_ = false;
  CommitFault next_fault_ = CommitFault::kNone;
  uint64_t commit_count_ = 0;
  std::function<void(const vault::RecordId&)> scan_hook_;  // guarded by mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_MEMORY_RECORD_STORE_H_
