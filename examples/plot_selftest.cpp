// Renders one figure of every kind the plotting helpers draw, for a person to look at, and checks
// a few pixel-level facts. Usage: plot_selftest OUTPUT_DIR (the directory must exist).
//
// Not part of the test suite: it is built only with the examples, and the pictures are judged by eye.

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "knead/data/siggraph.hpp"
#include "knead/data/two_moons.hpp"
#include "plot/axes.hpp"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

double dist2(const plot::Color& a, const plot::Color& b) {
  return (a.r - b.r) * (a.r - b.r) + (a.g - b.g) * (a.g - b.g) + (a.b - b.b) * (a.b - b.b);
}

void pixel_facts() {
  plot::Canvas c(20, 10);
  c.line(2.5, 4.5, 15.5, 4.5, plot::colors::black, 1.0);
  expect(dist2(c.pixel(8, 4), plot::colors::black) < 1e-6, "a 1-pixel line through pixel centres is solid");
  expect(dist2(c.pixel(8, 3), plot::colors::white) < 1e-6,
         "a 1-pixel line does not bleed into its neighbours");
  c.set_clip({0, 0, 5, 10});
  c.disc(10, 8, 1.5, plot::colors::black);
  expect(dist2(c.pixel(10, 8), plot::colors::white) < 1e-6, "drawing is clipped");
  expect(plot::text_width("abc", 2) == (3 * 6 - 1) * 2, "text width");
  const plot::Ticks t = plot::linear_ticks(-0.13, 0.92);
  expect(t.labels.front() == "0.0" && t.labels.back() == "0.8" && t.values.size() == 5, "linear tick labels");
  const plot::Ticks l = plot::log_ticks(0.02, 300);
  expect(l.labels.front() == "0.1" && l.labels.back() == "100", "log tick labels");
  bool threw = false;
  try {
    c.save_png("/nonexistent-directory/x.png");
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("/nonexistent-directory/x.png") != std::string::npos;
  }
  expect(threw, "save_png throws std::runtime_error naming the path");
}

/// Tick generation ends for every range: distinct increasing values inside it, at most
/// plot::max_ticks of them, and a std::invalid_argument for a non-finite range.
void tick_facts() {
  const struct {
    double lo, hi;
    int target;
    const char* what;
  } ranges[] = {{1e17, 1e17 + 1e3, 5, "[1e17, 1e17 + 1e3]"},
                {1e17, 1e17 + 10, 5, "[1e17, 1e17 + 10], finer than the spacing of doubles"},
                {-1e300, 1e300, 5, "[-1e300, 1e300]"},
                {-1.7e308, 1.7e308, 1, "[-1.7e308, 1.7e308], a width beyond double's range"},
                {0, 1, 1000000000, "[0, 1] with a billion ticks asked for"},
                {5e-324, 1e-323, 5, "a range of two subnormals"}};
  for (const auto& r : ranges) {
    const plot::Ticks t = plot::linear_ticks(r.lo, r.hi, r.target);
    bool ok = !t.values.empty() && t.values.size() <= std::size_t(plot::max_ticks) &&
              t.labels.size() == t.values.size();
    for (std::size_t i = 0; ok && i < t.values.size(); ++i)
      ok = t.values[i] >= r.lo && t.values[i] <= r.hi && (i == 0 || t.values[i] > t.values[i - 1]);
    if (!ok) std::fprintf(stderr, "%s: %zu ticks\n", r.what, t.values.size());
    expect(ok, "linear ticks are few, distinct, increasing and inside the range");
  }
  const plot::Ticks single = plot::linear_ticks(0, 0);
  expect(single.values.size() == 1 && single.values[0] == 0 && single.labels[0] == "0",
         "[0, 0] has the single tick 0");
  const double nan = std::nan(""), inf = INFINITY;
  for (const auto& [lo, hi] : {std::pair{nan, 1.0}, {0.0, nan}, {-inf, 0.0}, {0.0, inf}, {2.0, 1.0}})
    for (const bool log : {false, true}) {
      std::string message;
      try {
        (void)(log ? plot::log_ticks(lo, hi) : plot::linear_ticks(lo, hi));
      } catch (const std::invalid_argument& e) {
        message = e.what();
      }
      expect(message.find(log ? "plot::log_ticks" : "plot::linear_ticks") != std::string::npos &&
                 message.find("finite") != std::string::npos,
             "a non-finite or reversed range is refused with a message");
    }
}

void font_sheet(const std::string& dir) {
  plot::Canvas c(560, 150);
  const char* lines[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789", "abcdefghijklmnopqrstuvwxyz .,:;-+=*/%",
                         "()[]<>_|!?^~#'\" unknown: \x7f", "log p(x) = -1.25e-3, NLL 2.80 nats"};
  for (int i = 0; i < 4; ++i) plot::draw_text(c, 10, 10 + 16 * i, lines[i], plot::colors::text, 1);
  plot::draw_text(c, 10, 80, "Scale 2: SIGGRAPH 2024", plot::colors::series[0], 2);
  plot::draw_text(c, 10, 110, "Scale 3: Moons", plot::colors::series[3], 3);
  plot::draw_text_up(c, 540, 75, "upwards", plot::colors::text, 1);
  c.save_png(dir + "/font.png");
}

