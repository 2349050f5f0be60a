// Realm: the trusted core. Implements RealmService (vault/realm_service.h) over an Hsm
// (vault/hsm.h) and an untrusted RecordStore (vault/record_store.h).
//
// Guess rules: vault/guess_rules.h (ApplyGuessRules), applied to the record read from storage;
// the realm makes each resulting write durable before it releases the response. Register2
// scalars must be canonical and Recover2's blinded input a valid point, else INVALID_ARGUMENT
// with nothing changed.
//
// Partitions (vault/partition.h): the record-id space is split into `partitions` parts, each
// with its own Merkle tree, epoch, anchor, committer and serving mode; a request goes to the
// partition of its record id. A partition whose storage disagrees with its anchor is refused
// while the others serve; Ready() reports the worst partition.
//
// Concurrency: requests on one record run strictly one after another (a per-record queue),
// each seeing the durable result of the previous one, so two Recover2 calls never see the
// same guess count. Requests on different records run in parallel on a worker pool. Writes
// are group-committed by their partition's committer thread: every write of the partition
// waiting at that moment goes to storage in one transaction, then one anchor update
// (vault/anchor.h); only then are the batch's responses released and its records unlocked.
//
// Every record read is checked against the Merkle tree before it is unsealed
// (vault/merkle.h); a mismatch answers DATA_LOSS and nothing is served from the row. A read
// rebuilds its whole bucket from storage (so a tampered row also makes its bucket
// neighbours, ~15 records at 1M, answer DATA_LOSS until storage is repaired), unless the
// bucket's verified leaves are cached for the bucket value the tree holds now
// (BucketCache): then only the record's own row is read and it must match its own leaf
// (record hash recomputed from the row, hash column equal, present iff the leaf is). A read
// that races a commit is retried, not reported. Every request reads and checks its row in
// storage. Verified plaintexts of recently used rows and recently computed record ids are
// cached (vault/record_cache.h), so the three requests of a recovery make one record-id MAC
// and at most one unseal; a Recover1 of a record in both caches makes no HSM call.
//
// Threads: request steps run as tasks on an Executor (vault/executor.h; by default a pool of
// `worker_threads`); group commits run on one committer thread whose waits and timers go
// through the Clock (vault/clock.h). Tests replace both (tests/testing/manual_executor.h,
// tests/testing/fake_clock.h) to force interleavings instead of sleeping.
//
// Response callbacks run on an executor task or the committer thread and must not block;
// Handle() and Inspect() must not be called from inside one (nor, with an executor that runs
// tasks only when asked, from the thread that runs them).
//
// Failure handling: if the HSM or storage is unreachable, requests fail UNAVAILABLE, and
// the first request that meets it takes the realm out of service: Ready() and every later
// request answer UNAVAILABLE (even those the caches could serve) until a re-run of the
// start-up check, retried every `resync_interval`, finds both back; an idle realm finds
// out by itself within `health_check_interval`. If a
// commit fails after storage may have been written, the realm stops serving (UNAVAILABLE)
// until a re-run of the start-up check settles which state is durable; the committer
// retries that every `resync_interval` and the realm resumes on its own once the HSM and
// storage are back. Such a batch's requests were answered UNAVAILABLE although their
// writes may have become durable: a guess may be counted without the evaluation being
// released, never the reverse. If the start-up check finds storage not matching the HSM
// anchor, the realm refuses to serve for good (FAILED_PRECONDITION).
//
// Starting it (pinvaultd):
//   auto hsm = pkcs11::TokenHsm::Open(token_uri);                   // keys by label
//   auto store = backup::SqliteRecordStore::Open(data_dir);         // data_dir/records.sqlite
//   auto realm = vault::Realm::Create(**hsm, **store, {});           // runs the anchor check
//   readiness: realm->Ready() (OK / UNAVAILABLE retrying / FAILED_PRECONDITION refused)
//   requests:  realm->Submit(RequestContext{tenant, user}, request, callback)
// The Hsm and the store must outlive the Realm; destroy the Realm first (it drains).
//
// Thread-safety: all public methods are thread-safe.
#ifndef PINVAULT_VAULT_REALM_H_
#define PINVAULT_VAULT_REALM_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "vault/anchor.h"
#include "vault/clock.h"
#include "vault/executor.h"
#include "vault/hsm.h"
#include "vault/merkle.h"
#include "vault/partition.h"
#include "vault/protocol/messages.h"
#include "vault/realm_service.h"
#include "vault/record.h"
#include "vault/record_cache.h"
#include "vault/record_store.h"
#include "vault/status.h"

