#pragma once
// Random 2-D flows used by the density tests: each is a factory type with a make(rng) that builds
// a TransformedDistribution with random parameters of moderate size.

#include <tuple>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/invert.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
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

/// A flow of the given kind (two layers, small conditioners) with random weights.
template <FlowKind Kind>
struct BuiltFlow {
  static auto make(Rng& rng) {
    FlowSpec<double> spec;
    spec.kind = Kind;
    spec.layers = 2;
    spec.hidden = {16, 16};
    spec.identity_init = false;
    spec.seed = 5;
    TransformedDistribution flow(StandardNormal<double>(2), make_flow(spec));
    randomise_parameters(flow, rng, 0.3);
    return flow;
  }
};

using RandomFlows2D = std::tuple<AffineFlow, BuiltFlow<FlowKind::maf>, BuiltFlow<FlowKind::iaf>,
                                 BuiltFlow<FlowKind::realnvp>, BuiltFlow<FlowKind::mlp>>;

template <class Factory>
auto make_random_flow(Rng& rng) {
  return Factory::make(rng);
}

}  // namespace knead::test
