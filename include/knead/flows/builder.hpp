#pragma once
/// @file
/// Builders for the classic flow architectures, assembled at run time as a DynamicChain, so
/// programs can choose a flow from options (and a saved file can be rebuilt from its description).

#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/bijectors/act_norm.hpp"
#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/lu_linear.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/nn/log_scale_guard.hpp"

namespace knead {

/// The classic architectures make_flow builds; flow_kinds<T> describes each.
enum class FlowKind { maf, iaf, realnvp, nice, mlp };

/// What make_flow puts between consecutive layers to mix the dimensions: the fixed reversal
/// Permute::reverse, or a learnable LuLinear whose permutation is that reversal (so it starts as
/// the same map, W = P).
enum class Mixing { permute, lu };

/// "permute" or "lu".
[[nodiscard]] inline std::string_view to_string(Mixing mixing) {
  return mixing == Mixing::lu ? "lu" : "permute";
}
[[nodiscard]] inline Mixing parse_mixing(std::string_view name) {
  if (name == "permute") return Mixing::permute;
  if (name == "lu") return Mixing::lu;
  detail::fail("parse_mixing", "unknown mixing '", name, "' (expected permute or lu)");
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
  /// An ActNorm before each layer in the density direction (maf, iaf, realnvp, nice): the first
  /// training batch sets each one so that what it passes on has zero mean and unit variance.
  bool act_norm = false;
  /// Between consecutive layers (maf, iaf, realnvp, nice): the reversal, or a LuLinear.
  Mixing mixing = Mixing::permute;
  /// C > 0: every maf, iaf, realnvp and nice layer reads a C-row context (the flow is p(x | c)).
  Index context_dim = 0;
};

namespace flow_layers {

/// The seed of layer i's network: different for every layer and every spec.seed.
template <class T>
std::uint64_t layer_seed(const FlowSpec<T>& spec, Index i) {
  return spec.seed * 1000003u + std::uint64_t(i) + 1;
}

/// The options of layer i's conditioner (MafOptions or CouplingOptions, which share these fields).
template <class Options, class T>
Options layer_options(const FlowSpec<T>& spec, Index i) {
  Options options;
  options.hidden = spec.hidden;
  options.guard = spec.guard;
  options.identity_init = spec.identity_init;
  options.seed = layer_seed(spec, i);
  options.context_dim = spec.context_dim;
  return options;
}

/// spec.layers layers made by layer(i), with Permute::reverse or, with Mixing::lu, a LuLinear
/// starting as that reversal (and, with batch_norm, a BatchNorm before it) between consecutive layers, so
/// that every dimension is transformed and conditions the others; with act_norm, an ActNorm after each layer
/// (before it in the density direction).
template <class T, class Layer>
void stack(DynamicChain<T>& chain, const FlowSpec<T>& spec, Layer layer) {
  for (Index i = 0; i < spec.layers; ++i) {
    if (i > 0) {
      if (spec.batch_norm) chain.push_back(BatchNorm<T>(spec.dim));
      if (spec.mixing == Mixing::lu)
        chain.push_back(LuLinear<T>(Permute<T>::reverse(spec.dim).permutation()));
      else
        chain.push_back(Permute<T>::reverse(spec.dim));
    }
    chain.push_back(layer(i));
    if (spec.act_norm) chain.push_back(ActNorm<T>(spec.dim));
  }
}

template <class T>
void check_coupling_dim(const FlowSpec<T>& spec) {
  if (spec.dim < 2) detail::fail("make_flow", "coupling flows need dim >= 2, got ", spec.dim);
}

template <class T>
void maf(DynamicChain<T>& chain, const FlowSpec<T>& spec) {
  stack(chain, spec, [&](Index i) { return Maf<T>(spec.dim, layer_options<MafOptions<T>>(spec, i)); });
}

template <class T>
void iaf(DynamicChain<T>& chain, const FlowSpec<T>& spec) {
  stack(chain, spec, [&](Index i) { return make_iaf<T>(spec.dim, layer_options<MafOptions<T>>(spec, i)); });
}

/// Couplings split the dimensions in halves: [0, dim/2) conditions [dim/2, dim).
template <class T>
void realnvp(DynamicChain<T>& chain, const FlowSpec<T>& spec) {
  check_coupling_dim(spec);
  stack(chain, spec, [&](Index i) {
    return AffineCoupling<T>(spec.dim, spec.dim / 2, layer_options<CouplingOptions<T>>(spec, i));
  });
}

/// NICE's diagonal scaling layer comes first: additive couplings alone preserve volume.
template <class T>
void nice(DynamicChain<T>& chain, const FlowSpec<T>& spec) {
  check_coupling_dim(spec);
  chain.push_back(Scale<T>(spec.dim));
  stack(chain, spec, [&](Index i) {
    return AdditiveCoupling<T>(spec.dim, spec.dim / 2, layer_options<CouplingOptions<T>>(spec, i));
  });
}

/// TriangularAffine, then `layers` times (PReLU, TriangularAffine); batch_norm and act_norm do not
/// apply.
template <class T>
void mlp(DynamicChain<T>& chain, const FlowSpec<T>& spec) {
  if (spec.context_dim != 0)
    detail::fail("make_flow", "flow 'mlp' takes no context, got context_dim ", spec.context_dim);
  chain.push_back(TriangularAffine<T>(spec.dim));
  for (Index i = 0; i < spec.layers; ++i) {
    chain.push_back(PReLU<T>(spec.dim));
    chain.push_back(TriangularAffine<T>(spec.dim));
  }
}

}  // namespace flow_layers

/// One kind of flow: its name (parse_flow_kind, to_string, train_2d's --flow), a one-line
/// description for help texts, and the function that appends its layers to an empty chain.
template <class T>
struct FlowKindEntry {
  FlowKind kind;
  std::string_view name;
  std::string_view description;
  void (*build)(DynamicChain<T>& chain, const FlowSpec<T>& spec);
};

/// Every flow kind, one entry each: adding a kind is a FlowKind value and an entry here.
template <class T>
inline constexpr FlowKindEntry<T> flow_kinds[] = {
    {FlowKind::maf, "maf", "masked autoregressive flow: fast density, sequential sampling",
     &flow_layers::maf<T>},
    {FlowKind::iaf, "iaf", "inverse autoregressive flow: fast sampling, sequential density",
     &flow_layers::iaf<T>},
    {FlowKind::realnvp, "realnvp", "affine couplings", &flow_layers::realnvp<T>},
    {FlowKind::nice, "nice", "additive couplings and a learnable diagonal scale", &flow_layers::nice<T>},
    {FlowKind::mlp, "mlp", "lower-triangular affine layers and PReLU (the tutorial's Part 1 \"MLP flow\")",
     &flow_layers::mlp<T>},
};

// The lookups by name below do not depend on the scalar type; they are templates (T defaults to
// double) so that the table, and with it every flow's build function, is instantiated only in
// programs that look a flow kind up: as plain inline functions they instantiated flow_kinds<double>
// in every translation unit including this header (+11 s of compile time, bench/README.md).

/// The names of the flow kinds, in the table's order.
template <class T = double>
[[nodiscard]] std::vector<std::string> flow_kind_names() {
  std::vector<std::string> names;
  for (const auto& entry : flow_kinds<T>) names.emplace_back(entry.name);
  return names;
}

template <class T = double>
[[nodiscard]] FlowKind parse_flow_kind(std::string_view name) {
  std::string expected;
  const std::size_t n = std::size(flow_kinds<T>);
  for (std::size_t i = 0; i < n; ++i) {
    if (flow_kinds<T>[i].name == name) return flow_kinds<T>[i].kind;
    expected += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(flow_kinds<T>[i].name);
  }
  detail::fail("parse_flow_kind", "unknown flow '", name, "' (expected ", expected, ")");
}

template <class T = double>
[[nodiscard]] std::string_view to_string(FlowKind kind) {
  for (const auto& entry : flow_kinds<T>)
    if (entry.kind == kind) return entry.name;
  return "?";
}

/// The bijector of a flow of `spec.layers` layers, listed in the forward (noise → data) order.
///
/// - maf / iaf / realnvp / nice: layer, then (between layers) Permute::reverse (or with
///   Mixing::lu a LuLinear starting as it) and, with batch_norm, BatchNorm, so that every dimension is
///   transformed and conditions the others; with act_norm, an ActNorm right after each layer (so one is
///   nearest the data).
/// - nice: a learnable Scale comes first (NICE's diagonal scaling layer; couplings alone preserve
///   volume).
/// - mlp: TriangularAffine, then `layers` times (PReLU, TriangularAffine); no context.
///
/// With spec.context_dim C > 0 the maf, iaf, realnvp and nice layers are conditional and the chain
/// takes a C×N context (its context_dim() is C); the other parts pass it by.
template <class T>
[[nodiscard]] DynamicChain<T> make_flow(const FlowSpec<T>& spec) {
  constexpr std::string_view function = "make_flow";
  detail::check_positive(function, "dim", spec.dim);
  detail::check_positive(function, "layers", spec.layers);
  if (spec.context_dim < 0)
    detail::fail(function, "context_dim is ", spec.context_dim, ", expected 0 or more");
  for (const FlowKindEntry<T>& entry : flow_kinds<T>)
    if (entry.kind == spec.kind) {
      DynamicChain<T> chain(spec.dim);
      entry.build(chain, spec);
      return chain;
    }
  detail::fail(function, "unknown flow kind ", int(spec.kind));
}

}  // namespace knead
