// Token-bucket rate limiting per tenant and per user, driven by a fake monotonic clock.
#include "api/server/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace pinvault::api {
namespace {

using ::pinvault::testing::StatusIs;
using namespace std::chrono_literals;
using LimitedBy = RateLimitDecision::LimitedBy;

class RateLimiterTest : public ::testing::Test {
 protected:
  MonotonicClock Clock() {
    return [this] { return std::chrono::nanoseconds(now_ns_.load()); };
  }
  void Advance(std::chrono::nanoseconds d) { now_ns_ += d.count(); }

  std::atomic<int64_t> now_ns_{1'000'000'000'000};
};

TEST_F(RateLimiterTest, UserBurstThenRefill) {
  RateLimiterConfig config;
  config.tenant = {1000, 1000};
  config.user = {2, 3};  // 2/s, burst 3
  RateLimiter limiter(config, Clock());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed) << i;
  RateLimitDecision d = limiter.Acquire("acme", "alice");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limited_by, LimitedBy::kUser);
  EXPECT_EQ(d.retry_after, 500ms);  // one token at 2/s

  Advance(499ms);
  d = limiter.Acquire("acme", "alice");
  EXPECT_FALSE(d.allowed);
  EXPECT_GE(d.retry_after, 1ms);
  EXPECT_LE(d.retry_after, 2ms);
  Advance(1ms);
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);

  // A long idle period refills to the burst, never beyond.
  Advance(1h);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed) << i;
  EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);
}

TEST_F(RateLimiterTest, UsersAndTenantsAreIsolated) {
  RateLimiterConfig config;
  config.tenant = {1000, 1000};
  config.user = {1, 2};
  RateLimiter limiter(config, Clock());
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);
  // Another user of the same tenant, and the same user id under another tenant, are fresh.
  EXPECT_TRUE(limiter.Acquire("acme", "bob").allowed);
  EXPECT_TRUE(limiter.Acquire("other", "alice").allowed);
  EXPECT_TRUE(limiter.Acquire("other", "alice").allowed);
  EXPECT_FALSE(limiter.Acquire("other", "alice").allowed);
  // Keys are not confusable by concatenation.
  EXPECT_TRUE(limiter.Acquire("acm", std::string("e\0alice", 7)).allowed);
  EXPECT_TRUE(limiter.Acquire("acmea", "lice").allowed);
}

TEST_F(RateLimiterTest, TenantLimitAppliesAcrossUsers) {
  RateLimiterConfig config;
  config.tenant = {10, 5};
  config.user = {100, 100};
  RateLimiter limiter(config, Clock());
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(limiter.Acquire("acme", "user" + std::to_string(i)).allowed);
  }
  RateLimitDecision d = limiter.Acquire("acme", "fresh-user");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limited_by, LimitedBy::kTenant);
  EXPECT_EQ(d.retry_after, 100ms);
  EXPECT_TRUE(limiter.Acquire("otherco", "fresh-user").allowed);
  Advance(100ms);
  EXPECT_TRUE(limiter.Acquire("acme", "fresh-user").allowed);
}

TEST_F(RateLimiterTest, RefusedRequestsTakeNothing) {
  RateLimiterConfig config;
  config.tenant = {1, 2};
  config.user = {1, 1};
  RateLimiter limiter(config, Clock());
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  // alice is out; her refused attempts must not drain the tenant's second token.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);
  EXPECT_TRUE(limiter.Acquire("acme", "bob").allowed);
  RateLimitDecision d = limiter.Acquire("acme", "carol");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limited_by, LimitedBy::kTenant);
}

TEST_F(RateLimiterTest, DisabledLimits) {
  RateLimiterConfig config;
  config.tenant = {0, 0};
  config.user = {0, 0};
  RateLimiter limiter(config, Clock());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  EXPECT_EQ(limiter.tracked_tenants(), 0u);
  EXPECT_EQ(limiter.tracked_users(), 0u);
}

TEST_F(RateLimiterTest, ClockGoingBackwardsDoesNotMintTokens) {
  RateLimiterConfig config;
  config.user = {1, 1};
  RateLimiter limiter(config, Clock());
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
  Advance(-10s);
  EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);
  Advance(10s);
  EXPECT_FALSE(limiter.Acquire("acme", "alice").allowed);
  Advance(1s);
  EXPECT_TRUE(limiter.Acquire("acme", "alice").allowed);
}

TEST_F(RateLimiterTest, MemoryIsBounded) {
  RateLimiterConfig config;
  config.tenant = {1000, 1000};
  config.user = {1, 5};
  config.max_users = 64;
  config.max_tenants = 16;
  RateLimiter limiter(config, Clock());
  for (int i = 0; i < 5000; ++i) {
    limiter.Acquire("tenant" + std::to_string(i % 100), "user" + std::to_string(i));
    Advance(1ms);
  }
  // Bounds are per shard (16 shards), rounded up: at most max/16 rounded up, times 16.
  EXPECT_LE(limiter.tracked_users(), 64u);
  EXPECT_LE(limiter.tracked_tenants(), 16u);
  EXPECT_GT(limiter.tracked_users(), 0u);
}

TEST_F(RateLimiterTest, IdleBucketsAreDropped) {
  RateLimiterConfig config;
  config.tenant = {1000, 1000};
  config.user = {10, 2};
  RateLimiter limiter(config, Clock());
  for (int i = 0; i < 200; ++i) limiter.Acquire("acme", "user" + std::to_string(i));
  size_t busy = limiter.tracked_users();
  EXPECT_EQ(busy, 200u);
  // After everyone has refilled, continued traffic from one user sweeps the idle buckets.
  Advance(1s);
  for (int i = 0; i < 2000; ++i) {
    limiter.Acquire("acme", "steady" + std::to_string(i % 16));
    Advance(100ms);
  }
  EXPECT_LT(limiter.tracked_users(), 100u);
}

TEST_F(RateLimiterTest, ThreadSafeAndExact) {
  RateLimiterConfig config;
  config.tenant = {1e-9, 1000};  // effectively no refill during the test
  config.user = {1e-9, 1000};
  RateLimiter limiter(config, Clock());
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (limiter.Acquire("acme", "user" + std::to_string(i % 2)).allowed) ++allowed;
      }
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(allowed.load(), 1000);  // exactly the tenant burst, shared by all threads
}

TEST(RateLimiterConfigTest, Validation) {
  EXPECT_OK(ValidateRateLimiterConfig(RateLimiterConfig()));
  RateLimiterConfig c;
  c.user.burst = 0.5;
  EXPECT_THAT(ValidateRateLimiterConfig(c), StatusIs(StatusCode::kInvalidArgument));
  c = RateLimiterConfig();
  c.tenant.rate_per_second = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateRateLimiterConfig(c), StatusIs(StatusCode::kInvalidArgument));
  c = RateLimiterConfig();
  c.max_users = 0;
  EXPECT_THAT(ValidateRateLimiterConfig(c), StatusIs(StatusCode::kInvalidArgument));
  c = RateLimiterConfig();
  c.user = {0, 0};  // disabled is fine
  EXPECT_OK(ValidateRateLimiterConfig(c));
}

}  // namespace
}  // namespace pinvault::api
