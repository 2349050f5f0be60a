#include "vault/realm.h"

#include <algorithm>
#include <future>
#include <map>
#include <string>
#include <type_traits>
#include <utility>

#include "vault/commit_plan.h"
#include "vault/guess_rules.h"

namespace pinvault::vault {

using protocol::SecretsRequest;
using protocol::SecretsResponse;

namespace {

// kMaxReadAttempts bounds the retries of a record read that raced with commits.
constexpr int kMaxReadAttempts = 64;

}  // namespace

// ReadResult is a record read from storage and verified against the tree.
struct Realm::ReadResult {
  Record record;             // Absent (version 0) if no row exists
  uint64_t row_version = 0;  // 0: no row
  uint32_t key_id = 0;       // sealing key of the row (0: no row)
  uint32_t bucket = 0;
  std::vector<BucketEntry> entries;
  NodeValue value;
};

Realm::Realm(Hsm& hsm, RecordStore& store, RealmOptions options)
    : hsm_(hsm),
      store_(store),
      options_(options),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()),
      cache_(options.record_cache_size),
      ids_(options.record_id_cache_size) {
  // Each partition keeps its share of the bucket cache.
  const size_t bucket_cache = options.bucket_cache_size == 0
                                  ? 0
                                  : std::max<size_t>(1, options.bucket_cache_size / options.partitions);
  for (uint32_t i = 0; i < options.partitions; ++i) {
    partitions_.push_back(
        std::make_unique<Partition>(PartitionId{i, options.partitions}, bucket_cache));
  }
  if (options.executor != nullptr) {
    executor_ = options.executor;
  } else {
    owned_executor_ = std::make_unique<ThreadPool>(options.worker_threads);
    executor_ = owned_executor_.get();
  }
}

StatusOr<std::unique_ptr<Realm>> Realm::Create(Hsm& hsm, RecordStore& store, RealmOptions options) {
  if (options.worker_threads <= 0) {
    options.worker_threads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  }
  if (options.max_batch == 0) return InvalidArgumentError("max_batch must be positive");
  if (options.partitions == 0) {
    StatusOr<std::optional<uint32_t>> anchored = AnchoredPartitionCount(hsm);
    if (!anchored.ok()) {
      return anchored.status().WithContext(
          "reading the partition count from partition 0's anchor (configure the count to start "
          "while the HSM cannot be read)");
    }
    options.partitions = anchored->value_or(kDefaultPartitionCount);
  }
  RETURN_IF_ERROR(ValidatePartitionCount(options.partitions));
  if (options.genesis_bucket_bits < 0) {
    options.genesis_bucket_bits =
        std::max(0, kDefaultBucketBits - PartitionBits(options.partitions));
  }
  auto realm = std::unique_ptr<Realm>(new Realm(hsm, store, options));
  for (auto& p : realm->partitions_) {
    realm->RunStartupCheck(*p).IgnoreError();  // the outcome is reported by Ready()
  }
  for (auto& p : realm->partitions_) {
    Partition* partition = p.get();
    partition->committer = std::thread([r = realm.get(), partition] { r->CommitterLoop(*partition); });
  }
  return realm;
}

Realm::~Realm() {
  {
    std::unique_lock lock(outstanding_mu_);
    closed_ = true;
    outstanding_cv_.wait(lock, [&] { return outstanding_ == 0; });
  }
  for (auto& p : partitions_) {
    {
      std::lock_guard lock(p->commit_mu);
      p->stopping = true;
    }
    p->commit_cv.notify_all();
  }
  for (auto& p : partitions_) {
    if (p->committer.joinable()) p->committer.join();
  }
  owned_executor_.reset();  // joins its threads; nothing is queued any more
}

void Realm::Post(Task task, bool locked) {
  // std::function needs a copyable callable; the task (with its callbacks) moves once.
  auto holder = std::make_shared<Task>(std::move(task));
  executor_->Post([this, holder, locked] {
    if (locked) {
      RunLocked(std::move(*holder));
    } else {
      Process(std::move(*holder));
    }
  });
}

Status Realm::ServingStatus(const Partition& p) {
  std::lock_guard lock(p.mode_mu);
  return p.mode;
}

Realm::Partition& Realm::PartitionFor(const RecordId& id) {
  return *partitions_[PartitionOf(id, options_.partitions)];
}