void scatter_and_density(const std::string& dir) {
  const knead::Matrix<double> moons = knead::data::two_moons<double>(4000, 0.08, 1);
  const knead::Matrix<double> word = knead::data::siggraph<double>(20000, 2);
  plot::Figure fig(1, 2, 480, 380, "Two moons");
  const plot::Limits limits = plot::limits_of(moons);
  fig.axes(0, 0, limits,
           {.title = "scatter", .x_label = "x1", .y_label = "x2", .equal_aspect = true, .grid = true})
      .scatter(moons, plot::colors::series[0], 0.35, 1.3);
  fig.axes(0, 1, limits, {.title = "2-D histogram", .x_label = "x1", .equal_aspect = true, .colorbar = true})
      .density(moons, 60, 40);
  fig.save_png(dir + "/moons.png");

  plot::Figure wide(2, 1, 1100, 260, "SIGGRAPH");
  const plot::Limits word_limits{-0.1, 4.75, -0.1, 0.8};
  wide.axes(0, 0, word_limits, {.title = "samples", .equal_aspect = true})
      .scatter(word, plot::colors::series[1], 0.25, 1.1);
  wide.axes(1, 0, word_limits, {.title = "density", .equal_aspect = true}).density(word, 300, 60);
  wide.save_png(dir + "/siggraph.png");
}

void heatmap(const std::string& dir) {
  // log density of an equal mixture of two Gaussians, the kind of map a trained flow gives.
  const plot::Grid grid{{-3, 3, -3, 3}, 120, 120};
  const Eigen::MatrixXd p = grid.points();
  Eigen::RowVectorXd log_p(p.cols());
  for (Eigen::Index j = 0; j < p.cols(); ++j) {
    const double a = std::exp(-0.5 * ((p(0, j) - 1) * (p(0, j) - 1) + p(1, j) * p(1, j) / 0.25));
    const double b = std::exp(-0.5 * ((p(0, j) + 1) * (p(0, j) + 1) / 0.25 + (p(1, j) - 1) * (p(1, j) - 1)));
    log_p(j) = std::log(0.5 * (a + b) / (2 * M_PI * 0.5));
  }
  plot::Figure fig(1, 2, 440, 400);
  fig.axes(0, 0, grid.limits, {.title = "log density", .x_label = "x1", .y_label = "x2", .colorbar = true})
      .heatmap(grid, log_p, plot::viridis_like, std::pair{-12.0, log_p.maxCoeff()});
  fig.axes(0, 1, grid.limits, {.title = "density", .x_label = "x1", .colorbar = true})
      .heatmap(grid, log_p.array().exp().matrix(), plot::blues);
  fig.save_png(dir + "/heatmap.png");
}

void loss_curves(const std::string& dir) {
  std::vector<double> step, train, validation, nll;
  for (int i = 0; i <= 2000; i += 10) {
    step.push_back(i);
    train.push_back(3.0 * std::exp(-i / 300.0) + 0.05 + 0.03 * std::sin(i / 7.0));
    validation.push_back(3.0 * std::exp(-i / 300.0) + 0.09);
    nll.push_back(2.8 - 1.5 * (1 - std::exp(-i / 400.0)));
  }
  plot::Figure fig(1, 2, 480, 340);
  auto log_axes = fig.axes(
      0, 0, {0, 2000, 0.03, 4},
      {.title = "loss (log scale)", .x_label = "step", .y_label = "loss", .log_y = true, .grid = true});
  log_axes.line(step, train, plot::colors::series[0]);
  log_axes.line(step, validation, plot::colors::series[1], 2.0);
  log_axes.legend({{"train", plot::colors::series[0]}, {"validation", plot::colors::series[1]}});
  auto linear = fig.axes(0, 1, {0, 2000, 1.0, 3.0}, {.title = "NLL (nats)", .x_label = "step", .grid = true});
  linear.line(step, nll, plot::colors::series[2], 2.0);
  fig.save_png(dir + "/loss.png");
}

void taffy(const std::string& dir) {
  // Base samples pushed through three hand-made invertible maps, one panel per stage.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd u(2, 3000);
  for (Eigen::Index j = 0; j < u.cols(); ++j) u.col(j) << normal(rng), normal(rng);
  Eigen::MatrixXd stage = u;
  const char* titles[] = {"base N(0, I)", "scale", "shear", "bend"};
  plot::Figure fig(1, 4, 300, 300, "Samples through each bijector");
  for (int k = 0; k < 4; ++k) {
    if (k == 1) stage.row(0) *= 2.0;
    if (k == 2) stage.row(1) += 0.6 * stage.row(0);
    if (k == 3) stage.row(1) += (stage.row(0).array() * 0.8).sin().matrix() * 2.0;
    // Colour by the base sample's first coordinate, so one can follow points through the stages.
    Eigen::MatrixXd left = stage, right = stage;
    int nl = 0, nr = 0;
    for (Eigen::Index j = 0; j < u.cols(); ++j)
      (u(0, j) < 0 ? left.col(nl++) : right.col(nr++)) = stage.col(j);
    auto ax = fig.axes(0, k, plot::limits_of(stage), {.title = titles[k], .equal_aspect = true});
    ax.scatter(left.leftCols(nl), plot::colors::series[0], 0.4);
    ax.scatter(right.leftCols(nr), plot::colors::series[1], 0.4);
  }
  fig.save_png(dir + "/taffy.png");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  pixel_facts();
  tick_facts();
  try {
    font_sheet(dir);
    scatter_and_density(dir);
    heatmap(dir);
    loss_curves(dir);
    taffy(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plot_selftest: %s\n", e.what());
    return 1;
  }
  std::printf("%s; figures written to %s\n", failures == 0 ? "all checks passed" : "checks FAILED",
              dir.c_str());
  return failures == 0 ? 0 : 1;
}
