#include "knead/optim/sgd.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "knead/bijectors/elementwise_affine.hpp"
#include "optim/quadratic.hpp"
#include "support.hpp"

using namespace knead;

namespace {

using test::Quadratic;
using test::relative;

}  // namespace

TEMPLATE_TEST_CASE("SGD minimises a quadratic, with and without (Nesterov) momentum", "[optim][sgd]", float,
                   double) {
  using T = TestType;
  const Quadratic<T> f;
  // lr · max a < 2 keeps plain gradient descent stable; momentum speeds up the flat directions
  const std::vector<SgdOptions> settings{{.lr = 0.05, .momentum = 0.0},
                                         {.lr = 0.05, .momentum = 0.9},
                                         {.lr = 0.05, .momentum = 0.9, .nesterov = true}};
  for (const auto& options : settings) {
    CAPTURE(options.momentum, options.nesterov);
    std::vector<T> theta(5, T(0)), g(5);
    Sgd<T> sgd(5, options);
    const int steps = options.momentum == 0 ? 4000 : 1000;
    for (int t = 0; t < steps; ++t) {
      f.gradient(theta, g);
      sgd.step(theta, g);
    }
    const double tol = std::is_same_v<T, double> ? 1e-8 : 1e-4;
    for (std::size_t i = 0; i < theta.size(); ++i)
      CHECK(double(theta[i]) == Approx(double(f.c[i])).margin(tol));
  }
}

TEMPLATE_TEST_CASE("SGD's first two steps match the closed form", "[optim][sgd]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, double> ? 1e-14 : 1e-6;
  const double lr = 0.1, mu = 0.8;
  const std::vector<double> theta0{1.0, -2.0}, g1{0.5, -1.0}, g2{-0.3, 2.0};
  const std::vector<T> grad1(g1.begin(), g1.end()), grad2(g2.begin(), g2.end());
  SECTION("heavy ball: b₁ = g₁, θ₁ = θ₀ − η g₁; b₂ = μ g₁ + g₂, θ₂ = θ₁ − η b₂") {
    std::vector<T> theta(theta0.begin(), theta0.end());
    Sgd<T> sgd(2, {.lr = lr, .momentum = mu});
    sgd.step(theta, grad1);
    for (std::size_t i = 0; i < 2; ++i) CHECK(relative(theta[i], theta0[i] - lr * g1[i]) < tol);
    sgd.step(theta, grad2);
    for (std::size_t i = 0; i < 2; ++i) {
      const double b2 = mu * g1[i] + g2[i];
      CHECK(relative(theta[i], theta0[i] - lr * g1[i] - lr * b2) < tol);
      CHECK(relative(sgd.velocity()[i], b2) < tol);
    }
  }
  SECTION("Nesterov: θ₁ = θ₀ − η (1 + μ) g₁; θ₂ = θ₁ − η (g₂ + μ (μ g₁ + g₂))") {
    std::vector<T> theta(theta0.begin(), theta0.end());
    Sgd<T> sgd(2, {.lr = lr, .momentum = mu, .nesterov = true});
    sgd.step(theta, grad1);
    for (std::size_t i = 0; i < 2; ++i) CHECK(relative(theta[i], theta0[i] - lr * (1 + mu) * g1[i]) < tol);
    sgd.step(theta, grad2);
    for (std::size_t i = 0; i < 2; ++i) {
      const double theta1 = theta0[i] - lr * (1 + mu) * g1[i];
      CHECK(relative(theta[i], theta1 - lr * (g2[i] + mu * (mu * g1[i] + g2[i]))) < tol);
    }
  }
  SECTION("decoupled weight decay: θ₁ = θ₀ − η (g₁ + λ θ₀)") {
    const double lambda = 0.3;
    std::vector<T> theta(theta0.begin(), theta0.end());
    Sgd<T> sgd(2, {.lr = lr, .momentum = mu, .weight_decay = lambda});
    sgd.step(theta, grad1);
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(relative(theta[i], theta0[i] - lr * (g1[i] + lambda * theta0[i])) < tol);
    // the decay does not enter the momentum buffer
    for (std::size_t i = 0; i < 2; ++i) CHECK(relative(sgd.velocity()[i], g1[i]) < tol);
  }
}

