#include "knead/distributions/transformed_distribution.hpp"

#include <limits>
#include <numbers>
#include <thread>

#include "conditional_examples.hpp"
#include "flows.hpp"
#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// Integrates exp(log_prob) over a grid covering the samples' range with a wide margin; returns
/// the integral and the probability of each of `boxes` (x0, x1, y0, y1) by the same grid.
template <class Flow>
std::pair<double, std::vector<double>> integrate(Flow& flow, const std::vector<std::array<double, 4>>& boxes,
                                                 Rng& rng, Index cells = 500) {
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
  TransformedDistribution flow(StandardNormal<double>(2), Affine<double>(2));
  Matrix<double> x = Matrix<double>::Zero(2, 3);
  x(1, 2) = NAN;
  CHECK_THROWS_WITH(flow.log_prob(x), Catch::Contains("log_prob") && Catch::Contains("non-finite") &&
                                          Catch::Contains("(1, 2)"));
  CHECK_THROWS_WITH(flow.log_prob(Matrix<double>::Zero(3, 3)), Catch::Contains("2 rows"));
  CHECK_THROWS_WITH(flow.log_prob(Matrix<double>::Zero(2, 0)), Catch::Contains("empty batch"));
}

// ---- conditional flows ------------------------------------------------------------------------

namespace {

using ConditionalFlow = TransformedDistribution<StandardNormal<double>, test::ConditionalAffine<double>>;

ConditionalFlow random_conditional_flow(Rng& rng) {
  ConditionalFlow flow(StandardNormal<double>(2), test::ConditionalAffine<double>(2, 3));
  test::randomise_parameters(flow, rng, 0.5);
  return flow;
}

}  // namespace

TEST_CASE("A conditional flow's log_prob(x, c) is the change of variables with the context's map",
          "[distributions][conditional]") {
  Rng rng(51);
  ConditionalFlow flow = random_conditional_flow(rng);
  const auto& b = flow.bijector();
  const Matrix<double> x = test::random_batch<double>(2, 7, rng);
  const Matrix<double> c = test::random_batch<double>(3, 7, rng);
  // u = (x − B c − b) ⊙ e^{−A c};  log p(x | c) = −½‖u‖² − log 2π − Σ_i (A c)_i
  const Matrix<double> s = b.a() * c;
  Matrix<double> centred = x - b.b_matrix() * c;
  centred.colwise() -= b.b();
  const Matrix<double> u = (centred.array() * (-s.array()).exp()).matrix();
  const RowVector<double> expected =
      (-0.5 * u.colwise().squaredNorm().array() - std::log(2 * std::numbers::pi) - s.colwise().sum().array())
          .matrix();
  CHECK((flow.log_prob(x, c) - expected).cwiseAbs().maxCoeff() < 1e-12);
  CHECK(flow.context_dim() == 3);
}

