#pragma once
/// @file
/// ActNorm<T>: an elementwise affine map initialised from data (Glow's activation normalisation).

#include <cmath>
#include <string_view>

#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/core/errors.hpp"

namespace knead {

/// An elementwise affine map whose scale and shift are set from the first batch it sees, so that
/// this batch leaves it (in the density direction) with zero mean and unit variance per dimension;
/// afterwards they are ordinary learnable parameters.
///
/// - forward:  x = exp(s) ⊙ u + b
/// - inverse:  u = (x − b) ⊙ exp(−s)
/// - log|det ∂x/∂u| = Σ_i s_i (the same for every sample)
///
/// initialize(x), on a D×N batch as it arrives in the density direction (the input of inverse):
///   b_i = mean_n x_in,   s_i = ½ log var_n x_in   (population variance, 1/N),
/// so u = (x − b) e^{−s} has mean 0 and variance 1 in every dimension over that batch. A dimension
/// whose values are all equal has no scale to take: s_i = 0 there (only the mean is removed).
/// The state "initialised" is explicit: initialize() sets it, and once it is set initialize()
/// changes nothing, so a flow trained, saved and loaded again (the state is in the file), or
/// resumed, is never re-initialised by the Trainer. Starts uninitialised as the identity
/// (s = 0, b = 0); parameter layout [s (D)][b (D)], as Affine's; the passes and their backward
/// rules are Affine's (knead/bijectors/elementwise_affine.hpp).
template <class T>
class ActNorm : public ElementwiseAffine<T, true, true, ActNorm<T>> {
  using Base = ElementwiseAffine<T, true, true, ActNorm<T>>;

 public:
  static constexpr std::string_view layer_name = "ActNorm";
  using Base::Base;

  /// Sets s and b from `batch` (D×N, N ≥ 2, finite) unless already initialised.
  void initialize(MatrixCRef<T> batch) {
    constexpr std::string_view function = "ActNorm::initialize";
    detail::check_batch(function, batch, this->dim());
    if (initialized_) return;
    if (batch.cols() < 2)
      detail::fail(function, "needs at least 2 samples to set a scale from, got ", batch.cols());
    detail::check_finite(function, "batch", batch);
    std::span<T> params = this->parameters();  // [s (D)][b (D)]
    const Index dim = this->dim();
    for (Index i = 0; i < dim; ++i) {
      // in double, in one pass over the row after its mean: the variance of data far from 0 keeps
      // its digits
      double mean = 0;
      for (Index n = 0; n < batch.cols(); ++n) mean += double(batch(i, n));
      mean /= double(batch.cols());
      double variance = 0;
      for (Index n = 0; n < batch.cols(); ++n)
        variance += (double(batch(i, n)) - mean) * (double(batch(i, n)) - mean);
      variance /= double(batch.cols());
      const double log_scale = 0.5 * std::log(variance);
      params[std::size_t(i)] = variance > 0 && std::isfinite(log_scale) ? T(log_scale) : T(0);
      params[std::size_t(dim + i)] = T(mean);
    }
    detail::check_finite(function, "the scale and shift set from the batch",
                         Eigen::Map<const Vector<T>>(params.data(), 2 * dim));
    initialized_ = true;
  }
  /// Whether initialize() has set the scale and shift (or a loaded file said so).
  [[nodiscard]] bool initialized() const { return initialized_; }
  /// Marks the map initialised (a file's state) or not, so that the next initialize() sets it.
  void set_initialized(bool on) { initialized_ = on; }
  /// Whether a flow holding this map still has data-dependent initialisation to run.
  [[nodiscard]] bool needs_initialize() const { return !initialized_; }

 private:
  bool initialized_ = false;
};

static_assert(check_bijector<ActNorm<double>>());
static_assert(check_bijector<ActNorm<float>>());

}  // namespace knead
