// distill_iaf: Parallel WaveNet style distillation (van den Oord et al. 2018, "Parallel WaveNet").
// A MAF teacher is fitted to the data by maximum likelihood (fast density, slow sampling); an IAF
// student (fast sampling, slow density) then learns the teacher's distribution by minimising the
// reverse KL divergence on its own samples:
//
//   KL(student ‖ teacher) = E_{x ~ student}[log q(x) − log p(x)],
//
// with x and log q(x) from one sample_and_log_prob pass (reparameterised, so the gradient flows
// through x into the teacher's density). The reverse KL is mode-seeking: started from the identity,
// the student settles on one moon of Two Moons (the estimate stalls at log 2). So the student phase
// starts with a warm-up by maximum likelihood on fresh teacher samples (the forward KL), then
// minimises the reverse KL with its own Adam, a lower learning rate and a short learning-rate ramp.
//
// In two dimensions a MAF samples in two sequential steps that together cost about one network
// pass, so an IAF of the teacher's size samples only slightly faster in large batches (the gap
// shows when samples are drawn one per call). The default student is therefore deeper but
// narrower (8 layers of 64, 64 against the teacher's 4 of 128, 128): fewer operations per sample.
//
// Reports both flows' test NLL, both KL estimates and both sampling throughputs, draws pictures and
// writes summary.json, the teacher (OUT/teacher.safetensors) and the student (OUT/model.safetensors).
// With --checkpoint-every, the teacher's Trainer and the student loop save
// their whole state (knead/train/checkpoint.hpp) so that --resume-teacher / --resume continue a run.
//
//   distill_iaf --dataset moons --out out/distill

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <locale>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "knead/core/threads.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/optim/adam.hpp"
#include "knead/optim/clip.hpp"
#include "knead/train/checkpoint.hpp"
#include "knead/train/trainer.hpp"

namespace {

using example::Index;
using example::Matrix;
using Flow = knead::TransformedDistribution<knead::StandardNormal<double>, knead::DynamicChain<double>>;
using RowVector = knead::RowVector<double>;

struct Options {
  std::string dataset = "moons";
  Index layers = 4;
  std::vector<Index> hidden = {128, 128};
  Index student_layers = 8;
  std::vector<Index> student_hidden = {64, 64};
  Index teacher_steps = 5000;
  Index batch = 512;
  double lr = 1e-3;
  Index warmup_steps = 2000;
  Index student_steps = 2000;
  Index student_batch = 512;
  double warmup_lr = 1e-3;
  double student_lr = 3e-4;
  Index student_lr_warmup = 100;
  double guard_bound = 5.0;
  bool sticking_the_landing = false;
  std::uint64_t seed = 0;
  Index train_size = 20000;
  double noise = 0.05;
  int threads = 1;
  Index checkpoint_every = 0;
  std::string resume, resume_teacher, load_teacher;
  bool quiet = false;
  std::string out = "out/distill";

