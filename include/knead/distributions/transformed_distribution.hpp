#pragma once
/// @file
/// TransformedDistribution<Base, B>: the distribution of x = B.forward(u), u ~ Base — a flow.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // sysconf: the machine's memory
#endif

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/in_use.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

/// log p(x) = log p_base(B⁻¹(x)) + log|det ∂B⁻¹/∂x|.
/// Parameters: the base's, then the bijector's, in one buffer.
///
/// With a conditional bijector (knead/core/conditional.hpp) it is a conditional density:
/// log p(x | c) = log p_base(B⁻¹(x; c)) + log|det ∂B⁻¹(x; c)/∂x|, with log_prob(x, c), sample(c, rng)
/// (one sample per column of c) and backward entries that also write ∂L/∂c. Each kind of call
/// exists when the bijector has it.
///
/// Checks at this boundary, the same for every bijector: the batch, the context, the noise drawn
/// from the base, the samples produced and the gradients handed to the backward entries must be
/// finite; a non-finite value throws std::invalid_argument naming the function, the argument and
/// its (row, column).
///
/// One object serves one thread at a time: its passes write workspaces it owns. A pass entered
/// while another thread is inside one of the same object's throws std::logic_error ("use one flow
/// object per thread (copy it)") before anything is written (knead/core/in_use.hpp).
///
/// initialize(x) runs the bijector's data-dependent initialisation (knead::initialize) and marks
/// the flow initialised; the Trainer calls it on its first batch unless initialized() is set.
template <Distribution Base, FlowBijector B>
class TransformedDistribution {
 public:
  using Scalar = typename B::Scalar;
  using T = Scalar;
  /// The most columns one pass of a sample(), or of a log_prob() or sample_and_log_prob() under
  /// NoGrad, runs on: larger requests run in passes of this many columns, one after another, with
  /// the same values bit for bit (columns are independent, and the base draws its noise column by
  /// column from the one engine, so the noise is the same too).
  static constexpr Index pass_columns = 16384;
  static_assert(std::same_as<typename Base::Scalar, T>,
                "knead::TransformedDistribution: base and bijector must use the same scalar type");

  TransformedDistribution(Base base, B bijector) : base_(std::move(base)), bijector_(std::move(bijector)) {
    if (base_.dim() != bijector_.dim())
      detail::fail("TransformedDistribution", "base has dim ", base_.dim(), " but the bijector has dim ",
                   bijector_.dim());
    adopt();
  }
  TransformedDistribution(const TransformedDistribution& other)
      : base_(other.base_), bijector_(other.bijector_), initialized_(other.initialized_) {
    adopt();
  }
  TransformedDistribution& operator=(const TransformedDistribution& other) {
    if (this != &other) {
      base_ = other.base_;
      bijector_ = other.bijector_;
      initialized_ = other.initialized_;
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

  void log_prob(MatrixCRef<T> x, RowVector<T>& out) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::log_prob";
    const auto in_use = in_use_.enter(function);
    if (!NoGrad::active() || x.cols() <= pass_columns) {
      log_prob_pass(function, x, out);
      return;
    }
    check_input(function, x);  // whole: a bad value is reported at its column in x
    resize_workspace(out, x.cols());
    for (Index j = 0; j < x.cols(); j += pass_columns) {
      const Index c = std::min(pass_columns, x.cols() - j);
      log_prob_pass(function, x.middleCols(j, c), part_log_prob_);
      out.segment(j, c) = part_log_prob_;
    }
  }
  [[nodiscard]] RowVector<T> log_prob(MatrixCRef<T> x) requires Bijector<B> {
    RowVector<T> out;
    log_prob(x, out);
    return out;
  }

  /// n samples. The pass keeps nothing to differentiate (it runs as under NoGrad: no backward entry
  /// takes a sample()), and runs in passes of at most pass_columns columns, written into x as they
  /// come: the memory beyond x is bounded whatever n.
  void sample(Index n, Rng& rng, Matrix<T>& x) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::sample";
    const auto in_use = in_use_.enter(function);
    check_no_context_needed(function);
    check_sample_count(function, n);
    const NoGrad no_grad;
    no_grad_pass_ = true;
    if (n <= pass_columns) {
      draw_noise(function, n, rng);
      bijector_.forward_and_log_det(noise_, x, log_det_);
      check_samples(function, x);
      return;
    }
    resize_workspace(x, dim(), n);
    for (Index j = 0; j < n; j += pass_columns) {
      const Index c = std::min(pass_columns, n - j);
      draw_noise(function, c, rng);
      bijector_.forward_and_log_det(noise_, part_, log_det_);
      check_samples(function, part_);
      x.middleCols(j, c) = part_;
    }
  }
  [[nodiscard]] Matrix<T> sample(Index n, Rng& rng) requires Bijector<B> {
    Matrix<T> x;
    sample(n, rng, x);
    return x;
  }

