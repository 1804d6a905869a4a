#pragma once
/// @file
/// Builders for the classic flow architectures, assembled at run time as a DynamicChain, so
/// programs can choose a flow from options (and a saved file can be rebuilt from its description).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/nn/log_scale_guard.hpp"

namespace knead {

enum class FlowKind {
  maf,      ///< masked autoregressive flow: fast density, sequential sampling
  iaf,      ///< inverse autoregressive flow: fast sampling, sequential density
  realnvp,  ///< affine couplings
  nice,     ///< additive couplings and a final learnable scale
  mlp       ///< lower-triangular affine layers and PReLU (the tutorial's Part 1 "MLP flow")
};

[[nodiscard]] inline FlowKind parse_flow_kind(std::string_view name) {
  if (name == "maf") return FlowKind::maf;
  if (name == "iaf") return FlowKind::iaf;
  if (name == "realnvp") return FlowKind::realnvp;
  if (name == "nice") return FlowKind::nice;
  if (name == "mlp") return FlowKind::mlp;
  detail::fail("parse_flow_kind", "unknown flow '", name, "' (expected maf, iaf, realnvp, nice or mlp)");
}

[[nodiscard]] inline std::string_view to_string(FlowKind kind) {
  switch (kind) {
    case FlowKind::maf:
      return "maf";
    case FlowKind::iaf:
      return "iaf";
    case FlowKind::realnvp:
      return "realnvp";
    case FlowKind::nice:
      return "nice";
    case FlowKind::mlp:
      return "mlp";
  }
  return "?";
}

template <class T>
struct FlowSpec {
  FlowKind kind = FlowKind::maf;
  Index dim = 2;
  Index layers = 4;
  std::vector<Index> hidden = {64, 64};
  bool batch_norm = false;  ///< a BatchNorm after each layer but the last (density direction)
  LogScaleGuard<T> guard{};
  bool identity_init = true;  ///< each layer starts as the identity (last layer of its network zero)
  std::uint64_t seed = 0;
};

/// The bijector of a flow of `spec.layers` layers, listed in the forward (noise → data) order.
///
/// - maf / iaf / realnvp / nice: layer, then (between layers) Permute::reverse and, with
///   batch_norm, BatchNorm, so that every dimension is transformed and conditions the others.
/// - nice: a learnable Scale comes first (NICE's diagonal scaling layer; couplings alone preserve
///   volume).
/// - mlp: TriangularAffine, then `layers` times (PReLU, TriangularAffine).
template <class T>
[[nodiscard]] DynamicChain<T> make_flow(const FlowSpec<T>& spec) {
  constexpr std::string_view function = "make_flow";
  detail::check_positive(function, "dim", spec.dim);
  detail::check_positive(function, "layers", spec.layers);
  DynamicChain<T> chain(spec.dim);
  const auto layer_seed = [&](Index i) { return spec.seed * 1000003u + std::uint64_t(i) + 1; };
  if (spec.kind == FlowKind::mlp) {
    chain.push_back(TriangularAffine<T>(spec.dim));
    for (Index i = 0; i < spec.layers; ++i) {
      chain.push_back(PReLU<T>(spec.dim));
      chain.push_back(TriangularAffine<T>(spec.dim));
    }
    return chain;
  }
  if ((spec.kind == FlowKind::realnvp || spec.kind == FlowKind::nice) && spec.dim < 2)
    detail::fail(function, "coupling flows need dim >= 2, got ", spec.dim);
  if (spec.kind == FlowKind::nice) chain.push_back(Scale<T>(spec.dim));
  for (Index i = 0; i < spec.layers; ++i) {
    if (i > 0) {
      if (spec.batch_norm) chain.push_back(BatchNorm<T>(spec.dim));
      chain.push_back(Permute<T>::reverse(spec.dim));
    }
    switch (spec.kind) {
      case FlowKind::maf:
      case FlowKind::iaf: {
        MafOptions<T> options;
        options.hidden = spec.hidden;
        options.guard = spec.guard;
        options.identity_init = spec.identity_init;
        options.seed = layer_seed(i);
        if (spec.kind == FlowKind::maf)
          chain.push_back(Maf<T>(spec.dim, options));
        else
          chain.push_back(make_iaf<T>(spec.dim, options));
        break;
      }
      case FlowKind::realnvp:
      case FlowKind::nice: {
        CouplingOptions<T> options;
        options.hidden = spec.hidden;
        options.guard = spec.guard;
        options.identity_init = spec.identity_init;
        options.seed = layer_seed(i);
        const Index split = spec.dim / 2;
        if (spec.kind == FlowKind::realnvp)
          chain.push_back(AffineCoupling<T>(spec.dim, split, options));
        else
          chain.push_back(AdditiveCoupling<T>(spec.dim, split, options));
        break;
      }
      case FlowKind::mlp:
        break;
    }
  }
  return chain;
}

}  // namespace knead
