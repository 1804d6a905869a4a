#include "knead/train/progress.hpp"

#include <sstream>

#include "support.hpp"

using namespace knead;

TEST_CASE("Progress durations read as seconds, minutes or hours", "[train][progress]") {
  using training_progress::duration;
  CHECK(duration(0.04) == "0.0s");
  CHECK(duration(12.34) == "12.3s");
  CHECK(duration(59.9) == "59.9s");
  CHECK(duration(59.96) == "1m00s");  // would read 60.0s
  CHECK(duration(245) == "4m05s");
  CHECK(duration(3599.4) == "59m59s");
  CHECK(duration(7620) == "2h07m");
}

TEST_CASE("The summary line names the steps, epochs, reason, and the best validation", "[train][progress]") {
  TrainerOptions options;
  options.epochs = 3;
  TrainingHistory h;
  h.steps = 30;
  h.epochs.resize(3);
  h.seconds = 75;
  h.stop_reason = StopReason::epochs;
  h.best_validation_nll = 1.25;
  h.best_step = 20;
  h.restored_best = true;
  std::ostringstream out;
  training_progress::print_summary(out, options, h);
  CHECK(out.str() ==
        "training stopped after 30 steps, 3 epochs (epochs) in 1m15s; best val NLL 1.2500 at step 20, "
        "parameters restored\n");
}
