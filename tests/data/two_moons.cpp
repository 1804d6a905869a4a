#include "knead/data/two_moons.hpp"

#include <algorithm>
#include <numbers>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

namespace {

constexpr double pi = std::numbers::pi;

/// Distance from p to the half circle of radius 1 about c spanning angles [lo, lo + π].
double distance_to_half_circle(double x, double y, double cx, double cy, double lo) {
  const double dx = x - cx, dy = y - cy;
  double a = std::atan2(dy, dx) - lo;
  a -= 2 * pi * std::floor(a / (2 * pi));  // in [0, 2π)
  if (a <= pi) return std::abs(std::hypot(dx, dy) - 1.0);
  // Outside the arc's angular range: the nearest point is an end.
  return std::min(std::hypot(x - (cx + std::cos(lo)), y - (cy + std::sin(lo))),
                  std::hypot(x - (cx - std::cos(lo)), y - (cy - std::sin(lo))));
}

// Outer moon: centre (0, 0), upper half. Inner moon: centre (1, 0.5), lower half.
double distance_to_outer(double x, double y) { return distance_to_half_circle(x, y, 0, 0, 0); }
double distance_to_inner(double x, double y) { return distance_to_half_circle(x, y, 1, 0.5, pi); }

}  // namespace

TEMPLATE_TEST_CASE("two_moons without noise lies on the two arcs at evenly spaced angles", "[data]", float,
                   double) {
  const double tol = std::is_same_v<TestType, float> ? 1e-6 : 1e-12;
  for (const Index n : {Index(2), Index(9), Index(100), Index(101)}) {
    const Matrix<TestType> p = two_moons<TestType>(n, 0.0, 1);
    REQUIRE(p.rows() == 2);
    REQUIRE(p.cols() == n);
    std::vector<double> outer, inner;  // angles about each moon's centre
    for (Index j = 0; j < n; ++j) {
      const double x = p(0, j), y = p(1, j);
      if (distance_to_outer(x, y) < tol)
        outer.push_back(std::atan2(y, x));
      else if (distance_to_inner(x, y) < tol)
        inner.push_back(std::atan2(0.5 - y, 1 - x));  // t of (1 − cos t, 1 − sin t − 0.5)
      else
        FAIL("point (" << x << ", " << y << ") is on neither moon");
    }
    // scikit-learn's split: ⌊n/2⌋ on the outer moon, the rest on the inner one.
    REQUIRE(Index(outer.size()) == n / 2);
    REQUIRE(Index(inner.size()) == n - n / 2);
    for (auto* angles : {&outer, &inner}) {
      std::sort(angles->begin(), angles->end());
      const auto m = angles->size();
      for (std::size_t i = 0; i < m; ++i) {
        const double expected = m > 1 ? pi * double(i) / double(m - 1) : 0.0;  // a lone point sits at t = 0
        CHECK(std::abs((*angles)[i] - expected) < 10 * tol);
      }
    }
  }
  // A single point is the inner moon's t = 0 end, (0, 0.5).
  const Matrix<TestType> one = two_moons<TestType>(1, 0.0, 3);
  CHECK(one(0, 0) == Approx(0.0).margin(tol));
  CHECK(one(1, 0) == Approx(0.5));
}

TEST_CASE("two_moons without noise has mean (1/2, 1/4) for even n", "[data]") {
  // Outer: mean x = 0 (symmetric cosines), mean y = s̄; inner: mean x = 1, mean y = 1/2 − s̄.
  const Matrix<double> p = two_moons<double>(400, 0.0, 9);
  CHECK(p.row(0).mean() == Approx(0.5));
  CHECK(p.row(1).mean() == Approx(0.25));
}

TEMPLATE_TEST_CASE("two_moons noise has the requested scale", "[data]", float, double) {
  const double noise = 0.05;
  const Matrix<TestType> p = two_moons<TestType>(4000, noise, 17);
  double mean = 0, largest = 0;
  for (Index j = 0; j < p.cols(); ++j) {
    const double d = std::min(distance_to_outer(p(0, j), p(1, j)), distance_to_inner(p(0, j), p(1, j)));
    mean += d / double(p.cols());
    largest = std::max(largest, d);
  }
  // The normal component of isotropic noise is N(0, σ²), so E|d| ≈ σ √(2/π) on arcs of radius 1 ≫ σ.
  CHECK(mean == Approx(noise * std::sqrt(2 / pi)).epsilon(0.1));
  CHECK(largest < 5.5 * noise);
}

TEMPLATE_TEST_CASE("two_moons is deterministic per seed and shuffled", "[data]", float, double) {
  const Matrix<TestType> a = two_moons<TestType>(500, 0.1, 123);
  CHECK(a == two_moons<TestType>(500, 0.1, 123));
  CHECK(a != two_moons<TestType>(500, 0.1, 124));
  // The first half mixes both moons (about half each) instead of holding the outer one only.
  const Matrix<TestType> clean = two_moons<TestType>(1000, 0.0, 5);
  int outer_in_first_half = 0;
  for (Index j = 0; j < 500; ++j) outer_in_first_half += distance_to_outer(clean(0, j), clean(1, j)) < 1e-5;
  CHECK(outer_in_first_half > 200);
  CHECK(outer_in_first_half < 300);
}

TEST_CASE("two_moons rejects bad arguments", "[data][errors]") {
  CHECK_THROWS_AS(two_moons<double>(0, 0.1, 1), std::invalid_argument);
  CHECK_THROWS_WITH(two_moons<double>(0, 0.1, 1), Catch::Contains("two_moons") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(two_moons<double>(10, -0.5, 1), Catch::Contains("two_moons") && Catch::Contains("-0.5"));
  CHECK_THROWS_WITH(two_moons<float>(10, std::nan(""), 1),
                    Catch::Contains("two_moons") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(two_moons<float>(10, INFINITY, 1),
                    Catch::Contains("two_moons") && Catch::Contains("inf"));
}
