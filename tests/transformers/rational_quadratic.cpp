#include "knead/transformers/rational_quadratic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "properties.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// The knots of one element's spline, computed here from the definition (softmax widths and
/// heights with floors, cumulated from −B; softplus derivatives, 1 at ±B), in double.
struct SplineKnotsByDefinition {
  std::vector<double> xs, ys, ds;
};

SplineKnotsByDefinition spline_knots_by_definition(const std::vector<double>& raw, Index k, double bound,
                                                   double min_w, double min_h, double min_d) {
  auto cumulated = [&](std::size_t first, double floor) {
    double top = -INFINITY, total = 0;
    for (Index j = 0; j < k; ++j) top = std::max(top, raw[first + std::size_t(j)]);
    for (Index j = 0; j < k; ++j) total += std::exp(raw[first + std::size_t(j)] - top);
    std::vector<double> knots{-bound};
    for (Index j = 0; j < k; ++j) {
      const double p = std::exp(raw[first + std::size_t(j)] - top) / total;
      knots.push_back(knots.back() + 2 * bound * (floor + (1 - double(k) * floor) * p));
    }
    return knots;
  };
  SplineKnotsByDefinition s{cumulated(0, min_w), cumulated(std::size_t(k), min_h), {1.0}};
  // softplus(c + c₀) with c₀ = log(e^{1 − m} − 1): 1 at c = 0
  const double offset = std::log(std::exp(1 - min_d) - 1);
  for (Index j = 0; j + 1 < k; ++j)
    s.ds.push_back(min_d + std::log1p(std::exp(raw[std::size_t(2 * k + j)] + offset)));
  s.ds.push_back(1.0);
  return s;
}

/// Raw parameters ((3K − 1)·r × n) of spread `scale`.
template <class T>
Matrix<T> spline_params(Index k, Index r, Index n, Rng& rng, double scale = 1.5) {
  return test::random_batch<T>((3 * k - 1) * r, n, rng, scale);
}

/// The knots of element (i, j) of a stacked parameter block, by definition.
template <class T>
SplineKnotsByDefinition element_knots(const Matrix<T>& params, const RationalQuadraticOptions<T>& o, Index r,
                                      Index i, Index j) {
  std::vector<double> raw;
  for (Index p = 0; p < 3 * o.bins - 1; ++p) raw.push_back(double(params(p * r + i, j)));
  return spline_knots_by_definition(raw, o.bins, double(o.bound), double(o.min_bin_width),
                                    double(o.min_bin_height), double(o.min_derivative));
}

/// Noise-side points for `params`, in [−B − 1, B + 1], each at least `margin` from every x-knot
/// and its image at least `margin` from every y-knot (finite differences of the log-det must not
/// straddle a knot, where its derivative jumps), and from ±B on both sides.
template <class T>
Matrix<T> spline_points_off_knots(const RationalQuadraticTransformer<T>& tr, const Matrix<T>& params, Index r,
                                  Index n, double margin, Rng& rng) {
  const auto& o = tr.options();
  Matrix<T> u(r, n);
  std::uniform_real_distribution<double> uniform(-double(o.bound) - 1, double(o.bound) + 1);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < r; ++i) {
      const auto knots = element_knots(params, o, r, i, j);
      bool found = false;
      for (int attempt = 0; attempt < 10000 && !found; ++attempt) {
        const double v = uniform(rng);
        Matrix<T> one = Matrix<T>::Constant(1, 1, T(v)), x, ld;
        Matrix<T> row_params(3 * o.bins - 1, 1);
        for (Index p = 0; p < row_params.rows(); ++p) row_params(p, 0) = params(p * r + i, j);
        typename RationalQuadraticTransformer<T>::Workspace ws;
        tr.forward(ParamBlocks<const T>::stacked(row_params, 1), one, x, ld, ws);
        auto far = [&](double at, const std::vector<double>& ks) {
          return std::all_of(ks.begin(), ks.end(), [&](double knot) { return std::abs(at - knot) > margin; });
        };
        found = far(v, knots.xs) && far(double(x(0, 0)), knots.ys);
        if (found) u(i, j) = T(v);
      }
      REQUIRE(found);
    }
  return u;
}

}  // namespace

