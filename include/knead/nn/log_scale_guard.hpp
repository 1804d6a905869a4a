#pragma once
/// @file
/// LogScaleGuard: bounds the log-scales a conditioner emits (MAF, IAF, affine couplings), so one
/// bad step cannot make exp(α) overflow and a flow cannot collapse a dimension to a point.

#include <cmath>

#include <Eigen/Core>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

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

  /// α = guard(a) for every entry of a block, in Eigen's vectorised array functions (for float
  /// its SIMD tanh, within a few ulp of std::tanh), into `alpha`, resized to a's shape.
  template <class Derived>
  void apply(const Eigen::MatrixBase<Derived>& a, Matrix<T>& alpha) const {
    resize_workspace(alpha, a.rows(), a.cols());
    apply(a, Eigen::Ref<Matrix<T>>(alpha));
  }
  /// The same into a block of a's shape (such as some columns of a matrix).
  template <class Derived>
  void apply(const Eigen::MatrixBase<Derived>& a, Eigen::Ref<Matrix<T>> alpha) const {
    switch (kind) {
      case LogScaleGuardKind::clamp:
        alpha = a.cwiseMax(-bound).cwiseMin(bound);
        return;
      case LogScaleGuardKind::soft_clamp:
        alpha = (bound * (a.array() / bound).tanh()).matrix();
        return;
      case LogScaleGuardKind::none:
        break;
    }
    alpha = a;
  }

  /// dα/da for every entry of a block, from a and α = apply(a) (no second tanh: for the soft clamp
  /// 1 − tanh²(a/c) = 1 − (α/c)²), into `slope`, resized to a's shape.
  template <class DerivedA, class DerivedAlpha>
  void derivative(const Eigen::MatrixBase<DerivedA>& a, const Eigen::MatrixBase<DerivedAlpha>& alpha,
                  Matrix<T>& slope) const {
    resize_workspace(slope, a.rows(), a.cols());
    derivative(a, alpha, Eigen::Ref<Matrix<T>>(slope));
  }
  /// The same into a block of a's shape.
  template <class DerivedA, class DerivedAlpha>
  void derivative(const Eigen::MatrixBase<DerivedA>& a, const Eigen::MatrixBase<DerivedAlpha>& alpha,
                  Eigen::Ref<Matrix<T>> slope) const {
    switch (kind) {
      case LogScaleGuardKind::clamp:
        slope = (a.array().abs() < bound).template cast<T>().matrix();
        return;
      case LogScaleGuardKind::soft_clamp:
        slope = (T(1) - (alpha.array() / bound).square()).matrix();
        return;
      case LogScaleGuardKind::none:
        break;
    }
    slope.setOnes();
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
