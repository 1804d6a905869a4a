#include "knead/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "conditional_examples.hpp"
#include "knead/bijectors/act_norm.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/data/two_moons.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/optim/sgd.hpp"
#include "support.hpp"

using namespace knead;

namespace {

using Flow = TransformedDistribution<StandardNormal<double>, Affine<double>>;

Flow make_flow(Index d = 2) { return Flow(StandardNormal<double>(d), Affine<double>(d)); }

/// N samples of a 2-D Gaussian with means μ, standard deviations σ and correlation ρ.
template <class T>
Matrix<T> correlated_gaussian(Index n, Rng& rng, double mu1, double mu2, double s1, double s2, double rho) {
  const Matrix<double> z = test::random_batch<double>(2, n, rng);
  Matrix<double> x(2, n);
  x.row(0) = (s1 * z.row(0)).array() + mu1;
  x.row(1) = (s2 * (rho * z.row(0) + std::sqrt(1 - rho * rho) * z.row(1))).array() + mu2;
  return x.cast<T>();
}

using test::copy_of;
using test::shifted_normal;

bool all_finite(std::span<double> s) {
  return std::ranges::all_of(s, [](double v) { return std::isfinite(v); });
}

/// A flow wrapper that can poison a chosen step and records the training mode of each call.
struct ProbeModel {
  using Scalar = double;
  Flow flow = make_flow();
  Index calls = 0;
  Index nan_loss_at = 0;       // the loss of this call is NaN (0: never)
  Index nan_gradient_at = 0;   // a gradient of this call is NaN
  Index huge_gradient_at = 0;  // a gradient of this call is the largest finite double
  bool training_ = true;
  std::vector<bool> modes_in_training_calls, modes_in_log_prob_calls;
  std::vector<bool> no_grad_in_training_calls, no_grad_in_log_prob_calls;
  std::vector<std::vector<double>> batches;  // row 0 of every training batch

  [[nodiscard]] Index dim() const { return flow.dim(); }
  double mean_nll_and_backward(MatrixCRef<double> x) {
    ++calls;
    modes_in_training_calls.push_back(training_);
    no_grad_in_training_calls.push_back(NoGrad::active());
    batches.emplace_back(x.row(0).begin(), x.row(0).end());
    double loss = flow.mean_nll_and_backward(x);
    if (calls == nan_loss_at) loss = std::numeric_limits<double>::quiet_NaN();
    if (calls == nan_gradient_at) flow.gradients()[1] = std::numeric_limits<double>::quiet_NaN();
    if (calls == huge_gradient_at) flow.gradients()[2] = std::numeric_limits<double>::max();
    return loss;
  }
  void log_prob(MatrixCRef<double> x, RowVector<double>& out) {
    modes_in_log_prob_calls.push_back(training_);
    no_grad_in_log_prob_calls.push_back(NoGrad::active());
    flow.log_prob(x, out);
  }
  std::span<double> parameters() { return flow.parameters(); }
  std::span<double> gradients() { return flow.gradients(); }
  void zero_gradients() { flow.zero_gradients(); }
  void set_training(bool on) { training_ = on; }
  [[nodiscard]] bool training() const { return training_; }
};
static_assert(TrainableModel<ProbeModel>);
static_assert(TrainableModel<Flow>);

TrainerOptions quiet(TrainerOptions o = {}) {
  o.progress = nullptr;
  return o;
}

/// Redirects std::cerr into a string for the lifetime of the object.
class CaptureStderr {
 public:
  CaptureStderr() : old_(std::cerr.rdbuf(buffer_.rdbuf())) {}
  ~CaptureStderr() { std::cerr.rdbuf(old_); }
  CaptureStderr(const CaptureStderr&) = delete;
  CaptureStderr& operator=(const CaptureStderr&) = delete;
  [[nodiscard]] std::string text() const { return buffer_.str(); }

 private:
  std::ostringstream buffer_;
  std::streambuf* old_;
};

}  // namespace

TEMPLATE_TEST_CASE("Training reaches the likelihood bound of a correlated Gaussian", "[train]", float,
                   double) {
  using T = TestType;
  // A diagonal affine flow cannot express the correlation: its best expected NLL is the true
  // entropy H plus the mutual information I of the two coordinates (the KL divergence to the
  // product of the marginals), H = log(2πe) + ½ log det Σ, I = −½ log(1 − ρ²).
  const double mu1 = 2, mu2 = -1, s1 = 3, s2 = 0.5, rho = 0.8;
  const double entropy =
      std::log(2 * std::numbers::pi * std::numbers::e) + 0.5 * std::log(s1 * s1 * s2 * s2 * (1 - rho * rho));
  const double mutual_information = -0.5 * std::log(1 - rho * rho);
  Rng rng(1);
  const Matrix<T> train = correlated_gaussian<T>(2000, rng, mu1, mu2, s1, s2, rho);
  const Matrix<T> test = correlated_gaussian<T>(20000, rng, mu1, mu2, s1, s2, rho);

  auto check = [&](auto& flow) {
    Trainer trainer(flow, Adam<T>(flow, {.lr = LrSchedule::cosine(0.05, 600, 20)}),
                    quiet({.batch_size = 128, .max_steps = 600, .seed = 3, .validation_fraction = 0.1}));
    const double before = trainer.evaluate(test);
    const TrainingHistory h = trainer.fit(train);
    const double after = trainer.evaluate(test);
    INFO("NLL before " << before << ", after " << after << ", bound " << entropy + mutual_information);
    CHECK(h.steps == 600);
    CHECK(h.stop_reason == StopReason::max_steps);
    CHECK(before > entropy + mutual_information + 1);
    CHECK(after < entropy + mutual_information + 0.05);
    CHECK(after > entropy - 0.05);  // no model beats the entropy (up to sampling error ~0.01)
  };
  SECTION("Affine on a standard normal") {
    TransformedDistribution flow(StandardNormal<T>(2), Affine<T>(2));
    check(flow);
  }
  SECTION("a Chain of Affine layers on a learnable diagonal normal") {
    TransformedDistribution flow(DiagonalNormal<T>(2), Chain(Affine<T>(2), Affine<T>(2)));
    check(flow);
  }
}

