#include "knead/bijectors/act_norm.hpp"

#include <cmath>

#include "knead/core/conditional.hpp"
#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("ActNorm conforms, before and after initialisation", "[bijectors][act_norm]", float,
                   double) {
  Rng rng(11);
  for (const Index d : {1, 3}) {
    CAPTURE(d);
    ActNorm<TestType> layer(d);
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);  // identity
    layer.initialize(test::random_batch<TestType>(d, 50, rng, 3.0));
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);
  }
}

TEMPLATE_TEST_CASE("ActNorm's first batch leaves it with zero mean and unit variance",
                   "[bijectors][act_norm]", float, double) {
  using T = TestType;
  Rng rng(12);
  // rows with means 100, −3, 0 and standard deviations 0.01, 7, 1
  Matrix<T> x = test::random_batch<T>(3, 200, rng);
  x.row(0) = (x.row(0).array() * T(0.01) + T(100)).matrix();
  x.row(1) = (x.row(1).array() * T(7) - T(3)).matrix();
  ActNorm<T> layer(3);
  CHECK(layer.needs_initialize());
  initialize(layer, x);
  CHECK(layer.initialized());
  CHECK_FALSE(layer.needs_initialize());
  const auto [u, log_det] = inverse_and_log_det(layer, x);
  const T tolerance = std::is_same_v<T, float> ? T(2e-3) : T(1e-9);
  for (Index i = 0; i < 3; ++i) {
    CAPTURE(i);
    const double mean = u.row(i).template cast<double>().mean();
    const double variance = (u.row(i).template cast<double>().array() - mean).square().mean();
    CHECK(std::abs(mean) < tolerance);
    CHECK(std::abs(variance - 1) < tolerance);
  }
  // log|det ∂u/∂x| = −Σ log σ_i, the same for every sample
  const double sigma0 = std::sqrt(
      (x.row(0).template cast<double>().array() - x.row(0).template cast<double>().mean()).square().mean());
  const double sigma1 = std::sqrt(
      (x.row(1).template cast<double>().array() - x.row(1).template cast<double>().mean()).square().mean());
  const double sigma2 = std::sqrt(
      (x.row(2).template cast<double>().array() - x.row(2).template cast<double>().mean()).square().mean());
  CHECK(double(log_det(7)) == Approx(-std::log(sigma0 * sigma1 * sigma2)).epsilon(1e-4));

  // Once initialised, another batch changes nothing.
  const std::vector<T> before = test::copy_of(layer.parameters());
  initialize(layer, test::random_batch<T>(3, 20, rng));
  CHECK(test::copy_of(layer.parameters()) == before);
}

TEST_CASE("ActNorm leaves a constant dimension unscaled", "[bijectors][act_norm]") {
  Matrix<double> x(2, 4);
  x << 5, 5, 5, 5, 1, 2, 3, 4;
  ActNorm<double> layer(2);
  layer.initialize(x);
  CHECK(layer.log_scale()(0) == 0.0);
  CHECK(layer.shift()(0) == 5.0);
  CHECK(layer.shift()(1) == 2.5);
  CHECK(layer.log_scale()(1) == Approx(0.5 * std::log(1.25)));
}

TEST_CASE("ActNorm refuses batches it cannot set a scale from", "[bijectors][act_norm][errors]") {
  using Catch::Contains;
  ActNorm<double> layer(2);
  CHECK_THROWS_WITH(
      layer.initialize(Matrix<double>::Ones(2, 1)),
      Contains("ActNorm::initialize") && Contains("at least 2 samples to set a scale from, got 1"));
  Matrix<double> bad = Matrix<double>::Ones(2, 3);
  bad(1, 2) = std::nan("");
  CHECK_THROWS_WITH(layer.initialize(bad), Contains("ActNorm::initialize") && Contains("non-finite"));
  CHECK_THROWS_WITH(layer.initialize(Matrix<double>::Ones(3, 4)), Contains("ActNorm::initialize"));
  CHECK_FALSE(layer.initialized());
  CHECK_THROWS_WITH(forward(layer, Matrix<double>::Zero(3, 2)), Contains("ActNorm") && Contains("2 rows"));
  CHECK_THROWS_WITH(ActNorm<double>(0), Contains("ActNorm") && Contains("dim"));
}
