#include "tests/testing/fake_clock.h"

#include <vector>

namespace pinvault::testing {

FakeClock::TimePoint FakeClock::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

bool FakeClock::WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint deadline, const std::function<bool()>& wake) {
  std::list<Waiter>::iterator self;
  {
    std::lock_guard<std::mutex> guard(mu_);
    self = waiters_.insert(waiters_.end(), Waiter{&cv, lock.mutex()});
    ++waits_;
    ++waiting_;
  }
  waits_cv_.notify_all();
  // Advance takes the caller's mutex before it notifies, so no wake-up is lost between the
  // check of the time below and the wait.
  while (!wake() && Now() < deadline) cv.wait(lock);
  {
    std::lock_guard<std::mutex> guard(mu_);
    waiters_.erase(self);
    --waiting_;
  }
  return wake();
}

void FakeClock::Advance(std::chrono::nanoseconds by) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += by;
    waiters.assign(waiters_.begin(), waiters_.end());
  }
  for (const Waiter& waiter : waiters) {
    std::lock_guard<std::mutex> lock(*waiter.mutex);
    waiter.cv->notify_all();
  }
}

bool FakeClock::Fire(std::chrono::nanoseconds by, const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  uint64_t before;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!waits_cv_.wait_until(lock, give_up, [&] { return waiting_ > 0; })) return false;
    before = waits_;
  }
  Advance(by);
  // `done` may turn true without another wait (a loop that went idle on a timer that this
  // advance does not reach), so it is looked at between short waits for the next one.
  std::unique_lock<std::mutex> lock(mu_);
  while (waits_ <= before) {
    if (done) {
      lock.unlock();
      bool finished = done();
      lock.lock();
      if (finished) return true;
    }
    if (std::chrono::steady_clock::now() > give_up) return false;
    waits_cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return waits_ > before; });
  }
  return true;
}

}  // namespace pinvault::testing
