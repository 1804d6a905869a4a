#include "knead/core/in_use.hpp"

#include <stdexcept>

#include "support.hpp"

using namespace knead;

TEST_CASE("InUseFlag refuses a second entry until the first leaves", "[core][threads][errors]") {
  detail::InUseFlag flag;
  {
    const auto inside = flag.enter("Thing::pass");
    CHECK_THROWS_WITH(
        flag.enter("Thing::other_pass"),
        Catch::Contains("Thing::other_pass") && Catch::Contains("one flow object per thread (copy it)"));
  }
  CHECK_NOTHROW(flag.enter("Thing::pass"));  // left: free again
  // a copy starts free even while the original is held
  const auto inside = flag.enter("Thing::pass");
  detail::InUseFlag copy = flag;
  CHECK_NOTHROW(copy.enter("Thing::pass"));
}
