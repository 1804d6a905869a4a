// Machine probes: how far apart the cores that knead's two threads run on are.
//
// On a virtual machine the host decides which physical cores the virtual CPUs run on, and may move
// them. Two threads that share data (a training step's weights, activations and gradients) run
// far slower when their cores are far apart: on the reference machine the round trip of a cache
// line between its two vCPUs is about 55 ns most of the time and about 315 ns in spells of
// seconds, during which bench_flows' 2-thread train step at D=64 hidden 512 drops from ~1.85× to
// ~1.25× one thread while the 1-thread figures do not move. compare_torch.py runs this probe next
// to its 2-thread measurements so that such spells show in its report.

#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace {

#if defined(__linux__)
/// Pins the calling thread to CPU `cpu`; false if the system refuses (fewer CPUs, a cpuset).
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

/// One iteration: a cache line goes from CPU 0 to CPU 1 and back. The main thread makes the
/// counter odd; the partner, spinning on CPU 1, sees it and makes it even.
void BM_core_round_trip(benchmark::State& state) {
  cpu_set_t before;
  pthread_getaffinity_np(pthread_self(), sizeof before, &before);
  if (!pin_to(0)) {
    state.SkipWithError("cannot pin a thread to CPU 0");
    return;
  }
  // each flag on a pair of cache lines of its own (the prefetcher fetches lines in pairs), away
  // from the stack, so that only the counter's travel per round trip
  struct alignas(128) Line {
    std::atomic<long> value{0};
  };
  static Line counter_line, stop_line;
  std::atomic<long>& counter = counter_line.value;
  std::atomic<long>& stop = stop_line.value;
  counter = 0;
  stop = 0;
  std::atomic<bool> partner_pinned{true};
  std::thread partner([&] {
    if (!pin_to(1)) partner_pinned = false;
    while (!stop.load(std::memory_order_relaxed)) {
      const long v = counter.load(std::memory_order_acquire);
      if (v % 2 == 1) counter.store(v + 1, std::memory_order_release);
    }
  });
  for (auto _ : state) {
    const long v = counter.load(std::memory_order_relaxed);
    counter.store(v + 1, std::memory_order_release);
    while (counter.load(std::memory_order_acquire) != v + 2) {
    }
  }
  stop = 1;
  partner.join();
  pthread_setaffinity_np(pthread_self(), sizeof before, &before);
  if (!partner_pinned) state.SkipWithError("cannot pin a thread to CPU 1");
}
BENCHMARK(BM_core_round_trip)->UseRealTime();
#endif

}  // namespace

BENCHMARK_MAIN();
