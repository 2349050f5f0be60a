// Metrics: the realm server's Prometheus counters and histograms, rendered as the text
// exposition format (version 0.0.4) for `GET /metrics`.
//
// Labels are drawn from small fixed sets (operation names, outcome names, HTTP status
// codes, HSM call names); never user ids, tenants' users or anything derived from a PIN.
//
// InstrumentedHsm wraps a vault::Hsm and records the latency of each call, for the realm
// wiring in pinvaultd.
//
// Thread-safe: every method may be called from any thread.
#ifndef PINVAULT_API_SERVER_METRICS_H_
#define PINVAULT_API_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "vault/hsm.h"

namespace pinvault::api {

// Histogram: cumulative buckets with fixed upper bounds (seconds), plus sum and count.
// Thread-safe.
class Histogram {
 public:
  // Histogram uses `bounds` (ascending, in seconds); +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);

  // Observe records one value in seconds.
  void Observe(double seconds);

  // AppendText appends the `name_bucket`, `name_sum` and `name_count` lines with `labels`
  // (already formatted as `k="v",...`, may be empty).
  void AppendText(std::string_view name, std::string_view labels, std::string& out) const;

  uint64_t count() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf; guarded by mu_
  double sum_ = 0;                // guarded by mu_
  uint64_t count_ = 0;            // guarded by mu_
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // RecordRequest counts one protocol request (POST /req or /v1/secrets) by `operation`
  // ("Register1" ... "Delete", or "unknown" when the body did not decode) and `outcome`
  // ("ok", "not_registered", "no_guesses", "bad_unlock_key_tag", "version_mismatch",
  // "bad_request", "unauthenticated", "rate_limited", "upgrade_required", "too_large",
  // "unsupported_media_type", "unavailable", "internal", ...), and its latency.
  void RecordRequest(std::string_view endpoint, std::string_view operation,
                     std::string_view outcome, std::chrono::nanoseconds latency);

  // RecordHttpStatus counts one HTTP response by status code (every route).
  void RecordHttpStatus(int status);

  // AddGuessesSpent counts guesses consumed (each Recover2 Ok consumes one).
  void AddGuessesSpent(uint64_t n);

  // AddRecordsDestroyed counts records whose secrets were destroyed, by `reason`
  // ("guesses_exhausted", "deleted").
  void AddRecordsDestroyed(std::string_view reason, uint64_t n);

  // ObserveHsmCall records the latency of one HSM call named `call` ("seal", "unseal",
  // "mac", "verify_mac", "sign", "random", "load_anchor", "store_anchor") and whether it
  // failed.
  void ObserveHsmCall(std::string_view call, std::chrono::nanoseconds latency, bool failed);

  // ConnectionOpened / ConnectionClosed maintain the open-connections gauge.
  void ConnectionOpened();
  void ConnectionClosed();

  // RequestBegan / RequestEnded maintain the in-flight requests gauge: a request counts from
  // the end of its header until its answer is written.
  void RequestBegan();
  void RequestEnded();

  // SetReady sets the readiness gauge (1 ready, 0 not).
  void SetReady(bool ready);

  // RenderPrometheus returns the whole exposition text.
  std::string RenderPrometheus() const;

  // RequestCount returns the counter for (endpoint, operation, outcome) (for tests).
  uint64_t RequestCount(std::string_view endpoint, std::string_view operation,
                        std::string_view outcome) const;

  // HttpStatusCount returns how many responses had `status` (for tests).
  uint64_t HttpStatusCount(int status) const;

  uint64_t guesses_spent() const { return guesses_spent_.load(); }

 private:
  using RequestKey = std::tuple<std::string, std::string, std::string>;

  mutable std::mutex mu_;
  std::map<RequestKey, uint64_t> requests_;  // guarded by mu_
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Histogram>>
      request_latency_;                                            // guarded by mu_
  std::map<int, uint64_t> http_status_;                            // guarded by mu_
  std::map<std::string, uint64_t> records_destroyed_;              // guarded by mu_
  std::map<std::string, std::unique_ptr<Histogram>> hsm_latency_;  // guarded by mu_
  std::map<std::string, uint64_t> hsm_failures_;                   // guarded by mu_
  std::atomic<uint64_t> guesses_spent_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> requests_in_flight_{0};
  std::atomic<int> ready_{0};
};

// InstrumentedHsm forwards every call to `inner` and records its latency in `metrics`.
// Both must outlive it. Thread-safe if `inner` is.
class InstrumentedHsm : public vault::Hsm {
 public:
  InstrumentedHsm(vault::Hsm* inner, Metrics* metrics) : inner_(inner), metrics_(metrics) {}

  uint32_t CurrentSealingKeyId() const override { return inner_->CurrentSealingKeyId(); }
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

 private:
  vault::Hsm* inner_;
  Metrics* metrics_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_METRICS_H_
