#include "api/bench/bench_floor.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "api/bench/bench_stats.h"
#include "pkcs11/token_setup.h"
#include "pkcs11/uri.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"
#include "vault/record.h"

namespace pinvault::api::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Database is the floor's SQLite file: WAL, synchronous=FULL, one table of sealed rows.
class Database {
 public:
  static StatusOr<std::unique_ptr<Database>> Open(const std::filesystem::path& path) {
    auto db = std::unique_ptr<Database>(new Database());
    if (sqlite3_open(path.c_str(), &db->db_) != SQLITE_OK) {
      return InternalError("floor: cannot open " + path.string());
    }
    RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
    RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
    RETURN_IF_ERROR(db->Exec(
        "CREATE TABLE IF NOT EXISTS rows (id BLOB PRIMARY KEY, sealed BLOB) WITHOUT ROWID"));
    if (sqlite3_prepare_v2(db->db_, "INSERT OR REPLACE INTO rows VALUES (?1, ?2)", -1, &db->insert_,
                           nullptr) != SQLITE_OK) {
      return InternalError("floor: cannot prepare the insert");
    }
    return db;
  }

  ~Database() {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }

  Status Exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return InternalError(std::string("floor: ") + sql + ": " + sqlite3_errmsg(db_));
    }
    return OkStatus();
  }

  Status Insert(ByteView id, ByteView sealed) {
    sqlite3_bind_blob(insert_, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert_, 2, sealed.data(), static_cast<int>(sealed.size()), SQLITE_STATIC);
    int rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    return rc == SQLITE_DONE ? OkStatus() : InternalError("floor: insert failed");
  }

 private:
  Database() = default;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

// RemoveDatabase deletes an SQLite file with its WAL and shared-memory files.
void RemoveDatabase(const std::filesystem::path& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path.string() + suffix, ec);
  }
}

// Pieces holds what every floor operation works on: a key pair for the evaluation, a sealed
// record to unseal, record-sized plaintext and associated data.
struct Pieces {
  SecretBytes key;
  protocol::PointBytes public_key{};
  protocol::PointBytes blinded_input{};
  SecretBytes plaintext{vault::kRecordPlaintextSize};
  Bytes associated_data;
  vault::SealedBlob sealed;
  Bytes user = ToBytes("bench\x1fuser-000123");

  static StatusOr<Pieces> Make(vault::Hsm& hsm) {
    Pieces p;
    p.key = protocol::RandomScalar();
    ASSIGN_OR_RETURN(p.public_key, protocol::BasePointMult(p.key));
    ASSIGN_OR_RETURN(protocol::BlindedInput blinded, protocol::Blind(AsBytes("floor input")));
    p.blinded_input = blinded.blinded_input;
    p.associated_data =
        vault::RecordAssociatedData(vault::RecordId{}, 7, hsm.CurrentSealingKeyId());
    ASSIGN_OR_RETURN(p.sealed,
                     hsm.Seal(hsm.CurrentSealingKeyId(), p.plaintext.Reveal(), p.associated_data));
    return p;
  }
};

// Step is one request of a floor operation: which pieces it does, in this order. A step that
// seals writes the sealed blob as one durable row, and the operation goes on once it is.
struct Step {
  bool mac = false;       // HSM HMAC of the user name (the record id)
  bool unseal = false;    // HSM unseal of the record
  bool evaluate = false;  // EvaluateWithProof
  bool seal = false;      // HSM seal (of what was unsealed, if this step unsealed) + a row
};

constexpr Step kRecoverySteps[] = {
    {.mac = true, .unseal = true},                  // Recover1
    {.mac = true, .evaluate = true, .seal = true},  // Recover2
    {.mac = true, .seal = true},                    // Recover3
};
constexpr Step kRegistrationSteps[] = {{.mac = true, .seal = true}};  // Register2
constexpr Step kRecoveryRequestSteps[] = {{.unseal = true, .evaluate = true, .seal = true}};

std::span<const Step> StepsOf(FloorShape shape) {
  switch (shape) {
    case FloorShape::kRecovery:
      return kRecoverySteps;
    case FloorShape::kRegistration:
      return kRegistrationSteps;
    case FloorShape::kRecoveryRequest:
      return kRecoveryRequestSteps;
  }
  return kRecoveryRequestSteps;
}

template <typename Fn>
double MicrosPerCall(int calls, Fn&& fn) {
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / calls;
}

}  // namespace

// ---- FloorPipeline ----

