#pragma once
/// @file
/// Batch parallelism: a small persistent pool of std::threads that splits the columns (samples) of
/// a batch into one contiguous chunk per thread.
///
/// Off by default: knead runs on the calling thread unless `knead::set_num_threads(n)` is called or
/// the environment variable KNEAD_NUM_THREADS holds n > 1 when knead first asks.
///
/// The chunks follow the threads' measured speeds: on a shared machine one core is often slower
/// than the other (a busy hyperthread sibling, another tenant), and an even split would make every
/// step wait for it. The pool times each thread's part of a region and moves work towards the
/// faster threads for the next ones. Results do not depend on where the splits fall: columns are
/// computed independently (chunks start at multiples of 16 columns), and every sum over the batch
/// (a parameter gradient) is computed by one thread in a fixed order, in pieces aligned to the
/// GEMM kernel's row panels, so they come out bit for bit the same for any thread count.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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

/// A part of a job split by fractions: [begin, end) of [0, 1).
struct Share {
  double begin = 0, end = 1;

  /// The share of n units, cut at multiples of `align` (or at n): [first, second).
  [[nodiscard]] std::pair<Index, Index> of(Index n, Index align = 1) const {
    const Index pieces = (n + align - 1) / align;
    auto at = [&](double f) {
      return f >= 1 ? n : std::min(n, Index(std::llround(f * double(pieces))) * align);
    };
    return {at(begin), at(end)};
  }

  /// Part t of `parts` equal parts.
  [[nodiscard]] static Share even(int t, int parts) {
    return {double(t) / parts, t + 1 == parts ? 1.0 : double(t + 1) / parts};
  }
};

/// How the parts of one parallel job (a call site) are sized: the threads' relative speeds on it,
/// learned from the times of its earlier runs. Per job, since they differ between jobs: a thread
/// may pack weights fast and multiply slowly, or one part of a job may cost more per unit.
class Balance {
 public:
  /// Part t of `parts`; the parts tile [0, 1).
  [[nodiscard]] Share share(int t, int parts) const {
    const std::vector<double>& w = fixed().empty() ? weights_ : fixed();
    if (parts <= 1) return {};
    if (Index(w.size()) < parts) return Share::even(t, parts);
    double total = 0, before = 0;
    for (int k = 0; k < parts; ++k) {
      total += w[std::size_t(k)];
      if (k < t) before += w[std::size_t(k)];
    }
    return {t == 0 ? 0.0 : before / total, t + 1 == parts ? 1.0 : (before + w[std::size_t(t)]) / total};
  }

  /// Even weights for a job of a new number of parts.
  void prepare(int parts) {
    if (Index(weights_.size()) != parts) weights_.assign(std::size_t(parts), 1.0);
  }

  /// After a run split by share(): thread k did its share s_k in τ_k seconds, so its speed on this
  /// job is about s_k / τ_k. The weights move a quarter of the way to the measured speeds, which
  /// follows a core that slows down within a few runs without chasing one noisy run. Runs too
  /// short to time well (under 50 µs on some thread) are skipped, and no thread gets less than a
  /// quarter of an even share, so one that was descheduled once is not starved.
  void update(const std::vector<double>& seconds, int parts) {
    if (!fixed().empty() || Index(weights_.size()) != parts) return;
    double total = 0, speed_sum = 0;
    for (int k = 0; k < parts; ++k) {
      if (seconds[std::size_t(k)] < 50e-6) return;
      total += weights_[std::size_t(k)];
    }
    for (int k = 0; k < parts; ++k) speed_sum += weights_[std::size_t(k)] / total / seconds[std::size_t(k)];
    for (int k = 0; k < parts; ++k) {  // the new weights sum to 1, as the speeds do
      double& w = weights_[std::size_t(k)];
      const double speed = w / total / seconds[std::size_t(k)] / speed_sum;  // w is still the old weight
      w = 0.75 * w / total + 0.25 * speed;
    }
    // weights under the floor are raised to it, the others scaled down to pay for it (which may
    // take one of them under the floor in turn)
    const double floor = 0.25 / parts;
    for (int pass = 0; pass < parts; ++pass) {
      double lacking = 0, above = 0;  // what the low weights need, what the others hold
      for (const double w : weights_) {
        if (w < floor)
          lacking += floor - w;
        else
          above += w;
      }
      if (lacking <= 0) break;
      for (double& w : weights_) w = w < floor ? floor : w * (1 - lacking / above);
    }
  }

  /// Weights that every job uses instead of its own, unchanging (for tests); empty: none.
  static std::vector<double>& fixed() {
    static std::vector<double> weights;
    return weights;
  }

 private:
  std::vector<double> weights_;
};

/// The balance of the parallel job the calling thread is running a part of (null outside one).
inline const Balance*& current_balance() {
  static thread_local const Balance* balance = nullptr;
  return balance;
}

