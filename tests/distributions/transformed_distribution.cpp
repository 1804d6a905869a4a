#include "knead/distributions/transformed_distribution.hpp"

#include "flows.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// Integrates exp(log_prob) over a grid covering the samples' range with a wide margin; returns
/// the integral and the probability of each of `boxes` (x0, x1, y0, y1) by the same grid.
template <class Flow>
std::pair<double, std::vector<double>> integrate(const Flow& flow,
                                                 const std::vector<std::array<double, 4>>& boxes, Rng& rng,
                                                 Index cells = 500) {
  const Matrix<double> s = flow.sample(20000, rng);
  const Vector<double> lo = s.rowwise().minCoeff(), hi = s.rowwise().maxCoeff();
  const Vector<double> margin = 0.5 * (hi - lo);
  const Vector<double> a = lo - margin, b = hi + margin;
  const double hx = (b(0) - a(0)) / double(cells), hy = (b(1) - a(1)) / double(cells);
  Matrix<double> grid(2, cells * cells);
  for (Index i = 0; i < cells; ++i)
    for (Index j = 0; j < cells; ++j)
      grid.col(i * cells + j) << a(0) + (double(i) + 0.5) * hx, a(1) + (double(j) + 0.5) * hy;
  const RowVector<double> density = flow.log_prob(grid).array().exp();
  std::vector<double> in_box(boxes.size(), 0.0);
  for (Index k = 0; k < grid.cols(); ++k)
    for (std::size_t m = 0; m < boxes.size(); ++m)
      if (grid(0, k) >= boxes[m][0] && grid(0, k) < boxes[m][1] && grid(1, k) >= boxes[m][2] &&
          grid(1, k) < boxes[m][3])
        in_box[m] += density(k) * hx * hy;
  return {density.sum() * hx * hy, in_box};
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("a random 2-D flow's density integrates to 1 and agrees with its samples",
                        "[distributions][density]", test::RandomFlows2D) {
  Rng rng(2024);
  auto flow = test::make_random_flow<TestType>(rng);
  const std::vector<std::array<double, 4>> boxes = {{-1, 0, -1, 0}, {0, 1, -0.5, 1.5}, {-2, 2, 0, 3}};
  const auto [total, box_mass] = integrate(flow, boxes, rng);
  CHECK(std::abs(total - 1.0) < 1e-3);

  const Index n = 100000;
  const Matrix<double> s = flow.sample(n, rng);
  for (std::size_t m = 0; m < boxes.size(); ++m) {
    const auto& bx = boxes[m];
    double count = 0;
    for (Index k = 0; k < n; ++k)
      count += s(0, k) >= bx[0] && s(0, k) < bx[1] && s(1, k) >= bx[2] && s(1, k) < bx[3];
    const double p = box_mass[m], se = std::sqrt(std::max(p * (1 - p), 1e-4) / double(n));
    CAPTURE(m, p, count / double(n));
    CHECK(std::abs(count / double(n) - p) < 5 * se + 2e-3);
  }
}

TEMPLATE_TEST_CASE("sample_and_log_prob agrees with log_prob and is reproducible", "[distributions]", float,
                   double) {
  Rng rng(5);
  TransformedDistribution flow(DiagonalNormal<TestType>(3), Chain(Affine<TestType>(3), Affine<TestType>(3)));
  test::randomise_parameters(flow, rng, 0.4);
  Rng a(99), b(99);
  const auto [x, lp] = flow.sample_and_log_prob(50, a);
  CHECK(flow.sample(50, b) == x);
  const RowVector<TestType> direct = flow.log_prob(x);
  CHECK((direct - lp).cwiseAbs().maxCoeff() < (std::is_same_v<TestType, float> ? 1e-4 : 1e-12));
}

TEMPLATE_TEST_CASE("TransformedDistribution gradients match finite differences", "[distributions][gradients]",
                   float, double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(8);
  TransformedDistribution flow(DiagonalNormal<T>(2), Chain(Affine<T>(2), Affine<T>(2)));
  test::randomise_parameters(flow, rng, 0.4);
  const Matrix<T> x = test::random_batch<T>(2, 6, rng);

  // maximum likelihood: mean NLL of a batch
  flow.zero_gradients();
  const T nll = flow.mean_nll_and_backward(x);
  CHECK(double(nll) == Approx(-double(flow.log_prob(x).mean())).epsilon(1e-5));
  Vector<double> analytic =
      Eigen::Map<Vector<T>>(flow.gradients().data(), flow.num_parameters()).template cast<double>();
  auto nll_loss = [&] { return -double(flow.log_prob(x).template cast<double>().mean()); };
  CHECK(testing::relative_error(analytic, testing::finite_difference_gradient<T>(nll_loss, flow.parameters(),
                                                                                 tol.fd_step_scale)) <
        tol.gradient);

  // reparameterised objective on samples: L = Σ w ⊙ x + Σ v ⊙ log p(x), noise fixed by the seed
  const Matrix<T> w = test::random_batch<T>(2, 7, rng);
  const RowVector<T> v = test::random_batch<T>(1, 7, rng);
  auto sample_loss = [&] {
    Rng fixed(31);
    const auto [s, lp] = flow.sample_and_log_prob(7, fixed);
    return double(s.cwiseProduct(w).sum() + lp.dot(v));
  };
  flow.zero_gradients();
  Rng fixed(31);
  Matrix<T> s;
  RowVector<T> lp;
  flow.sample_and_log_prob(7, fixed, s, lp);
  flow.backward_sample_and_log_prob(w, v);
  analytic = Eigen::Map<Vector<T>>(flow.gradients().data(), flow.num_parameters()).template cast<double>();
  CHECK(testing::relative_error(analytic, testing::finite_difference_gradient<T>(
                                              sample_loss, flow.parameters(), tol.fd_step_scale)) <
        tol.gradient);
}

TEST_CASE("TransformedDistribution rejects bad input", "[distributions][errors]") {
  CHECK_THROWS_WITH(TransformedDistribution(StandardNormal<double>(2), Affine<double>(3)),
                    Catch::Contains("TransformedDistribution") && Catch::Contains("dim 3"));
  const TransformedDistribution flow(StandardNormal<double>(2), Affine<double>(2));
  Matrix<double> x = Matrix<double>::Zero(2, 3);
  x(1, 2) = NAN;
  CHECK_THROWS_WITH(flow.log_prob(x), Catch::Contains("log_prob") && Catch::Contains("non-finite") &&
                                          Catch::Contains("(1, 2)"));
  CHECK_THROWS_WITH(flow.log_prob(Matrix<double>::Zero(3, 3)), Catch::Contains("2 rows"));
  CHECK_THROWS_WITH(flow.log_prob(Matrix<double>::Zero(2, 0)), Catch::Contains("empty batch"));
}
