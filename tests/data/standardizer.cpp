#include "knead/data/standardizer.hpp"

#include <numbers>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

TEMPLATE_TEST_CASE("Standardizer fits the population mean and standard deviation", "[data]", float, double) {
  Matrix<TestType> x(2, 4);
  x << 1, 2, 3, 4,  //
      10, 10, 20, 20;
  const Standardizer<TestType> s(x);
  REQUIRE(s.fitted());
  REQUIRE(s.dim() == 2);
  CHECK(s.mean()(0) == Approx(2.5));
  CHECK(s.mean()(1) == Approx(15));
  CHECK(s.scale()(0) == Approx(std::sqrt(1.25)));  // √((1.5² + 0.5² + 0.5² + 1.5²)/4)
  CHECK(s.scale()(1) == Approx(5));
  CHECK(s.log_det() == Approx(-std::log(std::sqrt(1.25)) - std::log(5.0)));

  const Matrix<TestType> z = s.transform(x);
  CHECK(z(0, 0) == Approx(-1.5 / std::sqrt(1.25)));
  CHECK(z(1, 3) == Approx(1));
  for (Index i = 0; i < 2; ++i) {
    CHECK(z.row(i).mean() == Approx(0).margin(1e-6));
    CHECK(z.row(i).squaredNorm() / 4 == Approx(1));
  }
}

TEMPLATE_TEST_CASE("Standardizer with uniform scaling keeps the aspect ratio; without scaling it centres",
                   "[data]", float, double) {
  Matrix<TestType> x(2, 4);
  x << 1, 2, 3, 4,  //
      10, 10, 20, 20;
  // Variances 1.25 and 25: the uniform scale is √((1.25 + 25)/2) for both dimensions.
  const double pooled = std::sqrt((1.25 + 25.0) / 2);
  const Standardizer<TestType> uniform(x, Scaling::uniform);
  CHECK(uniform.mean()(1) == Approx(15));
  CHECK(uniform.scale()(0) == Approx(pooled));
  CHECK(uniform.scale()(1) == Approx(pooled));
  CHECK(uniform.log_det() == Approx(-2 * std::log(pooled)));
  const Matrix<TestType> z = uniform.transform(x);
  CHECK((z(1, 3) - z(1, 0)) / (z(0, 3) - z(0, 0)) == Approx(10.0 / 3.0));  // shape unchanged

  const Standardizer<TestType> centred(x, Scaling::none);
  CHECK(centred.scale()(0) == 1);
  CHECK(centred.scale()(1) == 1);
  CHECK(centred.log_det() == 0);
  const Matrix<TestType> c = centred.transform(x);
  CHECK(c(0, 0) == Approx(-1.5));
  CHECK(c(1, 2) == Approx(5));
}

TEMPLATE_TEST_CASE("Standardizer round trips and keeps float accuracy far from the origin", "[data]", float,
                   double) {
  const auto tol = knead::testing::Tolerances::for_scalar<TestType>();
  Rng rng(3);
  Matrix<TestType> x = knead::test::random_batch<TestType>(3, 500, rng, 0.01);
  x.colwise() += Vector<TestType>::Constant(3, TestType(1000));
  const Standardizer<TestType> s(x);
  const Matrix<TestType> z = s.transform(x);
  // Sums in double: a float fit of data offset by 1000 with spread 0.01 still centres it.
  CHECK(z.rowwise().mean().cwiseAbs().maxCoeff() < 1e-2);
  CHECK(((z.rowwise().squaredNorm() / 500).array() - 1).abs().maxCoeff() < 2e-2);
  const Matrix<TestType> back = s.inverse_transform(z);
  CHECK(((back - x).cwiseAbs().maxCoeff()) <= 1e-6 * 1000 + tol.round_trip);
}

TEMPLATE_TEST_CASE("Standardizer::log_det converts log densities between coordinates", "[data]", float,
                   double) {
  // With z ~ N(0, I), x = σ z + μ is N(μ, diag σ²): log p_x(x) = Σ_i [log N(z_i; 0, 1) − log σ_i].
  Matrix<TestType> x(2, 3);
  x << 0.5, -1, 4,  //
      7, 8, 12;
  const Standardizer<TestType> s(x);
  const Matrix<TestType> z = s.transform(x);
  RowVector<TestType> log_pz(3);
  for (Index j = 0; j < 3; ++j)
    log_pz(j) = TestType(-0.5 * z.col(j).squaredNorm() - std::log(2 * std::numbers::pi));
  const RowVector<TestType> log_px = s.data_log_prob(log_pz);
  for (Index j = 0; j < 3; ++j) {
    double direct = 0;
    for (Index i = 0; i < 2; ++i) {
      const double sd = s.scale()(i), r = (x(i, j) - s.mean()(i)) / sd;
      direct += -0.5 * r * r - 0.5 * std::log(2 * std::numbers::pi) - std::log(sd);
    }
    CHECK(log_px(j) == Approx(direct).epsilon(1e-5));
  }
}

