#pragma once
/// @file
/// Plot panels for the example programs: an Axes maps data coordinates onto a rectangle of a
/// Canvas and draws scatter plots, heat maps, 2-D histograms, curves and legends; a Figure lays
/// out a grid of panels (a row of them for a flow's stage-by-stage "taffy pulling" figure).
///
/// An Axes draws its frame, ticks, labels and title when it is made; data drawn afterwards is
/// clipped to the inside of the frame, so nothing needs finishing and the frame stays on top.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "canvas.hpp"
#include "colormap.hpp"
#include "font.hpp"
#include "ticks.hpp"

namespace plot {

/// The data rectangle an Axes shows.
struct Limits {
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;

  /// Widened by `fraction` of the width and height on every side.
  [[nodiscard]] Limits padded(double fraction) const {
    const double dx = (x_max - x_min) * fraction, dy = (y_max - y_min) * fraction;
    return {x_min - dx, x_max + dx, y_min - dy, y_max + dy};
  }
  [[nodiscard]] Limits merged(const Limits& o) const {
    return {std::min(x_min, o.x_min), std::max(x_max, o.x_max), std::min(y_min, o.y_min),
            std::max(y_max, o.y_max)};
  }
};

/// Bounding box of the finite columns of a 2×N point set, padded by `margin` on each side.
template <class Derived>
Limits limits_of(const Eigen::DenseBase<Derived>& points, double margin = 0.05) {
  if (points.rows() != 2)
    throw std::invalid_argument("limits_of: expected 2×N points, got " + std::to_string(points.rows()) +
                                " rows");
  Limits l{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
           std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (Eigen::Index j = 0; j < points.cols(); ++j) {
    const double x = double(points(0, j)), y = double(points(1, j));
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    l = {std::min(l.x_min, x), std::max(l.x_max, x), std::min(l.y_min, y), std::max(l.y_max, y)};
  }
  if (!(l.x_min <= l.x_max)) return {};  // no finite point
  if (l.x_max == l.x_min) l = {l.x_min - 0.5, l.x_max + 0.5, l.y_min, l.y_max};
  if (l.y_max == l.y_min) l = {l.x_min, l.x_max, l.y_min - 0.5, l.y_max + 0.5};
  return l.padded(margin);
}

/// A regular nx × ny grid of cell centres over `limits`, for evaluating a density to show with
/// Axes::heatmap. Point k = ix + nx·iy, with iy = 0 at the bottom (y_min).
struct Grid {
  Limits limits;
  int nx = 100, ny = 100;

  [[nodiscard]] double x(int ix) const {
    return limits.x_min + (ix + 0.5) * (limits.x_max - limits.x_min) / nx;
  }
  [[nodiscard]] double y(int iy) const {
    return limits.y_min + (iy + 0.5) * (limits.y_max - limits.y_min) / ny;
  }

  template <class T = double>
  [[nodiscard]] Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> points() const {
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> p(2, Eigen::Index(nx) * ny);
    for (int iy = 0; iy < ny; ++iy)
      for (int ix = 0; ix < nx; ++ix) {
        p(0, ix + Eigen::Index(nx) * iy) = T(x(ix));
        p(1, ix + Eigen::Index(nx) * iy) = T(y(iy));
      }
    return p;
  }
};

struct AxesOptions {
  std::string title{};
  std::string x_label{};
  std::string y_label{};
  bool log_y = false;         ///< logarithmic y axis (limits must be positive)
  bool equal_aspect = false;  ///< widen the limits so one unit is as long on both axes (linear y)
  bool grid = false;          ///< light grid lines at the ticks, under the data
  bool colorbar = false;      ///< keep room on the right for the colour bar of a heat map
  bool ticks = true;          ///< draw tick marks and their values
  int text_scale = 1;         ///< tick values and axis labels
  int title_scale = 2;
  Color background = colors::white;
};

class Axes {
 public:
  Axes(Canvas& canvas, Rect panel, Limits limits, AxesOptions options = {})
      : canvas_(canvas), panel_(panel), options_(std::move(options)) {
    if (!(limits.x_max > limits.x_min) || !(limits.y_max > limits.y_min) || !std::isfinite(limits.x_min) ||
        !std::isfinite(limits.x_max) || !std::isfinite(limits.y_min) || !std::isfinite(limits.y_max))
      throw std::invalid_argument("Axes: limits must be finite with x_min < x_max and y_min < y_max");
    if (options_.log_y && !(limits.y_min > 0))
      throw std::invalid_argument("Axes: a log y axis needs y_min > 0, got " + std::to_string(limits.y_min));
    // Lay out twice: the tick labels' width sets the left margin, which changes the aspect.
    limits_ = limits;
    area_ = panel_;
    for (int pass = 0; pass < 2; ++pass) {
      area_ = layout(y_ticks().labels);
      limits_ = options_.equal_aspect && !options_.log_y ? equalised(limits) : limits;
    }
    draw_decoration();
  }

  [[nodiscard]] const Rect& area() const { return area_; }
  [[nodiscard]] const Limits& limits() const { return limits_; }

  /// Data → continuous pixel coordinates (NaN for y ≤ 0 on a log axis).
  [[nodiscard]] double px(double x) const {
    return area_.x0 + (x - limits_.x_min) / (limits_.x_max - limits_.x_min) * area_.width();
  }
  [[nodiscard]] double py(double y) const {
    if (options_.log_y) {
      if (!(y > 0)) return std::numeric_limits<double>::quiet_NaN();
      return area_.y1 -
             std::log(y / limits_.y_min) / std::log(limits_.y_max / limits_.y_min) * area_.height();
    }
    return area_.y1 - (y - limits_.y_min) / (limits_.y_max - limits_.y_min) * area_.height();
  }

  /// One translucent disc per column of a 2×N matrix; overlapping discs build up a density.
  template <class Derived>
  void scatter(const Eigen::DenseBase<Derived>& points, Color color, double alpha = 0.5,
               double radius = 1.2) {
    check_points("Axes::scatter", points);
    clipped([&] {
      for (Eigen::Index j = 0; j < points.cols(); ++j)
        canvas_.disc(px(double(points(0, j))), py(double(points(1, j))), radius, color, alpha);
    });
  }

  /// Colours the axes by `values` on `grid` (nx·ny of them in Grid::points order), bilinearly
  /// interpolated between cell centres. `range` defaults to the finite values' min and max;
  /// values outside it are clamped and NaN cells are left grey.
  template <class Derived>
  void heatmap(const Grid& grid, const Eigen::DenseBase<Derived>& values, Colormap colormap = viridis_like,
               std::optional<std::pair<double, double>> range = std::nullopt) {
    if (values.size() != Eigen::Index(grid.nx) * grid.ny || grid.nx < 1 || grid.ny < 1)
      throw std::invalid_argument("Axes::heatmap: expected " + std::to_string(grid.nx) + "x" +
                                  std::to_string(grid.ny) + " values, got " + std::to_string(values.size()));
    std::vector<double> v(std::size_t(values.size()));
    for (Eigen::Index k = 0; k < values.size(); ++k) v[std::size_t(k)] = double(values(k));
    auto at = [&](int ix, int iy) {
      return v[std::size_t(std::clamp(ix, 0, grid.nx - 1) + grid.nx * std::clamp(iy, 0, grid.ny - 1))];
    };
    const auto [lo, hi] = range ? *range : finite_range(v);
    const Limits& g = grid.limits;
    fill(
        [&](double x, double y) {
          if (x < g.x_min || x > g.x_max || y < g.y_min || y > g.y_max)
            return std::numeric_limits<double>::quiet_NaN();
          const double fx = (x - g.x_min) / (g.x_max - g.x_min) * grid.nx - 0.5;
          const double fy = (y - g.y_min) / (g.y_max - g.y_min) * grid.ny - 0.5;
          const int ix = int(std::floor(fx)), iy = int(std::floor(fy));
          const double tx = fx - ix, ty = fy - iy;
          const double a = at(ix, iy), b = at(ix + 1, iy), c = at(ix, iy + 1), d = at(ix + 1, iy + 1);
          if (!std::isfinite(a + b + c + d)) return at(int(std::lround(fx)), int(std::lround(fy)));
          return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
        },
        colormap, lo, hi);
  }

  /// A 2-D histogram of 2×N points over the axes limits (bins_x × bins_y cells), coloured by count.
  template <class Derived>
  void density(const Eigen::DenseBase<Derived>& points, int bins_x, int bins_y,
               Colormap colormap = viridis_like) {
    check_points("Axes::density", points);
    if (bins_x < 1 || bins_y < 1) throw std::invalid_argument("Axes::density: bins must be at least 1");
    std::vector<double> counts(std::size_t(bins_x) * std::size_t(bins_y), 0.0);
    const Limits& l = limits_;
    for (Eigen::Index j = 0; j < points.cols(); ++j) {
      const double fx = (double(points(0, j)) - l.x_min) / (l.x_max - l.x_min) * bins_x;
      const double fy = (double(points(1, j)) - l.y_min) / (l.y_max - l.y_min) * bins_y;
      if (fx >= 0 && fx < bins_x && fy >= 0 && fy < bins_y)
        counts[std::size_t(int(fx) + bins_x * int(fy))] += 1;
    }
    const double most = *std::max_element(counts.begin(), counts.end());
    fill(
        [&](double x, double y) {
          const int ix = std::clamp(int((x - l.x_min) / (l.x_max - l.x_min) * bins_x), 0, bins_x - 1);
          const int iy = std::clamp(int((y - l.y_min) / (l.y_max - l.y_min) * bins_y), 0, bins_y - 1);
          return counts[std::size_t(ix + bins_x * iy)];
        },
        colormap, 0.0, std::max(most, 1.0));
  }

  /// A curve through (x[i], y[i]); non-finite points (or y ≤ 0 on a log axis) break it.
  void line(const std::vector<double>& x, const std::vector<double>& y, Color color, double width = 1.5) {
    if (x.size() != y.size())
      throw std::invalid_argument("Axes::line: " + std::to_string(x.size()) + " x values but " +
                                  std::to_string(y.size()) + " y values");
    std::vector<double> xs(x.size()), ys(y.size());
    for (std::size_t i = 0; i < x.size(); ++i) xs[i] = px(x[i]), ys[i] = py(y[i]);
    clipped([&] { canvas_.polyline(xs, ys, color, width); });
  }

  /// A framed key in the top-right corner: a colour swatch and a label per entry.
  void legend(const std::vector<std::pair<std::string, Color>>& entries) {
    if (entries.empty()) return;
    const int s = options_.text_scale, row = (cap_height + 5) * s, swatch = 14 * s;
    int widest = 0;
    for (const auto& e : entries) widest = std::max(widest, text_width(e.first, s));
    const int w = swatch + 6 * s + widest + 12, h = int(entries.size()) * row + 8;
    const Rect box{area_.x1 - w - 8, area_.y0 + 8, area_.x1 - 8, area_.y0 + 8 + h};
    canvas_.fill_rect(box, colors::white, 0.85);
    outline(box, colors::grid);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const double cy = box.y0 + 4 + (double(i) + 0.5) * row;
      canvas_.line(box.x0 + 6, cy, box.x0 + 6 + swatch, cy, entries[i].second, 3.0);
      draw_text(canvas_, box.x0 + 12 + swatch, int(cy), entries[i].first, colors::text, s, Align::start,
                Align::center);
    }
  }

 private:
  template <class Derived>
  static void check_points(const char* function, const Eigen::DenseBase<Derived>& points) {
    if (points.rows() != 2)
      throw std::invalid_argument(std::string(function) + ": expected 2×N points, got " +
                                  std::to_string(points.rows()) + " rows");
  }

  static std::pair<double, double> finite_range(const std::vector<double>& v) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double x : v)
      if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
    if (!(lo < hi)) return {lo < hi ? lo : 0.0, lo < hi ? hi : 1.0};
    return {lo, hi};
  }

  [[nodiscard]] Ticks x_ticks() const {
    return linear_ticks(limits_.x_min, limits_.x_max, area_.width() / 80 + 1);
  }
  [[nodiscard]] Ticks y_ticks() const {
    return options_.log_y ? log_ticks(limits_.y_min, limits_.y_max)
                          : linear_ticks(limits_.y_min, limits_.y_max, std::max(area_.height() / 60, 2) + 1);
  }

  /// The plot area inside the panel after room for the title, tick values, labels and colour bar.
  [[nodiscard]] Rect layout(const std::vector<std::string>& y_labels) const {
    const int s = options_.text_scale, text = cap_height * s;
    int widest = 0;
    for (const auto& label : y_labels) widest = std::max(widest, text_width(label, s));
    const int tick_room = options_.ticks ? 4 + 4 : 0;
    const int left =
        8 + (options_.y_label.empty() ? 0 : text + 8) + (options_.ticks ? widest : 0) + tick_room;
    const int bottom =
        8 + (options_.ticks ? text + 2 * s : 0) + tick_room + (options_.x_label.empty() ? 0 : text + 8);
    const int top = options_.title.empty() ? 12 : cap_height * options_.title_scale + 18;
    const int right = 16 + (options_.colorbar ? 70 : 0);
    const Rect r{panel_.x0 + left, panel_.y0 + top, panel_.x1 - right, panel_.y1 - bottom};
    if (r.width() < 16 || r.height() < 16)
      throw std::invalid_argument("Axes: the panel is too small for its labels");
    return r;
  }

  /// `limits` widened about its centre so that one data unit spans as many pixels on both axes.
  [[nodiscard]] Limits equalised(const Limits& l) const {
    const double sx = (l.x_max - l.x_min) / area_.width(), sy = (l.y_max - l.y_min) / area_.height();
    const double scale = std::max(sx, sy), cx = 0.5 * (l.x_min + l.x_max), cy = 0.5 * (l.y_min + l.y_max);
    return {cx - 0.5 * scale * area_.width(), cx + 0.5 * scale * area_.width(),
            cy - 0.5 * scale * area_.height(), cy + 0.5 * scale * area_.height()};
  }

  void outline(const Rect& r, Color c) {
    canvas_.fill_rect({r.x0 - 1, r.y0 - 1, r.x1 + 1, r.y0}, c);
    canvas_.fill_rect({r.x0 - 1, r.y1, r.x1 + 1, r.y1 + 1}, c);
    canvas_.fill_rect({r.x0 - 1, r.y0, r.x0, r.y1}, c);
    canvas_.fill_rect({r.x1, r.y0, r.x1 + 1, r.y1}, c);
  }

  void draw_decoration() {
    const int s = options_.text_scale;
    canvas_.fill_rect(area_, options_.background);
    const Ticks xt = x_ticks(), yt = y_ticks();
    if (options_.grid) {
      for (double v : xt.values)
        canvas_.fill_rect({int(px(v)), area_.y0, int(px(v)) + 1, area_.y1}, colors::grid);
      for (double v : yt.values)
        canvas_.fill_rect({area_.x0, int(py(v)), area_.x1, int(py(v)) + 1}, colors::grid);
    }
    outline(area_, colors::frame);
    if (options_.ticks) {
      for (std::size_t i = 0; i < xt.values.size(); ++i) {
        const int x = std::min(int(px(xt.values[i])), area_.x1 - 1);
        canvas_.fill_rect({x, area_.y1 + 1, x + 1, area_.y1 + 5}, colors::frame);
        draw_text(canvas_, x, area_.y1 + 9, xt.labels[i], colors::text, s, Align::center);
      }
      for (std::size_t i = 0; i < yt.values.size(); ++i) {
        const int y = std::min(int(py(yt.values[i])), area_.y1 - 1);
        canvas_.fill_rect({area_.x0 - 5, y, area_.x0 - 1, y + 1}, colors::frame);
        draw_text(canvas_, area_.x0 - 9, y, yt.labels[i], colors::text, s, Align::end, Align::center);
      }
    }
    const int mid_x = (area_.x0 + area_.x1) / 2, mid_y = (area_.y0 + area_.y1) / 2;
    if (!options_.title.empty())
      draw_text(canvas_, mid_x, area_.y0 - 10, options_.title, colors::text, options_.title_scale,
                Align::center, Align::end);
    if (!options_.x_label.empty())
      draw_text(canvas_, mid_x, panel_.y1 - 8, options_.x_label, colors::text, s, Align::center, Align::end);
    if (!options_.y_label.empty())
      draw_text_up(canvas_, panel_.x0 + 8, mid_y, options_.y_label, colors::text, s, Align::center,
                   Align::start);
  }

  /// Colours every pixel of the area by colormap((value(x, y) − lo)/(hi − lo)) at its centre.
  template <class Value>
  void fill(Value value, Colormap colormap, double lo, double hi) {
    const double span = hi > lo ? hi - lo : 1.0;
    for (int y = area_.y0; y < area_.y1; ++y)
      for (int x = area_.x0; x < area_.x1; ++x) {
        const double dx =
            limits_.x_min + (x + 0.5 - area_.x0) / area_.width() * (limits_.x_max - limits_.x_min);
        const double fy = (area_.y1 - (y + 0.5)) / area_.height();
        const double dy = options_.log_y ? limits_.y_min * std::pow(limits_.y_max / limits_.y_min, fy)
                                         : limits_.y_min + fy * (limits_.y_max - limits_.y_min);
        const double v = value(dx, dy);
        if (std::isnan(v)) continue;
        canvas_.blend(x, y, colormap(std::isinf(v) ? (v > 0 ? 1.0 : 0.0) : (v - lo) / span), 1.0);
      }
    if (options_.colorbar) draw_colorbar(colormap, lo, hi);
  }

  void draw_colorbar(Colormap colormap, double lo, double hi) {
    const Rect bar{area_.x1 + 14, area_.y0, area_.x1 + 26, area_.y1};
    for (int y = bar.y0; y < bar.y1; ++y)
      canvas_.fill_rect({bar.x0, y, bar.x1, y + 1}, colormap((bar.y1 - (y + 0.5)) / bar.height()));
    outline(bar, colors::frame);
    const Ticks t = linear_ticks(lo, hi, std::max(bar.height() / 60, 2));
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      const int y = std::min(int(bar.y1 - (t.values[i] - lo) / (hi - lo) * bar.height()), bar.y1 - 1);
      canvas_.fill_rect({bar.x1 + 1, y, bar.x1 + 5, y + 1}, colors::frame);
      draw_text(canvas_, bar.x1 + 8, y, t.labels[i], colors::text, options_.text_scale, Align::start,
                Align::center);
    }
  }

  template <class Draw>
  void clipped(Draw draw) {
    const Rect saved = canvas_.clip();
    canvas_.set_clip(area_);
    draw();
    canvas_.set_clip(saved);
  }

  Canvas& canvas_;
  Rect panel_, area_;
  AxesOptions options_;
  Limits limits_;
};

