#pragma once
/// @file
/// RationalQuadraticTransformer<T>: the monotone rational-quadratic spline of Neural Spline Flows
/// (Durkan, Bekasov, Murray & Papamakarios 2019) on [−B, B], the identity outside it; the
/// elementwise map of RationalQuadraticCoupling and RationalQuadraticAutoregressive. The spline's
/// math (formulas and derivations) is in rational_quadratic_spline.hpp.

#include <cmath>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/transformers/rational_quadratic_spline.hpp"
#include "knead/transformers/transformer.hpp"

namespace knead {

/// The spline's shape: K bins on [−B, B], and floors that keep every bin and slope away from 0.
template <class T>
struct RationalQuadraticOptions {
  Index bins = 8;              ///< K ≥ 2
  T bound = T(3);              ///< B > 0: the spline covers [−B, B], the identity outside
  T min_bin_width = T(1e-3);   ///< each bin is at least 2B·min_bin_width wide (K·min < 1)
  T min_bin_height = T(1e-3);  ///< each bin is at least 2B·min_bin_height high (K·min < 1)
  T min_derivative = T(1e-3);  ///< every interior knot derivative exceeds this (> 0)
};

/// The rational-quadratic spline transformer. Parameters per dimension (P = 3K − 1): K raw widths
/// a, K raw heights b, K − 1 raw interior derivatives c; bin widths 2B (m_w + (1 − K m_w)
/// softmax(a)), heights alike, knot derivatives m_δ + softplus(c + c₀) inside and 1 at ±B (so the
/// map joins the identity tails with a continuous derivative).
/// - forward:  x = f(u) by the rational-quadratic formula in u's bin; x = u outside [−B, B]
/// - inverse:  u = f⁻¹(x) by the root of the bin's quadratic; u = x outside [−B, B]
/// - log|∂x/∂u| = 2 log s + log M − 2 log D in the bin (0 outside); the inverse's is its negative.
template <class T>
class RationalQuadraticTransformer {
 public:
  using Scalar = T;
  static constexpr std::string_view label = "RationalQuadratic";

  /// What backward needs from the last pass: the bin of each element (−1 in the identity tails),
  /// the pass's outputs, and scratch knots for one element.
  struct Workspace {
    Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic> bin;
    Matrix<T> out, log_det;
    detail::RationalQuadraticKnots<T> knots;
  };

  explicit RationalQuadraticTransformer(RationalQuadraticOptions<T> options = {}) : options_(options) {}

  [[nodiscard]] Index params_per_dim() const { return 3 * options_.bins - 1; }
  [[nodiscard]] const RationalQuadraticOptions<T>& options() const { return options_; }

  /// Throws std::invalid_argument naming `function` and the value unless the options make a spline.
  void validate(std::string_view function) const {
    const auto& o = options_;
    if (o.bins < 2) detail::fail(function, "spline bins must be at least 2, got ", o.bins);
    if (!(std::isfinite(double(o.bound)) && o.bound > T(0)))
      detail::fail(function, "spline bound must be finite and positive, got ", o.bound);
    auto check_floor = [&](const char* what, T value) {
      if (!(std::isfinite(double(value)) && value >= T(0) && double(o.bins) * double(value) < 1.0))
        detail::fail(function, "spline ", what, " must be at least 0 with bins·", what, " < 1, got ", value,
                     " for ", o.bins, " bins");
    };
    check_floor("min_bin_width", o.min_bin_width);
    check_floor("min_bin_height", o.min_bin_height);
    if (!(std::isfinite(double(o.min_derivative)) && o.min_derivative > T(0) && o.min_derivative < T(1)))
      detail::fail(function, "spline min_derivative must be in (0, 1), got ", o.min_derivative);
  }

  /// x = f(u), log_det = log|∂x/∂u|.
  template <class U, class X, class LogDet>
  void forward(ParamBlocks<const T> params, const U& u, X&& x, LogDet&& log_det, Workspace& ws) const {
    run(params, u, ws, Direction::forward);
    x = ws.out;
    log_det = ws.log_det;
  }

  /// u = f⁻¹(x), log_det = log|∂u/∂x| = −log|∂x/∂u| at u.
  template <class X, class U, class LogDet>
  void inverse(ParamBlocks<const T> params, const X& x, U&& u, LogDet&& log_det, Workspace& ws) const {
    run(params, x, ws, Direction::inverse);
    u = ws.out;
    log_det = ws.log_det;
  }