TEST_CASE("Standardizer rejects constant dimensions, bad data and use before fit", "[data][errors]") {
  using Catch::Contains;
  Matrix<double> constant(2, 3);
  constant << 1, 2, 3, 5, 5, 5;
  CHECK_THROWS_AS(Standardizer<double>(constant), std::invalid_argument);
  CHECK_THROWS_WITH(Standardizer<double>(constant), Contains("Standardizer::fit") &&
                                                        Contains("dimension 1") &&
                                                        Contains("standard deviation 0"));
  CHECK_THROWS_WITH(Standardizer<double>(Matrix<double>(2, 0)),
                    Contains("Standardizer::fit") && Contains("2x0"));
  Matrix<double> bad(1, 2);
  bad << 1, std::nan("");
  CHECK_THROWS_WITH(Standardizer<double>(bad), Contains("Standardizer::fit") && Contains("nan"));
  CHECK_THROWS_WITH(Standardizer<double>(Matrix<double>::Constant(1, 1, 3.0)),
                    Contains("standard deviation 0"));
  CHECK_THROWS_WITH(Standardizer<double>(constant.row(1), Scaling::uniform),
                    Contains("standard deviation 0"));
  CHECK_NOTHROW(Standardizer<double>(constant, Scaling::none));  // centring needs no spread

  const Standardizer<double> unfitted;
  CHECK_FALSE(unfitted.fitted());
  CHECK_THROWS_AS(unfitted.transform(constant), std::logic_error);
  CHECK_THROWS_WITH(unfitted.transform(constant),
                    Contains("Standardizer::transform") && Contains("before fit"));
  CHECK_THROWS_WITH(unfitted.log_det(), Contains("Standardizer::log_det") && Contains("before fit"));
  CHECK_THROWS_WITH(unfitted.mean(), Contains("Standardizer::mean"));

  Matrix<double> x(2, 2);
  x << 1, 2, 3, 5;
  const Standardizer<double> s(x);
  CHECK_THROWS_WITH(s.transform(Matrix<double>::Zero(3, 2)),
                    Contains("Standardizer::transform") && Contains("2 rows") && Contains("3x2"));
  CHECK_THROWS_WITH(s.inverse_transform(Matrix<double>::Zero(1, 2)),
                    Contains("Standardizer::inverse_transform"));
  Matrix<double> inf = Matrix<double>::Zero(2, 1);
  inf(1, 0) = INFINITY;
  CHECK_THROWS_WITH(s.transform(inf), Contains("Standardizer::transform") && Contains("inf"));
  CHECK(s.data_log_prob(RowVector<double>::Zero(2)) == RowVector<double>::Constant(2, s.log_det()));
}

TEST_CASE("Standardizer fits data whose squares overflow and names a non-finite value's place",
          "[data][errors]") {
  using Catch::Contains;
  // Row 0 near 1e300: the squares of its deviations (~1e600) are beyond double's range.
  Matrix<double> x(2, 4);
  x << 1e300, 2e300, 3e300, 4e300,  //
      -1.7e308, 1.7e308, -1.7e308, 1.7e308;
  for (const Scaling scaling : {Scaling::per_dimension, Scaling::uniform}) {
    const Standardizer<double> s(x, scaling);
    REQUIRE(s.scale().allFinite());
    CHECK(std::isfinite(s.log_det()));
    const Matrix<double> z = s.transform(x);
    REQUIRE(z.allFinite());
    if (scaling == Scaling::per_dimension) {
      CHECK(s.scale()(0) == Approx(std::sqrt(1.25) * 1e300));
      CHECK(s.scale()(1) == Approx(1.7e308));
      for (Index i = 0; i < 2; ++i) {
        CHECK(z.row(i).mean() == Approx(0).margin(1e-12));
        CHECK(z.row(i).squaredNorm() / 4 == Approx(1));
      }
    } else {  // one scale, set by the wide row: the narrow one shrinks to almost nothing
      CHECK(s.scale()(0) == s.scale()(1));
      CHECK(z.squaredNorm() / 4 == Approx(2));
    }
    CHECK(((s.inverse_transform(z) - x).array() / x.array()).abs().maxCoeff() < 1e-14);
  }

  // A NaN in dimension 1 of sample 2 (row 1, column 2 of the D×N batch)
  Matrix<float> bad = Matrix<float>::Ones(3, 5);
  bad(1, 2) = std::nanf("");
  CHECK_THROWS_WITH(Standardizer<float>(bad), Contains("Standardizer::fit") && Contains("nan") &&
                                                  Contains("dimension 1") && Contains("sample 2"));
}

TEST_CASE("Standardizer's overflow-free moments are the plain formulas' bits when the squares fit",
          "[data]") {
  // Scaling by a power of two is exact, so μ = Σx/N and σ = √(Σ(x − μ)²/N) come out bit for bit.
  Rng rng(11);
  Matrix<double> x = knead::test::random_batch<double>(3, 257, rng, 1.0);
  x.row(1) *= 1e-3;
  x.row(2).array() += 1e5;
  const Vector<double> mean = x.rowwise().mean();
  const Vector<double> var = (x.colwise() - mean).rowwise().squaredNorm() / double(x.cols());
  const Standardizer<double> s(x);
  CHECK(s.mean() == mean);
  CHECK(s.scale() == var.cwiseSqrt());
  const Standardizer<double> uniform(x, Scaling::uniform);
  CHECK(uniform.scale() == Vector<double>::Constant(3, std::sqrt(var.mean())));
}
