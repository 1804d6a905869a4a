#pragma once
/// @file
/// Adam with decoupled weight decay (AdamW).

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "knead/core/threads.hpp"
#include "knead/optim/optimizer.hpp"

namespace knead {

namespace detail {

/// The largest gradient Adam accepts in T: √max(T) (about 1.8e19 for float, 1.3e154 for double).
/// Within it g² is finite, and so is the second moment v ← β₂ v + (1 − β₂) g² (a weighted mean of
/// finite squares). Beyond it v would become +∞, and √∞ has no single value across the update's
/// paths: std::sqrt gives ∞ (the parameter freezes for good), the SIMD rsqrt and Newton step gives
/// ∞ · 0 = NaN. So such a gradient is refused, like a non-finite one, before anything changes.
template <class T>
inline const T largest_adam_gradient = std::sqrt(std::numeric_limits<T>::max());

/// Throws std::invalid_argument naming the first gradient that is non-finite or beyond
/// largest_adam_gradient<T>; one pass that vectorises and runs on knead's threads for a large model.
template <class T>
void check_adam_gradients(std::string_view function, std::span<const T> grads) {
  const T limit = largest_adam_gradient<T>;
  const T* g = grads.data();
  std::atomic<int> any_bad{0};
  parallel_elementwise(Index(grads.size()), [&](Index begin, Index end, int) {
    int bad = 0;
    // false for NaN too
    for (Index i = begin; i < end; ++i) bad |= !(std::abs(g[i]) <= limit);
    if (bad != 0) any_bad.store(1, std::memory_order_relaxed);
  });
  if (any_bad.load() == 0) return;
  check_finite_gradients(function, grads);
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (!(std::abs(grads[i]) <= limit))
      fail(function, "gradient ", i, " is ", grads[i], ", beyond ", limit,
           " (its square would overflow the second moment); no update was applied");
}

}  // namespace detail

struct AdamOptions {
  LrSchedule lr = 1e-3;  ///< a number (constant) or any LrSchedule
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;  ///< λ, decoupled (AdamW); 0 gives plain Adam
};

/// Adam (Kingma & Ba 2015, Algorithm 1) with the decoupled weight decay of AdamW (Loshchilov &
/// Hutter 2019, Algorithm 2). At update t = 1, 2, … with gradient g and η = lr(t − 1):
///
///     m ← β₁ m + (1 − β₁) g            v ← β₂ v + (1 − β₂) g²
///     m̂ = m / (1 − β₁ᵗ)                v̂ = v / (1 − β₂ᵗ)
///     θ ← θ − η (m̂ / (√v̂ + ε) + λ θ)
///
/// The decay acts on θ directly instead of through g, so it is not rescaled by √v̂ (the point of
/// AdamW); like the Adam term it is multiplied by the scheduled learning rate.
///
/// State layout: [m (P)][v (P)], with step_count() = t, the number of updates applied.
template <class T>
class Adam {
 public:
  using Scalar = T;

  explicit Adam(Index num_parameters, AdamOptions options = {})
      : n_(num_parameters), options_(std::move(options)) {
    constexpr std::string_view function = "Adam";
    detail::check_num_parameters(function, n_);
    detail::check_unit_interval(function, "beta1", options_.beta1);
    detail::check_unit_interval(function, "beta2", options_.beta2);
    if (!std::isfinite(options_.epsilon) || options_.epsilon <= 0)
      detail::fail(function, "epsilon must be positive and finite, got ", options_.epsilon);
    detail::check_non_negative(function, "weight_decay", options_.weight_decay);
    state_.assign(2 * std::size_t(n_), T(0));
  }
  /// Sized for the parameters of `model` (any object with parameters()).
  template <HasParameterSpans P>
  explicit Adam(P& model, AdamOptions options = {})
      : Adam(Index(model.parameters().size()), std::move(options)) {}