TEMPLATE_TEST_CASE("RationalQuadraticTransformer maps, inverts and differentiates as a spline",
                   "[transformers][rational_quadratic]", float, double) {
  using T = TestType;
  Rng rng(11);
  // raw parameters of spread 1 (0.5 in float) and points 0.02 (0.05) from knots keep the map's
  // curvature moderate where the central differences (steps 1e-6 in double, 2e-3 in float) probe it
  const double margin = std::is_same_v<T, double> ? 0.02 : 0.05;
  const double spread = std::is_same_v<T, double> ? 1.0 : 0.5;
  for (const Index k : {2, 5, 8})
    for (const Index r : {1, 3}) {
      CAPTURE(k, r);
      RationalQuadraticOptions<T> options;
      options.bins = k;
      options.bound = T(2.5);
      const RationalQuadraticTransformer<T> tr(options);
      const Matrix<T> params = spline_params<T>(k, r, 4, rng, spread);
      test::check_transformer_properties(tr, params, spline_points_off_knots(tr, params, r, 4, margin, rng),
                                         rng);
    }
}

TEST_CASE("RationalQuadraticTransformer passes through knots at their heights with their derivatives",
          "[transformers][rational_quadratic]") {
  Rng rng(3);
  RationalQuadraticOptions<double> options;
  options.bins = 6;
  options.bound = 2.0;
  options.min_bin_width = 0.01;
  options.min_bin_height = 0.02;
  options.min_derivative = 0.05;
  const RationalQuadraticTransformer<double> tr(options);
  const Matrix<double> params = spline_params<double>(6, 1, 1, rng, 2.0);
  const auto knots = element_knots(params, options, 1, 0, 0);
  Matrix<double> u(1, 7), x, ld, back, ld_back;
  for (Index j = 0; j <= 6; ++j) u(0, j) = knots.xs[std::size_t(j)];
  Matrix<double> params7 = params.replicate(1, 7);
  RationalQuadraticTransformer<double>::Workspace ws;
  tr.forward(ParamBlocks<const double>::stacked(params7, 1), u, x, ld, ws);
  for (Index j = 0; j <= 6; ++j) {
    CAPTURE(j);
    CHECK(x(0, j) == Approx(knots.ys[std::size_t(j)]).margin(1e-13));
    // x'(knot) = δ_j: log-det log δ_j (δ = 1 at ±B)
    CHECK(ld(0, j) == Approx(std::log(knots.ds[std::size_t(j)])).margin(1e-9));
  }
  tr.inverse(ParamBlocks<const double>::stacked(params7, 1), x, back, ld_back, ws);
  CHECK((back - u).cwiseAbs().maxCoeff() < 1e-12);
  // the knots differ from one another, so this checks more than one point
  CHECK(knots.ys[3] - knots.ys[2] > 0.02 * 4 - 1e-12);
}

TEMPLATE_TEST_CASE("RationalQuadraticTransformer is exactly the identity outside [-B, B]",
                   "[transformers][rational_quadratic]", float, double) {
  using T = TestType;
  Rng rng(4);
  RationalQuadraticOptions<T> options;
  options.bound = T(1.5);
  const RationalQuadraticTransformer<T> tr(options);
  Matrix<T> u(1, 6);
  u << T(-1.5) - T(1e-3), T(1.5) + T(1e-3), T(-4), T(7), T(-1e6), std::numeric_limits<T>::max();
  const Matrix<T> params = spline_params<T>(8, 1, 6, rng, 3.0);
  typename RationalQuadraticTransformer<T>::Workspace ws;
  Matrix<T> x, ld, back, ld_back;
  tr.forward(ParamBlocks<const T>::stacked(params, 1), u, x, ld, ws);
  CHECK(x == u);
  CHECK((ld.array() == T(0)).all());
  tr.inverse(ParamBlocks<const T>::stacked(params, 1), u, back, ld_back, ws);
  CHECK(back == u);
  CHECK((ld_back.array() == T(0)).all());
  // backward in the tails: ∂L/∂in = ∂L/∂out, no parameter gradient
  for (const Direction pass : {Direction::forward, Direction::inverse}) {
    if (pass == Direction::forward)
      tr.forward(ParamBlocks<const T>::stacked(params, 1), u, x, ld, ws);
    else
      tr.inverse(ParamBlocks<const T>::stacked(params, 1), u, x, ld, ws);
    Matrix<T> grad = Matrix<T>::Constant(1, 6, T(2)),
              grad_params = Matrix<T>::Constant(params.rows(), 6, T(7));
    const RowVector<T> grad_ld = RowVector<T>::Constant(6, T(3));
    tr.backward(pass, ParamBlocks<const T>::stacked(params, 1), u, grad, grad_ld,
                ParamBlocks<T>::stacked(grad_params, 1), ws);
    CHECK((grad.array() == T(2)).all());
    CHECK(grad_params.isZero(0));
  }
}