Status Realm::WorstStatus(uint32_t& serving) const {
  // A refusal (FAILED_PRECONDITION) outranks a retry; requests to the partitions that serve
  // are answered either way.
  serving = 0;
  Status worst;
  for (const auto& p : partitions_) {
    Status s = ServingStatus(*p);
    if (s.ok()) {
      ++serving;
      continue;
    }
    if (partitions_.size() > 1) s = s.WithContext("partition " + ToString(p->id));
    if (worst.ok() || (s.code() == StatusCode::kFailedPrecondition &&
                       worst.code() != StatusCode::kFailedPrecondition)) {
      worst = s;
    }
  }
  return worst;
}

Status Realm::Ready() const {
  uint32_t serving;
  return WorstStatus(serving);
}

void Realm::NoteUnreachable(const Status& status) {
  if (status.code() != StatusCode::kUnavailable) return;
  // The HSM and storage are shared: every partition goes out of service in one step (all
  // their mode locks held, taken in index order), so whoever sees one partition out of
  // service and then asks another finds it out of service too.
  std::vector<Partition*> marked;
  {
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(partitions_.size());
    for (auto& p : partitions_) locks.emplace_back(p->mode_mu);
    for (auto& p : partitions_) {
      if (!p->mode.ok()) continue;  // already out of service (or refusing for good)
      p->mode = UnavailableError("realm not serving: the HSM or storage is unreachable (" +
                                 status.message() + "); re-checking");
      p->needs_resync = true;
      marked.push_back(p.get());
    }
  }
  for (Partition* p : marked) {
    {
      std::lock_guard lock(p->commit_mu);
      p->resync_requested = true;
    }
    p->commit_cv.notify_one();
  }
}

RealmStats Realm::Stats() const {
  RealmStats stats;
  stats.partitions = static_cast<uint32_t>(partitions_.size());
  for (const auto& p : partitions_) {
    std::shared_lock lock(p->tree_mu);
    stats.epoch += p->certificate.epoch;
    if (p->tree) {
      stats.bucket_bits = static_cast<uint32_t>(p->tree->bucket_bits());
      stats.non_empty_buckets += p->tree->NonEmptyBuckets();
    }
  }
  WorstStatus(stats.partitions_serving).IgnoreError();
  stats.batches = batches_.load();
  stats.writes = writes_.load();
  stats.largest_batch = largest_batch_.load();
  stats.roll_forwards = roll_forwards_.load();
  return stats;
}

void Realm::Submit(RequestContext context, SecretsRequest request, ResponseCallback done) {
  {
    std::lock_guard lock(outstanding_mu_);
    if (closed_) {
      done(UnavailableError("realm is shutting down"));
      return;
    }
    ++outstanding_;
  }
  Task task;
  task.context = std::move(context);
  task.request = std::move(request);
  task.done = std::move(done);
  Post(std::move(task), /*locked=*/false);
}

StatusOr<SecretsResponse> Realm::Handle(RequestContext context, SecretsRequest request) {
  auto promise = std::make_shared<std::promise<StatusOr<SecretsResponse>>>();
  std::future<StatusOr<SecretsResponse>> future = promise->get_future();
  Submit(std::move(context), std::move(request),
         [promise](StatusOr<SecretsResponse> result) { promise->set_value(std::move(result)); });
  return future.get();
}

StatusOr<RecordSummary> Realm::Inspect(const RequestContext& context) {
  {
    std::lock_guard lock(outstanding_mu_);
    if (closed_) return UnavailableError("realm is shutting down");
    ++outstanding_;
  }
  auto promise = std::make_shared<std::promise<StatusOr<RecordSummary>>>();
  std::future<StatusOr<RecordSummary>> future = promise->get_future();
  Task task;
  task.context = context;
  task.inspect_done = [promise](StatusOr<RecordSummary> r) { promise->set_value(std::move(r)); };
  Post(std::move(task), /*locked=*/false);
  return future.get();
}

