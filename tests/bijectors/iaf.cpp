#include "knead/bijectors/iaf.hpp"

#include <cmath>
#include <type_traits>

#include "autoregressive.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// True if no raw log-scale a of the IAF at z, in either direction, is within `margin` of ±c.
template <class T>
bool away_from_kinks(Iaf<T>& iaf, const Matrix<T>& z, double margin) {
  const Index d = iaf.dim();
  Matrix<T> a_at_z, a_at_inverse, x;
  RowVector<T> ld;
  iaf.inner().made().forward(z, a_at_z);  // sampling: one pass at z
  iaf.inverse_and_log_det(z, x, ld);      // density: MADE ends at the noise
  iaf.inner().made().forward(x, a_at_inverse);
  const double c = double(iaf.inner().guard().bound);
  auto distance = [&](const Matrix<T>& out) {
    return (out.bottomRows(d).template cast<double>().array().abs() - c).abs().minCoeff();
  };
  return distance(a_at_z) > margin && distance(a_at_inverse) > margin;
}

/// Draws moderate random weights (unless identity) and 3 points; for the clamp, points away from
/// its kinks, drawing new weights until there are such points.
template <class T>
Matrix<T> randomise_with_points(Iaf<T>& iaf, bool randomise, Rng& rng) {
  const Index d = iaf.dim();
  for (int draw = 0; draw < 100; ++draw) {
    if (randomise) test::randomise_parameters(iaf, rng, 0.4);
    if (iaf.inner().guard().kind != LogScaleGuardKind::clamp) return test::random_batch<T>(d, 3, rng);
    Matrix<T> z(d, 3);
    Index found = 0;
    for (int attempt = 0; attempt < 1000 && found < 3; ++attempt) {
      const Matrix<T> candidate = test::random_batch<T>(d, 1, rng);
      if (away_from_kinks(iaf, candidate, 0.2)) z.col(found++) = candidate;
    }
    if (found == 3) return z;
  }
  FAIL("no points away from the clamp's kinks");
  return {};
}

}  // namespace

TEMPLATE_TEST_CASE("Iaf conforms for every order, guard and initialisation", "[bijectors][iaf]", float,
                   double) {
  using T = TestType;
  Rng rng(59);
  test::MaxErrors worst;
  test::for_each_autoregressive_case<T>(test::custom_order, 100, [&](Index d, const MafOptions<T>& options) {
    Iaf<T> iaf = make_iaf<T>(d, options);
    const Matrix<T> z = randomise_with_points(iaf, !options.identity_init, rng);
    worst.add(test::require_conformance(iaf, z, rng));
  });
  worst.print("Iaf", std::is_same_v<T, float>);
}

TEMPLATE_TEST_CASE("A chain of IAFs and affine maps conforms", "[bijectors][iaf]", float, double) {
  using T = TestType;
  Rng rng(61);
  MafOptions<T> first, second;
  first.hidden = second.hidden = test::conformance_hidden<T>(12);
  second.order = InputOrder::reversed();
  second.seed = 1;
  Chain chain(make_iaf<T>(4, first), Affine<T>(4), make_iaf<T>(4, second));
  test::randomise_parameters(chain, rng, 0.3);
  test::require_conformance(chain, test::random_batch<T>(4, 3, rng), rng);
}

TEST_CASE("Iaf is Maf with its directions swapped", "[bijectors][iaf]") {
  Rng rng(67);
  MafOptions<double> options;
  options.hidden = {6, 6};
  Iaf<double> iaf = make_iaf<double>(4, options);
  test::randomise_parameters(iaf, rng, 0.5);
  Maf<double> maf = iaf.inner();
  const Matrix<double> z = test::random_batch<double>(4, 5, rng);
  const auto [x, ld] = forward_and_log_det(iaf, z);
  const auto [x_maf, ld_maf] = inverse_and_log_det(maf, z);
  CHECK(x == x_maf);
  CHECK(ld == ld_maf);
  const auto [u, ld_inverse] = inverse_and_log_det(iaf, z);
  const auto [u_maf, ld_inverse_maf] = forward_and_log_det(maf, z);
  CHECK(u == u_maf);
  CHECK(ld_inverse == ld_inverse_maf);
}

