#include "knead/bijectors/triangular_affine.hpp"

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("TriangularAffine conforms", "[bijectors][triangular_affine]", float, double) {
  Rng rng(13);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    TriangularAffine<TestType> layer(d);
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);  // identity
    test::randomise_parameters(layer, rng, 0.5);
    test::require_conformance(layer, test::random_batch<TestType>(d, 4, rng), rng);
  }
}

TEST_CASE("TriangularAffine matches its closed form", "[bijectors][triangular_affine]") {
  TriangularAffine<double> layer(2);
  auto p = layer.parameters();  // [s0, s1, L10, b0, b1]
  p[0] = std::log(2.0);
  p[1] = std::log(3.0);
  p[2] = 0.5;
  p[3] = 1.0;
  p[4] = -1.0;
  Matrix<double> u(2, 1);
  u << 1.0, 2.0;
  const auto [x, ld] = forward_and_log_det(layer, u);
  CHECK(x(0, 0) == Approx(2.0 * 1.0 + 1.0));
  CHECK(x(1, 0) == Approx(0.5 * 1.0 + 3.0 * 2.0 - 1.0));
  CHECK(ld(0) == Approx(std::log(6.0)));
}

TEST_CASE("TriangularAffine rejects bad input", "[bijectors][triangular_affine][errors]") {
  CHECK_THROWS_WITH(TriangularAffine<double>(0),
                    Catch::Contains("TriangularAffine") && Catch::Contains("dim"));
  TriangularAffine<double> layer(3);
  CHECK_THROWS_WITH(forward(layer, Matrix<double>::Zero(2, 2)), Catch::Contains("3 rows"));
}