namespace pinvault::vault {

struct RealmOptions {
  // worker_threads: request workers (0: the number of CPUs, at least 2) of the thread pool
  // the realm makes when `executor` is null.
  int worker_threads = 0;
  // executor runs every request step (vault/executor.h); null: a ThreadPool of
  // `worker_threads` owned by the realm. Not owned; must outlive the Realm. Every task posted
  // to it must be run before the Realm can be destroyed (its destructor waits for them).
  Executor* executor = nullptr;
  // partitions: how many partitions (vault/partition.h) the realm's record-id space is split
  // into, each with its own tree, epoch, anchor and committer. Fixed when the realm is
  // created: a store and token created with another count are refused, naming it. 0: the
  // count partition 0's anchor on the HSM records (so a realm of the single-tree layout
  // opens as one partition), or kDefaultPartitionCount for a new realm.
  uint32_t partitions = 0;
  // genesis_bucket_bits: Merkle frontier depth of each partition's tree when it is created
  // (ignored afterwards; the anchored certificate fixes it); -1: 16 - log2(partitions), so
  // that the realm has 2^16 buckets in all, which suits up to a few million records.
  int genesis_bucket_bits = -1;
  // max_batch: most writes in one group commit.
  size_t max_batch = 2048;
  // resync_interval: how often a realm that lost the HSM or storage mid-commit retries.
  std::chrono::milliseconds resync_interval{200};
  // record_cache_size: recently used records kept in plaintext (vault/record_cache.h) so
  // that the three requests of a recovery unseal once; 0 disables the cache.
  size_t record_cache_size = 4096;
  // record_id_cache_size: recently computed record ids (vault/record_cache.h RecordIdCache),
  // so that the requests of one recovery make one HSM MAC; 0 disables it.
  size_t record_id_cache_size = 16384;
  // health_check_interval: when no write has been committed for this long, the committer
  // checks that the HSM (one MAC with the anchor key) and storage (one row read) still
  // answer, so that an idle realm whose token was removed turns not-ready without waiting
  // for a request; 0 disables the check.
  std::chrono::milliseconds health_check_interval{5000};
  // bucket_cache_size: recently used Merkle buckets kept with their verified leaves
  // (vault/record_cache.h BucketCache), so that a read fetches and checks only its own row
  // while its bucket is unchanged; 0 disables it (every read rehashes its whole bucket).
  size_t bucket_cache_size = 4096;
  // clock drives the two timers above (resync_interval, health_check_interval); null means
  // SystemClock(). Not owned; must outlive the Realm.
  Clock* clock = nullptr;
};

// RecordSummary describes a record without any secret (for tests and operator tools).
struct RecordSummary {
  RecordState state = RecordState::kAbsent;
  uint64_t record_version = 0;  // 0: no row stored
  uint32_t sealing_key_id = 0;  // 0: no row stored
  protocol::RegistrationVersion registration_version{};
  uint16_t guess_count = 0;
  uint16_t num_guesses = 0;
};

// RealmStats are counters for metrics and benchmarks.
// Per-partition figures are summed (epoch: the sum of the partitions' epochs, so it grows by
// one with every commit; bucket_bits: of one partition's tree).
struct RealmStats {
  uint32_t partitions = 0;
  uint64_t epoch = 0;
  uint64_t batches = 0;  // successful group commits
  uint64_t writes = 0;   // records written by them
  uint64_t largest_batch = 0;
  uint32_t bucket_bits = 0;
  uint32_t non_empty_buckets = 0;
  uint64_t roll_forwards = 0;  // interrupted commits finished by a start-up check
  uint32_t partitions_serving = 0;
};

class Realm final : public RealmService {
 public:
  // Create runs the start-up check (vault/anchor.h LoadAndCheck) and starts the workers
  // and the committer. It returns a Realm even when the check fails, so that the server
  // can report why: Ready() then says FAILED_PRECONDITION (storage does not match the
  // anchor; permanent) or UNAVAILABLE (HSM/storage unreachable; retried). `hsm` and `store`
  // are not owned and must outlive the Realm.
  static StatusOr<std::unique_ptr<Realm>> Create(Hsm& hsm, RecordStore& store,
                                                 RealmOptions options = {});

  // Create fails only for invalid options, or (with options.partitions 0) when the HSM
  // cannot be read to learn the partition count; with the count given it starts whatever the
  // state of the HSM and storage.
  //
  // ~Realm waits for every accepted request to be answered, then stops its threads.
  ~Realm() override;
  Realm(const Realm&) = delete;
  Realm& operator=(const Realm&) = delete;

  void Submit(RequestContext context, protocol::SecretsRequest request,
              ResponseCallback done) override;
  Status Ready() const override;

  // Handle is Submit that blocks until the response. Must not be called from a response
  // callback.
  StatusOr<protocol::SecretsResponse> Handle(RequestContext context,
                                             protocol::SecretsRequest request);

  // Inspect reads and verifies the record of `context` (ordered with its requests) and
  // describes it without secrets. Errors as for Submit.
  StatusOr<RecordSummary> Inspect(const RequestContext& context);

  // Resync re-runs the start-up check now if the realm is UNAVAILABLE after a failed
  // commit or start; returns the resulting readiness. Blocks until done.
  Status Resync();

  RealmStats Stats() const;

 private:
  using InspectCallback = std::function<void(StatusOr<RecordSummary>)>;

