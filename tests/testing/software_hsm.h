// SoftwareHsm: a vault::Hsm in plain process memory, for unit tests and benchmarks only.
//
// - Sealing: AES-256-GCM (OpenSSL EVP), random 96-bit IVs, several key ids for rotation.
// - MACs: HMAC-SHA256 (OpenSSL) for the record-id and anchor roles.
// - Signing: Ed25519 (libsodium).
// - Keys are derived from a 32-byte seed, so two processes (e.g. a crash-test child and its
//   parent) given the same seed hold the same keys.
// - The anchors (one per partition) live in memory or, if a path is given, in files replaced
//   atomically (write temp, fsync, rename, fsync directory), so they survive SIGKILL:
//   partition 0's at the path, partition p's at path + ".p<p>", and those of a lease term
//   t > 0 with ".t<t>" appended. The highest term is the anchor; a write under an older term
//   than one present is refused (FAILED_PRECONDITION), as vault/hsm.h asks.
// - Fault switches make calls fail with UNAVAILABLE, to simulate the HSM being gone.
//
// Keys are ordinary memory here: this class gives none of an HSM's protection.
// Thread-safety: all methods are safe for concurrent use.
#ifndef PINVAULT_TESTS_TESTING_SOFTWARE_HSM_H_
#define PINVAULT_TESTS_TESTING_SOFTWARE_HSM_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "vault/hsm.h"

namespace pinvault::testing {

class SoftwareHsm final : public vault::Hsm {
 public:
  using Seed = std::array<uint8_t, 32>;

  // Operation names the calls that fault switches and counters address.
  enum class Operation {
    kSeal,
    kUnseal,
    kMac,
    kVerifyMac,
    kSign,
    kAuditPublicKey,
    kGenerateRandom,
    kLoadAnchor,
    kStoreAnchor,
    kCount,
  };

  // SoftwareHsm derives its keys from `seed` (random if nullopt). With a non-empty
  // `anchor_path` the anchor is kept in that file. The sealing key id starts at 1.
  explicit SoftwareHsm(std::optional<Seed> seed = std::nullopt, std::string anchor_path = "");

  uint32_t CurrentSealingKeyId() const override;
  StatusOr<vault::SealedBlob> Seal(uint32_t key_id, std::span<const uint8_t> plaintext,
                                   ByteView associated_data) override;
  StatusOr<SecretBytes> Unseal(const vault::SealedBlob& blob, ByteView associated_data) override;
  StatusOr<vault::MacTag> Mac(vault::MacKeyRole role, ByteView data) override;
  Status VerifyMac(vault::MacKeyRole role, ByteView data, ByteView tag) override;
  StatusOr<Bytes> Sign(ByteView message) override;
  StatusOr<vault::SigningPublicKey> AuditPublicKey() override;
  Status GenerateRandom(std::span<uint8_t> out) override;
  StatusOr<std::optional<Bytes>> LoadAnchor(uint32_t partition) override;
  Status StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) override;

  // ---- Test controls ----

  // AddSealingKey makes key `key_id` (derived from the seed) available; RotateTo also makes
  // it the current one; RemoveSealingKey forgets it (Unseal then answers NOT_FOUND).
  void AddSealingKey(uint32_t key_id);
  void RotateTo(uint32_t key_id);
  void RemoveSealingKey(uint32_t key_id);

  // SetUnavailable makes every call fail with UNAVAILABLE while true (the token is gone).
  void SetUnavailable(bool unavailable);

  // SetOperationUnavailable makes one kind of call fail with UNAVAILABLE while true.
  void SetOperationUnavailable(Operation op, bool unavailable);

  // FailAfterCalls lets `calls` more calls succeed, then behaves as SetUnavailable(true).
  // A negative value disarms it.
  void FailAfterCalls(int64_t calls);

  // CallCount returns how many calls of `op` were attempted.
  uint64_t CallCount(Operation op) const;

  // WipeAnchor removes every partition's anchor (as if the token had been reinitialised).
  void WipeAnchor();

 private:
  Status CheckAvailable(Operation op);
  vault::MacTag HmacSha256(const std::array<uint8_t, 32>& key, ByteView data) const;
  std::string AnchorPath(uint32_t partition, uint64_t term) const;
  StatusOr<uint64_t> HighestFileTerm(uint32_t partition) const;

  const Seed seed_;
  const std::string anchor_path_;
  std::array<uint8_t, 32> record_id_key_{};
  std::array<uint8_t, 32> anchor_key_{};
  std::array<uint8_t, 64> signing_secret_key_{};
  std::array<uint8_t, 32> signing_public_key_{};

  mutable std::mutex mu_;
  std::map<uint32_t, std::array<uint8_t, 32>> sealing_keys_;  // guarded by mu_
  uint32_t current_key_id_ = 1;                               // guarded by mu_
  std::map<uint32_t, std::map<uint64_t, Bytes>> anchors_;  // by partition, term; mu_ (no file)
  bool unavailable_ = false;                                  // guarded by mu_
  std::array<bool, static_cast<size_t>(Operation::kCount)> op_unavailable_{};  // mu_
  int64_t calls_before_failure_ = -1;                                          // mu_
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Operation::kCount)> calls_{};
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_SOFTWARE_HSM_H_
