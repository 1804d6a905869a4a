#include "knead/bijectors/autoregressive.hpp"

#include <cmath>
#include <string_view>
#include <type_traits>

#include "autoregressive.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/transformers/rational_quadratic.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// The affine transformer under another type: Autoregressive runs its general passes with it
/// (MAF's hand-flattened passes are for AffineTransformer itself).
template <class T>
struct GeneralAffine : AffineTransformer<T> {
  using AffineTransformer<T>::AffineTransformer;
  static constexpr std::string_view label = "GeneralAffine";
};

template <class T>
AutoregressiveOptions<T> options_of(const MafOptions<T>& maf) {
  return {maf.hidden, maf.order, maf.identity_init, maf.seed};
}

/// The smallest |pre-activation| of MADE's hidden units at the batch x: how near a ReLU kink.
template <class T>
double nearest_kink(const Made<T>& made, const Matrix<T>& x) {
  const Mlp<T>& mlp = made.mlp();
  Matrix<double> h = x.template cast<double>();
  double nearest = INFINITY;
  for (Index l = 0; l + 1 < mlp.layers(); ++l) {
    Matrix<double> z = mlp.weight(l).template cast<double>().cwiseProduct(
                           mlp.masks()[std::size_t(l)].template cast<double>()) *
                       h;
    z.colwise() += mlp.bias(l).template cast<double>();
    nearest = std::min(nearest, z.cwiseAbs().minCoeff());
    h = z.cwiseMax(0.0);
  }
  return nearest;
}

/// Random weights of moderate scale (unless `randomise` is false) and points at which, in both
/// directions, no hidden unit of MADE is within 1e-3 of its kink, so finite differences do not
/// straddle one (for D = 1 the units are functions of the biases alone, the same at every point).
template <class B>
Matrix<typename B::Scalar> points(B& layer, bool randomise, Rng& rng, double scale = 0.4) {
  using T = typename B::Scalar;
  for (int draw = 0; draw < 100; ++draw) {
    if (randomise) test::randomise_parameters(layer, rng, scale);
    Matrix<T> z = test::random_batch<T>(layer.dim(), 3, rng);
    if (!randomise ||
        std::min(nearest_kink(layer.made(), z), nearest_kink(layer.made(), forward(layer, z))) > 1e-3)
      return z;
  }
  FAIL("no weights and points away from MADE's kinks");
  return {};
}

/// True if every spline element of both passes at z (inverse from x = z; forward from u = z, with
/// MADE reading its output) stays in its bin (or tail) when its input moves by ±margin, so the
/// checker's finite differences do not straddle a knot, where the log-det's slope jumps.
template <class T>
bool spline_points_off_knots(Autoregressive<T, RationalQuadraticTransformer<T>>& layer, const Matrix<T>& z,
                             double margin) {
  Made<T> made = layer.made();
  Matrix<T> params, out, ld;
  typename RationalQuadraticTransformer<T>::Workspace ws;
  auto stays = [&](Direction pass, const Matrix<T>& made_input) {
    made.forward(made_input, params);
    const auto blocks = ParamBlocks<const T>::stacked(params, layer.dim());
    std::vector<Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic>> bins;
    for (const double shift : {0.0, margin, -margin}) {
      const Matrix<T> in = (z.array() + T(shift)).matrix();
      if (pass == Direction::forward)
        layer.transformer().forward(blocks, in, out, ld, ws);
      else
        layer.transformer().inverse(blocks, in, out, ld, ws);
      bins.push_back(ws.bin);
    }
    return bins[0] == bins[1] && bins[0] == bins[2];
  };
  return stays(Direction::inverse, z) && stays(Direction::forward, forward(layer, z));
}

}  // namespace

TEMPLATE_TEST_CASE("Autoregressive conforms with the rational-quadratic spline transformer",
                   "[bijectors][autoregressive]", float, double) {
  using T = TestType;
  Rng rng(47);
  test::MaxErrors worst;
  RationalQuadraticOptions<T> spline;
  spline.bins = 4;
  spline.bound = T(2);  // standard normal points fall in the tails too
  const double margin = std::is_same_v<T, double> ? 1e-3 : 0.05;
  // float's finite-difference steps (about 0.02) see the spline's curvature where slopes are far
  // from 1: smaller random weights there
  const double weight_scale = std::is_same_v<T, double> ? 0.4 : 0.2;
  test::for_each_autoregressive_case<T>(test::custom_order, 30, [&](Index d, const MafOptions<T>& options) {
    if (options.guard.kind != LogScaleGuardKind::soft_clamp) return;  // the spline has no guard
    Autoregressive<T, RationalQuadraticTransformer<T>> layer(d, RationalQuadraticTransformer<T>(spline),
                                                             options_of(options));
    for (int draw = 0; draw < 200; ++draw) {
      const Matrix<T> z = points(layer, !options.identity_init, rng, weight_scale);
      if (!spline_points_off_knots(layer, z, margin)) continue;
      worst.add(test::require_conformance(layer, z, rng));
      return;
    }
    FAIL("no points away from the spline's knots");
  });
  worst.print("RationalQuadraticAutoregressive", std::is_same_v<T, float>);
}

