#pragma once
/// @file
/// knead's procedural "SIGGRAPH" point cloud: points filling the strokes of the letters
/// S I G G R A P H drawn with a small stroke font of line segments and circular arcs.
///
/// The word is about 4.6 wide and 0.7 high (x in ~[0.04, 4.62], y in ~[0, 0.7]), the size of the
/// SIGGRAPH cloud of the "Normalizing Flows Tutorial, Part 2", which knead does not ship.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/data/random.hpp"

namespace knead::data {

/// A stroke's centre line: the segment from (x0, y0) to (x1, y1), or the circular arc of radius r
/// about (cx, cy) from angle a0 to a1 (radians; a1 < a0 runs clockwise).
struct Stroke {
  bool is_arc = false;
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  double cx = 0, cy = 0, r = 0, a0 = 0, a1 = 0;

  [[nodiscard]] double length() const {
    return is_arc ? r * std::abs(a1 - a0) : std::hypot(x1 - x0, y1 - y0);
  }

  /// The point at fraction t in [0, 1] of the way along, and the unit normal there.
  void at(double t, double& x, double& y, double& nx, double& ny) const {
    if (is_arc) {
      const double a = a0 + t * (a1 - a0);
      nx = std::cos(a), ny = std::sin(a);
      x = cx + r * nx, y = cy + r * ny;
    } else {
      const double len = length();
      x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
      nx = -(y1 - y0) / len, ny = (x1 - x0) / len;
    }
  }
};

inline Stroke segment(double x0, double y0, double x1, double y1) { return {false, x0, y0, x1, y1}; }
inline Stroke arc(double cx, double cy, double r, double degrees0, double degrees1) {
  constexpr double radians = std::numbers::pi / 180.0;
  return {true, 0, 0, 0, 0, cx, cy, r, degrees0 * radians, degrees1 * radians};
}

/// Full width of a stroke: points lie up to half of it either side of the centre line.
inline constexpr double siggraph_stroke_width = 0.07;

/// The centre lines of the eight letters S I G G R A P H, left to right on the baseline y = 0.035
/// with cap height 0.63, so that the strokes' outer edges reach from y = 0 to y = 0.7.
inline std::vector<Stroke> siggraph_strokes() {
  constexpr double base = 0.035, cap = 0.63, top = base + cap, mid = base + cap / 2;
  // Uprights overshoot by half a stroke width so that their square ends line up with the outer
  // edges of the round strokes and fill the corners where they meet a bar.
  constexpr double over = siggraph_stroke_width / 2;
  std::vector<Stroke> s;
  // S: two stacked circles of radius cap/4, traced as a C over a reversed C.
  const double sr = cap / 4, sx = 0.235;
  s.push_back(arc(sx, top - sr, sr, 25, 270));
  s.push_back(arc(sx, base + sr, sr, 90, -155));
  // I: one upright.
  s.push_back(segment(0.575, base - over, 0.575, top + over));
  // G (twice): top and bottom half-round ends joined on the left, a spur up the right side and
  // a bar pointing inwards.
  for (const double gx : {1.0675, 1.8225}) {
    const double gr = 0.2675, bar = base + gr + 0.04;
    s.push_back(arc(gx, top - gr, gr, 35, 180));
    s.push_back(segment(gx - gr, top - gr, gx - gr, base + gr));
    s.push_back(arc(gx, base + gr, gr, 180, 360));
    s.push_back(segment(gx + gr, base + gr, gx + gr, bar));
    s.push_back(segment(gx + gr, bar, gx + 0.09, bar));
  }
  // R and P: an upright with a bowl of radius 0.155 at the top; R adds a leg.
  auto bowl = [&](double x, double reach) {
    constexpr double br = 0.155;
    s.push_back(segment(x, base - over, x, top + over));
    s.push_back(segment(x, top, x + reach, top));
    s.push_back(arc(x + reach, top - br, br, 90, -90));
    s.push_back(segment(x + reach, top - 2 * br, x, top - 2 * br));
  };
  bowl(2.30, 0.165);
  // Slanted strokes reaching the baseline continue a little below it, for the same reason.
  auto slanted = [&](double xa, double ya, double xb, double yb) {
    const double y_end = base - over / 2, t = (y_end - ya) / (yb - ya);
    s.push_back(segment(xa, ya, xa + t * (xb - xa), y_end));
  };
  slanted(2.43, top - 0.31, 2.72, base);
  // A: two legs meeting at the apex and a cross bar at 35 % of the height.
  const double left = 2.86, apex = 3.135, right = 3.41, cross = 0.35;
  slanted(apex, top, left, base);
  slanted(apex, top, right, base);
  s.push_back(segment(left + cross * (apex - left), base + cross * cap, right - cross * (right - apex),
                      base + cross * cap));
  bowl(3.60, 0.18);
  // H: two uprights and a bar at mid height.
  s.push_back(segment(4.10, base - over, 4.10, top + over));
  s.push_back(segment(4.585, base - over, 4.585, top + over));
  s.push_back(segment(4.10, mid, 4.585, mid));
  return s;
}

/// n points spread uniformly by length along `strokes`, each pushed off the centre line along its
/// normal by a uniform offset in [−width/2, width/2], as a 2×n matrix. Deterministic per seed
/// on every platform.
template <class T>
Matrix<T> stroke_cloud(const std::vector<Stroke>& strokes, double width, Index n, std::uint64_t seed) {
  constexpr std::string_view function = "stroke_cloud";
  detail::check_positive(function, "number of points n", n);
  if (!std::isfinite(width) || width < 0)
    detail::fail(function, "width must be finite and >= 0, got ", width);
  std::vector<double> cumulative;  // cumulative[k] = total length of strokes 0..k
  double total = 0;
  for (const Stroke& stroke : strokes) {
    if (!(stroke.length() > 0) || !std::isfinite(stroke.length()))
      detail::fail(function, "stroke ", cumulative.size(), " has length ", stroke.length(), "; expected > 0");
    cumulative.push_back(total += stroke.length());
  }
  if (strokes.empty()) detail::fail(function, "no strokes to fill");

  Rng rng(seed);
  Matrix<T> points(2, n);
  for (Index j = 0; j < n; ++j) {
    const double s = uniform01(rng) * total;
    const auto k =
        std::size_t(std::upper_bound(cumulative.begin(), cumulative.end(), s) - cumulative.begin());
    const Stroke& stroke = strokes[std::min(k, strokes.size() - 1)];
    const double start = cumulative[std::min(k, strokes.size() - 1)] - stroke.length();
    double x, y, nx, ny;
    stroke.at(std::clamp((s - start) / stroke.length(), 0.0, 1.0), x, y, nx, ny);
    const double offset = width * (uniform01(rng) - 0.5);
    points(0, j) = T(x + offset * nx);
    points(1, j) = T(y + offset * ny);
  }
  return points;
}

/// n points filling the letters S I G G R A P H (see siggraph_strokes()), as a 2×n matrix.
template <class T>
Matrix<T> siggraph(Index n, std::uint64_t seed) {
  detail::check_positive("siggraph", "number of points n", n);
  return stroke_cloud<T>(siggraph_strokes(), siggraph_stroke_width, n, seed);
}

}  // namespace knead::data
