#include "knead/core/errors.hpp"

#include <limits>
#include <stdexcept>

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("check_finite finds a non-finite value anywhere, however the values are stored",
                   "[core][errors]", float, double) {
  // Contiguous storage is scanned in one flat loop, strided storage column by column: a bad value
  // at the first, a middle and the last entry, in a matrix, a row vector, a block of a larger
  // matrix (outer stride) and an expression without storage.
  using T = TestType;
  const T bad_values[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity()};
  Rng rng(13);
  const Matrix<T> clean = test::random_batch<T>(7, 33, rng);
  CHECK_NOTHROW(detail::check_finite("f", "x", clean));
  CHECK_NOTHROW(detail::check_finite("f", "x", RowVector<T>(clean.row(2))));
  CHECK_NOTHROW(detail::check_finite("f", "x", clean.block(1, 3, 5, 20)));
  CHECK_NOTHROW(detail::check_finite("f", "x", clean.array() * T(2)));
  // the largest finite values pass
  CHECK_NOTHROW(detail::check_finite("f", "x", Matrix<T>::Constant(3, 3, std::numeric_limits<T>::max())));
  CHECK_NOTHROW(detail::check_finite("f", "x", Matrix<T>::Constant(3, 3, std::numeric_limits<T>::lowest())));
  for (const T bad : bad_values)
    for (const auto& [i, j] : {std::pair<Index, Index>{0, 0}, {3, 17}, {6, 32}}) {
      INFO("bad value " << bad << " at (" << i << ", " << j << ")");
      Matrix<T> m = clean;
      m(i, j) = bad;
      CHECK_THROWS_WITH(detail::check_finite("f", "batch", m),
                        Catch::Contains("f") && Catch::Contains("batch") &&
                            Catch::Contains("(" + std::to_string(i) + ", " + std::to_string(j) + ")"));
      const RowVector<T> row = m.row(i);
      CHECK_THROWS_AS(detail::check_finite("f", "row", row), std::invalid_argument);
      const MatrixCRef<T> strided = m.block(0, 0, 7, 33);
      CHECK_THROWS_AS(detail::check_finite("f", "block", strided), std::invalid_argument);
      CHECK_THROWS_AS(detail::check_finite("f", "expression", m.array() + T(1)), std::invalid_argument);
      if (i >= 1 && i <= 5 && j >= 3) {  // inside the block, given in its own coordinates
        CHECK_THROWS_WITH(detail::check_finite("f", "block", m.block(1, 3, 5, 30)),
                          Catch::Contains("(" + std::to_string(i - 1) + ", " + std::to_string(j - 3) + ")"));
      } else {
        CHECK_NOTHROW(detail::check_finite("f", "block", m.block(1, 3, 5, 30)));
      }
    }
}

TEST_CASE("KNEAD_ASSERT throws std::logic_error naming the function when its condition is false",
          "[core][errors]") {
  int evaluated = 0;
  const auto count = [&] { return ++evaluated; };
  CHECK_NOTHROW(KNEAD_ASSERT(count() == 1, "f", "never shown"));
  CHECK(evaluated == 1);
  CHECK_THROWS_AS(KNEAD_ASSERT(count() == 1, "f", "part ", 3, " returned ", 2, " rows"), std::logic_error);
  CHECK_THROWS_WITH(
      KNEAD_ASSERT(1 + 1 == 3, "Chain::forward_and_log_det", "part ", 3, " returned ", 2, " rows"),
      Catch::StartsWith("Chain::forward_and_log_det: part 3 returned 2 rows") &&
          Catch::Contains("bug in knead"));
}
