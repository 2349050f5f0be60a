#include "api/bench/bench_floor.h"

#include <fcntl.h>
#include <sodium.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "api/bench/bench_stats.h"
#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/session_pool.h"
#include "pkcs11/uri.h"
#include "vault/protocol/oprf.h"
#include "vault/protocol/ristretto.h"
#include "vault/record.h"

extern char** environ;

namespace pinvault::api::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";

// RunQuiet runs `argv` with stdout and stderr discarded and waits; OK on exit status 0.
Status RunQuiet(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return UnavailableError(argv[0] + ": cannot run it");
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return UnavailableError(argv[0] + " " + argv[1] + " failed");
  }
  return OkStatus();
}

std::string RandomHex(size_t bytes) {
  SecretBytes random = SecretBytes::Random(bytes);
  return HexEncode(random.Reveal());
}

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
    RETURN_IF_ERROR(
        db->Exec("CREATE TABLE IF NOT EXISTS rows (id BLOB PRIMARY KEY, sealed BLOB) WITHOUT ROWID"));
    if (sqlite3_prepare_v2(db->db_, "INSERT OR REPLACE INTO rows VALUES (?1, ?2)", -1,
                           &db->insert_, nullptr) != SQLITE_OK) {
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
    p.associated_data = vault::RecordAssociatedData(vault::RecordId{}, 7, hsm.CurrentSealingKeyId());
    ASSIGN_OR_RETURN(p.sealed, hsm.Seal(hsm.CurrentSealingKeyId(), p.plaintext.Reveal(),
                                        p.associated_data));
    return p;
  }
};

// Pipeline runs the floor operations (see the header) on worker threads and one writer.
class Pipeline {
 public:
  Pipeline(vault::Hsm& hsm, Database& db, Pieces& pieces, FloorShape shape, int clients)
      : hsm_(hsm), db_(db), pieces_(pieces), shape_(shape), clients_(clients) {
    for (int c = 0; c < clients; ++c) {
      std::array<uint8_t, 32> id{};
      randombytes_buf(id.data(), id.size());
      ids_.push_back(id);
    }
    steps_.assign(clients, 0);
  }

  // Run measures for `seconds` after a short warm-up; returns the result or the first
  // failure.
  StatusOr<FloorResult> Run(int workers, double seconds) {
    const auto warmup = std::chrono::milliseconds(300);
    start_ = Clock::now() + warmup;
    end_ = start_ + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
    std::vector<std::thread> threads;
    double cpu_start = SelfCpuSeconds();
    for (int i = 0; i < workers; ++i) threads.emplace_back([this] { WorkerLoop(); });
    threads.emplace_back([this] { WriterLoop(); });
    {
      std::lock_guard lock(mu_);
      active_ = clients_;
      for (int c = 0; c < clients_; ++c) ready_.push_back(c);
    }
    work_cv_.notify_all();
    {
      std::unique_lock lock(mu_);
      done_cv_.wait(lock, [&] { return active_ == 0 || !failure_.ok(); });
      stop_ = true;
    }
    work_cv_.notify_all();
    write_cv_.notify_all();
    for (std::thread& t : threads) t.join();
    double cpu = SelfCpuSeconds() - cpu_start;
    if (!failure_.ok()) return failure_;
    FloorResult result;
    result.operations = counted_;
    result.seconds = std::chrono::duration<double>(end_ - start_).count();
    result.operations_per_second = counted_ / result.seconds;
    result.average_batch = batches_ == 0 ? 0 : static_cast<double>(rows_written_) / batches_;
    result.cpu_us_per_operation = finished_ == 0 ? 0 : cpu * 1e6 / static_cast<double>(finished_);
    return result;
  }

 private:
  struct Row {
    int client;
    Bytes sealed;
  };

  // Compute does client `c`'s current step; returns whether it writes a row (into `row`).
  Status Compute(int c, int step, std::optional<Row>& row) {
    RETURN_IF_ERROR(hsm_.Mac(vault::MacKeyRole::kRecordId, pieces_.user));
    auto seal = [&]() -> Status {
      ASSIGN_OR_RETURN(vault::SealedBlob blob,
                       hsm_.Seal(hsm_.CurrentSealingKeyId(), pieces_.plaintext.Reveal(),
                                 pieces_.associated_data));
      row = Row{c, vault::EncodeSealedBlob(blob)};
      return OkStatus();
    };
    if (shape_ == FloorShape::kRegistration) return seal();
    switch (step) {
      case 0:
        return hsm_.Unseal(pieces_.sealed, pieces_.associated_data).status();
      case 1:
        RETURN_IF_ERROR(
            protocol::EvaluateWithProof(pieces_.key, pieces_.public_key, pieces_.blinded_input));
        return seal();
      default:
        return seal();
    }
  }

  int LastStep() const { return shape_ == FloorShape::kRegistration ? 0 : 2; }

  void Fail(const Status& status) {
    std::lock_guard lock(mu_);
    if (failure_.ok()) failure_ = status;
    done_cv_.notify_all();
  }

  // Finish records the end of client `c`'s operation and starts its next one if there is
  // time. Called with mu_ held.
  void FinishLocked(int c) {
    Clock::time_point now = Clock::now();
    if (now >= start_ && now < end_) ++counted_;
    ++finished_;
    steps_[c] = 0;
    if (now < end_) {
      ready_.push_back(c);
      work_cv_.notify_one();
    } else if (--active_ == 0) {
      done_cv_.notify_all();
    }
  }