  /// Samples and their log densities in one pass: the inverse is never run, the noise and the
  /// forward log-det are reused (log p(x) = log p_base(u) − log|det ∂x/∂u|).
  /// Under NoGrad (nothing to differentiate) it runs in passes of at most pass_columns columns.
  void sample_and_log_prob(Index n, Rng& rng, Matrix<T>& x, RowVector<T>& log_prob) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::sample_and_log_prob";
    const auto in_use = in_use_.enter(function);
    check_no_context_needed(function);
    check_sample_count(function, n);
    no_grad_pass_ = NoGrad::active();
    if (!no_grad_pass_ || n <= pass_columns) {
      sample_and_log_prob_pass(function, n, rng, x, log_prob);
      return;
    }
    resize_workspace(x, dim(), n);
    resize_workspace(log_prob, n);
    for (Index j = 0; j < n; j += pass_columns) {
      const Index c = std::min(pass_columns, n - j);
      sample_and_log_prob_pass(function, c, rng, part_, part_log_prob_);
      x.middleCols(j, c) = part_;
      log_prob.segment(j, c) = part_log_prob_;
    }
  }
  [[nodiscard]] ValueAndLogDet<T> sample_and_log_prob(Index n, Rng& rng) requires Bijector<B> {
    ValueAndLogDet<T> r;  // here log_det holds log p(x)
    sample_and_log_prob(n, rng, r.value, r.log_det);
    return r;
  }

  // ---- values with a context (a conditional bijector) ----------------------------------------------

  /// Rows of the context (0 if the bijector, type-erased, reads none).
  [[nodiscard]] Index context_dim() const requires ConditionalBijector<B> { return bijector_.context_dim(); }

  /// log p(x | c), one value per column of x (column j of c is the context of sample j).
  void log_prob(MatrixCRef<T> x, MatrixCRef<T> context, RowVector<T>& out) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::log_prob";
    const auto in_use = in_use_.enter(function);
    log_prob_pass(function, x, context, out);
  }
  [[nodiscard]] RowVector<T> log_prob(MatrixCRef<T> x,
                                      MatrixCRef<T> context) requires ConditionalBijector<B> {
    RowVector<T> out;
    log_prob(x, context, out);
    return out;
  }

  /// One sample per column of `context`: x_j = B(u_j; c_j), u_j ~ base.
  void sample(MatrixCRef<T> context, Rng& rng, Matrix<T>& x) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::sample";
    const auto in_use = in_use_.enter(function);
    check_context(function, context, context.cols());
    no_grad_pass_ = NoGrad::active();
    draw_noise(function, context.cols(), rng);
    bijector_.forward_and_log_det(noise_, context, x, log_det_);
    check_samples(function, x);
  }
  [[nodiscard]] Matrix<T> sample(MatrixCRef<T> context, Rng& rng) requires ConditionalBijector<B> {
    Matrix<T> x;
    sample(context, rng, x);
    return x;
  }

  /// Samples for the columns of `context` and their log densities log p(x | c) in one pass.
  void sample_and_log_prob(MatrixCRef<T> context, Rng& rng, Matrix<T>& x,
                           RowVector<T>& log_prob) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::sample_and_log_prob";
    const auto in_use = in_use_.enter(function);
    check_context(function, context, context.cols());
    no_grad_pass_ = NoGrad::active();
    draw_noise(function, context.cols(), rng);
    base_.log_prob(noise_, log_prob);
    bijector_.forward_and_log_det(noise_, context, x, log_det_);
    check_samples(function, x);
    log_prob -= log_det_;
  }

  // ---- gradients ------------------------------------------------------------------------------

  /// Differentiates the last log_prob(x): adds ∂L/∂θ into gradients() and writes ∂L/∂x.
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_x) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::backward_log_prob";
    const auto in_use = in_use_.enter(function);
    backward_log_prob_pass(function, grad_log_prob, grad_x);
  }

  /// Differentiates the last log_prob(x, c): adds ∂L/∂θ into gradients(), writes ∂L/∂x and ∂L/∂c.
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_x,
                         Matrix<T>& grad_context) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::backward_log_prob";
    const auto in_use = in_use_.enter(function);
    backward_log_prob_pass(function, grad_log_prob, grad_x, grad_context);
  }

  /// Mean negative log-likelihood of the batch; adds its gradient into gradients().
  T mean_nll_and_backward(MatrixCRef<T> x) requires Bijector<B> {
    const auto in_use = in_use_.enter("TransformedDistribution::mean_nll_and_backward");
    log_prob_pass("TransformedDistribution::log_prob", x, log_prob_);
    const T n = T(x.cols());
    resize_workspace(grad_log_prob_, x.cols());
    grad_log_prob_.setConstant(T(-1) / n);
    backward_log_prob_pass("TransformedDistribution::backward_log_prob", grad_log_prob_, grad_x_);
    return -log_prob_.sum() / n;
  }

  /// Mean of −log p(x_j | c_j) over the batch; adds its gradient into gradients().
  T mean_nll_and_backward(MatrixCRef<T> x, MatrixCRef<T> context) requires ConditionalBijector<B> {
    const auto in_use = in_use_.enter("TransformedDistribution::mean_nll_and_backward");
    log_prob_pass("TransformedDistribution::log_prob", x, context, log_prob_);
    const T n = T(x.cols());
    resize_workspace(grad_log_prob_, x.cols());
    grad_log_prob_.setConstant(T(-1) / n);
    backward_log_prob_pass("TransformedDistribution::backward_log_prob", grad_log_prob_, grad_x_,
                           grad_context_);
    return -log_prob_.sum() / n;
  }

  /// Differentiates the last sample_and_log_prob() with respect to the parameters (the samples
  /// are reparameterised): given ∂L/∂x and ∂L/∂log_prob, adds ∂L/∂θ into gradients().
  void backward_sample_and_log_prob(MatrixCRef<T> grad_x,
                                    RowVectorCRef<T> grad_log_prob) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::backward_sample_and_log_prob";
    const auto in_use = in_use_.enter(function);
    refuse_after_no_grad(function);
    check_gradient(function, "grad_x", grad_x, dim());
    check_gradient(function, "grad_log_prob", grad_log_prob, 1);
    resize_workspace(grad_log_det_, grad_log_prob.cols());
    grad_log_det_ = -grad_log_prob;
    bijector_.backward(grad_x, grad_log_det_, grad_noise_);  // paths through x and log|det|
    finish_backward_sample(grad_log_prob);
  }

  /// The same for the last sample_and_log_prob(context, …); also writes ∂L/∂c.
  void backward_sample_and_log_prob(MatrixCRef<T> grad_x, RowVectorCRef<T> grad_log_prob,
                                    Matrix<T>& grad_context) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::backward_sample_and_log_prob";
    const auto in_use = in_use_.enter(function);
    refuse_after_no_grad(function);
    check_gradient(function, "grad_x", grad_x, dim());
    check_gradient(function, "grad_log_prob", grad_log_prob, 1);
    resize_workspace(grad_log_det_, grad_log_prob.cols());
    grad_log_det_ = -grad_log_prob;
    resize_workspace(grad_context, bijector_.context_dim(), grad_log_prob.cols());
    grad_context.setZero();
    bijector_.backward(grad_x, grad_log_det_, grad_noise_, grad_context);
    finish_backward_sample(grad_log_prob);
  }

  // ---- data-dependent initialisation ------------------------------------------------------------

  /// Initialises the bijector from data (each part on the batch as it arrives there in the density
  /// direction; a no-op for bijectors without initialize hooks) and marks the flow initialised.
  void initialize(MatrixCRef<T> x) requires Bijector<B> {
    constexpr std::string_view function = "TransformedDistribution::initialize";
    const auto in_use = in_use_.enter(function);
    check_input(function, x);
    check_no_context_needed(function);
    if (knead::needs_initialize(bijector_)) knead::initialize(bijector_, x);
    initialized_ = true;
  }
  void initialize(MatrixCRef<T> x, MatrixCRef<T> context) requires ConditionalBijector<B> {
    constexpr std::string_view function = "TransformedDistribution::initialize";
    const auto in_use = in_use_.enter(function);
    check_input(function, x);
    check_context(function, context, x.cols());
    if (knead::needs_initialize(bijector_)) knead::initialize(bijector_, x, context);
    initialized_ = true;
  }
  /// Whether initialize() ran (or set_initialized(true) said it need not, for a loaded flow).
  [[nodiscard]] bool initialized() const { return initialized_; }
  void set_initialized(bool on) { initialized_ = on; }

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
  // ---- private passes ----
  void sample_and_log_prob_pass(std::string_view function, Index n, Rng& rng, Matrix<T>& x,
                                RowVector<T>& log_prob) {
    draw_noise(function, n, rng);
    base_.log_prob(noise_, log_prob);
    bijector_.forward_and_log_det(noise_, x, log_det_);
    check_samples(function, x);
    log_prob -= log_det_;
  }
  /// The machine's physical memory in bytes (the largest value when it cannot be read).
  static std::uintmax_t physical_memory_bytes() {
#if defined(__unix__) || defined(__APPLE__)
    const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0)
      return static_cast<std::uintmax_t>(pages) * static_cast<std::uintmax_t>(page_size);
