// RateLimiter: token buckets per tenant and per (tenant, user), for answering 429.
//
// Each request takes one token from its tenant's bucket and one from its user's bucket,
// and is allowed only if both have a token (a refused request takes nothing). A bucket
// holds at most `burst` tokens and refills at `rate_per_second`.
//
// Memory is bounded: buckets that have refilled to full carry no state worth keeping and
// are dropped first; beyond `max_tenants` / `max_users` the least recently used bucket is
// dropped (which at worst hands that caller a fresh burst).
//
// Thread-safe (one mutex per shard of buckets). Time comes from an injectable monotonic
// clock so tests never sleep.
#ifndef PINVAULT_API_SERVER_RATE_LIMITER_H_
#define PINVAULT_API_SERVER_RATE_LIMITER_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vault/status.h"

namespace pinvault::api {

// MonotonicClock returns a monotonic time (any fixed origin). Must be thread-safe.
using MonotonicClock = std::function<std::chrono::nanoseconds()>;

// SteadyMonotonicClock reads std::chrono::steady_clock.
MonotonicClock SteadyMonotonicClock();

// TokenBucketConfig: one kind of bucket. rate_per_second <= 0 disables the limit.
struct TokenBucketConfig {
  double rate_per_second = 0;
  double burst = 0;  // capacity in requests; at least 1 when enabled
};

// RateLimiterConfig: the limits and memory bounds. The defaults allow a tenant 500
// requests/s (burst 1000) and a user 5 requests/s (burst 30: a registration and a few
// recoveries against one realm, with the SDK's retries, go through in one burst).
struct RateLimiterConfig {
  TokenBucketConfig tenant{500, 1000};
  TokenBucketConfig user{5, 30};
  size_t max_tenants = 10000;
  size_t max_users = 200000;
};

// ValidateRateLimiterConfig: InvalidArgument if a rate or burst is not finite, an enabled
// bucket has burst < 1, or a memory bound is 0.
Status ValidateRateLimiterConfig(const RateLimiterConfig& config);

// RateLimitDecision: the answer to one request.
struct RateLimitDecision {
  enum class LimitedBy { kNone, kTenant, kUser };
  bool allowed = true;
  LimitedBy limited_by = LimitedBy::kNone;  // kNone when allowed
  // retry_after: when refused, how long until the request would be allowed (at least one
  // millisecond); zero when allowed. For a Retry-After header round up to whole seconds.
  std::chrono::nanoseconds retry_after{0};
};

class RateLimiter {
 public:
  // RateLimiter uses `config` (call ValidateRateLimiterConfig first; invalid values are
  // clamped to sane ones) and `clock` (null means SteadyMonotonicClock()).
  RateLimiter(RateLimiterConfig config, MonotonicClock clock);
  explicit RateLimiter(RateLimiterConfig config) : RateLimiter(std::move(config), nullptr) {}
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Acquire decides one request of `user` under `tenant`, taking a token from both buckets
  // if allowed.
  RateLimitDecision Acquire(std::string_view tenant, std::string_view user);

  // tracked_tenants / tracked_users count the buckets held (for tests and metrics).
  size_t tracked_tenants() const;
  size_t tracked_users() const;

 private:
  static constexpr size_t kShards = 16;

  struct Bucket {
    double tokens = 0;
    std::chrono::nanoseconds updated{0};
    std::list<std::string>::iterator lru_position;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;  // guarded by mu
    std::list<std::string> lru;                       // front = most recent; guarded by mu
  };
  struct Table {
    TokenBucketConfig config;
    size_t max_per_shard = 1;
    std::array<Shard, kShards> shards;
  };

  RateLimiterConfig config_;
  MonotonicClock clock_;
  Table tenants_;
  Table users_;
};

}  // namespace pinvault::api

#endif  // PINVAULT_API_SERVER_RATE_LIMITER_H_
