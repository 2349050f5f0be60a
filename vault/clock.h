// Clock: the core's only source of time. The realm uses it for its two timers (the retry of
// a failed start-up check and the idle health check) and never reads a clock of its own, so
// tests drive time with a fake clock (tests/testing/fake_clock.h) instead of sleeping.
#ifndef PINVAULT_VAULT_CLOCK_H_
#define PINVAULT_VAULT_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace pinvault::vault {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;

  // Now is the current time of this clock (monotonic).
  virtual TimePoint Now() const = 0;

  // WaitUntil blocks on `cv` until `wake()` holds or this clock reaches `deadline`
  // (TimePoint::max(): no deadline), and returns wake(). `lock` must hold the mutex that guards
  // what `wake` reads; it is released while waiting, as std::condition_variable::wait does.
  // Thread-safe.
  virtual bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline, const std::function<bool()>& wake) = 0;
};

// SystemClock is the steady clock. Thread-safe; lives for the whole process.
Clock& SystemClock();

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_CLOCK_H_
