#pragma once
/// @file
/// Elementwise affine bijectors: Affine, Shift and Scale.

#include <algorithm>
#include <string_view>
#include <type_traits>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// Learnable elementwise affine map (the scale is parameterised by its logarithm, so it is
/// always positive and the map always invertible).
///
/// - forward:  x = exp(s) ⊙ u + b
/// - inverse:  u = (x − b) ⊙ exp(−s)
/// - log|det ∂x/∂u| = Σ_i s_i (the same for every sample)
///
/// `HasScale`/`HasShift` select the learnable parts: Affine has both, Shift only b, Scale only s.
/// Parameter layout: [s (D) if HasScale][b (D) if HasShift]. Identity at construction.
/// `Named`: a class built on this map (ActNorm) whose name() its messages give; void for the
/// three maps here.
template <class T, bool HasScale, bool HasShift, class Named = void>
class ElementwiseAffine : public LeafParameters<T> {
  static_assert(HasScale || HasShift, "an elementwise affine map learns a scale, a shift or both");

 public:
  using Scalar = T;

  explicit ElementwiseAffine(Index dim)
      : LeafParameters<T>((Index(HasScale) + Index(HasShift)) * dim), dim_(dim) {
    detail::check_positive(name(), "dim", dim);
  }

  /// Starts from the given log-scale and/or shift (pass an empty vector for a missing part).
  ElementwiseAffine(const Vector<T>& log_scale, const Vector<T>& shift)
      : ElementwiseAffine(HasScale ? log_scale.size() : shift.size()) {
    if constexpr (HasScale) {
      detail::check_finite(name(), "log_scale", log_scale);
      // a plain copy: GCC 12 flags Eigen's vectorised one as out of bounds for a single entry
      std::copy(log_scale.data(), log_scale.data() + dim_, this->params_.vector(0, dim_).data());
    }
    if constexpr (HasShift) {
      if (shift.size() != dim_) detail::fail(name(), "shift has ", shift.size(), " entries, expected ", dim_);
      detail::check_finite(name(), "shift", shift);
      std::copy(shift.data(), shift.data() + dim_, this->params_.vector(shift_at(), dim_).data());
    }
  }

  static constexpr std::string_view name() {
    if constexpr (!std::is_void_v<Named>) return Named::layer_name;
    return HasScale && HasShift ? "Affine" : HasScale ? "Scale" : "Shift";
  }
  [[nodiscard]] Index dim() const { return dim_; }

  /// Current log-scale s (zeros for Shift) and shift b (zeros for Scale).
  [[nodiscard]] Vector<T> log_scale() const {
    if constexpr (HasScale) return this->params_.vector(0, dim_);
    return Vector<T>::Zero(dim_);
  }
  [[nodiscard]] Vector<T> shift() const {
    if constexpr (HasShift) return this->params_.vector(shift_at(), dim_);
    return Vector<T>::Zero(dim_);
  }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch(name(), u, dim_);
    input_ = u;
    x = u;
    if constexpr (HasScale) x.array().colwise() *= this->params_.vector(0, dim_).array().exp();
    if constexpr (HasShift) x.colwise() += this->params_.vector(shift_at(), dim_);
    log_det.setConstant(u.cols(), total_log_scale());
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    detail::check_batch(name(), x, dim_);
    input_ = x;
    u = x;
    if constexpr (HasShift) u.colwise() -= this->params_.vector(shift_at(), dim_);
    if constexpr (HasScale) u.array().colwise() *= (-this->params_.vector(0, dim_).array()).exp();
    log_det.setConstant(x.cols(), -total_log_scale());
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass(name());
    detail::check_backward(name(), grad_out, grad_log_det, dim_, input_.cols());
    const T sum_grad_log_det = grad_log_det.sum();
    Vector<T> scale = Vector<T>::Ones(dim_);
    if constexpr (HasScale) scale = this->params_.vector(0, dim_).array().exp();
    if (pass == Direction::forward) {
      // x = e^s u + b:  ∂L/∂u = e^s ∂L/∂x;  ∂L/∂s = Σ_n ∂L/∂x e^s u + Σ_n ∂L/∂ld;  ∂L/∂b = Σ_n ∂L/∂x
      grad_in = grad_out.array().colwise() * scale.array();
      if constexpr (HasScale)
        this->params_.gradient_vector(0, dim_).array() +=
            (grad_in.array() * input_.array()).rowwise().sum() + sum_grad_log_det;
      if constexpr (HasShift) this->params_.gradient_vector(shift_at(), dim_) += grad_out.rowwise().sum();
    } else {
      // u = (x − b) e^{−s}:  ∂L/∂x = e^{−s} ∂L/∂u;  ∂L/∂b = −Σ_n ∂L/∂x;
      // ∂L/∂s = −Σ_n ∂L/∂u u − Σ_n ∂L/∂ld
      grad_in = grad_out.array().colwise() / scale.array();
      if constexpr (HasScale) {
        Matrix<T> centred = input_;
        if constexpr (HasShift) centred.colwise() -= this->params_.vector(shift_at(), dim_);
        this->params_.gradient_vector(0, dim_).array() -=
            (grad_in.array() * centred.array()).rowwise().sum() + sum_grad_log_det;
      }
      if constexpr (HasShift) this->params_.gradient_vector(shift_at(), dim_) -= grad_in.rowwise().sum();
    }
  }

 private:
  [[nodiscard]] static constexpr Index shift_slot() { return HasScale ? 1 : 0; }
  [[nodiscard]] Index shift_at() const { return shift_slot() * dim_; }
  [[nodiscard]] T total_log_scale() const {
    if constexpr (HasScale) return this->params_.vector(0, dim_).sum();
    return T(0);
  }

  Index dim_;
  Matrix<T> input_;  // input of the last pass, for backward
};

template <class T>
using Affine = ElementwiseAffine<T, true, true>;
template <class T>
using Shift = ElementwiseAffine<T, false, true>;
template <class T>
using Scale = ElementwiseAffine<T, true, false>;

static_assert(check_bijector<Affine<double>>());
static_assert(check_bijector<Shift<float>>());
static_assert(check_bijector<Scale<float>>());

}  // namespace knead
