#pragma once
/// @file
/// LuLinear: a learnable invertible linear map stored as a permuted LU factorisation (Glow's
/// "invertible 1×1 convolution" in its LU form, Kingma & Dhariwal 2018), the learnable mixing layer
/// placed between coupling or autoregressive layers instead of a fixed permutation.

#include <cmath>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "knead/bijectors/permute.hpp"
#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// x = W u + b with W = P L A, A = U + diag(exp(s)):
/// P a fixed permutation ((P v)_i = v_{p[i]}, as Permute's forward), L unit lower triangular,
/// U strictly upper triangular, s the log of A's diagonal (so A, and W, are always invertible).
///
/// - forward:  x = W u + b                      (one dense D×D by D×N product)
/// - inverse:  u = A⁻¹ L⁻¹ P⁻¹ (x − b)          (a gather by p⁻¹, then two triangular solves)
/// - log|det ∂x/∂u| = Σ_i s_i                   (|det P| = 1, det L = 1, det A = Π exp(s_i))
///
/// Parameter layout: [s (D)][L below the diagonal, column by column (D(D−1)/2)]
/// [U above the diagonal, column by column (D(D−1)/2)][b (D)]: D(D+1) values.
/// Starts as the permutation itself (L = I, U = 0, s = 0, b = 0), so a flow that mixes with it
/// begins as the same flow with a Permute in its place. P is not learnt; it is saved with the map.
/// Glow's other start, the LU factors of a random rotation, is not provided.
template <class T>
class LuLinear : public LeafParameters<T> {
 public:
  using Scalar = T;

  /// P given by `permutation` (each of 0, …, D−1 exactly once, D ≥ 1).
  explicit LuLinear(std::vector<Index> permutation)
      : LeafParameters<T>(Index(permutation.size()) * (Index(permutation.size()) + 1)),
        perm_(std::move(permutation)),
        inverse_(checked_inverse(perm_)),
        dim_(Index(perm_.size())) {}

  /// P a uniformly random permutation of D dimensions, the same for the same seed everywhere
  /// (Permute::random's shuffle).
  explicit LuLinear(Index dim, std::uint64_t seed = 0)
      : LuLinear(Permute<T>::random(checked_dim(dim), seed).permutation()) {}

  static constexpr std::string_view name() { return "LuLinear"; }
  [[nodiscard]] Index dim() const { return dim_; }
  /// p: (P v)_i = v_{p[i]}.
  [[nodiscard]] const std::vector<Index>& permutation() const { return perm_; }

