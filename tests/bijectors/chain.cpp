#include "knead/bijectors/chain.hpp"

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
  const Chain chain(Scale<double>(two, Vector<double>()), Shift<double>(Vector<double>(), one));
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
