#include "knead/bijectors/coupling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/transformers/rational_quadratic.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// Small conditioners keep the finite-difference checks fast.
template <class T>
CouplingOptions<T> small_options(std::uint64_t seed, LogScaleGuard<T> guard = {}, Index context_dim = 0) {
  CouplingOptions<T> options;
  options.hidden = {6, 5};
  options.guard = guard;
  options.seed = seed;
  options.context_dim = context_dim;
  return options;
}

const std::vector<std::pair<Index, Index>> splits = {{2, 1}, {3, 1}, {3, 2}, {5, 2}, {5, 4}};
const std::vector<std::vector<int>> masks = {{0, 1},    {1, 0},          {1, 0, 1},
                                             {0, 0, 1}, {1, 0, 1, 0, 1}, {0, 1, 1, 0, 0}};

/// Appends the side of every kink of the layer's conditioner at the batch `in` (with `context`
/// unless it is null): each hidden ReLU (on or off) and, under a hard clamp, each raw log-scale
/// (inside or outside ±c).
template <class T, class Transformer>
void append_kink_sides(Coupling<T, Transformer>& layer, const Matrix<T>& in, std::vector<bool>& sides,
                       const Matrix<T>* context = nullptr) {
  const Mlp<T>& net = layer.conditioner();
  Matrix<T> h = in(layer.partition().conditioning(), Eigen::all), z;
  for (Index l = 0; l < net.layers(); ++l) {
    z = net.weight(l) * h;
    z.colwise() += net.bias(l);
    if (l == 0 && context != nullptr) z += net.context_weight() * *context;
    if (l + 1 < net.layers()) {
      for (const T v : z.reshaped()) sides.push_back(v > T(0));
      h = z.cwiseMax(T(0));
    } else if constexpr (std::is_same_v<Transformer, AffineTransformer<T>>) {
      if (layer.guard().kind == LogScaleGuardKind::clamp)
        for (const T a : z.bottomRows(z.rows() / 2).reshaped())
          sides.push_back(std::abs(a) < layer.guard().bound);
    } else if constexpr (std::is_same_v<Transformer, RationalQuadraticTransformer<T>>) {
      // the spline's bin of each transformed element (−1 in the tails; its bits as sides) in the
      // forward pass (u_B = in_B) and the inverse (x_B = in_B): the log-det's slope jumps at knots
      const Matrix<T> half = in(layer.partition().transformed(), Eigen::all);
      const auto params = ParamBlocks<const T>::stacked(z, half.rows());
      typename Transformer::Workspace ws;
      Matrix<T> out, ld;
      auto append_bins = [&] {
        for (const Index b : ws.bin.reshaped())
          for (int bit = 0; bit < 8; ++bit) sides.push_back(((b + 1) >> bit) & 1);
      };
      layer.transformer().forward(params, half, out, ld, ws);
      append_bins();
      layer.transformer().inverse(params, half, out, ld, ws);
      append_bins();
    }
  }
}
template <class B>
void append_kink_sides(B&, const Matrix<typename B::Scalar>&, std::vector<bool>&,
                       const Matrix<typename B::Scalar>* = nullptr) {}  // no kinks

/// The kink sides at every input a pass from z visits. A coupling's conditioner reads the same rows
/// of its input and output, so its forward and inverse passes at z visit the same points; a chain
/// is followed part by part, forward and inverse.
template <class B>
std::vector<bool> kink_sides(B& b, const Matrix<typename B::Scalar>& z,
                             const Matrix<typename B::Scalar>* context = nullptr) {
  std::vector<bool> sides;
  append_kink_sides(b, z, sides, context);
  return sides;
}
template <class... P, std::size_t... I>
std::vector<bool> chain_kink_sides(Chain<P...>& chain, const Matrix<typename Chain<P...>::Scalar>& z,
                                   std::index_sequence<I...>) {
  constexpr std::size_t k = sizeof...(I);
  std::vector<bool> sides;
  auto visit = [&](auto& part, auto& point, bool fwd) {
    append_kink_sides(part, point, sides);
    point = fwd ? forward(part, point) : inverse(part, point);
  };
  auto point = z;
  (visit(chain.template part<I>(), point, true), ...);
  point = z;
  (visit(chain.template part<k - 1 - I>(), point, false), ...);
  return sides;
}
template <class... P>
std::vector<bool> kink_sides(Chain<P...>& chain, const Matrix<typename Chain<P...>::Scalar>& z,
                             const Matrix<typename Chain<P...>::Scalar>* context = nullptr) {
  REQUIRE(context == nullptr);  // chains of unconditional parts only
  return chain_kink_sides(chain, z, std::index_sequence_for<P...>());
}

/// True if no finite-difference step the conformance checker takes at z (each input entry, each
/// parameter and each entry of a non-empty context moved by ±h) puts a kink on its other side. A
/// difference straddling a kink mixes two slopes; with float's steps of about 0.02 that happens
/// often enough to matter.
template <class B>
bool steps_avoid_kinks(B& b, Matrix<typename B::Scalar> z, Matrix<typename B::Scalar> context = {}) {
  using T = typename B::Scalar;
  const Matrix<T>* c = context.size() > 0 ? &context : nullptr;
  const auto reference = kink_sides(b, z, c);
  const T scale(testing::Tolerances::for_scalar<T>().fd_step_scale);
  auto unchanged = [&](std::span<T> values) {
    for (T& v : values) {
      const T saved = v, h = scale * testing::central_step(saved);
      bool same = true;
      for (const T moved : {saved + h, saved - h}) {
        v = moved;
        same = same && kink_sides(b, z, c) == reference;
      }
      v = saved;
      if (!same) return false;
    }
    return true;
  };
  return unchanged(std::span<T>(z.data(), std::size_t(z.size()))) && unchanged(b.parameters()) &&
         unchanged(std::span<T>(context.data(), std::size_t(context.size())));
}

