#pragma once
/// @file
/// The progress display of `knead fit`: on a terminal one line redrawn in place (at most ten times a
/// second and at every epoch's end), piped a plain line per epoch. It shows the epoch and step, the
/// epoch's mean training NLL so far, the last validation NLL, the best one and its epoch, rows per
/// second and the time left. NLLs are shown in data units: the trainer's (in the flow's standardised
/// units) plus `nll_offset`: Σ log σ_i, less the mean logit log-Jacobian of the validation rows
/// with --logit (logit.hpp).

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "knead/train/trainer.hpp"

namespace knead_cli {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  /// `out` null: silent. `terminal`: redraw in place.
  Progress(std::FILE* out, bool terminal, Index epochs, Index rows, double nll_offset)
      : out_(out),
        terminal_(terminal),
        epochs_(epochs),
        rows_(rows),
        nll_offset_(nll_offset),
        start_(Clock::now()),
        drawn_(start_) {}

  [[nodiscard]] static bool is_terminal(std::FILE* f) { return f != nullptr && isatty(fileno(f)) == 1; }

  void step(const knead::StepInfo& s, Index batch_rows) {
    if (out_ == nullptr) return;
    if (s.step_in_epoch == 1) epoch_loss_ = 0, epoch_rows_ = 0;
    epoch_loss_ += s.train_loss * double(batch_rows);
    epoch_rows_ += batch_rows;
    rows_done_ += batch_rows;
    if (s.validation_nll) validation_ = s.validation_nll;
    best_ = s.best_validation_nll;
    best_epoch_ = s.steps_per_epoch > 0 ? s.best_step / s.steps_per_epoch : 0;
    const bool epoch_end = s.step_in_epoch == s.steps_per_epoch;
    const auto now = Clock::now();
    if (terminal_ ? (epoch_end || now - drawn_ > std::chrono::milliseconds(100)) : epoch_end) {
      drawn_ = now;
      draw(s, now);
    }
  }

  /// Ends the redrawn line.
  void finish() {
    if (out_ != nullptr && terminal_) std::fputc('\n', out_);
  }

 private:
  void draw(const knead::StepInfo& s, Clock::time_point now) {
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? double(rows_done_) / seconds : 0.0;
    const double left = rate > 0 ? double(epochs_ * rows_ - rows_done_) / rate : 0.0;
    std::string line = "epoch " + std::to_string(s.epoch) + "/" + std::to_string(epochs_);
    if (terminal_) {
      constexpr int width = 20;
      const int filled =
          int(double(width) * double(s.step_in_epoch) / double(std::max<Index>(s.steps_per_epoch, 1)));
      line +=
          " [" + std::string(std::size_t(filled), '#') + std::string(std::size_t(width - filled), '.') + "]";
    }
    char text[256];
    std::snprintf(text, sizeof text, " step %ld/%ld  train %.4f", long(s.step_in_epoch),
                  long(s.steps_per_epoch), epoch_rows_ > 0 ? epoch_loss_ / double(epoch_rows_) : 0.0);
    line += text;
    if (validation_) {
      std::snprintf(text, sizeof text, "  val %.4f", *validation_ + nll_offset_);
      line += text;
    }
    if (best_) {
      std::snprintf(text, sizeof text, "  best %.4f (epoch %ld)", *best_ + nll_offset_, long(best_epoch_));
      line += text;
    }
    std::snprintf(text, sizeof text, "  %.0f rows/s  ETA %ld:%02ld", rate, long(left) / 60, long(left) % 60);
    line += text;
    if (terminal_)
      std::fprintf(out_, "\r%s\033[K", line.c_str());  // \033[K clears the rest of the line
    else
      std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

  std::FILE* out_;
  bool terminal_;
  Index epochs_, rows_;
  double nll_offset_;
  Clock::time_point start_, drawn_;
  double epoch_loss_ = 0;
  Index epoch_rows_ = 0, rows_done_ = 0;
  std::optional<double> validation_, best_;
  Index best_epoch_ = 0;
};

}  // namespace knead_cli