TEST_CASE("Early stopping restores the parameters of the best validation step", "[train][early-stopping]") {
  // Training data come from N(4, I), validation data from N(2, I): starting from N(0, I) the
  // validation NLL falls while the shift passes 2, then rises, so patience runs out and the best
  // parameters lie in the middle of the run.
  Rng rng(2);
  const Matrix<double> train = shifted_normal(2, 500, rng, 4.0);
  const Matrix<double> validation = shifted_normal(2, 300, rng, 2.0);
  Flow flow = make_flow();
  std::vector<std::vector<double>> params_at{{}};  // params_at[s] after step s
  Trainer trainer(flow, Adam<double>(flow, {.lr = 0.02}),
                  quiet({.batch_size = 64,
                         .max_steps = 2000,
                         .validation_every = 5,
                         .patience = 4,
                         .on_step = [&](const StepInfo& info) {
                           params_at.push_back(copy_of(flow.parameters()));
                           CHECK(Index(params_at.size()) == info.step + 1);
                           return StepAction::proceed;
                         }}));
  const TrainingHistory h = trainer.fit(train, validation);
  CHECK(h.stop_reason == StopReason::early_stopping);
  REQUIRE(h.steps < 2000);
  REQUIRE(h.best_step > 5);
  CHECK(h.best_step < h.steps);
  CHECK(h.best_step % 5 == 0);
  CHECK(h.restored_best);
  // the run stopped after `patience` evaluations without improvement
  REQUIRE(h.validation.size() >= 5);
  CHECK(h.validation.back().step == h.steps);
  CHECK(h.validation[h.validation.size() - 5].step == h.best_step);
  for (const auto& record : h.validation) CHECK(record.nll >= *h.best_validation_nll);
  // the model ends with exactly the parameters it had after the best step
  CHECK(copy_of(flow.parameters()) == params_at[std::size_t(h.best_step)]);
  CHECK(copy_of(flow.parameters()) != params_at.back());
  // the recorded validation NLL is the closed-form Gaussian NLL of those parameters:
  // −log p(x) = Σ_i [½ ((x_i − b_i) e^{−s_i})² + s_i + ½ log 2π]
  const Vector<double> s = flow.bijector().log_scale(), b = flow.bijector().shift();
  double nll = 0;
  for (Index j = 0; j < validation.cols(); ++j)
    for (Index i = 0; i < 2; ++i) {
      const double z = (validation(i, j) - b(i)) * std::exp(-s(i));
      nll += 0.5 * z * z + s(i) + 0.5 * std::log(2 * std::numbers::pi);
    }
  CHECK(*h.best_validation_nll == Approx(nll / double(validation.cols())).epsilon(1e-12));
  CHECK(trainer.evaluate(validation) == Approx(*h.best_validation_nll).epsilon(1e-12));
}

TEST_CASE("Without restore_best the final parameters are the last ones", "[train][early-stopping]") {
  Rng rng(2);
  const Matrix<double> train = shifted_normal(2, 500, rng, 4.0);
  const Matrix<double> validation = shifted_normal(2, 300, rng, 2.0);
  Flow flow = make_flow();
  std::vector<double> last;
  Trainer trainer(flow, Adam<double>(flow, {.lr = 0.02}),
                  quiet({.batch_size = 64,
                         .max_steps = 2000,
                         .validation_every = 5,
                         .patience = 4,
                         .restore_best = false,
                         .on_step = [&](const StepInfo&) {
                           last = copy_of(flow.parameters());
                           return StepAction::proceed;
                         }}));
  const TrainingHistory h = trainer.fit(train, validation);
  CHECK(h.stop_reason == StopReason::early_stopping);
  CHECK_FALSE(h.restored_best);
  CHECK(h.best_step < h.steps);
  CHECK(copy_of(flow.parameters()) == last);
}

TEST_CASE("A non-finite loss or gradient stops training and keeps the last finite parameters",
          "[train][errors]") {
  Rng rng(4);
  const Matrix<double> data = shifted_normal(2, 200, rng, 1.0);
  for (const int variant : {0, 1}) {
    CAPTURE(variant);
    ProbeModel model;
    (variant == 0 ? model.nan_loss_at : model.nan_gradient_at) = 5;
    std::vector<std::vector<double>> params_at{copy_of(model.parameters())};
    Trainer trainer(model, Adam<double>(model, {.lr = 0.1}),
                    quiet({.batch_size = 32, .max_steps = 50, .on_step = [&](const StepInfo&) {
                             params_at.push_back(copy_of(model.parameters()));
                             return StepAction::proceed;
                           }}));
    try {
      trainer.fit(data);
      FAIL("training went on past a non-finite " << (variant == 0 ? "loss" : "gradient"));
    } catch (const TrainingError& e) {
      CHECK(e.step() == 5);
      CHECK_THAT(e.what(), Catch::Contains("Trainer::fit") && Catch::Contains("step 5") &&
                               Catch::Contains(variant == 0 ? "loss is non-finite (nan)"
                                                            : "gradient of parameter 1 is non-finite (nan)"));
    }
    REQUIRE(params_at.size() == 5);  // steps 0 (initial) to 4
    CHECK(all_finite(model.parameters()));
    CHECK(copy_of(model.parameters()) == params_at[4]);
    CHECK(params_at[4] != params_at[0]);  // training did move before the bad step
    CHECK(trainer.optimizer().step_count() == 4);
  }
}

