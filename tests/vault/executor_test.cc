// ThreadPool (vault/executor.h): runs every posted task, on several threads at once, and drains
// on destruction.
#include "vault/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <memory>

namespace pinvault::vault {
namespace {

TEST(ThreadPoolTest, RunsEveryPostedTask) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) pool.Post([&] { ++ran; });
  }  // drains
  EXPECT_EQ(ran.load(), 1000);
}

// Two tasks that each wait for the other can only finish if they run at the same time.
TEST(ThreadPoolTest, RunsTasksOnSeveralThreadsAtOnce) {
  std::barrier meet(2);
  std::atomic<int> met{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 2; ++i) {
      pool.Post([&] {
        meet.arrive_and_wait();
        ++met;
      });
    }
  }
  EXPECT_EQ(met.load(), 2);
}

TEST(ThreadPoolTest, TasksPostedWhileDrainingStillRun) {
  std::atomic<int> ran{0};
  {
    auto pool = std::make_unique<ThreadPool>(1);
    ThreadPool* p = pool.get();
    pool->Post([&, p] {
      ++ran;
      p->Post([&] { ++ran; });
    });
    pool.reset();
  }
  EXPECT_EQ(ran.load(), 2);
}

TEST(ThreadPoolTest, AtLeastOneThread) {
  std::atomic<bool> ran{false};
  {
    ThreadPool pool(0);
    pool.Post([&] { ran = true; });
  }
  EXPECT_TRUE(ran.load());
}

}  // namespace
}  // namespace pinvault::vault
