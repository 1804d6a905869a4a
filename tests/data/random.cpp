#include "knead/data/random.hpp"

#include <algorithm>
#include <map>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

TEST_CASE("uniform01 uses only the engine's output, which the standard fixes", "[data]") {
  // The standard requires the 10000th output of a default-constructed mt19937_64 to be this value.
  Rng standard;
  standard.discard(9999);
  CHECK(standard() == 9981545732273789042ULL);

  Rng a(42), b(42);
  int mismatches = 0;
  for (int i = 0; i < 1000; ++i) {
    const double u = uniform01(a);
    // 53 random bits: the value times 2^53 is the integer formed by the engine's top bits.
    mismatches += !(u >= 0.0 && u < 1.0 && u * 0x1.0p53 == double(b() >> 11));
  }
  CHECK(mismatches == 0);
}

TEST_CASE("uniform and standard normal draws have the right moments", "[data]") {
  Rng rng(7);
  const int n = 200000;
  double sum = 0, sum2 = 0, sum4 = 0, within_one = 0, uniform_sum = 0;
  int out_of_range = 0;
  for (int i = 0; i < n; ++i) {
    const double z = standard_normal_draw(rng);
    sum += z, sum2 += z * z, sum4 += z * z * z * z;
    within_one += std::abs(z) < 1 ? 1 : 0;
    const double u = uniform(rng, -2.0, 3.0);
    out_of_range += !std::isfinite(z) || !(u >= -2.0 && u < 3.0);
    uniform_sum += u;
  }
  CHECK(out_of_range == 0);
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(sum2 / n == Approx(1.0).epsilon(0.02));
  CHECK(sum4 / n == Approx(3.0).epsilon(0.05));             // E z^4 = 3
  CHECK(within_one / n == Approx(0.682689).epsilon(0.01));  // P(|z| < 1)
  CHECK(uniform_sum / n == Approx(0.5).epsilon(0.02));      // midpoint of [-2, 3)
}

TEST_CASE("uniform_index is unbiased over its range", "[data]") {
  Rng rng(3);
  CHECK(uniform_index(rng, 1) == 0);
  std::vector<int> counts(8, 0);  // counts[7] collects anything out of range
  const int n = 70000;
  for (int i = 0; i < n; ++i) {
    const Index k = uniform_index(rng, 7);
    ++counts[k >= 0 && k < 7 ? std::size_t(k) : 7];
  }
  CHECK(counts[7] == 0);
  counts.pop_back();
  double chi2 = 0;
  for (int c : counts) chi2 += (c - n / 7.0) * (c - n / 7.0) / (n / 7.0);
  CHECK(chi2 < 22.5);  // 6 degrees of freedom: P(chi2 > 22.5) < 0.001
}

TEST_CASE("random_permutation gives every ordering equally often", "[data]") {
  Rng rng(11);
  std::map<std::vector<Index>, int> seen;
  const int n = 60000;
  for (int i = 0; i < n; ++i) ++seen[random_permutation(3, rng)];
  REQUIRE(seen.size() == 6);
  for (const auto& [order, count] : seen) CHECK(count == Approx(n / 6.0).epsilon(0.05));

  Rng a(5), b(5), c(6);
  const std::vector<Index> p = random_permutation(50, a);
  CHECK(p == random_permutation(50, b));
  CHECK(p != random_permutation(50, c));
  std::vector<Index> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (Index i = 0; i < 50; ++i) CHECK(sorted[std::size_t(i)] == i);
  CHECK(random_permutation(0, a).empty());
}

TEMPLATE_TEST_CASE("permute_columns reorders columns", "[data]", float, double) {
  Matrix<TestType> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  const Matrix<TestType> p = permute_columns<TestType>(m, {2, 0, 1});
  Matrix<TestType> expected(2, 3);
  expected << 3, 1, 2, 6, 4, 5;
  CHECK(p == expected);
}