/// n standard normal columns at which the checker's finite differences straddle no kink of b.
template <class B>
Matrix<typename B::Scalar> points_away_from_kinks(B& b, Index n, Rng& rng) {
  using T = typename B::Scalar;
  Matrix<T> z(b.dim(), n);
  Index found = 0;
  for (int attempt = 0; attempt < 1000 && found < n; ++attempt) {
    const Matrix<T> candidate = test::random_batch<T>(b.dim(), 1, rng);
    if (steps_avoid_kinks(b, candidate)) z.col(found++) = candidate;
  }
  REQUIRE(found == n);
  return z;
}

/// Points and their contexts (one column each, standard normal) at which the checker's finite
/// differences straddle no kink of the conditional layer b.
template <class B>
std::pair<Matrix<typename B::Scalar>, Matrix<typename B::Scalar>> conditional_points_away_from_kinks(
    B& b, Index n, Rng& rng) {
  using T = typename B::Scalar;
  Matrix<T> z(b.dim(), n), context(b.context_dim(), n);
  Index found = 0;
  for (int attempt = 0; attempt < 1000 && found < n; ++attempt) {
    const Matrix<T> point = test::random_batch<T>(b.dim(), 1, rng);
    const Matrix<T> c = test::random_batch<T>(b.context_dim(), 1, rng);
    if (steps_avoid_kinks(b, point, c)) {
      z.col(found) = point;
      context.col(found++) = c;
    }
  }
  REQUIRE(found == n);
  return {z, context};
}

/// The conformance checker with a context: round trips, log-dets, batched = per-sample (a
/// different context in each column), and the gradients w.r.t. input, parameters and context.
template <class B>
void conform_with_context(B& b, Rng& rng, test::MaxErrors& worst) {
  const auto [z, context] = conditional_points_away_from_kinks(b, 4, rng);
  const auto report = testing::check_conformance(b, z, context, rng);
  INFO(report.summary());
  CHECK(report.ok());
  worst.add(report);
}

template <class B>
void conform(B& b, Rng& rng, test::MaxErrors& worst) {
  worst.add(test::require_conformance(b, points_away_from_kinks(b, 4, rng), rng));
}

/// Runs the conformance checker with the conditioner's initial weights and with larger random ones.
template <class B>
void check_layer(B& layer, Rng& rng, test::MaxErrors& worst) {
  conform(layer, rng, worst);
  test::randomise_parameters(layer, rng, 0.5);
  conform(layer, rng, worst);
}

/// check_layer for a spline coupling. Float's finite-difference steps (about 0.02) see the
/// spline's curvature where slopes are far from 1, so in float the random weights are smaller.
template <class B>
void check_spline_layer(B& layer, Rng& rng, test::MaxErrors& worst) {
  conform(layer, rng, worst);
  test::randomise_parameters(layer, rng, std::is_same_v<typename B::Scalar, double> ? 0.5 : 0.2);
  conform(layer, rng, worst);
}

/// The layer maps a random batch to exactly itself, with log-det exactly zero, both ways.
template <class T>
void require_identity(auto& layer, Rng& rng) {
  const Matrix<T> z = test::random_batch<T>(layer.dim(), 5, rng);
  for (const bool fwd : {true, false}) {
    const auto [out, ld] = fwd ? forward_and_log_det(layer, z) : inverse_and_log_det(layer, z);
    CHECK(out == z);
    CHECK((ld.array() == T(0)).all());
  }
}

}  // namespace

TEMPLATE_TEST_CASE("Coupling partitions by split point and by mask", "[bijectors][coupling]", float, double) {
  AffineCoupling<TestType> split(5, 2, small_options<TestType>(1));
  CHECK(split.dim() == 5);
  CHECK(split.partition().conditioning() == std::vector<Index>{0, 1});
  CHECK(split.partition().transformed() == std::vector<Index>{2, 3, 4});
  CHECK(split.partition().mask() == std::vector<int>{1, 1, 0, 0, 0});
  CHECK(split.conditioner().inputs() == 2);
  CHECK(split.conditioner().outputs() == 6);  // t and a for three dimensions

  AdditiveCoupling<TestType> mask({1, 0, 1, 0, 1}, small_options<TestType>(1));
  CHECK(mask.dim() == 5);
  CHECK(mask.partition().conditioning() == std::vector<Index>{0, 2, 4});
  CHECK(mask.partition().transformed() == std::vector<Index>{1, 3});
  CHECK(mask.conditioner().inputs() == 3);
  CHECK(mask.conditioner().outputs() == 2);  // t only
  CHECK(AffineCoupling<TestType>({1, 0}).conditioner().sizes() == std::vector<Index>{1, 64, 64, 2});

  // the conditioning rows pass through untouched, both ways
  Rng rng(3);
  AffineCoupling<TestType> layer({0, 1, 0, 1, 1}, small_options<TestType>(2));
  test::randomise_parameters(layer, rng, 0.5);
  const Matrix<TestType> z = test::random_batch<TestType>(5, 4, rng);
  for (const Index row : layer.partition().conditioning()) {
    CHECK(forward(layer, z).row(row) == z.row(row));
    CHECK(inverse(layer, z).row(row) == z.row(row));
  }
}