  /// One update of `params` from `grads` (both of num_parameters() entries). Throws
  /// std::invalid_argument, changing nothing, if a size differs or a gradient is non-finite or
  /// larger in magnitude than detail::largest_adam_gradient<T> (√max(T), whose square overflows).
  void step(std::span<T> params, std::span<const T> grads) {
    constexpr std::string_view function = "Adam::step";
    detail::check_step_spans(function, n_, params, grads);
    detail::check_adam_gradients(function, grads);

    const double lr = learning_rate();
    ++t_;
    const double b1 = options_.beta1, b2 = options_.beta2;
    // m̂ / (√v̂ + ε) = (m / c₁) / (√v / √c₂ + ε) with c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ
    const T step_size = static_cast<T>(lr / (1.0 - std::pow(b1, double(t_))));
    const T inv_sqrt_c2 = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(b2, double(t_))));
    const T decay = static_cast<T>(lr * options_.weight_decay);
    const T beta1 = static_cast<T>(b1), one_minus_beta1 = static_cast<T>(1.0 - b1);
    const T beta2 = static_cast<T>(b2), one_minus_beta2 = static_cast<T>(1.0 - b2);
    const T eps = static_cast<T>(options_.epsilon);
    // In chunks of 32 entries, with Eigen's array operations: std::sqrt keeps a plain loop scalar
    // (it may set errno), while Eigen's sqrt is SIMD. It is not always correctly rounded: for float
    // on AVX-512 with EIGEN_FAST_MATH (Eigen's default) it is an rsqrt estimate and one Newton step,
    // within 3 ulp of std::sqrt (measured over 4M values from 2⁻³⁰ to 2³⁰), the size of the
    // rounding of the update's other operations. A chunk whose g, m and v are all zero is left as
    // it is (apart from the decay): the update would write back the same m, v and θ, and the
    // structurally zero weights of masked networks (about half of MADE's) are such chunks, so the
    // step writes about half the memory. Large models are split over knead's threads (the update
    // is elementwise: the same for any count).
    constexpr Index chunk = 32;
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    static_assert(sizeof(Bits) == sizeof(T) && std::numeric_limits<T>::is_iec559, "Adam: float or double");
    constexpr Bits magnitude_bits = ~(Bits(1) << (8 * sizeof(T) - 1));  // all but the sign bit
    const T* g_all = grads.data();
    T *m_all = state_.data(), *v_all = state_.data() + n_, *theta_all = params.data();
    auto update = [&](auto g, auto m, auto v, auto theta) {
      m = beta1 * m + one_minus_beta1 * g;
      v = beta2 * v + one_minus_beta2 * g * g;
      theta -= step_size * m / (v.sqrt() * inv_sqrt_c2 + eps) + decay * theta;
    };
    detail::parallel_elementwise(n_, [&](Index first, Index end, int) {
      for (Index begin = first; begin < end; begin += chunk) {
        const Index size = std::min(chunk, end - begin);
        // x ≠ 0 exactly when x's bits other than the sign bit are not all zero (±0 are the floats
        // equal to 0; NaN, refused above for g, counts as moving): one OR of the chunk's bits
        // instead of three comparisons per entry (the scan of a D=64 hidden 512 MAF's 1.8 M
        // parameters: 6.3 M instructions instead of 8.1 M, callgrind)
        Bits moving = 0;
        for (Index i = begin; i < begin + size; ++i)
          moving |=
              std::bit_cast<Bits>(g_all[i]) | std::bit_cast<Bits>(m_all[i]) | std::bit_cast<Bits>(v_all[i]);
        if ((moving & magnitude_bits) == 0) {
          if (decay != T(0))
            for (Index i = begin; i < begin + size; ++i) theta_all[i] -= decay * theta_all[i];
          continue;
        }
        if (size == chunk) {
          using Fixed = Eigen::Map<Eigen::Array<T, chunk, 1>>;
          update(Eigen::Map<const Eigen::Array<T, chunk, 1>>(g_all + begin), Fixed(m_all + begin),
                 Fixed(v_all + begin), Fixed(theta_all + begin));
        } else {
          using Dynamic = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
          update(Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(g_all + begin, size),
                 Dynamic(m_all + begin, size), Dynamic(v_all + begin, size),
                 Dynamic(theta_all + begin, size));
        }
      }
    });
  }
  /// Updates the parameters of `model` from its gradients.
  template <HasParameterSpans P>
  requires std::same_as<typename P::Scalar, T>
  void step(P& model) { step(model.parameters(), std::span<const T>(model.gradients())); }

  [[nodiscard]] Index num_parameters() const { return n_; }
  [[nodiscard]] const AdamOptions& options() const { return options_; }
  [[nodiscard]] const LrSchedule& schedule() const { return options_.lr; }
  /// The learning rate the next step() will use.
  [[nodiscard]] double learning_rate() const { return options_.lr.lr(t_); }

  // ---- state, for checkpoints ----------------------------------------------------------------
  [[nodiscard]] Index step_count() const { return t_; }
  /// [m][v]: 2 · num_parameters() values.
  [[nodiscard]] std::span<const T> state() const { return state_; }
  [[nodiscard]] std::span<const T> first_moment() const { return state().first(std::size_t(n_)); }
  [[nodiscard]] std::span<const T> second_moment() const { return state().subspan(std::size_t(n_)); }
  /// Restores a state saved from state() and step_count() (second moments must be ≥ 0).
  void set_state(std::span<const T> state, Index step_count) {
    constexpr std::string_view function = "Adam::set_state";
    detail::check_state(function, state, 2 * n_, step_count);
    for (std::size_t i = std::size_t(n_); i < state.size(); ++i)
      if (state[i] < 0)
        detail::fail(function, "second moment ", i - std::size_t(n_), " must be non-negative, got ",
                     state[i]);
    std::ranges::copy(state, state_.begin());
    t_ = step_count;
  }
  /// Back to the state at construction (zero moments, no step taken).
  void reset() {
    std::ranges::fill(state_, T(0));
    t_ = 0;
  }

 private:
  Index n_;
  AdamOptions options_;
  std::vector<T> state_;
  Index t_ = 0;
};

static_assert(Optimizer<Adam<double>>);
static_assert(Optimizer<Adam<float>>);

}  // namespace knead
