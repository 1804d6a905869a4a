#include "knead/core/threads.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <thread>

#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/nn/made.hpp"
#include "small_flow.hpp"
#include "support.hpp"

using namespace knead;

namespace {

using test::ThreadCount;

/// Fixes the weights of every parallel job while a test section runs, then lets the jobs learn
/// their own again.
struct FixedWeights {
  explicit FixedWeights(std::vector<double> weights) { detail::Balance::fixed() = std::move(weights); }
  ~FixedWeights() { detail::Balance::fixed().clear(); }
  FixedWeights(const FixedWeights&) = delete;
  FixedWeights& operator=(const FixedWeights&) = delete;
};

struct Result {
  Matrix<double> log_prob, gradients, samples;
  double loss;
};

template <class T>
Result evaluate(test::SmallFlow<T> flow, const Matrix<T>& x, int threads, std::vector<double> weights = {}) {
  ThreadCount count(threads);
  const FixedWeights fixed(weights);
  RowVector<T> lp;
  flow.log_prob(x, lp);
  flow.zero_gradients();
  const T loss = flow.mean_nll_and_backward(x);
  const auto g = flow.gradients();
  Rng rng(5);
  Matrix<T> samples;
  flow.sample(x.cols(), rng, samples);
  return {lp.template cast<double>(),
          Eigen::Map<const Vector<T>>(g.data(), Index(g.size())).template cast<double>(),
          samples.template cast<double>(), double(loss)};
}

}  // namespace

TEST_CASE("set_num_threads checks its argument and num_threads reports it", "[core][threads]") {
  CHECK_THROWS_AS(set_num_threads(0), std::invalid_argument);
  CHECK_THROWS_AS(set_num_threads(257), std::invalid_argument);
  {
    ThreadCount count(2);
    CHECK(num_threads() == 2);
  }
  CHECK(num_threads() == 1);
}

TEST_CASE("set_min_parallel_work checks its argument and min_parallel_work reports it", "[core][threads]") {
  const Index before = min_parallel_work();
  CHECK(before >= 0);
  CHECK_THROWS_WITH(set_min_parallel_work(-1),
                    Catch::Contains("set_min_parallel_work") && Catch::Contains("-1"));
  CHECK(min_parallel_work() == before);
  set_min_parallel_work(123);
  CHECK(min_parallel_work() == 123);
  set_min_parallel_work(before);
}

TEST_CASE("An Mlp splits a batch only when each thread's part holds min_parallel_work()", "[core][threads]") {
  using T = float;
  Rng rng(8);
  const Index n = 150;
  Made<T> made(4, {24, 24}, InputOrder::reversed(), 3);
  const Index per_column = made.mlp().computed_macs();
  const Matrix<T> x = test::random_batch<T>(4, n, rng);
  const ThreadCount count(2);
  const FixedWeights even({1, 1});
  // the column parts forward() hands to its callback: one part is the batch unsplit
  auto parts = [&] {
    std::atomic<int> calls{0};
    Matrix<T> out;
    made.forward(x, out, [&](Index c0, Index c1) { calls += c1 > c0; });
    return calls.load();
  };
  CHECK(parts() == 2);                     // no threshold (ThreadCount's)
  set_min_parallel_work(per_column * 75);  // 75 columns each: 150 make two parts
  CHECK(parts() == 2);
  set_min_parallel_work(per_column * 76);  // 76 each: 150 do not
  CHECK(parts() == 1);
  set_min_parallel_work(std::numeric_limits<Index>::max());
  CHECK(parts() == 1);
}

TEST_CASE("Shares cut n units at multiples of the alignment and tile them", "[core][threads]") {
  for (const Index n : {0, 1, 15, 16, 100, 257}) {
    for (const Index align : {1, 16, 64}) {
      INFO(n << " units, align " << align);
      const std::vector<double> cuts{0, 0.1, 0.37, 0.5, 0.99, 1};
      Index next = 0;
      for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
        const auto [begin, end] = detail::Share{cuts[k], cuts[k + 1]}.of(n, align);
        CHECK(begin == next);
        CHECK(end >= begin);
        CHECK((begin % align == 0 || begin == n));
        next = end;
      }
      CHECK(next == n);
      CHECK(detail::Share{}.of(n, align) == std::pair<Index, Index>{0, n});
    }
  }
}

