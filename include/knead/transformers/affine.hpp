#pragma once
/// @file
/// AffineTransformer<T>: x = u·e^{s} + t with s = guard(a), the elementwise map of RealNVP's
/// affine coupling and of MAF/IAF.

#include <string_view>

#include "knead/core/types.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/transformers/transformer.hpp"

namespace knead {

/// The affine transformer. Parameters per dimension: [t, a] (P = 2): a shift t and a raw
/// log-scale a, bounded by s = guard(a) (LogScaleGuard, a soft clamp by default).
/// - forward:  x = u·e^{s} + t,         log|∂x/∂u| = s
/// - inverse:  u = (x − t)·e^{−s},      log|∂u/∂x| = −s
template <class T>
class AffineTransformer {
 public:
  using Scalar = T;
  static constexpr std::string_view label = "Affine";

  /// What backward needs from the last pass on a block: s = guard(a), e^{s} after forward or
  /// e^{−s} after inverse (the factor applied to the elements), and room for guard'(a).
  struct Workspace {
    Matrix<T> log_scale, scale, slope;
  };

  explicit AffineTransformer(LogScaleGuard<T> guard = {}) : guard_(guard) {}

  [[nodiscard]] static constexpr Index params_per_dim() { return 2; }
  [[nodiscard]] const LogScaleGuard<T>& guard() const { return guard_; }
  /// Throws std::invalid_argument naming `function` unless the guard's bound is usable.
  void validate(std::string_view function) const { guard_.validate(function); }

  /// x = u ⊙ e^{s} + t, log_det = s.
  template <class U, class X, class LogDet>
  void forward(ParamBlocks<const T> params, const U& u, X&& x, LogDet&& log_det, Workspace& ws) const {
    guard_.apply(params.param(1), ws.log_scale);
    ws.scale = ws.log_scale.array().exp();
    x = u.cwiseProduct(ws.scale) + params.param(0);
    log_det = ws.log_scale;
  }

  /// u = (x − t) ⊙ e^{−s}, log_det = −s.
  template <class X, class U, class LogDet>
  void inverse(ParamBlocks<const T> params, const X& x, U&& u, LogDet&& log_det, Workspace& ws) const {
    guard_.apply(params.param(1), ws.log_scale);
    u = x - params.param(0);
    ws.scale = (-ws.log_scale.array()).exp();
    u.array() *= ws.scale.array();
    log_det = -ws.log_scale;
  }

  /// Differentiates the last pass on this block (see transformer.hpp): `grad` goes from ∂L/∂out
  /// to ∂L/∂in; grad_params gets [∂L/∂t, ∂L/∂a].
  template <class U, class Grad>
  void backward(Direction pass, ParamBlocks<const T> params, const U& u, Grad&& grad,
                RowVectorCRef<T> grad_log_det, ParamBlocks<T> grad_params, Workspace& ws) const {
    auto grad_shift = grad_params.param(0);
    auto grad_s = grad_params.param(1);  // ∂L/∂s, then ∂L/∂a in place
    if (pass == Direction::forward) {
      // x = u ⊙ e^{s} + t:  ∂L/∂t = ∂L/∂x,  ∂L/∂s = ∂L/∂x ⊙ u ⊙ e^{s} + ∂L/∂ld  (log|det| = Σ s),
      //                     ∂L/∂u = ∂L/∂x ⊙ e^{s}
      grad_shift = grad;
      grad_s = grad.cwiseProduct(ws.scale).cwiseProduct(u);
      grad_s.rowwise() += grad_log_det;
      grad.array() *= ws.scale.array();
    } else {
      // u = (x − t) ⊙ e^{−s}:  ∂L/∂s = −∂L/∂u ⊙ u − ∂L/∂ld  (log|det| = −Σ s),
      //                        ∂L/∂x = ∂L/∂u ⊙ e^{−s},  ∂L/∂t = −∂L/∂x
      grad_s = -grad.cwiseProduct(u);
      grad_s.rowwise() -= grad_log_det;
      grad.array() *= ws.scale.array();
      grad_shift = -grad;
    }
    // s = guard(a):  ∂L/∂a = ∂L/∂s ⊙ guard'(a)
    guard_.derivative(params.param(1), ws.log_scale, ws.slope);
    grad_s.array() *= ws.slope.array();
  }

 private:
  LogScaleGuard<T> guard_;
};

static_assert(check_transformer<AffineTransformer<double>>());
static_assert(check_transformer<AffineTransformer<float>>());

}  // namespace knead