class FloorPipeline::Impl {
 public:
  Impl(vault::Hsm& hsm, FloorShape shape, Pieces pieces, std::unique_ptr<Database> db)
      : hsm_(hsm), steps_(StepsOf(shape)), pieces_(std::move(pieces)), db_(std::move(db)) {}

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    write_cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void Start(int workers) {
    for (int i = 0; i < std::max(1, workers); ++i) threads_.emplace_back([this] { WorkerLoop(); });
    threads_.emplace_back([this] { WriterLoop(); });
  }

  void Submit(uint32_t client, Done done) {
    {
      std::lock_guard lock(mu_);
      while (ids_.size() <= client) {
        RowId id;
        randombytes_buf(id.data(), id.size());
        ids_.push_back(id);
      }
      ready_.push_back(Job{ids_[client], 0, std::move(done)});
    }
    work_cv_.notify_one();
  }

  Stats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  using RowId = std::array<uint8_t, 32>;

  // Job is one submitted operation: its client's row and its current step.
  struct Job {
    RowId id{};
    size_t step = 0;
    Done done;
  };

  // Row is a job waiting for its row to be durable.
  struct Row {
    Job job;
    Bytes sealed;
  };

  // Compute does `step`; returns the sealed blob to write if the step writes a row.
  StatusOr<std::optional<Bytes>> Compute(const Step& step) {
    if (step.mac) RETURN_IF_ERROR(hsm_.Mac(vault::MacKeyRole::kRecordId, pieces_.user));
    std::optional<SecretBytes> opened;
    if (step.unseal) {
      ASSIGN_OR_RETURN(opened, hsm_.Unseal(pieces_.sealed, pieces_.associated_data));
    }
    if (step.evaluate) {
      RETURN_IF_ERROR(
          protocol::EvaluateWithProof(pieces_.key, pieces_.public_key, pieces_.blinded_input));
    }
    if (!step.seal) return std::optional<Bytes>();
    const SecretBytes& plaintext = opened ? *opened : pieces_.plaintext;
    ASSIGN_OR_RETURN(
        vault::SealedBlob blob,
        hsm_.Seal(hsm_.CurrentSealingKeyId(), plaintext.Reveal(), pieces_.associated_data));
    return std::optional<Bytes>(vault::EncodeSealedBlob(blob));
  }

  void WorkerLoop() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !ready_.empty(); });
        if (stop_) return;
        job = std::move(ready_.front());
        ready_.pop_front();
      }
      // Steps without a row follow one another on this thread.
      for (;;) {
        StatusOr<std::optional<Bytes>> row = Compute(steps_[job.step]);
        if (!row.ok()) {
          job.done(row.status());
          break;
        }
        if (row->has_value()) {
          {
            std::lock_guard lock(mu_);
            rows_.push_back(Row{std::move(job), std::move(**row)});
          }
          write_cv_.notify_one();
          break;
        }
        if (job.step + 1 == steps_.size()) {
          job.done(OkStatus());
          break;
        }
        ++job.step;
      }
    }
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Row> batch;
      {
        std::unique_lock lock(mu_);
        write_cv_.wait(lock, [&] { return stop_ || !rows_.empty(); });
        if (stop_) return;
        batch.swap(rows_);
      }
      Status status = db_->Exec("BEGIN");
      for (const Row& r : batch) {
        if (status.ok()) status = db_->Insert(r.job.id, r.sealed);
      }
      if (status.ok()) status = db_->Exec("COMMIT");
      if (!status.ok()) db_->Exec("ROLLBACK").IgnoreError();
      std::vector<Job> finished;
      size_t continued = 0;
      {
        std::lock_guard lock(mu_);
        if (status.ok()) {
          ++stats_.batches;
          stats_.rows += batch.size();
        }
        for (Row& r : batch) {
          if (status.ok() && r.job.step + 1 < steps_.size()) {
            ++r.job.step;
            ready_.push_back(std::move(r.job));
            ++continued;
          } else {
            finished.push_back(std::move(r.job));
          }
        }
      }
      if (continued == 1) work_cv_.notify_one();
      if (continued > 1) work_cv_.notify_all();
      for (Job& job : finished) job.done(status);
    }
  }

  vault::Hsm& hsm_;
  const std::span<const Step> steps_;
  const Pieces pieces_;
  const std::unique_ptr<Database> db_;  // used by the writer thread only

  mutable std::mutex mu_;
  std::condition_variable work_cv_, write_cv_;
  std::deque<Job> ready_;   // operations whose current step waits for a worker
  std::vector<Row> rows_;   // rows waiting for the writer
  std::vector<RowId> ids_;  // each client's row id (random, made at its first Submit)
  bool stop_ = false;
  Stats stats_;
  std::vector<std::thread> threads_;
};

