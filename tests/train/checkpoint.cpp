#include "knead/train/checkpoint.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/train/trainer.hpp"
#include "support.hpp"

using namespace knead;
namespace fs = std::filesystem;

namespace {

using test::copy_of;
using test::shifted_normal;
using test::TempDir;

TrainerOptions without_progress(TrainerOptions o) {
  o.progress = nullptr;
  return o;
}

template <class T>
auto affine_flow(Index d = 2) {
  return TransformedDistribution(StandardNormal<T>(d), Chain(Affine<T>(d), Affine<T>(d)));
}

template <class T>
auto maf_flow() {
  return TransformedDistribution(
      StandardNormal<T>(2),
      Chain(Maf<T>(2, {.hidden = {5}, .seed = 3}), Affine<T>(2), Maf<T>(2, {.hidden = {5}, .seed = 4})));
}

/// A MAF flow as make_flow builds it with batch_norm: 0 Maf, 1 BatchNorm, 2 Permute, 3 Maf,
/// 4 BatchNorm, 5 Permute, 6 Maf.
template <class T>
auto batch_norm_flow() {
  FlowSpec<T> spec;
  spec.dim = 2;
  spec.layers = 3;
  spec.hidden = {6};
  spec.batch_norm = true;
  spec.seed = 9;
  return TransformedDistribution(StandardNormal<T>(2), make_flow<T>(spec));
}

/// What a run ended with: everything that must match between a resumed and an uninterrupted run.
template <class T>
struct Outcome {
  std::vector<T> parameters;
  std::vector<T> optimizer_state;
  Index optimizer_steps = 0;
  TrainingHistory history;
  io::Bytes flow_file;  ///< the flow as knead::save writes it: BatchNorm statistics and modes too
};

template <class T>
void require_same(const Outcome<T>& resumed, const Outcome<T>& uninterrupted) {
  CHECK(resumed.parameters == uninterrupted.parameters);  // bit for bit
  CHECK(resumed.optimizer_state == uninterrupted.optimizer_state);
  CHECK(resumed.optimizer_steps == uninterrupted.optimizer_steps);
  CHECK(resumed.flow_file == uninterrupted.flow_file);
  const TrainingHistory &a = resumed.history, &b = uninterrupted.history;
  CHECK(a.steps == b.steps);
  CHECK(a.train_loss == b.train_loss);
  REQUIRE(a.validation.size() == b.validation.size());
  for (std::size_t i = 0; i < a.validation.size(); ++i) {
    CHECK(a.validation[i].step == b.validation[i].step);
    CHECK(a.validation[i].nll == b.validation[i].nll);
  }
  CHECK(a.best_step == b.best_step);
  CHECK(a.best_validation_nll == b.best_validation_nll);
  CHECK(a.restored_best == b.restored_best);
  CHECK(a.stop_reason == b.stop_reason);
  REQUIRE(a.epochs.size() == b.epochs.size());
  for (std::size_t i = 0; i < a.epochs.size(); ++i) {
    CHECK(a.epochs[i].step == b.epochs[i].step);
    CHECK(a.epochs[i].mean_train_loss == b.epochs[i].mean_train_loss);
    CHECK(a.epochs[i].validation_nll == b.epochs[i].validation_nll);
  }
}

/// Trains with `options` from a fresh model, optimizer and trainer; `fit` runs the trainer.
template <class MakeFlow, class MakeOpt, class Fit>
auto train(MakeFlow make_flow, MakeOpt make_opt, const TrainerOptions& options, Fit fit) {
  auto flow = make_flow();
  using T = typename decltype(flow)::Scalar;
  Trainer trainer(flow, make_opt(flow), options);
  Outcome<T> out;
  out.history = fit(trainer, flow);
  out.parameters = copy_of(flow.parameters());
  out.optimizer_state =
      std::vector<T>(trainer.optimizer().state().begin(), trainer.optimizer().state().end());
  out.optimizer_steps = trainer.optimizer().step_count();
  out.flow_file = flow_bytes(flow);
  return out;
}

/// Runs `options` uninterrupted; then again with a checkpoint every `every` steps, stopped by the
/// callback after `stop_at` steps (as if the process died); then resumes in a fresh model (whose
/// parameters are scrambled and mode switched first, so that they must come from the checkpoint)
/// and checks that it ends exactly as the uninterrupted run. Returns the uninterrupted outcome.
template <class MakeFlow, class MakeOpt, class FitData, class ResumeData>
auto check_resume(MakeFlow make_flow, MakeOpt make_opt, TrainerOptions options, Index every, Index stop_at,
                  FitData fit_data, ResumeData resume_data) {
  const TempDir dir;
  const fs::path path = dir / "run.ckpt";
  const auto uninterrupted =
      train(make_flow, make_opt, options, [&](auto& trainer, auto&) { return fit_data(trainer); });
  REQUIRE(uninterrupted.history.steps > stop_at);

  TrainerOptions first = options;
  first.checkpoint_every = every;
  first.checkpoint_path = path;
  first.on_step = [&](const StepInfo& info) {
    return info.step == stop_at ? StepAction::stop : StepAction::proceed;
  };
  const auto interrupted =
      train(make_flow, make_opt, first, [&](auto& trainer, auto&) { return fit_data(trainer); });
  CHECK(interrupted.history.steps == stop_at);
  CHECK(interrupted.history.stop_reason == StopReason::callback);

  TrainerOptions second = options;
  second.checkpoint_every = every;
  second.checkpoint_path = path;
  const auto resumed = train(make_flow, make_opt, second, [&](auto& trainer, auto& flow) {
    Rng scramble(99);
    test::randomise_parameters(flow, scramble, 0.3);
    flow.set_training(false);
    return resume_data(trainer, path);
  });
  require_same(resumed, uninterrupted);
  // the resumed run went on writing checkpoints: the last one is at the last multiple of `every`
  CHECK(load_checkpoint<typename decltype(resumed.parameters)::value_type>(path).step ==
        uninterrupted.history.steps / every * every);
  return uninterrupted;
}

/// check_resume for a run on fit(data).
template <class MakeFlow, class MakeOpt, class T>
auto check_resume(MakeFlow make_flow, MakeOpt make_opt, const TrainerOptions& options, Index every,
                  Index stop_at, const Matrix<T>& data) {
  return check_resume(
      make_flow, make_opt, options, every, stop_at, [&](auto& trainer) { return trainer.fit(data); },
      [&](auto& trainer, const fs::path& p) { return trainer.resume(p, data); });
}

/// N samples of a curved 2-D density: x₁ ~ N(0, 1), x₂ ~ N(x₁²/2, 1).
template <class T>
Matrix<T> curved(Index n, Rng& rng) {
  Matrix<double> data = test::random_batch<double>(2, n, rng);
  data.row(1) += data.row(0).array().square().matrix() * 0.5;
  return data.cast<T>();
}

}  // namespace

