#pragma once
/// @file
/// The Optimizer concept shared by Adam and Sgd, and the checks they share.
///
/// An optimizer is made for a fixed number of parameters: the contiguous `parameters()` /
/// `gradients()` storage of a knead object (a whole flow is one buffer), updated in one loop.
/// Its state (moments, step count) is one contiguous buffer as well, readable through state()
/// and step_count() and restorable with set_state(), so a checkpoint is two arrays and a number.

#include <atomic>
#include <cmath>
#include <concepts>
#include <limits>
#include <span>
#include <string_view>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/threads.hpp"
#include "knead/optim/schedule.hpp"

namespace knead {

template <class O>
concept Optimizer = HasScalar<O> && requires(O& o, const O& co, std::span<typename O::Scalar> params,
                                             std::span<const typename O::Scalar> grads,
                                             std::span<const typename O::Scalar> state, Index step) {
  o.step(params, grads);
  { co.num_parameters() } -> std::convertible_to<Index>;
  { co.step_count() } -> std::convertible_to<Index>;
  { co.learning_rate() } -> std::convertible_to<double>;
  { co.state() } -> std::same_as<std::span<const typename O::Scalar>>;
  o.set_state(state, step);
  o.reset();
};

/// Anything whose parameters and gradients an optimizer can update in place.
template <class P>
concept HasParameterSpans = HasScalar<P> && requires(P& p) {
  { p.parameters() } -> std::same_as<std::span<typename P::Scalar>>;
  { p.gradients() } -> std::same_as<std::span<typename P::Scalar>>;
};

namespace detail {

/// A probability-like hyper-parameter (β, momentum) must lie in [0, 1).
inline void check_unit_interval(std::string_view function, std::string_view what, double value) {
  if (!std::isfinite(value) || value < 0 || value >= 1)
    fail(function, what, " must be in [0, 1), got ", value);
}

inline void check_non_negative(std::string_view function, std::string_view what, double value) {
  if (!std::isfinite(value) || value < 0)
    fail(function, what, " must be non-negative and finite, got ", value);
}

inline void check_num_parameters(std::string_view function, Index n) {
  if (n < 1) fail(function, "needs at least 1 parameter to optimize, got ", n);
}

/// The spans handed to step() must have the size the optimizer was created for.
template <class T>
void check_step_spans(std::string_view function, Index expected, std::span<T> params,
                      std::span<const T> grads) {
  if (Index(params.size()) != expected)
    fail(function, "expected ", expected, " parameters (the count the optimizer was created for), got ",
         params.size());
  if (Index(grads.size()) != expected)
    fail(function, "expected ", expected, " gradients (the count the optimizer was created for), got ",
         grads.size());
}

/// A non-finite gradient would silently turn the parameters and the state into NaN: refuse it
/// before anything is changed.
template <class T>
void check_finite_gradients(std::string_view function, std::span<const T> grads) {
  // |g| ≤ max is false exactly for ±inf and NaN; the or-reduction vectorises, runs on knead's
  // threads for a large model (it reads every gradient once more before the update), and the
  // position of the first bad gradient is looked for only when there is one.
  const T* g = grads.data();
  std::atomic<int> any_bad{0};
  parallel_elementwise(Index(grads.size()), [&](Index begin, Index end, int) {
    int bad = 0;
    for (Index i = begin; i < end; ++i) bad |= !(std::abs(g[i]) <= std::numeric_limits<T>::max());
    if (bad != 0) any_bad.store(1, std::memory_order_relaxed);
  });
  if (any_bad.load() == 0) return;
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (!std::isfinite(static_cast<double>(grads[i])))
      fail(function, "gradient ", i, " is non-finite (", grads[i], "); no update was applied");
}

/// Restored state: the right size, finite, and a non-negative step count.
template <class T>
void check_state(std::string_view function, std::span<const T> state, Index expected_size, Index step_count) {
  if (Index(state.size()) != expected_size)
    fail(function, "expected a state of ", expected_size, " values, got ", state.size());
  if (step_count < 0) fail(function, "step_count must be non-negative, got ", step_count);
  for (std::size_t i = 0; i < state.size(); ++i)
    if (!std::isfinite(static_cast<double>(state[i])))
      fail(function, "state value ", i, " is non-finite (", state[i], ")");
}

}  // namespace detail

}  // namespace knead
