#pragma once
/// @file
/// The "two moons" toy data set: two interleaving half circles in 2-D.

#include <cmath>
#include <cstdint>
#include <numbers>

#include "knead/core/errors.hpp"
#include "knead/data/random.hpp"

namespace knead::data {

/// n points on two interleaving half circles, one per column of a 2×n matrix, constructed as
/// scikit-learn's make_moons does:
///
/// - the first n_out = ⌊n/2⌋ points lie on the outer moon (cos t, sin t) and the other
///   n_in = n − n_out on the inner moon (1 − cos t, 1 − sin t − 1/2), each with t evenly spaced
///   over [0, π] (both ends included);
/// - every coordinate then gets independent N(0, noise²) noise;
/// - finally the columns are shuffled, so any prefix is a fair sample of both moons.
///
/// The same seed gives the same points on every platform (see random.hpp). Throws
/// std::invalid_argument for n < 1 or a negative or non-finite noise.
template <class T>
Matrix<T> two_moons(Index n, double noise, std::uint64_t seed) {
  constexpr std::string_view function = "two_moons";
  detail::check_positive(function, "number of points n", n);
  if (!std::isfinite(noise) || noise < 0)
    detail::fail(function, "noise must be a finite standard deviation >= 0, got ", noise);

  const Index n_out = n / 2, n_in = n - n_out;
  // t_i = π i / (m − 1): evenly spaced over [0, π]; a single point sits at t = 0.
  auto angle = [](Index i, Index m) { return m > 1 ? std::numbers::pi * double(i) / double(m - 1) : 0.0; };
  Matrix<double> points(2, n);
  for (Index i = 0; i < n_out; ++i) {
    const double t = angle(i, n_out);
    points.col(i) << std::cos(t), std::sin(t);
  }
  for (Index i = 0; i < n_in; ++i) {
    const double t = angle(i, n_in);
    points.col(n_out + i) << 1.0 - std::cos(t), 1.0 - std::sin(t) - 0.5;
  }

  Rng rng(seed);
  if (noise > 0)
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < 2; ++i) points(i, j) += noise * standard_normal_draw(rng);
  return permute_columns<double>(points, random_permutation(n, rng)).template cast<T>();
}

}  // namespace knead::data
