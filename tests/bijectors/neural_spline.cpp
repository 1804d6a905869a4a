#include "knead/bijectors/neural_spline.hpp"

#include <cmath>

#include "support.hpp"

using namespace knead;

TEST_CASE("Neural spline layers are named after the spline and size their conditioners by its bins",
          "[bijectors][neural_spline]") {
  STATIC_REQUIRE(RationalQuadraticCoupling<double>::name() == "RationalQuadraticCoupling");
  STATIC_REQUIRE(RationalQuadraticAutoregressive<double>::name() == "RationalQuadraticAutoregressive");
  CouplingOptions<double> options;
  options.hidden = {7};
  options.spline.bins = 5;
  options.spline.bound = 4.0;
  const RationalQuadraticCoupling<double> coupling({1, 0, 0}, options);
  // 2 transformed dimensions of 3·5 − 1 parameters each
  CHECK(coupling.conditioner().sizes() == std::vector<Index>{1, 7, 28});
  CHECK(coupling.transformer().options().bound == 4.0);
  RationalQuadraticOptions<double> spline;
  spline.bins = 3;
  const RationalQuadraticAutoregressive<double> ar(4, RationalQuadraticTransformer<double>(spline), {{6}});
  CHECK(ar.made().params_per_dim() == 8);
}

TEMPLATE_TEST_CASE("Identity-initialised neural spline layers start as the identity",
                   "[bijectors][neural_spline]", float, double) {
  using T = TestType;
  Rng rng(13);
  const double tolerance = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  CouplingOptions<T> options;
  options.identity_init = true;
  RationalQuadraticCoupling<T> coupling({0, 1, 0, 1}, options);
  RationalQuadraticAutoregressive<T> ar(4, RationalQuadraticTransformer<T>(), {{8}, {}, true, 0});
  const Matrix<T> z = test::random_batch<T>(4, 6, rng, 2.0);
  for (const bool fwd : {true, false}) {
    const auto [x, ld] = fwd ? forward_and_log_det(coupling, z) : inverse_and_log_det(coupling, z);
    CHECK((x - z).template cast<double>().cwiseAbs().maxCoeff() < tolerance);
    CHECK(ld.template cast<double>().cwiseAbs().maxCoeff() < tolerance);
    const auto [y, ld_ar] = fwd ? forward_and_log_det(ar, z) : inverse_and_log_det(ar, z);
    CHECK((y - z).template cast<double>().cwiseAbs().maxCoeff() < tolerance);
    CHECK(ld_ar.template cast<double>().cwiseAbs().maxCoeff() < tolerance);
  }
}

TEST_CASE("Neural spline layers refuse a spline that cannot be built", "[bijectors][neural_spline][errors]") {
  using Catch::Matchers::Contains;
  CouplingOptions<double> options;
  options.spline.bins = 1;
  CHECK_THROWS_WITH(RationalQuadraticCoupling<double>(3, 1, options),
                    Contains("RationalQuadraticCoupling") && Contains("bins") && Contains("got 1"));
  RationalQuadraticOptions<double> spline;
  spline.bound = -1;
  CHECK_THROWS_WITH(RationalQuadraticAutoregressive<double>(3, RationalQuadraticTransformer<double>(spline)),
                    Contains("RationalQuadraticAutoregressive") && Contains("bound") && Contains("got -1"));
}
