#include "knead/transformers/affine.hpp"

#include <cmath>

#include "properties.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// Raw parameters [t; a] for r dimensions of n samples, with no a within 0.25 of the clamp's kinks
/// ±bound (central differences would straddle one), some beyond them.
template <class T>
Matrix<T> affine_params(Index r, Index n, T bound, Rng& rng) {
  Matrix<T> params = test::random_batch<T>(2 * r, n, rng, 1.5);
  for (Index j = 0; j < n; ++j)
    for (Index i = r; i < 2 * r; ++i) {
      T& a = params(i, j);
      if (std::abs(std::abs(a) - bound) < T(0.25)) a = std::copysign(bound + T(0.5), a);
    }
  return params;
}

}  // namespace

TEMPLATE_TEST_CASE("AffineTransformer maps, inverts and differentiates as x = u·e^s + t",
                   "[transformers][affine]", float, double) {
  using T = TestType;
  Rng rng(5);
  for (const auto kind : {LogScaleGuardKind::none, LogScaleGuardKind::clamp, LogScaleGuardKind::soft_clamp})
    for (const Index r : {1, 3, 8}) {
      CAPTURE(int(kind), r);
      const AffineTransformer<T> tr({kind, T(1.5)});
      test::check_transformer_properties(tr, affine_params<T>(r, 5, T(1.5), rng),
                                         test::random_batch<T>(r, 5, rng), rng);
    }
}

TEMPLATE_TEST_CASE("AffineTransformer's forward is the closed form", "[transformers][affine]", float,
                   double) {
  using T = TestType;
  const AffineTransformer<T> tr({LogScaleGuardKind::none, T(5)});
  Matrix<T> params(2, 3), u(1, 3), x, ld;
  params << T(1), T(-2), T(0.5),  // t
      T(0), T(1), T(-1);          // a = s (no guard)
  u << T(2), T(3), T(-4);
  typename AffineTransformer<T>::Workspace ws;
  tr.forward(ParamBlocks<const T>::stacked(params, 1), u, x, ld, ws);
  CHECK(double(x(0)) == Approx(3.0));
  CHECK(double(x(1)) == Approx(3 * std::exp(1.0) - 2));
  CHECK(double(x(2)) == Approx(-4 * std::exp(-1.0) + 0.5));
  CHECK(double(ld(1)) == Approx(1.0));
  CHECK(double(ld(2)) == Approx(-1.0));
}

TEST_CASE("AffineTransformer's soft clamp bounds the log-scale", "[transformers][affine]") {
  const AffineTransformer<double> tr({LogScaleGuardKind::soft_clamp, 2.0});
  Matrix<double> params(2, 2), u = Matrix<double>::Ones(1, 2), x, ld;
  params << 0, 0, 100, -100;
  AffineTransformer<double>::Workspace ws;
  tr.forward(ParamBlocks<const double>::stacked(params, 1), u, x, ld, ws);
  CHECK(ld(0) == Approx(2.0));
  CHECK(ld(1) == Approx(-2.0));
  CHECK(x(0) == Approx(std::exp(2.0)));
}

TEST_CASE("AffineTransformer rejects an unusable guard bound", "[transformers][affine]") {
  using Catch::Matchers::Contains;
  const AffineTransformer<double> tr({LogScaleGuardKind::clamp, -1.0});
  CHECK_THROWS_WITH(tr.validate("SomeLayer"), Contains("SomeLayer") && Contains("-1"));
  CHECK_NOTHROW(AffineTransformer<double>({LogScaleGuardKind::none, -1.0}).validate("SomeLayer"));
}