TEST_CASE("parallel_columns covers every column once, in SIMD-friendly chunks", "[core][threads]") {
  ThreadCount count(2);
  for (const std::vector<double>& weights : {std::vector<double>{1, 1}, {3, 1}, {1, 9}}) {
    const FixedWeights fixed(weights);
    for (const Index n : {1, 31, 32, 64, 97, 1000}) {
      const int chunks = detail::column_chunks(n, 32);
      CHECK(chunks >= 1);
      CHECK(chunks <= 2);
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      std::vector<Index> widths(2, 0);
      detail::parallel_columns(n, chunks, [&](Index begin, Index end, int t) {
        CHECK(begin % 16 == 0);
        CHECK(t < chunks);
        widths[std::size_t(t)] = end - begin;
        for (Index j = begin; j < end; ++j) hits[std::size_t(j)].fetch_add(1);
      });
      for (const auto& h : hits) CHECK(h.load() == 1);
      if (n == 1000)  // the chunks follow the weights, to a multiple of 16 columns
        CHECK(std::abs(double(widths[0]) - 1000 * weights[0] / (weights[0] + weights[1])) <= 16);
    }
  }
}

TEST_CASE("Balance sizes the parts by the threads' measured speeds", "[core][threads]") {
  // Thread 1 takes three times as long as thread 0 for the same share, so the split that ends both
  // at once gives thread 0 three quarters of the work (times made up: no clock involved).
  detail::Balance balance;
  balance.prepare(2);
  CHECK(balance.share(0, 2).end == 0.5);
  double previous = 0.5;
  for (int run = 0; run < 40; ++run) {
    const double first = balance.share(0, 2).end;
    balance.update({first * 2e-3, (1 - first) * 6e-3}, 2);
    CHECK(balance.share(0, 2).end >= previous);  // moves towards the faster thread, without overshooting
    CHECK(balance.share(0, 2).end <= 0.75 + 1e-9);
    previous = balance.share(0, 2).end;
  }
  CHECK(balance.share(0, 2).end == Approx(0.75).margin(1e-3));
  // the shares tile the job
  CHECK(balance.share(1, 2).begin == balance.share(0, 2).end);
  CHECK(balance.share(1, 2).end == 1.0);

  SECTION("a run too short to time is ignored") {
    const double before = balance.share(0, 2).end;
    balance.update({1e-6, 40e-6}, 2);
    CHECK(balance.share(0, 2).end == before);
  }
  SECTION("a thread that stalls keeps at least a quarter of an even share") {
    for (int run = 0; run < 40; ++run) balance.update({1e-3, 10.0}, 2);
    CHECK(balance.share(1, 2).end - balance.share(1, 2).begin >= 0.125 - 1e-9);
  }
}

TEST_CASE("A parallel job moves work to the faster thread", "[core][threads]") {
  // The pool times its threads' parts: thread 1 sleeps ten times as long per unit of work as
  // thread 0, so thread 0's share grows (towards 10/11). Loose bounds: sleeps overrun on a busy
  // machine, and the exact arithmetic is checked above.
  ThreadCount count(2);
  detail::Balance balance;
  std::vector<double> first_share;
  for (int job = 0; job < 20; ++job) {
    detail::parallel_parts(
        2,
        [&](int t) {
          const detail::Share share = detail::thread_share(t, 2);
          if (t == 0) first_share.push_back(share.end);
          const double ms = (share.end - share.begin) * (t == 0 ? 1.0 : 10.0);
          std::this_thread::sleep_for(std::chrono::microseconds(Index(ms * 1000)));
        },
        balance);
  }
  CHECK(first_share.front() == 0.5);
  CHECK(balance.share(0, 2).end > 0.6);
  CHECK(balance.share(1, 2).begin == balance.share(0, 2).end);
  CHECK(balance.share(1, 2).end == 1.0);
}

TEST_CASE("parallel_columns passes an exception of any thread to the caller", "[core][threads]") {
  ThreadCount count(2);
  const auto job = [](Index, Index, int t) {
    if (t == 1) throw std::runtime_error("from the helper thread");
  };
  CHECK_THROWS_WITH(detail::parallel_columns(128, 2, job), "from the helper thread");
  // the pool still works afterwards
  std::atomic<int> calls{0};
  detail::parallel_columns(128, 2, [&](Index, Index, int) { calls.fetch_add(1); });
  CHECK(calls.load() == 2);
}

