#include "knead/bijectors/maf.hpp"

#include <cmath>
#include <limits>
#include <type_traits>

#include "autoregressive.hpp"
#include "conditional_examples.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// The input orders this test's random draws were checked with, not test::custom_order: with other
/// orders the shared Rng stream shifts and draws a float case (d = 5, reversed, no guard) too steep
/// for float finite differences (parameter-gradient error 0.126 against a limit of 0.03).
std::vector<Index> maf_order(Index d) {
  static const std::vector<std::vector<Index>> orders = {{}, {0}, {1, 0}, {2, 0, 1}, {}, {2, 4, 0, 3, 1}};
  return orders.at(std::size_t(d));
}

/// Raw log-scales a (MADE's lower half) in both directions at each column of z: at z (density
/// direction) and at forward(z) (sampling direction).
template <class T>
Matrix<T> raw_log_scales(Maf<T>& maf, const Matrix<T>& z) {
  const Index d = maf.dim();
  Matrix<T> out, x;
  RowVector<T> ld;
  maf.made().forward(z, out);
  Matrix<T> both(2 * d, z.cols());
  both.topRows(d) = out.bottomRows(d);
  maf.forward_and_log_det(z, x, ld);
  maf.made().forward(x, out);
  both.bottomRows(d) = out.bottomRows(d);
  return both;
}

/// n columns at which no raw log-scale is within `margin` of the clamp's kinks ±c, so finite
/// differences do not straddle one; empty if none turn up (for D = 1 the log-scale is a constant).
template <class T>
Matrix<T> points_away_from_kinks(Maf<T>& maf, Index n, Rng& rng, double margin) {
  const double c = double(maf.guard().bound);
  Matrix<T> z(maf.dim(), n);
  Index found = 0;
  for (int attempt = 0; attempt < 1000 && found < n; ++attempt) {
    const Matrix<T> candidate = test::random_batch<T>(maf.dim(), 1, rng);
    const Matrix<T> a = raw_log_scales(maf, candidate);
    if ((a.template cast<double>().array().abs() - c).abs().minCoeff() > margin) z.col(found++) = candidate;
  }
  return found == n ? z : Matrix<T>();
}

/// Random weights of moderate scale and points to check them at (for the clamp, points away from
/// its kinks, drawing new weights until there are such points).
template <class T>
Matrix<T> randomise_with_points(Maf<T>& maf, bool randomise, Index n, Rng& rng) {
  for (int draw = 0; draw < 100; ++draw) {
    if (randomise) test::randomise_parameters(maf, rng, 0.4);
    if (maf.guard().kind != LogScaleGuardKind::clamp) return test::random_batch<T>(maf.dim(), n, rng);
    Matrix<T> z = points_away_from_kinks(maf, n, rng, 0.2);
    if (z.size() > 0) return z;
  }
  FAIL("no points away from the clamp's kinks");
  return {};
}

}  // namespace

TEMPLATE_TEST_CASE("Maf conforms for every order, guard and initialisation", "[bijectors][maf]", float,
                   double) {
  using T = TestType;
  Rng rng(31);
  test::MaxErrors worst;
  test::for_each_autoregressive_case<T>(maf_order, 0, [&](Index d, const MafOptions<T>& options) {
    Maf<T> maf(d, options);
    const Matrix<T> z = randomise_with_points(maf, !options.identity_init, 3, rng);
    worst.add(test::require_conformance(maf, z, rng));
  });
  worst.print("Maf", std::is_same_v<T, float>);
}

TEMPLATE_TEST_CASE("A chain of MAFs and affine maps conforms", "[bijectors][maf]", float, double) {
  using T = TestType;
  Rng rng(37);
  MafOptions<T> first, second;
  first.hidden = second.hidden = test::conformance_hidden<T>(12);
  second.order = InputOrder::reversed();
  second.seed = 1;
  Chain chain(Maf<T>(4, first), Affine<T>(4), Maf<T>(4, second));
  test::randomise_parameters(chain, rng, 0.3);
  CHECK(chain.num_parameters() == 2 * chain.template part<0>().num_parameters() + 8);
  CHECK(chain.template part<2>().parameters().data() ==
        chain.parameters().data() + chain.num_parameters() - chain.template part<2>().num_parameters());
  test::require_conformance(chain, test::random_batch<T>(4, 3, rng), rng);

  auto copy = chain;  // deep, with the parts rebound into the copy's buffer
  CHECK(copy.parameters().data() != chain.parameters().data());
  test::require_conformance(copy, test::random_batch<T>(4, 3, rng), rng);
}

