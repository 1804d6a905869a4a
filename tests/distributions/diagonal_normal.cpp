#include "knead/distributions/diagonal_normal.hpp"

#include "support.hpp"

using namespace knead;

TEST_CASE("DiagonalNormal matches the closed form", "[distributions]") {
  Vector<double> mean(2), log_scale(2);
  mean << 1.0, -2.0;
  log_scale << std::log(2.0), std::log(0.5);
  DiagonalNormal<double> normal(mean, log_scale);
  Matrix<double> u(2, 1);
  u << 3.0, -2.5;
  RowVector<double> lp;
  normal.log_prob(u, lp);
  // z = (1, −1): −½(1 + 1) − log 2 − log ½ − log 2π
  CHECK(lp(0) == Approx(-1.0 - std::log(2 * 3.141592653589793)));
}

TEMPLATE_TEST_CASE("DiagonalNormal gradients match finite differences", "[distributions][gradients]", float,
                   double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(9);
  DiagonalNormal<T> normal(3);
  test::randomise_parameters(normal, rng, 0.5);
  Matrix<T> u = test::random_batch<T>(3, 4, rng);
  const RowVector<T> w = test::random_batch<T>(1, 4, rng);

  // log_prob: L = Σ w ⊙ log p(u)
  auto loss = [&] {
    RowVector<T> lp;
    normal.log_prob(u, lp);
    return double(lp.dot(w));
  };
  zero_gradients(normal);
  RowVector<T> lp;
  normal.log_prob(u, lp);
  Matrix<T> grad_u;
  normal.backward_log_prob(w, grad_u);
  const Vector<double> analytic_params =
      Eigen::Map<Vector<T>>(normal.gradients().data(), 6).template cast<double>();
  const Vector<double> analytic_u =
      Eigen::Map<Vector<T>>(grad_u.data(), grad_u.size()).template cast<double>();
  CHECK(testing::relative_error(analytic_params, testing::finite_difference_gradient<T>(
                                                     loss, normal.parameters(), tol.fd_step_scale)) <
        tol.gradient);
  CHECK(testing::relative_error(analytic_u, testing::finite_difference_gradient<T>(
                                                loss, std::span<T>(u.data(), std::size_t(u.size())),
                                                tol.fd_step_scale)) < tol.gradient);

  // reparameterised sample: L = Σ w2 ⊙ sample, with the noise held fixed by re-seeding
  const Matrix<T> w2 = test::random_batch<T>(3, 5, rng);
  auto sample_loss = [&] {
    Rng fixed(77);
    Matrix<T> s;
    normal.sample(5, fixed, s);
    return double(s.cwiseProduct(w2).sum());
  };
  zero_gradients(normal);
  Rng fixed(77);
  Matrix<T> s;
  normal.sample(5, fixed, s);
  normal.backward_sample(w2);
  const Vector<double> analytic_sample =
      Eigen::Map<Vector<T>>(normal.gradients().data(), 6).template cast<double>();
  CHECK(testing::relative_error(analytic_sample, testing::finite_difference_gradient<T>(
                                                     sample_loss, normal.parameters(), tol.fd_step_scale)) <
        tol.gradient);
}

TEST_CASE("DiagonalNormal rejects bad parameters", "[distributions][errors]") {
  Vector<double> mean(2), log_scale(3);
  mean << 0, 0;
  log_scale << 0, 0, 0;
  CHECK_THROWS_WITH((DiagonalNormal<double>(mean, log_scale)),
                    Catch::Contains("DiagonalNormal") && Catch::Contains("3"));
  Vector<double> bad(2);
  bad << 0, INFINITY;
  CHECK_THROWS_WITH((DiagonalNormal<double>(bad, mean)),
                    Catch::Contains("non-finite") && Catch::Contains("mean"));
}
