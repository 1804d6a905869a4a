#include "knead/bijectors/permute.hpp"

#include <algorithm>
#include <numeric>

#include "support.hpp"

using namespace knead;

namespace {

bool is_permutation_of_range(std::vector<Index> p) {
  std::ranges::sort(p);
  std::vector<Index> range(p.size());
  std::iota(range.begin(), range.end(), Index(0));
  return p == range;
}

}  // namespace

TEMPLATE_TEST_CASE("Permute conforms", "[bijectors][permute]", float, double) {
  Rng rng(17);
  for (const Index d : {1, 2, 5}) {
    CAPTURE(d);
    auto reversed = Permute<TestType>::reverse(d);
    auto shuffled = Permute<TestType>::random(d, 3);
    CHECK(reversed.num_parameters() == 0);
    test::require_conformance(reversed, test::random_batch<TestType>(d, 4, rng), rng);
    test::require_conformance(shuffled, test::random_batch<TestType>(d, 4, rng), rng);
  }
  Permute<TestType> cycle({1, 2, 3, 4, 0});
  test::require_conformance(cycle, test::random_batch<TestType>(5, 3, rng), rng);
}

TEST_CASE("Permute gathers rows: x_i = u_{p[i]}", "[bijectors][permute]") {
  Permute<double> permute({2, 0, 1});
  Matrix<double> u(3, 2);
  u << 10, 11,  //
      20, 21,   //
      30, 31;
  const auto [x, ld] = forward_and_log_det(permute, u);
  Matrix<double> expected(3, 2);
  expected << 30, 31,  //
      10, 11,          //
      20, 21;
  CHECK(x == expected);
  CHECK(ld == RowVector<double>::Zero(2));
  CHECK(inverse(permute, x) == u);
  CHECK(inverse_log_det(permute, x) == RowVector<double>::Zero(2));
  CHECK(permute.inverse_permutation() == std::vector<Index>{1, 2, 0});

  // backward of the forward pass sends ∂L/∂x_i back to u_{p[i]}
  Permute<double> differentiated({2, 0, 1});
  (void)forward(differentiated, u.col(0));
  Matrix<double> grad_x(3, 1);
  grad_x << 1, 2, 3;
  Matrix<double> expected_grad_u(3, 1);
  expected_grad_u << 2, 3, 1;  // x_0 = u_2, x_1 = u_0, x_2 = u_1
  CHECK(backward(differentiated, grad_x, RowVector<double>::Zero(1)) == expected_grad_u);
  // and backward of the inverse pass sends ∂L/∂u_{p[i]} back to x_i
  (void)inverse(differentiated, u.col(0));
  CHECK(backward(differentiated, expected_grad_u, RowVector<double>::Zero(1)) == grad_x);
}

TEST_CASE("Permute factories", "[bijectors][permute]") {
  CHECK(Permute<double>::reverse(4).permutation() == std::vector<Index>{3, 2, 1, 0});
  CHECK(Permute<double>::reverse(1).permutation() == std::vector<Index>{0});

  const auto a = Permute<float>::random(20, 42).permutation();
  CHECK(is_permutation_of_range(a));
  CHECK(Permute<double>::random(20, 42).permutation() == a);  // same seed, same permutation
  CHECK(Permute<float>::random(20, 43).permutation() != a);
  std::vector<Index> identity(20);
  std::iota(identity.begin(), identity.end(), Index(0));
  CHECK(a != identity);

  // every position receives every entry over many seeds (the shuffle is not stuck)
  Matrix<int> counts = Matrix<int>::Zero(4, 4);
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    const auto p = Permute<double>::random(4, seed).permutation();
    for (Index i = 0; i < 4; ++i) ++counts(i, p[std::size_t(i)]);
  }
  CHECK(counts.minCoeff() > 50);  // 100 expected in each cell
}

TEST_CASE("Permute rejects bad input", "[bijectors][permute][errors]") {
  CHECK_THROWS_WITH(Permute<double>(std::vector<Index>{}),
                    Catch::Contains("Permute") && Catch::Contains("empty permutation"));
  CHECK_THROWS_WITH(Permute<double>({0, 3, 1}), Catch::Contains("Permute") && Catch::Contains("entry 3") &&
                                                    Catch::Contains("out of range [0, 3)"));
  CHECK_THROWS_WITH(Permute<double>({0, -1}), Catch::Contains("Permute") && Catch::Contains("entry -1") &&
                                                  Catch::Contains("out of range"));
  CHECK_THROWS_WITH(Permute<double>({1, 0, 1}),
                    Catch::Contains("Permute") && Catch::Contains("entry 1") && Catch::Contains("repeated"));
  CHECK_THROWS_WITH(Permute<double>::reverse(0),
                    Catch::Contains("Permute::reverse") && Catch::Contains("dim"));
  CHECK_THROWS_WITH(Permute<double>::random(-2, 1),
                    Catch::Contains("Permute::random") && Catch::Contains("dim") && Catch::Contains("-2"));
  auto permute = Permute<double>::reverse(3);
  CHECK_THROWS_WITH(forward(permute, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("Permute::forward_and_log_det") && Catch::Contains("3 rows"));
  CHECK_THROWS_WITH(inverse(permute, Matrix<double>::Zero(3, 0)), Catch::Contains("empty batch"));
  auto fresh = Permute<double>::reverse(3);
  CHECK_THROWS_AS(backward(fresh, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)), std::logic_error);
  (void)forward(fresh, Matrix<double>::Zero(3, 2));
  CHECK_THROWS_WITH(backward(fresh, Matrix<double>::Zero(3, 1), RowVector<double>::Zero(1)),
                    Catch::Contains("Permute::backward") && Catch::Contains("3x2"));
}