TEMPLATE_TEST_CASE("Affine and additive couplings conform", "[bijectors][coupling]", float, double) {
  Rng rng(17);
  test::MaxErrors worst;
  std::uint64_t seed = 0;
  for (const auto& [d, split] : splits) {
    CAPTURE(d, split);
    AffineCoupling<TestType> affine(d, split, small_options<TestType>(++seed));
    AdditiveCoupling<TestType> additive(d, split, small_options<TestType>(++seed));
    check_layer(affine, rng, worst);
    check_layer(additive, rng, worst);
  }
  for (const auto& mask : masks) {
    CAPTURE(mask);
    AffineCoupling<TestType> affine(mask, small_options<TestType>(++seed));
    AdditiveCoupling<TestType> additive(mask, small_options<TestType>(++seed));
    check_layer(affine, rng, worst);
    check_layer(additive, rng, worst);
  }
  // a linear conditioner (no hidden layer)
  CouplingOptions<TestType> linear;
  linear.hidden = {};
  AffineCoupling<TestType> affine({1, 0, 1, 0, 1}, linear);
  check_layer(affine, rng, worst);
  worst.print("Coupling", sizeof(TestType) == 4);
}

TEMPLATE_TEST_CASE("Rational-quadratic spline couplings conform", "[bijectors][coupling]", float, double) {
  Rng rng(29);
  test::MaxErrors worst;
  std::uint64_t seed = 100;
  for (const auto& [d, split] : splits) {
    CAPTURE(d, split);
    Coupling<TestType, RationalQuadraticTransformer<TestType>> spline(d, split,
                                                                      small_options<TestType>(++seed));
    check_spline_layer(spline, rng, worst);
  }
  for (const auto& mask : masks) {
    CAPTURE(mask);
    Coupling<TestType, RationalQuadraticTransformer<TestType>> spline(mask, small_options<TestType>(++seed));
    check_spline_layer(spline, rng, worst);
  }
  worst.print("RationalQuadraticCoupling", sizeof(TestType) == 4);
}

TEMPLATE_TEST_CASE("Affine coupling conforms under every log-scale guard", "[bijectors][coupling]", float,
                   double) {
  using T = TestType;
  Rng rng(19);
  test::MaxErrors worst;
  const std::vector<int> mask = {1, 0, 1, 0, 1};
  AffineCoupling<T> unguarded(mask, small_options<T>(5, {LogScaleGuardKind::none, T(1)}));
  test::randomise_parameters(unguarded, rng, 0.8);
  // the bound is the median |a| over a batch, so the guards act on about half the values drawn
  Matrix<T> raw;
  unguarded.conditioner().forward(test::random_batch<T>(3, 20, rng), raw);
  std::vector<T> magnitudes(std::size_t(raw.bottomRows(2).size()));
  Eigen::Map<Matrix<T>>(magnitudes.data(), 2, raw.cols()) = raw.bottomRows(2).cwiseAbs();
  std::ranges::nth_element(magnitudes, magnitudes.begin() + std::ptrdiff_t(magnitudes.size() / 2));
  const T bound = magnitudes[magnitudes.size() / 2];

  for (const auto kind : {LogScaleGuardKind::none, LogScaleGuardKind::clamp, LogScaleGuardKind::soft_clamp}) {
    CAPTURE(int(kind), bound);
    AffineCoupling<T> layer(mask, small_options<T>(5, {kind, bound}));
    std::ranges::copy(unguarded.parameters(), layer.parameters().begin());
    // points at which the checker sees raw log-scales on both sides of the bound
    Matrix<T> points;
    auto both_sides = [&] {
      layer.conditioner().forward(points(layer.partition().conditioning(), Eigen::all), raw);
      const auto magnitude = raw.bottomRows(2).array().abs();
      return (magnitude > bound).any() && (magnitude < bound).any();
    };
    for (int attempt = 0; attempt < 100 && (points.size() == 0 || !both_sides()); ++attempt)
      points = points_away_from_kinks(layer, 6, rng);
    REQUIRE(both_sides());
    worst.add(test::require_conformance(layer, points, rng));
    // |s_i| ≤ c under both clamps, so |log det| ≤ |B| c
    if (kind != LogScaleGuardKind::none) {
      const Matrix<T> z = test::random_batch<T>(5, 50, rng, 3.0);
      CHECK(forward_log_det(layer, z).cwiseAbs().maxCoeff() <= 2 * bound);
      CHECK(inverse_log_det(layer, z).cwiseAbs().maxCoeff() <= 2 * bound);
    }
  }
  worst.print("Coupling with guards", sizeof(T) == 4);
}

TEMPLATE_TEST_CASE("Identity-initialised couplings are exactly the identity", "[bijectors][coupling]", float,
                   double) {
  Rng rng(23);
  for (const auto& mask : masks) {
    CAPTURE(mask);
    for (const auto kind :
         {LogScaleGuardKind::none, LogScaleGuardKind::clamp, LogScaleGuardKind::soft_clamp}) {
      auto options = small_options<TestType>(7, {kind, TestType(2)});
      options.identity_init = true;
      AffineCoupling<TestType> affine(mask, options);
      require_identity<TestType>(affine, rng);
      AdditiveCoupling<TestType> additive(mask, options);
      require_identity<TestType>(additive, rng);
      // the hidden layers are still random, so the parameter gradients are not trivial
      test::require_conformance(affine, points_away_from_kinks(affine, 3, rng), rng);
      test::require_conformance(additive, points_away_from_kinks(additive, 3, rng), rng);
    }
  }
}

