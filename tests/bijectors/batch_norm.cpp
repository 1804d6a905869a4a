#include "knead/bijectors/batch_norm.hpp"

#include <cmath>

#include "support.hpp"

using namespace knead;

namespace {

/// Batch mean and biased (1/N) variance per row, computed in double.
struct Moments {
  Vector<double> mean, variance;
};

template <class T>
Moments moments(const Matrix<T>& x) {
  const Matrix<double> xd = x.template cast<double>();
  Moments m{xd.rowwise().mean(), Vector<double>(xd.rows())};
  for (Index i = 0; i < xd.rows(); ++i)
    m.variance(i) = (xd.row(i).array() - m.mean(i)).square().sum() / double(xd.cols());
  return m;
}

/// A D×N batch with per-row means and scales far from 0 and 1, so normalizing changes it.
template <class T>
Matrix<T> shifted_batch(Index d, Index n, Rng& rng) {
  Matrix<T> x = test::random_batch<T>(d, n, rng);
  for (Index i = 0; i < d; ++i) x.row(i) = x.row(i) * T(0.5 + i) + RowVector<T>::Constant(n, T(1.5 - i));
  return x;
}

template <class T>
void randomise_running_statistics(BatchNorm<T>& norm, Rng& rng) {
  norm.set_running_mean(test::random_batch<T>(norm.dim(), 1, rng));
  norm.set_running_variance(test::random_batch<T>(norm.dim(), 1, rng).array().exp().matrix());
}

/// log|det| of the central-difference Jacobian of column `col` of the (per-sample) inverse map.
template <class T>
double numerical_inverse_log_det(BatchNorm<T>& norm, const Matrix<T>& x, Index col) {
  const Index d = norm.dim();
  Matrix<double> jac(d, d);
  Matrix<T> point = x.col(col);
  for (Index k = 0; k < d; ++k) {
    const T saved = point(k, 0);
    const T h = T(4) * testing::central_step(saved);
    point(k, 0) = saved + h;
    const Matrix<T> up = inverse(norm, point);
    point(k, 0) = saved - h;
    const Matrix<T> down = inverse(norm, point);
    point(k, 0) = saved;
    jac.col(k) = (up - down).template cast<double>() / (double(saved + h) - double(saved - h));
  }
  return testing::log_abs_det(jac);
}

}  // namespace

TEMPLATE_TEST_CASE("BatchNorm conforms in eval mode", "[bijectors][batch_norm]", float, double) {
  using T = TestType;
  Rng rng(29);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    BatchNorm<T> norm(d);
    CHECK(norm.training());  // the default
    norm.set_training(false);
    CHECK_FALSE(norm.training());
    CHECK(norm.num_parameters() == 2 * d);
    test::require_conformance(norm, test::random_batch<T>(d, 4, rng), rng);  // identity up to ε
    test::randomise_parameters(norm, rng, 0.6);
    randomise_running_statistics(norm, rng);
    test::require_conformance(norm, shifted_batch<T>(d, 4, rng), rng);
  }
}

TEMPLATE_TEST_CASE("BatchNorm in training mode normalizes with the batch statistics",
                   "[bijectors][batch_norm]", float, double) {
  using T = TestType;
  const double tol = testing::Tolerances::for_scalar<T>().log_det;
  Rng rng(31);
  for (const Index d : {1, 2, 3}) {
    CAPTURE(d);
    BatchNorm<T> norm(d);
    test::randomise_parameters(norm, rng, 0.6);
    const Matrix<T> x = shifted_batch<T>(d, 8, rng);
    const auto [u, ld] = inverse_and_log_det(norm, x);

    // log|det| = Σ_i (γ_i − ½ log(var_i + ε)) with the biased batch variance
    const Moments m = moments(x);
    const Vector<double> gamma = norm.log_scale().template cast<double>();
    const double expected = (gamma.array() - 0.5 * (m.variance.array() + double(norm.epsilon())).log()).sum();
    for (Index j = 0; j < x.cols(); ++j) CHECK(double(ld(j)) == Approx(expected).margin(tol));

    // the output is the per-sample map with the statistics frozen at the batch's, whose
    // numerical Jacobian has the same log-det
    BatchNorm<T> frozen = norm;
    frozen.set_training(false);
    frozen.set_running_mean(m.mean.template cast<T>());
    frozen.set_running_variance(m.variance.template cast<T>());
    const double scale = std::max(1.0, double(u.cwiseAbs().maxCoeff()));
    CHECK(double((inverse(frozen, x) - u).cwiseAbs().maxCoeff()) <=
          testing::Tolerances::for_scalar<T>().round_trip * scale * 10);
    for (Index j = 0; j < x.cols(); ++j)
      CHECK(numerical_inverse_log_det(frozen, x, j) == Approx(double(ld(j))).margin(tol));

    // each row of u has mean β and variance e^{2γ} var/(var + ε)
    const Vector<double> beta = norm.shift().template cast<double>();
    const Moments mu = moments(u);
    for (Index i = 0; i < d; ++i) {
      CHECK(mu.mean(i) == Approx(beta(i)).margin(tol));
      const double var_ratio = m.variance(i) / (m.variance(i) + double(norm.epsilon()));
      CHECK(mu.variance(i) == Approx(std::exp(2 * gamma(i)) * var_ratio).epsilon(tol));
    }
  }
}