  // Task is one accepted request (or an Inspect) on its way through the workers.
  struct Task {
    RequestContext context;
    std::optional<protocol::SecretsRequest> request;  // nullopt: an Inspect
    ResponseCallback done;
    InspectCallback inspect_done;
    RecordId id{};
  };

  // PendingWrite is a sealed record waiting for the group commit, with the response to
  // release once it is durable.
  struct PendingWrite {
    StoredRecord row;
    uint64_t expected_version = 0;
    uint32_t bucket = 0;
    std::vector<BucketEntry> entries;  // the bucket as the worker read and verified it
    NodeValue entries_value;
    Record record;  // the plaintext of `row`, for the record cache
    protocol::SecretsResponse response;
    ResponseCallback done;
  };

  struct ReadResult;

  // Partition is one partition's trusted state and its committer.
  struct Partition {
    Partition(PartitionId id, size_t bucket_cache_size) : id(id), buckets(bucket_cache_size) {}

    const PartitionId id;
    // term: the lease term under which this node writes the partition's anchor (0 on a
    // single node; vault/hsm.h StoreAnchor).
    uint64_t term = 0;

    // Serving mode.
    mutable std::mutex mode_mu;
    Status mode;                // OK, UNAVAILABLE (retrying) or FAILED_PRECONDITION
    bool needs_resync = false;  // guarded by mode_mu

    // The tree and the anchored state. Written by the committer thread only (under a unique
    // lock); read by request tasks under a shared lock.
    mutable std::shared_mutex tree_mu;
    std::optional<MerkleTree> tree;
    Certificate certificate;
    std::shared_ptr<const MerkleTree::Update> in_flight;  // the batch being committed
    uint64_t tree_generation = 0;  // bumped whenever the tree or in_flight changes

    BucketCache buckets;

    // Committer queue.
    std::mutex commit_mu;
    std::condition_variable commit_cv;
    std::vector<PendingWrite> pending;                        // guarded by commit_mu
    bool resync_requested = false;                            // guarded by commit_mu
    std::vector<std::function<void(Status)>> resync_waiters;  // guarded by commit_mu
    bool stopping = false;                                    // guarded by commit_mu
    std::thread committer;
  };

  Realm(Hsm& hsm, RecordStore& store, RealmOptions options);

  Partition& PartitionFor(const RecordId& id);

  // Request path (tasks on the executor).
  void Post(Task task, bool locked);  // `locked`: the task already holds its record
  void Process(Task task);
  void RunLocked(Task task);
  bool AcquireOrPark(Task& task);
  void ReleaseRecord(const RecordId& id);
  StatusOr<ReadResult> ReadVerified(Partition& p, const RecordId& id);
  // FinishRead checks the record's row in `scan` against its leaf in the (authenticated)
  // `scan.entries` and unseals it (or takes it from the record cache).
  StatusOr<ReadResult> FinishRead(const RecordId& id, BucketScan scan, ReadResult result);
  // Finish answers `task`, releases its record if it holds it, and counts it done.
  void Finish(Task& task, StatusOr<protocol::SecretsResponse> result, bool holds_record = false);

  // Committer thread of `p`.
  void CommitterLoop(Partition& p);
  void CommitBatch(Partition& p, std::vector<PendingWrite> batch);
  void CheckHealth(Partition& p);  // committer thread, while idle
  void FailWrites(std::vector<PendingWrite>& batch, const Status& status);
  Status RunStartupCheck(Partition& p);  // committer thread (or before it starts)

  static Status ServingStatus(const Partition& p);
  // WorstStatus returns OK when every partition serves, else the worst partition's status
  // (a refusal outranks a retry) naming it; `serving` counts the partitions that serve.
  Status WorstStatus(uint32_t& serving) const;
  // NoteUnreachable takes every serving partition out of service after a request met an
  // UNAVAILABLE HSM or store (`status`; both are shared by all partitions), and has each
  // committer re-run its start-up check.
  void NoteUnreachable(const Status& status);
  void TaskDone();

  Hsm& hsm_;
  RecordStore& store_;
  const RealmOptions options_;
  Clock& clock_;  // options_.clock or SystemClock()
  RecordCache cache_;
  RecordIdCache ids_;
  std::vector<std::unique_ptr<Partition>> partitions_;  // by index; fixed at Create

  // Per-record serialisation: a record id is present while a request holds it; the deque
  // holds requests waiting for it.
  std::mutex records_mu_;
  std::unordered_map<RecordId, std::deque<Task>, RecordIdHash> locked_records_;

  // Outstanding accepted requests (for draining in the destructor).
  std::mutex outstanding_mu_;
  std::condition_variable outstanding_cv_;
  uint64_t outstanding_ = 0;
  bool closed_ = false;

  // Stats.
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> largest_batch_{0};
  std::atomic<uint64_t> roll_forwards_{0};

  std::unique_ptr<ThreadPool> owned_executor_;  // when options_.executor is null
  Executor* executor_ = nullptr;                // options_.executor or owned_executor_
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_REALM_H_
