#pragma once
/// @file
/// How a network's pass over its layers (knead::Mlp) is cut for the kernels and the threads: the
/// columns a forward pass takes through all the layers at a time, where a batch may be split among
/// threads, and the Balance that sizes each parallel job of a pass.

#include <algorithm>
#include <array>

#include "knead/core/threads.hpp"
#include "knead/core/types.hpp"
#include "knead/linalg/gemm.hpp"

namespace knead::linalg {

/// Batch columns are split among threads at multiples of this many columns (whole 16-float
/// vectors): every split computes each column alike.
inline constexpr Index column_align = 16;
static_assert(column_align % eigen_internal::gebp_traits<float, float>::nr == 0 &&
                  column_align % eigen_internal::gebp_traits<double, double>::nr == 0,
              "a thread's share must start on a panel of B of Eigen's kernel (see slice_step)");

/// Columns taken through all the layers at a time by a forward pass of a network whose widest layer
/// has `widest` units: a slice's activations stay in the cache from the layer that writes them to
/// the layer that reads them. A multiple of slice_step: whole tiles of knead's kernels (a narrower
/// last tile runs slower) and whole panels of Eigen's, so a column's bits do not depend on where a
/// thread's share begins.
[[nodiscard]] inline Index forward_slice(Index widest) {
  return std::clamp<Index>(Index(65536) / std::max<Index>(widest, 1), 3 * slice_step, 4096) / slice_step *
         slice_step;
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