TEMPLATE_TEST_CASE("A run resumed from a checkpoint ends bit for bit as an uninterrupted one (Adam)",
                   "[train][checkpoint]", float, double) {
  using T = TestType;
  Rng rng(1);
  const Matrix<T> data = shifted_normal<T>(2, 300, rng, 1.5);
  const auto fit = [&](auto& trainer) { return trainer.fit(data); };
  const auto resume = [&](auto& trainer, const fs::path& p) { return trainer.resume(p, data); };
  const auto make_flow = [] { return affine_flow<T>(); };
  const auto adam = [](auto& flow) {
    return Adam<T>(flow, {.lr = LrSchedule::cosine(0.05, 60, 5), .weight_decay = 1e-3});
  };
  SECTION("without validation, interrupted between checkpoints") {
    // 7 steps per checkpoint, stopped at 17: the resume starts again from step 14
    check_resume(make_flow, adam, without_progress({.batch_size = 32, .max_steps = 60, .seed = 5}), 7, 17,
                 fit, resume);
  }
  SECTION("with a validation split, clipping and restore_best") {
    const auto h = check_resume(make_flow, adam,
                                without_progress({.batch_size = 40,
                                                  .max_steps = 60,
                                                  .seed = 6,
                                                  .validation_fraction = 0.2,
                                                  .validation_every = 4,
                                                  .max_gradient_norm = 0.5}),
                                10, 30, fit, resume);
    CHECK(h.history.validation.size() == 15);
  }
}

