#include "vault/clock.h"

namespace pinvault::vault {
namespace {

class SteadyClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }

  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline, const std::function<bool()>& wake) override {
    if (deadline == TimePoint::max()) {  // no timer: wait_until would overflow converting it
      cv.wait(lock, wake);
      return true;
    }
    return cv.wait_until(lock, deadline, wake);
  }
};

}  // namespace

Clock& SystemClock() {
  static SteadyClock* clock = new SteadyClock();  // never destroyed: used until exit
  return *clock;
}

}  // namespace pinvault::vault
