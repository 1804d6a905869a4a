#pragma once
/// @file
/// MixtureOfGaussians<T>: a mixture of K diagonal Gaussians on R^D with learnable weights, means
/// and log-scales, a multi-modal base for flows.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>

#include "knead/core/leaf.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

/// p(u) = Σ_k w_k N(u; μ_k, diag(e^{2 s_k})),  w = softmax(ℓ).
///
/// log p(u) = logsumexp_k a_k(u),  a_k = log w_k + Σ_i [ −½ z_ki² − s_ki − ½ log 2π ],
/// z_k = (u − μ_k) ⊙ e^{−s_k}; the log-sum-exp subtracts max_k a_k first and log w = ℓ − logsumexp ℓ,
/// so neither overflows or underflows to NaN far in the tails. The responsibilities
/// r_k(u) = e^{a_k − log p(u)} (the posterior probability of component k) carry the gradients.
///
/// Parameter layout: [ℓ (K)][μ (D×K, column k is μ_k)][s (D×K, column k is s_k)].
///
/// Sampling is ancestral: k ~ Categorical(w), then u = μ_k + e^{s_k} ⊙ ε with ε ~ N(0, I). The
/// second step is reparameterised, so backward_sample gives the means and log-scales of the chosen
/// components their gradients; the choice of k is a discrete draw and is not, so the logits get no
/// gradient from an objective through samples (reverse KL). Objectives through log_prob
/// (maximum likelihood) train all parameters.
///
/// log_prob and the backward passes reuse their workspaces: nothing is allocated after the first
/// call at a given batch size.
template <class T>
class MixtureOfGaussians : public LeafParameters<T> {
 public:
  using Scalar = T;

