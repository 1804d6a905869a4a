#include "knead/data/siggraph.hpp"

#include <numbers>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

namespace {

/// Distance from (x, y) to the centre line of a stroke.
double distance_to(const Stroke& s, double x, double y) {
  if (s.is_arc) {
    const double a = std::atan2(y - s.cy, x - s.cx);
    const double lo = std::min(s.a0, s.a1), hi = std::max(s.a0, s.a1);
    for (const double turn : {-2.0, 0.0, 2.0})  // the angle may be reported a turn away
      if (a + turn * std::numbers::pi >= lo && a + turn * std::numbers::pi <= hi)
        return std::abs(std::hypot(x - s.cx, y - s.cy) - s.r);
    double ex, ey, nx, ny, fx, fy;
    s.at(0, ex, ey, nx, ny);
    s.at(1, fx, fy, nx, ny);
    return std::min(std::hypot(x - ex, y - ey), std::hypot(x - fx, y - fy));
  }
  const double dx = s.x1 - s.x0, dy = s.y1 - s.y0;
  const double t = std::clamp(((x - s.x0) * dx + (y - s.y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0);
  return std::hypot(x - s.x0 - t * dx, y - s.y0 - t * dy);
}

// Empty x-intervals separating the eight letters, and the letters' x-intervals between them.
const double gaps[7][2] = {{0.44, 0.53}, {0.62, 0.75}, {1.38, 1.51}, {2.14, 2.25},
                           {2.77, 2.81}, {3.46, 3.55}, {3.98, 4.05}};

int letter_of(double x) {
  int k = 0;
  while (k < 7 && x >= gaps[k][1]) ++k;
  return k;
}

}  // namespace

TEST_CASE("Stroke segments and arcs have their closed-form length, points and normals", "[data]") {
  const Stroke s = segment(1, 1, 4, 5);
  CHECK(s.length() == Approx(5));
  double x, y, nx, ny;
  s.at(0.5, x, y, nx, ny);
  CHECK(x == Approx(2.5));
  CHECK(y == Approx(3));
  CHECK(nx * 3 + ny * 4 == Approx(0).margin(1e-12));  // normal ⟂ direction
  CHECK(std::hypot(nx, ny) == Approx(1));

  const Stroke a = arc(1, 2, 2, 0, -90);  // a quarter turn clockwise
  CHECK(a.length() == Approx(std::numbers::pi));
  a.at(0.5, x, y, nx, ny);
  CHECK(x == Approx(1 + std::sqrt(2.0)));
  CHECK(y == Approx(2 - std::sqrt(2.0)));
  CHECK(nx == Approx(std::sqrt(0.5)));
  CHECK(ny == Approx(-std::sqrt(0.5)));
}

TEMPLATE_TEST_CASE("siggraph has the reference cloud's size and is deterministic per seed", "[data]", float,
                   double) {
  const Matrix<TestType> p = siggraph<TestType>(20000, 1);
  REQUIRE(p.rows() == 2);
  REQUIRE(p.cols() == 20000);
  // About 4.6 wide and 0.7 high: x in ~[0.04, 4.62], y in ~[0, 0.7].
  CHECK(p.row(0).minCoeff() == Approx(0.04).margin(0.01));
  CHECK(p.row(0).maxCoeff() == Approx(4.62).margin(0.01));
  CHECK(p.row(1).minCoeff() == Approx(0.0).margin(0.01));
  CHECK(p.row(1).maxCoeff() == Approx(0.7).margin(0.01));
  CHECK(p == siggraph<TestType>(20000, 1));
  CHECK(p != siggraph<TestType>(20000, 2));
  CHECK(p.topLeftCorner(2, 100) == siggraph<TestType>(100, 1));  // a prefix of a longer draw
}

TEST_CASE("siggraph fills eight separated letters in proportion to their stroke length", "[data]") {
  const Index n = 40000;
  const Matrix<double> p = siggraph<double>(n, 7);
  std::vector<double> count(8, 0.0);
  int in_gaps = 0;
  for (Index j = 0; j < n; ++j) {
    const double x = p(0, j);
    for (const auto& gap : gaps) in_gaps += x > gap[0] && x < gap[1];
    count[std::size_t(letter_of(x))] += 1;
  }
  CHECK(in_gaps == 0);
  // Uniform by length: a letter gets its share of the total stroke length.
  const std::vector<Stroke> strokes = siggraph_strokes();
  std::vector<double> length(8, 0.0);
  double total = 0;
  for (const Stroke& s : strokes) {
    double x, y, nx, ny;
    s.at(0.5, x, y, nx, ny);
    length[std::size_t(letter_of(x))] += s.length();
    total += s.length();
  }
  for (std::size_t k = 0; k < 8; ++k) {
    const double expected = double(n) * length[k] / total;
    INFO("letter " << k << ": " << count[k] << " points, expected " << expected);
    CHECK(expected > 0.05 * double(n));                              // every letter gets a visible share
    CHECK(std::abs(count[k] - expected) < 5 * std::sqrt(expected));  // binomial spread
  }
}

TEST_CASE("siggraph points lie within half a stroke width of a stroke, spread across it", "[data]") {
  const Matrix<double> p = siggraph<double>(5000, 3);
  const std::vector<Stroke> strokes = siggraph_strokes();
  const double half = siggraph_stroke_width / 2;
  double mean = 0, farthest = 0;
  for (Index j = 0; j < p.cols(); ++j) {
    double nearest = 1e9;
    for (const Stroke& s : strokes) nearest = std::min(nearest, distance_to(s, p(0, j), p(1, j)));
    farthest = std::max(farthest, nearest);
    mean += nearest / double(p.cols());
  }
  CHECK(farthest <= half + 1e-12);
  CHECK(farthest > 0.95 * half);  // the strokes have their full width
  // A uniform offset in [−w/2, w/2] has E|offset| = w/4 (nearer strokes near joints lower it a little).
  CHECK(mean == Approx(half / 2).epsilon(0.1));
}

TEST_CASE("stroke_cloud and siggraph reject bad arguments", "[data][errors]") {
  CHECK_THROWS_WITH(siggraph<double>(0, 1), Catch::Contains("siggraph") && Catch::Contains("got 0"));
  const std::vector<Stroke> one{segment(0, 0, 1, 0)};
  CHECK_THROWS_WITH(stroke_cloud<double>(one, 0.1, -3, 1),
                    Catch::Contains("stroke_cloud") && Catch::Contains("-3"));
  CHECK_THROWS_WITH(stroke_cloud<double>(one, -0.1, 10, 1),
                    Catch::Contains("stroke_cloud") && Catch::Contains("width") && Catch::Contains("-0.1"));
  CHECK_THROWS_WITH(stroke_cloud<double>({}, 0.1, 10, 1),
                    Catch::Contains("stroke_cloud") && Catch::Contains("no strokes"));
  CHECK_THROWS_WITH(
      stroke_cloud<double>({segment(0, 0, 1, 0), segment(2, 2, 2, 2)}, 0.1, 10, 1),
      Catch::Contains("stroke_cloud") && Catch::Contains("stroke 1") && Catch::Contains("length 0"));
  // Width 0 puts every point on the centre line.
  const Matrix<double> thin = stroke_cloud<double>(one, 0.0, 50, 1);
  CHECK(thin.row(1).cwiseAbs().maxCoeff() == 0.0);
}
