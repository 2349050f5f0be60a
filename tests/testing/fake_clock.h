// FakeClock: a vault::Clock whose time moves only when a test calls Advance, so timers are
// driven instead of slept through.
//
//   FakeClock clock;
//   options.clock = &clock;                          // RealmOptions
//   clock.Fire(options.health_check_interval);       // the realm's idle check runs, and
//                                                    // its timer loop waits again
//
// Thread-safe. It must outlive every user, and Advance must not race with the destruction of
// an object that waits on the clock (it wakes waiters through their own condition variable).
#ifndef PINVAULT_TESTS_TESTING_FAKE_CLOCK_H_
#define PINVAULT_TESTS_TESTING_FAKE_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>

#include "vault/clock.h"

namespace pinvault::testing {

class FakeClock final : public vault::Clock {
 public:
  FakeClock() = default;
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  TimePoint Now() const override;

  // WaitUntil waits until `wake()` or until Advance has moved the time to `deadline`.
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline, const std::function<bool()>& wake) override;

  // Advance moves the time forward by `by` and wakes every waiter to look at it.
  void Advance(std::chrono::nanoseconds by);

  // Fire waits until a timer loop is waiting on the clock, advances the time by `by` (at least
  // that loop's interval, so its timer expires), and waits until the loop has run and waits
  // again, or until `done()` holds (when given). false if that takes a minute (a hang).
  bool Fire(std::chrono::nanoseconds by, const std::function<bool()>& done = nullptr);

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
  };

  mutable std::mutex mu_;
  std::condition_variable waits_cv_;
  TimePoint now_{};            // guarded by mu_
  uint64_t waits_ = 0;         // guarded by mu_
  int waiting_ = 0;            // guarded by mu_: threads inside WaitUntil
  std::list<Waiter> waiters_;  // guarded by mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_FAKE_CLOCK_H_