TEMPLATE_TEST_CASE("Autoregressive conforms with the additive and the general affine transformer",
                   "[bijectors][autoregressive]", float, double) {
  using T = TestType;
  Rng rng(43);
  test::MaxErrors worst_additive, worst_affine;
  test::for_each_autoregressive_case<T>(test::custom_order, 10, [&](Index d, const MafOptions<T>& options) {
    // the additive layer has no guard: one case of the three guard kinds is enough
    if (options.guard.kind == LogScaleGuardKind::soft_clamp) {
      Autoregressive<T, AdditiveTransformer<T>> additive(d, {}, options_of(options));
      worst_additive.add(
          test::require_conformance(additive, points(additive, !options.identity_init, rng), rng));
    }
    // the clamp's kinks would need points away from them (as the Maf tests pick): soft clamp and none here
    if (options.guard.kind != LogScaleGuardKind::clamp) {
      Autoregressive<T, GeneralAffine<T>> affine(d, GeneralAffine<T>(options.guard), options_of(options));
      worst_affine.add(test::require_conformance(affine, points(affine, !options.identity_init, rng), rng));
    }
  });
  worst_additive.print("AdditiveAutoregressive", std::is_same_v<T, float>);
  worst_affine.print("GeneralAffineAutoregressive", std::is_same_v<T, float>);
}

TEMPLATE_TEST_CASE("Autoregressive's general passes with the affine transformer compute Maf's values",
                   "[bijectors][autoregressive]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  Rng rng(47);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    MafOptions<T> options;
    options.hidden = {3 * d + 2, 2 * d + 1};
    options.order = InputOrder::reversed();
    options.seed = std::uint64_t(d);
    Maf<T> maf(d, options);
    Autoregressive<T, GeneralAffine<T>> general(d, GeneralAffine<T>(options.guard), options_of(options));
    test::randomise_parameters(maf, rng, 0.4);
    std::ranges::copy(maf.parameters(), general.parameters().begin());
    const Matrix<T> z = test::random_batch<T>(d, 37, rng);
    const Matrix<T> w = test::random_batch<T>(d, 37, rng);
    const RowVector<T> v = test::random_batch<T>(1, 37, rng);
    auto close = [&](const auto& a, const auto& b) {
      const double scale = std::max(1.0, double(b.cwiseAbs().maxCoeff()));
      return (a - b).template cast<double>().cwiseAbs().maxCoeff() <= tol * scale;
    };
    for (const bool sampling : {true, false}) {
      CAPTURE(sampling);
      const auto [x, ld] = sampling ? forward_and_log_det(maf, z) : inverse_and_log_det(maf, z);
      const auto [x_general, ld_general] =
          sampling ? forward_and_log_det(general, z) : inverse_and_log_det(general, z);
      CHECK(close(x_general, x));
      CHECK(close(ld_general, ld));
      zero_gradients(maf);
      zero_gradients(general);
      const Matrix<T> grad = backward(maf, w, v);
      const Matrix<T> grad_general = backward(general, w, v);
      CHECK(close(grad_general, grad));
      const auto g = Eigen::Map<const Vector<T>>(maf.gradients().data(), maf.num_parameters());
      const auto g_general =
          Eigen::Map<const Vector<T>>(general.gradients().data(), general.num_parameters());
      CHECK(close(g_general, g));
    }
  }
}

TEST_CASE("Autoregressive's general passes give the same bits on any thread count",
          "[bijectors][autoregressive]") {
  Rng rng(53);
  Autoregressive<double, AdditiveTransformer<double>> layer(4, {},
                                                            {{24, 24}, InputOrder::reversed(), false, 3});
  test::randomise_parameters(layer, rng, 0.5);
  const Matrix<double> z = test::random_batch<double>(4, 200, rng);
  const Matrix<double> w = test::random_batch<double>(4, 200, rng);
  const RowVector<double> v = test::random_batch<double>(1, 200, rng);
  auto run = [&](bool sampling) {
    zero_gradients(layer);
    const auto result = sampling ? forward_and_log_det(layer, z) : inverse_and_log_det(layer, z);
    const Matrix<double> grad = backward(layer, w, v);
    return std::make_tuple(result.value, grad, test::copy_of(layer.gradients()));
  };
  for (const bool sampling : {true, false}) {
    CAPTURE(sampling);
    const auto one = run(sampling);
    test::ThreadCount threads(2);
    const auto two = run(sampling);
    CHECK(std::get<0>(one) == std::get<0>(two));
    CHECK(std::get<1>(one) == std::get<1>(two));
    CHECK(std::get<2>(one) == std::get<2>(two));
  }
}

TEST_CASE("Autoregressive names itself after its transformer and has P outputs per dimension",
          "[bijectors][autoregressive]") {
  using Catch::Contains;
  STATIC_REQUIRE(Autoregressive<double, AdditiveTransformer<double>>::name() == "AdditiveAutoregressive");
  STATIC_REQUIRE(Autoregressive<float, AffineTransformer<float>>::name() == "AffineAutoregressive");
  Autoregressive<double, AdditiveTransformer<double>> additive(3, {}, {{4}});
  CHECK(additive.made().params_per_dim() == 1);
  CHECK(additive.made().mlp().sizes().back() == 3);
  Matrix<double> out;
  RowVector<double> ld;
  CHECK_THROWS_WITH(additive.forward_and_log_det(Matrix<double>::Zero(2, 2), out, ld),
                    Contains("AdditiveAutoregressive::forward_and_log_det") && Contains("3 rows"));
  CHECK_THROWS_WITH((Autoregressive<double, AdditiveTransformer<double>>(3, {}, {{1}})),
                    Contains("AdditiveAutoregressive") && Contains("hidden layer 1 has 1 units"));
}
