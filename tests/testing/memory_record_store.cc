#include "tests/testing/memory_record_store.h"

#include <set>
#include <string>
#include <utility>

namespace pinvault::testing {

using vault::BucketEntry;
using vault::BucketScan;
using vault::CommitBatch;
using vault::RecordId;
using vault::StoredRecord;
using vault::TreeSnapshot;

StatusOr<TreeSnapshot> MemoryRecordStore::ReadTree(uint32_t partition) {
  std::lock_guard lock(mu_);
  if (unavailable_) return UnavailableError("memory store switched off");
  TreeSnapshot snapshot;
  auto it = state_.partitions.find(partition);
  if (it == state_.partitions.end()) return snapshot;
  snapshot.head = it->second.head;
  for (const auto& [index, node] : it->second.nodes) snapshot.nodes.push_back(node);
  return snapshot;
}

StatusOr<BucketScan> MemoryRecordStore::ScanBucket(const RecordId& lo, const RecordId& hi,
                                                   const RecordId& target) {
  BucketScan scan;
  std::function<void(const RecordId&)> hook;
  {
    std::lock_guard lock(mu_);
    if (unavailable_) return UnavailableError("memory store switched off");
    for (auto it = state_.records.lower_bound(lo); it != state_.records.end() && it->first <= hi;
         ++it) {
      scan.entries.push_back(BucketEntry{it->first, it->second.record_hash});
      if (it->first == target) scan.target = it->second;
    }
    hook = scan_hook_;
  }
  if (hook) hook(target);
  return scan;
}

void MemoryRecordStore::SetScanHook(std::function<void(const RecordId& target)> hook) {
  std::lock_guard lock(mu_);
  scan_hook_ = std::move(hook);
}

StatusOr<std::optional<StoredRecord>> MemoryRecordStore::ReadRecord(const RecordId& id) {
  std::lock_guard lock(mu_);
  if (unavailable_) return UnavailableError("memory store switched off");
  auto it = state_.records.find(id);
  if (it == state_.records.end()) return std::optional<StoredRecord>();
  return std::optional<StoredRecord>(it->second);
}

Status MemoryRecordStore::Commit(const CommitBatch& batch) {
  if (batch.fence) return InvalidArgumentError("the memory store has no leases to fence on");
  std::unique_lock lock(mu_);
  if (paused_) {
    ++commits_waiting_;
    waiting_cv_.notify_all();
    resume_cv_.wait(lock, [&] { return !paused_; });
    --commits_waiting_;
  }
  if (unavailable_) return UnavailableError("memory store switched off");
  CommitFault fault = std::exchange(next_fault_, CommitFault::kNone);
  if (fault == CommitFault::kFailBeforeApply) return UnavailableError("injected commit failure");

  std::optional<vault::StoreHead>& head = state_.head(batch.partition);
  std::optional<uint64_t> current = head ? std::optional(head->epoch) : std::nullopt;
  if (current != batch.expected_epoch) return AbortedError("epoch compare-and-swap failed");
  std::set<RecordId> ids;
  for (const auto& put : batch.records) {
    if (!ids.insert(put.record.id).second) return InvalidArgumentError("duplicate record id");
    auto it = state_.records.find(put.record.id);
    uint64_t version = it == state_.records.end() ? 0 : it->second.version;
    if (version != put.expected_version) return AbortedError("version compare-and-swap failed");
  }
  for (const auto& put : batch.records) state_.records[put.record.id] = put.record;
  std::map<uint32_t, vault::TreeNode>& nodes = state_.nodes(batch.partition);
  for (const auto& node : batch.nodes) nodes[node.index] = node;
  for (uint32_t index : batch.erased_nodes) nodes.erase(index);
  head = batch.head;
  ++commit_count_;
  if (fault == CommitFault::kFailAfterApply) return UnavailableError("injected commit failure");
  return OkStatus();
}

MemoryRecordStore::State MemoryRecordStore::Snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

void MemoryRecordStore::Restore(State state) {
  std::lock_guard lock(mu_);
  state_ = std::move(state);
}

std::vector<RecordId> MemoryRecordStore::RecordIds() const {
  std::lock_guard lock(mu_);
  std::vector<RecordId> ids;
  for (const auto& [id, record] : state_.records) ids.push_back(id);
  return ids;
}

bool MemoryRecordStore::MutateRecord(const RecordId& id,
                                     const std::function<void(StoredRecord&)>& fn) {
  std::lock_guard lock(mu_);
  auto it = state_.records.find(id);
  if (it == state_.records.end()) return false;
  fn(it->second);
  it->second.id = id;
  return true;
}

void MemoryRecordStore::PutRaw(const StoredRecord& record) {
  std::lock_guard lock(mu_);
  state_.records[record.id] = record;
}

bool MemoryRecordStore::DropRecord(const RecordId& id) {
  std::lock_guard lock(mu_);
  return state_.records.erase(id) == 1;
}

bool MemoryRecordStore::SwapRecordContents(const RecordId& a, const RecordId& b) {
  std::lock_guard lock(mu_);
  auto ia = state_.records.find(a);
  auto ib = state_.records.find(b);
  if (ia == state_.records.end() || ib == state_.records.end()) return false;
  std::swap(ia->second, ib->second);
  ia->second.id = a;
  ib->second.id = b;
  return true;
}

void MemoryRecordStore::SetUnavailable(bool unavailable) {
  std::lock_guard lock(mu_);
  unavailable_ = unavailable;
}

void MemoryRecordStore::SetNextCommitFault(CommitFault fault) {
  std::lock_guard lock(mu_);
  next_fault_ = fault;
}

void MemoryRecordStore::PauseCommits(bool paused) {
  {
    std::lock_guard lock(mu_);
    paused_ = paused;
  }
  resume_cv_.notify_all();
}

bool MemoryRecordStore::WaitForCommitsWaiting(int n) {
  std::unique_lock lock(mu_);
  return waiting_cv_.wait_for(lock, std::chrono::minutes(1), [&] { return commits_waiting_ >= n; });
}

int MemoryRecordStore::commits_waiting() const {
  std::lock_guard lock(mu_);
  return commits_waiting_;
}

uint64_t MemoryRecordStore::commit_count() const {
  std::lock_guard lock(mu_);
  return commit_count_;
}

}  // namespace pinvault::testing
