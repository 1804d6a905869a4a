#pragma once
// Masks the tests of the masked kernels and of their covers share (not a test program: only the
// .cpp files under tests/ are).

#include <random>
#include <utility>
#include <vector>

#include "knead/nn/made.hpp"
#include "support.hpp"

namespace knead::test {

/// MADE's masks (staircases once the hidden units are sorted by degree) for a few shapes, the large
/// one being the benchmarks' D = 64, hidden 512, where the cover merges and splits blocks by cost.
template <class T>
std::vector<Matrix<T>> made_masks() {
  std::vector<Matrix<T>> out;
  for (const auto& [dim, hidden] : std::vector<std::pair<Index, Index>>{{2, 8}, {5, 40}, {64, 512}}) {
    const Made<T> made(dim, {hidden, hidden}, InputOrder::reversed(), 3);
    for (const auto& m : made.mlp().masks()) out.push_back(m);
  }
  return out;
}

/// Masks without structure: every entry 1 with probability p.
template <class T>
Matrix<T> random_mask(Index rows, Index cols, double p, Rng& rng) {
  std::bernoulli_distribution one(p);
  return Matrix<T>::NullaryExpr(rows, cols, [&] { return one(rng) ? T(1) : T(0); });
}

}  // namespace knead::test
