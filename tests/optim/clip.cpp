#include "knead/optim/clip.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("gradient_norm is the Euclidean norm", "[optim][clip]", float, double) {
  using T = TestType;
  std::vector<T> g{T(3), T(-4)};
  CHECK(gradient_norm(std::span<const T>(g)) == Approx(5.0));
  std::vector<T> zeros(4, T(0));
  CHECK(gradient_norm(std::span<T>(zeros)) == 0.0);
  CHECK(gradient_norm(std::span<T>()) == 0.0);
  // entries whose squares overflow (or underflow) in T still give the right norm
  const T big = std::numeric_limits<T>::max() / T(4);
  std::vector<T> huge{big, big};
  CHECK(gradient_norm(std::span<T>(huge)) == Approx(std::sqrt(2.0) * double(big)));
  const T tiny = std::numeric_limits<T>::min() * T(4);
  std::vector<T> small{tiny, tiny, tiny, tiny};
  CHECK(gradient_norm(std::span<T>(small)) == Approx(2.0 * double(tiny)));
  // non-finite entries show
  std::vector<T> bad{T(1), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()};
  CHECK(std::isnan(gradient_norm(std::span<T>(bad))));
  bad[1] = T(0);
  CHECK(std::isinf(gradient_norm(std::span<T>(bad))));
}

TEMPLATE_TEST_CASE("Clipping scales the gradient to exactly the maximum norm", "[optim][clip]", float,
                   double) {
  using T = TestType;
  const double eps = std::numeric_limits<T>::epsilon();
  std::vector<T> g{T(3), T(-4), T(0)};
  const double before = clip_gradient_norm(std::span<T>(g), 1.0);
  CHECK(before == Approx(5.0));
  // same direction, norm 1: (3, −4, 0) / 5
  CHECK(double(g[0]) == Approx(0.6).epsilon(4 * eps));
  CHECK(double(g[1]) == Approx(-0.8).epsilon(4 * eps));
  CHECK(g[2] == T(0));
  CHECK(gradient_norm(std::span<T>(g)) == Approx(1.0).epsilon(4 * eps));

  // a random 100-vector clipped to 0.37
  Rng rng(3);
  const Matrix<T> r = test::random_batch<T>(100, 1, rng, 5.0);
  std::vector<T> v(r.data(), r.data() + 100);
  const std::vector<T> original = v;
  const double norm = clip_gradient_norm(std::span<T>(v), 0.37);
  CHECK(norm == Approx(double(r.template cast<double>().norm())).epsilon(10 * eps));
  CHECK(gradient_norm(std::span<T>(v)) == Approx(0.37).epsilon(10 * eps));
  for (std::size_t i = 0; i < v.size(); ++i)
    CHECK(double(v[i]) == Approx(double(original[i]) * 0.37 / norm).epsilon(10 * eps));
}

TEMPLATE_TEST_CASE("Clipping leaves a gradient within the norm untouched", "[optim][clip]", float, double) {
  using T = TestType;
  std::vector<T> g{T(0.3), T(-0.4)};
  CHECK(clip_gradient_norm(std::span<T>(g), 0.5) == Approx(0.5));  // at the bound: unchanged
  CHECK(g[0] == T(0.3));
  CHECK(g[1] == T(-0.4));
  CHECK(clip_gradient_norm(std::span<T>(g), 10.0) == Approx(0.5));
  CHECK(g[0] == T(0.3));
  std::vector<T> zeros(3, T(0));
  CHECK(clip_gradient_norm(std::span<T>(zeros), 1.0) == 0.0);
  CHECK(zeros[0] == T(0));
}

TEST_CASE("Clipping a gradient whose norm overflows double still gives the bound", "[optim][clip]") {
  const double big = std::numeric_limits<double>::max() / 2;
  std::vector<double> g(16, big);  // ‖g‖ = 4 · big > max
  CHECK(std::isinf(clip_gradient_norm(std::span<double>(g), 2.0)));
  CHECK(g[0] == Approx(0.5));
  CHECK(gradient_norm(std::span<double>(g)) == Approx(2.0));
}

TEST_CASE("Clipping rejects a bad bound and non-finite gradients", "[optim][clip][errors]") {
  std::vector<double> g{1.0, 2.0};
  CHECK_THROWS_WITH(clip_gradient_norm(std::span<double>(g), 0.0), Catch::Contains("clip_gradient_norm") &&
                                                                       Catch::Contains("max_norm") &&
                                                                       Catch::Contains("0"));
  CHECK_THROWS_WITH(clip_gradient_norm(std::span<double>(g), -2.5),
                    Catch::Contains("clip_gradient_norm") && Catch::Contains("-2.5"));
  CHECK_THROWS_WITH(clip_gradient_norm(std::span<double>(g), std::nan("")),
                    Catch::Contains("clip_gradient_norm") && Catch::Contains("nan"));
  std::vector<float> bad{1.0f, -std::numeric_limits<float>::infinity(), 3.0f};
  CHECK_THROWS_WITH(clip_gradient_norm(std::span<float>(bad), 1.0), Catch::Contains("clip_gradient_norm") &&
                                                                        Catch::Contains("-inf") &&
                                                                        Catch::Contains("index 1"));
  CHECK(bad[0] == 1.0f);  // nothing changed
}