TEMPLATE_TEST_CASE(
    "Any thread count and split gives one thread's log-densities, gradients and samples bit for bit",
    "[core][threads]", float, double) {
  using T = TestType;
  // Columns are independent, and every parameter gradient is summed by one thread over the whole
  // batch, in pieces cut on the GEMM kernel's row panels: nothing may change, not even the last bit.
  Rng rng(2);
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp}) {
    // (1700 columns: wider than one slice of a forward pass, 1638 columns for 40 units, so the
    // slices of one thread and of two start at different columns)
    for (const Index n : {33, 96, 257, 1700}) {
      DYNAMIC_SECTION(to_string(kind) << ", batch " << n) {
        test::SmallFlow<T> flow = test::small_flow<T>(kind, 5, 4);
        const Matrix<T> x = test::random_batch<T>(5, n, rng);
        const Result one = evaluate(flow, x, 1);
        for (const auto& [threads, weights] : std::vector<std::pair<int, std::vector<double>>>{
                 {2, {1, 1}}, {2, {3, 1}}, {2, {1, 4}}, {3, {1, 2, 1}}}) {
          INFO(threads << " threads, first weight " << weights[0]);
          const Result other = evaluate(flow, x, threads, weights);
          CHECK((one.log_prob.array() == other.log_prob.array()).all());
          CHECK((one.gradients.array() == other.gradients.array()).all());
          CHECK((one.samples.array() == other.samples.array()).all());
          CHECK(one.loss == other.loss);
        }
      }
    }
  }
}

TEST_CASE("An Mlp runs its callers' column work once per column, inside its own jobs", "[core][threads]") {
  // Maf forms MADE's output gradient in backward's `first` callback and reads MADE's outputs and
  // input gradients in the `then` callbacks, on each thread's columns: every column must be seen
  // exactly once, after (or, for `first`, before) the network's own work on it, whatever the split.
  using T = double;
  Rng rng(5);
  const Index n = 150;
  Made<T> made(4, {24, 24}, InputOrder::reversed(), 3);
  const Matrix<T> x = test::random_batch<T>(4, n, rng);
  const Matrix<T> grad = test::random_batch<T>(8, n, rng);
  Matrix<T> reference_out, reference_grad_x;
  made.forward(x, reference_out);
  zero_gradients(made);
  made.backward(grad, &reference_grad_x);
  const Vector<T> reference_gradients =
      Eigen::Map<const Vector<T>>(made.gradients().data(), Index(made.gradients().size()));
  for (const auto& [threads, weights] :
       std::vector<std::pair<int, std::vector<double>>>{{1, {1}}, {2, {1, 1}}, {2, {3, 1}}, {3, {1, 2, 1}}}) {
    INFO(threads << " threads, first weight " << weights[0]);
    const ThreadCount count(threads);
    const FixedWeights fixed(weights);
    Matrix<T> out, grad_x, grad_out(8, n);
    const auto columns = static_cast<std::size_t>(n);
    std::vector<std::atomic<int>> seen_out(columns), formed(columns), seen_grad(columns);
    std::atomic<int> wrong{0};
    made.forward(x, out, [&](Index c0, Index c1) {
      for (Index j = c0; j < c1; ++j) {
        ++seen_out[std::size_t(j)];
        if (out.col(j) != reference_out.col(j)) ++wrong;
      }
    });
    zero_gradients(made);
    made.backward(
        grad_out, &grad_x, true,
        [&](Index c0, Index c1) {
          for (Index j = c0; j < c1; ++j) ++formed[std::size_t(j)];
          grad_out.middleCols(c0, c1 - c0) = grad.middleCols(c0, c1 - c0);
        },
        [&](Index c0, Index c1) {
          for (Index j = c0; j < c1; ++j) {
            ++seen_grad[std::size_t(j)];
            if (grad_x.col(j) != reference_grad_x.col(j)) ++wrong;
          }
        });
    for (Index j = 0; j < n; ++j) {
      REQUIRE(seen_out[std::size_t(j)] == 1);
      REQUIRE(formed[std::size_t(j)] == 1);
      REQUIRE(seen_grad[std::size_t(j)] == 1);
    }
    CHECK(wrong == 0);
    CHECK(out == reference_out);
    CHECK(grad_x == reference_grad_x);
    CHECK(Eigen::Map<const Vector<T>>(made.gradients().data(), Index(made.gradients().size())) ==
          reference_gradients);
  }
}

