#include "knead/core/conditional.hpp"

#include "conditional_examples.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "support.hpp"

using namespace knead;
using test::ConditionalAffine;

namespace {

/// A type with every piece of a conditional bijector but the context's backward.
struct NoContextBackward {
  using Scalar = double;
  [[nodiscard]] Index dim() const { return 1; }
  [[nodiscard]] Index context_dim() const { return 1; }
  void forward_and_log_det(MatrixCRef<double>, MatrixCRef<double>, Matrix<double>&,
                           RowVector<double>&) const {}
  void inverse_and_log_det(MatrixCRef<double>, MatrixCRef<double>, Matrix<double>&,
                           RowVector<double>&) const {}
  [[nodiscard]] Index num_parameters() const { return 0; }
  std::span<double> parameters() { return {}; }
  std::span<double> gradients() { return {}; }
  void bind_parameters(const std::shared_ptr<ParameterStorage<double>>&, Index) {}
};

ConditionalAffine<double> random_conditional_affine(Index d, Index c, Rng& rng) {
  ConditionalAffine<double> b(d, c);
  test::randomise_parameters(b, rng, 0.5);
  return b;
}

}  // namespace

TEST_CASE("The conditional concepts tell conditional bijectors from the others", "[core][conditional]") {
  STATIC_REQUIRE(ConditionalBijector<ConditionalAffine<double>>);
  STATIC_REQUIRE(!ConditionalBijector<Affine<double>>);
  STATIC_REQUIRE(!ConditionalBijector<NoContextBackward>);
  STATIC_REQUIRE(HasConditionalForward<NoContextBackward>);
  STATIC_REQUIRE(!HasConditionalBackward<NoContextBackward>);
  STATIC_REQUIRE(FlowBijector<Affine<double>>);
  STATIC_REQUIRE(FlowBijector<ConditionalAffine<double>>);
  // an unconditional bijector carries nothing for contexts
  STATIC_REQUIRE(!HasContextDim<Affine<double>>);
  CHECK(context_dim(Affine<double>(2)) == 0);
  CHECK(context_dim(ConditionalAffine<double>(2, 3)) == 3);
}

TEST_CASE("A conditional bijector round-trips with its context and its log-dets match its Jacobian",
          "[core][conditional]") {
  Rng rng(3);
  const Index d = 3, c = 2, n = 5;
  ConditionalAffine<double> b = random_conditional_affine(d, c, rng);
  const Matrix<double> u = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(c, n, rng);
  const auto [x, forward_log_det] = forward_and_log_det(b, u, context);
  const auto [back, inverse_log_det] = inverse_and_log_det(b, x, context);
  CHECK((back - u).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((forward_log_det + inverse_log_det).cwiseAbs().maxCoeff() < 1e-12);
  // the context changes the map: another context gives other values
  CHECK((forward_and_log_det(b, u, Matrix<double>(context * 2.0)).value - x).cwiseAbs().maxCoeff() > 1e-3);
  CHECK(test::conditional_log_det_error(b, Direction::forward, u, context) < 1e-7);
  CHECK(test::conditional_log_det_error(b, Direction::inverse, x, context) < 1e-7);
}

TEST_CASE("A conditional bijector's backward matches finite differences in u, θ and the context",
          "[core][conditional][gradients]") {
  Rng rng(4);
  const Index d = 3, c = 2, n = 4;
  ConditionalAffine<double> b = random_conditional_affine(d, c, rng);
  const Matrix<double> in = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(c, n, rng);
  const Matrix<double> w = test::random_batch<double>(d, n, rng);
  const RowVector<double> v = test::random_batch<double>(1, n, rng);
  for (const Direction direction : {Direction::forward, Direction::inverse}) {
    INFO((direction == Direction::forward ? "forward" : "inverse"));
    const test::VjpErrors e = test::conditional_vjp_errors(b, direction, in, context, w, v);
    CHECK(e.input < 1e-7);
    CHECK(e.context < 1e-7);
    CHECK(e.parameters < 1e-7);
  }

  // backward adds into grad_context: a second backward of the same pass doubles it
  Matrix<double> out, grad_in;
  RowVector<double> log_det;
  b.forward_and_log_det(in, context, out, log_det);
  Matrix<double> once = Matrix<double>::Zero(c, n);
  b.backward(w, v, grad_in, once);
  Matrix<double> twice = once;
  b.backward(w, v, grad_in, twice);
  CHECK((twice - 2 * once).cwiseAbs().maxCoeff() < 1e-12);
  const auto g = knead::backward(b, w, v, n);
  CHECK((g.context - once).cwiseAbs().maxCoeff() == 0);
  CHECK((g.input - grad_in).cwiseAbs().maxCoeff() == 0);
}

TEST_CASE("A batch with a different context per column equals the samples passed one by one",
          "[core][conditional]") {
  Rng rng(5);
  const Index d = 2, c = 3, n = 6;
  ConditionalAffine<double> b = random_conditional_affine(d, c, rng);
  const Matrix<double> u = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(c, n, rng);
  for (const Direction direction : {Direction::forward, Direction::inverse}) {
    Matrix<double> batch_out, one_out;
    RowVector<double> batch_log_det, one_log_det;
    test::conditional_pass(b, direction, u, context, batch_out, batch_log_det);
    for (Index j = 0; j < n; ++j) {
      test::conditional_pass(b, direction, u.col(j), context.col(j), one_out, one_log_det);
      CHECK((batch_out.col(j) - one_out).cwiseAbs().maxCoeff() < 1e-14);
      CHECK(std::abs(batch_log_det(j) - one_log_det(0)) < 1e-14);
    }
  }
}

TEST_CASE("initialize is a no-op for a bijector without a hook and calls the hook otherwise",
          "[core][initialize]") {
  Rng rng(6);
  Affine<double> affine(2);
  test::randomise_parameters(affine, rng, 0.5);
  const std::vector<double> before = test::copy_of(affine.parameters());
  const Matrix<double> x = test::random_batch<double>(2, 4, rng);
  knead::initialize(affine, x);
  CHECK(test::copy_of(affine.parameters()) == before);
  CHECK_FALSE(needs_initialize(affine));

  test::MeanShift<double> shift(2);
  CHECK(needs_initialize(shift));
  knead::initialize(shift, x);
  REQUIRE(shift.initialized_on.size() == 1);
  CHECK(shift.initialized_on[0] == x);
  // an unconditional hook given a context gets the batch alone
  knead::initialize(shift, x, Matrix<double>::Zero(3, 4));
  CHECK(shift.initialized_on.size() == 2);

  ConditionalAffine<double> conditional(2, 3);
  const Matrix<double> context = test::random_batch<double>(3, 4, rng);
  knead::initialize(conditional, x, context);
  REQUIRE(conditional.initialized_context.size() == 1);
  CHECK(conditional.initialized_context[0] == context);
}

TEST_CASE("check_context names the function and both shapes", "[core][conditional][errors]") {
  CHECK_NOTHROW(detail::check_context("f", Matrix<double>::Zero(2, 3), 2, 3));
  CHECK_THROWS_WITH(detail::check_context("f", Matrix<double>::Zero(2, 4), 2, 3),
                    Catch::Contains("f: ") && Catch::Contains("2x3") && Catch::Contains("2x4"));
  ConditionalAffine<double> b(2, 2);
  Matrix<double> out;
  RowVector<double> log_det;
  CHECK_THROWS_AS(b.forward_and_log_det(Matrix<double>::Zero(2, 3), Matrix<double>::Zero(1, 3), out, log_det),
                  std::invalid_argument);
}
