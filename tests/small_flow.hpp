#pragma once
// A small flow of make_flow's kinds for the tests that run whole flows (threads, NoGrad).

#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"

namespace knead::test {

template <class T>
using SmallFlow = TransformedDistribution<StandardNormal<T>, DynamicChain<T>>;

/// 3 layers, two hidden layers of 40 units, random (not identity) initialisation.
template <class T>
SmallFlow<T> small_flow(FlowKind kind, Index dim, std::uint64_t seed) {
  const FlowSpec<T> spec{
      .kind = kind, .dim = dim, .layers = 3, .hidden = {40, 40}, .identity_init = false, .seed = seed};
  return SmallFlow<T>(StandardNormal<T>(dim), make_flow(spec));
}

}  // namespace knead::test