StatusOr<std::unique_ptr<FloorPipeline>> FloorPipeline::Create(vault::Hsm& hsm,
                                                               const std::filesystem::path& db_path,
                                                               FloorShape shape, int workers) {
  ASSIGN_OR_RETURN(Pieces pieces, Pieces::Make(hsm));
  ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(db_path));
  auto impl = std::make_unique<Impl>(hsm, shape, std::move(pieces), std::move(db));
  impl->Start(workers);
  return std::unique_ptr<FloorPipeline>(new FloorPipeline(std::move(impl)));
}

FloorPipeline::FloorPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FloorPipeline::~FloorPipeline() = default;

void FloorPipeline::Submit(uint32_t client, Done done) { impl_->Submit(client, std::move(done)); }

FloorPipeline::Stats FloorPipeline::stats() const { return impl_->stats(); }

// ---- ScratchTokens ----

StatusOr<std::unique_ptr<ScratchTokens>> ScratchTokens::Create(
    const std::filesystem::path& dir, const std::vector<std::string>& labels) {
  ASSIGN_OR_RETURN(std::string conf, pkcs11::WriteSoftHsmConfig(dir.string()));
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                   pkcs11::Module::Load(pkcs11::kDefaultModulePath));
  std::unique_ptr<ScratchTokens> tokens(new ScratchTokens(dir, std::move(module)));
  for (const std::string& label : labels) {
    SecretBytes user_pin = pkcs11::RandomPin();
    RETURN_IF_ERROR(
        pkcs11::InitializeToken(*tokens->module_, label, pkcs11::RandomPin(), user_pin));
    tokens->user_pins_.insert_or_assign(label, std::move(user_pin));
  }
  return tokens;
}

StatusOr<std::unique_ptr<vault::Hsm>> ScratchTokens::Open(const std::string& label) {
  auto pin = user_pins_.find(label);
  if (pin == user_pins_.end()) return NotFoundError("no scratch token labelled '" + label + "'");
  pkcs11::TokenUri uri;
  uri.token = label;
  pkcs11::ProvisionOptions options;
  options.user_pin = pin->second.Clone();
  ASSIGN_OR_RETURN(pkcs11::ProvisionedRealm realm,
                   pkcs11::ProvisionRealm(module_, std::move(uri), std::move(options)));
  return std::unique_ptr<vault::Hsm>(std::move(realm.hsm));
}

std::string ScratchTokens::description() const {
  return "SoftHSM2 token through pkcs11::TokenHsm (token files in " + (dir_ / "tokens").string() +
         ")";
}

// ---- Measurements ----

StatusOr<FloorCosts> MeasureFloorCosts(vault::Hsm& hsm, const std::filesystem::path& dir) {
  ASSIGN_OR_RETURN(Pieces p, Pieces::Make(hsm));
  FloorCosts costs;
  Status failure;
  auto check = [&](const Status& s) {
    if (!s.ok() && failure.ok()) failure = s;
  };
  costs.evaluate_with_proof_us = MicrosPerCall(500, [&] {
    check(protocol::EvaluateWithProof(p.key, p.public_key, p.blinded_input).status());
  });
  costs.hsm_hmac_us =
      MicrosPerCall(3000, [&] { check(hsm.Mac(vault::MacKeyRole::kRecordId, p.user).status()); });
  costs.hsm_seal_us = MicrosPerCall(3000, [&] {
    check(hsm.Seal(hsm.CurrentSealingKeyId(), p.plaintext.Reveal(), p.associated_data).status());
  });
  costs.hsm_unseal_us =
      MicrosPerCall(3000, [&] { check(hsm.Unseal(p.sealed, p.associated_data).status()); });
  Bytes anchor(96, 0x5a);
  costs.hsm_anchor_write_us = MicrosPerCall(20, [&] { check(hsm.StoreAnchor(0, 0, anchor)); });
  double after_us = 0;
  for (int i = 0; i < 20; ++i) {
    check(hsm.StoreAnchor(0, 0, anchor));
    after_us +=
        MicrosPerCall(1, [&] { check(hsm.Mac(vault::MacKeyRole::kRecordId, p.user).status()); });
  }
  costs.hsm_hmac_after_anchor_write_us = after_us / 20;
  RETURN_IF_ERROR(failure);
  std::filesystem::path path = dir / "floor-costs.sqlite";
  {
    ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path));
    Bytes sealed = vault::EncodeSealedBlob(p.sealed);
    constexpr int kRows = 64;
    constexpr int kTransactions = 40;
    double commit_us = 0;
    auto start = Clock::now();
    for (int t = 0; t < kTransactions; ++t) {
      RETURN_IF_ERROR(db->Exec("BEGIN"));
      for (int r = 0; r < kRows; ++r) {
        std::array<uint8_t, 32> id{};
        randombytes_buf(id.data(), id.size());
        RETURN_IF_ERROR(db->Insert(id, sealed));
      }
      auto commit_start = Clock::now();
      RETURN_IF_ERROR(db->Exec("COMMIT"));
      commit_us += std::chrono::duration<double, std::micro>(Clock::now() - commit_start).count();
    }
    double total_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    costs.sqlite_row_in_batch_us = total_us / (kRows * kTransactions);
    costs.sqlite_commit_us = commit_us / kTransactions;
  }
  RemoveDatabase(path);
  return costs;
}

