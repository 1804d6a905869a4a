#pragma once
/// @file
/// TransformedDistribution<Base, B>: the distribution of x = B.forward(u), u ~ Base — a flow.

#include <string_view>
#include <utility>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

/// log p(x) = log p_base(B⁻¹(x)) + log|det ∂B⁻¹/∂x|.
/// Parameters: the base's, then the bijector's, in one buffer.
template <Distribution Base, Bijector B>
class TransformedDistribution {
 public:
  using Scalar = typename B::Scalar;
  using T = Scalar;
  static_assert(std::same_as<typename Base::Scalar, T>,
                "knead::TransformedDistribution: base and bijector must use the same scalar type");

  TransformedDistribution(Base base, B bijector) : base_(std::move(base)), bijector_(std::move(bijector)) {
    if (base_.dim() != bijector_.dim())
      detail::fail("TransformedDistribution", "base has dim ", base_.dim(), " but the bijector has dim ",
                   bijector_.dim());
    adopt();
  }
  TransformedDistribution(const TransformedDistribution& other)
      : base_(other.base_), bijector_(other.bijector_) {
    adopt();
  }
  TransformedDistribution& operator=(const TransformedDistribution& other) {
    if (this != &other) {
      base_ = other.base_;
      bijector_ = other.bijector_;
      adopt();
    }
    return *this;
  }
  TransformedDistribution(TransformedDistribution&&) noexcept = default;
  TransformedDistribution& operator=(TransformedDistribution&&) noexcept = default;
  ~TransformedDistribution() = default;

  [[nodiscard]] Index dim() const { return bijector_.dim(); }
  [[nodiscard]] Base& base() { return base_; }
  [[nodiscard]] const Base& base() const { return base_; }
  [[nodiscard]] B& bijector() { return bijector_; }
  [[nodiscard]] const B& bijector() const { return bijector_; }

  // ---- values ---------------------------------------------------------------------------------

  void log_prob(MatrixCRef<T> x, RowVector<T>& out) const {
    check_input("TransformedDistribution::log_prob", x);
    no_grad_pass_ = NoGrad::active();
    bijector_.inverse_and_log_det(x, noise_, log_det_);
    base_.log_prob(noise_, out);
    out += log_det_;
  }
  [[nodiscard]] RowVector<T> log_prob(MatrixCRef<T> x) const {
    RowVector<T> out;
    log_prob(x, out);
    return out;
  }

  void sample(Index n, Rng& rng, Matrix<T>& x) const {
    no_grad_pass_ = NoGrad::active();
    base_.sample(n, rng, noise_);
    bijector_.forward_and_log_det(noise_, x, log_det_);
  }
  [[nodiscard]] Matrix<T> sample(Index n, Rng& rng) const {
    Matrix<T> x;
    sample(n, rng, x);
    return x;
  }

  /// Samples and their log densities in one pass: the inverse is never run, the noise and the
  /// forward log-det are reused (log p(x) = log p_base(u) − log|det ∂x/∂u|).
  void sample_and_log_prob(Index n, Rng& rng, Matrix<T>& x, RowVector<T>& log_prob) const {
    no_grad_pass_ = NoGrad::active();
    base_.sample(n, rng, noise_);
    base_.log_prob(noise_, log_prob);
    bijector_.forward_and_log_det(noise_, x, log_det_);
    log_prob -= log_det_;
  }
  [[nodiscard]] ValueAndLogDet<T> sample_and_log_prob(Index n, Rng& rng) const {
    ValueAndLogDet<T> r;  // here log_det holds log p(x)
    sample_and_log_prob(n, rng, r.value, r.log_det);
    return r;
  }

  // ---- gradients ------------------------------------------------------------------------------

  /// Differentiates the last log_prob(x): adds ∂L/∂θ into gradients() and writes ∂L/∂x.
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_x) {
    refuse_after_no_grad("TransformedDistribution::backward_log_prob");
    base_.backward_log_prob(grad_log_prob, grad_noise_);
    bijector_.backward(grad_noise_, grad_log_prob, grad_x);
  }

  /// Mean negative log-likelihood of the batch; adds its gradient into gradients().
  T mean_nll_and_backward(MatrixCRef<T> x) {
    log_prob(x, log_prob_);
    const T n = T(x.cols());
    grad_log_prob_.setConstant(x.cols(), T(-1) / n);
    backward_log_prob(grad_log_prob_, grad_x_);
    return -log_prob_.sum() / n;
  }

  /// Differentiates the last sample_and_log_prob() with respect to the parameters (the samples
  /// are reparameterised): given ∂L/∂x and ∂L/∂log_prob, adds ∂L/∂θ into gradients().
  void backward_sample_and_log_prob(MatrixCRef<T> grad_x, RowVectorCRef<T> grad_log_prob) {
    refuse_after_no_grad("TransformedDistribution::backward_sample_and_log_prob");
    grad_log_det_ = -grad_log_prob;
    bijector_.backward(grad_x, grad_log_det_, grad_noise_);       // paths through x and log|det|
    base_.backward_log_prob(grad_log_prob, grad_base_log_prob_);  // path through log p_base(u)
    grad_noise_ += grad_base_log_prob_;
    base_.backward_sample(grad_noise_);  // u = base's reparameterisation of its noise
  }

  // ---- parameters -----------------------------------------------------------------------------

  [[nodiscard]] Index num_parameters() const { return group_.size(); }
  [[nodiscard]] std::span<T> parameters() { return group_.values(); }
  [[nodiscard]] std::span<T> gradients() { return group_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    group_.bind(storage, offset, parts());
  }
  void zero_gradients() { knead::zero_gradients(*this); }

  void set_training(bool on) { knead::set_training(bijector_, on); }
  [[nodiscard]] bool training() const {
    if constexpr (HasTrainingMode<B>) return bijector_.training();
    return false;
  }

 private:
  /// Refused before anything is written: the base's and the bijector's gradients stay as they were.
  void refuse_after_no_grad(std::string_view function) const {
    if (no_grad_pass_)
      detail::fail<std::logic_error>(function,
                                     "the last pass ran under knead::NoGrad, which keeps nothing to "
                                     "differentiate");
  }
  void check_input(std::string_view function, MatrixCRef<T> x) const {
    detail::check_batch(function, x, dim());
    detail::check_finite(function, "input batch", x);
  }
  auto parts() {
    return [this](auto f) {
      f(base_);
      f(bijector_);
    };
  }
  void adopt() { group_.adopt(parts()); }

  Base base_;
  B bijector_;
  ParameterGroup<T> group_;
  mutable Matrix<T> noise_;
  mutable RowVector<T> log_det_;
  mutable bool no_grad_pass_ = false;  // the last pass ran under NoGrad: nothing to differentiate
  Matrix<T> grad_noise_, grad_base_log_prob_, grad_x_;
  RowVector<T> log_prob_, grad_log_prob_, grad_log_det_;
};

}  // namespace knead
