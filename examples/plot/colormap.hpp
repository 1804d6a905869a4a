#pragma once
/// @file
/// Colour ramps for heat maps. `viridis_like` is knead's own dark-indigo → teal → green → yellow
/// ramp: its lightness rises steadily, so it reads correctly in greyscale and for colour-blind
/// viewers. `blues` runs from white to dark blue for sparse densities drawn on a white page.

#include <algorithm>
#include <array>
#include <cmath>

#include "canvas.hpp"

namespace plot {

/// Maps t in [0, 1] to a colour (values outside are clamped).
using Colormap = Color (*)(double);

namespace colormap_detail {
template <std::size_t N>
Color ramp(const std::array<Color, N>& stops, double t) {
  if (!std::isfinite(t)) t = 0;
  const double s = std::clamp(t, 0.0, 1.0) * double(N - 1);
  const auto i = std::min(static_cast<std::size_t>(s), N - 2);
  return mix(stops[i], stops[i + 1], s - double(i));
}
}  // namespace colormap_detail

inline Color viridis_like(double t) {
  static constexpr std::array<Color, 8> stops = {rgb(48, 18, 75),   rgb(64, 50, 126),  rgb(56, 88, 145),
                                                 rgb(42, 124, 142), rgb(34, 158, 130), rgb(78, 190, 100),
                                                 rgb(162, 214, 62), rgb(250, 230, 45)};
  return colormap_detail::ramp(stops, t);
}

inline Color blues(double t) {
  static constexpr std::array<Color, 5> stops = {rgb(255, 255, 255), rgb(198, 219, 239), rgb(107, 174, 214),
                                                 rgb(33, 113, 181), rgb(8, 48, 107)};
  return colormap_detail::ramp(stops, t);
}

}  // namespace plot
