#include "knead/train/evaluate.hpp"

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "conditional_examples.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/train/trainer.hpp"
#include "support.hpp"

using namespace knead;

namespace {

using EvalFlow = TransformedDistribution<StandardNormal<double>, Affine<double>>;

/// −log p(x) of column j for the affine flow x = e^s ⊙ z + b on a standard normal:
/// Σ_i [½ ((x_i − b_i) e^{−s_i})² + s_i + ½ log 2π].
double affine_nll(const EvalFlow& flow, const Matrix<double>& x, Index j) {
  const Vector<double> s = flow.bijector().log_scale(), b = flow.bijector().shift();
  double nll = 0;
  for (Index i = 0; i < x.rows(); ++i) {
    const double z = (x(i, j) - b(i)) * std::exp(-s(i));
    nll += 0.5 * z * z + s(i) + 0.5 * std::log(2 * std::numbers::pi);
  }
  return nll;
}

/// Records, for every log_prob call, the chunk size, the training mode and whether NoGrad was active.
struct EvalProbe {
  using Scalar = double;
  EvalFlow flow{StandardNormal<double>(2), Affine<double>(2)};
  bool training_ = true;
  std::vector<Index> chunk_sizes;
  std::vector<bool> modes, no_grad;

  [[nodiscard]] Index dim() const { return flow.dim(); }
  void log_prob(MatrixCRef<double> x, RowVector<double>& out) {
    chunk_sizes.push_back(x.cols());
    modes.push_back(training_);
    no_grad.push_back(NoGrad::active());
    flow.log_prob(x, out);
  }
  void set_training(bool on) { training_ = on; }
  [[nodiscard]] bool training() const { return training_; }
};
static_assert(EvaluableModel<EvalProbe>);

}  // namespace

TEST_CASE("log_prob_rows gives the closed-form log density of every column", "[train][evaluate]") {
  Rng rng(11);
  EvalFlow flow(StandardNormal<double>(3), Affine<double>(3));
  const Matrix<double> x = test::shifted_normal(3, 23, rng, 0.7);
  SECTION("the identity-initialised flow is a standard normal") {
    const RowVector<double> rows = log_prob_rows(flow, x, 5);
    REQUIRE(rows.size() == 23);
    for (Index j = 0; j < x.cols(); ++j) {
      const double standard_normal = -0.5 * x.col(j).squaredNorm() - 1.5 * std::log(2 * std::numbers::pi);
      CHECK(rows(j) == Approx(standard_normal).epsilon(1e-13));
    }
  }
  SECTION("a known affine map") {
    test::randomise_parameters(flow, rng, 0.5);
    const RowVector<double> rows = log_prob_rows(flow, x, 5);
    for (Index j = 0; j < x.cols(); ++j) CHECK(-rows(j) == Approx(affine_nll(flow, x, j)).epsilon(1e-12));
  }
}

TEST_CASE("log_prob_rows gives the same values whatever the chunk size", "[train][evaluate]") {
  Rng rng(12);
  EvalFlow flow(StandardNormal<double>(2), Affine<double>(2));
  test::randomise_parameters(flow, rng, 0.4);
  const Matrix<double> x = test::shifted_normal(2, 20, rng, -0.3);
  const RowVector<double> whole = log_prob_rows(flow, x, 20);
  for (const Index chunk : {1, 7, 21, 1000}) {
    CAPTURE(chunk);
    CHECK(log_prob_rows(flow, x, chunk) == whole);
  }
}

TEST_CASE("log_prob_rows runs in bounded chunks under NoGrad in evaluation mode and restores the mode",
          "[train][evaluate]") {
  Rng rng(13);
  const Matrix<double> x = test::shifted_normal(2, 20, rng, 0.0);
  for (const bool initial_mode : {true, false}) {
    EvalProbe probe;
    probe.training_ = initial_mode;
    (void)log_prob_rows(probe, x, 7);
    CHECK(probe.chunk_sizes == std::vector<Index>{7, 7, 6});
    CHECK(probe.modes == std::vector<bool>(3, false));
    CHECK(probe.no_grad == std::vector<bool>(3, true));
    CHECK(probe.training() == initial_mode);
    CHECK_FALSE(NoGrad::active());
  }
}

TEST_CASE("log_prob_rows uses a BatchNorm's running statistics", "[train][evaluate]") {
  const FlowSpec<double> spec{.dim = 2, .layers = 2, .hidden = {4}, .batch_norm = true, .seed = 3};
  TransformedDistribution flow(StandardNormal<double>(2), make_flow<double>(spec));
  Rng rng(14);
  const Matrix<double> x = test::shifted_normal(2, 9, rng, 2.0);
  (void)flow.mean_nll_and_backward(x);  // a training pass moves the running statistics
  flow.set_training(false);
  const RowVector<double> evaluation = flow.log_prob(x);
  flow.set_training(true);
  CHECK(log_prob_rows(flow, x, 4) == evaluation);
  CHECK(flow.training());
}

