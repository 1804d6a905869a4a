#pragma once
/// @file
/// The global (Euclidean) norm of a gradient vector and clipping by it (Pascanu, Mikolov &
/// Bengio 2013): if ‖g‖ > c, g ← g · c / ‖g‖, which keeps the direction and makes ‖g‖ = c.

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead {

namespace detail {

/// ‖g‖₂ as largest · root, so that neither part overflows or underflows for entries near the
/// limits of T (sums in double): for a T whose squares fit in double (float), largest = 1 and
/// root = sqrt(Σ g_i²); otherwise largest = max |g_i| and root = sqrt(Σ (g_i / largest)²).
/// largest is NaN if any entry is NaN, +∞ if any is infinite (and none is NaN); both are 0 for an
/// all-zero g.
struct ScaledNorm {
  double largest = 0;
  double root = 0;
  [[nodiscard]] double value() const { return largest == 0 ? 0.0 : largest * root; }
};

template <class T>
ScaledNorm scaled_norm(std::span<const T> g) {
  if constexpr (std::numeric_limits<T>::max_exponent * 2 < std::numeric_limits<double>::max_exponent &&
                std::numeric_limits<T>::min_exponent * 2 > std::numeric_limits<double>::min_exponent) {
    // T = float: every square (and the sum of up to 2⁵³ of them) is within the range of double, so
    // no scaling is needed: ‖g‖ = 1 · sqrt(Σ g_i²), summed in double by 8 accumulators (entry i into
    // accumulator i mod 8, then the 8 in order: the same sum for the same g, on every machine). A
    // NaN entry makes the sum NaN, an infinite one +∞, as `largest` promises.
    double part[8] = {};
    const std::size_t n = g.size(), blocked = n / 8 * 8;
    for (std::size_t i = 0; i < blocked; i += 8)
      for (std::size_t j = 0; j < 8; ++j) {
        const double x = static_cast<double>(g[i + j]);
        part[j] += x * x;
      }
    for (std::size_t i = blocked; i < n; ++i) {
      const double x = static_cast<double>(g[i]);
      part[i - blocked] += x * x;
    }
    double sum = 0;
    for (const double p : part) sum += p;
    if (!std::isfinite(sum)) return {sum, 1};
    return {sum == 0 ? 0.0 : 1.0, std::sqrt(sum)};
  } else {
    ScaledNorm n;
    for (const T x : g) {
      const double a = std::abs(static_cast<double>(x));
      if (std::isnan(a)) return {std::numeric_limits<double>::quiet_NaN(), 1};
      n.largest = std::max(n.largest, a);
    }
    if (n.largest == 0 || std::isinf(n.largest)) return {n.largest, 1};
    const double inv = 1.0 / n.largest;
    double sum = 0;
    for (const T x : g) {
      const double r = static_cast<double>(x) * inv;
      sum += r * r;
    }
    n.root = std::sqrt(sum);
    return n;
  }
}

}  // namespace detail

/// ‖g‖₂, free of intermediate overflow and underflow (see detail::scaled_norm). NaN if any entry
/// is NaN, +∞ if any is infinite (or if the norm itself exceeds the range of double); 0 for an
/// empty span.
template <class T>
[[nodiscard]] double gradient_norm(std::span<const T> g) {
  return detail::scaled_norm(g).value();
}
template <class T>
[[nodiscard]] double gradient_norm(std::span<T> g) {
  return gradient_norm(std::span<const T>(g));
}

/// Scales `g` in place so that its norm is at most `max_norm`; returns the norm before clipping.
/// Throws std::invalid_argument for a bad max_norm or a non-finite gradient (which has no
/// direction to keep).
template <class T>
double clip_gradient_norm(std::span<T> g, double max_norm) {
  constexpr std::string_view function = "clip_gradient_norm";
  if (!std::isfinite(max_norm) || max_norm <= 0)
    detail::fail(function, "max_norm must be positive and finite, got ", max_norm);
  const detail::ScaledNorm scaled = detail::scaled_norm(std::span<const T>(g));
  if (!std::isfinite(scaled.largest)) {
    for (std::size_t i = 0; i < g.size(); ++i)
      if (!std::isfinite(static_cast<double>(g[i])))
        detail::fail(function, "the gradient has a non-finite entry ", g[i], " at index ", i);
  }
  const double norm = scaled.value();
  if (norm > max_norm) {
    // c / ‖g‖ = (c / largest) / root, finite even where largest · root overflows
    const T factor = static_cast<T>((max_norm / scaled.largest) / scaled.root);
    for (T& x : g) x *= factor;
  }
  return norm;
}

}  // namespace knead
