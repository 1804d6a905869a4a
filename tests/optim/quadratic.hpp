#pragma once
// The test problem of the optimisers' tests: a quadratic with a known minimum.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace knead::test {

/// f(θ) = ½ Σ a_i (θ_i − c_i)², ∇f = a ⊙ (θ − c): minimum at c.
template <class T>
struct Quadratic {
  std::vector<T> a{T(1), T(10), T(0.1), T(3), T(0.5)};
  std::vector<T> c{T(1), T(-2), T(0.5), T(4), T(-0.25)};
  void gradient(std::span<const T> theta, std::span<T> g) const {
    for (std::size_t i = 0; i < a.size(); ++i) g[i] = a[i] * (theta[i] - c[i]);
  }
};

/// |value − expected| relative to max(1, |expected|).
template <class T>
double relative(T value, double expected) {
  return std::abs(double(value) - expected) / std::max(1.0, std::abs(expected));
}

}  // namespace knead::test
