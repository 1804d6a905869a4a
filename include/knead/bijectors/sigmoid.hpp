#pragma once
/// @file
/// Sigmoid: maps ℝ onto an open interval (a, b) per dimension, so that a flow's samples of a
/// bounded quantity (a fraction, a percentage, an angle) always lie inside its interval. Its inverse
/// is the logit, the usual preprocessing of bounded data. TFP calls it Sigmoid(low, high).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// x_i = a_i + (b_i − a_i) σ(u_i) with σ(u) = 1 / (1 + e^{−u}), per dimension; w_i = b_i − a_i.
///
/// - forward:  x = a + w σ(u)
/// - inverse:  u = logit((x − a) / w) = log(x − a) − log(b − x)
/// - log|det ∂x/∂u| = Σ_i log w_i + log σ(u_i) + log σ(−u_i)
///                  = Σ_i log w_i − |u_i| − 2 log(1 + e^{−|u_i|})   (the form used: finite for any u)
///   and log|det ∂u/∂x| = Σ_i log w_i − log(x_i − a_i) − log(b_i − x_i), its negative at x = f(u).
///
/// The bounds are fixed (no parameters). A dimension with the bounds (−∞, ∞) is left unchanged
/// (the identity, log-det 0), so one Sigmoid serves a table where only some columns are bounded.
///
/// Rounding: for |u| beyond about 17 (float) or 37 (double), a + w σ(u) rounds to a bound, so the
/// forward pass clamps x to the nearest representable value strictly inside (a, b): samples never
/// lie on a bound. Its log-det and backward are those of the unclamped map.
///
/// Out of support: the density of x outside (a, b), or on a bound, is 0 (log density −∞), and no u
/// maps there. The inverse pass refuses such an x (and NaN) with std::invalid_argument naming the
/// dimension, the value and the interval, as TransformedDistribution refuses a non-finite x: a
/// log-prob is never silently −∞, NaN or finite for an impossible value.
template <class T>
class Sigmoid : public LeafParameters<T> {
 public:
  using Scalar = T;

  /// The interval (low_i, high_i) of each dimension: both finite with low_i < high_i, or
  /// (−∞, ∞) for a dimension left unchanged.
  Sigmoid(const Vector<T>& low, const Vector<T>& high) : LeafParameters<T>(0), low_(low), high_(high) {
    detail::check_positive(name(), "dim", low.size());
    if (high.size() != low.size())
      detail::fail(name(), "low has ", low.size(), " entries and high ", high.size(),
                   "; expected one each per dimension");
    log_width_.setZero(low.size());
    for (Index i = 0; i < low.size(); ++i) {
      const T a = low(i), b = high(i);
      if (a == -std::numeric_limits<T>::infinity() && b == std::numeric_limits<T>::infinity()) continue;
      if (!std::isfinite(a) || !std::isfinite(b) || !(a < b) || !std::isfinite(b - a))
        detail::fail(name(), "dimension ", i, " has the interval (", shown(a), ", ", shown(b),
                     "); expected finite bounds low < high (with a finite width), or (-inf, inf) to leave it "
                     "unchanged");
      if (!(inside_low(a, b) < b))
        detail::fail(name(), "dimension ", i, " has the interval (", shown(a), ", ", shown(b),
                     "), which holds no value of the scalar type strictly inside");
      log_width_(i) = std::log(b - a);
    }
  }

  /// The interval (low, high) on each of `dim` dimensions.
  Sigmoid(Index dim, T low, T high)
      : Sigmoid(Vector<T>::Constant(checked_dim(dim), low), Vector<T>::Constant(checked_dim(dim), high)) {}

