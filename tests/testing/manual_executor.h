// ManualExecutor: a vault::Executor that runs nothing until the test says so, on the test's
// own thread, so a test decides exactly which request step runs when.
//
//   ManualExecutor executor;
//   options.executor = &executor;                 // RealmOptions
//   realm->Submit(user, request, callback);       // queued, nothing has run
//   executor.RunUntilIdle();                      // every queued step runs here, in order
//
// Tasks may be posted from any thread (the realm's committer posts the next request of a
// record it releases). Every task must have run before the realm is destroyed.
#ifndef PINVAULT_TESTS_TESTING_MANUAL_EXECUTOR_H_
#define PINVAULT_TESTS_TESTING_MANUAL_EXECUTOR_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

#include "vault/executor.h"

namespace pinvault::testing {

class ManualExecutor final : public vault::Executor {
 public:
  ManualExecutor() = default;
  ManualExecutor(const ManualExecutor&) = delete;
  ManualExecutor& operator=(const ManualExecutor&) = delete;

  void Post(std::function<void()> task) override;

  // RunNext runs the oldest queued task on the calling thread; false if none was queued.
  bool RunNext();

  // RunUntilIdle runs queued tasks (including those they post) until none is left; returns
  // how many ran.
  size_t RunUntilIdle();

  // WaitForPosted blocks until at least `n` tasks are queued (posted from another thread);
  // false after a minute (a hang, not a timing margin).
  bool WaitForPosted(size_t n);

  // queued is the number of tasks waiting to run.
  size_t queued() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable posted_cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_MANUAL_EXECUTOR_H_
