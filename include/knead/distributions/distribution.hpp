#pragma once
/// @file
/// The Distribution concept for base distributions of a flow, and the random engine knead uses.
///
/// A distribution over R^D evaluates log densities of D×N batches (one value per column), draws
/// reparameterised samples, and differentiates both: `backward_log_prob` takes ∂L/∂log_prob of the
/// last log_prob() call, adds ∂L/∂θ into gradients() and writes ∂L/∂u; `backward_sample` takes
/// ∂L/∂sample of the last sample() call and adds ∂L/∂θ through the reparameterisation. The passes
/// keep what backward needs in the object, so they are non-const members.

#include <random>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"

namespace knead {

/// The explicit, seedable random engine used for every draw: same seed, same samples.
using Rng = std::mt19937_64;

template <class D>
concept Distribution = HasScalar<D> && HasDim<D> && Parameterised<D> && std::copy_constructible<D> &&
    requires(D& d, MatrixCRef<typename D::Scalar> in, Matrix<typename D::Scalar>& out,
             RowVector<typename D::Scalar>& per_sample, RowVectorCRef<typename D::Scalar> grad_per_sample,
             Index n, Rng& rng) {
  d.log_prob(in, per_sample);
  d.sample(n, rng, out);
  d.backward_log_prob(grad_per_sample, out);
  d.backward_sample(in);
};

/// Draws standard normal noise of the given shape.
template <class T>
void standard_normal(Rng& rng, Matrix<T>& out, Index rows, Index cols) {
  std::normal_distribution<T> normal(T(0), T(1));
  resize_workspace(out, rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) out(i, j) = normal(rng);
}

}  // namespace knead
