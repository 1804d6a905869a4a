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
  [[nodiscard]] Vector<T> mean() const { return this->params_.vector(0, dim_); }
  [[nodiscard]] Vector<T> log_scale() const { return this->params_.vector(dim_, dim_); }

  void log_prob(MatrixCRef<T> u, RowVector<T>& out) {
    detail::check_batch("DiagonalNormal::log_prob", u, dim_);
    resize_workspace(standardised_, u.rows(), u.cols());
    standardised_ = (u.colwise() - mean()).array().colwise() * (-log_scale().array()).exp();
    resize_workspace(out, u.cols());
    out = T(-0.5) * standardised_.colwise().squaredNorm().array() -
          (log_scale().sum() + T(0.5) * T(dim_) * std::log(T(2) * std::numbers::pi_v<T>));
  }
  void sample(Index n, Rng& rng, Matrix<T>& out) {
    detail::check_positive("DiagonalNormal::sample", "number of samples", n);
    standard_normal(rng, noise_, dim_, n);
    resize_workspace(out, dim_, n);
    out = (noise_.array().colwise() * log_scale().array().exp()).colwise() + mean().array();
  }
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_u) {
    detail::check_per_sample("DiagonalNormal::backward_log_prob", grad_log_prob, standardised_.cols());
    const Vector<T> inv_scale = (-log_scale().array()).exp();
    // ∂lp/∂u = −z e^{−s};  ∂lp/∂μ = z e^{−s};  ∂lp/∂s = z² − 1
    const Matrix<T> weighted = standardised_.array().rowwise() * grad_log_prob.array();
    resize_workspace(grad_u, weighted.rows(), weighted.cols());
    grad_u = -(weighted.array().colwise() * inv_scale.array());
    this->params_.gradient_vector(0, dim_) -= grad_u.rowwise().sum();
    this->params_.gradient_vector(dim_, dim_).array() +=
        (weighted.array() * standardised_.array()).rowwise().sum() - grad_log_prob.sum();
  }
  void backward_sample(MatrixCRef<T> grad_sample) {
    detail::check_backward("DiagonalNormal::backward_sample", grad_sample, RowVector<T>::Zero(noise_.cols()),
                           dim_, noise_.cols());
    // u = μ + e^s ε:  ∂L/∂μ = Σ_n ∂L/∂u;  ∂L/∂s = Σ_n ∂L/∂u ⊙ e^s ε
    this->params_.gradient_vector(0, dim_) += grad_sample.rowwise().sum();
    this->params_.gradient_vector(dim_, dim_).array() +=
        (grad_sample.array() * noise_.array()).rowwise().sum() * log_scale().array().exp();
  }

 private:
  Index dim_;
  Matrix<T> standardised_;  // z of the last log_prob
  Matrix<T> noise_;         // ε of the last sample
};

static_assert(Distribution<DiagonalNormal<float>>);

}  // namespace knead