Status Realm::Resync() {
  std::vector<std::future<Status>> waits;
  for (auto& p : partitions_) {
    auto promise = std::make_shared<std::promise<Status>>();
    waits.push_back(promise->get_future());
    {
      std::lock_guard lock(p->commit_mu);
      if (p->stopping) return UnavailableError("realm is shutting down");
      p->resync_requested = true;
      p->resync_waiters.push_back([promise](Status s) { promise->set_value(std::move(s)); });
    }
    p->commit_cv.notify_one();
  }
  for (auto& w : waits) w.get().IgnoreError();  // the readiness is read below
  for (auto& p : partitions_) {
    std::lock_guard lock(p->commit_mu);
    if (p->stopping) return UnavailableError("realm is shutting down");
  }
  return Ready();
}

void Realm::TaskDone() {
  std::lock_guard lock(outstanding_mu_);
  if (--outstanding_ == 0) outstanding_cv_.notify_all();
}

void Realm::Finish(Task& task, StatusOr<SecretsResponse> result, bool holds_record) {
  if (task.request) {
    task.done(std::move(result));
  } else {
    task.inspect_done(result.ok() ? StatusOr<RecordSummary>(InternalError("not an inspection"))
                                  : StatusOr<RecordSummary>(result.status()));
  }
  if (holds_record) ReleaseRecord(task.id);
  TaskDone();  // last: once no task is outstanding the Realm may be destroyed
}

void Realm::Process(Task task) {
  // A realm none of whose partitions serves answers at once, without an HSM call (with the
  // status read in the same pass: Ready() could already read OK again).
  uint32_t serving;
  Status worst = WorstStatus(serving);
  if (serving == 0) return Finish(task, worst);
  if (task.request) {
    if (!NeedsRecord(*task.request)) {
      StatusOr<GuessStep> step = ApplyGuessRules(Record{}, *task.request);
      if (!step.ok()) return Finish(task, step.status());
      return Finish(task, std::move(step->response));
    }
    Status valid = ValidateRequest(*task.request);
    if (!valid.ok()) return Finish(task, valid);
  }
  StatusOr<RecordId> id = ids_.Get(task.context.tenant, task.context.user, [&] {
    return ComputeRecordId(hsm_, task.context.tenant, task.context.user);
  });
  if (!id.ok()) {
    NoteUnreachable(id.status());
    return Finish(task, id.status());
  }
  task.id = *id;
  if (!AcquireOrPark(task)) return;
  RunLocked(std::move(task));
}

bool Realm::AcquireOrPark(Task& task) {
  std::lock_guard lock(records_mu_);
  auto [it, inserted] = locked_records_.try_emplace(task.id);
  if (inserted) return true;
  it->second.push_back(std::move(task));
  return false;
}

void Realm::ReleaseRecord(const RecordId& id) {
  std::optional<Task> next;
  {
    std::lock_guard lock(records_mu_);
    auto it = locked_records_.find(id);
    if (it == locked_records_.end()) return;
    if (it->second.empty()) {
      locked_records_.erase(it);
      return;
    }
    next.emplace(std::move(it->second.front()));
    it->second.pop_front();
  }
  Post(std::move(*next), /*locked=*/true);  // the record stays held by `next`
}

StatusOr<Realm::ReadResult> Realm::ReadVerified(Partition& p, const RecordId& id) {
  ReadResult result;
  BucketScan scan;
  // Fast path: the bucket's leaves are known for the value the tree holds now, so only this
  // record's row is needed. The record is held by the caller, so its row cannot change
  // until the caller is done; commits of other records in the bucket do not matter here
  // (the committer rescans a bucket whose value moved since a write's read).
  {
    NodeValue current;
    {
      std::shared_lock lock(p.tree_mu);
      if (!p.tree) return UnavailableError("realm has no verified state");
      result.bucket = p.tree->BucketOf(id);
      current = p.tree->Bucket(result.bucket);
    }
    if (std::optional<std::vector<BucketEntry>> leaves = p.buckets.Lookup(result.bucket, current)) {
      ASSIGN_OR_RETURN(std::optional<StoredRecord> row, store_.ReadRecord(id));
      if (row && row->id != id) return DataLossError("storage returned a foreign record");
      scan.entries = std::move(*leaves);
      scan.target = std::move(row);
      result.value = current;
      return FinishRead(id, std::move(scan), std::move(result));
    }
  }
  // Storage is read outside the tree lock, so a commit may land between the read and the
  // check. The generation tells a race (retry) from tampering: if no batch started or
  // finished meanwhile, storage can only be in the committed or in-flight state, and a
  // mismatch means the rows were changed.
  for (int attempt = 0;; ++attempt) {
    RecordId lo, hi;
    uint64_t generation;
    {
      std::shared_lock lock(p.tree_mu);
      if (!p.tree) return UnavailableError("realm has no verified state");
      result.bucket = p.tree->BucketOf(id);
      p.tree->BucketRange(result.bucket, lo, hi);
      generation = p.tree_generation;
    }
    ASSIGN_OR_RETURN(scan, store_.ScanBucket(lo, hi, id));
    std::shared_lock lock(p.tree_mu);
    StatusOr<NodeValue> value = p.tree->ComputeBucket(result.bucket, scan.entries);
    bool verified = false;
    if (value.ok()) {
      verified = *value == p.tree->Bucket(result.bucket);
      if (!verified && p.in_flight) {
        auto it = p.in_flight->frontier().find(result.bucket);
        verified = it != p.in_flight->frontier().end() && *value == it->second;
      }
    }
    if (verified) {
      result.value = *value;
      p.buckets.Put(result.bucket, *value, scan.entries);
      break;
    }
    if (generation == p.tree_generation) {
      return DataLossError("stored records failed verification against the Merkle root of epoch " +
                           std::to_string(p.certificate.epoch) +
                           ": rows were altered, replayed, swapped, dropped or injected");
    }
    if (attempt >= kMaxReadAttempts) {
      return ResourceExhaustedError("record reads keep racing with commits; retry later");
    }
  }
  return FinishRead(id, std::move(scan), std::move(result));
}

