#include "knead/bijectors/dynamic_chain.hpp"

#include "conditional_examples.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/invert.hpp"
#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("DynamicChain conforms and agrees with the static Chain", "[bijectors][chain]", float,
                   double) {
  Rng rng(21);
  Affine<TestType> a(4);
  Scale<TestType> s(4);
  test::randomise_parameters(a, rng, 0.5);
  test::randomise_parameters(s, rng, 0.5);
  DynamicChain<TestType> dynamic(4);
  dynamic.push_back(a).push_back(Invert(s));
  Chain fixed(a, Invert(s));
  CHECK(dynamic.num_parameters() == fixed.num_parameters());
  const Matrix<TestType> z = test::random_batch<TestType>(4, 6, rng);
  CHECK((forward(dynamic, z) - forward(fixed, z)).norm() == 0);
  CHECK((inverse_log_det(dynamic, z) - inverse_log_det(fixed, z)).norm() == 0);
  test::require_conformance(dynamic, z, rng);
  CHECK(dynamic.part(0).template target<Affine<TestType>>() != nullptr);
  CHECK(dynamic.part(0).template target<Shift<TestType>>() == nullptr);
}

TEST_CASE("An empty DynamicChain is the identity", "[bijectors][chain]") {
  Rng rng(1);
  DynamicChain<double> empty(3);
  const Matrix<double> z = test::random_batch<double>(3, 2, rng);
  CHECK(forward(empty, z) == z);
  CHECK(forward_log_det(empty, z).norm() == 0);
  CHECK_THROWS_WITH(empty.push_back(Affine<double>(2)),
                    Catch::Contains("push_back") && Catch::Contains("dim 2"));
}

// ---- conditional parts ------------------------------------------------------------------------

TEST_CASE("DynamicChain with conditional parts agrees with the static Chain and its gradients are right",
          "[bijectors][chain][conditional]") {
  Rng rng(41);
  const Index d = 3, c = 2, n = 4;
  test::ConditionalAffine<double> a(d, c), b(d, c);
  Affine<double> affine(d);
  test::randomise_parameters(a, rng, 0.5);
  test::randomise_parameters(b, rng, 0.5);
  test::randomise_parameters(affine, rng, 0.5);
  DynamicChain<double> dynamic(d);
  dynamic.push_back(a).push_back(affine).push_back(Invert(b));
  CHECK(dynamic.context_dim() == c);
  Chain fixed(a, affine, Invert(b));
  const Matrix<double> u = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(c, n, rng);
  const auto dx = forward_and_log_det(dynamic, u, context);
  const auto fx = forward_and_log_det(fixed, u, context);
  CHECK(dx.value == fx.value);
  CHECK(dx.log_det == fx.log_det);
  CHECK(inverse_and_log_det(dynamic, dx.value, context).value ==
        inverse_and_log_det(fixed, fx.value, context).value);
  CHECK((inverse_and_log_det(dynamic, dx.value, context).value - u).cwiseAbs().maxCoeff() < 1e-12);
  const Matrix<double> w = test::random_batch<double>(d, n, rng);
  const RowVector<double> v = test::random_batch<double>(1, n, rng);
  for (const Direction direction : {Direction::forward, Direction::inverse}) {
    const test::VjpErrors err = test::conditional_vjp_errors(dynamic, direction, u, context, w, v);
    CHECK(err.input < 1e-7);
    CHECK(err.context < 1e-7);
    CHECK(err.parameters < 1e-7);
  }

  // a call without a context is refused, naming the conditional part
  CHECK_THROWS_WITH(forward(dynamic, u),
                    Catch::Contains("DynamicChain::forward_and_log_det") && Catch::Contains("part 0") &&
                        Catch::Contains("ConditionalAffine") && Catch::Contains("context"));
  CHECK_THROWS_AS(inverse(dynamic, u), std::invalid_argument);
  // a part reading another context size is refused
  CHECK_THROWS_WITH(dynamic.push_back(test::ConditionalAffine<double>(d, c + 1)),
                    Catch::Contains("push_back") && Catch::Contains("3 rows"));
  // a backward of the other kind than the last pass is refused
  Matrix<double> grad_in;
  forward_and_log_det(dynamic, u, context);
  CHECK_THROWS_AS(dynamic.backward(w, v, grad_in), std::logic_error);
}

TEST_CASE("AnyBijector wraps conditional and unconditional bijectors", "[bijectors][conditional]") {
  Rng rng(42);
  test::ConditionalAffine<double> conditional(2, 1);
  test::randomise_parameters(conditional, rng, 0.5);
  AnyBijector<double> any_conditional(conditional);
  CHECK(any_conditional.context_dim() == 1);
  const Matrix<double> u = test::random_batch<double>(2, 3, rng);
  const Matrix<double> context = test::random_batch<double>(1, 3, rng);
  CHECK(forward(any_conditional, u, context) == forward(conditional, u, context));
  CHECK_THROWS_WITH(forward(any_conditional, u), Catch::Contains("AnyBijector::forward_and_log_det") &&
                                                     Catch::Contains("ConditionalAffine") &&
                                                     Catch::Contains("conditional"));

  // an unconditional bijector ignores a context and adds nothing to its gradient
  Affine<double> affine(2);
  test::randomise_parameters(affine, rng, 0.5);
  AnyBijector<double> any_affine(affine);
  CHECK(any_affine.context_dim() == 0);
  CHECK(forward(any_affine, u, context) == forward(affine, u));
  Matrix<double> x, grad_in, grad_context = Matrix<double>::Constant(1, 3, 7.0);
  RowVector<double> log_det;
  any_affine.forward_and_log_det(u, context, x, log_det);
  any_affine.backward(u, log_det, grad_in, grad_context);
  CHECK(grad_context == Matrix<double>::Constant(1, 3, 7.0));
}

TEST_CASE("DynamicChain initialises its parts in the density direction", "[bijectors][chain][initialize]") {
  Rng rng(43);
  Affine<double> affine(2);
  test::randomise_parameters(affine, rng, 0.5);
  DynamicChain<double> chain(2);
  chain.push_back(test::MeanShift<double>(2)).push_back(affine).push_back(test::MeanShift<double>(2));
  CHECK(chain.needs_initialize());
  const Matrix<double> x = test::shifted_normal(2, 6, rng, 1.5);
  chain.initialize(x);
  const auto* last = chain.part(2).target<test::MeanShift<double>>();
  const auto* first = chain.part(0).target<test::MeanShift<double>>();
  REQUIRE(last != nullptr);
  REQUIRE(first != nullptr);
  CHECK(last->initialized_on.at(0) == x);
  const Matrix<double> expected = inverse(affine, Matrix<double>(x.colwise() - x.rowwise().mean()));
  CHECK((first->initialized_on.at(0) - expected).cwiseAbs().maxCoeff() < 1e-12);

  // only the parts up to the last one needing it (in the density direction) see the batch
  DynamicChain<double> partly(2);
  partly.push_back(affine).push_back(test::MeanShift<double>(2));
  partly.initialize(x);
  CHECK(partly.part(1).target<test::MeanShift<double>>()->initialized_on.size() == 1);
  DynamicChain<double> none(2);
  none.push_back(affine);
  CHECK_FALSE(none.needs_initialize());
}