TEMPLATE_TEST_CASE("SGD follows its learning-rate schedule", "[optim][sgd][schedule]", float, double) {
  using T = TestType;
  const auto schedule = LrSchedule::cosine(0.2, 5, 2, 0.02);
  Sgd<T> sgd(1, {.lr = schedule});
  std::vector<T> theta{T(0)};
  const std::vector<T> g{T(1)};
  double expected = 0;
  for (Index t = 0; t < 7; ++t) {
    CHECK(sgd.learning_rate() == schedule.lr(t));
    sgd.step(theta, g);
    expected -= schedule.lr(t);
    CHECK(double(theta[0]) == Approx(expected).epsilon(1e-6));
  }
}

TEMPLATE_TEST_CASE("SGD's state can be saved and set back", "[optim][sgd]", float, double) {
  using T = TestType;
  Rng rng(9);
  const Matrix<T> grads = test::random_batch<T>(3, 6, rng);
  std::vector<T> a(3, T(0.5)), b;
  const SgdOptions options{.lr = 0.05, .momentum = 0.9, .nesterov = true};
  Sgd<T> sgd(3, options);
  for (Index t = 0; t < 2; ++t) sgd.step(a, std::span<const T>(grads.col(t).data(), 3));
  const std::vector<T> saved(sgd.state().begin(), sgd.state().end());
  b = a;
  Sgd<T> restored(3, options);
  restored.set_state(saved, sgd.step_count());
  for (Index t = 2; t < 6; ++t) {
    sgd.step(a, std::span<const T>(grads.col(t).data(), 3));
    restored.step(b, std::span<const T>(grads.col(t).data(), 3));
  }
  CHECK(a == b);
  CHECK(restored.step_count() == 6);
  restored.reset();
  CHECK(restored.step_count() == 0);
  for (const T s : restored.state()) CHECK(s == T(0));
}

TEST_CASE("SGD updates a flow's parameter storage in place", "[optim][sgd]") {
  Shift<float> shift(3);
  for (auto& g : shift.gradients()) g = 2.0f;
  Sgd<float> sgd(shift, {.lr = 0.25});
  sgd.step(shift);
  for (const float p : shift.parameters()) CHECK(p == Approx(-0.5f));
}

TEST_CASE("SGD rejects bad hyper-parameters, sizes and states", "[optim][sgd][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(Sgd<float>(-2), Catch::Contains("Sgd") && Catch::Contains("-2"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.lr = 0.0}), Catch::Contains("LrSchedule") && Catch::Contains("0"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.lr = std::numeric_limits<double>::infinity()}),
                    Catch::Contains("LrSchedule") && Catch::Contains("inf"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.momentum = 1.0}),
                    Catch::Contains("Sgd") && Catch::Contains("momentum") && Catch::Contains("1"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.momentum = -0.5}), Catch::Contains("Sgd") && Catch::Contains("-0.5"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.momentum = nan}), Catch::Contains("momentum") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.momentum = 0.0, .nesterov = true}),
                    Catch::Contains("Sgd") && Catch::Contains("nesterov") && Catch::Contains("0"));
  CHECK_THROWS_WITH(Sgd<double>(2, {.weight_decay = -1.0}),
                    Catch::Contains("Sgd") && Catch::Contains("weight_decay") && Catch::Contains("-1"));

  Sgd<double> sgd(2);
  std::vector<double> p2(2, 0.0), p5(5, 0.0), g2(2, 0.0);
  CHECK_THROWS_WITH(sgd.step(p5, g2), Catch::Contains("Sgd::step") &&
                                          Catch::Contains("expected 2 parameters") &&
                                          Catch::Contains("got 5"));
  Affine<double> small(1), large(3);
  Sgd<double> for_small(small);
  CHECK_THROWS_WITH(for_small.step(large), Catch::Contains("Sgd::step") && Catch::Contains("expected 2") &&
                                               Catch::Contains("got 6"));
  std::vector<double> g{-std::numeric_limits<double>::infinity(), 1.0};
  CHECK_THROWS_WITH(sgd.step(p2, g),
                    Catch::Contains("Sgd::step") && Catch::Contains("gradient 0") && Catch::Contains("-inf"));
  CHECK(p2 == std::vector<double>(2, 0.0));
  CHECK(sgd.step_count() == 0);
  std::vector<double> state(3, 0.0);
  CHECK_THROWS_WITH(sgd.set_state(state, 0), Catch::Contains("Sgd::set_state") && Catch::Contains("got 3"));
  state.resize(2);
  state[1] = nan;
  CHECK_THROWS_WITH(sgd.set_state(state, 0), Catch::Contains("Sgd::set_state") && Catch::Contains("nan"));
  state[1] = 0.0;
  CHECK_THROWS_WITH(sgd.set_state(state, -4), Catch::Contains("Sgd::set_state") && Catch::Contains("-4"));
}