/// Sets the calling thread's current_balance() for a scope.
class BalanceScope {
 public:
  explicit BalanceScope(const Balance* balance) : previous_(current_balance()) {
    current_balance() = balance;
  }
  ~BalanceScope() { current_balance() = previous_; }
  BalanceScope(const BalanceScope&) = delete;
  BalanceScope& operator=(const BalanceScope&) = delete;

 private:
  const Balance* previous_;
};

/// Fork–join pool: run(n, job, balance) calls job(t) for t = 0..n−1, t = 0 on the caller, and
/// returns when all are done. Workers spin briefly before sleeping, since flow layers issue many
/// short jobs.
///
/// Several application threads may use the pool: it runs one job at a time (run_mutex_), the
/// others wait for it, and it is resized only between jobs, under the same lock. A job's parts may
/// start jobs of their own: those run on the part's thread, part after part.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop_workers(); }

  [[nodiscard]] int threads() const { return threads_.load(std::memory_order_relaxed); }

  /// Resizes the pool to n threads (the caller and n − 1 workers), once the running job, if any,
  /// is done. Refused from within a job's part, which that job would wait for forever.
  void set_threads(int n) {
    if (n < 1) fail("ThreadPool::set_threads", "thread count must be at least 1, got ", n);
    if (inside_) fail<std::logic_error>("ThreadPool::set_threads", "called from within a parallel job");
    const std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);
    resize(n);
  }

  /// Runs job(t) for t = 0..n−1, sized by `balance`, which learns from it; the pool first grows to
  /// n threads if it has fewer.
  template <class Job>
  void run(int n, Job& job, Balance& balance) {
    if (n <= 1 || inside_) {  // a job's part starting a job: its parts run here, in turn
      const BalanceScope scope(&balance);
      for (int t = 0; t < n; ++t) job(t);
      if (n < 1) job(0);
      return;
    }
    const std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);
    if (threads() < n) resize(n);
    balance.prepare(n);
    error_ = nullptr;
    {
      // what a worker reads of the job, published with the generation that announces it
      const std::lock_guard<std::mutex> lock(mutex_);
      job_ = [](void* context, int t) { (*static_cast<Job*>(context))(t); };
      context_ = &job;
      balance_ = &balance;
      active_ = n;
      pending_.store(n - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    inside_ = true;
    const auto start = Clock::now();
    try {
      const BalanceScope scope(&balance);
      job(0);
    } catch (...) {
      record_error();
    }
    seconds_[0] = std::chrono::duration<double>(Clock::now() - start).count();
    inside_ = false;
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    if (error_) std::rethrow_exception(error_);
    balance.update(seconds_, n);
  }

 private:
  ThreadPool() = default;

  /// Replaces the workers by n − 1 new ones (with run_mutex_ held: no job is running).
  void resize(int n) {
    if (n == threads()) return;
    stop_workers();
    stop_.store(false, std::memory_order_relaxed);
    seconds_.assign(std::size_t(n), 0.0);
    threads_.store(n, std::memory_order_relaxed);
    // a worker starts from the current generation: a job posted after it starts is its job
    const unsigned now = generation_.load(std::memory_order_acquire);
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, now] { work(t, now); });
  }

  void work(int t, unsigned seen) {
    inside_ = true;
    for (;;) {
      // spin a little (up to about a millisecond), then sleep until the next job or stop
      for (int spin = 0; spin < 2000 && generation_.load(std::memory_order_acquire) == seen &&
                         !stop_.load(std::memory_order_relaxed);
           ++spin)
        std::this_thread::yield();
      bool mine = false;
      void (*job)(void*, int) = nullptr;
      void* context = nullptr;
      const Balance* balance = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] {
          return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen;
        });
        if (stop_.load(std::memory_order_relaxed)) return;
        // the generation and its job together: a worker that wakes late sees the latest job whole
        seen = generation_.load(std::memory_order_acquire);
        mine = t < active_;
        job = job_, context = context_, balance = balance_;
      }
      if (mine) {
        const auto start = Clock::now();
        try {
          const BalanceScope scope(balance);
          job(context, t);
        } catch (...) {
          record_error();
        }
        seconds_[std::size_t(t)] = std::chrono::duration<double>(Clock::now() - start).count();
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
      stop_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  using Clock = std::chrono::steady_clock;
  std::atomic<int> threads_{1};
  std::vector<double> seconds_{0.0};  // each thread's time in the last job
  std::vector<std::thread> workers_;
  std::mutex mutex_;      // the job's description and generation, the workers' sleep, error_
  std::mutex run_mutex_;  // held by the running job, and by a resize
  std::condition_variable wake_;
  std::atomic<unsigned> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  // the running job (written under mutex_ with the generation that announces it)
  int active_ = 0;
  void (*job_)(void*, int) = nullptr;
  void* context_ = nullptr;
  const Balance* balance_ = nullptr;
  std::exception_ptr error_;
  static inline thread_local bool inside_ = false;
};

inline std::atomic<int>& configured_threads() {
  static std::atomic<int> n = [] {
    const char* env = std::getenv("KNEAD_NUM_THREADS");
    const int v = env != nullptr ? std::atoi(env) : 1;
    return std::clamp(v, 1, 256);
  }();
  return n;
}