TEST_CASE("Maf's float gradients agree with double's", "[bijectors][maf]") {
  Rng rng(53);
  const Index d = 5;
  MafOptions<double> options;
  options.hidden = {8, 8};
  options.order = InputOrder::permutation(maf_order(d));
  options.guard.bound = 1.0;
  Maf<double> maf(d, options);
  Maf<float> maf_float(d, MafOptions<float>{options.hidden, options.order, {options.guard.kind, 1.0f}});
  test::randomise_parameters(maf_float, rng, 0.4);
  std::ranges::copy(maf_float.parameters(), maf.parameters().begin());
  const Matrix<float> z = test::random_batch<float>(d, 6, rng);
  const Matrix<float> w = test::random_batch<float>(d, 6, rng);
  const RowVector<float> v = test::random_batch<float>(1, 6, rng);
  auto flat = [](const auto& m) { return Eigen::Map<const Vector<double>>(m.data(), m.size()); };
  for (const bool sampling : {true, false}) {
    CAPTURE(sampling);
    const auto [x, ld] =
        sampling ? forward_and_log_det(maf, z.cast<double>()) : inverse_and_log_det(maf, z.cast<double>());
    const auto [x_float, ld_float] =
        sampling ? forward_and_log_det(maf_float, z) : inverse_and_log_det(maf_float, z);
    CHECK(testing::relative_error(flat(x_float.cast<double>().eval()), flat(x)) < 1e-5);
    CHECK(testing::relative_error(flat(ld_float.cast<double>().eval()), flat(ld)) < 1e-5);
    zero_gradients(maf);
    zero_gradients(maf_float);
    const Matrix<double> grad_u = backward(maf, w.cast<double>(), v.cast<double>());
    const Matrix<float> grad_u_float = backward(maf_float, w, v);
    CHECK(testing::relative_error(flat(grad_u_float.cast<double>().eval()), flat(grad_u)) < 1e-5);
    const Vector<double> grad_params =
        Eigen::Map<const Vector<double>>(maf.gradients().data(), maf.num_parameters());
    const Vector<double> grad_params_float =
        Eigen::Map<const Vector<float>>(maf_float.gradients().data(), maf.num_parameters()).cast<double>();
    CHECK(testing::relative_error(grad_params_float, grad_params) < 1e-5);
  }
}

TEMPLATE_TEST_CASE("Maf with identity_init is exactly the identity", "[bijectors][maf]", float, double) {
  using T = TestType;
  Rng rng(41);
  for (const auto kind : {LogScaleGuardKind::none, LogScaleGuardKind::clamp, LogScaleGuardKind::soft_clamp}) {
    CAPTURE(int(kind));
    MafOptions<T> options;
    options.hidden = {16, 16};
    options.order = InputOrder::reversed();
    options.guard.kind = kind;
    options.identity_init = true;
    Maf<T> maf(5, options);
    const Matrix<T> z = test::random_batch<T>(5, 7, rng);
    const auto [x, ld] = forward_and_log_det(maf, z);
    CHECK(x == z);
    CHECK(ld.isZero(0));
    const auto [u, ld_inverse] = inverse_and_log_det(maf, z);
    CHECK(u == z);
    CHECK(ld_inverse.isZero(0));
    // the last layer still learns: its gradient is not zero
    zero_gradients(maf);
    backward(maf, test::random_batch<T>(5, 7, rng), RowVector<T>::Ones(7));
    const auto g = maf.gradients();
    CHECK(std::any_of(g.end() - 10, g.end(), [](T v) { return v != T(0); }));
  }
}

TEMPLATE_TEST_CASE("Maf's inverse pass reads a strided batch as it reads a contiguous one",
                   "[bijectors][maf]", float, double) {
  // The elementwise part runs flat over contiguous columns and column by column otherwise: the rows
  // of a larger matrix (outer stride 7) give the same u, log-det and gradients, bit for bit.
  using T = TestType;
  Rng rng(43);
  MafOptions<T> options;
  options.hidden = {24, 24};
  Maf<T> maf(3, options);
  const Matrix<T> big = test::random_batch<T>(7, 50, rng);
  const Matrix<T> x = big.topRows(3), g = test::random_batch<T>(3, 50, rng);
  Matrix<T> u_contiguous, u_strided, gx_contiguous, gx_strided;
  RowVector<T> ld_contiguous, ld_strided;
  maf.inverse_and_log_det(x, u_contiguous, ld_contiguous);
  zero_gradients(maf);
  maf.backward(g, RowVector<T>::Ones(50), gx_contiguous);
  const std::vector<T> grads_contiguous(maf.gradients().begin(), maf.gradients().end());
  maf.inverse_and_log_det(big.topRows(3), u_strided, ld_strided);
  zero_gradients(maf);
  maf.backward(g, RowVector<T>::Ones(50), gx_strided);
  CHECK(u_strided == u_contiguous);
  CHECK(ld_strided == ld_contiguous);
  CHECK(gx_strided == gx_contiguous);
  CHECK(std::vector<T>(maf.gradients().begin(), maf.gradients().end()) == grads_contiguous);
}

