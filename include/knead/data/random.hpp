#pragma once
/// @file
/// Portable random draws for knead's data sets.
///
/// The C++ standard fixes the output of std::mt19937_64 but not of std::uniform_real_distribution,
/// std::normal_distribution or std::shuffle, which differ between standard libraries. The data
/// sets are built only from the functions below, so a seed gives the same points everywhere.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "knead/core/types.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead::data {

/// Uniform on [0, 1): the top 53 bits of one engine output.
inline double uniform01(Rng& rng) { return double(rng() >> 11) * 0x1.0p-53; }

/// Uniform on [lo, hi).
inline double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

/// A standard normal draw by the Box–Muller transform (two uniforms per draw).
inline double standard_normal_draw(Rng& rng) {
  const double u1 = 1.0 - uniform01(rng);  // in (0, 1], so the logarithm is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

/// Uniform integer in [0, n), n ≥ 1, without modulo bias (draws above the largest multiple of n
/// that fits in 64 bits are rejected).
inline Index uniform_index(Rng& rng, Index n) {
  const auto range = static_cast<std::uint64_t>(n);
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  std::uint64_t r = rng();
  while (r >= limit) r = rng();
  return static_cast<Index>(r % range);
}

/// A uniformly random permutation of 0..n−1 (Fisher–Yates).
inline std::vector<Index> random_permutation(Index n, Rng& rng) {
  std::vector<Index> order(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) order[std::size_t(i)] = i;
  for (Index i = n - 1; i > 0; --i)
    std::swap(order[std::size_t(i)], order[std::size_t(uniform_index(rng, i + 1))]);
  return order;
}

/// The columns of `points` in the order `order` (column j of the result is points.col(order[j])).
template <class T>
Matrix<T> permute_columns(const Matrix<T>& points, const std::vector<Index>& order) {
  Matrix<T> out(points.rows(), Index(order.size()));
  for (std::size_t j = 0; j < order.size(); ++j) out.col(Index(j)) = points.col(order[j]);
  return out;
}

}  // namespace knead::data
