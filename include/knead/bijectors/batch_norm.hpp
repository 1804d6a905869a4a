#pragma once
/// @file
/// BatchNorm: batch normalization as an invertible layer, as used between the coupling layers of
/// RealNVP (Dinh et al. 2017) and the autoregressive layers of MAF (Papamakarios et al. 2017, §3.4).

#include <cmath>
#include <string_view>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// Batch normalization with a learnable log-scale γ and shift β, written in the density
/// direction (data → noise), where it normalizes the data it is trained on:
///
/// - inverse:  u = (x − m) / sqrt(v + ε) ⊙ exp(γ) + β
/// - forward:  x = (u − β) ⊙ exp(−γ) ⊙ sqrt(v + ε) + m   (the exact inverse for the same m, v)
/// - log|det ∂u/∂x| = Σ_i (γ_i − ½ log(v_i + ε))   (inverse; the forward log-det is its negative)
///
/// Statistics (m, v):
/// - Training mode (the default; `set_training(bool)`): the inverse uses the mean and the biased
///   (1/N) variance of the batch, so its result for one sample depends on the whole batch, and
///   backward differentiates through them, as autograd does. Each training-mode inverse also
///   updates the running statistics as PyTorch does:
///   running = (1 − momentum)·running + momentum·batch, with the unbiased (1/(N−1)) batch
///   variance for the running variance. It needs N ≥ 2 and finite data, since a non-finite value
///   would poison the running statistics for good.
/// - The forward (sampling) direction always uses the running statistics, in either mode: there
///   is no data batch to take statistics from when sampling.
/// - Eval mode: both directions use the running statistics and are exact inverses of each other.
///
/// The running statistics (mean 0 and variance 1 at construction) are state, not learnable
/// parameters: they have accessors and validated setters; a training-mode inverse pass updates
/// them.
/// Parameter layout: [γ (D)][β (D)], zero at construction.
template <class T>
class BatchNorm : public LeafParameters<T> {
 public:
  using Scalar = T;

  explicit BatchNorm(Index dim, T momentum = T(0.1), T epsilon = T(1e-5))
      : LeafParameters<T>(2 * dim),
        dim_(dim),
        running_mean_(Vector<T>::Zero(dim)),
        running_variance_(Vector<T>::Ones(dim)) {
    detail::check_positive("BatchNorm", "dim", dim);
    set_momentum(momentum);
    if (!(epsilon > T(0)) || !std::isfinite(epsilon))
      detail::fail("BatchNorm", "epsilon must be positive and finite, got ", epsilon);
    epsilon_ = epsilon;
  }

  static constexpr std::string_view name() { return "BatchNorm"; }
  [[nodiscard]] Index dim() const { return dim_; }

  void set_training(bool on) { training_ = on; }
  [[nodiscard]] bool training() const { return training_; }

  [[nodiscard]] T momentum() const { return momentum_; }
  /// The weight of a new batch in the running statistics, in [0, 1] (0 freezes them).
  void set_momentum(T momentum) {
    if (!(momentum >= T(0) && momentum <= T(1)))
      detail::fail("BatchNorm", "momentum must be in [0, 1], got ", momentum);
    momentum_ = momentum;
  }
  [[nodiscard]] T epsilon() const { return epsilon_; }

  [[nodiscard]] const Vector<T>& running_mean() const { return running_mean_; }
  [[nodiscard]] const Vector<T>& running_variance() const { return running_variance_; }
  void set_running_mean(const Vector<T>& mean) {
    check_statistic("BatchNorm::set_running_mean", "running mean", mean);
    running_mean_ = mean;
  }
  void set_running_variance(const Vector<T>& variance) {
    check_statistic("BatchNorm::set_running_variance", "running variance", variance);
    for (Index i = 0; i < dim_; ++i)
      if (!(variance(i) > T(0)))
        detail::fail("BatchNorm::set_running_variance", "running variance must be positive, got ",
                     variance(i), " at ", i);
    running_variance_ = variance;
  }