TEST_CASE("Maf on one dimension is Affine with learnable constants", "[bijectors][maf]") {
  Rng rng(43);
  for (const auto kind : {LogScaleGuardKind::none, LogScaleGuardKind::soft_clamp}) {
    CAPTURE(int(kind));
    MafOptions<double> options;
    options.hidden = {4};
    options.guard = {kind, 2.0};
    Maf<double> maf(1, options);
    test::randomise_parameters(maf, rng, 0.8);
    // with the last weights zero, MADE's outputs are the last biases: μ = b(0), a = b(1)
    Mlp<double>& mlp = maf.made().mlp();
    mlp.weight(1).setZero();
    const double mu = mlp.bias(1)(0), a = mlp.bias(1)(1);
    const double alpha = kind == LogScaleGuardKind::none ? a : 2.0 * std::tanh(a / 2.0);
    const double slope = kind == LogScaleGuardKind::none ? 1.0 : 1.0 - std::pow(std::tanh(a / 2.0), 2);
    Affine<double> affine(Vector<double>::Constant(1, alpha), Vector<double>::Constant(1, mu));

    const Matrix<double> z = test::random_batch<double>(1, 6, rng);
    const Matrix<double> w = test::random_batch<double>(1, 6, rng);
    const RowVector<double> v = test::random_batch<double>(1, 6, rng);
    const std::ptrdiff_t bias_at = mlp.bias(1).data() - maf.parameters().data();
    for (const bool sampling : {true, false}) {
      CAPTURE(sampling);
      const auto [x, ld] = sampling ? forward_and_log_det(maf, z) : inverse_and_log_det(maf, z);
      const auto [x_affine, ld_affine] =
          sampling ? forward_and_log_det(affine, z) : inverse_and_log_det(affine, z);
      CHECK((x - x_affine).cwiseAbs().maxCoeff() < 1e-13);
      CHECK((ld - ld_affine).cwiseAbs().maxCoeff() < 1e-13);
      // gradients: ∂/∂μ = Affine's ∂/∂b, ∂/∂a = Affine's ∂/∂s · guard'(a)
      zero_gradients(maf);
      zero_gradients(affine);
      const Matrix<double> grad_u = backward(maf, w, v);
      const Matrix<double> grad_u_affine = backward(affine, w, v);
      CHECK((grad_u - grad_u_affine).cwiseAbs().maxCoeff() < 1e-12);
      CHECK(maf.gradients()[std::size_t(bias_at)] == Approx(affine.gradients()[1]).epsilon(1e-12));
      CHECK(maf.gradients()[std::size_t(bias_at + 1)] ==
            Approx(affine.gradients()[0] * slope).epsilon(1e-12));
    }
  }
}