  /// Equal weights (ℓ = 0), log-scales 0 and means drawn from N(0, I) with an Rng seeded by `seed`:
  /// the components start distinguishable (identical components would get identical gradients
  /// and never separate) and the same seed gives the same start.
  MixtureOfGaussians(Index dim, Index components, std::uint64_t seed = 0)
      : LeafParameters<T>(checked_size(dim, components)), dim_(dim), components_(components) {
    Rng rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (Index k = 0; k < components_; ++k)
      for (Index i = 0; i < dim_; ++i) means()(i, k) = T(normal(rng));
  }
  /// From logits ℓ (K), means (D×K, one column per component) and log-scales (D×K).
  MixtureOfGaussians(const Vector<T>& logits, const Matrix<T>& means, const Matrix<T>& log_scales)
      : MixtureOfGaussians(means.rows(), logits.size()) {
    if (means.cols() != components_ || log_scales.rows() != dim_ || log_scales.cols() != components_)
      detail::fail("MixtureOfGaussians", "logits has ", components_,
                   " entries, so means and log_scales must be ", dim_, "x", components_,
                   " (one column per component); got means ", means.rows(), "x", means.cols(),
                   " and log_scales ", log_scales.rows(), "x", log_scales.cols());
    detail::check_finite("MixtureOfGaussians", "logits", logits);
    detail::check_finite("MixtureOfGaussians", "means", means);
    detail::check_finite("MixtureOfGaussians", "log_scales", log_scales);
    this->logits() = logits;
    this->means() = means;
    this->log_scales() = log_scales;
  }

  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] Index components() const { return components_; }
  [[nodiscard]] Eigen::Map<Vector<T>> logits() { return this->params_.vector(0, components_); }
  [[nodiscard]] Eigen::Map<const Vector<T>> logits() const { return this->params_.vector(0, components_); }
  [[nodiscard]] Eigen::Map<Matrix<T>> means() { return this->params_.matrix(components_, dim_, components_); }
  [[nodiscard]] Eigen::Map<const Matrix<T>> means() const {
    return this->params_.matrix(components_, dim_, components_);
  }
  [[nodiscard]] Eigen::Map<Matrix<T>> log_scales() {
    return this->params_.matrix(components_ * (1 + dim_), dim_, components_);
  }
  [[nodiscard]] Eigen::Map<const Matrix<T>> log_scales() const {
    return this->params_.matrix(components_ * (1 + dim_), dim_, components_);
  }
  /// log w = ℓ − max ℓ − log Σ_k e^{ℓ_k − max ℓ}
  [[nodiscard]] Vector<T> log_weights() const {
    Vector<T> out;
    compute_log_weights(out);
    return out;
  }
  [[nodiscard]] Vector<T> weights() const { return log_weights().array().exp(); }

  void log_prob(MatrixCRef<T> u, RowVector<T>& out) {
    detail::check_batch("MixtureOfGaussians::log_prob", u, dim_);
    const Index n = u.cols();
    resize_workspace(input_, dim_, n);
    input_ = u;
    compute_log_weights(log_weights_);
    resize_workspace(inv_scales_, dim_, components_);
    inv_scales_ = (-log_scales().array()).exp();
    const T half_log_2pi = T(0.5) * std::log(T(2) * std::numbers::pi_v<T>);
    resize_workspace(responsibilities_, components_, n);  // a_kn first, then r_kn
    for (Index k = 0; k < components_; ++k) {
      standardise(k);
      responsibilities_.row(k) = T(-0.5) * standardised_.colwise().squaredNorm().array() +
                                 (log_weights_(k) - log_scales().col(k).sum() - T(dim_) * half_log_2pi);
    }
    resize_workspace(out, n);
    for (Index j = 0; j < n; ++j) {
      auto a = responsibilities_.col(j);
      const T shift = a.maxCoeff();
      if (!(shift > -std::numeric_limits<T>::infinity())) {  // every a_k = −∞ (or NaN): p(u) = 0
        out(j) = shift;
        a.setZero();
        continue;
      }
      out(j) = shift + std::log((a.array() - shift).exp().sum());
      a = (a.array() - out(j)).exp();
    }
  }

  void sample(Index n, Rng& rng, Matrix<T>& out) {
    detail::check_positive("MixtureOfGaussians::sample", "number of samples", n);
    // the component of each column by inverting the cumulative weights, then the noise
    compute_log_weights(sample_weights_);
    sample_weights_ = sample_weights_.array().exp();
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    resize_workspace(choices_, n);
    for (Index j = 0; j < n; ++j) {
      double rest = uniform(rng);
      Index k = 0;
      while (k + 1 < components_ && rest >= double(sample_weights_(k))) rest -= double(sample_weights_(k++));
      choices_(j) = k;
    }
    standard_normal(rng, noise_, dim_, n);
    resize_workspace(out, dim_, n);
    for (Index j = 0; j < n; ++j) {
      const Index k = choices_(j);
      out.col(j) = means().col(k).array() + log_scales().col(k).array().exp() * noise_.col(j).array();
    }
  }

  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_u) {
    constexpr auto function = "MixtureOfGaussians::backward_log_prob";
    if (input_.cols() == 0)
      detail::fail<std::logic_error>(function, "no log_prob to differentiate; call it first");
    detail::check_per_sample(function, grad_log_prob, input_.cols());
    const Index n = input_.cols();
    resize_workspace(grad_u, dim_, n);
    grad_u.setZero();
    resize_workspace(coefficients_, n);
    auto grad_logits = this->params_.gradient_vector(0, components_);
    auto grad_means = this->params_.gradient_matrix(components_, dim_, components_);
    auto grad_log_scales = this->params_.gradient_matrix(components_ * (1 + dim_), dim_, components_);
    // ∂ log p/∂a_k = r_k, so every rule below is r_k times the derivative of a_k:
    const T total = grad_log_prob.sum();
    for (Index k = 0; k < components_; ++k) {
      coefficients_ = grad_log_prob.array() * responsibilities_.row(k).array();  // g r_k per column
      // ∂a_k/∂ℓ_m = δ_km − w_m (log-softmax), and Σ_k r_k = 1:  ∂ log p/∂ℓ_k = r_k − w_k
      grad_logits(k) += coefficients_.sum() - std::exp(log_weights_(k)) * total;
      standardise(k);
      weighted_ = standardised_.array().rowwise() * coefficients_.array();  // g r_k z_k
      // ∂a_k/∂s_k = z_k² − 1
      grad_log_scales.col(k).array() +=
          (weighted_.array() * standardised_.array()).rowwise().sum() - coefficients_.sum();
      // ∂a_k/∂u = −z_k e^{−s_k};  ∂a_k/∂μ_k = z_k e^{−s_k}
      weighted_.array().colwise() *= inv_scales_.col(k).array();
      grad_u -= weighted_;
      grad_means.col(k) += weighted_.rowwise().sum();
    }
  }

  void backward_sample(MatrixCRef<T> grad_sample) {
    detail::check_backward("MixtureOfGaussians::backward_sample", grad_sample,
                           RowVector<T>::Zero(noise_.cols()), dim_, noise_.cols());
    auto grad_means = this->params_.gradient_matrix(components_, dim_, components_);
    auto grad_log_scales = this->params_.gradient_matrix(components_ * (1 + dim_), dim_, components_);
    // u = μ_k + e^{s_k} ε for the chosen k:  ∂L/∂μ_k += ∂L/∂u;  ∂L/∂s_k += ∂L/∂u ⊙ e^{s_k} ε.
    // The logits get nothing: the choice of k is not a differentiable function of them.
    for (Index j = 0; j < noise_.cols(); ++j) {
      const Index k = choices_(j);
      grad_means.col(k) += grad_sample.col(j);
      grad_log_scales.col(k).array() +=
          grad_sample.col(j).array() * noise_.col(j).array() * log_scales().col(k).array().exp();
    }
  }

 private:
  /// K (1 + 2D) parameters, after checking K and D.
  static Index checked_size(Index dim, Index components) {
    detail::check_positive("MixtureOfGaussians", "dim", dim);
    detail::check_positive("MixtureOfGaussians", "number of components", components);
    if (dim > (std::numeric_limits<Index>::max() / 2 - 1) / components)
      detail::fail("MixtureOfGaussians", components, " components of dim ", dim,
                   " are more parameters than an Index holds");
    return components * (1 + 2 * dim);
  }
  void compute_log_weights(Vector<T>& out) const {
    resize_workspace(out, components_);
    const T top = logits().maxCoeff();
    out = logits().array() - (top + std::log((logits().array() - top).exp().sum()));
  }
  /// standardised_ = z_k of the last log_prob's input
  void standardise(Index k) {
    resize_workspace(standardised_, dim_, input_.cols());
    standardised_ = (input_.colwise() - means().col(k)).array().colwise() * inv_scales_.col(k).array();
    resize_workspace(weighted_, dim_, input_.cols());
  }

  Index dim_;
  Index components_;
  Matrix<T> input_;             // u of the last log_prob
  Vector<T> log_weights_;       // log w at the last log_prob
  Matrix<T> inv_scales_;        // e^{−s} at the last log_prob
  Matrix<T> responsibilities_;  // r (K×N) of the last log_prob
  Matrix<T> standardised_;      // z_k, one component at a time
  Matrix<T> weighted_;
  RowVector<T> coefficients_;
  Eigen::Matrix<Index, 1, Eigen::Dynamic> choices_;  // k of each column of the last sample
  Matrix<T> noise_;                                  // ε of the last sample
  Vector<T> sample_weights_;                         // w at the last sample
};

static_assert(Distribution<MixtureOfGaussians<float>>);

}  // namespace knead
