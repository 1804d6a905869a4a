#pragma once
/// @file
/// NoGrad: passes that keep nothing for backward(), like PyTorch's torch.no_grad().
///
/// While a NoGrad object lives, the passes the calling thread starts (forward_and_log_det,
/// inverse_and_log_det, and so log_prob, sample, sample_and_log_prob) record no pass to
/// differentiate, and networks write their hidden activations into the thread's scratch, shared
/// by all networks, instead of buffers of their own kept for backward(): fewer cold cache lines
/// (MAF density +3–8 % on the benchmarks' configs). Results are the same, bit for bit. A
/// backward() after such a pass is refused with std::logic_error, before anything is written.
/// Guards nest; each thread has its own state (a parallel pass takes its caller's).

#include "knead/core/types.hpp"

namespace knead {

class NoGrad {
 public:
  NoGrad() { ++depth(); }
  ~NoGrad() { --depth(); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

  /// Whether a NoGrad lives on the calling thread.
  [[nodiscard]] static bool active() { return depth() > 0; }

  /// What a pass in direction `d` records for backward(): nothing under NoGrad.
  [[nodiscard]] static Direction recorded(Direction d) { return active() ? Direction::none : d; }

  /// Appended to the error of a backward() that finds no pass to differentiate.
  static constexpr const char* hint = " (passes run under knead::NoGrad keep nothing to differentiate)";

 private:
  static int& depth() {
    thread_local int d = 0;
    return d;
  }
};

}  // namespace knead
