#include "knead/core/no_grad.hpp"

#include <stdexcept>
#include <vector>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/core/threads.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "small_flow.hpp"
#include "support.hpp"

using namespace knead;

namespace {

template <class P>
std::vector<double> gradients_of(P& p) {
  const auto g = p.gradients();
  return {g.begin(), g.end()};
}

}  // namespace

TEST_CASE("NoGrad nests and is per thread", "[core][no_grad]") {
  CHECK_FALSE(NoGrad::active());
  {
    const NoGrad outer;
    CHECK(NoGrad::active());
    {
      const NoGrad inner;
      CHECK(NoGrad::active());
    }
    CHECK(NoGrad::active());
    CHECK(NoGrad::recorded(Direction::forward) == Direction::none);
  }
  CHECK_FALSE(NoGrad::active());
  CHECK(NoGrad::recorded(Direction::inverse) == Direction::inverse);
}

TEMPLATE_TEST_CASE("Passes under NoGrad give the same values, bit for bit", "[core][no_grad]", float,
                   double) {
  using T = TestType;
  Rng rng(3);
  for (const int threads : {1, 2})
    for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp})
      for (const Index n : {7, 300}) {
        DYNAMIC_SECTION(to_string(kind) << ", batch " << n << ", " << threads << " thread(s)") {
          const test::ThreadCount count(threads);
          test::SmallFlow<T> flow = test::small_flow<T>(kind, 4, 9);
          const Matrix<T> x = test::random_batch<T>(4, n, rng);
          RowVector<T> kept, not_kept;
          Matrix<T> sample_kept, sample_not_kept;
          Rng a(11), b(11);
          flow.log_prob(x, kept);
          flow.sample(n, a, sample_kept);
          {
            const NoGrad no_grad;
            flow.log_prob(x, not_kept);
            flow.sample(n, b, sample_not_kept);
          }
          CHECK(kept == not_kept);
          CHECK(sample_kept == sample_not_kept);
        }
      }
}

TEMPLATE_TEST_CASE("backward after a pass under NoGrad is refused, and writes nothing", "[core][no_grad]",
                   float, double) {
  using T = TestType;
  Rng rng(4);
  const Index d = 3, n = 50;
  const Matrix<T> x = test::random_batch<T>(d, n, rng);
  const RowVector<T> grad_lp = RowVector<T>::Constant(n, T(1));
  const Matrix<T> grad_x = test::random_batch<T>(d, n, rng);
  Matrix<T> grad_in;
  RowVector<T> lp;

  SECTION("a flow with a base that has parameters") {
    MafOptions<T> options;
    options.hidden = {16, 16};
    options.seed = 2;
    TransformedDistribution flow(DiagonalNormal<T>(d), Chain(Maf<T>(d, options), Permute<T>::reverse(d)));
    flow.zero_gradients();
    {
      const NoGrad no_grad;
      flow.log_prob(x, lp);
    }
    CHECK_THROWS_AS(flow.backward_log_prob(grad_lp, grad_in), std::logic_error);
    CHECK_THROWS_WITH(flow.backward_log_prob(grad_lp, grad_in),
                      Catch::Matchers::Contains("backward_log_prob") && Catch::Matchers::Contains("NoGrad"));
    Matrix<T> samples;
    {
      const NoGrad no_grad;
      flow.sample_and_log_prob(n, rng, samples, lp);
    }
    CHECK_THROWS_AS(flow.backward_sample_and_log_prob(grad_x, grad_lp), std::logic_error);
    for (const double g : gradients_of(flow)) CHECK(g == 0.0);
    {
      const NoGrad no_grad;
      CHECK_THROWS_AS(flow.mean_nll_and_backward(x), std::logic_error);
    }
    for (const double g : gradients_of(flow)) CHECK(g == 0.0);

    // a pass outside NoGrad is differentiable again, as if NoGrad had never run
    TransformedDistribution fresh = flow;
    fresh.zero_gradients();
    const T loss = flow.mean_nll_and_backward(x);
    CHECK(loss == fresh.mean_nll_and_backward(x));
    CHECK(gradients_of(flow) == gradients_of(fresh));
  }

  SECTION("a chain, called directly") {
    MafOptions<T> options;
    options.hidden = {16, 16};
    Chain chain(Permute<T>::reverse(d), Maf<T>(d, options));
    Matrix<T> u;
    zero_gradients(chain);
    {
      const NoGrad no_grad;
      chain.inverse_and_log_det(x, u, lp);
    }
    CHECK_THROWS_AS(chain.backward(grad_x, grad_lp, grad_in), std::logic_error);
    CHECK_THROWS_WITH(chain.backward(grad_x, grad_lp, grad_in), Catch::Matchers::Contains("NoGrad"));
    for (const double g : gradients_of(chain)) CHECK(g == 0.0);
  }

  SECTION("a MAF, called directly") {
    Maf<T> maf(d, MafOptions<T>{});
    Matrix<T> u;
    {
      const NoGrad no_grad;
      maf.forward_and_log_det(x, u, lp);
    }
    CHECK_THROWS_AS(maf.backward(grad_x, grad_lp, grad_in), std::logic_error);
    CHECK_THROWS_WITH(maf.backward(grad_x, grad_lp, grad_in),
                      Catch::Matchers::Contains("Maf::backward") && Catch::Matchers::Contains("NoGrad"));
  }
}
