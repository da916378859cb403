#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace frugal {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 5, 1000, 1001}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, RunCallsEveryParticipantOnceManyTimes) {
  ThreadPool pool(4);
  for (int round = 0; round < 500; ++round) {
    std::atomic<int> mask{0};
    pool.run([&](int t, int nt) {
      EXPECT_EQ(nt, 4);
      mask.fetch_or(1 << t);
    });
    ASSERT_EQ(mask.load(), 0xf) << "round " << round;
  }
}

TEST(ThreadPool, GrainKeepsSmallLoopsOnOneThread) {
  ThreadPool pool(4);
  std::atomic<int> calls{0};
  pool.parallel_for(10, [&](int64_t, int64_t) { calls++; }, 100);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ThreadPool, DefaultThreadCountIsPositive) { EXPECT_GE(default_thread_count(), 1); }

}  // namespace
}  // namespace frugal