StatusOr<Realm::ReadResult> Realm::FinishRead(const RecordId& id, BucketScan scan,
                                              ReadResult result) {
  auto entry =
      std::lower_bound(scan.entries.begin(), scan.entries.end(), id,
                       [](const BucketEntry& e, const RecordId& key) { return e.id < key; });
  bool in_tree = entry != scan.entries.end() && entry->id == id;
  if (!in_tree) {
    if (scan.target) return DataLossError("storage returned a record the Merkle tree lacks");
    result.record.id = id;
    result.entries = std::move(scan.entries);
    return result;
  }
  if (!scan.target || scan.target->version == 0 || scan.target->record_hash != entry->record_hash ||
      RecordHash(scan.target->version, scan.target->sealed) != entry->record_hash) {
    return DataLossError("stored record does not match its Merkle leaf");
  }
  // The row is authentic now; a cached plaintext of exactly this row saves the unseal.
  if (std::optional<Record> cached = cache_.Lookup(id, entry->record_hash, result.key_id)) {
    result.record = std::move(*cached);
  } else {
    ASSIGN_OR_RETURN(result.record, UnsealRecord(hsm_, *scan.target));
    ASSIGN_OR_RETURN(result.key_id, SealedKeyId(*scan.target));
    cache_.Put(id, entry->record_hash, result.key_id, result.record);
  }
  result.row_version = scan.target->version;
  result.entries = std::move(scan.entries);
  return result;
}

void Realm::RunLocked(Task task) {
  const RecordId id = task.id;
  auto fail = [&](const Status& status) {
    NoteUnreachable(status);
    Finish(task, status, /*holds_record=*/true);
  };
  Partition& p = PartitionFor(id);
  Status serving = ServingStatus(p);
  // The partition's own state, not news about the HSM or storage: the others are not told.
  if (!serving.ok()) return Finish(task, serving, /*holds_record=*/true);
  StatusOr<ReadResult> read = ReadVerified(p, id);
  if (!read.ok()) return fail(read.status());

  if (!task.request) {  // Inspect
    RecordSummary summary;
    summary.state = read->record.state;
    summary.record_version = read->row_version;
    summary.sealing_key_id = read->key_id;
    summary.guess_count = read->record.guess_count;
    if (read->record.registration) {
      summary.registration_version = read->record.registration->version;
      summary.num_guesses = read->record.registration->num_guesses;
    }
    task.inspect_done(summary);
    ReleaseRecord(id);
    TaskDone();
    return;
  }

  StatusOr<GuessStep> step = ApplyGuessRules(std::move(read->record), *task.request);
  if (!step.ok()) return fail(step.status());
  if (!step->next) {
    Finish(task, std::move(step->response), /*holds_record=*/true);
    return;
  }
  Record& next = *step->next;
  next.id = id;
  next.version = read->row_version + 1;
  StatusOr<StoredRecord> row = SealRecord(hsm_, next);
  if (!row.ok()) return fail(row.status());

  PendingWrite write;
  write.row = std::move(*row);
  write.expected_version = read->row_version;
  write.bucket = read->bucket;
  write.entries = std::move(read->entries);
  write.entries_value = read->value;
  write.record = std::move(next);
  write.response = std::move(step->response);
  write.done = std::move(task.done);
  {
    std::lock_guard lock(p.commit_mu);
    p.pending.push_back(std::move(write));
  }
  p.commit_cv.notify_one();
  // The committer answers, releases the record and counts the task done.
}