  static constexpr std::string_view name() { return "Sigmoid"; }
  [[nodiscard]] Index dim() const { return low_.size(); }
  [[nodiscard]] const Vector<T>& low() const { return low_; }
  [[nodiscard]] const Vector<T>& high() const { return high_; }
  /// False for a dimension left unchanged (the interval (−∞, ∞)).
  [[nodiscard]] bool bounded(Index i) const { return std::isfinite(low_(i)); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch("Sigmoid::forward_and_log_det", u, dim());
    input_ = u;
    x = u;
    log_det.setZero(u.cols());
    for (Index j = 0; j < u.cols(); ++j)
      for (Index i = 0; i < dim(); ++i) {
        if (!bounded(i)) continue;
        const T a = low_(i), b = high_(i), v = u(i, j);
        const T e = std::exp(-std::abs(v));  // in (0, 1]: no overflow for any u
        // σ(−|u|) = e / (1 + e); starting from the nearer bound keeps the relative precision of the
        // small distance to it: x = a + w σ(u) for u ≤ 0, x = b − w σ(−u) for u > 0.
        const T near = (b - a) * (e / (T(1) + e));
        const T value = v <= T(0) ? a + near : b - near;
        x(i, j) = std::clamp(value, inside_low(a, b), inside_high(a, b));
        // log σ(u) + log σ(−u) = −|u| − 2 log(1 + e^{−|u|})
        log_det(j) += log_width_(i) - std::abs(v) - T(2) * std::log1p(e);
      }
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    constexpr std::string_view function = "Sigmoid::inverse_and_log_det";
    detail::check_batch(function, x, dim());
    input_ = x;
    u = x;
    log_det.setZero(x.cols());
    for (Index j = 0; j < x.cols(); ++j)
      for (Index i = 0; i < dim(); ++i) {
        if (!bounded(i)) continue;
        const T a = low_(i), b = high_(i), v = x(i, j);
        if (!(a < v && v < b))
          detail::fail(function, "dimension ", i, " has the value ", shown(v),
                       ", not inside its open interval (", shown(a), ", ", shown(b),
                       "): the density there is 0");
        // x − a and b − x are exact near either bound (Sterbenz), so u keeps its precision there
        const T log_above = std::log(v - a), log_below = std::log(b - v);
        u(i, j) = log_above - log_below;
        log_det(j) += log_width_(i) - log_above - log_below;
      }
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass("Sigmoid::backward");
    detail::check_backward("Sigmoid::backward", grad_out, grad_log_det, dim(), input_.cols());
    grad_in = grad_out;  // unchanged dimensions: ∂L/∂in = ∂L/∂out
    for (Index j = 0; j < input_.cols(); ++j)
      for (Index i = 0; i < dim(); ++i) {
        if (!bounded(i)) continue;
        const T a = low_(i), b = high_(i), v = input_(i, j), g = grad_out(i, j), g_ld = grad_log_det(j);
        if (pass == Direction::forward) {
          // x = a + w σ(u):  ∂x/∂u = w σ(u) σ(−u);
          // ℓ = log w + log σ(u) + log σ(−u):  ∂ℓ/∂u = σ(−u) − σ(u)
          // ∂L/∂u = ∂L/∂x · w σ(u) σ(−u) + ∂L/∂ℓ · (σ(−u) − σ(u))
          const T e = std::exp(-std::abs(v));
          const T small = e / (T(1) + e), large = T(1) / (T(1) + e);  // σ(−|u|), σ(|u|)
          const T slope = v <= T(0) ? large - small : small - large;  // σ(−u) − σ(u)
          grad_in(i, j) = g * (b - a) * small * large + g_ld * slope;
        } else {
          // u = log(x − a) − log(b − x):  ∂u/∂x = 1/(x − a) + 1/(b − x);
          // ℓ = log w − log(x − a) − log(b − x):  ∂ℓ/∂x = −1/(x − a) + 1/(b − x)
          const T above = T(1) / (v - a), below = T(1) / (b - v);
          grad_in(i, j) = g * (above + below) + g_ld * (below - above);
        }
      }
  }

 private:
  static Index checked_dim(Index dim) {
    detail::check_positive(name(), "dim", dim);
    return dim;
  }
  /// The shortest text that reads back as v (a value just outside a bound is not shown as the bound).
  static std::string shown(T v) {
    char text[64];
    const auto end = std::to_chars(text, text + sizeof text, v).ptr;
    return std::string(text, end);
  }
  /// The values nearest to a and b strictly inside (a, b).
  static T inside_low(T a, T b) { return std::nextafter(a, b); }
  static T inside_high(T a, T b) { return std::nextafter(b, a); }

  Vector<T> low_, high_;
  Vector<T> log_width_;  // log(b − a), 0 on unchanged dimensions
  Matrix<T> input_;      // input of the last pass, for backward
};

static_assert(check_bijector<Sigmoid<double>>());
static_assert(check_bijector<Sigmoid<float>>());

}  // namespace knead
