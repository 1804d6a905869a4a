#include "knead/distributions/mixture_of_gaussians.hpp"

#include <cmath>
#include <numbers>

#include "knead/distributions/diagonal_normal.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// The 2-component 1-D mixture used by several tests: logits (0.3, −0.5), means (1, −2),
/// scales (0.5, 2).
MixtureOfGaussians<double> two_component_line() {
  Vector<double> logits(2);
  logits << 0.3, -0.5;
  Matrix<double> means(1, 2), log_scales(1, 2);
  means << 1.0, -2.0;
  log_scales << std::log(0.5), std::log(2.0);
  return {logits, means, log_scales};
}

/// Three components on R² with distinct weights, means and scales.
MixtureOfGaussians<double> three_components_plane(double spread) {
  Vector<double> logits(3);
  logits << 0.2, -0.7, 0.9;
  Matrix<double> means(2, 3), log_scales(2, 3);
  means << -spread, 0.0, spread, 0.5, 3.0, -2.0;
  log_scales << std::log(0.7), std::log(1.5), std::log(1.0), std::log(1.2), std::log(0.6), std::log(0.9);
  return {logits, means, log_scales};
}

template <class T>
Vector<double> gradient_copy(MixtureOfGaussians<T>& m, std::size_t from = 0) {
  const auto g = m.gradients().subspan(from);
  return Eigen::Map<const Vector<T>>(g.data(), Index(g.size())).template cast<double>();
}

}  // namespace

TEMPLATE_TEST_CASE("MixtureOfGaussians with one component is a DiagonalNormal", "[distributions]", float,
                   double) {
  using T = TestType;
  Rng rng(3);
  Vector<T> mean = test::random_batch<T>(3, 1, rng), log_scale = test::random_batch<T>(3, 1, rng, 0.5);
  Vector<T> logit(1);
  logit << T(1.7);  // any logit: one component has weight 1
  MixtureOfGaussians<T> mixture(logit, mean, log_scale);
  DiagonalNormal<T> normal(mean, log_scale);
  const Matrix<T> u = test::random_batch<T>(3, 6, rng, 2.0);
  RowVector<T> a, b;
  mixture.log_prob(u, a);
  normal.log_prob(u, b);
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  for (Index j = 0; j < u.cols(); ++j) CHECK(double(a(j)) == Approx(double(b(j))).epsilon(tol));
}

TEST_CASE("MixtureOfGaussians matches the closed-form mixture density", "[distributions]") {
  auto mixture = two_component_line();
  // w = softmax(0.3, −0.5), by hand
  const double w1 = std::exp(0.3) / (std::exp(0.3) + std::exp(-0.5)), w2 = 1 - w1;
  const auto normal_pdf = [](double x, double mu, double sigma) {
    return std::exp(-0.5 * (x - mu) * (x - mu) / (sigma * sigma)) / (sigma * std::sqrt(2 * std::numbers::pi));
  };
  Matrix<double> u(1, 5);
  u << -4.0, -2.0, 0.0, 1.0, 3.5;
  RowVector<double> lp;
  mixture.log_prob(u, lp);
  for (Index j = 0; j < u.cols(); ++j) {
    const double x = u(0, j);
    CHECK(lp(j) ==
          Approx(std::log(w1 * normal_pdf(x, 1.0, 0.5) + w2 * normal_pdf(x, -2.0, 2.0))).epsilon(1e-12));
  }
  CHECK(mixture.weights()(0) == Approx(w1).epsilon(1e-14));
}

TEST_CASE("MixtureOfGaussians densities integrate to 1", "[distributions]") {
  SECTION("1-D, three components") {
    Vector<double> logits(3);
    logits << 0.5, -1.0, 0.0;
    Matrix<double> means(1, 3), log_scales(1, 3);
    means << -3.0, 0.5, 4.0;
    log_scales << std::log(0.4), std::log(1.0), std::log(2.0);
    MixtureOfGaussians<double> mixture(logits, means, log_scales);
    // trapezoid rule on [−30, 30]: the smooth, fast-decaying integrand makes it spectrally accurate
    const Index n = 6001;
    Matrix<double> u(1, n);
    for (Index j = 0; j < n; ++j) u(0, j) = -30.0 + 60.0 * double(j) / double(n - 1);
    RowVector<double> lp;
    mixture.log_prob(u, lp);
    const double h = 60.0 / double(n - 1);
    const double integral = h * (lp.array().exp().sum() - 0.5 * (std::exp(lp(0)) + std::exp(lp(n - 1))));
    CHECK(integral == Approx(1.0).epsilon(1e-9));
  }
  SECTION("2-D, three components") {
    auto mixture = three_components_plane(3.0);
    const Index side = 601;
    const double lo = -15.0, hi = 15.0, h = (hi - lo) / double(side - 1);
    Matrix<double> u(2, side * side);
    for (Index a = 0; a < side; ++a)
      for (Index b = 0; b < side; ++b) u.col(a * side + b) << lo + h * double(a), lo + h * double(b);
    RowVector<double> lp;
    mixture.log_prob(u, lp);
    // the density is negligible on the boundary, so the plain sum is the trapezoid rule
    CHECK(h * h * lp.array().exp().sum() == Approx(1.0).epsilon(1e-8));
  }
}