TEST_CASE("A poisoned batch stops training at that step", "[train][errors]") {
  // The callback overwrites the training data (which fit reads in place) after step 6, so step 7
  // meets values whose squares overflow: log p = −∞.
  Rng rng(4);
  Matrix<double> train = shifted_normal(2, 200, rng, 1.0);
  const Matrix<double> validation = shifted_normal(2, 50, rng, 1.0);
  Flow flow = make_flow();
  std::vector<double> after_step_6;
  Trainer trainer(
      flow, Adam<double>(flow, {.lr = 0.05}),
      quiet({.batch_size = 16, .max_steps = 20, .validation_every = 2, .on_step = [&](const StepInfo& info) {
               if (info.step == 6) {
                 after_step_6 = copy_of(flow.parameters());
                 train.setConstant(1e300);
               }
               return StepAction::proceed;
             }}));
  CHECK_THROWS_MATCHES(
      trainer.fit(train, validation), TrainingError,
      Catch::Matchers::Predicate<TrainingError>([](const TrainingError& e) { return e.step() == 7; }));
  CHECK(copy_of(flow.parameters()) == after_step_6);
  CHECK(all_finite(flow.parameters()));
}

TEST_CASE("An update that would make a parameter non-finite is undone", "[train][errors]") {
  Rng rng(4);
  const Matrix<double> data = shifted_normal(2, 100, rng, 0.0);
  ProbeModel model;
  model.huge_gradient_at = 3;  // finite, but lr · max overflows
  std::vector<double> after_step_2;
  Trainer trainer(model, Sgd<double>(model, {.lr = 2.0}),
                  quiet({.batch_size = 10, .max_steps = 10, .on_step = [&](const StepInfo& info) {
                           if (info.step == 2) after_step_2 = copy_of(model.parameters());
                           return StepAction::proceed;
                         }}));
  CHECK_THROWS_WITH(trainer.fit(data),
                    Catch::Contains("step 3") && Catch::Contains("parameter 2 non-finite"));
  CHECK(copy_of(model.parameters()) == after_step_2);
}

TEST_CASE("The same seed gives bit-identical parameters", "[train]") {
  Rng rng(6);
  const Matrix<double> data = correlated_gaussian<double>(600, rng, 1, 2, 1.5, 0.7, 0.3);
  auto run = [&](std::uint64_t seed) {
    TransformedDistribution flow(DiagonalNormal<double>(2), Chain(Affine<double>(2), Shift<double>(2)));
    Trainer trainer(flow, Adam<double>(flow, {.lr = LrSchedule::cosine(0.05, 120, 10), .weight_decay = 1e-3}),
                    quiet({.batch_size = 50,
                           .max_steps = 120,
                           .seed = seed,
                           .validation_fraction = 0.2,
                           .validation_every = 10,
                           .max_gradient_norm = 1.0}));
    const TrainingHistory h = trainer.fit(data);
    return std::pair(copy_of(flow.parameters()), h.train_loss);
  };
  const auto [params_a, loss_a] = run(17);
  const auto [params_b, loss_b] = run(17);
  const auto [params_c, loss_c] = run(18);
  CHECK(params_a == params_b);
  CHECK(loss_a == loss_b);
  CHECK(params_a != params_c);
  CHECK(loss_a != loss_c);
}

TEST_CASE("Validation runs in evaluation mode, training in training mode", "[train]") {
  Rng rng(8);
  const Matrix<double> data = shifted_normal(2, 100, rng, 0.5);
  for (const bool initial_mode : {true, false}) {
    ProbeModel model;
    model.training_ = initial_mode;
    Trainer trainer(model, Adam<double>(model),
                    quiet({.batch_size = 20,
                           .max_steps = 12,
                           .validation_fraction = 0.3,
                           .validation_every = 4,
                           .validation_batch_size = 7}));
    const TrainingHistory h = trainer.fit(data);
    CHECK(model.training() == initial_mode);  // put back as it was
    REQUIRE(model.modes_in_training_calls.size() == 12);
    for (const bool mode : model.modes_in_training_calls) CHECK(mode);
    // evaluations at steps 4, 8, 12, each over 30 columns in chunks of at most 7 (5 calls)
    REQUIRE(h.validation.size() == 3);
    CHECK(h.validation[0].step == 4);
    CHECK(h.validation[2].step == 12);
    CHECK(model.modes_in_log_prob_calls.size() == 15);
    for (const bool mode : model.modes_in_log_prob_calls) CHECK_FALSE(mode);
    // validation records nothing to differentiate, training does
    CHECK(model.no_grad_in_log_prob_calls == std::vector<bool>(15, true));
    CHECK(model.no_grad_in_training_calls == std::vector<bool>(12, false));
  }
}

TEST_CASE("Validation runs every K steps and at the last step", "[train]") {
  Rng rng(8);
  const Matrix<double> data = shifted_normal(3, 80, rng, 0.5);
  Flow flow = make_flow(3);
  Trainer trainer(
      flow, quiet({.batch_size = 16, .max_steps = 23, .validation_fraction = 0.25, .validation_every = 10}));
  const TrainingHistory h = trainer.fit(data);
  REQUIRE(h.validation.size() == 3);
  CHECK(h.validation[0].step == 10);
  CHECK(h.validation[1].step == 20);
  CHECK(h.validation[2].step == 23);
  CHECK(h.train_loss.size() == 23);
  CHECK(h.seconds >= 0);
  // no validation: no best step
  Flow other = make_flow(3);
  const TrainingHistory none = Trainer(other, quiet({.batch_size = 16, .max_steps = 5})).fit(data);
  CHECK(none.validation.empty());
  CHECK(none.best_step == 0);
  CHECK_FALSE(none.best_validation_nll);
  CHECK_FALSE(none.restored_best);
}

