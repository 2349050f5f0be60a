// Executor: where the core runs its request work. The realm (vault/realm.h) never starts a
// worker thread of its own choosing: every request step runs as a task posted to an
// Executor, so a test can run them one at a time on its own thread
// (tests/testing/manual_executor.h) and force the interleaving it needs instead of sleeping.
//
//   ThreadPool pool(4);
//   pool.Post([] { ... });   // runs soon on one of the pool's four threads
//
// The realm's other seams: its timers and its committer's waits go through vault/clock.h;
// storage and the HSM are vault/record_store.h and vault/hsm.h.
#ifndef PINVAULT_VAULT_EXECUTOR_H_
#define PINVAULT_VAULT_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pinvault::vault {

class Executor {
 public:
  virtual ~Executor() = default;

  // Post queues `task` to run once, later, on a thread of the executor's choosing; tasks may
  // run concurrently with each other and with the caller. Post never runs `task` before it
  // returns (so a caller may hold a lock the task takes). Thread-safe.
  virtual void Post(std::function<void()> task) = 0;
};

// ThreadPool runs tasks on a fixed set of threads, in the order they were posted (each
// thread takes the oldest waiting task). ~ThreadPool runs every task already posted, then
// joins; posting from a task during that drain is allowed. Thread-safe.
class ThreadPool final : public Executor {
 public:
  // ThreadPool starts `threads` threads (at least 1).
  explicit ThreadPool(int threads);
  ~ThreadPool() override;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Post(std::function<void()> task) override;

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_EXECUTOR_H_
