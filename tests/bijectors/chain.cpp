#include "knead/bijectors/chain.hpp"

#include "conditional_examples.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/invert.hpp"
#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("Chain of affine maps conforms and lays parameters out contiguously", "[bijectors][chain]",
                   float, double) {
  Rng rng(11);
  Chain chain(Affine<TestType>(3), Invert(Scale<TestType>(3)), Shift<TestType>(3));
  STATIC_REQUIRE(check_bijector<decltype(chain)>());
  CHECK(chain.num_parameters() == 6 + 3 + 3);
  test::randomise_parameters(chain, rng, 0.5);
  // the parts see the chain's buffer: writing through the chain changes the part
  CHECK(chain.template part<2>().parameters().data() == chain.parameters().data() + 9);
  test::require_conformance(chain, test::random_batch<TestType>(3, 5, rng), rng);

  // copies are deep and keep the layout
  auto copy = chain;
  CHECK(copy.parameters().data() != chain.parameters().data());
  CHECK(copy.template part<2>().parameters().data() == copy.parameters().data() + 9);
  copy.parameters()[0] += TestType(1);
  CHECK(copy.parameters()[0] != chain.parameters()[0]);
  test::require_conformance(copy, test::random_batch<TestType>(3, 5, rng), rng);
}

TEST_CASE("Chain applies its parts in list order in the forward direction", "[bijectors][chain]") {
  Vector<double> two(1), one(1), zero(1);
  two << std::log(2.0);
  one << 1.0;
  zero << 0.0;
  Chain chain(Scale<double>(two, Vector<double>()), Shift<double>(Vector<double>(), one));
  Matrix<double> u(1, 1);
  u << 3.0;
  CHECK(forward(chain, u)(0, 0) == Approx(7.0));  // scale first: 2·3 + 1
  CHECK(inverse(chain, forward(chain, u))(0, 0) == Approx(3.0));
  CHECK(forward_log_det(chain, u)(0) == Approx(std::log(2.0)));
}

TEST_CASE("Invert swaps directions and log-det signs", "[bijectors][invert]") {
  Rng rng(5);
  Affine<double> affine(2);
  test::randomise_parameters(affine, rng, 0.8);
  Invert inverted(affine);
  const Matrix<double> z = test::random_batch<double>(2, 3, rng);
  CHECK((forward(inverted, z) - inverse(affine, z)).norm() < 1e-12);
  CHECK((forward_log_det(inverted, z) - inverse_log_det(affine, z)).norm() < 1e-12);
  test::require_conformance(inverted, z, rng);
}

TEST_CASE("Chain rejects parts of different dimensions", "[bijectors][chain][errors]") {
  CHECK_THROWS_WITH(Chain(Affine<double>(2), Shift<double>(3)),
                    Catch::Contains("Chain") && Catch::Contains("dim 3"));
}

// ---- conditional parts ------------------------------------------------------------------------

namespace {

using test::ConditionalAffine;

template <class B>
B randomised(B b, Rng& rng, double scale = 0.5) {
  test::randomise_parameters(b, rng, scale);
  return b;
}

}  // namespace

