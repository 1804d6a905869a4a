#pragma once
/// @file
/// The Trainer's progress lines on a stream (TrainerOptions::progress): one per report and a
/// summary when the run stops, each written at once so that lines from several trainers do not
/// interleave.

#include <chrono>
#include <cmath>
#include <ostream>
#include <sstream>
#include <string>

#include "knead/train/training_run.hpp"

namespace knead::training_progress {

/// Seconds from `start` to now.
[[nodiscard]] inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// "12.3s", "4m05s" or "2h07m".
[[nodiscard]] inline std::string duration(double seconds) {
  std::ostringstream out;
  const auto s = static_cast<long long>(std::llround(seconds));
  if (seconds < 59.95) {
    out.setf(std::ios::fixed);
    out.precision(1);
    out << seconds << "s";
  } else if (s < 3600)
    out << s / 60 << "m" << (s % 60 < 10 ? "0" : "") << s % 60 << "s";
  else
    out << s / 3600 << "h" << (s / 60 % 60 < 10 ? "0" : "") << s / 60 % 60 << "m";
  return out.str();
}

/// "epoch e/E  step s/S  train NLL …  val NLL … (best … @ step)  r steps/s  ETA …". The speed and
/// ETA come from `steps_now` steps in `seconds_now` seconds (a resumed run counts from where it
/// resumed).
inline void print_progress(std::ostream& out, const TrainerOptions& options, const StepInfo& info,
                           double mean_train_loss, const TrainingHistory& h, Index steps_now,
                           double seconds_now) {
  std::ostringstream line;
  line.setf(std::ios::fixed);
  line.precision(4);
  if (options.epochs > 0) line << "epoch " << info.epoch << "/" << options.epochs << "  ";
  line << "step " << info.step << "/" << info.max_steps << "  train NLL " << mean_train_loss;
  if (!h.validation.empty()) {
    line << "  val NLL " << h.validation.back().nll;
    if (h.best_validation_nll) line << " (best " << *h.best_validation_nll << " @ " << h.best_step << ")";
  }
  const double rate = seconds_now > 0 ? double(steps_now) / seconds_now : 0.0;
  line.precision(1);
  line << "  " << rate << " steps/s";
  if (rate > 0) line << "  ETA " << duration(double(info.max_steps - info.step) / rate);
  line << '\n';
  out << line.str() << std::flush;
}

/// "training stopped after S steps, E epochs (reason) in T; best val NLL … at step s, parameters
/// restored".
inline void print_summary(std::ostream& out, const TrainerOptions& options, const TrainingHistory& h) {
  std::ostringstream line;
  line.setf(std::ios::fixed);
  line.precision(4);
  line << "training stopped after " << h.steps << " steps";
  if (options.epochs > 0) line << ", " << h.epochs.size() << " epochs";
  line << " (" << to_string(h.stop_reason) << ") in " << duration(h.seconds);
  if (h.best_validation_nll)
    line << "; best val NLL " << *h.best_validation_nll << " at step " << h.best_step
         << (h.restored_best ? ", parameters restored" : "");
  line << '\n';
  out << line.str() << std::flush;
}

}  // namespace knead::training_progress