TEST_CASE("Maf on two dimensions matches its closed form", "[bijectors][maf]") {
  Rng rng(47);
  for (const bool reversed : {false, true}) {
    CAPTURE(reversed);
    MafOptions<double> options;
    options.hidden = {};  // MADE is one masked linear layer: outputs [μ0, μ1, a0, a1] = W x + b
    options.guard.kind = LogScaleGuardKind::none;
    options.order = reversed ? InputOrder::reversed() : InputOrder::identity();
    Maf<double> maf(2, options);
    test::randomise_parameters(maf, rng, 0.5);
    const auto w = maf.made().mlp().weight(0);
    const auto b = maf.made().mlp().bias(0);
    const Index first = reversed ? 1 : 0, second = 1 - first;  // generated first / second
    const Matrix<double> u = test::random_batch<double>(2, 5, rng);
    const auto [x, ld] = forward_and_log_det(maf, u);
    for (Index j = 0; j < u.cols(); ++j) {
      // x_first = u e^{a} + μ with constant μ, a; x_second's μ, a are linear in x_first
      const double x_first = u(first, j) * std::exp(b(2 + first)) + b(first);
      const double a_second = w(2 + second, first) * x_first + b(2 + second);
      const double x_second = u(second, j) * std::exp(a_second) + w(second, first) * x_first + b(second);
      CHECK(x(first, j) == Approx(x_first).epsilon(1e-12));
      CHECK(x(second, j) == Approx(x_second).epsilon(1e-12));
      CHECK(ld(j) == Approx(b(2 + first) + a_second).epsilon(1e-12));
    }
    const auto [back, ld_back] = inverse_and_log_det(maf, x);
    CHECK((back - u).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((ld_back + ld).cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("Maf rejects bad arguments", "[bijectors][maf][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(Maf<double>(0), Contains("Maf") && Contains("dim must be at least 1, got 0"));
  MafOptions<double> small;
  small.hidden = {3, 8};
  CHECK_THROWS_WITH(Maf<double>(6, small),
                    Contains("Maf") && Contains("hidden layer 1 has 3 units, fewer than D − 1 = 5"));
  MafOptions<double> bad_order;
  bad_order.order = InputOrder::permutation({0, 2, 2});
  CHECK_THROWS_WITH(Maf<double>(3, bad_order), Contains("Maf") && Contains("entry 2 is 2"));
  MafOptions<double> bad_guard;
  bad_guard.guard.bound = 0.0;
  CHECK_THROWS_WITH(Maf<double>(3, bad_guard), Contains("Maf") && Contains("bound") && Contains("got 0"));
  bad_guard.guard.bound = std::nan("");
  CHECK_THROWS_WITH(Maf<double>(3, bad_guard), Contains("Maf") && Contains("nan"));

  MafOptions<double> options;
  options.hidden = {4};
  Maf<double> maf(3, options);
  CHECK_THROWS_WITH(backward(maf, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)),
                    Contains("Maf::backward") && Contains("no forward or inverse pass"));
  CHECK_THROWS_WITH(forward(maf, Matrix<double>::Zero(2, 4)),
                    Contains("Maf::forward_and_log_det") && Contains("3 rows"));
  CHECK_THROWS_WITH(inverse(maf, Matrix<double>::Zero(4, 4)),
                    Contains("Maf::inverse_and_log_det") && Contains("3 rows"));
  CHECK_THROWS_WITH(inverse(maf, Matrix<double>::Zero(3, 0)),
                    Contains("Maf::inverse_and_log_det") && Contains("empty batch"));
  Matrix<double> with_nan = Matrix<double>::Zero(3, 2);
  with_nan(1, 0) = std::nan("");
  CHECK_THROWS_WITH(forward(maf, with_nan), Contains("Maf::forward_and_log_det") && Contains("non-finite") &&
                                                Contains("nan") && Contains("(1, 0)"));
  with_nan(1, 0) = INFINITY;
  CHECK_THROWS_WITH(inverse(maf, with_nan), Contains("Maf::inverse_and_log_det") && Contains("inf"));

  inverse(maf, Matrix<double>::Ones(3, 2));
  CHECK_THROWS_WITH(backward(maf, Matrix<double>::Zero(3, 5), RowVector<double>::Zero(5)),
                    Contains("Maf::backward") && Contains("3x2") && Contains("3x5"));
  CHECK_THROWS_WITH(backward(maf, Matrix<double>::Zero(3, 2), RowVector<double>::Zero(4)),
                    Contains("Maf::backward") && Contains("1x2"));

  // without a guard, a huge log-scale overflows exp: an error, not a silent inf or NaN
  MafOptions<double> unguarded;
  unguarded.hidden = {};
  unguarded.guard.kind = LogScaleGuardKind::none;
  Maf<double> overflowing(2, unguarded);
  overflowing.made().mlp().bias(0).tail(2).setConstant(800.0);  // a = 800
  CHECK_THROWS_WITH(forward(overflowing, Matrix<double>::Ones(2, 3)),
                    Contains("Maf::forward_and_log_det") && Contains("non-finite") && Contains("overflowed"));
  // and a pass that failed leaves nothing to differentiate
  CHECK_THROWS_AS(backward(overflowing, Matrix<double>::Zero(2, 3), RowVector<double>::Zero(3)),
                  std::logic_error);
  overflowing.made().mlp().bias(0).tail(2).setConstant(-800.0);
  CHECK_THROWS_WITH(inverse(overflowing, Matrix<double>::Ones(2, 3)),
                    Contains("Maf::inverse_and_log_det") && Contains("non-finite"));
}

// ---- with a context ------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("A conditional Maf conforms for every order, guard and initialisation, per context",
                   "[bijectors][maf][conditional]", float, double) {
  using T = TestType;
  Rng rng(71);
  const Index context_dim = 2;
  test::for_each_autoregressive_case<T>(maf_order, 0, [&](Index d, MafOptions<T> options) {
    if (options.guard.kind == LogScaleGuardKind::clamp) return;  // kinks: covered unconditionally
    options.context_dim = context_dim;
    Maf<T> maf(d, options);
    REQUIRE(maf.context_dim() == context_dim);
    if (!options.identity_init) test::randomise_parameters(maf, rng, 0.4);
    const Matrix<T> z = test::random_batch<T>(d, 3, rng);
    const Matrix<T> context = test::random_batch<T>(context_dim, 3, rng);  // one per column
    const auto report = testing::check_conformance(maf, z, context, rng);
    INFO(report.summary());
    CHECK(report.ok());
  });
}

TEMPLATE_TEST_CASE("A conditional Maf is autoregressive for every context", "[bijectors][maf][conditional]",
                   float, double) {
  using T = TestType;
  Rng rng(73);
  const Index d = 4, n = 16;
  for (const auto& order : {InputOrder::identity(), InputOrder::permutation({2, 0, 3, 1})}) {
    MafOptions<T> options;
    options.hidden = {9, 7};
    options.order = order;
    options.context_dim = 3;
    Maf<T> maf(d, options);
    test::randomise_parameters(maf, rng, 0.5);
    // hidden biases above 1: no unit is dead on the whole batch, so every dependency shows
    for (Index l = 0; l + 1 < maf.made().mlp().layers(); ++l)
      maf.made().mlp().bias(l).array() = maf.made().mlp().bias(l).array().abs() + T(1);
    const Matrix<T> x = test::random_batch<T>(d, n, rng);
    for (int draw = 0; draw < 3; ++draw) {
      const Matrix<T> context = test::random_batch<T>(3, n, rng, 2.0);
      Matrix<T> u, moved;
      RowVector<T> ld, ld_moved;
      maf.inverse_and_log_det(x, context, u, ld);
      // u_i depends on x_j only for j = i or j generated before i
      const auto& made_order = maf.made().order();
      for (Index kj = 0; kj < d; ++kj) {
        Matrix<T> perturbed = x;
        perturbed.row(made_order[std::size_t(kj)]).array() += T(2);
        maf.inverse_and_log_det(perturbed, context, moved, ld_moved);
        for (Index ki = 0; ki < kj; ++ki) {
          const Index i = made_order[std::size_t(ki)];
          CHECK((moved.row(i).array() == u.row(i).array()).all());  // bitwise
        }
        for (Index ki = kj; ki < d; ++ki)  // the dimension itself and the later ones move
          CHECK((moved.row(made_order[std::size_t(ki)]).array() != u.row(made_order[std::size_t(ki)]).array())
                    .any());
      }
      // the context moves every dimension (each one's shift and scale read it)
      Matrix<T> other = context;
      other.row(draw).array() += T(1);
      maf.inverse_and_log_det(x, other, moved, ld_moved);
      for (Index i = 0; i < d; ++i) CHECK((moved.row(i).array() != u.row(i).array()).any());
    }
  }
}

TEST_CASE("A conditional Maf with a zero context weight ignores the context",
          "[bijectors][maf][conditional]") {
  Rng rng(75);
  Maf<double> maf(3, MafOptions<double>{.hidden = {6, 6}, .context_dim = 2});
  test::randomise_parameters(maf, rng, 0.4);
  const Matrix<double> x = test::random_batch<double>(3, 5, rng);
  const Matrix<double> context = test::random_batch<double>(2, 5, rng);
  const auto [u, ld] = inverse_and_log_det(maf, x, context);
  maf.made().mlp().context_weight().setZero();
  const auto [u0, ld0] = inverse_and_log_det(maf, x, context);
  CHECK((u0 - u).cwiseAbs().maxCoeff() > 1e-6);  // the weight mattered
  const auto [u1, ld1] = inverse_and_log_det(maf, x, test::random_batch<double>(2, 5, rng));
  CHECK((u1.array() == u0.array()).all());  // and only it
  CHECK((ld1.array() == ld0.array()).all());
}

TEST_CASE("A chain passes its context to a conditional Maf and none to an unconditional one",
          "[bijectors][maf][conditional]") {
  Rng rng(77);
  Maf<double> conditional(3, MafOptions<double>{.hidden = {6, 6}, .context_dim = 2});
  Maf<double> plain(3, MafOptions<double>{.hidden = {6, 6}, .order = InputOrder::reversed()});
  test::randomise_parameters(conditional, rng, 0.4);
  test::randomise_parameters(plain, rng, 0.4);
  Chain chain(test::ConditionalAffine<double>(3, 2), conditional, plain);
  test::randomise_parameters(chain.part<0>(), rng, 0.3);
  CHECK(chain.context_dim() == 2);
  const Matrix<double> z = test::random_batch<double>(3, 4, rng);
  const Matrix<double> context = test::random_batch<double>(2, 4, rng);
  const auto report = testing::check_conformance(chain, z, context, rng);
  INFO(report.summary());
  CHECK(report.ok());
}

TEST_CASE("Maf's passes reject missing, unexpected and misshapen contexts", "[bijectors][maf][errors]") {
  using Catch::Contains;
  Maf<double> conditional(3, MafOptions<double>{.hidden = {4}, .context_dim = 2});
  Maf<double> plain(3, MafOptions<double>{.hidden = {4}});
  const Matrix<double> x = Matrix<double>::Zero(3, 4);
  Matrix<double> out, grad_in;
  RowVector<double> ld;
  CHECK_THROWS_WITH(conditional.forward_and_log_det(x, out, ld),
                    Contains("Maf::forward_and_log_det") && Contains("context_dim 2"));
  CHECK_THROWS_WITH(conditional.inverse_and_log_det(x, out, ld),
                    Contains("Maf::inverse_and_log_det") && Contains("context_dim 2"));
  CHECK_THROWS_WITH(plain.inverse_and_log_det(x, Matrix<double>::Zero(2, 4), out, ld),
                    Contains("Maf::inverse_and_log_det") && Contains("unconditional") && Contains("2x4"));
  CHECK_THROWS_WITH(plain.forward_and_log_det(x, Matrix<double>::Zero(1, 4), out, ld),
                    Contains("Maf::forward_and_log_det") && Contains("unconditional") && Contains("1x4"));
  CHECK_THROWS_WITH(
      conditional.inverse_and_log_det(x, Matrix<double>::Zero(3, 4), out, ld),
      Contains("Maf::inverse_and_log_det") && Contains("expected a 2x4 context") && Contains("got 3x4"));
  CHECK_THROWS_WITH(conditional.forward_and_log_det(x, Matrix<double>::Zero(2, 3), out, ld),
                    Contains("Maf::forward_and_log_det") && Contains("got 2x3"));
  Matrix<double> bad = Matrix<double>::Zero(2, 4);
  bad(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(conditional.inverse_and_log_det(x, bad, out, ld),
                    Contains("Maf::inverse_and_log_det") && Contains("context"));
  const MafOptions<double> negative{.hidden = {4}, .context_dim = -3};
  CHECK_THROWS_WITH(Maf<double>(3, negative), Contains("Maf") && Contains("context_dim is -3"));
  CHECK_THROWS_WITH(make_iaf<double>(3, negative), Contains("Iaf") && Contains("context_dim is -3"));

  conditional.inverse_and_log_det(x, Matrix<double>::Zero(2, 4), out, ld);
  const RowVector<double> grad_ld = RowVector<double>::Zero(4);
  CHECK_THROWS_WITH(conditional.backward(x, grad_ld, grad_in),
                    Contains("Maf::backward") && Contains("context_dim 2"));
  Matrix<double> grad_context = Matrix<double>::Zero(2, 5);
  CHECK_THROWS_WITH(conditional.backward(x, grad_ld, grad_in, grad_context),
                    Contains("Maf::backward") && Contains("expected a 2x4") && Contains("got 2x5"));
  plain.inverse_and_log_det(x, out, ld);
  grad_context.setZero(2, 4);
  CHECK_THROWS_WITH(plain.backward(x, grad_ld, grad_in, grad_context),
                    Contains("Maf::backward") && Contains("unconditional"));

  // an IAF names its own functions
  Iaf<double> iaf = make_iaf<double>(3, MafOptions<double>{.hidden = {4}, .context_dim = 2});
  CHECK_THROWS_WITH(iaf.forward_and_log_det(x, out, ld),
                    Contains("Iaf::forward_and_log_det") && Contains("Iaf is"));
  CHECK_THROWS_WITH(iaf.forward_and_log_det(x, Matrix<double>::Zero(2, 1), out, ld),
                    Contains("Iaf::forward_and_log_det") && Contains("got 2x1"));
}