  /// Differentiates the last pass on this block (see transformer.hpp): `grad` goes from ∂L/∂out to
  /// ∂L/∂in; grad_params gets ∂L/∂ of the 3K − 1 raw parameters (0 in the identity tails).
  /// - forward x = f(u; θ), ld = log f'(u; θ): bin_gradient at (∂L/∂x, ∂L/∂ld) gives ∂L/∂u and ∂L/∂θ.
  /// - inverse u = f⁻¹(x; θ), ld⁻ = −log f'(u; θ): from f(u(x, θ); θ) = x, ∂u/∂x = 1/f' and
  ///   ∂u/∂θ = −f_θ / f', so with ld_u = ∂log f'/∂u and λ = (∂L/∂u − ∂L/∂ld⁻ · ld_u) / f':
  ///   ∂L/∂x = λ,  ∂L/∂θ = −λ f_θ − ∂L/∂ld⁻ · ld_θ, i.e. the forward rule's ∂L/∂θ at (−λ, −∂L/∂ld⁻).
  template <class U, class Grad>
  void backward(Direction pass, ParamBlocks<const T> params, const U& u, Grad&& grad,
                RowVectorCRef<T> grad_log_det, ParamBlocks<T> grad_params, Workspace& ws) const {
    const Index k = options_.bins, p_count = params_per_dim();
    auto& knots = ws.knots;
    knots.resize(k);
    for (Index j = 0; j < u.cols(); ++j)
      for (Index i = 0; i < u.rows(); ++i) {
        T* out = grad_params.data + i + j * grad_params.outer_stride;
        const Index b = ws.bin(i, j);
        if (b < 0) {  // identity: ∂L/∂in = ∂L/∂out, no parameter enters
          for (Index p = 0; p < p_count; ++p) out[p * grad_params.param_stride] = T(0);
          continue;
        }
        load(params, i, j, knots);
        const auto bin = knots.bin(b);
        const T xi = detail::bin_position(bin, T(u(i, j)));
        const T grad_ld = grad_log_det(j);
        detail::RationalQuadraticBinGrad<T> g;
        if (pass == Direction::forward) {
          g = detail::bin_gradient(bin, xi, T(grad(i, j)), grad_ld);
          grad(i, j) = g.u;
        } else {
          const T slope = std::exp(detail::bin_log_slope(bin, xi));
          const T lambda = (T(grad(i, j)) - grad_ld * detail::bin_log_slope_derivative(bin, xi)) / slope;
          g = detail::bin_gradient(bin, xi, -lambda, -grad_ld);
          grad(i, j) = lambda;
        }
        knots.raw_gradient(k, b, g, options_.bound, options_.min_bin_width, options_.min_bin_height,
                           options_.min_derivative, out, grad_params.param_stride);
      }
  }

 private:
  /// The raw parameters of element (i, j) into knots.raw, then its knots.
  void load(ParamBlocks<const T> params, Index i, Index j, detail::RationalQuadraticKnots<T>& knots) const {
    const T* first = params.data + i + j * params.outer_stride;
    for (Index p = 0; p < params_per_dim(); ++p) knots.raw[std::size_t(p)] = first[p * params.param_stride];
    knots.build(options_.bins, options_.bound, options_.min_bin_width, options_.min_bin_height,
                options_.min_derivative);
  }

  /// One pass into ws.out and ws.log_det, recording each element's bin.
  template <class In>
  void run(ParamBlocks<const T> params, const In& in, Workspace& ws, Direction pass) const {
    const Index r = in.rows(), n = in.cols(), k = options_.bins;
    const T bound = options_.bound;
    resize_workspace(ws.out, r, n);
    resize_workspace(ws.log_det, r, n);
    resize_workspace(ws.bin, r, n);
    ws.knots.resize(k);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < r; ++i) {
        const T v = in(i, j);
        if (!(v >= -bound && v <= bound)) {  // the identity tails (and NaN, passed through)
          ws.out(i, j) = v;
          ws.log_det(i, j) = T(0);
          ws.bin(i, j) = -1;
          continue;
        }
        load(params, i, j, ws.knots);
        if (pass == Direction::forward) {
          const Index b = detail::RationalQuadraticKnots<T>::locate(ws.knots.xs, k, v);
          const auto bin = ws.knots.bin(b);
          const T xi = detail::bin_position(bin, v);
          ws.out(i, j) = detail::bin_value(bin, xi);
          ws.log_det(i, j) = detail::bin_log_slope(bin, xi);
          ws.bin(i, j) = b;
        } else {
          const Index b = detail::RationalQuadraticKnots<T>::locate(ws.knots.ys, k, v);
          const auto bin = ws.knots.bin(b);
          const T xi = detail::bin_inverse_position(bin, v);
          ws.out(i, j) = bin.x0 + xi * bin.w;
          ws.log_det(i, j) = -detail::bin_log_slope(bin, xi);
          ws.bin(i, j) = b;
        }
      }
  }

  RationalQuadraticOptions<T> options_;
};

static_assert(check_transformer<RationalQuadraticTransformer<double>>());
static_assert(check_transformer<RationalQuadraticTransformer<float>>());

}  // namespace knead