TEMPLATE_TEST_CASE("A chain of alternating couplings and an Affine conforms", "[bijectors][coupling]", float,
                   double) {
  Rng rng(29);
  auto options = [](std::uint64_t seed) {
    auto o = small_options<TestType>(seed);
    o.hidden = {5};  // smaller still: the kink screen reruns the whole chain for every parameter
    return o;
  };
  Chain chain(AffineCoupling<TestType>({1, 0, 1}, options(1)),
              AffineCoupling<TestType>({0, 1, 0}, options(2)), Affine<TestType>(3),
              AdditiveCoupling<TestType>(3, 1, options(3)), AdditiveCoupling<TestType>(3, 2, options(4)));
  STATIC_REQUIRE(check_bijector<decltype(chain)>());
  const Index first = chain.template part<0>().num_parameters();
  CHECK(chain.template part<1>().parameters().data() == chain.parameters().data() + first);
  test::randomise_parameters(chain, rng, 0.4);
  test::MaxErrors worst;
  conform(chain, rng, worst);

  auto copy = chain;  // deep, with the same layout
  CHECK(copy.parameters().data() != chain.parameters().data());
  CHECK(copy.template part<1>().parameters().data() == copy.parameters().data() + first);
  const Matrix<TestType> z = test::random_batch<TestType>(3, 4, rng);
  CHECK(forward(copy, z) == forward(chain, z));
  copy.parameters()[0] += TestType(1);
  CHECK(copy.parameters()[0] != chain.parameters()[0]);
  conform(copy, rng, worst);
  worst.print("Chain of couplings", sizeof(TestType) == 4);
}

TEST_CASE("Couplings match their closed forms", "[bijectors][coupling]") {
  Matrix<double> u(3, 2);
  u << 1.0, -2.0,  //
      4.0, 0.5,    //
      -1.0, 3.0;
  auto zero_with_last_bias = [](auto& layer, std::vector<double> bias) {
    for (auto& p : layer.parameters()) p = 0.0;
    auto& net = layer.conditioner();
    for (std::size_t i = 0; i < bias.size(); ++i) net.bias(net.layers() - 1)(Index(i)) = bias[i];
  };

  SECTION("zero weights: a fixed affine map of the transformed rows") {
    // only row 1 is transformed; t = 0.5, a = log 2
    for (const auto kind : {LogScaleGuardKind::none, LogScaleGuardKind::soft_clamp}) {
      AffineCoupling<double> layer({1, 0, 1}, {{4}, {kind, 5.0}, false, 0});
      zero_with_last_bias(layer, {0.5, std::log(2.0)});
      const double s = kind == LogScaleGuardKind::none ? std::log(2.0) : 5.0 * std::tanh(std::log(2.0) / 5.0);
      const auto [x, ld] = forward_and_log_det(layer, u);
      for (Index j = 0; j < 2; ++j) {
        CHECK(x(0, j) == u(0, j));
        CHECK(x(1, j) == Approx(u(1, j) * std::exp(s) + 0.5));
        CHECK(x(2, j) == u(2, j));
        CHECK(ld(j) == Approx(s));
      }
      const auto [back, ld_inverse] = inverse_and_log_det(layer, u);
      CHECK(back(1, 0) == Approx((u(1, 0) - 0.5) * std::exp(-s)));
      CHECK(ld_inverse(1) == Approx(-s));
    }
    AdditiveCoupling<double> nice(3, 2, {{4}, {}, false, 0});  // rows 0, 1 condition; row 2 shifts
    zero_with_last_bias(nice, {-1.5});
    const Matrix<double> x = forward(nice, u);
    CHECK(x.topRows(2) == u.topRows(2));
    CHECK(x(2, 0) == Approx(u(2, 0) - 1.5));
    CHECK(x(2, 1) == Approx(u(2, 1) - 1.5));
  }

  SECTION("linear conditioner: values and reverse-mode derivatives") {
    // dim 2, split 1: t = w_t u0 + b_t, s = w_a u0 + b_a, x1 = u1 e^s + t
    AffineCoupling<double> layer(2, 1, {{}, {LogScaleGuardKind::none, 5.0}, false, 0});
    const double w_t = 0.3, w_a = -0.4, b_t = 1.2, b_a = 0.25;
    auto& net = layer.conditioner();
    net.weight(0) << w_t, w_a;
    net.bias(0) << b_t, b_a;
    const double u0 = 0.8, u1 = -1.5;
    Matrix<double> point(2, 1);
    point << u0, u1;
    const double s = w_a * u0 + b_a, x1 = u1 * std::exp(s) + w_t * u0 + b_t;
    const auto [x, ld] = forward_and_log_det(layer, point);
    CHECK(x(0, 0) == u0);
    CHECK(x(1, 0) == Approx(x1));
    CHECK(ld(0) == Approx(s));

    // L = x1 + 2 log|det|
    zero_gradients(layer);
    Matrix<double> grad_x(2, 1);
    grad_x << 0.0, 1.0;
    const Matrix<double> grad_u = backward(layer, grad_x, RowVector<double>::Constant(1, 2.0));
    CHECK(grad_u(0, 0) == Approx(u1 * std::exp(s) * w_a + w_t + 2.0 * w_a));
    CHECK(grad_u(1, 0) == Approx(std::exp(s)));
    const double grad_a = u1 * std::exp(s) + 2.0;
    auto g = layer.gradients();  // [w_t, w_a, b_t, b_a]
    CHECK(g[0] == Approx(u0));
    CHECK(g[1] == Approx(grad_a * u0));
    CHECK(g[2] == Approx(1.0));
    CHECK(g[3] == Approx(grad_a));

    // inverse: u1 = (x1 − t) e^{−s}, log|det| = −s
    const auto [back, ld_inverse] = inverse_and_log_det(layer, x);
    CHECK(back(0, 0) == u0);
    CHECK(back(1, 0) == Approx(u1));
    CHECK(ld_inverse(0) == Approx(-s));
  }
}

TEMPLATE_TEST_CASE("Additive coupling has log-det exactly zero", "[bijectors][coupling]", float, double) {
  Rng rng(31);
  for (const auto& mask : masks) {
    AdditiveCoupling<TestType> layer(mask, small_options<TestType>(9));
    test::randomise_parameters(layer, rng, 1.0);
    const Matrix<TestType> z = test::random_batch<TestType>(layer.dim(), 6, rng, 2.0);
    CHECK((forward_log_det(layer, z).array() == TestType(0)).all());
    CHECK((inverse_log_det(layer, z).array() == TestType(0)).all());
    CHECK(forward(layer, z) != z);  // yet it does move the transformed rows
  }
}

