#pragma once
/// @file
/// LeakyReLU (fixed slope) and PReLU (learnable slope): the elementwise nonlinearity between the
/// affine layers of the "MLP flow" of Part 1 of Eric Jang's normalizing flows tutorial.

#include <cmath>
#include <string_view>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// Leaky rectifier with a positive slope a on the negative half-line (He et al. 2015, "Delving
/// Deep into Rectifiers", for the learnable PReLU). a > 0 makes it a bijection of ℝ onto ℝ.
///
/// - forward:  x_i = u_i if u_i ≥ 0, else a_i u_i
/// - inverse:  u_i = x_i if x_i ≥ 0, else x_i / a_i   (x_i has the sign of u_i)
/// - log|det ∂x/∂u| = Σ_{i: u_i < 0} log a_i
///
/// The slope is kept as θ = log a, so it stays positive under any gradient step.
/// `Learnable = true` (PReLU): θ is a parameter, one per dimension ([θ (D)]) or one shared by all
/// ([θ (1)]). `Learnable = false` (LeakyReLU): the slope is fixed and there are no parameters.
/// At u = 0 the map has a kink; backward uses the derivative from the right (slope 1).
template <class T, bool Learnable>
class LeakyRectifier : public LeafParameters<T> {
 public:
  using Scalar = T;

  /// PReLU: all slopes start at `initial_slope`.
  explicit LeakyRectifier(Index dim, T initial_slope = T(0.5), bool per_dimension = true) requires Learnable
      : LeafParameters<T>(per_dimension ? dim : 1),
        dim_(dim),
        per_dimension_(per_dimension) {
    detail::check_positive(name(), "dim", dim);
    for (auto& theta : this->params_.values()) theta = checked_log_slope(initial_slope);
  }

  /// LeakyReLU with the fixed slope `slope`.
  explicit LeakyRectifier(Index dim, T slope) requires(!Learnable)
      : LeafParameters<T>(0), dim_(dim), per_dimension_(false), fixed_log_slope_(checked_log_slope(slope)) {
    detail::check_positive(name(), "dim", dim);
  }

  static constexpr std::string_view name() { return Learnable ? "PReLU" : "LeakyReLU"; }
  [[nodiscard]] Index dim() const { return dim_; }
  /// True when each dimension has its own slope (always false for LeakyReLU).
  [[nodiscard]] bool per_dimension() const { return per_dimension_; }

  /// The current slopes a = exp(θ), one per dimension (a shared slope is repeated).
  [[nodiscard]] Vector<T> slope() const { return log_slope().array().exp(); }
  /// LeakyReLU: the fixed θ = log a exactly as stored (a saved flow must reproduce it bit for bit).
  [[nodiscard]] T fixed_log_slope() const requires(!Learnable) { return fixed_log_slope_; }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    run(Learnable ? "PReLU::forward_and_log_det" : "LeakyReLU::forward_and_log_det", u, x, log_det, T(1));
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    run(Learnable ? "PReLU::inverse_and_log_det" : "LeakyReLU::inverse_and_log_det", x, u, log_det, T(-1));
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    constexpr std::string_view function = Learnable ? "PReLU::backward" : "LeakyReLU::backward";
    const Direction pass = this->last_pass(function);
    detail::check_backward(function, grad_out, grad_log_det, dim_, input_.cols());
    // With σ = +1 (forward) or −1 (inverse), both passes are out_i = in_i · e^{σθ_i} where in_i < 0
    // and out_i = in_i elsewhere; log|det| = σ Σ_{i: in_i<0} θ_i. So on the negative entries
    //   ∂L/∂in = e^{σθ} ∂L/∂out,   ∂L/∂θ_i = σ Σ_n [in<0] (∂L/∂out · out + ∂L/∂ld_n),
    // and ∂L/∂in = ∂L/∂out on the others. A shared θ sums the per-dimension terms.
    const T sign = pass == Direction::forward ? T(1) : T(-1);
    const Vector<T> factor = (sign * log_slope()).array().exp();
    const auto negative = (input_.array() < T(0));
    grad_in = negative.select(grad_out.array().colwise() * factor.array(), grad_out.array());
    if constexpr (Learnable) {
      const Matrix<T> out = negative.select(input_.array().colwise() * factor.array(), input_.array());
      const Matrix<T> per_entry =
          negative.select((grad_out.array() * out.array()).rowwise() + grad_log_det.array(), T(0));
      const Vector<T> per_dim = sign * per_entry.rowwise().sum();
      if (per_dimension_)
        this->params_.gradient_vector(0, dim_) += per_dim;
      else
        this->params_.gradients()[0] += per_dim.sum();
    }
  }

 private:
  /// θ = log a, validating a > 0 and finite.
  static T checked_log_slope(T slope) {
    if (!(slope > T(0)) || !std::isfinite(slope))
      detail::fail(name(), "slope must be positive and finite, got ", slope);
    return std::log(slope);
  }

  /// θ per dimension (a shared or fixed θ is repeated).
  [[nodiscard]] Vector<T> log_slope() const {
    if constexpr (Learnable) {
      if (per_dimension_) return this->params_.vector(0, dim_);
      return Vector<T>::Constant(dim_, this->params_.values()[0]);
    }
    return Vector<T>::Constant(dim_, fixed_log_slope_);
  }

  /// out = in on the non-negative entries and in · e^{σθ} on the negative ones.
  void run(std::string_view function, MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& log_det, T sign) {
    detail::check_batch(function, in, dim_);
    input_ = in;
    const Vector<T> theta = log_slope();
    const Vector<T> factor = (sign * theta).array().exp();
    const auto negative = (in.array() < T(0));
    out = negative.select(in.array().colwise() * factor.array(), in.array());
    log_det.noalias() = sign * (theta.transpose() * negative.template cast<T>().matrix());
  }

  Index dim_;
  bool per_dimension_;
  T fixed_log_slope_ = T(0);  // θ of LeakyReLU (unused by PReLU)
  Matrix<T> input_;           // input of the last pass, for backward
};

/// Learnable leaky rectifier: `PReLU<T>(dim, initial_slope = 0.5, per_dimension = true)`.
template <class T>
using PReLU = LeakyRectifier<T, true>;
/// Fixed-slope leaky rectifier: `LeakyReLU<T>(dim, slope)`.
template <class T>
using LeakyReLU = LeakyRectifier<T, false>;

static_assert(check_bijector<PReLU<double>>());
static_assert(check_bijector<LeakyReLU<double>>());

}  // namespace knead
