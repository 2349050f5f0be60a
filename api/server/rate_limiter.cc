#include "api/server/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace pinvault::api {
namespace {

using std::chrono::nanoseconds;

bool Enabled(const TokenBucketConfig& c) { return c.rate_per_second > 0; }

// How many least-recently-used buckets each Acquire inspects for idleness.
constexpr int kIdleSweepPerAcquire = 2;

TokenBucketConfig Sanitize(TokenBucketConfig c) {
  if (!std::isfinite(c.rate_per_second) || c.rate_per_second <= 0) {
    return TokenBucketConfig{0, 0};
  }
  if (!std::isfinite(c.burst) || c.burst < 1) c.burst = 1;
  return c;
}

double SecondsBetween(nanoseconds from, nanoseconds to) {
  if (to <= from) return 0;
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

MonotonicClock SteadyMonotonicClock() {
  return [] {
    return std::chrono::duration_cast<nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  };
}

Status ValidateRateLimiterConfig(const RateLimiterConfig& config) {
  for (const auto* c : {&config.tenant, &config.user}) {
    const char* which = c == &config.tenant ? "tenant" : "user";
    if (!std::isfinite(c->rate_per_second) || !std::isfinite(c->burst)) {
      return InvalidArgumentError(std::string("rate limit for ") + which + " is not finite");
    }
    if (c->rate_per_second > 0 && c->burst < 1) {
      return InvalidArgumentError(std::string("rate limit burst for ") + which +
                                  " must be at least 1");
    }
  }
  if (config.max_tenants == 0 || config.max_users == 0) {
    return InvalidArgumentError("rate limiter memory bounds must be positive");
  }
  return OkStatus();
}

RateLimiter::RateLimiter(RateLimiterConfig config, MonotonicClock clock)
    : config_(std::move(config)), clock_(clock ? std::move(clock) : SteadyMonotonicClock()) {
  config_.tenant = Sanitize(config_.tenant);
  config_.user = Sanitize(config_.user);
  tenants_.config = config_.tenant;
  users_.config = config_.user;
  tenants_.max_per_shard = std::max<size_t>(1, (config_.max_tenants + kShards - 1) / kShards);
  users_.max_per_shard = std::max<size_t>(1, (config_.max_users + kShards - 1) / kShards);
}

namespace {

// Refill brings `tokens` up to date at `now`.
template <typename Bucket>
void Refill(Bucket& b, const TokenBucketConfig& c, nanoseconds now) {
  b.tokens = std::min(c.burst, b.tokens + c.rate_per_second * SecondsBetween(b.updated, now));
  if (now > b.updated) b.updated = now;
}

// WaitFor is how long until `b` holds one token.
template <typename Bucket>
nanoseconds WaitFor(const Bucket& b, const TokenBucketConfig& c) {
  double seconds = (1.0 - b.tokens) / c.rate_per_second;
  auto wait = std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(seconds));
  return std::max<nanoseconds>(wait, std::chrono::milliseconds(1));
}

}  // namespace

RateLimitDecision RateLimiter::Acquire(std::string_view tenant, std::string_view user) {
  const nanoseconds now = clock_();

  // Find or create a bucket in `table`, refreshed to `now`, most recently used; drops idle
  // (refilled-to-full) buckets from the LRU end and enforces the shard bound.
  auto touch = [now](Table& table, Shard& shard, const std::string& key) -> Bucket& {
    auto it = shard.buckets.find(key);
    if (it == shard.buckets.end()) {
      shard.lru.push_front(key);
      Bucket fresh;
      fresh.tokens = table.config.burst;
      fresh.updated = now;
      fresh.lru_position = shard.lru.begin();
      it = shard.buckets.emplace(key, fresh).first;
    } else {
      shard.lru.splice(shard.lru.begin(), shard.lru, it->second.lru_position);
      Refill(it->second, table.config, now);
    }
    for (int i = 0; i < kIdleSweepPerAcquire && shard.lru.size() > 1; ++i) {
      auto oldest = shard.buckets.find(shard.lru.back());
      Refill(oldest->second, table.config, now);
      if (oldest->second.tokens < table.config.burst) break;
      shard.lru.pop_back();
      shard.buckets.erase(oldest);
    }
    while (shard.buckets.size() > table.max_per_shard && shard.lru.size() > 1) {
      shard.buckets.erase(shard.lru.back());
      shard.lru.pop_back();
    }
    return it->second;
  };

  const bool tenant_on = Enabled(tenants_.config);
  const bool user_on = Enabled(users_.config);
  std::string tenant_key(tenant);
  std::string user_key;
  if (user_on) {
    user_key.reserve(tenant.size() + 1 + user.size());
    user_key.append(tenant).push_back('\0');
    user_key.append(user);
  }
  Shard& tshard = tenants_.shards[std::hash<std::string>()(tenant_key) % kShards];
  Shard& ushard = users_.shards[std::hash<std::string>()(user_key) % kShards];

  // Lock order: tenant table, then user table (distinct tables, so never the same mutex).
  std::unique_lock<std::mutex> tlock;
  std::unique_lock<std::mutex> ulock;
  Bucket* tb = nullptr;
  Bucket* ub = nullptr;
  if (tenant_on) {
    tlock = std::unique_lock(tshard.mu);
    tb = &touch(tenants_, tshard, tenant_key);
  }
  if (user_on) {
    ulock = std::unique_lock(ushard.mu);
    ub = &touch(users_, ushard, user_key);
  }

  RateLimitDecision d;
  const bool tenant_ok = tb == nullptr || tb->tokens >= 1.0;
  const bool user_ok = ub == nullptr || ub->tokens >= 1.0;
  if (tenant_ok && user_ok) {
    if (tb != nullptr) tb->tokens -= 1.0;
    if (ub != nullptr) ub->tokens -= 1.0;
    return d;
  }
  d.allowed = false;
  nanoseconds wait{0};
  if (!tenant_ok) wait = std::max(wait, WaitFor(*tb, tenants_.config));
  if (!user_ok) wait = std::max(wait, WaitFor(*ub, users_.config));
  d.retry_after = wait;
  d.limited_by =
      !user_ok ? RateLimitDecision::LimitedBy::kUser : RateLimitDecision::LimitedBy::kTenant;
  return d;
}

size_t RateLimiter::tracked_tenants() const {
  size_t n = 0;
  for (const Shard& s : tenants_.shards) {
    std::lock_guard lock(s.mu);
    n += s.buckets.size();
  }
  return n;
}

size_t RateLimiter::tracked_users() const {
  size_t n = 0;
  for (const Shard& s : users_.shards) {
    std::lock_guard lock(s.mu);
    n += s.buckets.size();
  }
  return n;
}

}  // namespace pinvault::api