TEST_CASE("The callback sees every step and can stop training", "[train]") {
  Rng rng(8);
  const Matrix<double> data = shifted_normal(2, 64, rng, 0.5);
  Flow flow = make_flow();
  std::vector<Index> steps;
  std::vector<double> losses;
  Trainer trainer(
      flow, Adam<double>(flow, {.lr = LrSchedule::step(0.1, 3, 0.5)}),
      quiet({.batch_size = 8, .max_steps = 100, .on_step = [&](const StepInfo& info) {
               steps.push_back(info.step);
               losses.push_back(info.train_loss);
               CHECK(info.max_steps == 100);
               CHECK(info.learning_rate == Approx(0.1 * std::pow(0.5, double((info.step - 1) / 3))));
               return info.step == 7 ? StepAction::stop : StepAction::proceed;
             }}));
  const TrainingHistory h = trainer.fit(data);
  CHECK(h.stop_reason == StopReason::callback);
  CHECK(h.steps == 7);
  CHECK(steps == std::vector<Index>{1, 2, 3, 4, 5, 6, 7});
  CHECK(h.train_loss == losses);
  CHECK(trainer.optimizer().step_count() == 7);
}

TEST_CASE("Gradient clipping limits every update", "[train]") {
  // plain SGD with lr 1: each update is −clip(g), so ‖Δθ‖ = min(‖g‖, c)
  Rng rng(8);
  const Matrix<double> data = shifted_normal(2, 64, rng, 3.0);
  Flow flow = make_flow();
  const double c = 0.05;
  std::vector<double> previous = copy_of(flow.parameters());
  int clipped = 0;
  Trainer trainer(
      flow, Sgd<double>(flow, {.lr = 1.0}),
      quiet({.batch_size = 16, .max_steps = 30, .max_gradient_norm = c, .on_step = [&](const StepInfo& info) {
               const std::vector<double> now = copy_of(flow.parameters());
               double moved = 0;
               for (std::size_t i = 0; i < now.size(); ++i) moved += std::pow(now[i] - previous[i], 2);
               CHECK(std::sqrt(moved) == Approx(std::min(info.gradient_norm, c)).epsilon(1e-12));
               clipped += info.gradient_norm > c;
               previous = now;
               return StepAction::proceed;
             }}));
  trainer.fit(data);
  CHECK(clipped > 0);
}

TEST_CASE("Progress lines go to stderr unless silenced", "[train][progress]") {
  Rng rng(8);
  const Matrix<double> data = shifted_normal(2, 64, rng, 0.5);
  const TrainerOptions options{.batch_size = 16,
                               .max_steps = 10,
                               .validation_fraction = 0.25,
                               .validation_every = 5,
                               .progress_every = 5};
  {
    Flow flow = make_flow();
    CaptureStderr captured;
    Trainer(flow, options).fit(data);
    const std::string text = captured.text();
    CHECK_THAT(text, Catch::Contains("step 5/10") && Catch::Contains("step 10/10") &&
                         Catch::Contains("train NLL") && Catch::Contains("val NLL") &&
                         Catch::Contains("steps/s") && Catch::Contains("ETA") &&
                         Catch::Contains("training stopped after 10 steps"));
  }
  {
    Flow flow = make_flow();
    std::ostringstream elsewhere;
    TrainerOptions to_stream = options;
    to_stream.progress = &elsewhere;
    CaptureStderr captured;
    Trainer(flow, to_stream).fit(data);
    CHECK(captured.text().empty());
    CHECK_THAT(elsewhere.str(), Catch::Contains("step 10/10"));
  }
  {
    Flow flow = make_flow();
    CaptureStderr captured;
    Trainer(flow, quiet(options)).fit(data);
    CHECK(captured.text().empty());
  }
}

TEST_CASE("The trainer rejects bad data before training", "[train][errors]") {
  Rng rng(8);
  Matrix<double> data = shifted_normal(2, 40, rng, 0.5);
  Flow flow = make_flow();
  const std::vector<double> initial = copy_of(flow.parameters());
  Trainer trainer(flow, quiet({.batch_size = 8, .max_steps = 5}));
  CHECK_THROWS_WITH(trainer.fit(shifted_normal(3, 40, rng, 0.0)),
                    Catch::Contains("Trainer::fit") && Catch::Contains("training data has 3 rows") &&
                        Catch::Contains("expected 2 rows"));
  CHECK_THROWS_WITH(trainer.fit(data, shifted_normal(1, 10, rng, 0.0)),
                    Catch::Contains("Trainer::fit") && Catch::Contains("validation data has 1 rows") &&
                        Catch::Contains("expected 2 rows"));
  CHECK_THROWS_WITH(trainer.fit(Matrix<double>(2, 0)),
                    Catch::Contains("Trainer::fit") && Catch::Contains("empty"));
  data(1, 23) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(trainer.fit(data), Catch::Contains("Trainer::fit") && Catch::Contains("training data") &&
                                           Catch::Contains("inf") && Catch::Contains("column 23"));
  Matrix<double> validation = shifted_normal(2, 10, rng, 0.0);
  validation(0, 7) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(
      trainer.fit(shifted_normal(2, 10, rng, 0.0), validation),
      Catch::Contains("validation data") && Catch::Contains("nan") && Catch::Contains("column 7"));
  CHECK_THROWS_WITH(trainer.evaluate(shifted_normal(4, 3, rng, 0.0)),
                    Catch::Contains("Trainer::evaluate") && Catch::Contains("4 rows"));
  CHECK(copy_of(flow.parameters()) == initial);  // nothing was trained
  CHECK(trainer.optimizer().step_count() == 0);
}