TEMPLATE_TEST_CASE("RationalQuadraticTransformer round-trips at knots, at the bounds and in the tails",
                   "[transformers][rational_quadratic]", float, double) {
  using T = TestType;
  Rng rng(8);
  RationalQuadraticOptions<T> options;
  options.bins = 5;
  options.bound = T(3);
  const RationalQuadraticTransformer<T> tr(options);
  const double tolerance = std::is_same_v<T, double> ? 1e-12 : 2e-5;
  for (int trial = 0; trial < 20; ++trial) {
    const Matrix<T> one = spline_params<T>(5, 1, 1, rng, trial < 10 ? 1.5 : 6.0);
    const auto knots = element_knots(one, options, 1, 0, 0);
    std::vector<T> points{T(-3), T(3), T(-3.5), T(4), T(0)};
    for (const double knot : knots.xs)
      for (const double offset : {-1e-6, 0.0, 1e-6}) points.push_back(T(knot + offset));
    Matrix<T> u = Eigen::Map<const Matrix<T>>(points.data(), 1, Index(points.size()));
    const Matrix<T> params = one.replicate(1, u.cols());
    typename RationalQuadraticTransformer<T>::Workspace ws;
    Matrix<T> x, ld, back, ld_back;
    tr.forward(ParamBlocks<const T>::stacked(params, 1), u, x, ld, ws);
    tr.inverse(ParamBlocks<const T>::stacked(params, 1), x, back, ld_back, ws);
    CAPTURE(trial, u, x, back);
    CHECK(x.allFinite());
    // |u' − u|·min(1, f'(u)): raw parameters of spread 6 make slopes near 1e-3 (min_derivative),
    // where the inverse magnifies the rounding of x a thousandfold
    const Matrix<double> error = (back - u).template cast<double>().cwiseAbs().cwiseProduct(
        ld.template cast<double>().array().exp().min(1.0).matrix());
    CHECK(error.maxCoeff() < tolerance * 4);
    if (trial < 10) CHECK((back - u).template cast<double>().cwiseAbs().maxCoeff() < tolerance * 4);
    // the bounds map to themselves
    CHECK(x(0, 0) == Approx(-3.0).margin(tolerance));
    CHECK(x(0, 1) == Approx(3.0).margin(tolerance));
  }
}

TEST_CASE("RationalQuadraticTransformer is monotone and continuous across knots",
          "[transformers][rational_quadratic]") {
  Rng rng(9);
  RationalQuadraticOptions<double> options;
  options.bins = 7;
  options.bound = 2.0;
  const RationalQuadraticTransformer<double> tr(options);
  for (int trial = 0; trial < 10; ++trial) {
    const Matrix<double> one = spline_params<double>(7, 1, 1, rng, 1.5);
    const Index n = 20001;
    Matrix<double> u(1, n), x, ld;
    for (Index j = 0; j < n; ++j) u(0, j) = -2.5 + 5.0 * double(j) / double(n - 1);
    const Matrix<double> params = one.replicate(1, n);
    RationalQuadraticTransformer<double>::Workspace ws;
    tr.forward(ParamBlocks<const double>::stacked(params, 1), u, x, ld, ws);
    CAPTURE(trial);
    CHECK(((x.rightCols(n - 1) - x.leftCols(n - 1)).array() > 0).all());
    // continuity of value and slope: just left and right of each knot (and of ±B)
    const auto knots = element_knots(one, options, 1, 0, 0);
    for (std::size_t j = 0; j < knots.xs.size(); ++j) {
      Matrix<double> pair(1, 2), px, pld;
      pair << knots.xs[j] - 1e-12, knots.xs[j] + 1e-12;
      const Matrix<double> p2 = one.replicate(1, 2);
      tr.forward(ParamBlocks<const double>::stacked(p2, 1), pair, px, pld, ws);
      CHECK(std::abs(px(0, 1) - px(0, 0)) < 1e-8);
      CHECK(std::abs(pld(0, 1) - pld(0, 0)) < 1e-6);
    }
  }
}

