#pragma once
/// @file
/// LogScaleGuard: bounds the log-scales a conditioner emits (MAF, IAF, affine couplings), so one
/// bad step cannot make exp(α) overflow and a flow cannot collapse a dimension to a point.

#include <cmath>

#include "knead/core/errors.hpp"

namespace knead {

enum class LogScaleGuardKind {
  none,       ///< α = a
  clamp,      ///< α = min(max(a, −c), c); zero gradient outside [−c, c]
  soft_clamp  ///< α = c·tanh(a / c); smooth, ≈ a for |a| ≪ c, the default
};

template <class T>
struct LogScaleGuard {
  LogScaleGuardKind kind = LogScaleGuardKind::soft_clamp;
  T bound = T(5);  ///< c: |α| ≤ c; e^5 ≈ 148 is far beyond what one layer of a flow needs

  /// Throws unless the bound is finite and positive (when it is used).
  void validate(std::string_view function) const {
    if (kind != LogScaleGuardKind::none && !(std::isfinite(double(bound)) && bound > T(0)))
      detail::fail(function, "log-scale guard bound must be finite and positive, got ", bound);
  }

  /// α from the raw conditioner output a.
  [[nodiscard]] T apply(T a) const {
    switch (kind) {
      case LogScaleGuardKind::clamp:
        return std::min(std::max(a, -bound), bound);
      case LogScaleGuardKind::soft_clamp:
        return bound * std::tanh(a / bound);
      case LogScaleGuardKind::none:
        break;
    }
    return a;
  }

  /// dα/da at a: 1 − tanh²(a/c) for the soft clamp, the indicator of |a| < c for the clamp.
  [[nodiscard]] T derivative(T a) const {
    switch (kind) {
      case LogScaleGuardKind::clamp:
        return std::abs(a) < bound ? T(1) : T(0);
      case LogScaleGuardKind::soft_clamp: {
        const T t = std::tanh(a / bound);
        return T(1) - t * t;
      }
      case LogScaleGuardKind::none:
        break;
    }
    return T(1);
  }
};

}  // namespace knead
