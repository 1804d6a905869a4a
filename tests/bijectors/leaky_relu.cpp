#include "knead/bijectors/leaky_relu.hpp"

#include <algorithm>
#include <cmath>

#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/permute.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// A random batch with every entry at least `gap` away from the kink at 0, where the map is not
/// differentiable and finite differences across it would be meaningless.
template <class T>
Matrix<T> away_from_kink(Index d, Index n, Rng& rng, T gap = T(0.25)) {
  return test::random_batch<T>(d, n, rng).unaryExpr([gap](T v) { return v + std::copysign(gap, v); });
}

}  // namespace

TEMPLATE_TEST_CASE("PReLU and LeakyReLU conform", "[bijectors][leaky_relu]", float, double) {
  using T = TestType;
  Rng rng(19);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    PReLU<T> per_dimension(d);
    PReLU<T> shared(d, T(1.7), false);
    LeakyReLU<T> fixed(d, T(0.3));
    CHECK(per_dimension.num_parameters() == d);
    CHECK(shared.num_parameters() == 1);
    CHECK(fixed.num_parameters() == 0);
    test::require_conformance(per_dimension, away_from_kink<T>(d, 6, rng), rng);
    test::require_conformance(shared, away_from_kink<T>(d, 6, rng), rng);
    test::require_conformance(fixed, away_from_kink<T>(d, 6, rng), rng);
    test::randomise_parameters(per_dimension, rng, 0.8);
    test::randomise_parameters(shared, rng, 0.8);
    test::require_conformance(per_dimension, away_from_kink<T>(d, 6, rng), rng);
    test::require_conformance(shared, away_from_kink<T>(d, 6, rng), rng);
  }
}

TEST_CASE("PReLU matches its closed form", "[bijectors][leaky_relu]") {
  PReLU<double> prelu(3);  // slope ½ everywhere
  CHECK(prelu.per_dimension());
  CHECK(prelu.parameters()[1] == Approx(std::log(0.5)));  // parameterised by log a
  prelu.parameters()[2] = std::log(4.0);
  CHECK(prelu.slope()(2) == Approx(4.0));
  Matrix<double> u(3, 2);
  u << 2.0, -2.0,  //
      -1.0, 3.0,   //
      -0.5, 0.0;
  const auto [x, ld] = forward_and_log_det(prelu, u);
  Matrix<double> expected(3, 2);
  expected << 2.0, -1.0,  //
      -0.5, 3.0,          //
      -2.0, 0.0;
  CHECK((x - expected).norm() < 1e-14);
  CHECK(ld(0) == Approx(std::log(0.5) + std::log(4.0)));  // negative entries: rows 1 and 2
  CHECK(ld(1) == Approx(std::log(0.5)));                  // only row 0 (u = 0 counts as ≥ 0)
  CHECK((inverse(prelu, x) - u).norm() < 1e-14);
  CHECK((inverse_log_det(prelu, x) + ld).norm() < 1e-14);

  // the slope gradient of L = Σ x: ∂x/∂θ = a u on the negative entries, plus ∂L/∂ld = 1 per entry
  zero_gradients(prelu);
  (void)forward(prelu, u);
  (void)backward(prelu, Matrix<double>::Ones(3, 2), RowVector<double>::Ones(2));
  CHECK(prelu.gradients()[0] == Approx(0.5 * -2.0 + 1.0));
  CHECK(prelu.gradients()[1] == Approx(0.5 * -1.0 + 1.0));
  CHECK(prelu.gradients()[2] == Approx(4.0 * -0.5 + 1.0));

  LeakyReLU<float> leaky(2, 0.1f);
  CHECK_FALSE(leaky.per_dimension());
  CHECK(leaky.slope()(1) == Approx(0.1f));
  Matrix<float> v(2, 1);
  v << -10.0f, 10.0f;
  CHECK(forward(leaky, v)(0, 0) == Approx(-1.0f));
  CHECK(forward(leaky, v)(1, 0) == Approx(10.0f));
}

TEST_CASE("A shared PReLU slope collects the gradient of every dimension", "[bijectors][leaky_relu]") {
  PReLU<double> shared(2, 2.0, false);
  Matrix<double> u(2, 1);
  u << -1.0, -3.0;
  (void)inverse(shared, u);  // u = x / a on negatives: ∂u/∂θ = −x / a
  (void)backward(shared, Matrix<double>::Ones(2, 1), RowVector<double>::Zero(1));
  CHECK(shared.gradients()[0] == Approx((1.0 + 3.0) / 2.0));
}

