#pragma once
/// @file
/// A corner plot of a table beside a model's samples: for the chosen columns c₁ … c_k, a k × k grid
/// whose diagonal holds each column's histogram (data and model overlaid, as densities), whose
/// panels below the diagonal hold 2-D histograms of the data and whose mirror panels above it hold
/// the model's, on the same axes: panel (a, b) below and panel (b, a) above both show column c_b
/// across and column c_a up, so a pair of panels compares data and model directly.
///
/// Each column's range is the 0.5 %–99.5 % quantiles of the data, widened by 10 % on each side,
/// so a few extreme rows do not squash the picture.

#include <algorithm>
#include <string>
#include <vector>

#include "knead/core/types.hpp"
#include "plot/axes.hpp"

namespace knead_cli {

struct CornerPlotOptions {
  std::string title;
  int panel_pixels = 240;
  int bins = 40;
};

/// The q-quantile of v (0 ≤ q ≤ 1), by sorting a copy.
inline double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double at = q * double(v.size() - 1);
  const std::size_t below = std::size_t(at);
  const double t = at - double(below);
  return below + 1 < v.size() ? v[below] * (1 - t) + v[below + 1] * t : v[below];
}

/// Draws data (k×N) and model samples (k×M) with column names `names` and writes a PNG.
inline void corner_plot(const std::string& path, const knead::Matrix<double>& data,
                        const knead::Matrix<double>& model, const std::vector<std::string>& names,
                        const CornerPlotOptions& options = {}) {
  const int k = int(data.rows());
  std::vector<std::pair<double, double>> range(std::size_t(k), {0.0, 1.0});
  for (int i = 0; i < k; ++i) {
    std::vector<double> v(std::size_t(data.cols()));
    for (knead::Index j = 0; j < data.cols(); ++j) v[std::size_t(j)] = data(i, j);
    double lo = quantile(v, 0.005), hi = quantile(v, 0.995);
    if (!(hi > lo)) lo -= 0.5, hi += 0.5;
    const double pad = 0.1 * (hi - lo);
    range[std::size_t(i)] = {lo - pad, hi + pad};
  }
  plot::Figure figure(k, k, options.panel_pixels, options.panel_pixels, options.title);
  const plot::Color data_color = plot::colors::series[0], model_color = plot::colors::series[1];
  for (int a = 0; a < k; ++a) {
    const auto [lo, hi] = range[std::size_t(a)];
    // the diagonal: histograms as densities, data and model overlaid
    const int bins = options.bins;
    auto histogram = [&](const knead::Matrix<double>& m) {
      std::vector<double> h(std::size_t(bins), 0.0);
      for (knead::Index j = 0; j < m.cols(); ++j) {
        const double f = (m(a, j) - lo) / (hi - lo) * bins;
        if (f >= 0 && f < bins) h[std::size_t(f)] += 1;
      }
      for (double& c : h) c /= double(std::max<knead::Index>(m.cols(), 1)) * (hi - lo) / bins;
      return h;
    };
    const std::vector<double> hd = histogram(data), hm = histogram(model);
    const double top =
        std::max(*std::max_element(hd.begin(), hd.end()), *std::max_element(hm.begin(), hm.end()));
    plot::AxesOptions diagonal;
    diagonal.x_label = names[std::size_t(a)];
    diagonal.y_label = "density";
    plot::Axes axes = figure.axes(a, a, {lo, hi, 0.0, std::max(top, 1e-12) * 1.1}, diagonal);
    auto steps = [&](const std::vector<double>& h, plot::Color color) {
      std::vector<double> x, y;
      for (int b = 0; b < bins; ++b) {
        const double x0 = lo + (hi - lo) * b / bins, x1 = lo + (hi - lo) * (b + 1) / bins;
        x.insert(x.end(), {x0, x1});
        y.insert(y.end(), {h[std::size_t(b)], h[std::size_t(b)]});
      }
      axes.line(x, y, color, 1.5);
    };
    steps(hd, data_color);
    steps(hm, model_color);
    if (a == 0) axes.legend({{"data", data_color}, {"model", model_color}});
    // below the diagonal: the data; above it, mirrored: the model; both with column b across
    for (int b = 0; b < a; ++b) {
      const plot::Limits limits{range[std::size_t(b)].first, range[std::size_t(b)].second, lo, hi};
      plot::AxesOptions pair;
      pair.x_label = names[std::size_t(b)];
      pair.y_label = names[std::size_t(a)];
      for (const bool below : {true, false}) {
        const knead::Matrix<double>& m = below ? data : model;
        knead::Matrix<double> points(2, m.cols());
        points.row(0) = m.row(b);
        points.row(1) = m.row(a);
        pair.title = below ? "data" : "model";
        plot::Axes panel = below ? figure.axes(a, b, limits, pair) : figure.axes(b, a, limits, pair);
        panel.density(points, bins, bins);
      }
    }
  }
  figure.save_png(path);
}

}  // namespace knead_cli