TEST_CASE("A resumed run with early stopping and SGD ends as an uninterrupted one", "[train][checkpoint]") {
  // training data N(4, I), validation data N(2, I): the validation NLL falls then rises, so
  // patience runs out mid-run and the best parameters are restored
  Rng rng(2);
  const Matrix<double> train_data = shifted_normal<double>(2, 400, rng, 4.0);
  const Matrix<double> validation = shifted_normal<double>(2, 200, rng, 2.0);
  const auto fit = [&](auto& trainer) { return trainer.fit(train_data, validation); };
  const auto resume = [&](auto& trainer, const fs::path& p) {
    return trainer.resume(p, train_data, validation);
  };
  const auto make_flow = [] { return affine_flow<double>(); };
  const auto sgd = [](auto& flow) {
    return Sgd<double>(flow, {.lr = 0.02, .momentum = 0.9, .nesterov = true});
  };
  const TrainerOptions options = without_progress(
      {.batch_size = 50, .max_steps = 3000, .seed = 8, .validation_every = 5, .patience = 3});
  const auto full = train(make_flow, sgd, options, [&](auto& trainer, auto&) { return fit(trainer); });
  REQUIRE(full.history.stop_reason == StopReason::early_stopping);
  REQUIRE(full.history.restored_best);
  const Index stopped = full.history.steps;
  INFO("early stopping after " << stopped << " steps, best " << full.history.best_step);
  REQUIRE(stopped > 20);
  REQUIRE(full.history.best_step > 8);

  SECTION("interrupted before the best step") {
    check_resume(make_flow, sgd, options, 3, full.history.best_step - 4, fit, resume);
  }
  SECTION("interrupted after the best step, while patience runs") {
    check_resume(make_flow, sgd, options, 2, full.history.best_step + 6, fit, resume);
  }
  SECTION("resumed from the checkpoint of the step where patience ran out") {
    const TempDir dir;
    TrainerOptions every_step = options;
    every_step.checkpoint_every = 1;
    every_step.checkpoint_path = dir / "last.ckpt";
    const auto run = train(make_flow, sgd, every_step, [&](auto& trainer, auto&) { return fit(trainer); });
    require_same(run, full);
    CHECK(load_checkpoint<double>(every_step.checkpoint_path).step == stopped);
    // nothing is left to train: the resume restores the best parameters and stops at once
    const auto resumed = train(make_flow, sgd, every_step, [&](auto& trainer, auto&) {
      return trainer.resume(every_step.checkpoint_path, train_data, validation);
    });
    require_same(resumed, full);
  }
}

TEST_CASE("A run stopped by max_steps continues to a larger max_steps", "[train][checkpoint]") {
  Rng rng(3);
  const Matrix<double> data = shifted_normal<double>(3, 200, rng, -1.0);
  const auto make_flow = [] { return affine_flow<double>(3); };
  const auto sgd = [](auto& flow) { return Sgd<double>(flow, {.lr = 0.05, .momentum = 0.5}); };
  const TempDir dir;
  const TrainerOptions full = without_progress({.batch_size = 30, .max_steps = 25, .seed = 4});
  const auto uninterrupted = train(make_flow, sgd, full, [&](auto& t, auto&) { return t.fit(data); });
  TrainerOptions first = full;
  first.max_steps = 12;
  first.checkpoint_every = 12;
  first.checkpoint_path = dir / "a.ckpt";
  const auto part = train(make_flow, sgd, first, [&](auto& t, auto&) { return t.fit(data); });
  CHECK(part.history.stop_reason == StopReason::max_steps);
  TrainerOptions second = full;
  second.checkpoint_path = first.checkpoint_path;
  const auto resumed =
      train(make_flow, sgd, second, [&](auto& t, auto&) { return t.resume(first.checkpoint_path, data); });
  require_same(resumed, uninterrupted);
}

TEST_CASE("A MAF flow resumes bit for bit and is deterministic given its seed", "[train][checkpoint][maf]") {
  Rng rng(4);
  const Matrix<double> data = curved<double>(256, rng);
  const auto fit = [&](auto& trainer) { return trainer.fit(data); };
  const auto make_flow = [] { return maf_flow<double>(); };
  const auto adam = [](auto& flow) { return Adam<double>(flow, {.lr = 0.01}); };
  const TrainerOptions options = without_progress(
      {.batch_size = 64, .max_steps = 40, .seed = 11, .validation_fraction = 0.25, .validation_every = 8});
  const auto h = check_resume(make_flow, adam, options, 5, 23, data);
  CHECK(h.history.train_loss.back() < h.history.train_loss.front());  // it did learn

  // same seed: the same run bit for bit; another seed: other batches, another result
  const auto again = train(make_flow, adam, options, [&](auto& t, auto&) { return fit(t); });
  require_same(again, h);
  TrainerOptions other = options;
  other.seed = 12;
  const auto different = train(make_flow, adam, other, [&](auto& t, auto&) { return fit(t); });
  CHECK(different.parameters != h.parameters);
  CHECK(different.history.train_loss != h.history.train_loss);
}