TEST_CASE("Two application threads may run parallel jobs while the pool is resized", "[core][threads]") {
  // Two threads each run parallel_columns jobs of 2 to 4 chunks and check that every column was
  // computed exactly once, while a third changes num_threads() and resizes the pool. The pool must
  // run one job at a time and resize only between jobs: resizing under a running job stops the
  // workers it waits for (a hang) or leaves parts of it undone.
  const ThreadCount count(2);
  std::atomic<int> finished{0};
  std::atomic<Index> wrong{0};
  auto columns = [&](int seed) {
    for (int round = 0; round < 400; ++round) {
      const Index n = 64 + 37 * ((round + seed) % 7);
      const int chunks = 2 + (round + seed) % 3;
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      detail::parallel_columns(n, chunks, [&](Index begin, Index end, int) {
        for (Index j = begin; j < end; ++j) hits[std::size_t(j)].fetch_add(1);
      });
      for (const auto& h : hits) wrong += h.load() != 1;
    }
    ++finished;
  };
  auto resize = [&] {
    for (int k = 0; finished.load() < 2; ++k) {
      detail::ThreadPool::instance().set_threads(1 + k % 4);
      set_num_threads(1 + (k + 1) % 3);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ++finished;
  };
  std::thread first(columns, 0), second(columns, 1), resizer(resize);
  // a hang is a failure too: give the threads a minute (they need well under a second)
  for (int wait = 0; wait < 600 && finished.load() < 3; ++wait)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (finished.load() < 3) {
    std::fputs("thread pool test: jobs still running after a minute (deadlock)\n", stderr);
    std::_Exit(EXIT_FAILURE);
  }
  first.join();
  second.join();
  resizer.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("Networks run from two application threads compute what they compute alone", "[core][threads]") {
  // Each thread runs its own MADE's forward and backward passes on 2 or 3 threads (the pool's jobs
  // interleave between the two) and compares them bit for bit with the same passes run alone.
  using T = double;
  const Index n = 150;
  struct Run {
    Matrix<T> out, grad_x;
    Vector<T> gradients;
  };
  auto pass = [](Made<T>& made, const Matrix<T>& x, const Matrix<T>& grad) {
    Run r;
    made.forward(x, r.out);
    zero_gradients(made);
    made.backward(grad, &r.grad_x);
    r.gradients = Eigen::Map<const Vector<T>>(made.gradients().data(), Index(made.gradients().size()));
    return r;
  };
  Rng rng(11);
  std::vector<Made<T>> nets{Made<T>(4, {24, 24}, InputOrder::reversed(), 3), Made<T>(5, {32}, {}, 4)};
  std::vector<Matrix<T>> xs, grads;
  std::vector<Run> alone;
  for (auto& made : nets) {
    xs.push_back(test::random_batch<T>(made.dim(), n, rng));
    grads.push_back(test::random_batch<T>(2 * made.dim(), n, rng));
    alone.push_back(pass(made, xs.back(), grads.back()));
  }
  const ThreadCount count(2);
  std::atomic<int> finished{0};
  std::atomic<Index> wrong{0};
  auto work = [&](std::size_t i) {
    for (int round = 0; round < 100; ++round) {
      const Run r = pass(nets[i], xs[i], grads[i]);
      wrong += r.out != alone[i].out || r.grad_x != alone[i].grad_x || r.gradients != alone[i].gradients;
    }
    ++finished;
  };
  auto resize = [&] {
    for (int k = 0; finished.load() < 2; ++k) {
      set_num_threads(2 + k % 2);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ++finished;
  };
  std::thread first(work, 0), second(work, 1), resizer(resize);
  for (int wait = 0; wait < 600 && finished.load() < 3; ++wait)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (finished.load() < 3) {
    std::fputs("thread pool test: passes still running after a minute (deadlock)\n", stderr);
    std::_Exit(EXIT_FAILURE);
  }
  first.join();
  second.join();
  resizer.join();
  CHECK(wrong.load() == 0);
}