TEMPLATE_TEST_CASE("A Chain mixing PReLU, Permute, BatchNorm and Affine conforms", "[bijectors][leaky_relu]",
                   float, double) {
  using T = TestType;
  Rng rng(23);
  for (const Index d : {1, 2, 3}) {
    CAPTURE(d);
    Chain chain{Affine<T>(d),    PReLU<T>(d),  Permute<T>::reverse(d),
                BatchNorm<T>(d), Affine<T>(d), LeakyReLU<T>(d, T(0.6))};
    chain.set_training(false);  // the checker needs a per-sample map
    CHECK_FALSE(chain.training());
    test::randomise_parameters(chain, rng, 0.5);
    auto& norm = chain.template part<3>();
    norm.set_running_mean(test::random_batch<T>(d, 1, rng));
    norm.set_running_variance(test::random_batch<T>(d, 1, rng).array().exp().matrix());

    // Values entering either rectifier, in the forward and in the inverse pass, for the point z:
    // forward: PReLU sees Affine₁(z), LeakyReLU sees Affine₂(BN(Permute(PReLU(Affine₁(z)))));
    // inverse: LeakyReLU⁻¹ sees z, PReLU⁻¹ sees Permute⁻¹(BN⁻¹(Affine₂⁻¹(LeakyReLU⁻¹(z)))).
    auto distance_to_kinks = [&](const Matrix<T>& point) {
      const Matrix<T> a1 = forward(chain.template part<0>(), point);
      const Matrix<T> a2 =
          forward(chain.template part<4>(),
                  forward(norm, forward(chain.template part<2>(), forward(chain.template part<1>(), a1))));
      const Matrix<T> b =
          inverse(chain.template part<2>(),
                  inverse(norm, inverse(chain.template part<4>(), inverse(chain.template part<5>(), point))));
      return std::min({a1.cwiseAbs().minCoeff(), a2.cwiseAbs().minCoeff(), b.cwiseAbs().minCoeff(),
                       point.cwiseAbs().minCoeff()});
    };
    // draw the points one at a time, keeping those away from every kink
    const Index n = 4;
    Matrix<T> z(d, n);
    for (Index j = 0; j < n; ++j) {
      Matrix<T> point = test::random_batch<T>(d, 1, rng);
      for (int attempt = 0; attempt < 1000 && distance_to_kinks(point) <= T(0.1); ++attempt)
        point = test::random_batch<T>(d, 1, rng);
      REQUIRE(distance_to_kinks(point) > T(0.1));
      z.col(j) = point;
    }
    test::require_conformance(chain, z, rng);
  }
}

TEST_CASE("PReLU and LeakyReLU reject bad input", "[bijectors][leaky_relu][errors]") {
  CHECK_THROWS_WITH(PReLU<double>(0), Catch::Contains("PReLU") && Catch::Contains("dim"));
  CHECK_THROWS_WITH(LeakyReLU<double>(-1, 0.5), Catch::Contains("LeakyReLU") && Catch::Contains("dim"));
  CHECK_THROWS_WITH(PReLU<double>(2, 0.0), Catch::Contains("PReLU") && Catch::Contains("slope") &&
                                               Catch::Contains("positive") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(PReLU<double>(2, -0.5, false), Catch::Contains("PReLU") && Catch::Contains("got -0.5"));
  CHECK_THROWS_WITH(LeakyReLU<float>(2, -2.0f), Catch::Contains("LeakyReLU") && Catch::Contains("got -2"));
  CHECK_THROWS_WITH(LeakyReLU<double>(2, std::nan("")),
                    Catch::Contains("LeakyReLU") && Catch::Contains("finite") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(LeakyReLU<double>(2, INFINITY), Catch::Contains("LeakyReLU") && Catch::Contains("inf"));
  PReLU<double> prelu(3);
  CHECK_THROWS_WITH(forward(prelu, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("PReLU::forward_and_log_det") && Catch::Contains("3 rows"));
  LeakyReLU<double> leaky(3, 0.2);
  CHECK_THROWS_WITH(inverse(leaky, Matrix<double>::Zero(3, 0)),
                    Catch::Contains("LeakyReLU::inverse_and_log_det") && Catch::Contains("empty batch"));
  PReLU<double> fresh(3);
  CHECK_THROWS_AS(backward(fresh, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
  (void)forward(fresh, Matrix<double>::Zero(3, 2));
  CHECK_THROWS_WITH(backward(fresh, Matrix<double>::Zero(3, 2), RowVector<double>::Zero(3)),
                    Catch::Contains("PReLU::backward") && Catch::Contains("1x2"));
}
