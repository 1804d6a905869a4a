#pragma once
/// @file
/// Learning-rate schedules: a small value type giving lr(step), where `step` counts the updates
/// already applied (0 for the first update). An optimizer holds one and asks it at every step, so
/// a restored optimizer state (step count) continues its schedule where it stopped.

#include <cmath>
#include <numbers>
#include <string_view>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead {

/// One of three schedules, chosen by the factory that made it:
///
/// - constant(lr):  lr(t) = lr. A plain number converts to this, so `.lr = 1e-3` works wherever
///   an LrSchedule is expected.
/// - cosine(peak, total_steps, warmup_steps = 0, final_lr = 0) — cosine annealing (Loshchilov &
///   Hutter 2017, "SGDR", without restarts) after a linear warmup:
///     t < w:       lr(t) = peak · (t + 1) / w          (the first update already moves; t = w − 1 is at
///     peak) w ≤ t < T:   lr(t) = final + (peak − final) · ½ (1 + cos(π (t − w) / (T − w))) t ≥ T: lr(t) =
///     final
/// - step(lr, every, gamma):  lr(t) = lr · γ^⌊t / every⌋ (multiply by γ every `every` steps).
class LrSchedule {
 public:
  enum class Kind { constant, cosine, step };

  /// Same as constant(lr); implicit so that a number can stand for a constant schedule.
  LrSchedule(double lr) : LrSchedule(constant(lr)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] static LrSchedule constant(double lr) {
    check_lr("LrSchedule::constant", "lr", lr);
    return LrSchedule(Kind::constant, lr, 0, 0, lr, 1, 1.0);
  }

  [[nodiscard]] static LrSchedule cosine(double peak, Index total_steps, Index warmup_steps = 0,
                                         double final_lr = 0.0) {
    constexpr std::string_view function = "LrSchedule::cosine";
    check_lr(function, "peak lr", peak);
    if (total_steps < 1) detail::fail(function, "total_steps must be at least 1, got ", total_steps);
    if (warmup_steps < 0 || warmup_steps > total_steps)
      detail::fail(function, "warmup_steps must be in [0, total_steps = ", total_steps, "], got ",
                   warmup_steps);
    if (!std::isfinite(final_lr) || final_lr < 0 || final_lr > peak)
      detail::fail(function, "final_lr must be in [0, peak lr = ", peak, "], got ", final_lr);
    return LrSchedule(Kind::cosine, peak, total_steps, warmup_steps, final_lr, 1, 1.0);
  }

  [[nodiscard]] static LrSchedule step(double lr, Index every, double gamma) {
    constexpr std::string_view function = "LrSchedule::step";
    check_lr(function, "lr", lr);
    if (every < 1) detail::fail(function, "every must be at least 1 step, got ", every);
    if (!std::isfinite(gamma) || gamma <= 0 || gamma > 1)
      detail::fail(function, "gamma must be in (0, 1], got ", gamma);
    return LrSchedule(Kind::step, lr, 0, 0, lr, every, gamma);
  }

  /// The learning rate of the update that follows `step` earlier updates.
  [[nodiscard]] double lr(Index step) const {
    if (step < 0) detail::fail("LrSchedule::lr", "step must be non-negative, got ", step);
    switch (kind_) {
      case Kind::constant:
        return base_;
      case Kind::cosine:
        if (step < warmup_) return base_ * double(step + 1) / double(warmup_);
        if (step >= total_) return final_;
        {
          const double progress = double(step - warmup_) / double(total_ - warmup_);
          return final_ + (base_ - final_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
        }
      case Kind::step:
        return base_ * std::pow(gamma_, double(step / every_));
    }
    return base_;  // unreachable: every kind returns above
  }
  [[nodiscard]] double operator()(Index step) const { return lr(step); }

  [[nodiscard]] Kind kind() const { return kind_; }
  /// The constant lr, the cosine's peak, or the step schedule's initial lr.
  [[nodiscard]] double base_lr() const { return base_; }

 private:
  LrSchedule(Kind kind, double base, Index total, Index warmup, double final_lr, Index every, double gamma)
      : kind_(kind),
        base_(base),
        total_(total),
        warmup_(warmup),
        final_(final_lr),
        every_(every),
        gamma_(gamma) {}

  static void check_lr(std::string_view function, std::string_view what, double lr) {
    if (!std::isfinite(lr) || lr <= 0) detail::fail(function, what, " must be positive and finite, got ", lr);
  }

  Kind kind_;
  double base_;
  Index total_;
  Index warmup_;
  double final_;
  Index every_;
  double gamma_;
};

}  // namespace knead
