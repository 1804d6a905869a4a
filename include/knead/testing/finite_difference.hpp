#pragma once
/// @file
/// Finite-difference oracles for tests: gradients of a scalar function of a span of values, and
/// Jacobians of a map of one sample.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <span>

#include <Eigen/LU>

#include "knead/core/types.hpp"

namespace knead::testing {

/// A central-difference step suited to T: about ε^(1/3), scaled by the magnitude of the value.
template <class T>
T central_step(T at) {
  const T base = std::cbrt(std::numeric_limits<T>::epsilon());
  return base * std::max(T(1), std::abs(at));
}

/// ∂loss/∂values by central differences; `loss` is evaluated with `values` perturbed in place
/// (and restored afterwards). A step multiplier > 1 trades truncation error for rounding error.
template <class T>
Vector<double> finite_difference_gradient(const std::function<double()>& loss, std::span<T> values,
                                          double step_scale = 1.0) {
  Vector<double> grad(Index(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const T saved = values[i];
    const T h = T(step_scale) * central_step(saved);
    values[i] = saved + h;
    const double up = loss();
    values[i] = saved - h;
    const double down = loss();
    values[i] = saved;
    // divide by the step actually taken, which rounding may have changed
    grad(Index(i)) = (up - down) / (double(saved + h) - double(saved - h));
  }
  return grad;
}

/// Largest |a − b| relative to the larger of 1 and the largest |b|: a scale-aware error for
/// comparing an analytic gradient `a` with a numerical one `b`.
inline double relative_error(const Vector<double>& a, const Vector<double>& b) {
  if (a.size() == 0) return 0.0;
  const double scale = std::max(1.0, b.cwiseAbs().maxCoeff());
  return (a - b).cwiseAbs().maxCoeff() / scale;
}

/// log|det J| of a square matrix, computed in double.
inline double log_abs_det(const Matrix<double>& jacobian) {
  const Eigen::PartialPivLU<Matrix<double>> lu(jacobian);
  return lu.matrixLU().diagonal().cwiseAbs().array().log().sum();
}

}  // namespace knead::testing