TEST_CASE("Coupling backward adds into the parameter gradients", "[bijectors][coupling]") {
  Rng rng(37);
  AffineCoupling<double> layer({0, 1, 1}, small_options<double>(3));
  const Matrix<double> z = test::random_batch<double>(3, 4, rng);
  const Matrix<double> w = test::random_batch<double>(3, 4, rng);
  const RowVector<double> v = test::random_batch<double>(1, 4, rng);
  for (const bool fwd : {true, false}) {
    zero_gradients(layer);
    (void)(fwd ? forward_and_log_det(layer, z) : inverse_and_log_det(layer, z));
    const Matrix<double> once = backward(layer, w, v);
    const Vector<double> g1 =
        Eigen::Map<const Vector<double>>(layer.gradients().data(), layer.num_parameters());
    CHECK(backward(layer, w, v) == once);  // same pass, same input gradient
    const Vector<double> g2 =
        Eigen::Map<const Vector<double>>(layer.gradients().data(), layer.num_parameters());
    CHECK((g2 - 2.0 * g1).cwiseAbs().maxCoeff() <= 1e-12 * std::max(1.0, g1.cwiseAbs().maxCoeff()));
    CHECK(g1.cwiseAbs().maxCoeff() > 0.0);
  }
}

TEST_CASE("Couplings reject bad partitions and options", "[bijectors][coupling][errors]") {
  using AffineLayer = AffineCoupling<double>;
  using AdditiveLayer = AdditiveCoupling<double>;
  // split outside [1, D − 1]
  CHECK_THROWS_WITH(AffineLayer(5, 0), Catch::Contains("AffineCoupling") && Catch::Contains("[1, 4]") &&
                                           Catch::Contains("got 0"));
  CHECK_THROWS_WITH(AffineLayer(5, 5), Catch::Contains("AffineCoupling") && Catch::Contains("got 5"));
  CHECK_THROWS_WITH(AdditiveLayer(3, -1), Catch::Contains("AdditiveCoupling") && Catch::Contains("got -1"));
  CHECK_THROWS_WITH(AdditiveLayer(3, 7), Catch::Contains("AdditiveCoupling") && Catch::Contains("got 7"));
  // D = 1 (and less) has no partition
  CHECK_THROWS_WITH(AffineLayer(1, 1), Catch::Contains("AffineCoupling") && Catch::Contains("dim 1") &&
                                           Catch::Contains("no valid partition"));
  CHECK_THROWS_WITH(AdditiveLayer(0, 0), Catch::Contains("AdditiveCoupling") && Catch::Contains("dim 0"));
  CHECK_THROWS_WITH(AffineLayer(std::vector<int>{1}), Catch::Contains("AffineCoupling") &&
                                                          Catch::Contains("dim 1") &&
                                                          Catch::Contains("no valid partition"));
  CHECK_THROWS_WITH(AdditiveLayer(std::vector<int>{0}),
                    Catch::Contains("AdditiveCoupling") && Catch::Contains("dim 1"));
  CHECK_THROWS_WITH(AffineLayer(std::vector<int>{}),
                    Catch::Contains("AffineCoupling") && Catch::Contains("dim 0"));
  // entries other than 0 and 1
  CHECK_THROWS_WITH(AffineLayer({1, 2, 0}), Catch::Contains("AffineCoupling") &&
                                                Catch::Contains("[1, 2, 0]") &&
                                                Catch::Contains("entry 2 at index 1"));
  CHECK_THROWS_WITH(AdditiveLayer({0, 1, -1}),
                    Catch::Contains("AdditiveCoupling") && Catch::Contains("entry -1 at index 2"));
  // a mask needs at least one of each kind
  CHECK_THROWS_WITH(AffineLayer({1, 1, 1}), Catch::Contains("AffineCoupling") &&
                                                Catch::Contains("[1, 1, 1]") &&
                                                Catch::Contains("no 0 entry"));
  CHECK_THROWS_WITH(AdditiveLayer({0, 0}), Catch::Contains("AdditiveCoupling") && Catch::Contains("[0, 0]") &&
                                               Catch::Contains("no 1 entry"));
  // conditioner options
  CHECK_THROWS_WITH(AffineLayer(3, 1, {{8, 0}, {}, false, 0}), Catch::Contains("AffineCoupling") &&
                                                                   Catch::Contains("hidden layer size") &&
                                                                   Catch::Contains("got 0"));
  CHECK_THROWS_WITH(AffineLayer(3, 1, {{8}, {LogScaleGuardKind::soft_clamp, -1.0}, false, 0}),
                    Catch::Contains("AffineCoupling") && Catch::Contains("bound") && Catch::Contains("-1"));
  CHECK_NOTHROW(
      AdditiveLayer(3, 1, {{8}, {LogScaleGuardKind::soft_clamp, -1.0}, false, 0}));  // no scale, no guard
}

