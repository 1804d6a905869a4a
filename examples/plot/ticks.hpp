#pragma once
/// @file
/// Axis tick positions and labels: "nice" steps of 1, 2 or 5 times a power of ten on linear axes,
/// powers of ten (with 2× and 5× when the range spans less than two decades) on log axes.

#include <cmath>
#include <cstdio>
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

/// About `target` ticks inside [lo, hi] at a multiple of 1, 2 or 5 × 10^k.
inline Ticks linear_ticks(double lo, double hi, int target = 5) {
  Ticks ticks;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return ticks;
  const double raw = (hi - lo) / std::max(target, 1);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double mantissa = raw / power;
  const double step = (mantissa < 1.5 ? 1 : mantissa < 3.5 ? 2 : mantissa < 7.5 ? 5 : 10) * power;
  const int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1) {
    const double v = k * step;
    ticks.values.push_back(v);
    ticks.labels.push_back(ticks_detail::format(v, decimals));
  }
  return ticks;
}

/// Ticks for a logarithmic axis over [lo, hi], lo > 0.
inline Ticks log_ticks(double lo, double hi) {
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