/// A rows × cols grid of equal panels on one canvas, with an optional overall title.
class Figure {
 public:
  Figure(int rows, int cols, int panel_width, int panel_height, const std::string& title = {},
         int title_scale = 2)
      : rows_(rows),
        cols_(cols),
        panel_width_(panel_width),
        panel_height_(panel_height),
        top_(title.empty() ? 0 : cap_height * title_scale + 20),
        canvas_(std::max(cols, 1) * panel_width, std::max(rows, 1) * panel_height + top_) {
    if (rows < 1 || cols < 1) throw std::invalid_argument("Figure: needs at least one row and one column");
    if (!title.empty())
      draw_text(canvas_, canvas_.width() / 2, 12, title, colors::text, title_scale, Align::center,
                Align::start);
  }

  [[nodiscard]] Canvas& canvas() { return canvas_; }
  [[nodiscard]] Rect panel(int row, int col) const {
    if (row < 0 || row >= rows_ || col < 0 || col >= cols_)
      throw std::out_of_range("Figure: no panel (" + std::to_string(row) + ", " + std::to_string(col) +
                              ") in a " + std::to_string(rows_) + "x" + std::to_string(cols_) + " figure");
    const int x = col * panel_width_, y = top_ + row * panel_height_;
    return {x, y, x + panel_width_, y + panel_height_};
  }
  [[nodiscard]] Axes axes(int row, int col, const Limits& limits, AxesOptions options = {}) {
    return Axes(canvas_, panel(row, col), limits, std::move(options));
  }
  void save_png(const std::string& path) const { canvas_.save_png(path); }

 private:
  int rows_, cols_, panel_width_, panel_height_, top_;
  Canvas canvas_;
};

}  // namespace plot
