#include "api/server/metrics.h"

#include <cmath>
#include <cstdio>

namespace pinvault::api {
namespace {

// Request latency buckets: from 250 us (an in-memory answer) to 10 s (a stuck HSM).
const std::vector<double>& RequestBounds() {
  static const std::vector<double> kBounds = {
      0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return kBounds;
}

// HSM call buckets: SoftHSM2 answers in microseconds, a network HSM in milliseconds.
const std::vector<double>& HsmBounds() {
  static const std::vector<double> kBounds = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                              0.0005,   0.001,   0.0025,   0.005,   0.01,   0.025,
                                              0.05,     0.1,     0.5,      1};
  return kBounds;
}

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

// EscapeLabel escapes a label value per the exposition format (backslash, quote, newline).
std::string EscapeLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Label(std::string_view key, std::string_view value) {
  return std::string(key) + "=\"" + EscapeLabel(value) + "\"";
}

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

void Histogram::AppendText(std::string_view name, std::string_view labels, std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string prefix = labels.empty() ? "" : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    double bound = i < bounds_.size() ? bounds_[i] : INFINITY;
    out += std::string(name) + "_bucket{" + prefix + Label("le", FormatDouble(bound)) + "} " +
           std::to_string(cumulative) + "\n";
  }
  std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  out += std::string(name) + "_sum" + braces + " " + FormatDouble(sum_) + "\n";
  out += std::string(name) + "_count" + braces + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics() = default;

void Metrics::RecordRequest(std::string_view endpoint, std::string_view operation,
                            std::string_view outcome, std::chrono::nanoseconds latency) {
  Histogram* histogram = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_[RequestKey(endpoint, operation, outcome)];
    auto& slot = request_latency_[{std::string(endpoint), std::string(operation)}];
    if (!slot) slot = std::make_unique<Histogram>(RequestBounds());
    histogram = slot.get();  // never removed, so the pointer stays valid
  }
  histogram->Observe(Seconds(latency));
}

void Metrics::RecordHttpStatus(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_status_[status];
}

void Metrics::AddGuessesSpent(uint64_t n) { guesses_spent_ += n; }

void Metrics::AddRecordsDestroyed(std::string_view reason, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  records_destroyed_[std::string(reason)] += n;
}

void Metrics::ObserveHsmCall(std::string_view call, std::chrono::nanoseconds latency, bool failed) {
  Histogram* histogram = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = hsm_latency_[std::string(call)];
    if (!slot) slot = std::make_unique<Histogram>(HsmBounds());
    histogram = slot.get();
    if (failed) ++hsm_failures_[std::string(call)];
  }
  histogram->Observe(Seconds(latency));
}

void Metrics::ConnectionOpened() { ++connections_; }
void Metrics::ConnectionClosed() { --connections_; }
void Metrics::RequestBegan() { ++requests_in_flight_; }
void Metrics::RequestEnded() { --requests_in_flight_; }
void Metrics::SetReady(bool ready) { ready_ = ready ? 1 : 0; }

uint64_t Metrics::RequestCount(std::string_view endpoint, std::string_view operation,
                               std::string_view outcome) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(RequestKey(endpoint, operation, outcome));
  return it == requests_.end() ? 0 : it->second;
}

uint64_t Metrics::HttpStatusCount(int status) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = http_status_.find(status);
  return it == http_status_.end() ? 0 : it->second;
}