TEST_CASE("Iaf on two dimensions matches its closed form", "[bijectors][iaf]") {
  Rng rng(71);
  for (const bool reversed : {false, true}) {
    CAPTURE(reversed);
    MafOptions<double> options;
    options.hidden = {};  // MADE is one masked linear layer: outputs [μ0, μ1, a0, a1] = W u + b
    options.guard.kind = LogScaleGuardKind::none;
    options.order = reversed ? InputOrder::reversed() : InputOrder::identity();
    Iaf<double> iaf = make_iaf<double>(2, options);
    test::randomise_parameters(iaf, rng, 0.5);
    const auto w = iaf.inner().made().mlp().weight(0);
    const auto b = iaf.inner().made().mlp().bias(0);
    const Index first = reversed ? 1 : 0, second = 1 - first;  // generated first / second
    const Matrix<double> u = test::random_batch<double>(2, 5, rng);
    const auto [x, ld] = forward_and_log_det(iaf, u);
    for (Index j = 0; j < u.cols(); ++j) {
      // one pass: x_i = (u_i − μ_i(u_{<i})) e^{−a_i(u_{<i})}
      const double a_first = b(2 + first), a_second = w(2 + second, first) * u(first, j) + b(2 + second);
      const double mu_second = w(second, first) * u(first, j) + b(second);
      CHECK(x(first, j) == Approx((u(first, j) - b(first)) * std::exp(-a_first)).epsilon(1e-12));
      CHECK(x(second, j) == Approx((u(second, j) - mu_second) * std::exp(-a_second)).epsilon(1e-12));
      CHECK(ld(j) == Approx(-a_first - a_second).epsilon(1e-12));
    }
    const auto [back, ld_back] = inverse_and_log_det(iaf, x);
    CHECK((back - u).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((ld_back + ld).cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("Iaf with identity_init is exactly the identity", "[bijectors][iaf]") {
  Rng rng(73);
  MafOptions<float> options;
  options.hidden = {8, 8};
  options.identity_init = true;
  Iaf<float> iaf = make_iaf<float>(3, options);
  const Matrix<float> z = test::random_batch<float>(3, 4, rng);
  CHECK(forward(iaf, z) == z);
  CHECK(inverse(iaf, z) == z);
  CHECK(forward_log_det(iaf, z).isZero(0));
}

TEST_CASE("make_iaf rejects bad arguments, naming Iaf", "[bijectors][iaf][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(make_iaf<double>(0),
                    Contains("Iaf") && Contains("dim must be at least 1, got 0") && !Contains("Maf"));
  MafOptions<double> small;
  small.hidden = {2};
  CHECK_THROWS_WITH(make_iaf<double>(4, small),
                    Contains("Iaf") && Contains("hidden layer 1 has 2 units") && !Contains("Maf"));
  MafOptions<double> options;
  options.hidden = {4};
  Iaf<double> iaf = make_iaf<double>(3, options);
  CHECK_THROWS_WITH(backward(iaf, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)),
                    Contains("Iaf::backward") && !Contains("Maf"));
  CHECK_THROWS_AS(backward(iaf, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
  // Iaf's forward is Maf's inverse pass, and the reverse: each names Iaf's own function
  CHECK_THROWS_WITH(forward(iaf, Matrix<double>::Zero(2, 1)),
                    Contains("Iaf::forward_and_log_det") && Contains("3 rows") && !Contains("Maf"));
  CHECK_THROWS_WITH(inverse(iaf, Matrix<double>::Constant(3, 1, NAN)),
                    Contains("Iaf::inverse_and_log_det") && Contains("non-finite") && !Contains("Maf"));
  forward(iaf, Matrix<double>::Zero(3, 1));
  CHECK_THROWS_WITH(backward(iaf, Matrix<double>::Zero(3, 2), RowVector<double>::Zero(2)),
                    Contains("Iaf::backward") && !Contains("Maf"));
  // a copy, and an Iaf built from a Maf, name Iaf too; the Maf itself still names Maf
  Iaf<double> copy = iaf;
  CHECK_THROWS_WITH(forward(copy, Matrix<double>::Zero(2, 1)), Contains("Iaf::forward_and_log_det"));
  Iaf<double> wrapped{Maf<double>(3, options)};
  CHECK_THROWS_WITH(inverse(wrapped, Matrix<double>::Zero(2, 1)), Contains("Iaf::inverse_and_log_det"));
  Maf<double> maf(3, options);
  CHECK_THROWS_WITH(forward(maf, Matrix<double>::Zero(2, 1)), Contains("Maf::forward_and_log_det"));
}

TEMPLATE_TEST_CASE("A conditional Iaf conforms for every order and initialisation, per context",
                   "[bijectors][iaf][conditional]", float, double) {
  using T = TestType;
  Rng rng(81);
  const Index context_dim = 3;
  test::for_each_autoregressive_case<T>(test::custom_order, 0, [&](Index d, MafOptions<T> options) {
    if (options.guard.kind == LogScaleGuardKind::clamp) return;  // kinks: covered unconditionally
    options.context_dim = context_dim;
    Iaf<T> iaf = make_iaf<T>(d, options);
    REQUIRE(iaf.context_dim() == context_dim);
    if (!options.identity_init) test::randomise_parameters(iaf, rng, 0.3);
    const Matrix<T> z = test::random_batch<T>(d, 3, rng);
    const Matrix<T> context = test::random_batch<T>(context_dim, 3, rng, 0.5);
    const auto report = testing::check_conformance(iaf, z, context, rng);
    INFO(report.summary());
    CHECK(report.ok());
  });
}
