#pragma once
// Random 2-D flows used by the density tests: each is a factory type with a make(rng) that builds
// a TransformedDistribution with random parameters of moderate size.

#include <tuple>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/invert.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "support.hpp"

namespace knead::test {

struct AffineFlow {
  static auto make(Rng& rng) {
    TransformedDistribution flow(StandardNormal<double>(2),
                                 Chain(Affine<double>(2), Invert(Affine<double>(2))));
    randomise_parameters(flow, rng, 0.5);
    return flow;
  }
};

using RandomFlows2D = std::tuple<AffineFlow>;

template <class Factory>
auto make_random_flow(Rng& rng) {
  return Factory::make(rng);
}

}  // namespace knead::test
