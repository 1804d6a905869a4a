#pragma once
/// @file
/// TriangularAffine: a learnable affine map with a lower-triangular matrix, the dense "affine"
/// layer of the MLP flow (affine layers interleaved with PReLU) of Part 1 of Eric Jang's
/// normalizing flows tutorial; TFP calls it Affine with scale_tril.

#include <Eigen/Core>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// x = L u + b with L lower triangular, diag(L) = exp(s) > 0 (so L is always invertible).
///
/// - forward:  x = L u + b
/// - inverse:  u = L⁻¹ (x − b)   (a triangular solve)
/// - log|det ∂x/∂u| = Σ_i s_i
///
/// Parameter layout: [s (D)][entries below the diagonal, column by column (D(D−1)/2)][b (D)].
/// Starts as the identity.
template <class T>
class TriangularAffine : public LeafParameters<T> {
 public:
  using Scalar = T;

  explicit TriangularAffine(Index dim) : LeafParameters<T>(dim * (dim + 3) / 2), dim_(dim) {
    detail::check_positive("TriangularAffine", "dim", dim);
  }

  static constexpr std::string_view name() { return "TriangularAffine"; }
  [[nodiscard]] Index dim() const { return dim_; }

  /// The current L (dense, zeros above the diagonal).
  [[nodiscard]] Matrix<T> matrix() const {
    Matrix<T> l = Matrix<T>::Zero(dim_, dim_);
    l.diagonal() = log_diagonal().array().exp();
    Index at = dim_;
    for (Index j = 0; j < dim_; ++j)
      for (Index i = j + 1; i < dim_; ++i) l(i, j) = this->params_.values()[std::size_t(at++)];
    return l;
  }
  [[nodiscard]] Vector<T> shift() const { return this->params_.vector(shift_at(), dim_); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch("TriangularAffine::forward_and_log_det", u, dim_);
    l_ = matrix();
    input_ = u;
    x.noalias() = l_.template triangularView<Eigen::Lower>() * u;
    x.colwise() += shift();
    log_det.setConstant(u.cols(), log_diagonal().sum());
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    detail::check_batch("TriangularAffine::inverse_and_log_det", x, dim_);
    l_ = matrix();
    u = x.colwise() - shift();
    l_.template triangularView<Eigen::Lower>().solveInPlace(u);
    output_ = u;
    log_det.setConstant(x.cols(), -log_diagonal().sum());
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass("TriangularAffine::backward");
    const Matrix<T>& u = pass == Direction::forward ? input_ : output_;
    detail::check_backward("TriangularAffine::backward", grad_out, grad_log_det, dim_, u.cols());
    Matrix<T> outer;  // ∂L/∂L = ∂L/∂x uᵀ (forward) or −L⁻ᵀ ∂L/∂u uᵀ (inverse), lower part used
    T sign = T(1);
    if (pass == Direction::forward) {
      // x = L u + b:  ∂L/∂u = Lᵀ ∂L/∂x,  ∂L/∂b = Σ_n ∂L/∂x
      grad_in.noalias() = l_.template triangularView<Eigen::Lower>().transpose() * grad_out;
      outer.noalias() = grad_out * u.transpose();
      this->params_.gradient_vector(shift_at(), dim_) += grad_out.rowwise().sum();
    } else {
      // u = L⁻¹(x − b):  ∂L/∂x = L⁻ᵀ ∂L/∂u,  ∂L/∂L = −∂L/∂x uᵀ,  ∂L/∂b = −Σ_n ∂L/∂x
      grad_in = grad_out;
      l_.template triangularView<Eigen::Lower>().transpose().solveInPlace(grad_in);
      outer.noalias() = grad_in * u.transpose();
      sign = T(-1);
      this->params_.gradient_vector(shift_at(), dim_) -= grad_in.rowwise().sum();
    }
    // diagonal: L_ii = e^{s_i}, so ∂/∂s_i = ∂/∂L_ii · e^{s_i}; log|det| = ±Σ s adds ±Σ_n ∂L/∂ld
    auto grad = this->params_.gradients();
    const Vector<T> diagonal_scale = log_diagonal().array().exp();
    for (Index i = 0; i < dim_; ++i)
      grad[std::size_t(i)] += sign * (outer(i, i) * diagonal_scale(i) + grad_log_det.sum());
    Index at = dim_;
    for (Index j = 0; j < dim_; ++j)
      for (Index i = j + 1; i < dim_; ++i) grad[std::size_t(at++)] += sign * outer(i, j);
  }

 private:
  [[nodiscard]] Eigen::Map<const Vector<T>> log_diagonal() const { return this->params_.vector(0, dim_); }
  [[nodiscard]] Index shift_at() const { return dim_ + dim_ * (dim_ - 1) / 2; }

  Index dim_;
  Matrix<T> l_;       // L of the last pass
  Matrix<T> input_;   // u of the last forward pass
  Matrix<T> output_;  // u of the last inverse pass
};

static_assert(check_bijector<TriangularAffine<double>>());

}  // namespace knead