TEMPLATE_TEST_CASE("A flow with BatchNorm resumes bit for bit, running statistics and mode included",
                   "[train][checkpoint][batch_norm]", float, double) {
  using T = TestType;
  Rng rng(7);
  const Matrix<T> data = curved<T>(240, rng);
  const auto make = [] { return batch_norm_flow<T>(); };
  const auto adam = [](auto& flow) { return Adam<T>(flow, {.lr = 0.01}); };
  // validation runs in evaluation mode, on the running statistics: its NLLs must match too
  const TrainerOptions options = without_progress(
      {.batch_size = 32, .max_steps = 30, .seed = 13, .validation_fraction = 0.25, .validation_every = 5});
  check_resume(make, adam, options, 4, 17, data);

  // the checkpoint holds the statistics of both BatchNorm layers as they were at its step, and the
  // mode the model had before the run
  const TempDir dir;
  TrainerOptions ten_steps = options;
  ten_steps.max_steps = 10;
  ten_steps.checkpoint_every = 10;
  ten_steps.checkpoint_path = dir / "bn.ckpt";
  for (const bool mode : {true, false}) {
    CAPTURE(mode);
    auto flow = make();
    flow.set_training(mode);
    Trainer(flow, adam(flow), ten_steps).fit(data);
    CHECK(flow.training() == mode);
    const TrainingCheckpoint<T> c = load_checkpoint<T>(ten_steps.checkpoint_path);
    CHECK(c.training == mode);
    CHECK(c.model_state.buffers.size() == 4);
    for (const int k : {1, 4}) {
      const BatchNorm<T>& bn = *flow.bijector().part(k).template target<BatchNorm<T>>();
      const std::string at = "bijector." + std::to_string(k);
      CHECK(bn.running_mean() != Vector<T>::Zero(2));  // training moved them
      const auto values = [](const Vector<T>& v) { return std::vector<T>(v.begin(), v.end()); };
      CHECK(c.model_state.buffers.at(at + ".running_mean") == values(bn.running_mean()));
      CHECK(c.model_state.buffers.at(at + ".running_variance") == values(bn.running_variance()));
    }
  }
}

TEST_CASE("A checkpoint round-trips through its file", "[train][checkpoint]") {
  const TempDir dir;
  TrainingCheckpoint<float> c;
  c.step = 4;
  c.dim = 2;
  c.train_samples = 5;
  c.validation_samples = 3;
  c.seed = 0xFFFF'FFFF'FFFF'FFFFULL;  // the largest seed survives the text form
  c.parameters = {1.5f, -2.25f, 1e-30f, 3.f};
  c.optimizer = "Sgd";
  c.optimizer_state = {0.f, 1.f, 2.f, -3.f};
  c.optimizer_step_count = 4;
  MinibatchSampler sampler(5, 2, 77);
  (void)sampler.next_indices();
  c.sampler = sampler.state();
  c.train_loss = {3.0, 2.5, 2.25, 0.1 + 0.2};
  c.validation_step = {2, 4};
  c.validation_nll = {2.75, 2.7};
  c.best_step = 4;
  c.best_validation_nll = 2.7;
  c.best_parameters = {1.f, 2.f, 3.f, 4.f};
  c.evaluations_without_improvement = 0;
  c.seconds = 1.25;
  c.training = false;
  c.model_state.architecture = R"({"type":"BatchNorm","dim":2})";
  c.model_state.buffers = {{"bijector.running_mean", {0.5f, -1.f}},
                           {"bijector.running_variance", {2.f, 3.f}}};
  save_checkpoint(c, dir / "c.ckpt");
  const TrainingCheckpoint<float> d = load_checkpoint<float>(dir / "c.ckpt");
  CHECK(d.step == c.step);
  CHECK(d.dim == c.dim);
  CHECK(d.train_samples == c.train_samples);
  CHECK(d.validation_samples == c.validation_samples);
  CHECK(d.seed == c.seed);
  CHECK(d.parameters == c.parameters);
  CHECK(d.optimizer == c.optimizer);
  CHECK(d.optimizer_state == c.optimizer_state);
  CHECK(d.optimizer_step_count == c.optimizer_step_count);
  CHECK(d.sampler.engine == c.sampler.engine);
  CHECK(d.sampler.order == c.sampler.order);
  CHECK(d.sampler.next == 2);
  CHECK(d.sampler.epoch == 1);
  CHECK(d.sampler.batch_size == 2);
  CHECK(d.train_loss == c.train_loss);
  CHECK(d.validation_step == c.validation_step);
  CHECK(d.validation_nll == c.validation_nll);
  CHECK(d.best_step == 4);
  CHECK(d.best_validation_nll == c.best_validation_nll);
  CHECK(d.best_parameters == c.best_parameters);
  CHECK(d.seconds == c.seconds);
  CHECK(!d.training);
  CHECK(d.model_state.architecture == c.model_state.architecture);
  CHECK(d.model_state.buffers == c.model_state.buffers);
  // the file is a plain safetensors file that names its format
  const io::SafetensorsFile file = io::SafetensorsFile::load(dir / "c.ckpt");
  CHECK(file.metadata().at("format") == "knead.checkpoint");
  CHECK(file.metadata().at("optimizer") == "Sgd");
  CHECK(file.tensor("parameters").dtype == io::Dtype::F32);
  CHECK(file.tensor("history.train_loss").dtype == io::Dtype::F64);
  CHECK(file.tensor("model.bijector.running_mean").dtype == io::Dtype::F32);
  CHECK(file.metadata().at("model.training") == "false");
  // its data is checksummed: a flipped bit of a tensor is refused, not resumed from
  REQUIRE(file.metadata().count("knead.data_crc32") == 1);
  io::Bytes flipped = io::read_file_bytes(dir / "c.ckpt");
  flipped[flipped.size() - 5] ^= 0x20;
  io::write_file_atomically(dir / "flipped.ckpt", flipped);
  CHECK_THROWS_WITH(load_checkpoint<float>(dir / "flipped.ckpt"),
                    Catch::Contains("flipped.ckpt") && Catch::Contains("corrupted"));
}

