// The floor the benchmarks compare a realm with: the work a realm cannot avoid, done on the
// same machine in the same run, with nothing else around it (no HTTP, no JWT, no CBOR, no
// Merkle tree, no record cache). One implementation for both benchmarks: pinvault-bench (the
// load generator, through MeasureFloor) and bench_vault (the in-process core benchmark, which
// feeds a FloorPipeline from the same closed loop it drives the realm with).
//
// The operations (FloorShape):
//   kRecovery, a full recovery (the realm's three requests, in order):
//     Recover1: HSM HMAC (record id) + HSM AES-GCM unseal of a record
//     Recover2: HSM HMAC + EvaluateWithProof (OPRF evaluation and DLEQ proof) + HSM seal,
//               then one row durable in a batched SQLite transaction before the next step
//     Recover3: HSM HMAC + HSM seal, then one row durable
//   kRegistration: Register2's HSM HMAC + HSM seal + one durable row.
//   kRecoveryRequest, one Recover2 of a user whose record is cached: EvaluateWithProof + HSM
//     unseal + HSM seal + one durable row (2 HSM calls).
// The HSM is whatever vault::Hsm the caller gives (a SoftHSM2 token through pkcs11::TokenHsm,
// exactly as the realm reaches its own); rows are record-sized sealed blobs written by one
// writer thread in group commits (WAL, synchronous=FULL), as the realm's committer does.
//
// ScratchTokens makes throwaway SoftHSM2 tokens with the realm keys generated on them, for
// the floor and for realms embedded in the benchmark process.
#ifndef PINVAULT_API_BENCH_FLOOR_H_
#define PINVAULT_API_BENCH_FLOOR_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pkcs11/module.h"
#include "vault/hsm.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::api::bench {

// ScratchTokens: a SoftHSM2 token directory of this process. Create writes
// `dir`/softhsm2.conf, points SOFTHSM2_CONF at it, loads SoftHSM2 and initialises one token
// per label in the process (pkcs11::InitializeToken; random PINs, the user PINs kept in
// secure memory and written nowhere). Open generates the realm keys on a token and returns it
// as a vault::Hsm. The SoftHSM2 module stays loaded while the ScratchTokens and any Hsm it
// opened live. Not thread-safe.
class ScratchTokens {
 public:
  // Create fails as pkcs11::WriteSoftHsmConfig (INTERNAL), Module::Load (NOT_FOUND if the
  // SoftHSM2 module is missing, FAILED_PRECONDITION if SoftHSM2 is already loaded in this
  // process) or pkcs11::InitializeToken. It must run before anything else in the process loads
  // SoftHSM2.
  static StatusOr<std::unique_ptr<ScratchTokens>> Create(const std::filesystem::path& dir,
                                                         const std::vector<std::string>& labels);

  // Open returns token `label` (one of Create's) as an Hsm holding the realm keys (created on
  // first use, as pkcs11::ProvisionRealm does). NOT_FOUND for a label Create did not make.
  StatusOr<std::unique_ptr<vault::Hsm>> Open(const std::string& label);

  // description names the HSM for reports.
  std::string description() const;

 private:
  ScratchTokens(std::filesystem::path dir, std::shared_ptr<pkcs11::Module> module)
      : dir_(std::move(dir)), module_(std::move(module)) {}

  std::filesystem::path dir_;
  std::shared_ptr<pkcs11::Module> module_;
  std::map<std::string, SecretBytes> user_pins_;  // by token label
};

// FloorShape: which operation the floor does (see the file comment).
enum class FloorShape { kRecovery, kRegistration, kRecoveryRequest };

// FloorPipeline does floor operations of one shape with the realm's structure: `workers`
// threads do the computing and HSM steps, one writer thread commits the rows of every waiting
// operation in one durable SQLite transaction, and an operation's next step starts once its
// row is durable. Operations come in through Submit, so any driver can feed it: MeasureFloor's
// closed-loop clients, or bench_vault's closed loop. Submit and stats are thread-safe.
class FloorPipeline {
 public:
  // Done is called once per submitted operation, on a pipeline thread: OK once its last step
  // is done (its last row durable), or the first failure (an HSM call, an SQLite statement).
  // It must not block; it may call Submit.
  using Done = std::function<void(const Status&)>;

  // Stats counts the writer's durable transactions and the rows they held.
  struct Stats {
    uint64_t batches = 0;
    uint64_t rows = 0;
  };

  // Create opens (creating) the SQLite database `db_path`, seals the record that unseal steps
  // open, and starts `workers` worker threads (at least 1) and the writer. `hsm` must hold the
  // realm keys and outlive the pipeline. INTERNAL if the database cannot be set up; the HSM's
  // error if the seal fails.
  static StatusOr<std::unique_ptr<FloorPipeline>> Create(vault::Hsm& hsm,
                                                         const std::filesystem::path& db_path,
                                                         FloorShape shape, int workers);

  FloorPipeline(const FloorPipeline&) = delete;
  FloorPipeline& operator=(const FloorPipeline&) = delete;
  // ~FloorPipeline stops and joins the threads and closes the database (the file stays).
  // Destroy it only once every submitted operation has completed: operations still queued
  // are dropped without their Done.
  ~FloorPipeline();

  // Submit starts one operation for `client`. Its rows go to the table's row of that client,
  // rewritten by each of the client's operations (as a recovery rewrites its user's record).
  // Never blocks on the work.
  void Submit(uint32_t client, Done done);

  // stats returns the counts so far.
  Stats stats() const;

 private:
  class Impl;
  explicit FloorPipeline(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// FloorCosts: single-thread costs of the pieces, in microseconds per call.
struct FloorCosts {
  double evaluate_with_proof_us = 0;
  double hsm_hmac_us = 0;
  double hsm_seal_us = 0;
  double hsm_unseal_us = 0;
  double sqlite_row_in_batch_us = 0;  // one row of a 64-row durable transaction
  double sqlite_commit_us = 0;        // the durable commit of that transaction alone
  // An anchor write (Hsm::StoreAnchor: a token object created, the previous one destroyed),
  // which the realm does once per group commit. Not part of the floor operations above.
  double hsm_anchor_write_us = 0;
  // The first HSM HMAC after an anchor write (SoftHSM2 re-reads the token's objects when the
  // token changed), to compare with hsm_hmac_us.
  double hsm_hmac_after_anchor_write_us = 0;
};

// FloorResult: what a floor run measured.
struct FloorResult {
  double operations_per_second = 0;
  double average_batch = 0;  // rows per SQLite transaction
  uint64_t operations = 0;
  double seconds = 0;
  // CPU time of this process per operation over the whole run (warm-up included), which
  // other load on the machine disturbs less than the throughput.
  double cpu_us_per_operation = 0;
};

// MeasureFloorCosts times each piece alone on one thread (`hsm` must hold realm keys; the
// database file is created in `dir`).
StatusOr<FloorCosts> MeasureFloorCosts(vault::Hsm& hsm, const std::filesystem::path& dir);

// MeasureFloor runs `clients` closed-loop operations of `shape` on a FloorPipeline with
// `workers` worker threads, against `hsm` and an SQLite database in `dir` (removed
// afterwards): 300 ms of warm-up, then operations finishing within the next `seconds` are
// counted. Returns the first failure of any operation (after the operations in flight end).
StatusOr<FloorResult> MeasureFloor(vault::Hsm& hsm, const std::filesystem::path& dir,
                                   FloorShape shape, int clients, int workers, double seconds);

}  // namespace pinvault::api::bench

#endif  // PINVAULT_API_BENCH_FLOOR_H_
