#include "knead/nn/log_scale_guard.hpp"

#include <cmath>
#include <limits>

#include "support.hpp"

using namespace knead;

namespace {

template <class T>
LogScaleGuard<T> guard_of(LogScaleGuardKind kind, T bound) {
  LogScaleGuard<T> g;
  g.kind = kind;
  g.bound = bound;
  return g;
}

/// Raw log-scales from far below −c to far above c, including exactly ±c and 0.
template <class T>
Matrix<T> raw_values(T bound) {
  Matrix<T> a(4, 9);
  a << -40, -7, -5, -3, -1, -0.25, 0, 0.25, 1,            //
      3, 5, 7, 40, 1e-6, -1e-6, 2.5, -2.5, 4.99,          //
      -4.99, 5.01, -5.01, 0.5, -0.5, 10, -10, 100, -100,  //
      0.1, -0.1, 2, -2, 6, -6, 4, -4, 3.5;
  return a * (bound / T(5));
}

}  // namespace

TEMPLATE_TEST_CASE("LogScaleGuard follows its closed forms", "[nn][log_scale_guard]", float, double) {
  using T = TestType;
  const T c = 3;
  const T eps = std::numeric_limits<T>::epsilon() * 8;
  const auto soft = guard_of(LogScaleGuardKind::soft_clamp, c);
  const auto hard = guard_of(LogScaleGuardKind::clamp, c);
  const auto none = guard_of(LogScaleGuardKind::none, c);
  for (const T a : {T(-20), T(-3), T(-1), T(0), T(0.5), T(2.9), T(3.1), T(20)}) {
    CHECK(std::abs(soft.apply(a) - c * std::tanh(a / c)) <= eps * c);
    CHECK(std::abs(soft.apply(a)) <= c);
    CHECK(soft.derivative(a) == Approx(1 - std::pow(std::tanh(a / c), 2)).margin(eps));
    CHECK(hard.apply(a) == std::min(std::max(a, -c), c));
    CHECK(hard.derivative(a) == (std::abs(a) < c ? T(1) : T(0)));
    CHECK(none.apply(a) == a);
    CHECK(none.derivative(a) == T(1));
  }
  // near zero the soft clamp is the identity to second order
  CHECK(soft.apply(T(1e-3)) == Approx(T(1e-3)).epsilon(1e-6));
}

TEMPLATE_TEST_CASE("LogScaleGuard's block forms agree with the scalar ones", "[nn][log_scale_guard]", float,
                   double) {
  using T = TestType;
  // Eigen's vectorised float tanh differs from std::tanh by a few ulp
  const T tolerance = std::is_same_v<T, float> ? T(4e-6) : T(1e-14);
  for (const T bound : {T(5), T(0.7)}) {
    const Matrix<T> a = raw_values<T>(bound);
    for (const auto kind :
         {LogScaleGuardKind::soft_clamp, LogScaleGuardKind::clamp, LogScaleGuardKind::none}) {
      const auto g = guard_of(kind, bound);
      Matrix<T> alpha, slope;
      g.apply(a, alpha);
      g.derivative(a, alpha, slope);
      REQUIRE(alpha.rows() == a.rows());
      REQUIRE(slope.cols() == a.cols());
      for (Index j = 0; j < a.cols(); ++j)
        for (Index i = 0; i < a.rows(); ++i) {
          INFO("kind " << int(kind) << ", bound " << bound << ", a = " << a(i, j));
          CHECK(std::abs(alpha(i, j) - g.apply(a(i, j))) <= tolerance * std::max(T(1), bound));
          CHECK(std::abs(slope(i, j) - g.derivative(a(i, j))) <= 2 * tolerance);
          CHECK(std::abs(alpha(i, j)) <= (kind == LogScaleGuardKind::none ? std::abs(a(i, j)) : bound));
        }
    }
  }
}

TEST_CASE("LogScaleGuard rejects a bad bound", "[nn][log_scale_guard][errors]") {
  auto g = guard_of(LogScaleGuardKind::soft_clamp, 0.0);
  CHECK_THROWS_AS(g.validate("test"), std::invalid_argument);
  g.bound = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(g.validate("test"), std::invalid_argument);
  g.bound = std::nan("");
  CHECK_THROWS_AS(g.validate("test"), std::invalid_argument);
  g.kind = LogScaleGuardKind::none;
  CHECK_NOTHROW(g.validate("test"));
}