/// backward_log_prob of L = Σ_n w_n log p(u_n) against central differences of L, block by block
/// (logits, means, log-scales, u), so that a large block does not hide the error of a small one.
template <class T>
void check_log_prob_gradients(MixtureOfGaussians<T>& mixture, Matrix<T> u, const RowVector<T>& w) {
  const auto tol = testing::Tolerances::for_scalar<T>();
  auto loss = [&] {
    RowVector<T> lp;
    mixture.log_prob(u, lp);
    return double(lp.dot(w));
  };
  zero_gradients(mixture);
  RowVector<T> lp;
  mixture.log_prob(u, lp);
  REQUIRE(lp.allFinite());
  Matrix<T> grad_u;
  mixture.backward_log_prob(w, grad_u);
  REQUIRE(grad_u.allFinite());
  const auto k = std::size_t(mixture.components()), kd = k * std::size_t(mixture.dim());
  const std::pair<std::size_t, std::size_t> blocks[] = {{0, k}, {k, kd}, {k + kd, kd}};
  for (const auto& [at, size] : blocks) {
    INFO("parameters [" << at << ", " << at + size << ")");
    const Vector<double> analytic = gradient_copy(mixture, at).head(Index(size));
    REQUIRE(analytic.allFinite());
    CHECK(testing::relative_error(
              analytic, testing::finite_difference_gradient<T>(loss, mixture.parameters().subspan(at, size),
                                                               tol.fd_step_scale)) < tol.gradient);
  }
  const Vector<double> analytic_u =
      Eigen::Map<Vector<T>>(grad_u.data(), grad_u.size()).template cast<double>();
  CHECK(testing::relative_error(analytic_u, testing::finite_difference_gradient<T>(
                                                loss, std::span<T>(u.data(), std::size_t(u.size())),
                                                tol.fd_step_scale)) < tol.gradient);
}

TEMPLATE_TEST_CASE("MixtureOfGaussians gradients match finite differences", "[distributions][gradients]",
                   float, double) {
  using T = TestType;
  Rng rng(11);
  MixtureOfGaussians<T> mixture(3, 4, 5);
  test::randomise_parameters(mixture, rng, 0.5);
  SECTION("ordinary points") {
    check_log_prob_gradients<T>(mixture, test::random_batch<T>(3, 5, rng), test::random_batch<T>(1, 5, rng));
  }
  SECTION("far in the tails, where one component takes all the responsibility") {
    // a_k ≈ −10³ for every k, so every e^{a_k} underflows: without subtracting max a_k first,
    // log p would be log 0
    Matrix<T> u(3, 2);
    u << T(50), T(-50), T(-50), T(-50), T(50), T(-50);
    check_log_prob_gradients<T>(mixture, u, test::random_batch<T>(1, 2, rng));
  }
}

TEMPLATE_TEST_CASE("MixtureOfGaussians backward_sample matches finite differences of a fixed draw",
                   "[distributions][gradients]", float, double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(21);
  MixtureOfGaussians<T> mixture(2, 3, 8);
  test::randomise_parameters(mixture, rng, 0.5);
  const Matrix<T> w = test::random_batch<T>(2, 40, rng);
  // L = Σ w ⊙ sample with the choices and the noise fixed by re-seeding; the differences move
  // only means and log-scales, which leave the choices as they are
  auto sample_loss = [&] {
    Rng fixed(77);
    Matrix<T> s;
    mixture.sample(40, fixed, s);
    return double(s.cwiseProduct(w).sum());
  };
  zero_gradients(mixture);
  Rng fixed(77);
  Matrix<T> s;
  mixture.sample(40, fixed, s);
  mixture.backward_sample(w);
  const auto k = std::size_t(mixture.components());
  const Vector<double> analytic = gradient_copy(mixture, k);
  CHECK(testing::relative_error(
            analytic, testing::finite_difference_gradient<T>(sample_loss, mixture.parameters().subspan(k),
                                                             tol.fd_step_scale)) < tol.gradient);
  CHECK(analytic.cwiseAbs().maxCoeff() > 0.1);
  for (std::size_t i = 0; i < k; ++i) CHECK(mixture.gradients()[i] == T(0));  // logits: not reparameterised
}