TEST_CASE("Couplings reject bad batches and backward calls", "[bijectors][coupling][errors]") {
  AffineCoupling<double> affine(3, 1, small_options<double>(1));
  CHECK_THROWS_WITH(forward(affine, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("AffineCoupling::forward_and_log_det") && Catch::Contains("3 rows") &&
                        Catch::Contains("2x4"));
  CHECK_THROWS_WITH(inverse(affine, Matrix<double>::Zero(3, 0)),
                    Catch::Contains("AffineCoupling::inverse_and_log_det") && Catch::Contains("empty batch"));
  CHECK_THROWS_WITH(
      backward(affine, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)),
      Catch::Contains("AffineCoupling::backward") && Catch::Contains("no forward or inverse pass"));
  CHECK_THROWS_AS(backward(affine, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
  (void)forward(affine, Matrix<double>::Zero(3, 4));
  CHECK_THROWS_WITH(
      backward(affine, Matrix<double>::Zero(3, 2), RowVector<double>::Zero(2)),
      Catch::Contains("AffineCoupling::backward") && Catch::Contains("3x4") && Catch::Contains("3x2"));
  CHECK_THROWS_WITH(backward(affine, Matrix<double>::Zero(3, 4), RowVector<double>::Zero(3)),
                    Catch::Contains("AffineCoupling::backward") && Catch::Contains("1x4"));

  AdditiveCoupling<double> additive({1, 0, 1, 0}, small_options<double>(1));
  CHECK_THROWS_WITH(inverse(additive, Matrix<double>::Zero(5, 2)),
                    Catch::Contains("AdditiveCoupling::inverse_and_log_det") && Catch::Contains("4 rows"));
  CHECK_THROWS_AS(backward(additive, Matrix<double>::Zero(4, 1), RowVector<double>::Zero(1)),
                  std::logic_error);
}

// ---- with a context ------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("Conditional affine and additive couplings conform with a context",
                   "[bijectors][coupling][conditional]", float, double) {
  using T = TestType;
  Rng rng(41);
  test::MaxErrors worst;
  std::uint64_t seed = 100;
  for (const Index context_dim : {1, 3}) {
    for (const auto& mask : masks) {
      CAPTURE(context_dim, mask);
      AffineCoupling<T> affine(mask, small_options<T>(++seed, {}, context_dim));
      AdditiveCoupling<T> additive(mask, small_options<T>(++seed, {}, context_dim));
      REQUIRE(affine.context_dim() == context_dim);
      REQUIRE(additive.context_dim() == context_dim);
      // the conditioner reads the A half and the context
      CHECK(affine.conditioner().context_dim() == context_dim);
      CHECK(affine.num_parameters() ==
            AffineCoupling<T>(mask, small_options<T>(seed)).num_parameters() + 6 * context_dim);
      // with the conditioner's initial weights, then with larger random ones
      conform_with_context(affine, rng, worst);
      conform_with_context(additive, rng, worst);
      test::randomise_parameters(affine, rng, 0.5);
      test::randomise_parameters(additive, rng, 0.5);
      conform_with_context(affine, rng, worst);
      conform_with_context(additive, rng, worst);
    }
  }
  // a linear conditioner: the context weight is the only layer's
  CouplingOptions<T> linear;
  linear.hidden = {};
  linear.context_dim = 2;
  AffineCoupling<T> affine(3, 1, linear);
  test::randomise_parameters(affine, rng, 0.5);
  conform_with_context(affine, rng, worst);
  worst.print("Conditional coupling", sizeof(T) == 4);
}

TEMPLATE_TEST_CASE("A conditional coupling round-trips per context, passes A unchanged and moves B with c",
                   "[bijectors][coupling][conditional]", float, double) {
  using T = TestType;
  Rng rng(43);
  const Index n = 12, context_dim = 2;
  std::uint64_t seed = 200;
  auto check_layer_with_context = [&](auto& layer) {
    test::randomise_parameters(layer, rng, 0.5);
    // hidden biases above 1: no unit is dead on the whole batch, so every dependency shows
    auto& net = layer.conditioner();
    for (Index l = 0; l + 1 < net.layers(); ++l) net.bias(l).array() = net.bias(l).array().abs() + T(1);
    const Matrix<T> z = test::random_batch<T>(layer.dim(), n, rng);
    for (int draw = 0; draw < 3; ++draw) {
      const Matrix<T> context = test::random_batch<T>(context_dim, n, rng, 2.0);
      const auto [x, ld] = forward_and_log_det(layer, z, context);
      const auto [back, ld_back] = inverse_and_log_det(layer, x, context);
      const double tolerance = testing::Tolerances::for_scalar<T>().round_trip;
      CHECK((back - z).cwiseAbs().maxCoeff() <= tolerance * std::max(T(1), z.cwiseAbs().maxCoeff()));
      CHECK((ld + ld_back).cwiseAbs().maxCoeff() <= tolerance * std::max(T(1), ld.cwiseAbs().maxCoeff()));
      // the conditioning rows pass through bit for bit, both ways
      const Matrix<T> inverted = inverse(layer, z, context);
      for (const Index row : layer.partition().conditioning()) {
        CHECK(x.row(row) == z.row(row));
        CHECK(inverted.row(row) == z.row(row));
      }
      // another context moves every transformed row
      Matrix<T> other = context;
      other.row(draw % context_dim).array() += T(1);
      const Matrix<T> moved = forward(layer, z, other);
      for (const Index row : layer.partition().transformed())
        CHECK((moved.row(row).array() != x.row(row).array()).any());
      for (const Index row : layer.partition().conditioning()) CHECK(moved.row(row) == z.row(row));
      // and the inverse under the wrong context does not give z back
      CHECK((inverse(layer, x, other) - z).cwiseAbs().maxCoeff() > 1e-3);
    }
  };
  for (const auto& mask : masks) {
    CAPTURE(mask);
    AffineCoupling<T> affine(mask, small_options<T>(++seed, {}, context_dim));
    AdditiveCoupling<T> additive(mask, small_options<T>(++seed, {}, context_dim));
    check_layer_with_context(affine);
    check_layer_with_context(additive);
  }
}

TEMPLATE_TEST_CASE("Identity-initialised conditional couplings are the identity for every context",
                   "[bijectors][coupling][conditional]", float, double) {
  using T = TestType;
  Rng rng(47);
  for (const bool linear : {false, true}) {
    auto options = small_options<T>(9, {}, 2);
    if (linear) options.hidden = {};  // the context weight belongs to the zeroed last layer then
    options.identity_init = true;
    AffineCoupling<T> affine({1, 0, 1, 0}, options);
    AdditiveCoupling<T> additive({0, 1, 1}, options);
    CHECK((affine.conditioner().context_weight().array() != T(0)).any() == !linear);
    for (int draw = 0; draw < 3; ++draw) {
      const Matrix<T> z = test::random_batch<T>(4, 5, rng), c = test::random_batch<T>(2, 5, rng, 3.0);
      for (const bool fwd : {true, false}) {
        const auto [out, ld] = fwd ? forward_and_log_det(affine, z, c) : inverse_and_log_det(affine, z, c);
        CHECK(out == z);
        CHECK((ld.array() == T(0)).all());
        const auto [out3, ld3] = fwd ? forward_and_log_det(additive, z.topRows(3), c)
                                     : inverse_and_log_det(additive, z.topRows(3), c);
        CHECK(out3 == z.topRows(3));
        CHECK((ld3.array() == T(0)).all());
      }
    }
  }
}

TEST_CASE("A conditional coupling with a zero context weight is the unconditional layer of its seed",
          "[bijectors][coupling][conditional]") {
  Rng rng(53);
  const std::vector<int> mask = {0, 1, 1, 0, 1};
  AffineCoupling<double> plain(mask, small_options<double>(7));
  AffineCoupling<double> conditional(mask, small_options<double>(7, {}, 3));
  // the layers draw the same weights; the context weight comes after them
  const Index shared = plain.num_parameters();
  REQUIRE(conditional.num_parameters() == shared + 6 * 3);
  CHECK(std::equal(plain.parameters().begin(), plain.parameters().end(), conditional.parameters().begin()));
  CHECK(conditional.conditioner().context_weight().data() == conditional.parameters().data() + shared);
  const Matrix<double> z = test::random_batch<double>(5, 6, rng);
  const Matrix<double> context = test::random_batch<double>(3, 6, rng);
  const auto [x_plain, ld_plain] = forward_and_log_det(plain, z);
  const auto [x_random, ld_random] = forward_and_log_det(conditional, z, context);
  CHECK((x_random - x_plain).cwiseAbs().maxCoeff() > 1e-3);  // the context weight matters
  conditional.conditioner().context_weight().setZero();
  const auto [x, ld] = forward_and_log_det(conditional, z, context);
  CHECK(x == x_plain);
  CHECK(ld == ld_plain);
  const auto [u, ld_u] = inverse_and_log_det(conditional, z, context);
  CHECK(u == inverse(plain, z));
  CHECK(ld_u == inverse_log_det(plain, z));
}

TEST_CASE("A DynamicChain of conditional couplings and permutations takes one context",
          "[bijectors][coupling][conditional]") {
  Rng rng(59);
  const Index d = 4, context_dim = 2, n = 5;
  auto options = [&](std::uint64_t seed, Index c) {
    auto o = small_options<double>(seed, {}, c);
    o.hidden = {5};
    return o;
  };
  AffineCoupling<double> first(d, 2, options(1, context_dim));
  AdditiveCoupling<double> second({1, 0, 1, 0}, options(2, context_dim));
  AffineCoupling<double> plain(d, 1, options(3, 0));  // unconditional, in the same chain
  test::randomise_parameters(first, rng, 0.4);
  test::randomise_parameters(second, rng, 0.4);
  test::randomise_parameters(plain, rng, 0.4);
  DynamicChain<double> chain(d);
  chain.push_back(first).push_back(Permute<double>::reverse(d)).push_back(second).push_back(plain);
  CHECK(chain.context_dim() == context_dim);
  const Matrix<double> z = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(context_dim, n, rng);

  // the parts in turn, each conditional one with the same context
  Permute<double> reverse = Permute<double>::reverse(d);
  const auto [x1, ld1] = forward_and_log_det(first, z, context);
  const auto [x2, ld2] = forward_and_log_det(reverse, x1);
  const auto [x3, ld3] = forward_and_log_det(second, x2, context);
  const auto [x4, ld4] = forward_and_log_det(plain, x3);
  const auto [x, ld] = forward_and_log_det(chain, z, context);
  CHECK(x == x4);
  CHECK((ld - (ld1 + ld2 + ld3 + ld4)).cwiseAbs().maxCoeff() <= 1e-12);

  const auto report = testing::check_conformance(chain, z, context, rng);
  INFO(report.summary());
  CHECK(report.ok());
  CHECK_THROWS_WITH(forward(chain, z), Catch::Contains("DynamicChain::forward_and_log_det") &&
                                           Catch::Contains("AffineCoupling") && Catch::Contains("context"));
}

TEST_CASE("A flow of conditional couplings has log p(x | c) by the change of variables",
          "[bijectors][coupling][conditional]") {
  Rng rng(61);
  const Index d = 3, context_dim = 2, n = 7;
  AffineCoupling<double> first({1, 0, 1}, small_options<double>(11, {}, context_dim));
  AdditiveCoupling<double> second(d, 1, small_options<double>(12, {}, context_dim));
  test::randomise_parameters(first, rng, 0.4);
  test::randomise_parameters(second, rng, 0.4);
  TransformedDistribution flow(StandardNormal<double>(d), Chain(first, Permute<double>::reverse(d), second));
  CHECK(flow.context_dim() == context_dim);
  const Matrix<double> x = test::random_batch<double>(d, n, rng, 1.5);
  const Matrix<double> context = test::random_batch<double>(context_dim, n, rng);

  // density direction, last part first: u = first⁻¹(reverse⁻¹(second⁻¹(x; c)); c)
  Permute<double> reverse = Permute<double>::reverse(d);
  const auto [y2, ld2] = inverse_and_log_det(second, x, context);
  const auto [y1, ld1] = inverse_and_log_det(reverse, y2);
  const auto [u, ld0] = inverse_and_log_det(first, y1, context);
  const double log_2pi = std::log(2 * std::numbers::pi);
  const RowVector<double> expected =
      (-0.5 * u.colwise().squaredNorm()).array() - 0.5 * double(d) * log_2pi + (ld0 + ld1 + ld2).array();
  const RowVector<double> log_prob = flow.log_prob(x, context);
  CHECK((log_prob - expected).cwiseAbs().maxCoeff() <= 1e-12);
  // the context changes the density
  const Matrix<double> other = context.rowwise().reverse();
  CHECK((flow.log_prob(x, other) - log_prob).cwiseAbs().maxCoeff() > 1e-3);
  // samples for a context come with the density log_prob gives them
  Matrix<double> samples;
  RowVector<double> sample_log_prob;
  flow.sample_and_log_prob(context, rng, samples, sample_log_prob);
  CHECK((flow.log_prob(samples, context) - sample_log_prob).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("Coupling passes reject missing, unexpected and misshapen contexts",
          "[bijectors][coupling][errors][conditional]") {
  using Catch::Contains;
  AffineCoupling<double> conditional(3, 1, small_options<double>(1, {}, 2));
  AffineCoupling<double> plain(3, 1, small_options<double>(1));
  AdditiveCoupling<double> additive({1, 0, 1}, small_options<double>(1, {}, 2));
  const Matrix<double> x = Matrix<double>::Zero(3, 4);
  Matrix<double> out, grad_in;
  RowVector<double> ld;
  CHECK_THROWS_WITH(conditional.forward_and_log_det(x, out, ld),
                    Contains("AffineCoupling::forward_and_log_det") && Contains("context_dim 2"));
  CHECK_THROWS_WITH(conditional.inverse_and_log_det(x, out, ld),
                    Contains("AffineCoupling::inverse_and_log_det") && Contains("context_dim 2"));
  CHECK_THROWS_WITH(additive.inverse_and_log_det(x, out, ld),
                    Contains("AdditiveCoupling::inverse_and_log_det") && Contains("context_dim 2"));
  CHECK_THROWS_WITH(
      plain.inverse_and_log_det(x, Matrix<double>::Zero(2, 4), out, ld),
      Contains("AffineCoupling::inverse_and_log_det") && Contains("unconditional") && Contains("2x4"));
  CHECK_THROWS_WITH(
      plain.forward_and_log_det(x, Matrix<double>::Zero(1, 4), out, ld),
      Contains("AffineCoupling::forward_and_log_det") && Contains("unconditional") && Contains("1x4"));
  CHECK_THROWS_WITH(conditional.inverse_and_log_det(x, Matrix<double>::Zero(3, 4), out, ld),
                    Contains("AffineCoupling::inverse_and_log_det") && Contains("expected a 2x4 context") &&
                        Contains("got 3x4"));
  CHECK_THROWS_WITH(additive.forward_and_log_det(x, Matrix<double>::Zero(2, 3), out, ld),
                    Contains("AdditiveCoupling::forward_and_log_det") && Contains("got 2x3"));
  Matrix<double> bad = Matrix<double>::Zero(2, 4);
  bad(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(
      conditional.inverse_and_log_det(x, bad, out, ld),
      Contains("AffineCoupling::inverse_and_log_det") && Contains("context") && Contains("(1, 2)"));
  CHECK_THROWS_WITH(
      conditional.forward_and_log_det(Matrix<double>::Zero(2, 4), Matrix<double>::Zero(2, 4), out, ld),
      Contains("AffineCoupling::forward_and_log_det") && Contains("3 rows"));
  CHECK_THROWS_WITH(AffineCoupling<double>(3, 1, small_options<double>(1, {}, -3)),
                    Contains("AffineCoupling") && Contains("context_dim is -3"));
  CHECK_THROWS_WITH(AdditiveCoupling<double>({0, 1}, small_options<double>(1, {}, -1)),
                    Contains("AdditiveCoupling") && Contains("context_dim is -1"));

  const RowVector<double> grad_ld = RowVector<double>::Zero(4);
  Matrix<double> grad_context = Matrix<double>::Zero(2, 4);
  CHECK_THROWS_WITH(conditional.backward(x, grad_ld, grad_in, grad_context),
                    Contains("AffineCoupling::backward") && Contains("no forward or inverse pass"));
  conditional.inverse_and_log_det(x, Matrix<double>::Zero(2, 4), out, ld);
  CHECK_THROWS_WITH(conditional.backward(x, grad_ld, grad_in),
                    Contains("AffineCoupling::backward") && Contains("context_dim 2"));
  grad_context.setZero(2, 5);
  CHECK_THROWS_WITH(
      conditional.backward(x, grad_ld, grad_in, grad_context),
      Contains("AffineCoupling::backward") && Contains("expected a 2x4") && Contains("got 2x5"));
  plain.inverse_and_log_det(x, out, ld);
  grad_context.setZero(2, 4);
  CHECK_THROWS_WITH(plain.backward(x, grad_ld, grad_in, grad_context),
                    Contains("AffineCoupling::backward") && Contains("unconditional"));
}

TEST_CASE("A spline coupling with a context conforms", "[bijectors][coupling][neural_spline][conditional]") {
  Rng rng(83);
  test::MaxErrors worst;
  CouplingOptions<double> options;
  options.hidden = {6};
  options.seed = 5;
  options.context_dim = 2;
  options.spline.bins = 4;
  options.spline.bound = 2.5;
  Coupling<double, RationalQuadraticTransformer<double>> layer(std::vector<int>{1, 0, 1}, options);
  REQUIRE(layer.context_dim() == 2);
  test::randomise_parameters(layer, rng, 0.3);
  conform_with_context(layer, rng, worst);
}
