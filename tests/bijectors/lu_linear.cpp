#include "knead/bijectors/lu_linear.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include <Eigen/LU>

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("LuLinear conforms", "[bijectors][lu_linear]", float, double) {
  Rng rng(21);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    LuLinear<TestType> layer(d, 7);
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);  // P alone
    test::randomise_parameters(layer, rng, 0.5);
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);
  }
}

TEST_CASE("LuLinear starts as its permutation", "[bijectors][lu_linear]") {
  LuLinear<double> layer(std::vector<Index>{2, 0, 1});
  Matrix<double> u(3, 2);
  u << 1, 4, 2, 5, 3, 6;
  const auto [x, log_det] = forward_and_log_det(layer, u);
  Matrix<double> expected(3, 2);
  expected << 3, 6, 1, 4, 2, 5;  // x_i = u_{p[i]}
  CHECK(x == expected);
  CHECK(log_det(0) == 0.0);
  CHECK(log_det(1) == 0.0);
}

TEST_CASE("LuLinear: W = P L A, log-det and round trip against the dense W", "[bijectors][lu_linear]") {
  Rng rng(22);
  const Index d = 6;
  LuLinear<double> layer(d, 3);
  test::randomise_parameters(layer, rng, 0.7);
  const std::vector<Index>& p = layer.permutation();

  // The factors have their shapes and reproduce W: W_ij = Σ_k L_{p[i],k} A_kj.
  const Matrix<double> l = layer.lower(), a = layer.upper(), w = layer.matrix();
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) {
      CAPTURE(i, j);
      if (j > i) CHECK(l(i, j) == 0.0);
      if (i == j) CHECK(l(i, j) == 1.0);
      if (i > j) CHECK(a(i, j) == 0.0);
      if (i == j) CHECK(a(i, j) == Approx(std::exp(layer.log_diagonal()(i))));
      double wij = 0;
      for (Index k = 0; k < d; ++k) wij += l(p[std::size_t(i)], k) * a(k, j);
      CHECK(w(i, j) == Approx(wij).margin(1e-12));
    }

  // log|det ∂x/∂u| = log|det W| from Eigen's LU of the dense W.
  const double log_abs_det = std::log(std::abs(w.determinant()));
  const Matrix<double> u = test::random_batch<double>(d, 5, rng);
  const auto [x, log_det] = forward_and_log_det(layer, u);
  CHECK(log_det(3) == Approx(log_abs_det).margin(1e-10));
  // x = W u + b
  const Matrix<double> expected = (w * u).colwise() + layer.shift();
  CHECK((x - expected).cwiseAbs().maxCoeff() < 1e-12);

  // Round trip both ways; the inverse's log-det is the negative.
  const auto [back, inverse_log_det] = inverse_and_log_det(layer, x);
  CHECK((back - u).cwiseAbs().maxCoeff() < 1e-10);
  CHECK(inverse_log_det(0) == Approx(-log_abs_det).margin(1e-10));
  const Matrix<double> again = forward(layer, inverse(layer, u));
  CHECK((again - u).cwiseAbs().maxCoeff() < 1e-10);
}

TEST_CASE("LuLinear's random permutation follows its seed", "[bijectors][lu_linear]") {
  CHECK(LuLinear<double>(8, 5).permutation() == LuLinear<double>(8, 5).permutation());
  CHECK(LuLinear<double>(8, 5).permutation() == Permute<double>::random(8, 5).permutation());
  CHECK(LuLinear<double>(8, 5).permutation() != LuLinear<double>(8, 6).permutation());
}

TEST_CASE("LuLinear rejects bad input", "[bijectors][lu_linear][errors]") {
  using Catch::Contains;
  CHECK_THROWS_AS(LuLinear<double>(0, 1), std::invalid_argument);
  CHECK_THROWS_WITH(LuLinear<double>(0, 1),
                    Contains("LuLinear") && Contains("dim must be at least 1, got 0"));
  CHECK_THROWS_WITH(LuLinear<double>(std::vector<Index>{}), Contains("LuLinear: empty permutation"));
  CHECK_THROWS_WITH(
      LuLinear<double>(std::vector<Index>{0, 3, 1}),
      Contains("LuLinear") && Contains("permutation entry 3 at position 1 is out of range [0, 3)"));
  CHECK_THROWS_WITH(
      LuLinear<double>(std::vector<Index>{1, 0, 1}),
      Contains("LuLinear") && Contains("permutation entry 1 is repeated (at positions 0 and 2)"));

  LuLinear<double> layer(3, 1);
  CHECK_THROWS_WITH(forward(layer, Matrix<double>::Zero(2, 2)),
                    Contains("LuLinear::forward_and_log_det") && Contains("3 rows"));
  CHECK_THROWS_WITH(inverse(layer, Matrix<double>::Zero(4, 2)),
                    Contains("LuLinear::inverse_and_log_det") && Contains("3 rows"));

  layer.parameters()[4] = std::numeric_limits<double>::quiet_NaN();  // an entry of L
  CHECK_THROWS_AS(forward(layer, Matrix<double>::Zero(3, 2)), std::invalid_argument);
  CHECK_THROWS_WITH(forward(layer, Matrix<double>::Zero(3, 2)),
                    Contains("LuLinear::forward_and_log_det") && Contains("non-finite value nan"));
  layer.parameters()[4] = 0;
  layer.parameters()[1] = 1000;  // exp overflows
  CHECK_THROWS_WITH(inverse(layer, Matrix<double>::Zero(3, 2)),
                    Contains("LuLinear::inverse_and_log_det: log-diagonal entry 1 is 1000"));
  layer.parameters()[1] = -1000;  // exp underflows to 0: W singular
  CHECK_THROWS_WITH(inverse(layer, Matrix<double>::Zero(3, 2)),
                    Contains("LuLinear::inverse_and_log_det: log-diagonal entry 1 is -1000"));

  LuLinear<double> fresh(3, 1);
  Matrix<double> grad_in;
  CHECK_THROWS_AS(fresh.backward(Matrix<double>::Zero(3, 2), RowVector<double>::Zero(2), grad_in),
                  std::logic_error);
}