TEST_CASE("log_prob_rows of a conditional model pairs data and context columns", "[train][evaluate]") {
  Rng rng(15);
  TransformedDistribution flow(StandardNormal<double>(2), test::ConditionalAffine<double>(2, 1));
  test::randomise_parameters(flow, rng, 0.3);
  const Matrix<double> c = test::random_batch<double>(1, 11, rng);
  const Matrix<double> x = test::random_batch<double>(2, 11, rng);
  const RowVector<double> direct = flow.log_prob(x, c);
  CHECK(log_prob_rows(flow, x, c, 3) == direct);
  CHECK_THROWS_WITH(log_prob_rows(flow, x, Matrix<double>::Zero(1, 10), 3),
                    Catch::Contains("log_prob_rows") && Catch::Contains("1x11") && Catch::Contains("1x10"));
}

TEST_CASE("log_prob_rows rejects a bad chunk or bad data", "[train][evaluate][errors]") {
  EvalFlow flow(StandardNormal<double>(2), Affine<double>(2));
  const Matrix<double> x = Matrix<double>::Zero(2, 4);
  CHECK_THROWS_WITH(log_prob_rows(flow, x, 0),
                    Catch::Contains("log_prob_rows") && Catch::Contains("chunk") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(log_prob_rows(flow, Matrix<double>::Zero(3, 4), 2),
                    Catch::Contains("log_prob_rows") && Catch::Contains("3 rows"));
  Matrix<double> bad = x;
  bad(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(log_prob_rows(flow, bad, 2), Catch::Contains("nan") && Catch::Contains("column 2"));
}

TEST_CASE("summarize_log_prob: mean, standard error, median and worst rows", "[train][evaluate]") {
  // NLLs 1, 3, 2, 5, 4: mean 3, deviations −2, 0, −1, 2, 1, s² = 10 / 4, standard error
  // √(2.5 / 5) = √0.5; median 3; the lowest log densities are −5 (column 3), then −4 (column 4)
  RowVector<double> lp(5);
  lp << -1, -3, -2, -5, -4;
  const LogProbSummary s = summarize_log_prob(lp, 2);
  CHECK(s.count == 5);
  CHECK(s.mean_nll == Approx(3.0).epsilon(1e-15));
  CHECK(s.standard_error == Approx(std::sqrt(0.5)).epsilon(1e-15));
  CHECK(s.median_nll == 3.0);
  CHECK(s.worst_rows == std::vector<Index>{3, 4});
  CHECK(s.worst_log_prob == std::vector<double>{-5, -4});

  RowVector<double> even(6);
  even << -1, -3, -2, -5, -4, -10;  // NLLs sorted 1 2 3 4 5 10: median (3 + 4) / 2
  const LogProbSummary e = summarize_log_prob(even, 10);
  CHECK(e.median_nll == 3.5);
  CHECK(e.worst_rows == std::vector<Index>{5, 3, 4, 1, 2, 0});  // all six, k clamped to n

  RowVector<double> ties(3);
  ties << -1, -2, -2;
  CHECK(summarize_log_prob(ties, 1).worst_rows == std::vector<Index>{1});
  CHECK(summarize_log_prob(ties, 0).worst_rows.empty());

  RowVector<double> one(1);
  one << -0.25;
  const LogProbSummary single = summarize_log_prob(one);
  CHECK(single.mean_nll == 0.25);
  CHECK(single.median_nll == 0.25);
  CHECK(std::isinf(single.standard_error));

  RowVector<double> outside(3);
  outside << -1, -std::numeric_limits<double>::infinity(), -2;
  const LogProbSummary o = summarize_log_prob(outside, 1);
  CHECK(o.mean_nll == std::numeric_limits<double>::infinity());
  CHECK(o.worst_rows == std::vector<Index>{1});
}

TEST_CASE("summarize_log_prob rejects what it cannot summarise", "[train][evaluate][errors]") {
  CHECK_THROWS_WITH(summarize_log_prob(RowVector<double>(0)),
                    Catch::Contains("summarize_log_prob") && Catch::Contains("0 values"));
  RowVector<double> lp(3);
  lp << -1, std::numeric_limits<double>::quiet_NaN(), -2;
  CHECK_THROWS_WITH(summarize_log_prob(lp), Catch::Contains("summarize_log_prob") &&
                                                Catch::Contains("log density 1") && Catch::Contains("nan"));
  lp(1) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(summarize_log_prob(lp), Catch::Contains("log density 1") && Catch::Contains("inf"));
  lp(1) = 0;
  CHECK_THROWS_WITH(summarize_log_prob(lp, -1), Catch::Contains("worst") && Catch::Contains("-1"));
}

TEST_CASE("Trainer::evaluate is the mean NLL of log_prob_rows", "[train][evaluate]") {
  Rng rng(16);
  EvalFlow flow(StandardNormal<double>(2), Affine<double>(2));
  test::randomise_parameters(flow, rng, 0.5);
  const Matrix<double> x = test::shifted_normal(2, 50, rng, 1.0);
  Trainer trainer(flow, TrainerOptions{.progress = nullptr, .validation_batch_size = 8});
  CHECK(trainer.evaluate(x) == summarize_log_prob(log_prob_rows(flow, x, 8)).mean_nll);
}
