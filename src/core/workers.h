// A fixed set of worker threads for CPU-bound jobs (compressing, inflating). Threads live as
// long as the pool, so per-thread state such as a libdeflate compressor is reused across jobs
// instead of being built for every block, as a thread per std::async call would.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lakevault {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();  // finishes queued jobs, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  template <typename F>
  auto Submit(F job) -> std::future<decltype(job())> {
    auto task = std::make_shared<std::packaged_task<decltype(job())()>>(std::move(job));
    auto future = task->get_future();
    Enqueue([task]() { (*task)(); });
    return future;
  }

  // Worker threads for CPU-bound work on this machine: every core, at least one.
  static int DefaultThreads();

 private:
  void Enqueue(std::function<void()> job);
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace lakevault