TEST_CASE("MixtureOfGaussians samples have the mixture's moments and weights", "[distributions]") {
  // components 20 apart along the first axis, with scales ≤ 1.5: the nearest mean tells which
  // component drew a sample (wrong with probability < 1e-10)
  auto mixture = three_components_plane(20.0);
  const Vector<double> w = mixture.weights();
  const Matrix<double> mu = mixture.means();
  const Matrix<double> var = (2.0 * mixture.log_scales().array()).exp();
  Vector<double> mean = mu * w;
  Matrix<double> cov = -mean * mean.transpose();
  for (Index k = 0; k < 3; ++k)
    cov += w(k) * (Matrix<double>(var.col(k).asDiagonal()) + mu.col(k) * mu.col(k).transpose());

  const Index n = 100000;
  Rng rng(2024);
  Matrix<double> x;
  mixture.sample(n, rng, x);
  const Vector<double> sample_mean = x.rowwise().mean();
  const Matrix<double> centred = x.colwise() - sample_mean;
  const Matrix<double> sample_cov = centred * centred.transpose() / double(n - 1);
  for (Index i = 0; i < 2; ++i)
    CHECK(std::abs(sample_mean(i) - mean(i)) < 4 * std::sqrt(cov(i, i) / double(n)));
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 2; ++j) {
      // standard error of a covariance entry: the spread of the products it averages
      const Eigen::ArrayXd products = (centred.row(i).array() * centred.row(j).array()).transpose();
      const double se = std::sqrt((products - products.mean()).square().mean() / double(n));
      CHECK(std::abs(sample_cov(i, j) - cov(i, j)) < 4 * se);
    }
  for (Index k = 0; k < 3; ++k) {
    const double share = double(((x.row(0).array() - mu(0, k)).abs() < 10.0).count()) / double(n);
    CHECK(std::abs(share - w(k)) < 4 * std::sqrt(w(k) * (1 - w(k)) / double(n)));
  }

  // the same engine state gives the same draw
  Rng again(2024);
  Matrix<double> y;
  mixture.sample(n, again, y);
  CHECK(x == y);
}

TEST_CASE("MixtureOfGaussians starts with distinct components from its seed", "[distributions]") {
  MixtureOfGaussians<double> a(2, 4, 1), b(2, 4, 1), c(2, 4, 2);
  CHECK(Matrix<double>(a.means()) == Matrix<double>(b.means()));
  CHECK(Matrix<double>(a.means()) != Matrix<double>(c.means()));
  for (Index k = 1; k < 4; ++k) CHECK(a.means().col(k) != a.means().col(0));
  CHECK(a.weights().isApproxToConstant(0.25));
  CHECK(a.log_scales().isZero());
}

TEST_CASE("MixtureOfGaussians rejects bad input", "[distributions][errors]") {
  CHECK_THROWS_WITH((MixtureOfGaussians<double>(2, 0)), Catch::Contains("MixtureOfGaussians") &&
                                                            Catch::Contains("components") &&
                                                            Catch::Contains("0"));
  CHECK_THROWS_WITH((MixtureOfGaussians<double>(-1, 3)),
                    Catch::Contains("MixtureOfGaussians") && Catch::Contains("dim") && Catch::Contains("-1"));
  MixtureOfGaussians<double> mixture(2, 3);
  RowVector<double> lp;
  CHECK_THROWS_WITH(mixture.log_prob(Matrix<double>::Zero(3, 4), lp),
                    Catch::Contains("MixtureOfGaussians::log_prob") && Catch::Contains("3x4"));
  Matrix<double> grad_u;
  CHECK_THROWS_WITH(mixture.backward_log_prob(RowVector<double>::Ones(4), grad_u),
                    Catch::Contains("MixtureOfGaussians::backward_log_prob") && Catch::Contains("log_prob"));
  Rng rng(1);
  CHECK_THROWS_WITH(mixture.sample(0, rng, grad_u),
                    Catch::Contains("MixtureOfGaussians::sample") && Catch::Contains("0"));

  Vector<double> logits = Vector<double>::Zero(2);
  Matrix<double> means = Matrix<double>::Zero(3, 2), log_scales = Matrix<double>::Zero(3, 2);
  means(1, 1) = std::nan("");
  CHECK_THROWS_WITH((MixtureOfGaussians<double>(logits, means, log_scales)),
                    Catch::Contains("non-finite") && Catch::Contains("means") && Catch::Contains("(1, 1)"));
  means(1, 1) = 0;
  logits(0) = INFINITY;
  CHECK_THROWS_WITH((MixtureOfGaussians<double>(logits, means, log_scales)),
                    Catch::Contains("non-finite") && Catch::Contains("logits"));
  logits(0) = 0;
  CHECK_THROWS_WITH((MixtureOfGaussians<double>(logits, means, Matrix<double>::Zero(3, 3))),
                    Catch::Contains("MixtureOfGaussians") && Catch::Contains("3x3"));
}