TEMPLATE_TEST_CASE("BatchNorm training-mode gradients go through the batch statistics",
                   "[bijectors][batch_norm]", float, double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(37);
  for (const Index d : {1, 2, 3}) {
    CAPTURE(d);
    BatchNorm<T> norm(d, T(0));  // momentum 0: the loss evaluations leave the running statistics alone
    test::randomise_parameters(norm, rng, 0.6);
    randomise_running_statistics(norm, rng);
    const Vector<T> running_mean = norm.running_mean(), running_variance = norm.running_variance();
    Matrix<T> x = shifted_batch<T>(d, 5, rng);
    const Matrix<T> w = test::random_batch<T>(d, 5, rng);
    const RowVector<T> v = test::random_batch<T>(1, 5, rng);

    // L = Σ w ⊙ u + Σ v ⊙ ld of the whole batch: every evaluation recomputes the statistics
    auto loss = [&]() {
      const auto [u, ld] = inverse_and_log_det(norm, x);
      return u.template cast<double>().cwiseProduct(w.template cast<double>()).sum() +
             ld.template cast<double>().dot(v.template cast<double>());
    };
    zero_gradients(norm);
    (void)inverse(norm, x);
    norm.set_training(false);  // backward differentiates the pass that ran, whatever the mode now
    const Matrix<T> grad_x = backward(norm, w, v);
    norm.set_training(true);
    const Vector<double> analytic_x =
        Eigen::Map<const Vector<T>>(grad_x.data(), grad_x.size()).template cast<double>();
    const Vector<double> analytic_params =
        Eigen::Map<const Vector<T>>(norm.gradients().data(), norm.num_parameters()).template cast<double>();
    const Vector<double> numeric_x = testing::finite_difference_gradient<T>(
        loss, std::span<T>(x.data(), std::size_t(x.size())), tol.fd_step_scale);
    const Vector<double> numeric_params =
        testing::finite_difference_gradient<T>(loss, norm.parameters(), tol.fd_step_scale);
    CHECK(testing::relative_error(analytic_x, numeric_x) <= tol.gradient);
    CHECK(testing::relative_error(analytic_params, numeric_params) <= tol.gradient);

    // the statistics' share of ∂L/∂x is not negligible: frozen statistics give another gradient
    BatchNorm<T> frozen = norm;
    frozen.set_training(false);
    const Moments m = moments(x);
    frozen.set_running_mean(m.mean.template cast<T>());
    frozen.set_running_variance(m.variance.template cast<T>());
    (void)inverse(frozen, x);
    const Matrix<T> frozen_grad_x = backward(frozen, w, v);
    CHECK(double((frozen_grad_x - grad_x).cwiseAbs().maxCoeff()) > 0.1);

    CHECK(norm.running_mean() == running_mean);
    CHECK(norm.running_variance() == running_variance);
  }
}

