#include "knead/bijectors/dynamic_chain.hpp"

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
  const Chain fixed(a, Invert(s));
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
