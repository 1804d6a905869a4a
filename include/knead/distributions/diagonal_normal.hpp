#pragma once
/// @file
/// DiagonalNormal<T>: N(μ, diag(σ²)) with learnable mean μ and log-scale s = log σ.

#include <numbers>

#include "knead/core/leaf.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

/// log p(u) = Σ_i [ −½ z_i² − s_i − ½ log 2π ],  z = (u − μ) ⊙ e^{−s}.
/// Samples are reparameterised: u = μ + e^s ⊙ ε, ε ~ N(0, I).
/// Parameter layout: [μ (D)][s (D)]; starts as N(0, I).
template <class T>
class DiagonalNormal : public LeafParameters<T> {
 public:
  using Scalar = T;
  explicit DiagonalNormal(Index dim) : LeafParameters<T>(2 * dim), dim_(dim) {
    detail::check_positive("DiagonalNormal", "dim", dim);
  }
  DiagonalNormal(const Vector<T>& mean, const Vector<T>& log_scale) : DiagonalNormal(mean.size()) {
    if (log_scale.size() != dim_)
      detail::fail("DiagonalNormal", "log_scale has ", log_scale.size(), " entries, mean has ", dim_);
    detail::check_finite("DiagonalNormal", "mean", mean);
    detail::check_finite("DiagonalNormal", "log_scale", log_scale);
    this->params_.vector(0, dim_) = mean;
    this->params_.vector(dim_, dim_) = log_scale;
  }
  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] Eigen::Map<const Vector<T>> mean() const { return this->params_.vector(0, dim_); }
  [[nodiscard]] Eigen::Map<const Vector<T>> log_scale() const { return this->params_.vector(dim_, dim_); }

  void log_prob(MatrixCRef<T> u, RowVector<T>& out) {
    detail::check_batch("DiagonalNormal::log_prob", u, dim_);
    set_factor(T(-1));  // e^{−s}
    resize_workspace(standardised_, u.rows(), u.cols());
    standardised_ = (u.colwise() - mean()).array().colwise() * factor_.array();
    resize_workspace(out, u.cols());
    out = T(-0.5) * standardised_.colwise().squaredNorm().array() -
          (log_scale().sum() + T(0.5) * T(dim_) * std::log(T(2) * std::numbers::pi_v<T>));
  }
  void sample(Index n, Rng& rng, Matrix<T>& out) {
    detail::check_positive("DiagonalNormal::sample", "number of samples", n);
    standard_normal(rng, noise_, dim_, n);
    set_factor(T(1));  // e^{s}
    resize_workspace(out, dim_, n);
    out = (noise_.array().colwise() * factor_.array()).colwise() + mean().array();
  }
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_u) {
    detail::check_per_sample("DiagonalNormal::backward_log_prob", grad_log_prob, standardised_.cols());
    // with g = ∂L/∂lp per sample:  ∂L/∂u = −g z e^{−s};  ∂L/∂μ = Σ_n g z e^{−s};  ∂L/∂s = Σ_n g (z² − 1)
    set_factor(T(-1));
    this->params_.gradient_vector(dim_, dim_) +=
        (standardised_.array().square().rowwise() * grad_log_prob.array()).matrix().rowwise().sum() -
        Vector<T>::Constant(dim_, grad_log_prob.sum());
    resize_workspace(grad_u, standardised_.rows(), standardised_.cols());
    grad_u = -((standardised_.array().rowwise() * grad_log_prob.array()).colwise() * factor_.array());
    this->params_.gradient_vector(0, dim_) -= grad_u.rowwise().sum();
  }
  void backward_sample(MatrixCRef<T> grad_sample) {
    detail::check_backward("DiagonalNormal::backward_sample", grad_sample, RowVector<T>::Zero(noise_.cols()),
                           dim_, noise_.cols());
    // u = μ + e^s ε:  ∂L/∂μ = Σ_n ∂L/∂u;  ∂L/∂s = Σ_n ∂L/∂u ⊙ e^s ε
    set_factor(T(1));
    this->params_.gradient_vector(0, dim_) += grad_sample.rowwise().sum();
    this->params_.gradient_vector(dim_, dim_).array() +=
        (grad_sample.array() * noise_.array()).rowwise().sum() * factor_.array();
  }

 private:
  Index dim_;
  Matrix<T> standardised_;  // z of the last log_prob
  Matrix<T> noise_;         // ε of the last sample
  Vector<T> factor_;        // e^{±s}: the scale or its inverse, for the pass at hand

  /// factor_ = e^{sign·s}, in a workspace (no allocation once sized).
  void set_factor(T sign) {
    resize_workspace(factor_, dim_);
    factor_ = (sign * log_scale().array()).exp();
  }
};

static_assert(Distribution<DiagonalNormal<float>>);

}  // namespace knead
