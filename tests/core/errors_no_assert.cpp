// The KNEAD_ASSERT tier compiled out: this program is built with KNEAD_NO_ASSERT defined before any
// knead header, as a project passing -DKNEAD_NO_ASSERT everywhere would be.
#define KNEAD_NO_ASSERT
#include "knead/core/errors.hpp"

#include "support.hpp"

TEST_CASE("With KNEAD_NO_ASSERT, KNEAD_ASSERT neither checks nor evaluates its arguments", "[core][errors]") {
  int evaluated = 0;
  const auto count = [&] { return ++evaluated; };
  CHECK_NOTHROW(KNEAD_ASSERT(count() == 5, "f", "not checked"));
  CHECK(evaluated == 0);
  // the argument checks of public calls stay on
  CHECK_THROWS_AS(knead::detail::check_positive("f", "n", 0), std::invalid_argument);
}