TEST_CASE("BatchNorm updates the running statistics as PyTorch does", "[bijectors][batch_norm]") {
  Rng rng(41);
  const Matrix<double> x = shifted_batch<double>(3, 6, rng);
  const Moments m = moments(x);
  const Vector<double> unbiased = m.variance * 6.0 / 5.0;

  BatchNorm<double> norm(3, 0.25);
  (void)inverse(norm, x);  // from mean 0, variance 1
  CHECK((norm.running_mean() - 0.25 * m.mean).norm() < 1e-12);
  CHECK((norm.running_variance() - (0.75 * Vector<double>::Ones(3) + 0.25 * unbiased)).norm() < 1e-12);

  BatchNorm<double> replace(3, 1.0);
  (void)inverse(replace, x);
  CHECK((replace.running_mean() - m.mean).norm() < 1e-12);
  CHECK((replace.running_variance() - unbiased).norm() < 1e-12);

  // eval-mode inverses and forward passes (in either mode) leave them alone
  const Vector<double> mean = replace.running_mean(), variance = replace.running_variance();
  (void)forward(replace, x);
  replace.set_training(false);
  (void)inverse(replace, x);
  (void)forward(replace, x);
  CHECK(replace.running_mean() == mean);
  CHECK(replace.running_variance() == variance);
}

TEST_CASE("BatchNorm running statistics converge to the data's moments", "[bijectors][batch_norm]") {
  Rng rng(43);
  Vector<double> mean(3), sd(3);
  mean << 1.0, -2.0, 0.5;
  sd << 0.5, 2.0, 1.0;
  BatchNorm<double> norm(3);
  for (int batch = 0; batch < 300; ++batch) {
    Matrix<double> x = test::random_batch<double>(3, 256, rng);
    x = (x.array().colwise() * sd.array()).colwise() + mean.array();
    (void)inverse(norm, x);
  }
  // the EMA of 256-sample estimates with momentum 0.1 has a spread of about 0.015 sd (mean) and
  // 0.02 sd² (variance); these margins are five times that
  for (Index i = 0; i < 3; ++i) {
    CHECK(norm.running_mean()(i) == Approx(mean(i)).margin(0.08 * sd(i)));
    CHECK(norm.running_variance()(i) == Approx(sd(i) * sd(i)).epsilon(0.1));
  }
}

TEMPLATE_TEST_CASE("BatchNorm in eval mode is an exact inverse; forward always uses the running statistics",
                   "[bijectors][batch_norm]", float, double) {
  using T = TestType;
  const double tol = testing::Tolerances::for_scalar<T>().round_trip;
  Rng rng(47);
  BatchNorm<T> norm(4);
  test::randomise_parameters(norm, rng, 0.6);
  for (int batch = 0; batch < 5; ++batch) (void)inverse(norm, shifted_batch<T>(4, 16, rng));

  const Matrix<T> u = test::random_batch<T>(4, 7, rng);
  const auto [x_training, ld_training] = forward_and_log_det(norm, u);  // forward: running statistics
  norm.set_training(false);
  const auto [x, ld] = forward_and_log_det(norm, u);
  CHECK(x_training == x);
  CHECK(ld_training == ld);
  const auto [back, ld_back] = inverse_and_log_det(norm, x);
  CHECK(double((back - u).cwiseAbs().maxCoeff()) <= tol * 10);
  CHECK(double((ld + ld_back).cwiseAbs().maxCoeff()) <= tol * 10);
  // a single sample is fine in eval mode
  CHECK(double((inverse(norm, x.col(2)) - u.col(2)).cwiseAbs().maxCoeff()) <= tol * 10);

  // the exact statistics: x = (u − β) e^{−γ} sqrt(v + ε) + m with the running (m, v)
  const Vector<double> sigma =
      (norm.running_variance().template cast<double>().array() + double(norm.epsilon())).sqrt();
  const Matrix<double> expected =
      (((u.template cast<double>().colwise() - norm.shift().template cast<double>()).array().colwise() *
        ((-norm.log_scale().template cast<double>()).array().exp() * sigma.array()))
           .colwise() +
       norm.running_mean().template cast<double>().array())
          .matrix();
  CHECK((x.template cast<double>() - expected).cwiseAbs().maxCoeff() <= tol * 100);
}