  [[nodiscard]] Eigen::Map<const Vector<T>> log_diagonal() const { return this->params_.vector(0, dim_); }
  [[nodiscard]] Vector<T> shift() const { return this->params_.vector(shift_at(), dim_); }
  /// The current L (dense, ones on the diagonal, zeros above it).
  [[nodiscard]] Matrix<T> lower() const {
    Matrix<T> l;
    fill_lower(l);
    return l;
  }
  /// The current A = U + diag(exp(s)) (dense, zeros below the diagonal).
  [[nodiscard]] Matrix<T> upper() const {
    Matrix<T> a;
    fill_upper(a);
    return a;
  }
  /// The current W = P L A (dense).
  [[nodiscard]] Matrix<T> matrix() const {
    const Matrix<T> la = lower() * upper();
    Matrix<T> w(dim_, dim_);
    for (Index i = 0; i < dim_; ++i) w.row(i) = la.row(perm_[std::size_t(i)]);
    return w;
  }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    constexpr std::string_view function = "LuLinear::forward_and_log_det";
    detail::check_batch(function, u, dim_);
    refresh_factors(function);
    // W = P (L A): row i of W is row p[i] of L A
    resize_workspace(product_, dim_, dim_);
    product_.noalias() = l_ * a_;
    resize_workspace(w_, dim_, dim_);
    for (Index i = 0; i < dim_; ++i) w_.row(i) = product_.row(perm_[std::size_t(i)]);
    resize_workspace(x, dim_, u.cols());
    x.noalias() = w_ * u;
    x.colwise() += this->params_.vector(shift_at(), dim_);
    resize_workspace(input_, dim_, u.cols());
    input_ = u;
    resize_workspace(log_det, u.cols());
    log_det.setConstant(log_diagonal().sum());
    cols_ = u.cols();
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    constexpr std::string_view function = "LuLinear::inverse_and_log_det";
    detail::check_batch(function, x, dim_);
    refresh_factors(function);
    // P⁻¹ (x − b): (P⁻¹ y)_j = y_{q[j]} with q = p⁻¹
    const auto b = this->params_.vector(shift_at(), dim_);
    resize_workspace(u, dim_, x.cols());
    for (Index n = 0; n < x.cols(); ++n)
      for (Index j = 0; j < dim_; ++j) {
        const Index from = inverse_[std::size_t(j)];
        u(j, n) = x(from, n) - b(from);
      }
    l_.template triangularView<Eigen::UnitLower>().solveInPlace(u);
    a_.template triangularView<Eigen::Upper>().solveInPlace(u);
    resize_workspace(output_, dim_, x.cols());
    output_ = u;
    resize_workspace(log_det, x.cols());
    log_det.setConstant(-log_diagonal().sum());
    cols_ = x.cols();
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass("LuLinear::backward");
    detail::check_backward("LuLinear::backward", grad_out, grad_log_det, dim_, cols_);
    // Both directions reduce to g_x = ∂L/∂x (x the data side) and u (the noise side):
    //   ∂L/∂W = σ g_x uᵀ with σ = +1 (forward) or −1 (inverse: du = −W⁻¹ dW u),
    //   and with H = σ Pᵀ g_x uᵀ (Pᵀ = P⁻¹, a gather by q):
    //   W = P L A:  ∂L/∂L = H Aᵀ (below the diagonal used),  ∂L/∂A = Lᵀ H (on and above it).
    const Index n = cols_;
    resize_workspace(permuted_grad_, dim_, n);  // Pᵀ g_x
    T sign = T(1);
    if (pass == Direction::forward) {
      // x = W u + b:  ∂L/∂u = Wᵀ ∂L/∂x,  ∂L/∂b = Σ_n ∂L/∂x
      resize_workspace(grad_in, dim_, n);
      grad_in.noalias() = w_.transpose() * grad_out;
      this->params_.gradient_vector(shift_at(), dim_) += grad_out.rowwise().sum();
      for (Index c = 0; c < n; ++c)
        for (Index j = 0; j < dim_; ++j) permuted_grad_(j, c) = grad_out(inverse_[std::size_t(j)], c);
    } else {
      // u = A⁻¹ L⁻¹ P⁻¹ (x − b):  ∂L/∂x = W⁻ᵀ ∂L/∂u = P L⁻ᵀ A⁻ᵀ ∂L/∂u  (P⁻ᵀ = P),
      // so Pᵀ ∂L/∂x = L⁻ᵀ A⁻ᵀ ∂L/∂u;  ∂L/∂b = −Σ_n ∂L/∂x
      permuted_grad_ = grad_out;
      a_.template triangularView<Eigen::Upper>().transpose().solveInPlace(permuted_grad_);
      l_.template triangularView<Eigen::UnitLower>().transpose().solveInPlace(permuted_grad_);
      resize_workspace(grad_in, dim_, n);
      for (Index c = 0; c < n; ++c)
        for (Index i = 0; i < dim_; ++i) grad_in(i, c) = permuted_grad_(perm_[std::size_t(i)], c);
      this->params_.gradient_vector(shift_at(), dim_) -= grad_in.rowwise().sum();
      sign = T(-1);
    }
    const Matrix<T>& u = pass == Direction::forward ? input_ : output_;
    resize_workspace(outer_, dim_, dim_);
    outer_.noalias() = permuted_grad_ * u.transpose();  // H / σ
    resize_workspace(grad_l_, dim_, dim_);
    grad_l_.noalias() = outer_ * a_.transpose();  // ∂L/∂L / σ
    resize_workspace(grad_a_, dim_, dim_);
    grad_a_.noalias() = l_.transpose() * outer_;  // ∂L/∂A / σ
    auto grad = this->params_.gradients();
    // A_ii = e^{s_i}: ∂L/∂s_i = ∂L/∂A_ii · e^{s_i}; log|det| = σ Σ s adds σ Σ_n ∂L/∂log_det
    const T grad_log_det_sum = grad_log_det.sum();
    for (Index i = 0; i < dim_; ++i)
      grad[std::size_t(i)] += sign * (grad_a_(i, i) * a_(i, i) + grad_log_det_sum);
    std::size_t at = std::size_t(dim_);
    for (Index j = 0; j < dim_; ++j)
      for (Index i = j + 1; i < dim_; ++i) grad[at++] += sign * grad_l_(i, j);
    for (Index j = 0; j < dim_; ++j)
      for (Index i = 0; i < j; ++i) grad[at++] += sign * grad_a_(i, j);
  }

 private:
  static Index checked_dim(Index dim) {
    detail::check_positive("LuLinear", "dim", dim);
    return dim;
  }
  /// q = p⁻¹, after checking that p is a permutation.
  static std::vector<Index> checked_inverse(const std::vector<Index>& p) {
    const Index d = Index(p.size());
    if (d == 0) detail::fail("LuLinear", "empty permutation (it needs at least one entry)");
    std::vector<Index> q(p.size(), -1);
    for (Index i = 0; i < d; ++i) {
      const Index to = p[std::size_t(i)];
      if (to < 0 || to >= d)
        detail::fail("LuLinear", "permutation entry ", to, " at position ", i, " is out of range [0, ", d,
                     ")");
      Index& slot = q[std::size_t(to)];
      if (slot >= 0)
        detail::fail("LuLinear", "permutation entry ", to, " is repeated (at positions ", slot, " and ", i,
                     ")");
      slot = i;
    }
    return q;
  }

  [[nodiscard]] Index lower_at() const { return dim_; }
  [[nodiscard]] Index upper_at() const { return dim_ + dim_ * (dim_ - 1) / 2; }
  [[nodiscard]] Index shift_at() const { return dim_ * dim_; }

  void fill_lower(Matrix<T>& l) const {
    resize_workspace(l, dim_, dim_);
    l.setIdentity();
    const auto values = this->params_.values();
    std::size_t at = std::size_t(lower_at());
    for (Index j = 0; j < dim_; ++j)
      for (Index i = j + 1; i < dim_; ++i) l(i, j) = values[at++];
  }
  void fill_upper(Matrix<T>& a) const {
    resize_workspace(a, dim_, dim_);
    a.setZero();
    const auto values = this->params_.values();
    for (Index i = 0; i < dim_; ++i) a(i, i) = std::exp(values[std::size_t(i)]);
    std::size_t at = std::size_t(upper_at());
    for (Index j = 0; j < dim_; ++j)
      for (Index i = 0; i < j; ++i) a(i, j) = values[at++];
  }

  /// L and A from the parameters, once per pass; non-finite parameters, or an s whose exp is 0 or
  /// infinite (A singular), are refused.
  void refresh_factors(std::string_view function) {
    const auto values = this->params_.values();
    detail::check_finite(function, "the parameters",
                         Eigen::Map<const Vector<T>>(values.data(), Index(values.size())));
    for (Index i = 0; i < dim_; ++i) {
      const T scale = std::exp(values[std::size_t(i)]);
      if (!(scale > T(0)) || !std::isfinite(scale))
        detail::fail(function, "log-diagonal entry ", i, " is ", values[std::size_t(i)],
                     ": its exp is 0 or infinite, so W is not invertible in this precision");
    }
    fill_lower(l_);
    fill_upper(a_);
  }

  std::vector<Index> perm_;     // p
  std::vector<Index> inverse_;  // q = p⁻¹
  Index dim_;
  Index cols_ = 0;         // batch size of the last pass, for backward's shape check
  Matrix<T> l_, a_;        // L and A of the last pass
  Matrix<T> product_, w_;  // L A and W = P L A of the last forward pass
  Matrix<T> input_;        // u of the last forward pass
  Matrix<T> output_;       // u of the last inverse pass
  Matrix<T> permuted_grad_, outer_, grad_l_, grad_a_;  // backward's workspaces
};

static_assert(check_bijector<LuLinear<double>>());
static_assert(check_bijector<LuLinear<float>>());

}  // namespace knead