TEST_CASE("Broken checkpoints and checkpoints of another run are rejected", "[train][checkpoint][errors]") {
  Rng rng(5);
  const Matrix<double> data = shifted_normal<double>(2, 120, rng, 0.5);
  const TempDir dir;
  const fs::path path = dir / "good.ckpt";
  const TrainerOptions options = without_progress(
      {.batch_size = 20, .max_steps = 10, .seed = 3, .checkpoint_every = 5, .checkpoint_path = path});
  {
    auto flow = affine_flow<double>();
    Trainer(flow, Adam<double>(flow), options).fit(data);
  }
  const auto fresh = [] { return affine_flow<double>(); };

  // every failed resume leaves the model (parameters, BatchNorm statistics and modes) and the
  // optimizer as they were
  const auto rejects = [&](auto& flow, auto& trainer, const auto& call,
                           const Catch::Matchers::Impl::MatcherBase<std::string>& m) {
    const io::Bytes before = flow_bytes(flow);
    const Index steps = trainer.optimizer().step_count();
    CHECK_THROWS_WITH(call(), m);
    CHECK(flow_bytes(flow) == before);
    CHECK(trainer.optimizer().step_count() == steps);
  };
  // a call resuming `trainer` on `data` from `good` changed by `change` (written to bad.ckpt)
  const auto resume_changed = [&](auto& trainer, auto good, const auto& change) {
    change(good);
    save_checkpoint(good, dir / "bad.ckpt");
    return [&trainer, &dir, &data] { return trainer.resume(dir / "bad.ckpt", data); };
  };

  SECTION("a truncated file") {
    const auto size = fs::file_size(path);
    for (const auto keep : {std::uintmax_t{0}, std::uintmax_t{5}, std::uintmax_t{100}, size / 2, size - 1}) {
      CAPTURE(keep);
      fs::copy_file(path, dir / "cut.ckpt", fs::copy_options::overwrite_existing);
      fs::resize_file(dir / "cut.ckpt", keep);
      auto flow = fresh();
      Trainer trainer(flow, Adam<double>(flow), options);
      CHECK_THROWS_AS(trainer.resume(dir / "cut.ckpt", data), FormatError);
      rejects(
          flow, trainer, [&] { return trainer.resume(dir / "cut.ckpt", data); }, Catch::Contains("cut.ckpt"));
    }
  }
  SECTION("a missing file") {
    auto flow = fresh();
    Trainer trainer(flow, Adam<double>(flow), options);
    CHECK_THROWS_AS(trainer.resume(dir / "none.ckpt", data), FileError);
  }
  SECTION("a safetensors file that is not a checkpoint") {
    io::SafetensorsWriter w;
    const std::vector<double> v{1, 2};
    w.add("weights", std::span<const double>(v), {2});
    w.write(dir / "model.safetensors");
    auto flow = fresh();
    Trainer trainer(flow, Adam<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(dir / "model.safetensors", data); },
        Catch::Contains("load_checkpoint") && Catch::Contains("model.safetensors") &&
            Catch::Contains("metadata 'format' is missing"));
  }
  SECTION("a different model") {
    auto flow = TransformedDistribution(StandardNormal<double>(2), Affine<double>(2));
    Trainer trainer(flow, Adam<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data); },
        Catch::Contains("Trainer::resume") && Catch::Contains("good.ckpt") &&
            Catch::Contains("holds 8 parameters but the model has 4"));
  }
  SECTION("a model of another dimension with as many parameters") {
    auto flow = TransformedDistribution(StandardNormal<double>(8), Shift<double>(8));
    Trainer trainer(flow, Adam<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, shifted_normal<double>(8, 120, rng, 0.0)); },
        Catch::Contains("Trainer::resume") && Catch::Contains("is for dimension 2 but the model has dim 8"));
  }
  SECTION("another optimizer") {
    auto flow = fresh();
    Trainer trainer(flow, Sgd<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data); },
        Catch::Contains("Trainer::resume") && Catch::Contains("optimizer 'Adam'") &&
            Catch::Contains("uses 'Sgd'"));
  }
  SECTION("other data, batch size, seed or validation") {
    auto flow = fresh();
    Trainer trainer(flow, Adam<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data.leftCols(100)); },
        Catch::Contains("written for 120 training samples, got 100"));
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data, data.leftCols(10)); },
        Catch::Contains("written for 0 validation samples, got 10"));
    TrainerOptions o = options;
    o.batch_size = 30;
    Trainer other_batches(flow, Adam<double>(flow), o);
    rejects(
        flow, other_batches, [&] { return other_batches.resume(path, data); },
        Catch::Contains("batches of 20 samples, the options give 30"));
    o = options;
    o.seed = 4;
    Trainer other_seed(flow, Adam<double>(flow), o);
    rejects(
        flow, other_seed, [&] { return other_seed.resume(path, data); },
        Catch::Contains("written with seed 3, the options have 4"));
  }
  SECTION("the other scalar type") {
    auto flow = affine_flow<float>();
    Trainer trainer(flow, Adam<float>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data.cast<float>()); },
        Catch::Contains("load_checkpoint") && Catch::Contains("holds double values, expected float"));
  }
  SECTION("data of the wrong dimension or with a non-finite value") {
    auto flow = fresh();
    Trainer trainer(flow, Adam<double>(flow), options);
    rejects(
        flow, trainer, [&] { return trainer.resume(path, shifted_normal<double>(3, 120, rng, 0.0)); },
        Catch::Contains("Trainer::resume") && Catch::Contains("training data has 3 rows") &&
            Catch::Contains("expected 2 rows"));
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data, shifted_normal<double>(1, 5, rng, 0.0)); },
        Catch::Contains("Trainer::resume") && Catch::Contains("validation data has 1 rows"));
    Matrix<double> bad = data;
    bad(0, 42) = std::numeric_limits<double>::quiet_NaN();
    rejects(
        flow, trainer, [&] { return trainer.resume(path, bad); },
        Catch::Contains("Trainer::resume") && Catch::Contains("nan") && Catch::Contains("column 42"));
  }
  SECTION("inconsistent or corrupt content") {
    const TrainingCheckpoint<double> good = load_checkpoint<double>(path);
    CHECK(good.step == 10);
    auto flow = fresh();
    Trainer trainer(flow, Adam<double>(flow), options);
    const auto with = [&](const auto& change) { return resume_changed(trainer, good, change); };
    rejects(flow, trainer, with([](auto& c) { c.train_loss.pop_back(); }),
            Catch::Contains("history.train_loss' has 9 values, expected 10"));
    rejects(flow, trainer, with([](auto& c) { c.parameters[1] = std::numeric_limits<double>::infinity(); }),
            Catch::Contains("'parameters' has a non-finite value inf at index 1"));
    rejects(flow, trainer, with([](auto& c) { c.sampler.engine = "not an engine"; }),
            Catch::Contains("bad sampler state") && Catch::Contains("mt19937_64"));
    rejects(flow, trainer, with([](auto& c) { c.sampler.order[0] = c.sampler.order[1]; }),
            Catch::Contains("not a permutation"));
    rejects(flow, trainer, with([](auto& c) { c.optimizer_state[9] = -1; }),
            Catch::Contains("bad optimizer state") && Catch::Contains("second moment 1"));
    rejects(flow, trainer, with([](auto& c) { c.best_step = 3; }),
            Catch::Contains("best_step 3 is not a validation step"));
  }
  SECTION("BatchNorm statistics or an architecture that do not fit the flow") {
    const auto bn_flow = [] { return batch_norm_flow<double>(); };
    TrainerOptions bn_options = options;
    bn_options.checkpoint_path = dir / "bn.ckpt";
    {
      auto flow = bn_flow();
      Trainer(flow, Adam<double>(flow), bn_options).fit(data);
    }
    const TrainingCheckpoint<double> good = load_checkpoint<double>(bn_options.checkpoint_path);
    REQUIRE(good.model_state.buffers.size() == 4);
    auto flow = bn_flow();
    Trainer trainer(flow, Adam<double>(flow), bn_options);
    const auto with = [&](const auto& change) { return resume_changed(trainer, good, change); };
    const std::string mean = "bijector.4.running_mean", variance = "bijector.1.running_variance";
    const auto longer_mean = with([&](auto& c) { c.model_state.buffers[mean].push_back(0.5); });
    CHECK_THROWS_AS(longer_mean(), FormatError);
    rejects(flow, trainer, longer_mean,
            Catch::Contains("Trainer::resume") && Catch::Contains("bad.ckpt") && Catch::Contains(mean) &&
                Catch::Contains("shape [3]") && Catch::Contains("needs [2]"));
    rejects(flow, trainer, with([&](auto& c) { c.model_state.buffers.erase(mean); }),
            Catch::Contains("bad.ckpt") && Catch::Contains(mean) && Catch::Contains("missing tensor"));
    rejects(flow, trainer, with([](auto& c) {
              c.model_state.buffers["bijector.0.running_mean"] = {1, 2};
            }),
            Catch::Contains("bad.ckpt") && Catch::Contains("bijector.0.running_mean") &&
                Catch::Contains("not part of the flow's architecture"));
    rejects(flow, trainer, with([&](auto& c) { c.model_state.buffers[variance][1] = -1; }),
            Catch::Contains("bad.ckpt") && Catch::Contains("running variance must be positive, got -1"));
    rejects(flow, trainer, with([&](auto& c) {
              c.model_state.buffers[variance][0] = std::numeric_limits<double>::quiet_NaN();
            }),
            Catch::Contains("load_checkpoint") && Catch::Contains("bad.ckpt") &&
                Catch::Contains("'model." + variance + "' has a non-finite value nan at index 0"));
    rejects(flow, trainer, with([](auto& c) {
              const auto at = c.model_state.architecture.find("\"momentum\":");
              c.model_state.architecture.insert(at + 11, "1");  // 0.1 becomes 10.1
            }),
            Catch::Contains("bad.ckpt") && Catch::Contains("bijector.parts[1].momentum") &&
                Catch::Contains("the flow has 0.1, the file has 10.1"));
    rejects(flow, trainer, with([](auto& c) { c.model_state.architecture = "{\"type\": [1, 2"; }),
            Catch::Contains("load_checkpoint") && Catch::Contains("bad.ckpt") &&
                Catch::Contains("not valid JSON"));
    rejects(flow, trainer, with([](auto& c) { c.model_state = {}; }),
            Catch::Contains("bad.ckpt") && Catch::Contains("holds no running statistics"));
    // and a checkpoint of a flow without BatchNorm into one with it, and the other way round
    rejects(
        flow, trainer, [&] { return trainer.resume(path, data); },
        Catch::Contains("Trainer::resume") && Catch::Contains("good.ckpt"));
    auto plain = fresh();
    Trainer plain_trainer(plain, Adam<double>(plain), options);
    rejects(
        plain, plain_trainer, [&] { return plain_trainer.resume(bn_options.checkpoint_path, data); },
        Catch::Contains("Trainer::resume") && Catch::Contains("bn.ckpt"));
  }
}

