#include "knead/bijectors/elementwise_affine.hpp"

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("Affine, Shift and Scale conform", "[bijectors][affine]", float, double) {
  Rng rng(7);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    Affine<TestType> affine(d);
    Shift<TestType> shift(d);
    Scale<TestType> scale(d);
    test::require_conformance(affine, test::random_batch<TestType>(d, 4, rng), rng);  // identity
    test::randomise_parameters(affine, rng, 0.7);
    test::randomise_parameters(shift, rng, 0.7);
    test::randomise_parameters(scale, rng, 0.7);
    test::require_conformance(affine, test::random_batch<TestType>(d, 4, rng), rng);
    test::require_conformance(shift, test::random_batch<TestType>(d, 4, rng), rng);
    test::require_conformance(scale, test::random_batch<TestType>(d, 4, rng), rng);
  }
}

TEST_CASE("Affine matches its closed form", "[bijectors][affine]") {
  Vector<double> s(2), b(2);
  s << std::log(2.0), std::log(0.5);
  b << 1.0, -3.0;
  Affine<double> affine(s, b);
  Matrix<double> u(2, 1);
  u << 1.0, 4.0;
  const auto [x, ld] = forward_and_log_det(affine, u);
  CHECK(x(0, 0) == Approx(3.0));
  CHECK(x(1, 0) == Approx(-1.0));
  CHECK(ld(0) == Approx(0.0).margin(1e-15));  // log 2 + log ½
}

TEST_CASE("Affine rejects bad input", "[bijectors][affine][errors]") {
  CHECK_THROWS_WITH(Affine<double>(0), Catch::Contains("Affine") && Catch::Contains("dim"));
  Vector<double> s(2), b(2);
  s << 0.0, std::nan("");
  b << 0.0, 0.0;
  CHECK_THROWS_WITH((Affine<double>(s, b)), Catch::Contains("non-finite") && Catch::Contains("log_scale"));
  Affine<double> affine(3);
  CHECK_THROWS_WITH(forward(affine, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("Affine") && Catch::Contains("3 rows"));
  CHECK_THROWS_WITH(inverse(affine, Matrix<double>::Zero(3, 0)), Catch::Contains("empty batch"));
  Affine<double> fresh(3);
  CHECK_THROWS_AS(backward(fresh, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
}
