#pragma once
/// @file
/// Stochastic gradient descent with (optionally Nesterov) momentum.

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "knead/optim/optimizer.hpp"

namespace knead {

struct SgdOptions {
  LrSchedule lr = 1e-2;       ///< a number (constant) or any LrSchedule
  double momentum = 0.0;      ///< μ in [0, 1); 0 gives plain SGD
  bool nesterov = false;      ///< needs momentum > 0
  double weight_decay = 0.0;  ///< λ, decoupled: acts on θ, not through the momentum
};

/// SGD with heavy-ball momentum (Polyak 1964), optionally Nesterov's accelerated variant (as
/// written for deep learning by Sutskever et al. 2013). The buffer accumulates raw gradients and
/// the scheduled learning rate multiplies the whole step, so a schedule change takes effect at
/// once. At update t with gradient g and η = lr(t − 1), starting from b = 0:
///
///     b ← μ b + g
///     d = g + μ b   (Nesterov)   or   d = b   (otherwise)
///     θ ← θ − η (d + λ θ)
///
/// State layout: [b (P)], with step_count() = the number of updates applied.
template <class T>
class Sgd {
 public:
  using Scalar = T;

  explicit Sgd(Index num_parameters, SgdOptions options = {})
      : n_(num_parameters), options_(std::move(options)) {
    constexpr std::string_view function = "Sgd";
    detail::check_num_parameters(function, n_);
    detail::check_unit_interval(function, "momentum", options_.momentum);
    if (options_.nesterov && options_.momentum == 0)
      detail::fail(function, "nesterov needs a positive momentum, got momentum ", options_.momentum);
    detail::check_non_negative(function, "weight_decay", options_.weight_decay);
    velocity_.assign(std::size_t(n_), T(0));
  }
  /// Sized for the parameters of `model` (any object with parameters()).
  template <HasParameterSpans P>
  explicit Sgd(P& model, SgdOptions options = {})
      : Sgd(Index(model.parameters().size()), std::move(options)) {}

  /// One update of `params` from `grads` (both of num_parameters() entries). Throws
  /// std::invalid_argument, changing nothing, if a size differs or a gradient is non-finite.
  void step(std::span<T> params, std::span<const T> grads) {
    constexpr std::string_view function = "Sgd::step";
    detail::check_step_spans(function, n_, params, grads);
    detail::check_finite_gradients(function, grads);

    const T lr = static_cast<T>(learning_rate());
    const T mu = static_cast<T>(options_.momentum);
    const T decay = static_cast<T>(options_.weight_decay);
    ++t_;
    T* b = velocity_.data();
    for (Index i = 0; i < n_; ++i) {
      const T g = grads[std::size_t(i)];
      b[i] = mu * b[i] + g;
      const T d = options_.nesterov ? g + mu * b[i] : b[i];
      T& theta = params[std::size_t(i)];
      theta -= lr * (d + decay * theta);
    }
  }
  /// Updates the parameters of `model` from its gradients.
  template <HasParameterSpans P>
  requires std::same_as<typename P::Scalar, T>
  void step(P& model) { step(model.parameters(), std::span<const T>(model.gradients())); }

  [[nodiscard]] Index num_parameters() const { return n_; }
  [[nodiscard]] const SgdOptions& options() const { return options_; }
  [[nodiscard]] const LrSchedule& schedule() const { return options_.lr; }
  /// The learning rate the next step() will use.
  [[nodiscard]] double learning_rate() const { return options_.lr.lr(t_); }

  // ---- state, for checkpoints ----------------------------------------------------------------
  [[nodiscard]] Index step_count() const { return t_; }
  /// The momentum buffer b: num_parameters() values.
  [[nodiscard]] std::span<const T> state() const { return velocity_; }
  [[nodiscard]] std::span<const T> velocity() const { return velocity_; }
  /// Restores a state saved from state() and step_count().
  void set_state(std::span<const T> state, Index step_count) {
    detail::check_state("Sgd::set_state", state, n_, step_count);
    std::ranges::copy(state, velocity_.begin());
    t_ = step_count;
  }
  /// Back to the state at construction (zero velocity, no step taken).
  void reset() {
    std::ranges::fill(velocity_, T(0));
    t_ = 0;
  }

 private:
  Index n_;
  SgdOptions options_;
  std::vector<T> velocity_;
  Index t_ = 0;
};

static_assert(Optimizer<Sgd<double>>);
static_assert(Optimizer<Sgd<float>>);

}  // namespace knead