  [[nodiscard]] Vector<T> log_scale() const { return gamma(); }
  [[nodiscard]] Vector<T> shift() const { return beta(); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch("BatchNorm::forward_and_log_det", u, dim_);
    // x̂ = (u − β) e^{−γ};  x = x̂ σ + m with the running statistics
    resize_workspace(normalized_, u.rows(), u.cols());
    normalized_ = (u.colwise() - beta()).array().colwise() * (-gamma()).array().exp();
    std_ = (running_variance_.array() + epsilon_).sqrt();
    resize_workspace(x, u.rows(), u.cols());
    x = (normalized_.array().colwise() * std_.array()).colwise() + running_mean_.array();
    resize_workspace(log_det, u.cols());
    log_det.setConstant(-inverse_log_det());
    batch_statistics_ = false;
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    constexpr std::string_view function = "BatchNorm::inverse_and_log_det";
    detail::check_batch(function, x, dim_);
    const Index n = x.cols();
    if (training_) {
      if (n < 2)
        detail::fail(function,
                     "training mode needs a batch of at least 2 columns to estimate the variance, got ", n,
                     " column; call set_training(false) to transform single samples");
      detail::check_finite(function, "training batch", x);
      const Vector<T> mean = x.rowwise().mean();
      resize_workspace(normalized_, x.rows(), x.cols());
      normalized_ = x.colwise() - mean;
      const Vector<T> variance = normalized_.rowwise().squaredNorm() / T(n);  // biased, as in the paper
      std_ = (variance.array() + epsilon_).sqrt();
      running_mean_ = (T(1) - momentum_) * running_mean_ + momentum_ * mean;
      running_variance_ = (T(1) - momentum_) * running_variance_ + (momentum_ * T(n) / T(n - 1)) * variance;
    } else {
      resize_workspace(normalized_, x.rows(), x.cols());
      normalized_ = x.colwise() - running_mean_;
      std_ = (running_variance_.array() + epsilon_).sqrt();
    }
    normalized_.array().colwise() /= std_.array();
    u = (normalized_.array().colwise() * gamma().array().exp()).colwise() + beta().array();
    resize_workspace(log_det, n);
    log_det.setConstant(inverse_log_det());
    batch_statistics_ = training_;
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass("BatchNorm::backward");
    const Index n = normalized_.cols();
    detail::check_backward("BatchNorm::backward", grad_out, grad_log_det, dim_, n);
    const T sum_grad_log_det = grad_log_det.sum();
    auto grad_gamma = this->params_.gradient_vector(0, dim_);
    auto grad_beta = this->params_.gradient_vector(dim_, dim_);
    if (pass == Direction::forward) {
      // x = (u − β) e^{−γ} σ + m = x̂ σ + m, log|det| = −Σ(γ − log σ):
      //   ∂L/∂u = e^{−γ} σ ∂L/∂x;  ∂L/∂β = −Σ_n ∂L/∂u;  ∂L/∂γ = −Σ_n ∂L/∂x x̂ σ − Σ_n ∂L/∂ld
      const Vector<T> factor = (-gamma()).array().exp() * std_.array();
      grad_in = grad_out.array().colwise() * factor.array();
      grad_beta -= grad_in.rowwise().sum();
      grad_gamma.array() -=
          (grad_out.array() * normalized_.array()).rowwise().sum() * std_.array() + sum_grad_log_det;
      return;
    }
    // u = x̂ e^γ + β with x̂ = (x − m)/σ, log|det| = Σ(γ − log σ). With ĝ = e^γ ∂L/∂u:
    //   ∂L/∂β = Σ_n ∂L/∂u;  ∂L/∂γ = Σ_n ĝ x̂ + Σ_n ∂L/∂ld;  fixed statistics: ∂L/∂x = ĝ / σ.
    const Matrix<T> g_hat = grad_out.array().colwise() * gamma().array().exp();
    grad_beta += grad_out.rowwise().sum();
    const Vector<T> g_hat_dot_x_hat = (g_hat.array() * normalized_.array()).rowwise().sum();
    grad_gamma.array() += g_hat_dot_x_hat.array() + sum_grad_log_det;
    if (!batch_statistics_) {
      grad_in = g_hat.array().colwise() / std_.array();
      return;
    }
    // Batch statistics m = mean_n x, v = mean_n (x − m)²: ∂m/∂x_n = 1/N, ∂v/∂x_n = 2(x_n − m)/N, so
    //   through x̂:         ∂L/∂x = (ĝ − mean_n ĝ − x̂ mean_n(ĝ x̂)) / σ
    //   through log|det|:  −½ ∂L/∂ld_total / σ² · 2(x − m)/N = −x̂ (Σ_n ∂L/∂ld) / (N σ)
    const Vector<T> mean_g_hat = g_hat.rowwise().mean();
    const Vector<T> x_hat_weight = (g_hat_dot_x_hat.array() + sum_grad_log_det) / T(n);
    grad_in = ((g_hat.colwise() - mean_g_hat).array() - normalized_.array().colwise() * x_hat_weight.array())
                  .colwise() /
              std_.array();
  }

 private:
  [[nodiscard]] Eigen::Map<const Vector<T>> gamma() const { return this->params_.vector(0, dim_); }
  [[nodiscard]] Eigen::Map<const Vector<T>> beta() const { return this->params_.vector(dim_, dim_); }
  /// Σ_i (γ_i − log σ_i) with σ = sqrt(v + ε) of the current pass (std_ must be set).
  [[nodiscard]] T inverse_log_det() const { return gamma().sum() - std_.array().log().sum(); }

  void check_statistic(std::string_view function, std::string_view what, const Vector<T>& values) const {
    if (values.size() != dim_)
      detail::fail(function, what, " has ", values.size(), " entries, expected ", dim_);
    detail::check_finite(function, what, values);
  }

  Index dim_;
  T momentum_ = T(0.1);
  T epsilon_ = T(1e-5);
  bool training_ = true;
  Vector<T> running_mean_;         // state updated by training-mode inverse passes
  Vector<T> running_variance_;     // (not parameters: never differentiated)
  Matrix<T> normalized_;           // x̂ of the last pass
  Vector<T> std_;                  // σ = sqrt(v + ε) of the last pass
  bool batch_statistics_ = false;  // whether the last pass used (and depends on) batch statistics
};

static_assert(check_bijector<BatchNorm<double>>());

}  // namespace knead