TEST_CASE("A Chain of conditional and unconditional parts passes the context to the conditional ones",
          "[bijectors][chain][conditional]") {
  Rng rng(31);
  const Index d = 2, c = 3, n = 5;
  auto first = randomised(ConditionalAffine<double>(d, c), rng);
  auto middle = randomised(Affine<double>(d), rng);
  auto last = randomised(ConditionalAffine<double>(d, c), rng);
  Chain chain(first, middle, last);
  using C = decltype(chain);
  STATIC_REQUIRE(check_conditional_bijector<C>());
  STATIC_REQUIRE(!Bijector<C>);  // no call without a context
  CHECK(chain.context_dim() == c);

  const Matrix<double> u = test::random_batch<double>(d, n, rng);
  const Matrix<double> context = test::random_batch<double>(c, n, rng);
  // the composition by hand: the context to both conditional parts, none to the affine one
  const auto a = forward_and_log_det(first, u, context);
  const auto b = forward_and_log_det(middle, a.value);
  const auto e = forward_and_log_det(last, b.value, context);
  const auto x = forward_and_log_det(chain, u, context);
  CHECK(x.value == e.value);
  CHECK((x.log_det - (a.log_det + b.log_det + e.log_det)).cwiseAbs().maxCoeff() < 1e-14);
  const auto back = inverse_and_log_det(chain, x.value, context);
  CHECK((back.value - u).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((back.log_det + x.log_det).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(test::conditional_log_det_error(chain, Direction::forward, u, context) < 1e-7);

  // ∂L/∂c sums the two conditional parts' contributions; θ and u as usual
  const Matrix<double> w = test::random_batch<double>(d, n, rng);
  const RowVector<double> v = test::random_batch<double>(1, n, rng);
  for (const Direction direction : {Direction::forward, Direction::inverse}) {
    const test::VjpErrors err = test::conditional_vjp_errors(chain, direction, u, context, w, v);
    CHECK(err.input < 1e-7);
    CHECK(err.context < 1e-7);
    CHECK(err.parameters < 1e-7);
  }
}

TEST_CASE("Invert of a conditional bijector swaps its directions with the same context",
          "[bijectors][invert][conditional]") {
  Rng rng(32);
  auto inner = randomised(ConditionalAffine<double>(3, 2), rng);
  Invert inverted(inner);
  STATIC_REQUIRE(check_conditional_bijector<decltype(inverted)>());
  CHECK(inverted.context_dim() == 2);
  const Matrix<double> z = test::random_batch<double>(3, 4, rng);
  const Matrix<double> context = test::random_batch<double>(2, 4, rng);
  const auto f = forward_and_log_det(inverted, z, context);
  const auto i = inverse_and_log_det(inner, z, context);
  CHECK(f.value == i.value);
  CHECK(f.log_det == i.log_det);
  const Matrix<double> w = test::random_batch<double>(3, 4, rng);
  const RowVector<double> v = test::random_batch<double>(1, 4, rng);
  for (const Direction direction : {Direction::forward, Direction::inverse}) {
    const test::VjpErrors err = test::conditional_vjp_errors(inverted, direction, z, context, w, v);
    CHECK(err.input < 1e-7);
    CHECK(err.context < 1e-7);
    CHECK(err.parameters < 1e-7);
  }
}

TEST_CASE("Chain rejects conditional parts that read contexts of different sizes",
          "[bijectors][chain][conditional][errors]") {
  CHECK_THROWS_WITH(Chain(ConditionalAffine<double>(2, 3), ConditionalAffine<double>(2, 1)),
                    Catch::Contains("Chain") && Catch::Contains("1 rows") && Catch::Contains("3"));
  Chain chain(ConditionalAffine<double>(2, 3), Affine<double>(2));
  CHECK_THROWS_WITH(
      forward_and_log_det(chain, Matrix<double>::Zero(2, 4), Matrix<double>::Zero(3, 5)),
      Catch::Contains("Chain::forward_and_log_det") && Catch::Contains("3x4") && Catch::Contains("3x5"));
}

TEST_CASE("Chain initialises its parts in the density direction, each on the batch it receives",
          "[bijectors][chain][initialize]") {
  Rng rng(33);
  auto affine = randomised(Affine<double>(2), rng);
  Chain chain(test::MeanShift<double>(2), affine, test::MeanShift<double>(2));
  CHECK(needs_initialize(chain));
  const Matrix<double> x = test::shifted_normal(2, 6, rng, 3.0);
  chain.initialize(x);
  const auto& last = chain.part<2>();
  const auto& first = chain.part<0>();
  REQUIRE(last.initialized_on.size() == 1);
  REQUIRE(first.initialized_on.size() == 1);
  CHECK(last.initialized_on[0] == x);
  // the first part sees x after the last part's inverse (with its new shift) and the affine's
  const Matrix<double> centred = x.colwise() - x.rowwise().mean();
  const Matrix<double> expected = inverse(affine, centred);
  CHECK((first.initialized_on[0] - expected).cwiseAbs().maxCoeff() < 1e-12);
  // after initialisation there is no pass to differentiate
  Matrix<double> grad_in;
  CHECK_THROWS_AS(chain.backward(x, RowVector<double>::Zero(6), grad_in), std::logic_error);

  // without a hook nothing runs and nothing changes
  Chain plain(affine, Shift<double>(2));
  CHECK_FALSE(needs_initialize(plain));
  const std::vector<double> before = test::copy_of(plain.parameters());
  plain.initialize(x);
  CHECK(test::copy_of(plain.parameters()) == before);
}

TEST_CASE("A conditional Chain initialises its parts with the batch and the context",
          "[bijectors][chain][initialize][conditional]") {
  Rng rng(34);
  Chain chain(ConditionalAffine<double>(2, 1), test::MeanShift<double>(2));
  const Matrix<double> x = test::shifted_normal(2, 5, rng, -2.0);
  const Matrix<double> context = test::random_batch<double>(1, 5, rng);
  chain.initialize(x, context);
  REQUIRE(chain.part<0>().initialized_on.size() == 1);
  CHECK(chain.part<1>().initialized_on[0] == x);
  CHECK((chain.part<0>().initialized_on[0] - (x.colwise() - x.rowwise().mean())).cwiseAbs().maxCoeff() <
        1e-12);
  CHECK(chain.part<0>().initialized_context[0] == context);
}