TEST_CASE("The trainer rejects bad options and a mismatched optimizer", "[train][errors]") {
  Flow flow = make_flow();
  auto make = [&](TrainerOptions o) { return Trainer(flow, o); };
  CHECK_THROWS_WITH(make({.batch_size = 0}),
                    Catch::Contains("Trainer") && Catch::Contains("batch_size") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(make({.max_steps = -5}), Catch::Contains("max_steps") && Catch::Contains("-5"));
  CHECK_THROWS_WITH(make({.validation_fraction = 1.0}), Catch::Contains("Trainer") &&
                                                            Catch::Contains("validation_fraction") &&
                                                            Catch::Contains("1"));
  CHECK_THROWS_WITH(make({.validation_fraction = -0.1}),
                    Catch::Contains("validation_fraction") && Catch::Contains("-0.1"));
  CHECK_THROWS_WITH(make({.validation_every = 0}),
                    Catch::Contains("validation_every") && Catch::Contains("0"));
  CHECK_THROWS_WITH(make({.patience = -1}), Catch::Contains("patience") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(make({.min_improvement = -0.5}),
                    Catch::Contains("min_improvement") && Catch::Contains("-0.5"));
  CHECK_THROWS_WITH(make({.max_gradient_norm = 0.0}),
                    Catch::Contains("max_gradient_norm") && Catch::Contains("0"));
  CHECK_THROWS_WITH(make({.max_gradient_norm = std::nan("")}),
                    Catch::Contains("max_gradient_norm") && Catch::Contains("nan"));
  CHECK_THROWS_WITH(make({.progress_every = 0}), Catch::Contains("progress_every"));
  CHECK_THROWS_WITH(make({.validation_batch_size = -2}),
                    Catch::Contains("validation_batch_size") && Catch::Contains("-2"));
  CHECK_THROWS_WITH(make({.checkpoint_every = -1}), Catch::Contains("Trainer") &&
                                                        Catch::Contains("checkpoint_every") &&
                                                        Catch::Contains("-1"));
  CHECK_THROWS_WITH(make({.checkpoint_every = 10}), Catch::Contains("Trainer") &&
                                                        Catch::Contains("checkpoint_every is 10") &&
                                                        Catch::Contains("checkpoint_path is empty"));
  CHECK_THROWS_WITH(Trainer(flow, Adam<double>(7)), Catch::Contains("Trainer") &&
                                                        Catch::Contains("made for 7 parameters") &&
                                                        Catch::Contains("model has 4"));
  Rng rng(1);
  Trainer tiny(flow, quiet({.validation_fraction = 0.5}));
  CHECK_THROWS_WITH(tiny.fit(shifted_normal(2, 1, rng, 0.0)), Catch::Contains("none for training"));
}

// ---- conditional models and data-dependent initialisation --------------------------------------

namespace {

using ConditionalFlow = TransformedDistribution<StandardNormal<double>, test::ConditionalAffine<double>>;

}  // namespace

static_assert(ConditionalTrainableModel<ConditionalFlow>);
static_assert(!TrainableModel<ConditionalFlow>);

TEST_CASE("One trainer step on (x, c) pairs is a gradient step on their mean NLL", "[train][conditional]") {
  Rng rng(61);
  ConditionalFlow flow(StandardNormal<double>(2), test::ConditionalAffine<double>(2, 1));
  test::randomise_parameters(flow, rng, 0.3);
  const Index n = 8;
  const Matrix<double> c = test::random_batch<double>(1, n, rng);
  Matrix<double> x = test::random_batch<double>(2, n, rng);
  x.row(0) += 2.0 * c;  // x depends on its own context column
  const std::vector<double> before = test::copy_of(flow.parameters());
  // the whole data set is the batch (in shuffled order, which the mean does not see)
  const Vector<double> gradient = testing::finite_difference_gradient<double>(
      [&] { return -flow.log_prob(x, c).mean(); }, flow.parameters());
  const double loss_before = -flow.log_prob(x, c).mean();
  const double lr = 0.1;
  Trainer trainer(flow, Sgd<double>(flow, {.lr = lr}),
                  {.batch_size = n, .max_steps = 1, .seed = 4, .progress = nullptr});
  const TrainingHistory h = trainer.fit_with_context(x, c);
  REQUIRE(h.steps == 1);
  CHECK(h.train_loss[0] == Approx(loss_before).epsilon(1e-12));
  for (std::size_t i = 0; i < before.size(); ++i)
    CHECK(flow.parameters()[i] == Approx(before[i] - lr * gradient(Index(i))).margin(1e-8));
  CHECK(trainer.evaluate_with_context(x, c) == Approx(-flow.log_prob(x, c).mean()).epsilon(1e-12));

  // pairs stay paired: a batch smaller than the data takes the same columns of x and c, so training
  // on (x, c) moves toward the conditional fit, far below the NLL with the contexts shuffled
  TrainerOptions options{.batch_size = 4, .max_steps = 300, .seed = 5, .progress = nullptr};
  Trainer longer(flow, Adam<double>(flow, {.lr = 0.05}), options);
  (void)longer.fit_with_context(x, c);
  Matrix<double> reversed = c.rowwise().reverse();
  CHECK(-flow.log_prob(x, c).mean() + 0.5 < -flow.log_prob(x, reversed).mean());
}

TEST_CASE("A validation split of (x, c) pairs holds out the same columns of both", "[train][conditional]") {
  Rng rng(63);
  ConditionalFlow flow(StandardNormal<double>(2), test::ConditionalAffine<double>(2, 1));
  const Matrix<double> c = test::random_batch<double>(1, 40, rng);
  Matrix<double> x = test::random_batch<double>(2, 40, rng);
  x.row(1) -= 3.0 * c;
  Trainer trainer(flow, TrainerOptions{.batch_size = 8,
                                       .max_steps = 20,
                                       .seed = 6,
                                       .validation_fraction = 0.25,
                                       .validation_every = 20,
                                       .restore_best = false,
                                       .progress = nullptr});
  const TrainingHistory h = trainer.fit_with_context(x, c);
  REQUIRE(h.validation.size() == 1);
  // the split fit(data) makes with this seed, applied to both
  Rng split_x(6), split_c(6);
  const DataSplit<double> xs = split_validation<double>(x, 0.25, split_x);
  const DataSplit<double> cs = split_validation<double>(c, 0.25, split_c);
  CHECK(h.validation[0].nll == Approx(-flow.log_prob(xs.validation, cs.validation).mean()).epsilon(1e-12));
}

TEST_CASE("The trainer rejects contexts that do not pair with the data", "[train][conditional][errors]") {
  ConditionalFlow flow(StandardNormal<double>(2), test::ConditionalAffine<double>(2, 1));
  Trainer trainer(flow, TrainerOptions{.max_steps = 1, .progress = nullptr});
  const Matrix<double> x = Matrix<double>::Zero(2, 5);
  CHECK_THROWS_WITH(trainer.fit_with_context(x, Matrix<double>::Zero(1, 4)),
                    Catch::Contains("Trainer::fit_with_context") && Catch::Contains("context") &&
                        Catch::Contains("1x5") && Catch::Contains("1x4"));
  CHECK_THROWS_WITH(trainer.fit_with_context(x, Matrix<double>::Zero(2, 5)), Catch::Contains("2x5"));
  Matrix<double> c = Matrix<double>::Zero(1, 5);
  c(0, 2) = NAN;
  CHECK_THROWS_WITH(trainer.fit_with_context(x, c), Catch::Contains("context") && Catch::Contains("(0, 2)"));
}

TEST_CASE("The trainer initialises the model on its first batch, once", "[train][initialize]") {
  Rng rng(62);
  TransformedDistribution flow(StandardNormal<double>(2),
                               Chain(Affine<double>(2), test::MeanShift<double>(2)));
  const Matrix<double> data = test::shifted_normal(2, 40, rng, 5.0);
  Trainer trainer(flow,
                  Sgd<double>(flow, {.lr = 1e-12}),  // tiny updates: the shift stays the initialisation's
                  {.batch_size = 10, .max_steps = 3, .seed = 2, .progress = nullptr});
  (void)trainer.fit(data);
  const auto& shift = flow.bijector().part<1>();
  REQUIRE(shift.initialized_on.size() == 1);
  const Matrix<double> first = shift.initialized_on[0];
  CHECK(first.cols() == 10);
  CHECK((shift.shift() - first.rowwise().mean()).cwiseAbs().maxCoeff() < 1e-9);
  // the first batch is columns of the data
  for (Index j = 0; j < first.cols(); ++j) {
    bool found = false;
    for (Index k = 0; k < data.cols() && !found; ++k) found = first.col(j) == data.col(k);
    CHECK(found);
  }
  CHECK(flow.initialized());
  (void)trainer.fit(data);  // already initialised: not again
  CHECK(flow.bijector().part<1>().initialized_on.size() == 1);
}

TEST_CASE("A flow initialises its ActNorm layers on the trainer's first batch, each on what reaches it",
          "[bijectors][act_norm]") {
  // x → ActNorm → Affine (fixed) → ActNorm → u in the density direction: the second ActNorm sees the
  // first one's output mapped by the fixed affine.
  Rng rng(13);
  Matrix<double> data = test::random_batch<double>(2, 256, rng);
  data.row(0) = (data.row(0).array() * 4.0 + 10.0).matrix();
  Vector<double> s(2), b(2);
  s << std::log(3.0), 0.0;
  b << 1.0, -2.0;
  TransformedDistribution flow(StandardNormal<double>(2),
                               Chain(ActNorm<double>(2), Affine<double>(s, b), ActNorm<double>(2)));
  TrainerOptions options;
  options.batch_size = 256;
  options.max_steps = 1;
  options.progress = nullptr;
  Trainer trainer(flow, options);
  trainer.fit(data);
  // the trainer initialised both (density direction: the last part first), then took one step
  CHECK(flow.initialized());
  CHECK(flow.bijector().part<0>().initialized());
  CHECK(flow.bijector().part<2>().initialized());
  // The layer nearest the data (applied last in sampling) has the data's statistics, up to the one
  // step of Adam (lr 1e-3) that followed.
  CHECK(flow.bijector().part<2>().shift()(0) == Approx(data.row(0).mean()).margin(0.01));
  CHECK(std::exp(flow.bijector().part<2>().log_scale()(0)) == Approx(4.0).epsilon(0.15));
}

TEST_CASE("Divergence inside a flow without a log-scale guard is a TrainingError naming the step",
          "[train][errors]") {
  // A learning rate of 1e6 sends MAF's weights far out after one update; without a guard on its
  // log-scales the next pass overflows inside the flow (e^α = ∞), which it refuses. Training must
  // stop with a TrainingError naming the step, and hand back a flow whose parameters evaluate the
  // data finitely.
  const Matrix<double> data = data::two_moons<double>(512, 0.05, 3);
  for (const Index max_steps : {2, 5, 50}) {
    CAPTURE(max_steps);
    FlowSpec<double> spec;
    spec.kind = FlowKind::maf;
    spec.layers = 2;
    spec.hidden = {32, 32};
    spec.guard.kind = LogScaleGuardKind::none;
    spec.seed = 1;
    TransformedDistribution flow(StandardNormal<double>(2), make_flow(spec));
    Trainer trainer(flow, Adam<double>(flow, {.lr = 1e6}), quiet({.batch_size = 64, .max_steps = max_steps}));
    try {
      trainer.fit(data);
      FAIL("training on diverging parameters ended without an error");
    } catch (const TrainingError& e) {
      CHECK(e.step() >= 1);
      CHECK_THAT(e.what(), Catch::Contains("Trainer::fit") &&
                               Catch::Contains("step " + std::to_string(e.step()) + ":") &&
                               Catch::Contains("non-finite"));
    }
    CHECK(all_finite(flow.parameters()));
    RowVector<double> log_prob;
    REQUIRE_NOTHROW(log_prob = flow.log_prob(data));
    CHECK(log_prob.allFinite());
  }
}

// ---- epoch mode ------------------------------------------------------------------------------------

TEST_CASE("Epoch mode takes ceil(N/B) steps per epoch and every column once per epoch", "[train][epochs]") {
  // column j of the data is (j, 0): a batch's first row tells its columns
  const Index n = 10;
  Matrix<double> data = Matrix<double>::Zero(2, n);
  for (Index j = 0; j < n; ++j) data(0, j) = double(j);
  ProbeModel model;
  std::vector<StepInfo> infos;
  Trainer trainer(model, Sgd<double>(model, {.lr = 1e-3}),
                  quiet({.batch_size = 4, .epochs = 3, .on_step = [&](const StepInfo& info) {
                           infos.push_back(info);
                           return StepAction::proceed;
                         }}));
  const TrainingHistory h = trainer.fit(data);
  CHECK(h.steps == 9);
  CHECK(h.stop_reason == StopReason::epochs);
  REQUIRE(model.batches.size() == 9);
  REQUIRE(infos.size() == 9);
  std::vector<std::vector<double>> epochs(3);
  for (std::size_t k = 0; k < 9; ++k) {
    CAPTURE(k);
    CHECK(model.batches[k].size() == (k % 3 == 2 ? 2U : 4U));  // the short last batch is kept
    auto& seen = epochs[k / 3];
    seen.insert(seen.end(), model.batches[k].begin(), model.batches[k].end());
    CHECK(infos[k].step == Index(k) + 1);
    CHECK(infos[k].max_steps == 9);
    CHECK(infos[k].epoch == Index(k / 3) + 1);
    CHECK(infos[k].step_in_epoch == Index(k % 3) + 1);
    CHECK(infos[k].steps_per_epoch == 3);
  }
  std::vector<double> all(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) all[std::size_t(j)] = double(j);
  for (auto& seen : epochs) {
    CHECK(seen != all);  // shuffled
    std::ranges::sort(seen);
    CHECK(seen == all);  // each column exactly once
  }
  CHECK(model.batches[0] != model.batches[3]);  // a new shuffle per epoch
  REQUIRE(h.epochs.size() == 3);
  for (Index e = 0; e < 3; ++e) {
    CHECK(h.epochs[std::size_t(e)].epoch == e + 1);
    CHECK(h.epochs[std::size_t(e)].step == 3 * (e + 1));
    CHECK_FALSE(h.epochs[std::size_t(e)].validation_nll);
  }
}

TEST_CASE("An epoch's mean train loss is the mean NLL of its columns", "[train][epochs]") {
  // with a learning rate so small that the parameters stay put, every column of an epoch is scored
  // by the same model: the epoch's mean train loss is the data's mean NLL
  Rng rng(21);
  const Matrix<double> data = shifted_normal(2, 50, rng, 1.5);
  Flow flow = make_flow();
  Trainer trainer(flow, Sgd<double>(flow, {.lr = 1e-300}), quiet({.batch_size = 8, .epochs = 2}));
  const double nll = trainer.evaluate(data);
  const TrainingHistory h = trainer.fit(data);
  CHECK(h.steps == 14);  // ⌈50 / 8⌉ = 7 per epoch
  REQUIRE(h.epochs.size() == 2);
  for (const EpochRecord& r : h.epochs) CHECK(r.mean_train_loss == Approx(nll).epsilon(1e-12));
  // the plain mean of the batch losses would weigh the short last batch (2 columns) like the others
  double plain = 0;
  for (std::size_t k = 0; k < 7; ++k) plain += h.train_loss[k] / 7;
  CHECK(plain != Approx(nll).epsilon(1e-12));
}

TEST_CASE("Epoch mode validates the initial model, which early stopping can restore", "[train][epochs]") {
  // training data N(4, I), validation data N(0, I): the initial flow (a standard normal) fits the
  // validation data best, and every epoch of training moves it away
  Rng rng(22);
  const Matrix<double> train = shifted_normal(2, 100, rng, 4.0);
  const Matrix<double> validation = shifted_normal(2, 60, rng, 0.0);
  for (const bool restore : {true, false}) {
    CAPTURE(restore);
    Flow flow = make_flow();
    const std::vector<double> initial = copy_of(flow.parameters());
    Trainer trainer(flow, Adam<double>(flow, {.lr = 0.05}),
                    quiet({.batch_size = 32, .epochs = 50, .patience = 2, .restore_best = restore}));
    const double initial_nll = trainer.evaluate(validation);
    const TrainingHistory h = trainer.fit(train, validation);
    CHECK(h.stop_reason == StopReason::early_stopping);
    CHECK(h.steps == 8);  // two epochs of ⌈100 / 32⌉ = 4 steps
    REQUIRE(h.validation.size() == 3);
    CHECK(h.validation[0].step == 0);
    CHECK(h.validation[0].nll == initial_nll);
    CHECK(h.validation[1].step == 4);
    CHECK(h.validation[2].step == 8);
    CHECK(h.best_step == 0);
    CHECK(h.best_validation_nll == initial_nll);
    REQUIRE(h.epochs.size() == 2);
    CHECK(h.epochs[0].validation_nll == h.validation[1].nll);
    CHECK(h.epochs[1].validation_nll == h.validation[2].nll);
    CHECK(h.restored_best == restore);
    CHECK((copy_of(flow.parameters()) == initial) == restore);
  }
}

TEST_CASE("Patience counts epochs in epoch mode", "[train][epochs]") {
  // training data N(4, I), validation data N(2, I): the validation NLL falls, then rises
  Rng rng(2);
  const Matrix<double> train = shifted_normal(2, 500, rng, 4.0);
  const Matrix<double> validation = shifted_normal(2, 300, rng, 2.0);
  Flow flow = make_flow();
  std::vector<std::vector<double>> params_at{copy_of(flow.parameters())};  // params_at[s] after step s
  Trainer trainer(flow, Adam<double>(flow, {.lr = 0.02}),
                  quiet({.batch_size = 128,
                         .epochs = 500,
                         .validation_every = 1,  // unused in epoch mode
                         .patience = 3,
                         .on_step = [&](const StepInfo&) {
                           params_at.push_back(copy_of(flow.parameters()));
                           return StepAction::proceed;
                         }}));
  const TrainingHistory h = trainer.fit(train, validation);
  CHECK(h.stop_reason == StopReason::early_stopping);
  const Index per_epoch = 4;  // ⌈500 / 128⌉
  REQUIRE(h.steps % per_epoch == 0);
  const auto epochs = std::size_t(h.steps / per_epoch);
  CHECK(h.epochs.size() == epochs);
  REQUIRE(h.validation.size() == epochs + 1);  // the initial model and every epoch
  for (std::size_t i = 0; i < h.validation.size(); ++i) CHECK(h.validation[i].step == Index(i) * per_epoch);
  REQUIRE(epochs > 4);
  // patience ran out three epochs after the best one
  CHECK(h.validation[epochs - 3].step == h.best_step);
  CHECK(h.best_step > 0);
  for (const auto& record : h.validation) CHECK(record.nll >= *h.best_validation_nll);
  CHECK(h.restored_best);
  CHECK(copy_of(flow.parameters()) == params_at[std::size_t(h.best_step)]);
}

TEST_CASE("Epoch mode progress lines name the epoch", "[train][epochs][progress]") {
  Rng rng(23);
  const Matrix<double> data = shifted_normal(2, 30, rng, 0.5);
  Flow flow = make_flow();
  std::ostringstream out;
  TrainerOptions options{.batch_size = 8, .epochs = 2, .validation_fraction = 0.2, .progress_every = 1000};
  options.progress = &out;
  Trainer(flow, options).fit(data);
  // 24 training columns, 3 steps per epoch: a line at the end of each epoch
  CHECK_THAT(out.str(), Catch::Contains("epoch 1/2  step 3/6") && Catch::Contains("epoch 2/2  step 6/6") &&
                            Catch::Contains("6 steps, 2 epochs (epochs)"));
}

TEST_CASE("Epoch mode rejects a negative epoch count", "[train][epochs][errors]") {
  Flow flow = make_flow();
  CHECK_THROWS_WITH(Trainer(flow, TrainerOptions{.epochs = -1}),
                    Catch::Contains("Trainer") && Catch::Contains("epochs") && Catch::Contains("-1"));
}

TEST_CASE("Training a conditional Maf on x ~ N(c, 0.1²) pairs learns the dependence on c",
          "[train][conditional][maf]") {
  Rng rng(67);
  const Index n = 512;
  std::uniform_real_distribution<double> uniform(-2.0, 2.0);
  const Matrix<double> c = Matrix<double>::NullaryExpr(2, n, [&] { return uniform(rng); });
  const Matrix<double> x = c + test::random_batch<double>(2, n, rng, 0.1);
  MafOptions<double> options;
  options.hidden = {16, 16};
  options.context_dim = 2;
  options.seed = 3;
  TransformedDistribution flow(StandardNormal<double>(2), Maf<double>(2, options));
  const double before = -flow.log_prob(x, c).mean();
  Trainer trainer(flow, Adam<double>(flow, {.lr = 0.01}),
                  {.batch_size = 64, .max_steps = 400, .seed = 6, .progress = nullptr});
  const TrainingHistory h = trainer.fit_with_context(x, c);
  REQUIRE(h.steps == 400);
  const double after = -flow.log_prob(x, c).mean();
  // the best possible is log(2π·0.01) + 1 ≈ −1.77; N(0, I) on the data alone is about 3.2
  INFO("NLL before " << before << ", after " << after);
  CHECK(after < before - 2.0);
  CHECK(after < 0.0);
  // it uses the context: with the contexts of other samples the data are far less likely
  const Matrix<double> shuffled = c.rowwise().reverse();
  CHECK(after + 2.0 < -flow.log_prob(x, shuffled).mean());
}

TEST_CASE("Training conditional couplings on x ~ N(c, 0.1²) pairs learns the dependence on c",
          "[train][conditional][coupling]") {
  Rng rng(71);
  const Index n = 512;
  std::uniform_real_distribution<double> uniform(-2.0, 2.0);
  const Matrix<double> c = Matrix<double>::NullaryExpr(2, n, [&] { return uniform(rng); });
  const Matrix<double> x = c + test::random_batch<double>(2, n, rng, 0.1);
  CouplingOptions<double> options;
  options.hidden = {16, 16};
  options.context_dim = 2;
  options.seed = 3;
  AffineCoupling<double> first(2, 1, options);
  options.seed = 4;
  AffineCoupling<double> second(2, 1, options);
  TransformedDistribution flow(StandardNormal<double>(2), Chain(first, Permute<double>::reverse(2), second));
  const double before = -flow.log_prob(x, c).mean();
  Trainer trainer(flow, Adam<double>(flow, {.lr = 0.01}),
                  {.batch_size = 64, .max_steps = 400, .seed = 6, .progress = nullptr});
  const TrainingHistory h = trainer.fit_with_context(x, c);
  REQUIRE(h.steps == 400);
  const double after = -flow.log_prob(x, c).mean();
  // the best possible is log(2π·0.01) + 1 ≈ −1.77; N(0, I) on the data alone is about 3.2
  INFO("NLL before " << before << ", after " << after);
  CHECK(after < before - 2.0);
  CHECK(after < 0.0);
  // it uses the context: with the contexts of other samples the data are far less likely
  const Matrix<double> shuffled = c.rowwise().reverse();
  CHECK(after + 2.0 < -flow.log_prob(x, shuffled).mean());
}
