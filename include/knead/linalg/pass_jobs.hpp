#pragma once
/// @file
/// How a network's pass over its layers (knead::Mlp) is cut for the kernels and the threads: the
/// columns a forward pass takes through all the layers at a time, where a batch may be split among
/// threads, and the Balance that sizes each parallel job of a pass.

#include <algorithm>
#include <array>

#include "knead/core/threads.hpp"
#include "knead/core/types.hpp"
#include "knead/linalg/panel_layout.hpp"

namespace knead::linalg {

/// Batch columns are split among threads at multiples of this many columns (whole 16-float
/// vectors): every split computes each column alike.
inline constexpr Index column_align = 16;

/// Columns taken through all the layers at a time by a forward pass of a network whose widest layer
/// has `widest` units: a slice's activations stay in the cache from the layer that writes them to
/// the layer that reads them. A multiple of the width of knead's kernels' tiles (a narrower last
/// tile runs slower).
[[nodiscard]] inline Index forward_slice(Index widest) {
  constexpr Index tile = PanelLayout::nr;
  return std::clamp<Index>(Index(65536) / std::max<Index>(widest, 1), 3 * tile, 4096) / tile * tile;
}

/// The Balance of each parallel job of a pass of a network on T, shared by every such network: each
/// job has its own shape, so its own balance of the threads.
template <class T>
struct PassBalances {
  /// Packing the weights (and batches) for a forward pass, or for a backward one (`transposed`).
  static detail::Balance& packing(bool transposed) {
    static std::array<detail::Balance, 2> balances;
    return balances[transposed ? 1 : 0];
  }
  /// Layer `layer`'s part of a backward pass (layers from the fourth on share one).
  static detail::Balance& backward_layer(Index layer) {
    static std::array<detail::Balance, 4> balances;
    return balances[std::size_t(std::clamp<Index>(layer, 0, 3))];
  }
};

}  // namespace knead::linalg