#endif
    return std::numeric_limits<std::uintmax_t>::max();
  }
  /// Refuses, before anything is allocated, a sample count whose result alone (dim × n values)
  /// would not fit in the machine's memory.
  void check_sample_count(std::string_view function, Index n) const {
    detail::check_positive(function, "number of samples", n);
    const auto per_sample = static_cast<std::uintmax_t>(dim()) * sizeof(T);
    const std::uintmax_t limit = physical_memory_bytes();
    if (static_cast<std::uintmax_t>(n) > limit / per_sample)
      detail::fail(function, n, " samples of dimension ", dim(), " need ",
                   static_cast<long double>(n) * static_cast<long double>(per_sample),
                   " bytes for the result alone, more than this machine's memory (", limit, " bytes)");
  }
  void backward_log_prob_pass(std::string_view function, RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_x,
                              Matrix<T>& grad_context) requires ConditionalBijector<B> {
    refuse_after_no_grad(function);
    check_gradient(function, "grad_log_prob", grad_log_prob, 1);
    base_.backward_log_prob(grad_log_prob, grad_noise_);
    resize_workspace(grad_context, bijector_.context_dim(), grad_log_prob.cols());
    grad_context.setZero();
    bijector_.backward(grad_noise_, grad_log_prob, grad_x, grad_context);
  }
  void backward_log_prob_pass(std::string_view function, RowVectorCRef<T> grad_log_prob,
                              Matrix<T>& grad_x) requires Bijector<B> {
    refuse_after_no_grad(function);
    check_gradient(function, "grad_log_prob", grad_log_prob, 1);
    base_.backward_log_prob(grad_log_prob, grad_noise_);
    bijector_.backward(grad_noise_, grad_log_prob, grad_x);
  }
  void log_prob_pass(std::string_view function, MatrixCRef<T> x, MatrixCRef<T> context,
                     RowVector<T>& out) requires ConditionalBijector<B> {
    check_input(function, x);
    check_context(function, context, x.cols());
    no_grad_pass_ = NoGrad::active();
    bijector_.inverse_and_log_det(x, context, noise_, log_det_);
    check_pass(function, x.cols());
    base_.log_prob(noise_, out);
    out += log_det_;
  }
  void log_prob_pass(std::string_view function, MatrixCRef<T> x, RowVector<T>& out) requires Bijector<B> {
    check_input(function, x);
    check_no_context_needed(function);
    no_grad_pass_ = NoGrad::active();
    bijector_.inverse_and_log_det(x, noise_, log_det_);
    check_pass(function, x.cols());
    base_.log_prob(noise_, out);
    out += log_det_;
  }
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
  void check_context(std::string_view function, MatrixCRef<T> context, Index cols) const {
    if (cols == 0) detail::fail(function, "empty context (0 columns)");
    detail::check_context(function, context, bijector_.context_dim(), cols);
    detail::check_finite(function, "context", context);
  }
  /// A call without a context on a type-erased bijector that holds a conditional part.
  void check_no_context_needed(std::string_view function) const {
    if constexpr (HasContextDim<B>)
      if (bijector_.context_dim() != 0)
        detail::fail(function, "the bijector is conditional (context_dim ", bijector_.context_dim(),
                     "): call it with a context, one column per sample");
  }
  void check_pass(std::string_view function, Index cols) const {
    KNEAD_ASSERT(noise_.rows() == dim() && noise_.cols() == cols && log_det_.cols() == cols, function,
                 "the bijector returned a ", noise_.rows(), "x", noise_.cols(), " result and ",
                 log_det_.cols(), " log-dets for ", cols, " samples");
  }
  void draw_noise(std::string_view function, Index n, Rng& rng) {
    base_.sample(n, rng, noise_);
    KNEAD_ASSERT(noise_.rows() == dim() && noise_.cols() == n, function, "the base drew a ", noise_.rows(),
                 "x", noise_.cols(), " batch for ", n, " samples");
    detail::check_finite(function, "noise drawn from the base", noise_);
  }
  static void check_samples(std::string_view function, MatrixCRef<T> x) {
    detail::check_finite(function, "result (a sample overflowed, or a parameter is not finite)", x);
  }
  /// A gradient handed to a backward entry: `rows` × (samples of the last pass), finite values.
  template <class Derived>
  void check_gradient(std::string_view function, std::string_view what, const Eigen::MatrixBase<Derived>& g,
                      Index rows) const {
    if (g.rows() != rows || g.cols() != noise_.cols())
      detail::fail(function, what, " must be ", rows, "x", noise_.cols(),
                   " (the shape of the last pass), got ", g.rows(), "x", g.cols());
    detail::check_finite(function, what, g);
  }
  /// The paths of a reparameterised sample's gradient through log p_base(u) and the base.
  void finish_backward_sample(RowVectorCRef<T> grad_log_prob) {
    base_.backward_log_prob(grad_log_prob, grad_base_log_prob_);  // path through log p_base(u)
    grad_noise_ += grad_base_log_prob_;
    base_.backward_sample(grad_noise_);  // u = base's reparameterisation of its noise
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
  Matrix<T> noise_;
  RowVector<T> log_det_;
  bool no_grad_pass_ = false;  // the last pass ran under NoGrad: nothing to differentiate
  Matrix<T> part_;             // the samples of one pass of a sample() in several passes
  RowVector<T> part_log_prob_;
  detail::InUseFlag in_use_;  // one pass at a time: the workspaces above are the object's
  bool initialized_ = false;
  Matrix<T> grad_noise_, grad_base_log_prob_, grad_x_, grad_context_;
  RowVector<T> log_prob_, grad_log_prob_, grad_log_det_;
};

}  // namespace knead
