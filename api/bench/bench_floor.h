// The floor pinvault-bench compares a realm with: the work a realm cannot avoid, done on the
// same machine in the same run, with nothing else around it (no HTTP, no JWT, no CBOR, no
// Merkle tree, no record cache).
//
// Per full recovery (the realm's three requests, in order):
//   Recover1: HSM HMAC (record id) + HSM AES-GCM unseal of a record
//   Recover2: HSM HMAC + EvaluateWithProof (OPRF evaluation and DLEQ proof) + HSM seal,
//             then one row durable in a batched SQLite transaction before the next step
//   Recover3: HSM HMAC + HSM seal, then one row durable
// Per full registration: Register2's HSM HMAC + HSM seal + one durable row.
// The HSM is a SoftHSM2 token reached through pkcs11/ (pkcs11::TokenHsm), exactly as the
// realm reaches its own; rows are record-sized sealed blobs written by one writer thread in
// group commits (WAL, synchronous=FULL), as the realm's committer does.
//
// ScratchTokens makes throwaway SoftHSM2 tokens with the realm keys generated on them, for
// the floor and for realms embedded in the benchmark process.
#ifndef PINVAULT_API_BENCH_FLOOR_H_
#define PINVAULT_API_BENCH_FLOOR_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pkcs11/module.h"
#include "vault/hsm.h"
#include "vault/status.h"

namespace pinvault::api::bench {

// ScratchTokens: a SoftHSM2 token directory of this process. Create writes
// `dir`/softhsm2.conf, points SOFTHSM2_CONF at it and initialises one token per label (PINs
// random, the user PIN in a 0600 file in the directory) -- all before SoftHSM2 is loaded,
// since the module only sees the tokens present when it starts. Open generates the realm keys
// on a token and returns it as a vault::Hsm. Not thread-safe.
class ScratchTokens {
 public:
  // Create fails UNAVAILABLE if softhsm2-util or the SoftHSM2 module is missing. It must run
  // before anything else in the process loads SoftHSM2.
  static StatusOr<std::unique_ptr<ScratchTokens>> Create(const std::filesystem::path& dir,
                                                         const std::vector<std::string>& labels);

  // Open returns token `label` (one of Create's) as an Hsm holding the realm keys.
  StatusOr<std::unique_ptr<vault::Hsm>> Open(const std::string& label);

  // description names the HSM for reports.
  std::string description() const;

 private:
  explicit ScratchTokens(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path dir_;
  std::shared_ptr<pkcs11::Module> module_;
};

// FloorShape: which operation the floor does.
enum class FloorShape { kRecovery, kRegistration };

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

// MeasureFloor runs `clients` closed-loop operations of `shape` for `seconds` on `workers`
// threads plus one writer thread, against `hsm` and an SQLite database in `dir` (removed
// afterwards). INTERNAL if a piece fails.
StatusOr<FloorResult> MeasureFloor(vault::Hsm& hsm, const std::filesystem::path& dir,
                                   FloorShape shape, int clients, int workers, double seconds);

}  // namespace pinvault::api::bench

#endif  // PINVAULT_API_BENCH_FLOOR_H_