TEST_CASE("BatchNorm rejects bad input", "[bijectors][batch_norm][errors]") {
  CHECK_THROWS_WITH(BatchNorm<double>(0), Catch::Contains("BatchNorm") && Catch::Contains("dim"));
  CHECK_THROWS_WITH(BatchNorm<double>(2, -0.1),
                    Catch::Contains("BatchNorm") && Catch::Contains("momentum") && Catch::Contains("-0.1"));
  CHECK_THROWS_WITH(BatchNorm<double>(2, 1.5), Catch::Contains("momentum") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(BatchNorm<float>(2, std::nanf("")),
                    Catch::Contains("momentum") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(BatchNorm<double>(2, 0.1, 0.0),
                    Catch::Contains("BatchNorm") && Catch::Contains("epsilon") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(BatchNorm<double>(2, 0.1, -1e-3),
                    Catch::Contains("epsilon") && Catch::Contains("-0.001"));
  CHECK_THROWS_WITH(BatchNorm<double>(2, 0.1, INFINITY),
                    Catch::Contains("epsilon") && Catch::Contains("inf"));

  BatchNorm<double> norm(2);
  CHECK_THROWS_WITH(norm.set_momentum(2.0), Catch::Contains("momentum") && Catch::Contains("2"));
  CHECK(norm.momentum() == 0.1);

  // a training-mode inverse needs two samples for a variance; eval mode does not
  CHECK_THROWS_WITH(inverse(norm, Matrix<double>::Ones(2, 1)),
                    Catch::Contains("BatchNorm::inverse_and_log_det") && Catch::Contains("training mode") &&
                        Catch::Contains("at least 2 columns") && Catch::Contains("got 1 column"));
  CHECK_THROWS_WITH(inverse(norm, Matrix<double>::Zero(3, 4)),
                    Catch::Contains("BatchNorm::inverse_and_log_det") && Catch::Contains("2 rows"));
  CHECK_THROWS_WITH(forward(norm, Matrix<double>::Zero(2, 0)),
                    Catch::Contains("BatchNorm::forward_and_log_det") && Catch::Contains("empty batch"));

  // non-finite training data would poison the running statistics: rejected, nothing updated
  Matrix<double> bad = Matrix<double>::Ones(2, 3);
  bad(1, 2) = std::nan("");
  CHECK_THROWS_WITH(inverse(norm, bad), Catch::Contains("BatchNorm::inverse_and_log_det") &&
                                            Catch::Contains("non-finite") && Catch::Contains("(1, 2)"));
  CHECK(norm.running_mean() == Vector<double>::Zero(2));
  CHECK(norm.running_variance() == Vector<double>::Ones(2));

  Vector<double> three = Vector<double>::Ones(3), nan_entry = Vector<double>::Ones(2),
                 zero_entry = Vector<double>::Ones(2), negative_entry = Vector<double>::Ones(2);
  nan_entry(1) = INFINITY;
  zero_entry(0) = 0.0;
  negative_entry(1) = -2.0;
  CHECK_THROWS_WITH(norm.set_running_mean(three),
                    Catch::Contains("BatchNorm::set_running_mean") && Catch::Contains("3 entries"));
  CHECK_THROWS_WITH(norm.set_running_mean(nan_entry),
                    Catch::Contains("BatchNorm::set_running_mean") && Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(norm.set_running_variance(nan_entry),
                    Catch::Contains("BatchNorm::set_running_variance") && Catch::Contains("inf"));
  CHECK_THROWS_WITH(norm.set_running_variance(zero_entry),
                    Catch::Contains("BatchNorm::set_running_variance") && Catch::Contains("positive") &&
                        Catch::Contains("got 0"));
  CHECK_THROWS_WITH(norm.set_running_variance(negative_entry),
                    Catch::Contains("positive") && Catch::Contains("got -2"));
  CHECK_THROWS_WITH(norm.set_running_variance(three), Catch::Contains("3 entries"));

  BatchNorm<double> fresh(2);
  CHECK_THROWS_AS(backward(fresh, Matrix<double>::Zero(2, 2), RowVector<double>::Zero(2)), std::logic_error);
  (void)inverse(fresh, Matrix<double>::Random(2, 3));
  CHECK_THROWS_WITH(backward(fresh, Matrix<double>::Zero(2, 2), RowVector<double>::Zero(2)),
                    Catch::Contains("BatchNorm::backward") && Catch::Contains("2x3"));
}