inline std::atomic<Index>& configured_min_parallel_work() {
  static std::atomic<Index> multiply_adds = [] {
    const char* env = std::getenv("KNEAD_MIN_PARALLEL_WORK");
    return env != nullptr ? std::max<Index>(0, std::atoll(env)) : Index(4'000'000);
  }();
  return multiply_adds;
}

}  // namespace detail

/// Sets the number of threads knead uses for batch parallelism (1 = the calling thread only).
inline void set_num_threads(int n) {
  if (n < 1 || n > 256) detail::fail("set_num_threads", "thread count must be in 1..256, got ", n);
  detail::configured_threads() = n;
}

/// The thread count in use: set_num_threads(), else KNEAD_NUM_THREADS, else 1.
[[nodiscard]] inline int num_threads() { return detail::configured_threads(); }

/// Sets the multiply–adds that each thread's part of a network pass must hold for the pass to be
/// split over the threads (0: split every batch of 32 columns or more a thread). Below it, handing
/// part of the batch to another core costs more than it saves: a split pays for waking the other
/// thread and for the data the threads exchange (the whole batch for ∂W, weights the other core
/// updated), several times more when a virtual machine's host runs its vCPUs on far-apart cores.
/// The default, 4 million, was measured on a 2-vCPU cloud VM whose cores are sometimes close (a
/// cache line's round trip 55 ns: bench_machine) and sometimes far (315 ns): the D=2 hidden 64
/// train step (batch 512, ~1.2M multiply–adds a thread per pass) ran 1.1–1.4× as fast on 2 threads
/// as on 1 with close cores and 0.6× with far ones; a density pass on 4096 samples (~9M) 1.9× and
/// 1.6×. On dedicated cores a lower value may pay. Also read from KNEAD_MIN_PARALLEL_WORK.
inline void set_min_parallel_work(Index multiply_adds) {
  if (multiply_adds < 0)
    detail::fail("set_min_parallel_work", "multiply-add count must be >= 0, got ", multiply_adds);
  detail::configured_min_parallel_work() = multiply_adds;
}

/// The threshold in use: set_min_parallel_work(), else KNEAD_MIN_PARALLEL_WORK, else 4,000,000.
[[nodiscard]] inline Index min_parallel_work() { return detail::configured_min_parallel_work(); }

namespace detail {

/// The chunks a batch of n columns is split into: at most num_threads(), each at least
/// `min_chunk` columns wide.
[[nodiscard]] inline int column_chunks(Index n, Index min_chunk) {
  const Index by_size = std::max<Index>(1, n / std::max<Index>(min_chunk, 1));
  return int(std::min<Index>(num_threads(), by_size));
}

/// Part t of `parts` of the parallel job the calling thread runs (parallel_parts() runs part t on
/// thread t), sized by the job's Balance; an even split outside a job.
[[nodiscard]] inline Share thread_share(int t, int parts) {
  if (parts <= 1) return {};
  if (const Balance* balance = current_balance(); balance != nullptr) return balance->share(t, parts);
  return Share::even(t, parts);
}

/// Calls f(t) for t = 0..parts−1, in parallel when there are several. The parts should split the
/// work by thread_share(t, parts): `balance` times them to learn the threads' speeds on this job.
template <class F>
void parallel_parts(int parts, F&& f, Balance& balance) {
  if (parts <= 1) {
    f(0);
    return;
  }
  ThreadPool::instance().run(parts, f, balance);
}

/// parallel_parts() with the balance of the call site (one per type of f).
template <class F>
void parallel_parts(int parts, F&& f) {
  static Balance site;
  parallel_parts(parts, std::forward<F>(f), site);
}

/// Calls f(begin, end, t) for every chunk t of the n columns, in parallel when there are several;
/// chunks start at multiples of `align` columns (16 keeps them SIMD-friendly) and may be empty.
/// Sized by `balance`, or by the call site's when null.
template <class F>
void parallel_columns(Index n, int chunks, F&& f, Index align = 16, Balance* balance = nullptr) {
  if (chunks <= 1) {
    f(Index(0), n, 0);
    return;
  }
  auto part = [&](int t) {
    const auto [begin, end] = thread_share(t, chunks).of(n, align);
    f(begin, end, t);
  };
  if (balance != nullptr)
    parallel_parts(chunks, part, *balance);
  else
    parallel_parts(chunks, part);
}

/// Calls f(begin, end, t) over chunks of an elementwise job on n array entries (an optimizer step,
/// clearing gradients), split over the threads only when it is megabytes long: shorter arrays cost
/// less than waking a thread. Chunks start at multiples of 64 entries, so that a job working in
/// smaller pieces cuts them in the same places for any split.
template <class F>
void parallel_elementwise(Index n, F&& f) {
  constexpr Index min_chunk = 65536;
  parallel_columns(n, column_chunks(n, min_chunk), std::forward<F>(f), 64);
}

}  // namespace detail

}  // namespace knead
