#pragma once
/// @file
/// Batch parallelism: a small persistent pool of std::threads that splits the columns (samples) of
/// a batch into one contiguous chunk per thread.
///
/// Off by default: knead runs on the calling thread unless `knead::set_num_threads(n)` is called or
/// the environment variable KNEAD_NUM_THREADS holds n > 1 when knead first asks. The split of a
/// batch depends only on its size and the thread count, and every sum over the batch (a parameter
/// gradient) is computed by one thread in a fixed order, so results are deterministic for a given
/// thread count (GEMM blocking may change the last bits between thread counts).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead {

namespace detail {

/// Fork–join pool: run(n, job) calls job(t) for t = 0..n−1, t = 0 on the caller, and returns when
/// all are done. Workers spin briefly before sleeping, since flow layers issue many short jobs.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop_workers(); }

  [[nodiscard]] int threads() const { return threads_; }

  void set_threads(int n) {
    if (n == threads_) return;
    stop_workers();
    threads_ = n;
    stop_ = false;
    // a worker starts from the current generation: a job posted before it runs is still its job
    const unsigned now = generation_.load(std::memory_order_acquire);
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, now] { work(t, now); });
  }

  template <class Job>
  void run(int n, Job& job) {
    n = std::min(n, threads_);
    if (n <= 1 || inside_) {
      for (int t = 0; t < n; ++t) job(t);
      if (n < 1) job(0);
      return;
    }
    std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);
    job_ = [](void* context, int t) { (*static_cast<Job*>(context))(t); };
    context_ = &job;
    active_ = n;
    pending_.store(n - 1, std::memory_order_relaxed);
    error_ = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    inside_ = true;
    try {
      job(0);
    } catch (...) {
      record_error();
    }
    inside_ = false;
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  ThreadPool() = default;

  void work(int t, unsigned seen) {
    inside_ = true;
    for (;;) {
      // spin a little (up to about a millisecond), then sleep until the next job or stop
      for (int spin = 0; spin < 2000 && generation_.load(std::memory_order_acquire) == seen && !stop_; ++spin)
        std::this_thread::yield();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
      }
      seen = generation_.load(std::memory_order_acquire);
      if (t < active_) {
        try {
          job_(context_, t);
        } catch (...) {
          record_error();
        }
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void record_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable wake_;
  std::atomic<unsigned> generation_{0};
  std::atomic<int> pending_{0};
  int active_ = 0;
  bool stop_ = false;
  void (*job_)(void*, int) = nullptr;
  void* context_ = nullptr;
  std::exception_ptr error_;
  static inline thread_local bool inside_ = false;
};

inline int& configured_threads() {
  static int n = [] {
    const char* env = std::getenv("KNEAD_NUM_THREADS");
    const int v = env != nullptr ? std::atoi(env) : 1;
    return std::clamp(v, 1, 256);
  }();
  return n;
}

}  // namespace detail

/// Sets the number of threads knead uses for batch parallelism (1 = the calling thread only).
inline void set_num_threads(int n) {
  if (n < 1 || n > 256) detail::fail("set_num_threads", "thread count must be in 1..256, got ", n);
  detail::configured_threads() = n;
}

/// The thread count in use: set_num_threads(), else KNEAD_NUM_THREADS, else 1.
[[nodiscard]] inline int num_threads() { return detail::configured_threads(); }

namespace detail {

/// The chunks a batch of n columns is split into: at most num_threads(), each at least
/// `min_chunk` columns wide. Chunk t covers [chunk_begin(n, c, t), chunk_begin(n, c, t + 1)).
[[nodiscard]] inline int column_chunks(Index n, Index min_chunk) {
  const Index by_size = std::max<Index>(1, n / std::max<Index>(min_chunk, 1));
  return int(std::min<Index>(num_threads(), by_size));
}
[[nodiscard]] inline Index chunk_begin(Index n, int chunks, int t) {
  // multiples of 16 columns keep SIMD-friendly chunk starts
  if (t >= chunks) return n;
  const Index step = ((n + chunks - 1) / chunks + 15) / 16 * 16;
  return std::min(n, step * t);
}

/// Calls f(t) for t = 0..parts−1, in parallel when there are several.
template <class F>
void parallel_parts(int parts, F&& f) {
  if (parts <= 1) {
    f(0);
    return;
  }
  ThreadPool& pool = ThreadPool::instance();
  if (pool.threads() < parts) pool.set_threads(parts);
  pool.run(parts, f);
}

/// Calls f(begin, end, t) for every chunk t of the n columns, in parallel when there are several.
template <class F>
void parallel_columns(Index n, int chunks, F&& f) {
  if (chunks <= 1) {
    f(Index(0), n, 0);
    return;
  }
  parallel_parts(chunks, [&](int t) { f(chunk_begin(n, chunks, t), chunk_begin(n, chunks, t + 1), t); });
}

/// Calls f(begin, end, t) over chunks of an elementwise job on n array entries (an optimizer step,
/// clearing gradients), split over the threads only when it is megabytes long: shorter arrays cost
/// less than waking a thread.
template <class F>
void parallel_elementwise(Index n, F&& f) {
  constexpr Index min_chunk = 65536;
  parallel_columns(n, column_chunks(n, min_chunk), std::forward<F>(f));
}

}  // namespace detail

}  // namespace knead
