#include "knead/optim/optimizer.hpp"

#include <cmath>
#include <vector>

#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/optim/adam.hpp"
#include "knead/optim/sgd.hpp"
#include "support.hpp"

using namespace knead;

static_assert(Optimizer<Adam<float>> && Optimizer<Sgd<double>>);
static_assert(!Optimizer<std::vector<double>>);
static_assert(HasParameterSpans<Affine<double>>);
static_assert(HasParameterSpans<TransformedDistribution<StandardNormal<float>, Affine<float>>>);

namespace {

template <class O>
O make_optimizer(Index n) {
  if constexpr (std::is_same_v<O, Adam<typename O::Scalar>>)
    return O(n, {.lr = LrSchedule::cosine(0.05, 1500)});
  else
    return O(n, {.lr = 0.1, .momentum = 0.5});
}

}  // namespace

TEMPLATE_PRODUCT_TEST_CASE("Optimizers fit an affine flow to the closed-form maximum likelihood", "[optim]",
                           (Adam, Sgd), (float, double)) {
  using O = TestType;
  using T = typename O::Scalar;
  // x = e^s u + b, u ~ N(0, I): the MLE is b = sample mean, e^s = sample standard deviation (1/N)
  Rng rng(11);
  Matrix<T> data = test::random_batch<T>(2, 200, rng);
  data.row(0) = (data.row(0).array() * T(2) + T(1)).matrix();
  data.row(1) = (data.row(1).array() * T(0.5) - T(3)).matrix();
  const Vector<double> mean = data.template cast<double>().rowwise().mean();
  const Vector<double> sd =
      ((data.template cast<double>().colwise() - mean).array().square().rowwise().mean()).sqrt().matrix();

  TransformedDistribution flow(StandardNormal<T>(2), Affine<T>(2));
  O optimizer = make_optimizer<O>(flow.num_parameters());
  for (int t = 0; t < 1500; ++t) {
    flow.zero_gradients();
    flow.mean_nll_and_backward(data);
    optimizer.step(flow);
  }
  const double tol = std::is_same_v<T, double> ? 1e-6 : 1e-3;
  const auto& affine = flow.bijector();
  for (Index i = 0; i < 2; ++i) {
    CHECK(double(affine.shift()(i)) == Approx(mean(i)).margin(tol));
    CHECK(double(affine.log_scale()(i)) == Approx(std::log(sd(i))).margin(tol));
  }
}

TEST_CASE("The shared optimizer checks name the function and the value", "[optim][errors]") {
  CHECK_THROWS_WITH(detail::check_unit_interval("F", "beta1", 1.0),
                    Catch::Contains("F: beta1 must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(detail::check_non_negative("F", "weight_decay", -2.0),
                    Catch::Contains("F: weight_decay") && Catch::Contains("-2"));
  CHECK_THROWS_WITH(detail::check_num_parameters("F", 0), Catch::Contains("F: ") && Catch::Contains("got 0"));
  std::vector<double> p(2), g(3);
  CHECK_THROWS_WITH(detail::check_step_spans<double>("F", 2, p, g),
                    Catch::Contains("F: expected 2 gradients") && Catch::Contains("got 3"));
  const std::vector<float> state{0.0f, NAN};
  CHECK_THROWS_WITH(detail::check_state<float>("F", state, 2, 0),
                    Catch::Contains("F: state value 1 is non-finite (nan)"));
  CHECK_NOTHROW(detail::check_state<float>("F", std::span<const float>(state).first(1), 1, 3));
}
