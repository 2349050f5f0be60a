#include "tests/testing/manual_executor.h"

#include <utility>

namespace pinvault::testing {

void ManualExecutor::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
  }
  posted_cv_.notify_all();
}

bool ManualExecutor::RunNext() {
  std::function<void()> task;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return false;
    task = std::move(queue_.front());
    queue_.pop_front();
  }
  task();
  return true;
}

size_t ManualExecutor::RunUntilIdle() {
  size_t ran = 0;
  while (RunNext()) ++ran;
  return ran;
}

bool ManualExecutor::WaitForPosted(size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  return posted_cv_.wait_for(lock, std::chrono::minutes(1), [&] { return queue_.size() >= n; });
}

size_t ManualExecutor::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace pinvault::testing