namespace {

// ClosedLoopClients drives a FloorPipeline with `clients` closed-loop clients: each submits
// its next operation when the previous one completes, until `end`; operations completing in
// [start, end) are counted. The first failure stops every client.
class ClosedLoopClients {
 public:
  ClosedLoopClients(FloorPipeline& pipeline, Clock::time_point start, Clock::time_point end)
      : pipeline_(pipeline), start_(start), end_(end) {}

  // Run starts the clients and waits until each has stopped; returns the first failure.
  Status Run(int clients) {
    {
      std::lock_guard lock(mu_);
      active_ = clients;
    }
    for (int c = 0; c < clients; ++c) Next(static_cast<uint32_t>(c));
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return active_ == 0; });
    return failure_;
  }

  uint64_t counted() const { return counted_; }
  uint64_t finished() const { return finished_; }

 private:
  void Next(uint32_t client) {
    pipeline_.Submit(client, [this, client](const Status& status) {
      Clock::time_point now = Clock::now();
      bool again = false;
      {
        std::lock_guard lock(mu_);
        if (!status.ok()) {
          if (failure_.ok()) failure_ = status;
        } else {
          if (now >= start_ && now < end_) ++counted_;
          ++finished_;
        }
        again = failure_.ok() && now < end_;
        if (!again && --active_ == 0) done_cv_.notify_all();
      }
      if (again) Next(client);
    });
  }

  FloorPipeline& pipeline_;
  const Clock::time_point start_, end_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  int active_ = 0;
  Status failure_;
  uint64_t counted_ = 0;
  uint64_t finished_ = 0;  // every operation, warm-up and drain included
};

}  // namespace

StatusOr<FloorResult> MeasureFloor(vault::Hsm& hsm, const std::filesystem::path& dir,
                                   FloorShape shape, int clients, int workers, double seconds) {
  std::filesystem::path path = dir / "floor.sqlite";
  StatusOr<FloorResult> result = [&]() -> StatusOr<FloorResult> {
    ASSIGN_OR_RETURN(std::unique_ptr<FloorPipeline> pipeline,
                     FloorPipeline::Create(hsm, path, shape, workers));
    const Clock::time_point start = Clock::now() + std::chrono::milliseconds(300);  // warm-up
    const Clock::time_point end =
        start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
    ClosedLoopClients loop(*pipeline, start, end);
    double cpu_start = SelfCpuSeconds();
    Status status = loop.Run(clients);
    FloorPipeline::Stats stats = pipeline->stats();
    pipeline.reset();
    double cpu = SelfCpuSeconds() - cpu_start;
    RETURN_IF_ERROR(status);
    FloorResult r;
    r.operations = loop.counted();
    r.seconds = std::chrono::duration<double>(end - start).count();
    r.operations_per_second = static_cast<double>(r.operations) / r.seconds;
    r.average_batch = stats.batches == 0 ? 0 : static_cast<double>(stats.rows) / stats.batches;
    r.cpu_us_per_operation =
        loop.finished() == 0 ? 0 : cpu * 1e6 / static_cast<double>(loop.finished());
    return r;
  }();
  RemoveDatabase(path);
  return result;
}

}  // namespace pinvault::api::bench