  void WorkerLoop() {
    for (;;) {
      int c;
      int step;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !ready_.empty(); });
        if (stop_) return;
        c = ready_.front();
        ready_.pop_front();
        step = steps_[c];
      }
      for (;;) {
        std::optional<Row> row;
        Status status = Compute(c, step, row);
        if (!status.ok()) return Fail(status);
        if (row) {
          std::lock_guard lock(mu_);
          rows_.push_back(std::move(*row));
          write_cv_.notify_one();
          break;
        }
        if (step == LastStep()) {
          std::lock_guard lock(mu_);
          FinishLocked(c);
          break;
        }
        ++step;
        std::lock_guard lock(mu_);
        steps_[c] = step;
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
      Status status = db_.Exec("BEGIN");
      for (const Row& r : batch) {
        if (status.ok()) status = db_.Insert(ids_[r.client], r.sealed);
      }
      if (status.ok()) status = db_.Exec("COMMIT");
      if (!status.ok()) return Fail(status);
      std::lock_guard lock(mu_);
      ++batches_;
      rows_written_ += batch.size();
      for (const Row& r : batch) {
        if (steps_[r.client] == LastStep()) {
          FinishLocked(r.client);
        } else {
          ++steps_[r.client];
          ready_.push_back(r.client);
          work_cv_.notify_one();
        }
      }
    }
  }

  vault::Hsm& hsm_;
  Database& db_;
  Pieces& pieces_;
  const FloorShape shape_;
  const int clients_;
  std::vector<std::array<uint8_t, 32>> ids_;
  Clock::time_point start_, end_;

  std::mutex mu_;
  std::condition_variable work_cv_, write_cv_, done_cv_;
  std::deque<int> ready_;    // clients whose current step waits for a worker
  std::vector<Row> rows_;    // rows waiting for the writer
  std::vector<int> steps_;   // each client's current step
  int active_ = 0;
  bool stop_ = false;
  Status failure_;
  uint64_t counted_ = 0;
  uint64_t finished_ = 0;  // every operation, warm-up and drain included
  uint64_t batches_ = 0;
  uint64_t rows_written_ = 0;
};

template <typename Fn>
double MicrosPerCall(int calls, Fn&& fn) {
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / calls;
}

}  // namespace

StatusOr<std::unique_ptr<ScratchTokens>> ScratchTokens::Create(
    const std::filesystem::path& dir, const std::vector<std::string>& labels) {
  std::error_code ec;
  std::filesystem::create_directories(dir / "tokens", ec);
  if (ec) return UnavailableError("cannot create " + (dir / "tokens").string());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  std::filesystem::path conf = dir / "softhsm2.conf";
  std::ofstream(conf) << "directories.tokendir = " << (dir / "tokens").string()
                      << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  for (const std::string& label : labels) {
    std::filesystem::path pin_file = dir / (label + ".pin");
    std::string pin = RandomHex(16);
    {
      std::ofstream out(pin_file);
      out << pin;
    }
    std::filesystem::permissions(
        pin_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    // A throwaway token in this process's own directory: its PINs appear briefly in the
    // process list (softhsm2-util takes them as arguments only).
    RETURN_IF_ERROR(RunQuiet({"softhsm2-util", "--init-token", "--free", "--label", label,
                              "--pin", pin, "--so-pin", RandomHex(16)}));
  }
  return std::unique_ptr<ScratchTokens>(new ScratchTokens(dir));
}

StatusOr<std::unique_ptr<vault::Hsm>> ScratchTokens::Open(const std::string& label) {
  if (module_ == nullptr) {
    ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module, pkcs11::Module::Load(kSoftHsmModule));
    module_ = std::move(module);
  }
  std::filesystem::path pin_file = dir_ / (label + ".pin");
  std::string uri = "pkcs11:token=" + label + "?pin-source=file:" + pin_file.string();
  ASSIGN_OR_RETURN(pkcs11::TokenUri parsed, pkcs11::ParseTokenUri(uri));
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::SessionPool> pool,
                   pkcs11::SessionPool::Open(module_, std::move(parsed)));
  std::shared_ptr<pkcs11::SessionPool> shared_pool = std::move(pool);
  pkcs11::TokenDescription token = shared_pool->token();
  ASSIGN_OR_RETURN(pkcs11::Capabilities caps,
                   pkcs11::DetectCapabilities(*module_, token.slot, token.flags));
  RETURN_IF_ERROR(pkcs11::EnsureRealmKeys(*shared_pool, caps, {}));
  ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::TokenHsm> hsm, pkcs11::TokenHsm::Create(shared_pool));
  return std::unique_ptr<vault::Hsm>(std::move(hsm));
}

std::string ScratchTokens::description() const {
  return "SoftHSM2 token through pkcs11::TokenHsm (token files in " + (dir_ / "tokens").string() +
         ")";
}

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
  costs.hsm_anchor_write_us = MicrosPerCall(20, [&] { check(hsm.StoreAnchor(anchor)); });
  double after_us = 0;
  for (int i = 0; i < 20; ++i) {
    check(hsm.StoreAnchor(anchor));
    after_us += MicrosPerCall(
        1, [&] { check(hsm.Mac(vault::MacKeyRole::kRecordId, p.user).status()); });
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
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path.string() + suffix, ec);
  }
  return costs;
}

StatusOr<FloorResult> MeasureFloor(vault::Hsm& hsm, const std::filesystem::path& dir,
                                   FloorShape shape, int clients, int workers, double seconds) {
  ASSIGN_OR_RETURN(Pieces pieces, Pieces::Make(hsm));
  std::filesystem::path path = dir / "floor.sqlite";
  StatusOr<FloorResult> result = InternalError("floor not run");
  {
    ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path));
    Pipeline pipeline(hsm, *db, pieces, shape, clients);
    result = pipeline.Run(workers, seconds);
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path.string() + suffix, ec);
  }
  return result;
}

}  // namespace pinvault::api::bench