TEMPLATE_TEST_CASE("RationalQuadraticTransformer with zero raw parameters is the identity",
                   "[transformers][rational_quadratic]", float, double) {
  using T = TestType;
  Rng rng(2);
  const RationalQuadraticTransformer<T> tr;
  const Matrix<T> u = test::random_batch<T>(3, 10, rng, 2.0);
  const Matrix<T> params = Matrix<T>::Zero(3 * tr.params_per_dim(), 10);
  typename RationalQuadraticTransformer<T>::Workspace ws;
  Matrix<T> x, ld;
  tr.forward(ParamBlocks<const T>::stacked(params, 3), u, x, ld, ws);
  const double tolerance = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  CHECK((x - u).template cast<double>().cwiseAbs().maxCoeff() < tolerance);
  CHECK(ld.template cast<double>().cwiseAbs().maxCoeff() < tolerance);
  CHECK(tr.params_per_dim() == 3 * 8 - 1);
}

TEST_CASE("RationalQuadraticTransformer rejects options that make no spline",
          "[transformers][rational_quadratic][errors]") {
  using Catch::Matchers::Contains;
  auto with = [](auto change) {
    RationalQuadraticOptions<double> o;
    change(o);
    return RationalQuadraticTransformer<double>(o);
  };
  CHECK_NOTHROW(with([](auto&) {}).validate("SomeLayer"));
  CHECK_THROWS_WITH(with([](auto& o) { o.bins = 1; }).validate("SomeLayer"),
                    Contains("SomeLayer") && Contains("bins") && Contains("got 1"));
  CHECK_THROWS_WITH(with([](auto& o) { o.bound = 0; }).validate("SomeLayer"),
                    Contains("SomeLayer") && Contains("bound") && Contains("got 0"));
  CHECK_THROWS_WITH(with([](auto& o) { o.bound = -2; }).validate("SomeLayer"), Contains("got -2"));
  CHECK_THROWS_WITH(with([](auto& o) { o.bound = INFINITY; }).validate("SomeLayer"), Contains("got inf"));
  CHECK_THROWS_WITH(with([](auto& o) { o.bound = NAN; }).validate("SomeLayer"), Contains("bound"));
  CHECK_THROWS_WITH(with([](auto& o) { o.min_bin_width = 0.125; }).validate("SomeLayer"),
                    Contains("SomeLayer") && Contains("min_bin_width") && Contains("0.125"));
  CHECK_THROWS_WITH(with([](auto& o) { o.min_bin_height = 0.2; }).validate("SomeLayer"),
                    Contains("min_bin_height") && Contains("0.2"));
  CHECK_THROWS_WITH(with([](auto& o) { o.min_bin_width = -0.1; }).validate("SomeLayer"),
                    Contains("min_bin_width") && Contains("-0.1"));
  CHECK_THROWS_WITH(with([](auto& o) { o.min_derivative = 0; }).validate("SomeLayer"),
                    Contains("SomeLayer") && Contains("min_derivative") && Contains("got 0"));
  CHECK_THROWS_WITH(with([](auto& o) { o.min_derivative = -1; }).validate("SomeLayer"),
                    Contains("min_derivative") && Contains("got -1"));
  CHECK_NOTHROW(with([](auto& o) {
                  o.bins = 4;
                  o.min_bin_width = 0.24;
                }).validate("SomeLayer"));
}
