#include "knead/optim/adam.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "knead/bijectors/elementwise_affine.hpp"
#include "optim/quadratic.hpp"
#include "support.hpp"

using namespace knead;

namespace {

using test::Quadratic;
using test::relative;

}  // namespace

TEMPLATE_TEST_CASE("Adam minimises a quadratic", "[optim][adam]", float, double) {
  using T = TestType;
  const Quadratic<T> f;
  std::vector<T> theta(5, T(0)), g(5);
  Adam<T> adam(5, {.lr = LrSchedule::cosine(0.1, 3000)});
  for (int t = 0; t < 3000; ++t) {
    f.gradient(theta, g);
    adam.step(theta, g);
  }
  const double tol = std::is_same_v<T, double> ? 1e-6 : 1e-4;
  for (std::size_t i = 0; i < theta.size(); ++i)
    CHECK(double(theta[i]) == Approx(double(f.c[i])).margin(tol));
  CHECK(adam.step_count() == 3000);
}

TEMPLATE_TEST_CASE("Adam's first two steps match the closed form", "[optim][adam]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, double> ? 1e-14 : 1e-6;
  const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const std::vector<double> theta0{1.0, -2.0, 0.5}, g1{0.5, -1.0, 2.0}, g2{-0.3, 0.2, 1.0};
  std::vector<T> theta(theta0.begin(), theta0.end());
  const std::vector<T> grad1(g1.begin(), g1.end()), grad2(g2.begin(), g2.end());
  Adam<T> adam(3, {.lr = lr, .beta1 = b1, .beta2 = b2, .epsilon = eps});
  CHECK(adam.learning_rate() == lr);

  adam.step(theta, grad1);
  std::vector<double> m(3), v(3), expected(3);
  for (std::size_t i = 0; i < 3; ++i) {
    m[i] = (1 - b1) * g1[i];
    v[i] = (1 - b2) * g1[i] * g1[i];
    const double m_hat = m[i] / (1 - b1), v_hat = v[i] / (1 - b2);  // = g, g²
    expected[i] = theta0[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
    CHECK(relative(theta[i], expected[i]) < tol);
    // the first step moves every parameter by lr against the sign of its gradient (|g| ≫ ε)
    CHECK(relative(theta[i], theta0[i] - lr * (g1[i] > 0 ? 1 : -1)) < 1e-6);
    CHECK(relative(adam.first_moment()[i], m[i]) < tol);
    CHECK(relative(adam.second_moment()[i], v[i]) < tol);
  }
  CHECK(adam.step_count() == 1);

  adam.step(theta, grad2);
  for (std::size_t i = 0; i < 3; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * g2[i];
    v[i] = b2 * v[i] + (1 - b2) * g2[i] * g2[i];
    const double m_hat = m[i] / (1 - b1 * b1), v_hat = v[i] / (1 - b2 * b2);
    expected[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    CHECK(relative(theta[i], expected[i]) < tol);
    CHECK(relative(adam.first_moment()[i], m[i]) < tol);
    CHECK(relative(adam.second_moment()[i], v[i]) < tol);
  }
  CHECK(adam.step_count() == 2);
}

TEMPLATE_TEST_CASE("Adam's weight decay is decoupled from the gradient", "[optim][adam]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, double> ? 1e-13 : 1e-5;
  const double lr = 0.05, lambda = 0.2;
  SECTION("with zero gradients the parameters shrink geometrically: θ_k = θ₀ (1 − ηλ)^k") {
    std::vector<T> theta{T(2), T(-1)};
    const std::vector<T> zero(2, T(0));
    Adam<T> adam(2, {.lr = lr, .weight_decay = lambda});
    for (int k = 0; k < 10; ++k) adam.step(theta, zero);
    CHECK(relative(theta[0], 2.0 * std::pow(1 - lr * lambda, 10)) < tol);
    CHECK(relative(theta[1], -1.0 * std::pow(1 - lr * lambda, 10)) < tol);
  }
  SECTION("the decay is not rescaled by the second moment: θ₁ = θ₀ − η (g / (|g| + ε) + λ θ₀)") {
    const double eps = 1e-8;
    const std::vector<double> theta0{3.0, -0.5, 0.25}, g{100.0, -1e-3, 0.5};
    std::vector<T> theta(theta0.begin(), theta0.end());
    const std::vector<T> grad(g.begin(), g.end());
    Adam<T> adam(3, {.lr = lr, .epsilon = eps, .weight_decay = lambda});
    adam.step(theta, grad);
    for (std::size_t i = 0; i < 3; ++i)
      CHECK(relative(theta[i], theta0[i] - lr * (g[i] / (std::abs(g[i]) + eps) + lambda * theta0[i])) < tol);
  }
}

TEMPLATE_TEST_CASE("Adam follows its learning-rate schedule", "[optim][adam][schedule]", float, double) {
  using T = TestType;
  // with a constant gradient m̂ = g and v̂ = g², so every step moves by lr(t) (|g| ≫ ε)
  const auto schedule = LrSchedule::step(0.1, 2, 0.5);
  Adam<T> adam(1, {.lr = schedule});
  std::vector<T> theta{T(0)};
  const std::vector<T> g{T(1)};
  double expected = 0;
  for (Index t = 0; t < 6; ++t) {
    CHECK(adam.learning_rate() == schedule.lr(t));
    adam.step(theta, g);
    expected -= schedule.lr(t);
    CHECK(double(theta[0]) == Approx(expected).epsilon(1e-5));
  }
}

TEMPLATE_TEST_CASE("Adam's state can be saved and set back", "[optim][adam]", float, double) {
  using T = TestType;
  Rng rng(5);
  const Matrix<T> grads = test::random_batch<T>(4, 8, rng);
  std::vector<T> a(4, T(0.5)), b;
  Adam<T> adam(4, {.lr = 0.01, .weight_decay = 0.01});
  for (Index t = 0; t < 3; ++t) adam.step(a, std::span<const T>(grads.col(t).data(), 4));
  REQUIRE(adam.state().size() == 8);
  const std::vector<T> saved(adam.state().begin(), adam.state().end());
  b = a;
  Adam<T> restored(4, {.lr = 0.01, .weight_decay = 0.01});
  restored.set_state(saved, adam.step_count());
  CHECK(restored.step_count() == 3);
  for (Index t = 3; t < 8; ++t) {
    adam.step(a, std::span<const T>(grads.col(t).data(), 4));
    restored.step(b, std::span<const T>(grads.col(t).data(), 4));
  }
  CHECK(a == b);  // bit-identical continuation
  restored.reset();
  CHECK(restored.step_count() == 0);
  for (const T s : restored.state()) CHECK(s == T(0));
}

TEST_CASE("Adam updates a flow's parameter storage in place", "[optim][adam]") {
  Affine<double> affine(2);
  for (auto& g : affine.gradients()) g = 1.0;
  Adam<double> adam(affine, {.lr = 0.5});
  REQUIRE(adam.num_parameters() == 4);
  adam.step(affine);
  for (const double p : affine.parameters()) CHECK(p == Approx(-0.5));
  CHECK(affine.log_scale()(1) == Approx(-0.5));
}

TEST_CASE("Adam rejects bad hyper-parameters, sizes and states", "[optim][adam][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(Adam<double>(0), Catch::Contains("Adam") && Catch::Contains("0"));
  CHECK_THROWS_WITH(Adam<double>(2, {.lr = 0.0}), Catch::Contains("LrSchedule") && Catch::Contains("0"));
  CHECK_THROWS_WITH(Adam<double>(2, {.lr = -0.5}), Catch::Contains("LrSchedule") && Catch::Contains("-0.5"));
  CHECK_THROWS_WITH(Adam<double>(2, {.lr = nan}), Catch::Contains("LrSchedule") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(Adam<double>(2, {.beta1 = 1.0}),
                    Catch::Contains("Adam") && Catch::Contains("beta1") && Catch::Contains("1"));
  CHECK_THROWS_WITH(Adam<double>(2, {.beta1 = -0.1}), Catch::Contains("Adam") && Catch::Contains("-0.1"));
  CHECK_THROWS_WITH(Adam<double>(2, {.beta2 = 1.5}),
                    Catch::Contains("Adam") && Catch::Contains("beta2") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(Adam<double>(2, {.beta2 = nan}), Catch::Contains("beta2") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(Adam<double>(2, {.epsilon = 0.0}), Catch::Contains("Adam") && Catch::Contains("epsilon"));
  CHECK_THROWS_WITH(Adam<double>(2, {.epsilon = -1e-8}),
                    Catch::Contains("epsilon") && Catch::Contains("-1e-08"));
  CHECK_THROWS_WITH(Adam<double>(2, {.weight_decay = -0.25}),
                    Catch::Contains("Adam") && Catch::Contains("weight_decay") && Catch::Contains("-0.25"));

  Adam<double> adam(3);
  std::vector<double> p3(3, 0.0), p4(4, 0.0), g3(3, 0.0), g4(4, 0.0);
  CHECK_THROWS_WITH(adam.step(p4, g4), Catch::Contains("Adam::step") &&
                                           Catch::Contains("expected 3 parameters") &&
                                           Catch::Contains("got 4"));
  CHECK_THROWS_WITH(adam.step(p3, g4), Catch::Contains("Adam::step") &&
                                           Catch::Contains("expected 3 gradients") &&
                                           Catch::Contains("got 4"));
  // a model whose parameter count changed since the optimizer was made for it
  Affine<double> small(1), large(2);
  Adam<double> for_small(small);
  CHECK_THROWS_WITH(for_small.step(large), Catch::Contains("Adam::step") && Catch::Contains("expected 2") &&
                                               Catch::Contains("got 4"));
  // a non-finite gradient changes nothing
  std::vector<double> g{1.0, nan, 0.0};
  CHECK_THROWS_WITH(adam.step(p3, g),
                    Catch::Contains("Adam::step") && Catch::Contains("gradient 1") && Catch::Contains("nan"));
  CHECK(p3 == std::vector<double>(3, 0.0));
  CHECK(adam.step_count() == 0);
  for (const double s : adam.state()) CHECK(s == 0.0);

  std::vector<double> state(6, 0.0);
  CHECK_THROWS_WITH(adam.set_state(std::span<const double>(state).first(5), 1),
                    Catch::Contains("Adam::set_state") && Catch::Contains("6") && Catch::Contains("got 5"));
  CHECK_THROWS_WITH(adam.set_state(state, -1), Catch::Contains("Adam::set_state") && Catch::Contains("-1"));
  state[4] = -0.5;
  CHECK_THROWS_WITH(adam.set_state(state, 1), Catch::Contains("Adam::set_state") &&
                                                  Catch::Contains("second moment 1") &&
                                                  Catch::Contains("-0.5"));
  state[4] = 0.0;
  state[0] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(adam.set_state(state, 1), Catch::Contains("Adam::set_state") && Catch::Contains("inf"));
}

TEST_CASE("Adam finds a non-finite gradient in a large model split over threads", "[optim][adam][errors]") {
  // 300,000 parameters: the finiteness check and the update run on two threads
  const test::ThreadCount threads(2);
  const std::size_t n = 300000;
  for (const std::size_t bad_at : {std::size_t(3), n - 1}) {
    Adam<float> adam(Index(n), {.lr = 0.1});
    std::vector<float> params(n, 1.0f), grads(n, 0.5f);
    grads[bad_at] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(adam.step(params, grads), Catch::Contains("Adam::step") &&
                                                    Catch::Contains("gradient " + std::to_string(bad_at)) &&
                                                    Catch::Contains("inf"));
    CHECK(params == std::vector<float>(n, 1.0f));
    CHECK(adam.step_count() == 0);
    grads[bad_at] = 0.5f;
    adam.step(params, grads);  // the first step moves every parameter by lr: g / √(g²) = 1
    float worst = 0;
    for (const float p : params) worst = std::max(worst, std::abs(p - 0.9f));
    CHECK(worst < 1e-6f);
  }
}

TEMPLATE_TEST_CASE("Adam follows Algorithm 1 where gradients are zero in long runs", "[optim][adam]", float,
                   double) {
  // Runs of zero gradients (as in a masked network's structurally zero weights) are long enough
  // to fill whole chunks of the update; a run that starts with zero gradients turns non-zero at
  // step 3, another turns zero at step 3 (its moments still move it), and the decoupled weight
  // decay applies everywhere.
  using T = TestType;
  const double tol = std::is_same_v<T, double> ? 1e-12 : 2e-6;
  const std::size_t n = 1000;
  for (const double weight_decay : {0.0, 0.1}) {
    INFO("weight decay " << weight_decay);
    const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    Adam<T> adam(Index(n),
                 {.lr = lr, .beta1 = b1, .beta2 = b2, .epsilon = eps, .weight_decay = weight_decay});
    std::vector<double> theta(n), m(n, 0.0), v(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) theta[i] = std::sin(double(i));
    std::vector<T> params(theta.begin(), theta.end());
    for (int t = 1; t <= 4; ++t) {
      std::vector<double> g(n, 0.0);
      for (std::size_t i = 0; i < n; ++i) {
        const bool zero = (i >= 100 && i < 420) || i >= 870 || (i >= 600 && i < 700 && t < 3) ||
                          (i >= 450 && i < 550 && t >= 3);
        if (!zero) g[i] = std::cos(double(i * std::size_t(t)));
      }
      const std::vector<T> grads(g.begin(), g.end());
      adam.step(params, grads);
      for (std::size_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        const double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat = v[i] / (1 - std::pow(b2, t));
        theta[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * theta[i]);
      }
    }
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::abs(double(params[i]) - theta[i]));
      worst = std::max(worst, std::abs(double(adam.first_moment()[i]) - m[i]));
      worst = std::max(worst, std::abs(double(adam.second_moment()[i]) - v[i]));
    }
    CHECK(worst < tol);
    // where the gradient was always zero and there is no decay, nothing moved at all
    if (weight_decay == 0.0)
      for (std::size_t i = 100; i < 420; ++i) CHECK(params[i] == T(std::sin(double(i))));
  }
}

TEMPLATE_TEST_CASE("Adam gives one answer for a huge gradient in a SIMD chunk and in the scalar tail",
                   "[optim][adam][errors]", float, double) {
  // 3 chunks of 32 and a tail of 5. A gradient whose square overflows T would make the second moment
  // +∞; it is refused wherever it sits, changing nothing.
  using T = TestType;
  const std::size_t n = 3 * 32 + 5;
  const T huge = std::is_same_v<T, float> ? T(1e25) : T(1e160);
  for (const std::size_t bad_at : {std::size_t(40), n - 2}) {
    Adam<T> adam(Index(n), {.lr = 0.1});
    std::vector<T> params(n, T(1)), grads(n, T(0.5));
    grads[bad_at] = -huge;
    CHECK_THROWS_WITH(adam.step(params, grads), Catch::Contains("Adam::step") &&
                                                    Catch::Contains("gradient " + std::to_string(bad_at)) &&
                                                    Catch::Contains("overflow"));
    CHECK(params == std::vector<T>(n, T(1)));
    CHECK(adam.step_count() == 0);
    for (const T s : adam.state()) CHECK(s == T(0));
  }
  // Just inside the bound the first step is finite and the same everywhere: m̂ = g, v̂ = g², so
  // every parameter moves by lr · g / (|g| + ε) = lr.
  const T largest = detail::largest_adam_gradient<T>;
  CHECK(std::isfinite(largest * largest));
  Adam<T> adam(Index(n), {.lr = 0.1});
  std::vector<T> params(n, T(1)), grads(n, largest);
  adam.step(params, grads);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("parameter " << i);
    REQUIRE(std::isfinite(params[i]));
    CHECK(std::abs(double(params[i]) - 0.9) < 1e-6);
  }
  for (const T s : adam.state()) CHECK(std::isfinite(s));
}