  [[nodiscard]] Index student_total() const { return warmup_steps + student_steps; }
};

Flow make(knead::FlowKind kind, Index layers, const std::vector<Index>& hidden, double guard_bound,
          std::uint64_t seed) {
  knead::FlowSpec<double> spec;
  spec.kind = kind;
  spec.dim = 2;
  spec.layers = layers;
  spec.hidden = hidden;
  spec.seed = seed;
  if (guard_bound > 0)
    spec.guard.bound = guard_bound;
  else
    spec.guard.kind = knead::LogScaleGuardKind::none;
  return Flow(knead::StandardNormal<double>(2), knead::make_flow(spec));
}

double mean_nll(Flow& flow, const Matrix& x) {
  RowVector lp;
  flow.log_prob(x, lp);
  return -lp.mean();
}

/// Samples per second drawn one per call: the latency-bound case, where a MAF's sequential
/// sampling steps (one per dimension) cost the most against an IAF's single pass.
double one_at_a_time_rate(Flow& flow, std::uint64_t seed) {
  knead::Rng rng(seed);
  Matrix x;
  constexpr int calls = 2000;
  return calls / example::best_seconds([&] {
           for (int i = 0; i < calls; ++i) flow.sample(1, rng, x);
         });
}

/// An estimate and its standard error.
struct Estimate {
  double value = 0, standard_error = 0;
};
Estimate mean_of(const RowVector& v) {
  const double m = v.mean();
  const double var = (v.array() - m).square().sum() / double(std::max<Index>(v.size() - 1, 1));
  return {m, std::sqrt(var / double(v.size()))};
}

/// KL(student ‖ teacher) on n student samples, and KL(teacher ‖ student) on n teacher samples.
std::pair<Estimate, Estimate> kl_estimates(Flow& student, Flow& teacher, Index n, std::uint64_t seed) {
  knead::Rng rng(seed);
  Matrix x;
  RowVector log_q, log_p;
  student.sample_and_log_prob(n, rng, x, log_q);
  teacher.log_prob(x, log_p);
  const Estimate reverse = mean_of(log_q - log_p);
  teacher.sample(n, rng, x);
  teacher.log_prob(x, log_p);
  student.log_prob(x, log_q);
  return {reverse, mean_of(log_p - log_q)};
}

/// The student phase: `warmup_steps` steps of maximum likelihood on fresh teacher samples, then
/// `student_steps` steps of reverse KL on fresh student samples, each phase with its own Adam and
/// cosine schedule. Every checkpoint_every steps the whole state is saved with knead's checkpoint
/// format (save_checkpoint), so that resume() continues bit for bit (single thread). The loop is not
/// a Trainer, so the fields mean: train_samples and sampler.batch_size the samples drawn per step,
/// sampler.engine the random engine they come from (sampler.order is the identity), optimizer.state
/// the Adam of the phase the step belongs to, history.train_loss the per-step KL estimates and the
/// validation records the student's validation NLL.
class StudentTrainer {
 public:
  StudentTrainer(Flow& student, Flow& teacher, const Options& o, const Matrix& validation)
      : student_(student),
        teacher_(teacher),
        o_(o),
        validation_(validation),
        warmup_(student.num_parameters(), adam(o.warmup_lr, o.warmup_steps, 0)),
        reverse_(student.num_parameters(), adam(o.student_lr, o.student_steps, o.student_lr_warmup)),
        rng_(o.seed + 31) {}

  /// Continues from a checkpoint written by a run with the same options, data and teacher.
  void resume(const std::string& path) {
    const knead::TrainingCheckpoint<double> c = knead::load_checkpoint<double>(path);
    const auto mismatch = [&](const std::string& what) {
      throw std::invalid_argument("--resume: checkpoint '" + path + "' " + what);
    };
    if (c.parameters.size() != student_.parameters().size())
      mismatch("holds " + std::to_string(c.parameters.size()) + " parameters, the student has " +
               std::to_string(student_.parameters().size()));
    if (c.train_samples != o_.student_batch || c.seed != o_.seed || c.step > o_.student_total() ||
        c.validation_samples != validation_.cols() || c.optimizer != "Adam")
      mismatch("is not a student checkpoint of these options (samples per step " +
               std::to_string(c.train_samples) + ", seed " + std::to_string(c.seed) + ", step " +
               std::to_string(c.step) + "; a teacher checkpoint goes to --resume-teacher)");
    knead::Adam<double>& optimizer = c.step <= o_.warmup_steps ? warmup_ : reverse_;
    optimizer.set_state(std::span<const double>(c.optimizer_state), c.optimizer_step_count);
    std::istringstream engine(c.sampler.engine);
    engine.imbue(std::locale::classic());
    engine >> rng_;
    if (engine.fail()) mismatch("has a bad random engine state");
    std::ranges::copy(c.parameters, student_.parameters().begin());
    loss_ = c.train_loss;
    validation_nll_.clear();
    for (std::size_t i = 0; i < c.validation_step.size(); ++i)
      validation_nll_.emplace_back(double(c.validation_step[i]), c.validation_nll[i]);
    step_ = c.step;
    seconds_before_ = c.seconds;
  }

