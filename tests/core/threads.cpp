#include "knead/core/threads.hpp"

#include <atomic>
#include <stdexcept>

#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/nn/made.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// Restores one thread when a test section ends, however it ends.
struct ThreadCount {
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(1); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
};

template <class T>
using Flow = TransformedDistribution<StandardNormal<T>, DynamicChain<T>>;

template <class T>
Flow<T> make(FlowKind kind, Index dim) {
  const FlowSpec<T> spec{
      .kind = kind, .dim = dim, .layers = 3, .hidden = {40, 40}, .identity_init = false, .seed = 4};
  return Flow<T>(StandardNormal<T>(dim), make_flow(spec));
}

struct Result {
  Matrix<double> log_prob, gradients;
  double loss;
};

template <class T>
Result evaluate(Flow<T> flow, const Matrix<T>& x, int threads) {
  ThreadCount count(threads);
  RowVector<T> lp;
  flow.log_prob(x, lp);
  flow.zero_gradients();
  const T loss = flow.mean_nll_and_backward(x);
  const auto g = flow.gradients();
  return {lp.template cast<double>(),
          Eigen::Map<const Vector<T>>(g.data(), Index(g.size())).template cast<double>(), double(loss)};
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

TEST_CASE("parallel_columns covers every column once, in SIMD-friendly chunks", "[core][threads]") {
  ThreadCount count(2);
  for (const Index n : {1, 31, 32, 64, 97, 1000}) {
    const int chunks = detail::column_chunks(n, 32);
    CHECK(chunks >= 1);
    CHECK(chunks <= 2);
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    detail::parallel_columns(n, chunks, [&](Index begin, Index end, int t) {
      CHECK(begin % 16 == 0);
      CHECK(t < chunks);
      for (Index j = begin; j < end; ++j) hits[std::size_t(j)].fetch_add(1);
    });
    for (const auto& h : hits) CHECK(h.load() == 1);
  }
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

TEMPLATE_TEST_CASE("Two threads give one thread's log-densities and gradients", "[core][threads]", float,
                   double) {
  using T = TestType;
  // Columns are independent, and every parameter gradient is summed by one thread over the whole
  // batch; only GEMM blocking may change the last bits.
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  Rng rng(2);
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp}) {
    for (const Index n : {33, 96, 257}) {
      DYNAMIC_SECTION(to_string(kind) << ", batch " << n) {
        const Flow<T> flow = make<T>(kind, 5);
        const Matrix<T> x = test::random_batch<T>(5, n, rng);
        const Result one = evaluate(flow, x, 1), two = evaluate(flow, x, 2);
        const double scale = std::max(1.0, one.gradients.cwiseAbs().maxCoeff());
        CHECK((one.log_prob - two.log_prob).cwiseAbs().maxCoeff() <= tolerance * 10);
        CHECK((one.gradients - two.gradients).cwiseAbs().maxCoeff() <= tolerance * scale);
        CHECK(std::abs(one.loss - two.loss) <= tolerance * 10);
      }
    }
  }
}