void Realm::CommitterLoop(Partition& p) {
  for (;;) {
    std::vector<PendingWrite> batch;
    std::vector<std::function<void(Status)>> waiters;
    bool run_check = false;
    bool check_health = false;
    bool stop = false;
    {
      std::unique_lock lock(p.commit_mu);
      bool retrying;
      {
        std::lock_guard mode_lock(p.mode_mu);
        retrying = p.needs_resync;
      }
      auto wake = [&] { return p.stopping || !p.pending.empty() || p.resync_requested; };
      if (retrying) {
        clock_.WaitUntil(p.commit_cv, lock, clock_.Now() + options_.resync_interval, wake);
      } else if (options_.health_check_interval.count() > 0) {
        check_health = !clock_.WaitUntil(p.commit_cv, lock,
                                         clock_.Now() + options_.health_check_interval, wake);
      } else {
        clock_.WaitUntil(p.commit_cv, lock, Clock::TimePoint::max(), wake);
      }
      stop = p.stopping && p.pending.empty();
      waiters = std::move(p.resync_waiters);
      p.resync_waiters.clear();
      {
        std::lock_guard mode_lock(p.mode_mu);
        run_check = p.needs_resync || (p.resync_requested && !p.mode.ok());
      }
      p.resync_requested = false;
      size_t n = std::min(p.pending.size(), options_.max_batch);
      batch.assign(std::make_move_iterator(p.pending.begin()),
                   std::make_move_iterator(p.pending.begin() + static_cast<ptrdiff_t>(n)));
      p.pending.erase(p.pending.begin(), p.pending.begin() + static_cast<ptrdiff_t>(n));
    }
    if (check_health && !stop) CheckHealth(p);
    if (run_check && !stop) RunStartupCheck(p).IgnoreError();
    for (auto& waiter : waiters)
      waiter(stop ? UnavailableError("realm is shutting down") : ServingStatus(p));
    if (!batch.empty()) CommitBatch(p, std::move(batch));
    if (stop) return;
  }
}

void Realm::CheckHealth(Partition& p) {
  if (!ServingStatus(p).ok()) return;
  Status status = hsm_.Mac(MacKeyRole::kAnchor, AsBytes("pinvault health check")).status();
  if (status.ok()) status = store_.ReadRecord(RecordId{}).status();
  NoteUnreachable(status);  // only an UNAVAILABLE HSM or store changes anything
}

Status Realm::RunStartupCheck(Partition& p) {
  StatusOr<ServingState> state =
      LoadAndCheck(hsm_, store_, p.id, options_.genesis_bucket_bits, p.term);
  if (!state.ok()) {
    const Status& s = state.status();
    std::lock_guard lock(p.mode_mu);
    if (s.code() == StatusCode::kFailedPrecondition) {
      p.mode = s;
      p.needs_resync = false;
    } else if (s.code() == StatusCode::kDataLoss) {
      p.mode = FailedPreconditionError("refusing to serve: storage is unreadable: " + s.message());
      p.needs_resync = false;
    } else {
      p.mode =
          UnavailableError("realm not serving: start-up check failed, retrying: " + s.ToString());
      p.needs_resync = true;
    }
    return p.mode;
  }
  if (state->rolled_forward) roll_forwards_.fetch_add(1);
  {
    std::unique_lock lock(p.tree_mu);
    p.tree.emplace(std::move(state->tree));
    p.certificate = state->certificate;
    p.in_flight.reset();
    ++p.tree_generation;
  }
  p.buckets.Clear();
  std::lock_guard lock(p.mode_mu);
  p.mode = OkStatus();
  p.needs_resync = false;
  return p.mode;
}

