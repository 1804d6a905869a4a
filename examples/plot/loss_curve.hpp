#pragma once
/// @file
/// The loss curve of a training run: the training loss (a moving average) and the validation NLL
/// against the step, for train_2d and `knead fit --loss-plot`.

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "axes.hpp"

namespace plot {

/// Training and validation loss against the step (log-scale y when the losses allow it).
inline void loss_png(const std::string& path, const std::vector<double>& train_loss,
                     const std::vector<std::pair<double, double>>& validation, const std::string& title) {
  std::vector<double> steps, smooth;
  double avg = train_loss.empty() ? 0 : train_loss.front();
  for (std::size_t i = 0; i < train_loss.size(); ++i) {
    avg = 0.98 * avg + 0.02 * train_loss[i];  // exponential moving average for a readable curve
    steps.push_back(double(i + 1));
    smooth.push_back(avg);
  }
  std::vector<double> vs, vl;
  for (const auto& [s, l] : validation) {
    vs.push_back(s);
    vl.push_back(l);
  }
  // The y range: from the lowest value up to twice the span of the bulk (its 99th percentile), so
  // that a few exploding batches (NLLs of 1e8 happen) do not flatten the curve into a line.
  std::vector<double> all;
  for (const double v : smooth)
    if (std::isfinite(v)) all.push_back(v);
  for (const double v : vl)
    if (std::isfinite(v)) all.push_back(v);
  if (all.empty()) all.push_back(0);
  std::sort(all.begin(), all.end());
  const double lo = all.front(), bulk = all[std::size_t(0.99 * double(all.size() - 1))];
  const double hi = std::min(all.back(), bulk + (bulk - lo));
  const double pad = 0.05 * (hi - lo + 1e-9);
  plot::Figure fig(1, 1, 720, 420);
  const std::string shown = hi < all.back() ? title + " (peaks cut)" : title;
  auto ax = fig.axes(0, 0, {0, double(std::max<std::size_t>(train_loss.size(), 1)), lo - pad, hi + pad},
                     {.title = shown, .x_label = "step", .y_label = "NLL (nats per point)", .grid = true});
  ax.line(steps, smooth, plot::colors::series[0], 1.5);
  ax.line(vs, vl, plot::colors::series[1], 2.0);
  ax.legend({{"train (moving average)", plot::colors::series[0]}, {"validation", plot::colors::series[1]}});
  fig.save_png(path);
}

}  // namespace plot
