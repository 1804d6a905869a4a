#include "knead/optim/schedule.hpp"

#include <cmath>
#include <limits>
#include <numbers>

#include "support.hpp"

using namespace knead;

TEST_CASE("A constant schedule is constant, and a number converts to one", "[optim][schedule]") {
  const LrSchedule s = 0.25;
  CHECK(s.kind() == LrSchedule::Kind::constant);
  for (const Index t : {0, 1, 10, 1000000}) CHECK(s.lr(t) == 0.25);
  CHECK(LrSchedule::constant(3e-4)(7) == 3e-4);
}

TEST_CASE("The cosine schedule follows its formula", "[optim][schedule]") {
  const double peak = 0.1, final_lr = 0.01;
  const Index total = 110, warmup = 10;
  const auto s = LrSchedule::cosine(peak, total, warmup, final_lr);
  // warmup: peak · (t + 1) / w
  CHECK(s.lr(0) == Approx(peak / 10));
  CHECK(s.lr(4) == Approx(peak * 5 / 10));
  CHECK(s.lr(9) == Approx(peak));
  // decay over T − w = 100 steps: final + (peak − final) · ½ (1 + cos(π p))
  CHECK(s.lr(10) == Approx(peak));
  CHECK(s.lr(35) == Approx(final_lr + (peak - final_lr) * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))));
  CHECK(s.lr(60) == Approx((peak + final_lr) / 2));  // p = ½
  CHECK(s.lr(109) == Approx(final_lr + (peak - final_lr) * 0.5 * (1 + std::cos(std::numbers::pi * 0.99))));
  CHECK(s.lr(110) == Approx(final_lr));
  CHECK(s.lr(5000) == Approx(final_lr));
  // monotone after the warmup
  for (Index t = warmup; t < total + 2; ++t) CHECK(s.lr(t + 1) <= s.lr(t));
}

TEST_CASE("The cosine schedule without warmup starts at its peak and decays to zero", "[optim][schedule]") {
  const auto s = LrSchedule::cosine(1.0, 4);
  CHECK(s.lr(0) == Approx(1.0));
  CHECK(s.lr(1) == Approx(0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(s.lr(2) == Approx(0.5));
  CHECK(s.lr(4) == 0.0);
  // a warmup as long as the schedule: ramp, then the final lr
  const auto ramp = LrSchedule::cosine(1.0, 4, 4, 0.5);
  CHECK(ramp.lr(3) == Approx(1.0));
  CHECK(ramp.lr(4) == Approx(0.5));
}

TEST_CASE("The step schedule multiplies by gamma every k steps", "[optim][schedule]") {
  const auto s = LrSchedule::step(0.1, 3, 0.5);
  CHECK(s.lr(0) == Approx(0.1));
  CHECK(s.lr(2) == Approx(0.1));
  CHECK(s.lr(3) == Approx(0.05));
  CHECK(s.lr(5) == Approx(0.05));
  CHECK(s.lr(6) == Approx(0.025));
  CHECK(s.lr(30) == Approx(0.1 * std::pow(0.5, 10)));
}

TEST_CASE("Schedules reject bad hyper-parameters", "[optim][schedule][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(LrSchedule::constant(0.0),
                    Catch::Contains("LrSchedule::constant") && Catch::Contains("0"));
  CHECK_THROWS_WITH(LrSchedule::constant(-1e-3),
                    Catch::Contains("LrSchedule::constant") && Catch::Contains("-0.001"));
  CHECK_THROWS_WITH(LrSchedule::constant(nan),
                    Catch::Contains("LrSchedule::constant") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(LrSchedule(inf), Catch::Contains("LrSchedule::constant") && Catch::Contains("inf"));
  CHECK_THROWS_WITH(LrSchedule::cosine(-1, 10),
                    Catch::Contains("LrSchedule::cosine") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(LrSchedule::cosine(0.1, 0), Catch::Contains("LrSchedule::cosine") &&
                                                    Catch::Contains("total_steps") && Catch::Contains("0"));
  CHECK_THROWS_WITH(LrSchedule::cosine(0.1, 10, 11), Catch::Contains("LrSchedule::cosine") &&
                                                         Catch::Contains("warmup_steps") &&
                                                         Catch::Contains("11"));
  CHECK_THROWS_WITH(LrSchedule::cosine(0.1, 10, -1), Catch::Contains("LrSchedule::cosine") &&
                                                         Catch::Contains("warmup_steps") &&
                                                         Catch::Contains("-1"));
  CHECK_THROWS_WITH(LrSchedule::cosine(0.1, 10, 0, 0.2), Catch::Contains("LrSchedule::cosine") &&
                                                             Catch::Contains("final_lr") &&
                                                             Catch::Contains("0.2"));
  CHECK_THROWS_WITH(LrSchedule::cosine(0.1, 10, 0, nan), Catch::Contains("LrSchedule::cosine") &&
                                                             Catch::Contains("final_lr") &&
                                                             Catch::Contains("nan"));
  CHECK_THROWS_WITH(LrSchedule::step(0.1, 0, 0.5),
                    Catch::Contains("LrSchedule::step") && Catch::Contains("every") && Catch::Contains("0"));
  CHECK_THROWS_WITH(LrSchedule::step(0.1, 2, 0.0),
                    Catch::Contains("LrSchedule::step") && Catch::Contains("gamma") && Catch::Contains("0"));
  CHECK_THROWS_WITH(LrSchedule::step(0.1, 2, 1.5), Catch::Contains("LrSchedule::step") &&
                                                       Catch::Contains("gamma") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(LrSchedule::step(nan, 2, 0.5),
                    Catch::Contains("LrSchedule::step") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(LrSchedule(0.1).lr(-3), Catch::Contains("LrSchedule::lr") && Catch::Contains("-3"));
}