TEST_CASE("A failed checkpoint write leaves the previous checkpoint intact", "[train][checkpoint][atomic]") {
  Rng rng(6);
  const Matrix<double> data = shifted_normal<double>(2, 100, rng, 1.0);
  const auto adam = [](auto& flow) { return Adam<double>(flow, {.lr = 0.05}); };
  const auto make_flow = [] { return affine_flow<double>(); };
  const TrainerOptions base = without_progress({.batch_size = 25, .max_steps = 20, .seed = 2});
  const auto uninterrupted = train(make_flow, adam, base, [&](auto& t, auto&) { return t.fit(data); });
  const TempDir dir;
  const fs::path path = dir / "run.ckpt";
  TrainerOptions options = base;
  options.checkpoint_every = 5;
  options.checkpoint_path = path;
  options.checkpoint_write.chunk_bytes = 64;  // so the failure strikes with part of the file written

  SECTION("an exception midway through the second save") {
    int saves = 0;
    options.checkpoint_write.fault_hook = [&](io::WriteStep step, std::size_t written) {
      if (step == io::WriteStep::created_temporary) ++saves;
      if (saves == 2 && step == io::WriteStep::wrote_chunk && written >= 256)
        throw std::runtime_error("disk on fire");
    };
    auto flow = make_flow();
    Trainer trainer(flow, adam(flow), options);
    CHECK_THROWS_WITH(trainer.fit(data), "disk on fire");
    CHECK(dir.entries().size() == 1);  // the temporary was removed
  }
  SECTION("the process dies midway through the second save") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      int saves = 0;
      options.checkpoint_write.fault_hook = [&](io::WriteStep step, std::size_t written) {
        if (step == io::WriteStep::created_temporary) ++saves;
        if (saves == 2 && step == io::WriteStep::wrote_chunk && written >= 256) ::_exit(0);
      };
      try {
        auto flow = make_flow();
        Trainer trainer(flow, adam(flow), options);
        trainer.fit(data);
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(1);  // not reached when the hook fires
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(dir.entries().size() == 2);  // a stale temporary beside the intact checkpoint
  }
  // either way the checkpoint of step 5 is whole, and the run resumes from it to the same end
  const TrainingCheckpoint<double> kept = load_checkpoint<double>(path);
  CHECK(kept.step == 5);
  options.checkpoint_write = {};
  const auto resumed = train(make_flow, adam, options, [&](auto& t, auto&) { return t.resume(path, data); });
  require_same(resumed, uninterrupted);
}