  void run() {
    const auto start = std::chrono::steady_clock::now();
    const Index first = step_;
    const Index total = o_.student_total();
    const Index validate_every = std::max<Index>(1, std::min<Index>(250, total / 20));
    while (step_ < total) {
      ++step_;
      const bool warming_up = step_ <= o_.warmup_steps;
      const double loss = warming_up ? warmup_step() : reverse_kl_step();
      loss_.push_back(loss);
      if (step_ % validate_every == 0 || step_ == total || step_ == o_.warmup_steps)
        validation_nll_.emplace_back(double(step_), mean_nll(student_, validation_));
      if (o_.checkpoint_every > 0 && step_ % o_.checkpoint_every == 0) save(seconds_since(start));
      if (!o_.quiet && (step_ % 250 == 0 || step_ == total)) {
        const double rate = double(step_ - first) / std::max(seconds_since(start), 1e-9);
        const Index phase_start = warming_up ? 0 : o_.warmup_steps;
        const auto from = std::size_t(std::max<Index>(step_ - 250, phase_start));
        const double recent = std::accumulate(loss_.begin() + std::ptrdiff_t(from), loss_.end(), 0.0) /
                              double(loss_.size() - from);
        std::fprintf(stderr, "student step %ld/%ld  %s %.4f  val NLL %.4f  %.1f steps/s\n", long(step_),
                     long(total), warming_up ? "warm-up, forward KL estimate" : "reverse KL estimate", recent,
                     validation_nll_.back().second, rate);
      }
    }
    seconds_ = seconds_before_ + seconds_since(start);
  }

  [[nodiscard]] const std::vector<double>& loss() const { return loss_; }
  [[nodiscard]] const std::vector<std::pair<double, double>>& validation_nll() const {
    return validation_nll_;
  }
  [[nodiscard]] double seconds() const { return seconds_; }
  /// Mean loss of steps (from, to], clamped to the steps taken (NaN, i.e. null in JSON, if none).
  [[nodiscard]] double mean_loss(Index from, Index to) const {
    from = std::clamp<Index>(from, 0, Index(loss_.size()));
    to = std::clamp<Index>(to, from, Index(loss_.size()));
    if (to == from) return std::nan("");
    return std::accumulate(loss_.begin() + from, loss_.begin() + to, 0.0) / double(to - from);
  }
  /// The validation NLL recorded at `step` (NaN if none).
  [[nodiscard]] double validation_nll_at(Index step) const {
    for (const auto& [s, nll] : validation_nll_)
      if (Index(s) == step) return nll;
    return std::nan("");
  }

 private:
  static knead::AdamOptions adam(double lr, Index steps, Index lr_warmup) {
    knead::AdamOptions a;
    const Index total = std::max<Index>(steps, 1);
    a.lr = knead::LrSchedule::cosine(lr, total, std::min(lr_warmup, total), lr * 0.02);
    return a;
  }

  /// Maximum likelihood of the student on a fresh batch of teacher samples; returns the forward
  /// KL estimate mean(log p(x) − log q(x)) (the NLL minus the teacher's entropy estimate).
  double warmup_step() {
    teacher_.sample_and_log_prob(o_.student_batch, rng_, x_, log_p_);
    student_.zero_gradients();
    const double nll = student_.mean_nll_and_backward(x_);
    update(warmup_, nll);
    return log_p_.mean() + nll;
  }

  /// L = mean(log q(x) − log p(x)) on a fresh batch x of the student's samples:
  ///   ∂L/∂x = −(1/N) ∂log p/∂x (through the teacher's density),
  ///   ∂L/∂log q = 1/N (the student's density of its own samples).
  double reverse_kl_step() {
    const Index n = o_.student_batch;
    student_.zero_gradients();
    teacher_.zero_gradients();  // the teacher's parameter gradients are a by-product, never used
    const knead::Rng before = rng_;
    student_.sample_and_log_prob(n, rng_, x_, log_q_);
    if (o_.sticking_the_landing) {
      // ∂L/∂x gets (1/N) ∂log q/∂x at fixed parameters; the score term is dropped (zero mean)
      student_.log_prob(x_, log_q_x_);
      student_.backward_log_prob(RowVector::Constant(n, 1.0 / double(n)), grad_q_);
      student_.zero_gradients();
      knead::Rng again = before;
      student_.sample_and_log_prob(n, again, x_, log_q_);  // the same samples, to differentiate
    }
    teacher_.log_prob(x_, log_p_);
    const double loss = (log_q_ - log_p_).mean();
    teacher_.backward_log_prob(RowVector::Constant(n, -1.0 / double(n)), grad_x_);
    if (o_.sticking_the_landing) {
      grad_x_ += grad_q_;
      student_.backward_sample_and_log_prob(grad_x_, RowVector::Zero(n));
    } else {
      student_.backward_sample_and_log_prob(grad_x_, RowVector::Constant(n, 1.0 / double(n)));
    }
    update(reverse_, loss);
    return loss;
  }

