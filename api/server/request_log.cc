#include "api/server/request_log.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "vault/bytes.h"

namespace pinvault::api {
namespace {

std::string UtcTimestamp() {
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(millis.count()));
  return out;
}

}  // namespace

RequestLogger::RequestLogger(std::ostream* out, bool enabled) : out_(out), enabled_(enabled) {
  if (RAND_bytes(salt_.data(), static_cast<int>(salt_.size())) != 1) {
    // Without a random salt the hashes would be linkable across processes; fall back to the
    // clock and the object address, which still differ per process.
    auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    auto a = reinterpret_cast<uintptr_t>(this);
    for (size_t i = 0; i < salt_.size(); ++i) {
      salt_[i] = static_cast<uint8_t>((t >> (8 * (i % 8))) ^ (a >> (8 * (i % 8))));
    }
  }
}

std::string RequestLogger::HashRecord(std::string_view tenant, std::string_view user) const {
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  uint8_t len[4] = {static_cast<uint8_t>(tenant.size() >> 24),
                    static_cast<uint8_t>(tenant.size() >> 16),
                    static_cast<uint8_t>(tenant.size() >> 8), static_cast<uint8_t>(tenant.size())};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, salt_.data(), salt_.size()) == 1 &&
            EVP_DigestUpdate(ctx, len, sizeof(len)) == 1 &&
            EVP_DigestUpdate(ctx, tenant.data(), tenant.size()) == 1 &&
            EVP_DigestUpdate(ctx, user.data(), user.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || digest_len < 8) return "unavailable";
  return HexEncode(ByteView(digest, 8));
}

std::string RequestLogger::FormatLine(const RequestLogEntry& entry) const {
  nlohmann::ordered_json line;
  line["ts"] = UtcTimestamp();
  line["endpoint"] = entry.endpoint;
  if (!entry.operation.empty()) line["operation"] = entry.operation;
  if (!entry.outcome.empty()) line["outcome"] = entry.outcome;
  line["status"] = entry.http_status;
  line["latency_ms"] = std::chrono::duration<double, std::milli>(entry.latency).count();
  if (entry.tenant) line["tenant"] = *entry.tenant;
  if (entry.tenant && entry.user) line["record"] = HashRecord(*entry.tenant, *entry.user);
  if (!entry.error.empty()) line["error"] = entry.error.substr(0, 200);
  // Invalid UTF-8 in a reason (it may quote a client's bytes) is replaced, never thrown.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void RequestLogger::Log(const RequestLogEntry& entry) {
  if (!enabled_ || out_ == nullptr) return;
  std::string text = FormatLine(entry);
  text.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  out_->write(text.data(), static_cast<std::streamsize>(text.size()));
  out_->flush();
}

}  // namespace pinvault::api
