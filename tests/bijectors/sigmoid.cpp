#include "knead/bijectors/sigmoid.hpp"

#include <cmath>
#include <limits>
#include <numbers>

#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "support.hpp"

using namespace knead;

namespace {

template <class T>
constexpr T unbounded = std::numeric_limits<T>::infinity();

/// Four dimensions: (−3, 4), unchanged, (0, 1), (−2, 30).
template <class T>
Sigmoid<T> mixed_sigmoid() {
  Vector<T> low(4), high(4);
  low << T(-3), -unbounded<T>, T(0), T(-2);
  high << T(4), unbounded<T>, T(1), T(30);
  return Sigmoid<T>(low, high);
}

/// Points inside every interval and within [−4, 4], where both directions are well conditioned:
/// entry i is uniform on the middle 80 % of (max(a_i, −4), min(b_i, 4)).
template <class T>
Matrix<T> points_inside(const Sigmoid<T>& s, Index n, Rng& rng) {
  std::uniform_real_distribution<double> uniform(0.1, 0.9);
  Matrix<T> z(s.dim(), n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < s.dim(); ++i) {
      const double a = std::max(double(s.low()(i)), -4.0), b = std::min(double(s.high()(i)), 4.0);
      z(i, j) = T(a + (b - a) * uniform(rng));
    }
  return z;
}

/// The logit-normal density on (a, b): x = a + w σ(u) with u ~ N(0, 1), so with p = (x − a) / w,
/// p(x) = φ(logit p) / (w p (1 − p)).
double logit_normal_log_density(double x, double a, double b) {
  const double w = b - a, p = (x - a) / w, logit = std::log(p / (1 - p));
  return -0.5 * logit * logit - 0.5 * std::log(2 * std::numbers::pi) - std::log(w * p * (1 - p));
}

}  // namespace

TEMPLATE_TEST_CASE("Sigmoid conforms", "[bijectors][sigmoid]", float, double) {
  using T = TestType;
  Rng rng(31);
  Sigmoid<T> s = mixed_sigmoid<T>();
  CHECK(s.num_parameters() == 0);
  CHECK(s.bounded(0));
  CHECK_FALSE(s.bounded(1));
  test::require_conformance(s, points_inside(s, 8, rng), rng);
  Sigmoid<T> one(1, T(-0.5), T(0.25));
  test::require_conformance(one, points_inside(one, 8, rng), rng);
}

TEST_CASE("Sigmoid on (0, 1) over a standard normal is the logit-normal distribution",
          "[bijectors][sigmoid]") {
  Vector<double> low(2), high(2);
  low << 0.0, -3.0;
  high << 1.0, 5.0;
  TransformedDistribution flow(StandardNormal<double>(2), Sigmoid<double>(low, high));
  Matrix<double> x(2, 5);
  x << 1e-9, 0.2, 0.5, 0.9, 1 - 1e-9,  //
      -2.999, -1.0, 1.0, 4.0, 4.9999;
  const RowVector<double> lp = flow.log_prob(x);
  for (Index j = 0; j < x.cols(); ++j) {
    const double expected =
        logit_normal_log_density(x(0, j), 0.0, 1.0) + logit_normal_log_density(x(1, j), -3.0, 5.0);
    CHECK(lp(j) == Approx(expected).epsilon(1e-12));
  }

  // The density integrates to 1 over (0, 1) × (−3, 5): a midpoint rule on a 2000 × 2000 grid, in
  // the variable p = (x − a)/w (the density vanishes at both ends).
  const Index cells = 2000;
  Matrix<double> grid(2, cells);
  double total = 0;
  for (Index k = 0; k < cells; ++k) {
    for (Index j = 0; j < cells; ++j) {
      grid(0, j) = (double(k) + 0.5) / double(cells);
      grid(1, j) = -3.0 + 8.0 * (double(j) + 0.5) / double(cells);
    }
    total += flow.log_prob(grid).array().exp().sum() * (1.0 / double(cells)) * (8.0 / double(cells));
  }
  CHECK(total == Approx(1.0).margin(1e-4));

  // sample_and_log_prob agrees with log_prob of the samples
  Rng rng(5);
  const auto [samples, sample_lp] = flow.sample_and_log_prob(1000, rng);
  CHECK((flow.log_prob(samples) - sample_lp).cwiseAbs().maxCoeff() < 1e-9);
  // the mean of the first column is 1/2 by symmetry (sd of the mean < 0.21/√1000 < 0.007)
  CHECK(std::abs(samples.row(0).mean() - 0.5) < 0.03);
}