std::string Metrics::RenderPrometheus() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);

  out += "# HELP pinvault_requests_total Protocol requests by endpoint, operation and outcome.\n";
  out += "# TYPE pinvault_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    const auto& [endpoint, operation, outcome] = key;
    out += "pinvault_requests_total{" + Label("endpoint", endpoint) + "," +
           Label("operation", operation) + "," + Label("outcome", outcome) + "} " +
           std::to_string(count) + "\n";
  }

  out +=
      "# HELP pinvault_request_duration_seconds Protocol request latency, receipt of the "
      "body to the response being ready.\n";
  out += "# TYPE pinvault_request_duration_seconds histogram\n";
  for (const auto& [key, histogram] : request_latency_) {
    histogram->AppendText("pinvault_request_duration_seconds",
                          Label("endpoint", key.first) + "," + Label("operation", key.second), out);
  }

  out += "# HELP pinvault_http_responses_total HTTP responses by status code.\n";
  out += "# TYPE pinvault_http_responses_total counter\n";
  for (const auto& [status, count] : http_status_) {
    out += "pinvault_http_responses_total{" + Label("code", std::to_string(status)) + "} " +
           std::to_string(count) + "\n";
  }

  out += "# HELP pinvault_guesses_spent_total PIN guesses consumed (Recover2 answered Ok).\n";
  out += "# TYPE pinvault_guesses_spent_total counter\n";
  out += "pinvault_guesses_spent_total " + std::to_string(guesses_spent_.load()) + "\n";

  out += "# HELP pinvault_records_destroyed_total Records whose secrets were destroyed.\n";
  out += "# TYPE pinvault_records_destroyed_total counter\n";
  for (std::string_view reason : {"guesses_exhausted", "deleted"}) {
    auto it = records_destroyed_.find(std::string(reason));
    out += "pinvault_records_destroyed_total{" + Label("reason", reason) + "} " +
           std::to_string(it == records_destroyed_.end() ? 0 : it->second) + "\n";
  }

  out += "# HELP pinvault_hsm_call_duration_seconds Latency of HSM calls.\n";
  out += "# TYPE pinvault_hsm_call_duration_seconds histogram\n";
  for (const auto& [call, histogram] : hsm_latency_) {
    histogram->AppendText("pinvault_hsm_call_duration_seconds", Label("call", call), out);
  }
  out += "# HELP pinvault_hsm_call_failures_total HSM calls that returned an error.\n";
  out += "# TYPE pinvault_hsm_call_failures_total counter\n";
  for (const auto& [call, count] : hsm_failures_) {
    out += "pinvault_hsm_call_failures_total{" + Label("call", call) + "} " +
           std::to_string(count) + "\n";
  }

  out += "# HELP pinvault_http_connections Open HTTP connections.\n";
  out += "# TYPE pinvault_http_connections gauge\n";
  out += "pinvault_http_connections " + std::to_string(connections_.load()) + "\n";
  out +=
      "# HELP pinvault_http_requests_in_flight Requests whose header has arrived and whose "
      "answer is not written yet.\n";
  out += "# TYPE pinvault_http_requests_in_flight gauge\n";
  out += "pinvault_http_requests_in_flight " + std::to_string(requests_in_flight_.load()) + "\n";
  out += "# HELP pinvault_ready 1 while the realm can serve requests.\n";
  out += "# TYPE pinvault_ready gauge\n";
  out += "pinvault_ready " + std::to_string(ready_.load()) + "\n";
  return out;
}

// ---- InstrumentedHsm ----

namespace {

template <typename Result>
bool Failed(const Result& r) {
  return !r.ok();
}

class CallTimer {
 public:
  CallTimer(Metrics* metrics, std::string_view call)
      : metrics_(metrics), call_(call), start_(std::chrono::steady_clock::now()) {}
  template <typename Result>
  Result Done(Result result) {
    metrics_->ObserveHsmCall(call_, std::chrono::steady_clock::now() - start_, Failed(result));
    return result;
  }

 private:
  Metrics* metrics_;
  std::string_view call_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

StatusOr<vault::SealedBlob> InstrumentedHsm::Seal(uint32_t key_id,
                                                  std::span<const uint8_t> plaintext,
                                                  ByteView associated_data) {
  CallTimer t(metrics_, "seal");
  return t.Done(inner_->Seal(key_id, plaintext, associated_data));
}

StatusOr<SecretBytes> InstrumentedHsm::Unseal(const vault::SealedBlob& blob,
                                              ByteView associated_data) {
  CallTimer t(metrics_, "unseal");
  return t.Done(inner_->Unseal(blob, associated_data));
}

StatusOr<vault::MacTag> InstrumentedHsm::Mac(vault::MacKeyRole role, ByteView data) {
  CallTimer t(metrics_, "mac");
  return t.Done(inner_->Mac(role, data));
}

Status InstrumentedHsm::VerifyMac(vault::MacKeyRole role, ByteView data, ByteView tag) {
  CallTimer t(metrics_, "verify_mac");
  return t.Done(inner_->VerifyMac(role, data, tag));
}

StatusOr<Bytes> InstrumentedHsm::Sign(ByteView message) {
  CallTimer t(metrics_, "sign");
  return t.Done(inner_->Sign(message));
}

StatusOr<vault::SigningPublicKey> InstrumentedHsm::AuditPublicKey() {
  CallTimer t(metrics_, "audit_public_key");
  return t.Done(inner_->AuditPublicKey());
}

Status InstrumentedHsm::GenerateRandom(std::span<uint8_t> out) {
  CallTimer t(metrics_, "random");
  return t.Done(inner_->GenerateRandom(out));
}

StatusOr<std::optional<Bytes>> InstrumentedHsm::LoadAnchor(uint32_t partition) {
  CallTimer t(metrics_, "load_anchor");
  return t.Done(inner_->LoadAnchor(partition));
}

Status InstrumentedHsm::StoreAnchor(uint32_t partition, uint64_t term, ByteView anchor) {
  CallTimer t(metrics_, "store_anchor");
  return t.Done(inner_->StoreAnchor(partition, term, anchor));
}

}  // namespace pinvault::api
