#include "knead/transformers/additive.hpp"

#include "properties.hpp"
#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("AdditiveTransformer maps, inverts and differentiates as x = u + t",
                   "[transformers][additive]", float, double) {
  using T = TestType;
  Rng rng(7);
  for (const Index r : {1, 4}) {
    CAPTURE(r);
    test::check_transformer_properties(AdditiveTransformer<T>(), test::random_batch<T>(r, 6, rng),
                                       test::random_batch<T>(r, 6, rng), rng);
  }
}

TEMPLATE_TEST_CASE("AdditiveTransformer is a shift with zero log-det", "[transformers][additive]", float,
                   double) {
  using T = TestType;
  Matrix<T> t(2, 2), u(2, 2), x, ld;
  t << T(1), T(-2), T(0.5), T(3);
  u << T(4), T(5), T(6), T(7);
  typename AdditiveTransformer<T>::Workspace ws;
  AdditiveTransformer<T>().forward(ParamBlocks<const T>::stacked(t, 2), u, x, ld, ws);
  CHECK(x(0, 0) == T(5));
  CHECK(x(1, 1) == T(10));
  CHECK(ld.isZero(0));
  CHECK(AdditiveTransformer<T>::params_per_dim() == 1);
}