TEST_CASE("A conditional flow samples one x per context column, consistently with its density",
          "[distributions][conditional]") {
  Rng rng(52);
  ConditionalFlow flow = random_conditional_flow(rng);
  const auto& b = flow.bijector();
  const Matrix<double> c = test::random_batch<double>(3, 6, rng);
  Rng draw(9), same(9);
  const Matrix<double> x = flow.sample(c, draw);
  REQUIRE(x.cols() == 6);
  Matrix<double> u;
  standard_normal(same, u, 2, 6);  // the base's draws with the same seed
  Matrix<double> expected = (u.array() * (b.a() * c).array().exp()).matrix() + b.b_matrix() * c;
  expected.colwise() += b.b();
  CHECK((x - expected).cwiseAbs().maxCoeff() < 1e-12);
  Rng again(9);
  Matrix<double> x2;
  RowVector<double> lp;
  flow.sample_and_log_prob(c, again, x2, lp);
  CHECK(x2 == x);
  CHECK((lp - flow.log_prob(x, c)).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("A conditional flow's backward gives ∂L/∂θ, ∂L/∂x and ∂L/∂c of log p(x | c)",
          "[distributions][conditional][gradients]") {
  Rng rng(53);
  ConditionalFlow flow = random_conditional_flow(rng);
  Matrix<double> x = test::random_batch<double>(2, 5, rng);
  Matrix<double> c = test::random_batch<double>(3, 5, rng);
  const RowVector<double> v = test::random_batch<double>(1, 5, rng);
  const auto loss = [&] { return flow.log_prob(x, c).dot(v); };
  flow.zero_gradients();
  RowVector<double> lp;
  flow.log_prob(x, c, lp);
  Matrix<double> grad_x, grad_c = Matrix<double>::Constant(3, 5, 99.0);  // written, not added to
  flow.backward_log_prob(v, grad_x, grad_c);
  const Vector<double> grad_theta =
      Eigen::Map<Vector<double>>(flow.gradients().data(), flow.num_parameters());
  const auto flat = [](Matrix<double>& m) { return std::span<double>(m.data(), std::size_t(m.size())); };
  const auto as_vector = [](const Matrix<double>& m) {
    return Eigen::Map<const Vector<double>>(m.data(), m.size());
  };
  CHECK(testing::relative_error(as_vector(grad_x),
                                testing::finite_difference_gradient<double>(loss, flat(x))) < 1e-7);
  CHECK(testing::relative_error(as_vector(grad_c),
                                testing::finite_difference_gradient<double>(loss, flat(c))) < 1e-7);
  CHECK(testing::relative_error(grad_theta,
                                testing::finite_difference_gradient<double>(loss, flow.parameters())) < 1e-7);

  // the mean NLL of (x, c) pairs
  flow.zero_gradients();
  const double nll = flow.mean_nll_and_backward(x, c);
  CHECK(nll == Approx(-flow.log_prob(x, c).mean()).epsilon(1e-12));
  const Vector<double> analytic = Eigen::Map<Vector<double>>(flow.gradients().data(), flow.num_parameters());
  CHECK(testing::relative_error(
            analytic, testing::finite_difference_gradient<double>([&] { return -flow.log_prob(x, c).mean(); },
                                                                  flow.parameters())) < 1e-7);

  // reparameterised samples: L = Σ w ⊙ x + Σ v ⊙ log p(x | c), the noise fixed by the seed
  const Matrix<double> w = test::random_batch<double>(2, 5, rng);
  const auto sample_loss = [&] {
    Rng fixed(17);
    Matrix<double> s;
    RowVector<double> l;
    flow.sample_and_log_prob(c, fixed, s, l);
    return s.cwiseProduct(w).sum() + l.dot(v);
  };
  flow.zero_gradients();
  Rng fixed(17);
  Matrix<double> s;
  flow.sample_and_log_prob(c, fixed, s, lp);
  flow.backward_sample_and_log_prob(w, v, grad_c);
  CHECK(testing::relative_error(Eigen::Map<Vector<double>>(flow.gradients().data(), flow.num_parameters()),
                                testing::finite_difference_gradient<double>(sample_loss, flow.parameters())) <
        1e-7);
  CHECK(testing::relative_error(as_vector(grad_c),
                                testing::finite_difference_gradient<double>(sample_loss, flat(c))) < 1e-7);
}

TEST_CASE("A conditional flow refuses calls without a context and bad contexts",
          "[distributions][conditional][errors]") {
  Rng rng(54);
  DynamicChain<double> chain(2);
  chain.push_back(Affine<double>(2)).push_back(test::ConditionalAffine<double>(2, 1));
  TransformedDistribution flow(StandardNormal<double>(2), chain);
  const Matrix<double> x = test::random_batch<double>(2, 4, rng);
  CHECK_THROWS_WITH(flow.log_prob(x), Catch::Contains("TransformedDistribution::log_prob") &&
                                          Catch::Contains("conditional") && Catch::Contains("context"));
  CHECK_THROWS_WITH(flow.sample(3, rng),
                    Catch::Contains("TransformedDistribution::sample") && Catch::Contains("conditional"));
  CHECK_THROWS_WITH(flow.log_prob(x, Matrix<double>::Zero(2, 4)),
                    Catch::Contains("TransformedDistribution::log_prob") && Catch::Contains("1x4") &&
                        Catch::Contains("2x4"));
  Matrix<double> c = Matrix<double>::Zero(1, 4);
  c(0, 3) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(flow.log_prob(x, c), Catch::Contains("TransformedDistribution::log_prob") &&
                                             Catch::Contains("context") && Catch::Contains("(0, 3)"));
  CHECK_THROWS_WITH(flow.sample(c, rng), Catch::Contains("TransformedDistribution::sample") &&
                                             Catch::Contains("context") && Catch::Contains("(0, 3)"));
  c(0, 3) = 0.5;
  CHECK(flow.log_prob(x, c).size() == 4);
}

// ---- data-dependent initialisation -----------------------------------------------------------

TEST_CASE("TransformedDistribution::initialize initialises the bijector on the data",
          "[distributions][initialize]") {
  Rng rng(55);
  Affine<double> affine(2);
  test::randomise_parameters(affine, rng, 0.5);
  TransformedDistribution flow(StandardNormal<double>(2), Chain(test::MeanShift<double>(2), affine));
  CHECK_FALSE(flow.initialized());
  const Matrix<double> x = test::shifted_normal(2, 8, rng, 4.0);
  flow.initialize(x);
  CHECK(flow.initialized());
  const auto& shift = flow.bijector().part<0>();
  REQUIRE(shift.initialized_on.size() == 1);
  const Matrix<double> reached = inverse(affine, x);
  CHECK((shift.initialized_on[0] - reached).cwiseAbs().maxCoeff() < 1e-12);
  // the shift maps what reaches it to mean zero
  CHECK((shift.shift() - reached.rowwise().mean()).cwiseAbs().maxCoeff() < 1e-12);
  Matrix<double> bad = x;
  bad(0, 1) = NAN;
  CHECK_THROWS_WITH(flow.initialize(bad),
                    Catch::Contains("TransformedDistribution::initialize") && Catch::Contains("(0, 1)"));
}

// ---- one check policy at the boundary -----------------------------------------------------------

namespace {

using ChainFlow = TransformedDistribution<StandardNormal<double>, DynamicChain<double>>;

/// A 2-D flow of each kind: the builder's flows and single bijectors of every leaf kind.
std::vector<std::pair<std::string, ChainFlow>> flows_of_every_kind() {
  std::vector<std::pair<std::string, ChainFlow>> flows;
  for (const FlowKind kind :
       {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice, FlowKind::mlp}) {
    const FlowSpec<double> spec{
        .kind = kind, .dim = 2, .layers = 2, .hidden = {8}, .identity_init = false, .seed = 3};
    flows.emplace_back(std::string(to_string(kind)), ChainFlow(StandardNormal<double>(2), make_flow(spec)));
  }
  const auto one = [&](std::string name, AnyBijector<double> part) {
    DynamicChain<double> chain(2);
    chain.push_back(std::move(part));
    flows.emplace_back(std::move(name), ChainFlow(StandardNormal<double>(2), std::move(chain)));
  };
  one("Permute", Permute<double>(std::vector<Index>{1, 0}));
  one("Affine", Affine<double>(2));
  one("Invert<Affine>", Invert(Affine<double>(2)));
  one("TriangularAffine", TriangularAffine<double>(2));
  one("PReLU", PReLU<double>(2));
  one("LeakyReLU", LeakyReLU<double>(2, 0.5));
  one("BatchNorm", BatchNorm<double>(2));
  one("AffineCoupling", AffineCoupling<double>(2, 1));
  one("AdditiveCoupling", AdditiveCoupling<double>(2, 1));
  return flows;
}

}  // namespace

TEST_CASE("Every kind of flow refuses a non-finite value in x with the same clear error",
          "[distributions][errors]") {
  Rng rng(56);
  for (auto& [name, flow] : flows_of_every_kind()) {
    for (const double bad :
         {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
          -std::numeric_limits<double>::infinity()}) {
      INFO(name << " with " << bad);
      Matrix<double> x = test::random_batch<double>(2, 4, rng);
      x(1, 2) = bad;
      const std::string log_prob = "TransformedDistribution::log_prob: input batch has a non-finite value";
      const std::string initialize =
          "TransformedDistribution::initialize: input batch has a non-finite value";
      CHECK_THROWS_WITH(flow.log_prob(x), Catch::Contains(log_prob) && Catch::Contains("at (1, 2)"));
      CHECK_THROWS_AS(flow.log_prob(x), std::invalid_argument);
      CHECK_THROWS_WITH(flow.mean_nll_and_backward(x),
                        Catch::Contains(log_prob) && Catch::Contains("at (1, 2)"));
      CHECK_THROWS_WITH(flow.initialize(x), Catch::Contains(initialize) && Catch::Contains("at (1, 2)"));
    }
  }
}

TEST_CASE("A flow refuses non-finite samples and non-finite gradients at its backward entries",
          "[distributions][errors]") {
  Rng rng(57);
  Vector<double> huge(2), none;
  huge << 1000.0, 0.0;  // e^1000 overflows
  TransformedDistribution overflowing(StandardNormal<double>(2), Scale<double>(huge, none));
  CHECK_THROWS_WITH(overflowing.sample(3, rng), Catch::Contains("TransformedDistribution::sample: result") &&
                                                    Catch::Contains("non-finite") &&
                                                    Catch::Contains("(0, 0)"));
  CHECK_THROWS_WITH(
      overflowing.sample_and_log_prob(3, rng),
      Catch::Contains("TransformedDistribution::sample_and_log_prob: result") && Catch::Contains("(0, 0)"));

  TransformedDistribution wide_base(DiagonalNormal<double>(Vector<double>::Zero(2), huge), Affine<double>(2));
  CHECK_THROWS_WITH(wide_base.sample(3, rng),
                    Catch::Contains("TransformedDistribution::sample: noise drawn from the base") &&
                        Catch::Contains("(0, 0)"));

  TransformedDistribution flow(StandardNormal<double>(2), Affine<double>(2));
  const Matrix<double> x = test::random_batch<double>(2, 3, rng);
  RowVector<double> grad_log_prob = RowVector<double>::Ones(3);
  Matrix<double> grad_x;
  (void)flow.log_prob(x);
  grad_log_prob(1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(flow.backward_log_prob(grad_log_prob, grad_x),
                    Catch::Contains("TransformedDistribution::backward_log_prob: grad_log_prob") &&
                        Catch::Contains("(0, 1)"));
  CHECK_THROWS_WITH(flow.backward_log_prob(RowVector<double>::Ones(4), grad_x),
                    Catch::Contains("backward_log_prob") && Catch::Contains("1x3"));
  (void)flow.sample_and_log_prob(3, rng);
  Matrix<double> bad_grad_x = Matrix<double>::Zero(2, 3);
  bad_grad_x(1, 0) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(flow.backward_sample_and_log_prob(bad_grad_x, RowVector<double>::Zero(3)),
                    Catch::Contains("TransformedDistribution::backward_sample_and_log_prob: grad_x") &&
                        Catch::Contains("(1, 0)"));
}

TEST_CASE("Two threads sharing one flow get its values or a clear logic_error, never wrong values",
          "[distributions][threads][errors]") {
  // The passes write workspaces the flow owns: two threads inside one flow at once would mix
  // their intermediate values. Each thread evaluates its own batch (of its own size) many times;
  // every value returned must be the value the flow gives that batch alone.
  Rng rng(31);
  FlowSpec<double> spec;
  spec.kind = FlowKind::maf;
  spec.layers = 3;
  spec.hidden = {64, 64};
  spec.identity_init = false;
  spec.seed = 9;
  TransformedDistribution flow(StandardNormal<double>(2), make_flow(spec));
  test::randomise_parameters(flow, rng, 0.3);
  const std::array<Matrix<double>, 2> batches{test::random_batch<double>(2, 200, rng),
                                              test::random_batch<double>(2, 333, rng)};
  const std::array<RowVector<double>, 2> expected{flow.log_prob(batches[0]), flow.log_prob(batches[1])};

  std::array<int, 2> wrong{0, 0}, refused{0, 0}, right{0, 0};
  std::array<std::string, 2> message;
  auto hammer = [&](int t) {
    RowVector<double> out;
    for (int i = 0; i < 400; ++i) {
      try {
        flow.log_prob(batches[std::size_t(t)], out);
        (out == expected[std::size_t(t)] ? right : wrong)[std::size_t(t)]++;
      } catch (const std::logic_error& e) {
        refused[std::size_t(t)]++;
        message[std::size_t(t)] = e.what();
      }
    }
  };
  std::thread first(hammer, 0), second(hammer, 1);
  first.join();
  second.join();
  CHECK(wrong[0] + wrong[1] == 0);
  CHECK(right[0] + right[1] > 0);
  for (int t = 0; t < 2; ++t)
    if (refused[std::size_t(t)] > 0) {
      CHECK_THAT(message[std::size_t(t)], Catch::Contains("TransformedDistribution::log_prob") &&
                                              Catch::Contains("one flow object per thread (copy it)"));
    }
  // the refusals leave the flow as it was
  CHECK(flow.log_prob(batches[0]) == expected[0]);
  // a copy per thread is the supported way: no refusal, the same values
  auto copy = flow;
  bool copy_right = false;  // Catch2's assertions are for the test's thread only
  std::thread other([&] { copy_right = copy.log_prob(batches[1]) == expected[1]; });
  const bool flow_right = flow.log_prob(batches[0]) == expected[0];
  other.join();
  CHECK(copy_right);
  CHECK(flow_right);
}

TEST_CASE("Large requests run in passes of pass_columns columns with the same values",
          "[distributions][large]") {
  // sample() always, log_prob() and sample_and_log_prob() under NoGrad, split a request of more
  // than pass_columns columns into passes; a differentiable pass (no NoGrad) runs whole. Both must
  // give the same values, bit for bit, and the same noise from the same seed.
  using Flow = TransformedDistribution<StandardNormal<double>, DynamicChain<double>>;
  Rng rng(5);
  FlowSpec<double> spec;
  spec.kind = FlowKind::maf;
  spec.layers = 2;
  spec.hidden = {16, 16};
  spec.identity_init = false;
  Flow flow(StandardNormal<double>(2), make_flow(spec));
  test::randomise_parameters(flow, rng, 0.3);
  const Index n = 2 * Flow::pass_columns + 123;

  Rng whole_rng(8), parts_rng(8), sample_rng(8);
  const auto whole = flow.sample_and_log_prob(n, whole_rng);  // one differentiable pass
  ValueAndLogDet<double> parts;
  {
    const NoGrad no_grad;
    parts = flow.sample_and_log_prob(n, parts_rng);
  }
  CHECK(parts.value == whole.value);
  CHECK(parts.log_det == whole.log_det);
  CHECK(flow.sample(n, sample_rng) == whole.value);

  const RowVector<double> log_prob = flow.log_prob(whole.value);
  RowVector<double> log_prob_in_parts;
  {
    const NoGrad no_grad;
    log_prob_in_parts = flow.log_prob(whole.value);
  }
  CHECK(log_prob_in_parts == log_prob);
}

TEST_CASE("A sample count whose result cannot fit in memory is refused before allocating",
          "[distributions][large][errors]") {
  Rng rng(3);
  auto flow = test::make_random_flow<test::AffineFlow>(rng);
  const Index huge = Index(1) << 50;  // 2^50 samples of dimension 2: 16 PiB
  CHECK_THROWS_WITH(flow.sample(huge, rng), Catch::Contains("TransformedDistribution::sample") &&
                                                Catch::Contains("1125899906842624 samples of dimension 2") &&
                                                Catch::Contains("bytes for the result alone"));
  Matrix<double> x;
  RowVector<double> log_prob;
  CHECK_THROWS_WITH(flow.sample_and_log_prob(huge, rng, x, log_prob),
                    Catch::Contains("TransformedDistribution::sample_and_log_prob") &&
                        Catch::Contains("bytes for the result alone"));
  CHECK_NOTHROW(flow.sample(10, rng, x));  // refused before anything changed
}

TEST_CASE("A pass kept for backward on a batch too large for memory names itself and the size it needed",
          "[distributions][large][errors]") {
  // A MAF with 2^16 hidden units on 2^22 columns (trained mode: its activations are kept for
  // backward, so the batch runs whole) needs 2^16 x 2^22 floats = 1.1 TB for one activation: the
  // allocation fails. The error is still a std::bad_alloc, and says which pass and how much.
  FlowSpec<float> spec;
  spec.kind = FlowKind::maf;
  spec.layers = 1;
  spec.hidden = {Index(1) << 16};
  TransformedDistribution flow(StandardNormal<float>(2), make_flow(spec));
  const Matrix<float> small = Matrix<float>::Constant(2, 3, 0.25f);
  RowVector<float> before, after;
  flow.log_prob(small, before);
  {
    const Matrix<float> huge = Matrix<float>::Zero(2, Index(1) << 22);
    RowVector<float> out;
    CHECK_THROWS_AS(flow.log_prob(huge, out), std::bad_alloc);
    CHECK_THROWS_WITH(flow.log_prob(huge, out), Catch::Contains("TransformedDistribution::log_prob") &&
                                                    Catch::Contains("a batch of 4194304 columns") &&
                                                    Catch::Contains("65536 x 4194304 values (1.1 TB)"));
  }
  flow.log_prob(small, after);  // still usable, with the same values
  CHECK(after == before);
}

TEST_CASE(
    "A flow of a conditional Maf: log_prob(x, c) is the change of variables with MADE's shift and scale",
    "[distributions][conditional][maf]") {
  Rng rng(91);
  MafOptions<double> options;
  options.hidden = {8, 8};
  options.guard = {LogScaleGuardKind::none, 1.0};
  options.context_dim = 2;
  TransformedDistribution flow(StandardNormal<double>(3), Maf<double>(3, options));
  test::randomise_parameters(flow, rng, 0.4);
  CHECK(flow.context_dim() == 2);
  const Matrix<double> x = test::random_batch<double>(3, 9, rng);
  const Matrix<double> c = test::random_batch<double>(2, 9, rng);
  // MADE's outputs at (x, c): μ (rows 0..2) and α (rows 3..5, no guard); u = (x − μ) e^{−α},
  // log p(x | c) = −½‖u‖² − (3/2) log 2π − Σ_i α_i
  Made<double> made = flow.bijector().made();  // a copy: the flow's own is left as it is
  Matrix<double> params;
  made.forward_with_context(x, c, params);
  const Matrix<double> mu = params.topRows(3), alpha = params.bottomRows(3);
  const Matrix<double> u = ((x - mu).array() * (-alpha.array()).exp()).matrix();
  const RowVector<double> expected = (-0.5 * u.colwise().squaredNorm().array() -
                                      1.5 * std::log(2 * std::numbers::pi) - alpha.colwise().sum().array())
                                         .matrix();
  CHECK((flow.log_prob(x, c) - expected).cwiseAbs().maxCoeff() < 1e-12);
  // another context gives another density of the same x
  const Matrix<double> other = test::random_batch<double>(2, 9, rng);
  CHECK((flow.log_prob(x, other) - expected).cwiseAbs().minCoeff() > 1e-6);
  // samples for a context are mapped back to the noise that made them, with the same density
  Rng draw(5);
  Matrix<double> samples;
  RowVector<double> log_prob;
  flow.sample_and_log_prob(c, draw, samples, log_prob);
  CHECK((flow.log_prob(samples, c) - log_prob).cwiseAbs().maxCoeff() < 1e-10);
}
