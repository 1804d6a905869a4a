#pragma once
/// @file
/// Axis tick positions and labels: "nice" steps of 1, 2 or 5 times a power of ten on linear axes,
/// powers of ten (with 2× and 5× when the range spans less than two decades) on log axes.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace plot {

struct Ticks {
  std::vector<double> values;
  std::vector<std::string> labels;
};

namespace ticks_detail {
inline std::string format(double value, int decimals) {
  char buffer[64];
  if (value != 0 && (std::fabs(value) >= 1e6 || decimals > 5))
    std::snprintf(buffer, sizeof buffer, "%.3g", value);
  else
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string s = buffer;
  // "-0" and "-0.00" are just zero.
  if (s.size() > 1 && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

inline std::string format_power(int exponent) {
  if (exponent >= 0 && exponent <= 4) return format(std::pow(10.0, exponent), 0);
  if (exponent < 0 && exponent >= -3) return format(std::pow(10.0, exponent), -exponent);
  return "1e" + std::to_string(exponent);
}
}  // namespace ticks_detail

/// The most ticks linear_ticks returns, whatever `target` asks for.
inline constexpr int max_ticks = 1000;

namespace ticks_detail {
inline void check_range(const char* function, double lo, double hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "plot::%s: the range [%g, %g] must be finite with lo <= hi",
                  function, lo, hi);
    throw std::invalid_argument(buffer);
  }
}

/// The distance from |x| to the next larger double.
inline double spacing(double x) {
  const double a = std::fabs(x);
  return std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
}
}  // namespace ticks_detail

/// About `target` ticks inside [lo, hi] at a multiple of 1, 2 or 5 × 10^k; a single tick for
/// lo = hi. The ticks are distinct doubles and at most max_ticks: the step is at least the spacing
/// of doubles at the ends of the range (so [1e17, 1e17 + 10] gets ticks 16 or more apart), and the
/// count k_last − k_first + 1 of multiples k · step in the range is worked out before any is made.
/// @throws std::invalid_argument for a non-finite range or lo > hi.
inline Ticks linear_ticks(double lo, double hi, int target = 5) {
  ticks_detail::check_range("linear_ticks", lo, hi);
  Ticks ticks;
  if (lo == hi) {
    ticks.values.push_back(lo);
    ticks.labels.push_back(ticks_detail::format(lo, 0));
    return ticks;
  }
  const double divisions = std::clamp(target, 1, max_ticks);
  // hi/n − lo/n rather than (hi − lo)/n, and capped at the largest double: [−1.7e308, 1.7e308]
  const double raw = std::min(std::max(hi / divisions - lo / divisions,
                                       std::max(ticks_detail::spacing(lo), ticks_detail::spacing(hi))),
                              std::numeric_limits<double>::max());
  // 10^−324 underflows to 0; the smallest subnormal stands in for it
  const double power =
      std::max(std::pow(10.0, std::floor(std::log10(raw))), std::numeric_limits<double>::denorm_min());
  const double mantissa = raw / power;
  double step = (mantissa < 1.5 ? 1 : mantissa < 3.5 ? 2 : mantissa < 7.5 ? 5 : 10) * power;
  if (!std::isfinite(step)) step = power;  // 10 × 1e308
  const int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  // |first|, |last| ≤ about 2⁵² since step ≥ the spacing of doubles at lo and hi: exact integers
  const double count = std::clamp(last - first + 1, 0.0, double(max_ticks));
  for (int i = 0; i < int(count); ++i) {
    const double v = (first + i) * step;
    ticks.values.push_back(v);
    ticks.labels.push_back(ticks_detail::format(v, decimals));
  }
  return ticks;
}

/// Ticks for a logarithmic axis over [lo, hi], lo > 0 (none otherwise).
/// @throws std::invalid_argument for a non-finite range or lo > hi.
inline Ticks log_ticks(double lo, double hi) {
  ticks_detail::check_range("log_ticks", lo, hi);
  Ticks ticks;
  if (!(lo > 0) || !(hi > lo)) return ticks;
  const int first = int(std::floor(std::log10(lo))), last = int(std::ceil(std::log10(hi)));
  for (const bool with_multiples : {false, true}) {
    ticks = {};
    for (int e = first; e <= last; ++e)
      for (const double m : {1.0, 2.0, 5.0}) {
        if (m != 1.0 && !with_multiples) continue;
        const double v = m * std::pow(10.0, e);
        if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
        ticks.values.push_back(v);
        ticks.labels.push_back(m == 1.0 ? ticks_detail::format_power(e)
                                        : ticks_detail::format(v, std::max(0, -e)));
      }
    if (ticks.values.size() >= 3) return ticks;
  }
  return ticks.values.size() >= 2 ? ticks : linear_ticks(lo, hi);
}

}  // namespace plot