TEMPLATE_TEST_CASE("Sigmoid samples lie strictly inside the interval, even from saturating noise",
                   "[bijectors][sigmoid]", float, double) {
  using T = TestType;
  // noise of sd 100 puts most |u| far beyond where σ(u) rounds to 0 or 1 in either type
  Vector<T> mean = Vector<T>::Zero(2), log_scale = Vector<T>::Constant(2, T(std::log(100.0)));
  Vector<T> low(2), high(2);
  low << T(0), T(-90);
  high << T(1), T(90);
  TransformedDistribution flow(DiagonalNormal<T>(mean, log_scale), Sigmoid<T>(low, high));
  Rng rng(8);
  const auto [x, lp] = flow.sample_and_log_prob(20000, rng);
  for (Index i = 0; i < 2; ++i) {
    CHECK(x.row(i).minCoeff() > low(i));
    CHECK(x.row(i).maxCoeff() < high(i));
  }
  CHECK(lp.allFinite());
  // the samples at the clamp lie on a representable value inside, whose density is finite
  CHECK(flow.log_prob(x).allFinite());
  CHECK(x.row(0).maxCoeff() == std::nextafter(T(1), T(0)));
}

TEST_CASE("Sigmoid's log-det and inverse stay exact far out", "[bijectors][sigmoid]") {
  Sigmoid<double> s(1, 0.0, 2.0);
  Matrix<double> u(1, 4);
  u << -200.0, -40.0, 40.0, 200.0;
  const auto [x, ld] = forward_and_log_det(s, u);
  // log w + log σ(u) + log σ(−u) = log 2 − |u| − 2 log(1 + e^{−|u|}); e^{−40} is below double's ε
  for (Index j = 0; j < 4; ++j) CHECK(ld(j) == Approx(std::log(2.0) - std::abs(u(0, j))).epsilon(1e-14));
  CHECK(x(0, 0) == Approx(2 * std::exp(-200.0)).epsilon(1e-12));  // resolved near 0, not rounded to it
  CHECK(x(0, 3) == std::nextafter(2.0, 0.0));                     // rounds to 2: clamped inside

  // the inverse next to a bound: 1 − x = 2⁻⁵³ exactly, so u = log(1 − 2⁻⁵³) + 53 log 2
  Sigmoid<double> unit(1, 0.0, 1.0);
  Matrix<double> near_one(1, 2);
  near_one << std::nextafter(1.0, 0.0), 1e-300;
  const auto [v, inverse_ld] = inverse_and_log_det(unit, near_one);
  CHECK(v(0, 0) == Approx(53 * std::log(2.0)).epsilon(1e-14));
  CHECK(v(0, 1) == Approx(std::log(1e-300)).epsilon(1e-14));
  // log|du/dx| = −log x − log(1 − x)
  CHECK(inverse_ld(0) == Approx(53 * std::log(2.0)).epsilon(1e-14));
  CHECK(inverse_ld(1) == Approx(-std::log(1e-300)).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("Sigmoid leaves an unbounded dimension unchanged, bit for bit", "[bijectors][sigmoid]",
                   float, double) {
  using T = TestType;
  Rng rng(4);
  Sigmoid<T> s = mixed_sigmoid<T>();
  Matrix<T> z = points_inside(s, 6, rng);
  z(1, 0) = T(1e30);  // any value on the unbounded dimension
  const auto [x, ld] = forward_and_log_det(s, z);
  CHECK(x.row(1) == z.row(1));
  const auto [u, inverse_ld] = inverse_and_log_det(s, z);
  CHECK(u.row(1) == z.row(1));
  // and contributes nothing to the log-det: a Sigmoid of the other three dimensions gives the same
  Vector<T> low(3), high(3);
  low << T(-3), T(0), T(-2);
  high << T(4), T(1), T(30);
  Sigmoid<T> three(low, high);
  Matrix<T> rest(3, z.cols());
  rest << z.row(0), z.row(2), z.row(3);
  CHECK((forward_log_det(three, rest) - ld).cwiseAbs().maxCoeff() == T(0));
  CHECK((inverse_log_det(three, rest) - inverse_ld).cwiseAbs().maxCoeff() == T(0));
}

TEST_CASE("Sigmoid refuses a value outside its interval, and so does a flow's log_prob",
          "[bijectors][sigmoid][errors]") {
  Sigmoid<double> s = mixed_sigmoid<double>();
  Matrix<double> x(4, 1);
  x << 0.5, 1e300, 0.5, 0.5;
  CHECK_NOTHROW(inverse(s, x));
  for (const double bad : {0.0, 1.0, 1.0000000000000002, -0.25, std::nan("")}) {
    x(2, 0) = bad;
    CAPTURE(bad);
    CHECK_THROWS_AS(inverse(s, x), std::invalid_argument);
  }
  x(2, 0) = 1.0000000000000002;  // shown with every digit, not rounded to the bound
  CHECK_THROWS_WITH(inverse(s, x),
                    "Sigmoid::inverse_and_log_det: dimension 2 has the value 1.0000000000000002, "
                    "not inside its open interval (0, 1): the density there is 0");
  x(2, 0) = 0.5;
  x(0, 0) = -3.0;  // on the bound
  CHECK_THROWS_WITH(inverse(s, x),
                    Catch::Contains("dimension 0 has the value -3,") && Catch::Contains("(-3, 4)"));

  TransformedDistribution flow(StandardNormal<float>(4), mixed_sigmoid<float>());
  Matrix<float> batch = Matrix<float>::Constant(4, 3, 0.5f);
  batch(3, 2) = 31.0f;
  CHECK_THROWS_WITH(flow.log_prob(batch),
                    Catch::Contains("dimension 3 has the value 31,") && Catch::Contains("(-2, 30)"));
}

TEST_CASE("Sigmoid rejects bad intervals", "[bijectors][sigmoid][errors]") {
  const double inf = unbounded<double>;
  CHECK_THROWS_WITH(Sigmoid<double>(0, 0.0, 1.0), Catch::Contains("Sigmoid") && Catch::Contains("dim"));
  CHECK_THROWS_WITH(Sigmoid<double>(-2, 0.0, 1.0), Catch::Contains("got -2"));
  CHECK_THROWS_WITH(Sigmoid<double>(2, 1.0, 1.0),
                    "Sigmoid: dimension 0 has the interval (1, 1); expected finite bounds low < high (with a "
                    "finite width), or (-inf, inf) to leave it unchanged");
  CHECK_THROWS_WITH(Sigmoid<double>(1, 2.0, -2.0), Catch::Contains("(2, -2)"));
  CHECK_THROWS_WITH(Sigmoid<double>(1, 0.0, inf), Catch::Contains("(0, inf)"));  // one-sided: not supported
  CHECK_THROWS_WITH(Sigmoid<double>(1, -inf, 0.0), Catch::Contains("(-inf, 0)"));
  CHECK_THROWS_WITH(Sigmoid<double>(1, std::nan(""), 1.0), Catch::Contains("(nan, 1)"));
  CHECK_THROWS_WITH(Sigmoid<double>(1, -1e308, 1e308), Catch::Contains("finite width"));
  CHECK_THROWS_WITH(Sigmoid<float>(1, 1.0f, std::nextafter(1.0f, 2.0f)),
                    Catch::Contains("(1, 1.0000001)") && Catch::Contains("no value of the scalar type"));
  CHECK_THROWS_WITH(Sigmoid<double>(Vector<double>::Zero(2), Vector<double>::Ones(3)),
                    Catch::Contains("low has 2 entries and high 3"));
  Sigmoid<double> s(3, 0.0, 1.0);
  CHECK_THROWS_WITH(forward(s, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("Sigmoid::forward_and_log_det") && Catch::Contains("3 rows"));
  CHECK_THROWS_AS(backward(s, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
}
