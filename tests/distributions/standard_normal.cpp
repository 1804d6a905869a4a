#include "knead/distributions/standard_normal.hpp"

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("StandardNormal log density and samples", "[distributions]", float, double) {
  StandardNormal<TestType> normal(3);
  Matrix<TestType> u(3, 2);
  u << 0, 1, 0, 2, 0, -2;
  RowVector<TestType> lp;
  normal.log_prob(u, lp);
  const double log_2pi = std::log(2 * 3.141592653589793);
  CHECK(lp(0) == Approx(-1.5 * log_2pi));
  CHECK(lp(1) == Approx(-0.5 * 9 - 1.5 * log_2pi));

  Rng rng(4);
  Matrix<TestType> s;
  normal.sample(20000, rng, s);
  const Matrix<double> sd = s.template cast<double>();
  CHECK(sd.rowwise().mean().cwiseAbs().maxCoeff() < 0.03);
  const Matrix<double> cov = sd * sd.transpose() / double(sd.cols());
  CHECK((cov - Matrix<double>::Identity(3, 3)).cwiseAbs().maxCoeff() < 0.05);

  Rng again(4);
  Matrix<TestType> s2;
  normal.sample(20000, again, s2);
  CHECK(s2 == s);
}

TEST_CASE("StandardNormal rejects bad input", "[distributions][errors]") {
  CHECK_THROWS_WITH(StandardNormal<double>(0), Catch::Contains("StandardNormal") && Catch::Contains("dim"));
  StandardNormal<double> normal(2);
  RowVector<double> lp;
  CHECK_THROWS_WITH(normal.log_prob(Matrix<double>::Zero(3, 1), lp), Catch::Contains("2 rows"));
  Rng rng(1);
  Matrix<double> s;
  CHECK_THROWS_WITH(normal.sample(0, rng, s), Catch::Contains("number of samples"));
}