  void update(knead::Adam<double>& optimizer, double loss) {
    const std::span<double> grads = student_.gradients();
    if (!std::isfinite(loss) || !std::ranges::all_of(grads, [](double g) { return std::isfinite(g); }))
      throw std::runtime_error("student step " + std::to_string(step_) + ": non-finite loss (" +
                               std::to_string(loss) + ") or gradient");
    knead::clip_gradient_norm(grads, 100.0);
    optimizer.step(student_.parameters(), grads);
  }

  void save(double seconds_now) const {
    knead::TrainingCheckpoint<double> c;
    c.step = step_;
    c.dim = student_.dim();
    // the "training set" of a step is its fresh batch of samples, drawn from rng_
    c.train_samples = o_.student_batch;
    c.validation_samples = validation_.cols();
    c.seed = o_.seed;
    c.parameters.assign(student_.parameters().begin(), student_.parameters().end());
    const knead::Adam<double>& optimizer = step_ <= o_.warmup_steps ? warmup_ : reverse_;
    c.optimizer = "Adam";
    c.optimizer_state.assign(optimizer.state().begin(), optimizer.state().end());
    c.optimizer_step_count = optimizer.step_count();
    std::ostringstream engine;
    engine.imbue(std::locale::classic());
    engine << rng_;
    c.sampler.engine = engine.str();
    c.sampler.order.resize(std::size_t(o_.student_batch));
    std::iota(c.sampler.order.begin(), c.sampler.order.end(), Index(0));
    c.sampler.batch_size = o_.student_batch;
    c.train_loss = loss_;
    for (const auto& [step, nll] : validation_nll_) {
      c.validation_step.push_back(Index(step));
      c.validation_nll.push_back(nll);
    }
    c.seconds = seconds_before_ + seconds_now;
    knead::save_checkpoint(c, o_.out + "/student_checkpoint.safetensors");
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  Flow& student_;
  Flow& teacher_;
  const Options& o_;
  const Matrix& validation_;
  knead::Adam<double> warmup_, reverse_;
  knead::Rng rng_;
  Index step_ = 0;
  double seconds_before_ = 0, seconds_ = 0;
  std::vector<double> loss_;
  std::vector<std::pair<double, double>> validation_nll_;
  Matrix x_, grad_x_, grad_q_;
  RowVector log_q_, log_p_, log_q_x_;
};

/// The student's losses against its step (moving averages; warm-up and reverse KL in their own
/// colours) and its validation NLL minus the teacher's.
void student_loss_png(const std::string& path, const std::vector<double>& loss, Index warmup_steps,
                      const std::vector<std::pair<double, double>>& validation,
                      double teacher_validation_nll) {
  std::vector<double> steps[2], smooth[2], vs, gap;
  double avg = loss.empty() ? 0 : loss.front();
  for (std::size_t i = 0; i < loss.size(); ++i) {
    const int phase = Index(i) < warmup_steps ? 0 : 1;
    if (Index(i) == warmup_steps) avg = loss[i];
    avg = 0.98 * avg + 0.02 * loss[i];
    steps[phase].push_back(double(i + 1));
    smooth[phase].push_back(avg);
  }
  for (const auto& [s, nll] : validation) {
    vs.push_back(s);
    gap.push_back(nll - teacher_validation_nll);
  }
  double lo = 0, hi = 0;
  for (const auto* v : {&smooth[0], &smooth[1], &gap})
    for (const double y : *v) lo = std::min(lo, y), hi = std::max(hi, y);
  hi = std::min(hi, 2.0);  // the first steps' losses would flatten the rest
  const double pad = 0.05 * (hi - lo + 1e-9);
  plot::Figure fig(1, 1, 760, 440);
  auto ax = fig.axes(0, 0, {0, double(std::max<std::size_t>(loss.size(), 1)), lo - pad, hi + pad},
                     {.title = "IAF student: warm-up, then reverse KL",
                      .x_label = "student step",
                      .y_label = "nats (standardised)",
                      .grid = true});
  const plot::Color c0 = plot::colors::series[0], c1 = plot::colors::series[1], c2 = plot::colors::series[2];
  ax.line(steps[0], smooth[0], c0, 1.5);
  ax.line(steps[1], smooth[1], c1, 1.5);
  ax.line(vs, gap, c2, 2.0);
  ax.legend({{"warm-up: forward KL(teacher || student) estimate", c0},
             {"reverse KL(student || teacher) estimate", c1},
             {"validation NLL, student minus teacher", c2}});
  fig.save_png(path);
}

int run(const Options& o) {
  knead::set_num_threads(o.threads);
  std::filesystem::create_directories(o.out);
  const auto start = std::chrono::steady_clock::now();
  const example::Dataset data = example::load_dataset(o.dataset, o.train_size, o.noise, o.seed);

  // ---- teacher: MAF by maximum likelihood (or loaded) ----
  Flow teacher = o.load_teacher.empty()
                     ? make(knead::FlowKind::maf, o.layers, o.hidden, o.guard_bound, o.seed)
                     // a float file (train_2d's default precision) becomes double exactly
                     : knead::load_as<Flow>(o.load_teacher, knead::ScalarConversion::allow);
  knead::TrainingHistory history;
  if (o.load_teacher.empty()) {
    knead::TrainerOptions options;
    options.batch_size = o.batch;
    options.max_steps = std::max<Index>(o.teacher_steps, 1);
    options.seed = o.seed;
    options.validation_every = std::max<Index>(1, std::min<Index>(250, o.teacher_steps / 20));
    options.max_gradient_norm = 100.0;
    options.progress = o.quiet ? nullptr : &std::cerr;
    options.checkpoint_every = o.checkpoint_every;
    if (o.checkpoint_every > 0) options.checkpoint_path = o.out + "/teacher_checkpoint.safetensors";
    knead::AdamOptions adam;
    adam.lr = knead::LrSchedule::cosine(o.lr, std::max<Index>(o.teacher_steps, 1), 0, o.lr * 0.02);
    knead::Trainer trainer(teacher, knead::Adam<double>(teacher.num_parameters(), adam), options);
    if (!o.resume_teacher.empty())
      history = trainer.resume(o.resume_teacher, data.train, data.validation);
    else if (o.teacher_steps > 0)
      history = trainer.fit(data.train, data.validation);
  }
  teacher.set_training(false);
  knead::save(teacher, o.out + "/teacher.safetensors");

  // ---- student: IAF, warm-up then reverse KL ----
  Flow student = make(knead::FlowKind::iaf, o.student_layers, o.student_hidden, o.guard_bound, o.seed + 17);
  StudentTrainer distiller(student, teacher, o, data.validation);
  if (!o.resume.empty()) distiller.resume(o.resume);
  distiller.run();
  student.set_training(false);
  // The product of this program is the student: saved as model.safetensors like train_2d's flow, so
  // `train_2d --load OUT/model.safetensors --steps 0` evaluates and draws it.
  knead::save(student, o.out + "/model.safetensors");

  // ---- evaluation ----
  const double teacher_nll = mean_nll(teacher, data.test), student_nll = mean_nll(student, data.test);
  const double teacher_val_nll = mean_nll(teacher, data.validation);
  const double student_val_nll = mean_nll(student, data.validation);
  const auto [reverse_kl, forward_kl] = kl_estimates(student, teacher, 100000, o.seed + 3);
  const auto [teacher_sps, teacher_dps] = example::throughput(teacher, 20000, o.seed + 7);
  const auto [student_sps, student_dps] = example::throughput(student, 20000, o.seed + 7);
  const double teacher_single = one_at_a_time_rate(teacher, o.seed + 8);
  const double student_single = one_at_a_time_rate(student, o.seed + 8);
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  knead::Rng rng(o.seed + 99);
  const plot::Limits view = example::view_of(data.train);
  example::scatter_png(o.out + "/data.png", data.train, view, "training data (standardised)",
                       plot::colors::series[0]);
  example::scatter_png(o.out + "/teacher_samples.png", teacher.sample(20000, rng), view,
                       "MAF teacher samples", plot::colors::series[1]);
  example::scatter_png(o.out + "/student_samples.png", student.sample(20000, rng), view,
                       "IAF student samples", plot::colors::series[2]);
  example::density_png(o.out + "/teacher_density.png", teacher, view, "MAF teacher log density");
  example::density_png(o.out + "/student_density.png", student, view, "IAF student log density");
  example::taffy_png(o.out + "/student_taffy.png", student, 4000, o.seed + 5);
  student_loss_png(o.out + "/distill_loss.png", distiller.loss(), o.warmup_steps, distiller.validation_nll(),
                   teacher_val_nll);

  const auto estimate = [](const Estimate& e) {
    return nlohmann::json{{"value", e.value}, {"standard_error", e.standard_error}};
  };
  nlohmann::json summary = {
      {"dataset", o.dataset},
      {"seed", o.seed},
      {"threads", o.threads},
      {"guard_bound", o.guard_bound},
      {"teacher",
       {{"flow", o.load_teacher.empty() ? "maf" : "loaded"},
        {"layers", o.layers},
        {"hidden", o.hidden},
        {"parameters", teacher.num_parameters()},
        {"steps", history.steps},
        {"batch", o.batch},
        {"lr", o.lr},
        {"train_seconds", history.seconds},
        {"val_nll", teacher_val_nll},
        {"test_nll", teacher_nll},
        {"samples_per_second", teacher_sps},
        {"samples_per_second_one_per_call", teacher_single},
        {"densities_per_second", teacher_dps}}},
      {"student",
       {{"flow", "iaf"},
        {"layers", o.student_layers},
        {"hidden", o.student_hidden},
        {"parameters", student.num_parameters()},
        {"objective", "reverse KL(student || teacher) on the student's own samples, after a warm-up"},
        {"warmup",
         {{"objective", "maximum likelihood of the student on fresh teacher samples (forward KL)"},
          {"steps", o.warmup_steps},
          {"lr", o.warmup_lr}}},
        {"reverse_kl",
         {{"steps", o.student_steps},
          {"lr", o.student_lr},
          {"lr_warmup_steps", o.student_lr_warmup},
          {"gradient", o.sticking_the_landing ? "sticking the landing (path derivative only)"
                                              : "total (through the samples and log q)"},
          {"mean_kl_estimate_first_100_steps", distiller.mean_loss(o.warmup_steps, o.warmup_steps + 100)},
          {"mean_kl_estimate_last_100_steps",
           distiller.mean_loss(o.student_total() - 100, o.student_total())}}},
        {"samples_per_step", o.student_batch},
        {"val_nll_after_warmup", distiller.validation_nll_at(o.warmup_steps)},
        {"val_nll", student_val_nll},
        {"train_seconds", distiller.seconds()},
        {"test_nll", student_nll},
        {"samples_per_second", student_sps},
        {"samples_per_second_one_per_call", student_single},
        {"densities_per_second", student_dps}}},
      {"reverse_kl_estimate", estimate(reverse_kl)},
      {"forward_kl_estimate", estimate(forward_kl)},
      {"kl_estimates_on", "100000 samples of the student (reverse) and of the teacher (forward)"},
      {"nll_coordinates", "standardised with the training split's mean and standard deviation"},
      {"test_set", data.test_description},
      {"student_minus_teacher_nll", student_nll - teacher_nll},
      {"throughput_batch", 20000},
      {"sampling_speedup", student_sps / teacher_sps},
      {"sampling_speedup_one_per_call", student_single / teacher_single},
      {"total_seconds", total_seconds}};
  if (!o.load_teacher.empty()) {  // its architecture is the file's, not --layers / --hidden
    summary["teacher"].erase("layers");
    summary["teacher"].erase("hidden");
    summary["teacher"]["loaded_from"] = o.load_teacher;
  }
  if (!o.resume.empty()) summary["student"]["resumed_from"] = o.resume;
  example::write_json(o.out + "/summary.json", summary);
  std::printf(
      "teacher MAF test NLL %.4f, student IAF test NLL %.4f (difference %.4f)\n"
      "KL(student||teacher) %.4f +- %.4f, KL(teacher||student) %.4f +- %.4f\n"
      "sampling per s, teacher vs student: %.0f vs %.0f in batches of 20000 (student %.2fx), %.0f vs %.0f "
      "one per call (%.2fx)\n"
      "%.1f s -> %s/\n",
      teacher_nll, student_nll, student_nll - teacher_nll, reverse_kl.value, reverse_kl.standard_error,
      forward_kl.value, forward_kl.standard_error, teacher_sps, student_sps, student_sps / teacher_sps,
      teacher_single, student_single, student_single / teacher_single, total_seconds, o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Distil a MAF teacher into an IAF student (Parallel WaveNet style). The teacher is fitted to the data "
      "by "
      "maximum likelihood (or loaded); the student first warms up by maximum likelihood on fresh teacher "
      "samples (--warmup-steps), then minimises the reverse KL(student || teacher) on its own samples "
      "(--student-steps)."};
  app.option_defaults()->always_capture_default();
  Options o;
  app.add_option("--dataset", o.dataset, "moons, siggraph, or the path of a CSV file with two columns");
  app.add_option("--layers", o.layers, "layers of the teacher")->check(CLI::PositiveNumber);
  app.add_option("--hidden", o.hidden, "hidden layer sizes of the teacher, e.g. 64,64")->delimiter(',');
  app.add_option("--student-layers", o.student_layers, "layers of the IAF student")
      ->check(CLI::PositiveNumber);
  app.add_option("--student-hidden", o.student_hidden, "hidden layer sizes of the student, e.g. 64,64")
      ->delimiter(',');
  app.add_option("--teacher-steps", o.teacher_steps, "maximum-likelihood steps of the MAF teacher")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", o.batch, "minibatch size of the teacher")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "peak learning rate of the teacher's cosine schedule")
      ->check(CLI::PositiveNumber);
  app.add_option(
         "--warmup-steps", o.warmup_steps,
         "student warm-up: steps of maximum likelihood on fresh teacher samples before the reverse KL "
         "(0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--warmup-lr", o.warmup_lr, "peak learning rate of the warm-up")->check(CLI::PositiveNumber);
  app.add_option("--student-steps", o.student_steps, "reverse-KL steps of the IAF student")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--student-lr", o.student_lr, "peak learning rate of the reverse-KL phase")
      ->check(CLI::PositiveNumber);
  app.add_option("--student-lr-warmup", o.student_lr_warmup,
                 "linear learning-rate warm-up steps of the reverse-KL phase")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--student-batch", o.student_batch, "samples per student step (warm-up and reverse KL)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--stl", o.sticking_the_landing, "sticking-the-landing gradient of the reverse KL");
  app.add_option("--guard-bound", o.guard_bound,
                 "bound c of the soft clamp c·tanh(a/c) of log-scales (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "seed");
  app.add_option("--train-size", o.train_size, "points generated for moons/siggraph")
      ->check(CLI::Range(Index(10), Index(100000000)));
  app.add_option("--noise", o.noise, "noise of the two moons")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "threads for batch parallelism")->check(CLI::Range(1, 256));
  app.add_option(
         "--checkpoint-every", o.checkpoint_every,
         "save the teacher's and the student's training state to OUT/teacher_checkpoint.safetensors and "
         "OUT/student_checkpoint.safetensors every N steps (0: never)")
      ->check(CLI::NonNegativeNumber);
  app.add_option(
      "--resume", o.resume,
      "continue the student run saved in this checkpoint (same options; the teacher must be the same: "
      "give --load-teacher OUT/teacher.safetensors, or it is trained again from the same seed)");
  auto* resume_teacher = app.add_option("--resume-teacher", o.resume_teacher,
                                        "continue the teacher run saved in this checkpoint");
  app.add_option("--load-teacher", o.load_teacher,
                 "use this MAF saved by knead::save (e.g. OUT/teacher.safetensors) as the teacher, untrained")
      ->excludes(resume_teacher);
  app.add_flag("--quiet", o.quiet, "no progress lines");
  app.add_option(
      "--out", o.out,
      "output directory (the student is saved as model.safetensors, the teacher as teacher.safetensors)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distill_iaf: %s\n", e.what());
    return 1;
  }
}