void Realm::FailWrites(std::vector<PendingWrite>& batch, const Status& status) {
  for (PendingWrite& w : batch) {
    w.done(status);
    ReleaseRecord(w.row.id);
    TaskDone();
  }
}

void Realm::CommitBatch(Partition& p, std::vector<PendingWrite> batch) {
  Status serving = ServingStatus(p);
  if (!serving.ok()) return FailWrites(batch, serving);

  // Only this thread changes p.tree and p.certificate, so it reads them without the lock.
  const MerkleTree& tree = *p.tree;
  // The verified leaves of every bucket the batch touches, as the tree holds them now: from a
  // worker's read when it matches the bucket's current value, else scanned again (an earlier
  // batch changed the bucket since the workers read it).
  std::map<uint32_t, std::vector<BucketEntry>> leaves;
  std::vector<PlannedRow> rows;
  rows.reserve(batch.size());
  for (const PendingWrite& w : batch) {
    rows.push_back(PlannedRow{&w.row, w.expected_version, w.bucket});
    if (leaves.count(w.bucket) != 0) continue;
    const NodeValue& current = tree.Bucket(w.bucket);
    const PendingWrite* base = nullptr;
    for (const PendingWrite& other : batch) {
      if (other.bucket == w.bucket && other.entries_value == current) {
        base = &other;
        break;
      }
    }
    if (base != nullptr) {
      leaves[w.bucket] = base->entries;
      continue;
    }
    RecordId lo, hi;
    tree.BucketRange(w.bucket, lo, hi);
    StatusOr<BucketScan> scan = store_.ScanBucket(lo, hi, w.row.id);
    if (!scan.ok()) return FailWrites(batch, scan.status());
    StatusOr<NodeValue> value = tree.ComputeBucket(w.bucket, scan->entries);
    if (!value.ok() || !(*value == current)) {
      return FailWrites(batch, DataLossError("stored records failed verification against the "
                                             "Merkle root during commit"));
    }
    leaves[w.bucket] = std::move(scan->entries);
  }

  StatusOr<CommitPlan> plan = PlanCommit(tree, p.certificate, std::move(leaves), rows);
  if (!plan.ok()) return FailWrites(batch, plan.status());
  const Certificate& next = plan->certificate;
  StatusOr<Bytes> cert = IssueCertificate(hsm_, next);
  if (!cert.ok()) return FailWrites(batch, cert.status());  // nothing written
  vault::CommitBatch& commit = plan->store_batch;
  commit.head.certificate = *cert;
  const std::shared_ptr<const MerkleTree::Update>& update = plan->update;

  {
    std::unique_lock lock(p.tree_mu);
    p.in_flight = update;
    ++p.tree_generation;
  }
  Status status = store_.Commit(commit);
  const char* stage = "storage commit";
  if (status.ok()) {
    status = hsm_.StoreAnchor(p.id.index, p.term, *cert);
    stage = "anchor update";
  }
  if (!status.ok()) {
    // Storage may or may not hold the new epoch: stop serving until the start-up check has
    // settled it (it rolls the commit forward if storage has it).
    Status unavailable =
        UnavailableError(std::string(stage) + " for epoch " + std::to_string(next.epoch) +
                         " failed (" + status.ToString() + "); re-checking storage");
    {
      std::lock_guard lock(p.mode_mu);
      p.mode = unavailable;
      p.needs_resync = true;
    }
    return FailWrites(batch, unavailable);
  }
  {
    std::unique_lock lock(p.tree_mu);
    p.tree->Apply(*update);
    p.certificate = next;
    p.in_flight.reset();
    ++p.tree_generation;
  }
  for (auto& [bucket, entries] : plan->bucket_leaves) {
    p.buckets.Put(bucket, plan->bucket_values[bucket], std::move(entries));
  }
  batches_.fetch_add(1);
  writes_.fetch_add(batch.size());
  uint64_t largest = largest_batch_.load();
  while (batch.size() > largest && !largest_batch_.compare_exchange_weak(largest, batch.size())) {
  }
  for (PendingWrite& w : batch) {
    if (StatusOr<uint32_t> key_id = SealedKeyId(w.row); key_id.ok()) {
      cache_.Put(w.row.id, w.row.record_hash, *key_id, w.record);
    }
    w.done(std::move(w.response));
    ReleaseRecord(w.row.id);
    TaskDone();
  }
}

}  // namespace pinvault::vault
