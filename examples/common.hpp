#pragma once
// Pieces shared by the example programs: loading a 2-D dataset, the pictures of a trained flow,
// throughput measurements and summary.json.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "knead/data/csv.hpp"
#include "knead/data/siggraph.hpp"
#include "knead/data/split.hpp"
#include "knead/data/standardizer.hpp"
#include "knead/data/two_moons.hpp"
#include "knead/distributions/distribution.hpp"
#include "knead/io/file.hpp"
#include "plot/axes.hpp"
#include "plot/loss_curve.hpp"

namespace example {

/// Command-line checks that state their bound in words (CLI11's PositiveNumber and
/// NonNegativeNumber print the largest double, 309 digits, as the upper end of their range).
inline CLI::Validator number_at_least(double lowest, bool strictly, const std::string& name) {
  return CLI::Validator(
      [lowest, strictly](std::string& input) -> std::string {
        double value = 0;
        const bool read = CLI::detail::lexical_cast(input, value);
        if (read && std::isfinite(value) && (strictly ? value > lowest : value >= lowest)) return {};
        return "Value " + input + " must be a finite number " + (strictly ? "greater than " : "at least ") +
               (lowest == 0 ? std::string("0") : std::to_string(lowest));
      },
      name);
}
inline const CLI::Validator positive_number = number_at_least(0, true, "POSITIVE");
inline const CLI::Validator non_negative_number = number_at_least(0, false, "NONNEGATIVE");

using knead::Index;
using Matrix = knead::Matrix<double>;

/// Training, validation and test points in standardised coordinates, and the standardizer that
/// maps data coordinates onto them (fitted on the training split only).
struct Dataset {
  std::string name;
  Matrix train, validation, test;
  knead::data::Standardizer<double> standardizer;
  std::string test_description;
  std::string coordinates;  ///< how train/validation/test relate to the data, for summary.json
};

/// The scaling named on the command line: "standard" (σ per dimension), "uniform" (one σ, keeps
/// the aspect ratio), "none" (centring only); "auto" is uniform for siggraph (a wide word stays
/// wide) and standard otherwise.
inline knead::data::Scaling parse_scaling(const std::string& scaling, const std::string& dataset) {
  using knead::data::Scaling;
  if (scaling == "auto") return dataset == "siggraph" ? Scaling::uniform : Scaling::per_dimension;
  if (scaling == "standard") return Scaling::per_dimension;
  if (scaling == "uniform") return Scaling::uniform;
  if (scaling == "none") return Scaling::none;
  throw std::invalid_argument("parse_scaling: unknown scaling '" + scaling +
                              "' (expected auto, standard, uniform or none)");
}

/// moons and siggraph are generated (`train_size` points split 90/10 into train/validation; the
/// test set is 10,000 fresh points from another seed); a CSV path is split 80/10/10. All three are
/// centred and scaled as `scaling` says with statistics of the training split.
inline Dataset load_dataset(const std::string& name, Index train_size, double noise, std::uint64_t seed,
                            knead::data::Scaling scaling = knead::data::Scaling::per_dimension) {
  Dataset d;
  d.name = name;
  Matrix raw_train, raw_validation, raw_test;
  if (name == "moons" || name == "siggraph") {
    auto make = [&](Index n, std::uint64_t s) {
      return name == "moons" ? knead::data::two_moons<double>(n, noise, s)
                             : knead::data::siggraph<double>(n, s);
    };
    const auto split = knead::data::split_dataset(make(train_size, seed), 0.1, 0.0, seed + 1);
    raw_train = split.train;
    raw_validation = split.validation;
    raw_test = make(10000, seed + 1000003);
    d.test_description = "10000 fresh points";
  } else {
    knead::data::CsvOptions csv;
    csv.columns = 2;  // the 2-D examples need 2; read_csv names the line and the counts otherwise
    const Matrix data = knead::data::read_csv<double>(name, csv);
    const auto split = knead::data::split_dataset(data, 0.1, 0.1, seed + 1);
    raw_train = split.train;
    raw_validation = split.validation;
    raw_test = split.test;
    d.test_description = "a held-out 10% of the file";
  }
  d.standardizer.fit(raw_train, scaling);
  using knead::data::Scaling;
  d.coordinates = scaling == Scaling::per_dimension ? "standardised with the training split's mean and "
                                                      "standard deviation per dimension"
                  : scaling == Scaling::uniform
                      ? "centred on the training split's mean and divided by one standard deviation "
                        "pooled over both dimensions"
                      : "centred on the training split's mean, not scaled (data units)";
  d.train = d.standardizer.transform(raw_train);
  d.validation = d.standardizer.transform(raw_validation);
  d.test = d.standardizer.transform(raw_test);
  return d;
}

/// Seconds taken by `f`, best of `repeats` runs (the machines are shared and noisy).
template <class F>
double best_seconds(F&& f, int repeats = 3) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

/// Throughput of a flow: samples and density evaluations per second on batches of `n`.
template <class Flow>
std::pair<double, double> throughput(Flow& flow, Index n, std::uint64_t seed) {
  using T = typename Flow::Scalar;
  knead::Rng rng(seed);
  knead::Matrix<T> samples, x = flow.sample(n, rng);
  knead::RowVector<T> lp;
  const double sample_s = best_seconds([&] { flow.sample(n, rng, samples); });
  const double density_s = best_seconds([&] { flow.log_prob(x, lp); });
  return {double(n) / sample_s, double(n) / density_s};
}

inline plot::Limits view_of(const Matrix& data) { return plot::limits_of(data, 0.15); }

/// Pixel size of a one-panel figure showing `limits` at equal aspect: square-ish data gets the
/// usual 640×560, wide data (the SIGGRAPH word) a wide, short figure instead of a thin stripe.
inline std::pair<int, int> panel_size(const plot::Limits& limits) {
  const double aspect = (limits.x_max - limits.x_min) / (limits.y_max - limits.y_min);
  if (aspect < 1.6) return {640, 560};
  constexpr int width = 1200, margins = 130;  // title, tick labels and axis labels
  return {width, std::max(300, int((width - 100) / aspect) + margins)};
}

/// A scatter plot of the columns of `points` (float or double).
template <class Derived>
void scatter_png(const std::string& path, const Eigen::MatrixBase<Derived>& points,
                 const plot::Limits& limits, const std::string& title, plot::Color color) {
  const auto [width, height] = panel_size(limits);
  plot::Figure fig(1, 1, width, height);
  const double alpha = points.cols() > 20000 ? 0.15 : 0.35;
  fig.axes(0, 0, limits, {.title = title, .x_label = "x1", .y_label = "x2", .equal_aspect = true})
      .scatter(points.template cast<double>(), color, alpha, 1.2);
  fig.save_png(path);
}

/// Heat map of log p over the view, clipped below at (max − 12) so the tails stay visible.
template <class Flow>
void density_png(const std::string& path, Flow& flow, const plot::Limits& limits, const std::string& title) {
  using T = typename Flow::Scalar;
  const auto [width, height] = panel_size(limits);
  const plot::Grid grid{limits, width / 3, height / 3};
  knead::RowVector<T> lp_flow;
  flow.log_prob(grid.points().template cast<T>(), lp_flow);
  const knead::RowVector<double> lp = lp_flow.template cast<double>();
  plot::Figure fig(1, 1, width + 40, height);
  fig.axes(0, 0, grid.limits, {.title = title, .x_label = "x1", .y_label = "x2", .colorbar = true})
      .heatmap(grid, lp, plot::viridis_like, std::pair{lp.maxCoeff() - 12.0, lp.maxCoeff()});
  fig.save_png(path);
}

/// "Taffy pulling": base samples pushed through each part of the chain in turn, one panel per
/// stage, coloured by the quadrant of the base sample so points can be followed.
template <class Flow>
void taffy_png(const std::string& path, Flow& flow, Index n, std::uint64_t seed) {
  using T = typename Flow::Scalar;
  auto& chain = flow.bijector();
  knead::Rng rng(seed);
  knead::Matrix<T> stage;
  flow.base().sample(n, rng, stage);
  const knead::Matrix<T> base = stage;
  const int panels = int(chain.size()) + 1, cols = std::min(panels, 6), rows = (panels + cols - 1) / cols;
  plot::Figure fig(rows, cols, 300, 300, "Base samples through each bijector, in the forward direction");
  auto draw = [&](int k, const std::string& title) {
    auto ax = fig.axes(k / cols, k % cols, plot::limits_of(stage.template cast<double>(), 0.08),
                       {.title = title, .equal_aspect = true});
    for (int q = 0; q < 4; ++q) {
      std::vector<Index> keep;
      for (Index j = 0; j < n; ++j)
        if (int(base(0, j) > 0) + 2 * int(base(1, j) > 0) == q) keep.push_back(j);
      Matrix part(2, Index(keep.size()));
      for (std::size_t i = 0; i < keep.size(); ++i)
        part.col(Index(i)) = stage.col(keep[i]).template cast<double>();
      ax.scatter(part, plot::colors::series[std::size_t(q)], 0.4, 1.1);
    }
  };
  draw(0, "base N(0, I)");
  knead::Matrix<T> next;
  knead::RowVector<T> ld;
  for (Index i = 0; i < chain.size(); ++i) {
    chain.part(i).forward_and_log_det(stage, next, ld);
    stage.swap(next);
    draw(int(i) + 1, std::to_string(i + 1) + ": " + chain.part(i).name());
  }
  fig.save_png(path);
}

using plot::loss_png;  // plot/loss_curve.hpp

/// Writes `j` as indented JSON atomically (write_file_atomically: temporary file, sync, rename), so a
/// failure — a full disk included — throws and leaves no partial file.
inline void write_json(const std::string& path, const nlohmann::json& j) {
  const std::string text = j.dump(2) + "\n";
  knead::io::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

}  // namespace example
