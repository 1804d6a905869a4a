#pragma once
/// @file
/// AdditiveTransformer<T>: x = u + t, the volume-preserving elementwise map of NICE's additive
/// coupling.

#include <string_view>

#include "knead/core/types.hpp"
#include "knead/transformers/transformer.hpp"

namespace knead {

/// The additive transformer. Parameters per dimension: [t] (P = 1).
/// - forward:  x = u + t,   log|∂x/∂u| = 0
/// - inverse:  u = x − t,   log|∂u/∂x| = 0
template <class T>
class AdditiveTransformer {
 public:
  using Scalar = T;
  static constexpr std::string_view label = "Additive";

  /// Nothing to keep: the map's derivatives are constants.
  struct Workspace {};

  [[nodiscard]] static constexpr Index params_per_dim() { return 1; }
  void validate(std::string_view /*function*/) const {}

  /// x = u + t, log_det = 0.
  template <class U, class X, class LogDet>
  void forward(ParamBlocks<const T> params, const U& u, X&& x, LogDet&& log_det, Workspace& /*ws*/) const {
    x = u + params.param(0);
    log_det = Matrix<T>::Zero(u.rows(), u.cols());
  }

  /// u = x − t, log_det = 0.
  template <class X, class U, class LogDet>
  void inverse(ParamBlocks<const T> params, const X& x, U&& u, LogDet&& log_det, Workspace& /*ws*/) const {
    u = x - params.param(0);
    log_det = Matrix<T>::Zero(x.rows(), x.cols());
  }

  /// Differentiates the last pass (see transformer.hpp): ∂L/∂in = ∂L/∂out (`grad` unchanged);
  /// forward x = u + t: ∂L/∂t = ∂L/∂x; inverse u = x − t: ∂L/∂t = −∂L/∂u. The log-det is constant.
  template <class U, class Grad>
  void backward(Direction pass, ParamBlocks<const T> /*params*/, const U& /*u*/, Grad&& grad,
                RowVectorCRef<T> /*grad_log_det*/, ParamBlocks<T> grad_params, Workspace& /*ws*/) const {
    if (pass == Direction::forward)
      grad_params.param(0) = grad;
    else
      grad_params.param(0) = -grad;
  }
};

static_assert(check_transformer<AdditiveTransformer<double>>());
static_assert(check_transformer<AdditiveTransformer<float>>());

}  // namespace knead