TEST_CASE("A run counting epochs resumes bit for bit", "[train][checkpoint][epochs]") {
  Rng rng(9);
  const Matrix<double> data = shifted_normal<double>(2, 300, rng, 1.5);
  const auto make_flow = [] { return affine_flow<double>(); };
  const auto adam = [](auto& flow) { return Adam<double>(flow, {.lr = 0.05}); };
  // 240 training columns in batches of 32: 8 steps per epoch, the last with 16 columns
  const TrainerOptions options =
      without_progress({.batch_size = 32, .epochs = 6, .seed = 5, .validation_fraction = 0.2});
  SECTION("interrupted mid-epoch") {
    const auto h = check_resume(make_flow, adam, options, 5, 13, data);
    CHECK(h.history.steps == 48);
    CHECK(h.history.epochs.size() == 6);
    CHECK(h.history.validation.size() == 7);
  }
  SECTION("interrupted at the end of an epoch") { check_resume(make_flow, adam, options, 8, 16, data); }
  SECTION("with the initial model the best, restored after early stopping") {
    // training data N(4, I), validation data N(0, I): every epoch worsens the initial fit
    const Matrix<double> train_data = shifted_normal<double>(2, 100, rng, 4.0);
    const Matrix<double> validation = shifted_normal<double>(2, 60, rng, 0.0);
    const TrainerOptions stopping =
        without_progress({.batch_size = 32, .epochs = 50, .seed = 2, .patience = 3});
    const auto h = check_resume(
        make_flow, adam, stopping, 3, 5, [&](auto& trainer) { return trainer.fit(train_data, validation); },
        [&](auto& trainer, const fs::path& p) { return trainer.resume(p, train_data, validation); });
    CHECK(h.history.stop_reason == StopReason::early_stopping);
    CHECK(h.history.best_step == 0);
    CHECK(h.history.restored_best);
    CHECK(h.parameters == copy_of(make_flow().parameters()));
  }
}

