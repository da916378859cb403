// A fixed pool of worker threads for data-parallel kernels. parallel_for()
// splits [0, n) into one contiguous chunk per thread and blocks until all are
// done; the calling thread works as thread 0. Workers spin briefly before
// sleeping so back-to-back kernels in the token loop pay no wake-up latency,
// and nothing is allocated per call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace frugal {

class ThreadPool {
 public:
  // n_threads includes the caller; 0 means default_thread_count().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(thread_index, n_threads): each participant is called once. Use it for
  // kernels that partition work themselves.
  void run(const std::function<void(int, int)>& fn);

  // fn(begin, end) over [0, n) split in contiguous chunks (at least `grain`
  // items each, so tiny loops stay on one thread).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                    int64_t grain = 1);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

// Threads to use by default: online CPUs, limited by the cgroup CPU quota
// (containers) and the affinity mask.
int default_thread_count();

}  // namespace frugal