TEST_CASE("A checkpoint of format version 2 (a run counting steps) still resumes", "[train][checkpoint]") {
  Rng rng(10);
  const Matrix<double> data = shifted_normal<double>(2, 120, rng, 0.5);
  const auto make_flow = [] { return affine_flow<double>(); };
  const auto adam = [](auto& flow) { return Adam<double>(flow, {.lr = 0.05}); };
  const TempDir dir;
  const TrainerOptions options = without_progress(
      {.batch_size = 20, .max_steps = 10, .seed = 3, .validation_fraction = 0.25, .validation_every = 2});
  const auto uninterrupted = train(make_flow, adam, options, [&](auto& t, auto&) { return t.fit(data); });
  TrainerOptions first = options;
  first.checkpoint_every = 5;
  first.checkpoint_path = dir / "v3.ckpt";
  first.on_step = [](const StepInfo& info) {
    return info.step == 5 ? StepAction::stop : StepAction::proceed;
  };
  (void)train(make_flow, adam, first, [&](auto& t, auto&) { return t.fit(data); });
  // the same file as version 2 wrote it: no epochs entry
  const io::SafetensorsFile file = io::SafetensorsFile::load(first.checkpoint_path);
  REQUIRE(file.metadata().at("epochs") == "0");
  io::SafetensorsWriter w;
  for (const io::TensorInfo& t : file.tensors()) {
    const std::vector<double> values = file.read<double>(t.name);
    w.add(t.name, std::span<const double>(values), t.shape);
  }
  for (const auto& [key, value] : file.metadata())
    if (key != "epochs" && key != "knead.data_crc32")
      w.set_metadata(key, key == "format_version" ? "2" : value);
  w.write(dir / "v2.ckpt");
  const TrainingCheckpoint<double> c = load_checkpoint<double>(dir / "v2.ckpt");
  CHECK(c.epochs == 0);
  CHECK(c.step == 5);
  TrainerOptions second = options;
  second.checkpoint_every = 5;
  second.checkpoint_path = dir / "v3.ckpt";
  const auto resumed =
      train(make_flow, adam, second, [&](auto& t, auto&) { return t.resume(dir / "v2.ckpt", data); });
  require_same(resumed, uninterrupted);
  // a run counting epochs does not continue a run counting steps
  TrainerOptions by_epoch = second;
  by_epoch.epochs = 2;
  auto flow = make_flow();
  Trainer trainer(flow, adam(flow), by_epoch);
  CHECK_THROWS_WITH(trainer.resume(dir / "v2.ckpt", data), Catch::Contains("Trainer::resume") &&
                                                               Catch::Contains("epochs = 0") &&
                                                               Catch::Contains("the options have 2"));
}
