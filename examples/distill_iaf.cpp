// distill_iaf: Parallel WaveNet style distillation (van den Oord et al. 2018, "Parallel WaveNet").
// A MAF teacher is fitted to the data by maximum likelihood (fast density, slow sampling); an IAF
// student (fast sampling, slow density) then learns the teacher's distribution by minimising the
// reverse KL divergence on its own samples:
//
//   KL(student ‖ teacher) = E_{x ~ student}[log q(x) − log p(x)],
//
// with x and log q(x) from one sample_and_log_prob pass (reparameterised, so the gradient flows
// through x into the teacher's density). Reports both flows' test NLL and sampling throughput.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/optim/adam.hpp"
#include "knead/optim/clip.hpp"
#include "knead/train/trainer.hpp"

namespace {

using example::Index;
using Flow = knead::TransformedDistribution<knead::StandardNormal<double>, knead::DynamicChain<double>>;

struct Options {
  std::string dataset = "moons";
  Index layers = 4;
  std::vector<Index> hidden = {128, 128};
  Index teacher_steps = 5000;
  Index student_steps = 3000;
  Index warmup_steps = 500;
  Index batch = 512;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  Index train_size = 20000;
  double noise = 0.05;
  bool quiet = false;
  std::string out = "out/distill";
};

Flow make(knead::FlowKind kind, const Options& o, std::uint64_t seed) {
  knead::FlowSpec<double> spec;
  spec.kind = kind;
  spec.dim = 2;
  spec.layers = o.layers;
  spec.hidden = o.hidden;
  spec.seed = seed;
  return Flow(knead::StandardNormal<double>(2), knead::make_flow(spec));
}

/// Forward-KL warm-up: maximum likelihood of the student on the teacher's samples. The reverse
/// KL is mode-seeking, so a student that starts far from the teacher can settle on one mode; a
/// short warm-up puts it near all of them first.
void warm_up(Flow& student, const Flow& teacher, const Options& o) {
  knead::Adam<double> optimizer(student.num_parameters(), knead::AdamOptions{.lr = o.lr});
  knead::Rng rng(o.seed + 57);
  example::Matrix x;
  for (Index step = 1; step <= o.warmup_steps; ++step) {
    teacher.sample(o.batch, rng, x);
    student.zero_gradients();
    const double nll = student.mean_nll_and_backward(x);
    if (!std::isfinite(nll))
      throw std::runtime_error("warm_up: non-finite loss at step " + std::to_string(step));
    knead::clip_gradient_norm(student.gradients(), 100.0);
    optimizer.step(student.parameters(), student.gradients());
  }
}

/// Minimises the reverse KL from the student to the teacher; returns the loss of every step.
std::vector<double> distill(Flow& student, Flow& teacher, const Options& o) {
  knead::AdamOptions adam;
  adam.lr = knead::LrSchedule::cosine(o.lr, std::max<Index>(o.student_steps, 1), 0, o.lr * 0.02);
  knead::Adam<double> optimizer(student.num_parameters(), adam);
  knead::Rng rng(o.seed + 31);
  example::Matrix x, grad_x;
  knead::RowVector<double> log_q, log_p;
  std::vector<double> losses;
  const double n = double(o.batch);
  const knead::RowVector<double> minus_one_over_n = knead::RowVector<double>::Constant(o.batch, -1.0 / n);
  const knead::RowVector<double> one_over_n = knead::RowVector<double>::Constant(o.batch, 1.0 / n);
  for (Index step = 1; step <= o.student_steps; ++step) {
    student.zero_gradients();
    student.sample_and_log_prob(o.batch, rng, x, log_q);
    teacher.log_prob(x, log_p);
    const double loss = (log_q - log_p).mean();
    if (!std::isfinite(loss))
      throw std::runtime_error("distill: non-finite loss at step " + std::to_string(step));
    // L = mean(log q − log p):  ∂L/∂x = −(1/N) ∂log p/∂x (the teacher's density),
    // ∂L/∂log q = 1/N (the student's own density of its samples)
    teacher.backward_log_prob(minus_one_over_n, grad_x);
    student.backward_sample_and_log_prob(grad_x, one_over_n);
    knead::clip_gradient_norm(student.gradients(), 100.0);
    optimizer.step(student.parameters(), student.gradients());
    losses.push_back(loss);
    if (!o.quiet && step % 250 == 0)
      std::fprintf(stderr, "distill step %ld/%ld  KL estimate %.4f\n", long(step), long(o.student_steps),
                   loss);
  }
  return losses;
}

int run(const Options& o) {
  std::filesystem::create_directories(o.out);
  const example::Dataset data = example::load_dataset(o.dataset, o.train_size, o.noise, o.seed);

  Flow teacher = make(knead::FlowKind::maf, o, o.seed);
  knead::TrainerOptions options;
  options.batch_size = o.batch;
  options.max_steps = o.teacher_steps;
  options.seed = o.seed;
  options.validation_every = std::max<Index>(1, std::min<Index>(250, o.teacher_steps / 20));
  options.max_gradient_norm = 100.0;
  options.progress = o.quiet ? nullptr : &std::cerr;
  knead::AdamOptions adam;
  adam.lr = knead::LrSchedule::cosine(o.lr, std::max<Index>(o.teacher_steps, 1), 0, o.lr * 0.02);
  knead::Trainer trainer(teacher, knead::Adam<double>(teacher.num_parameters(), adam), options);
  const auto history = trainer.fit(data.train, data.validation);

  Flow student = make(knead::FlowKind::iaf, o, o.seed + 17);
  const auto start = std::chrono::steady_clock::now();
  warm_up(student, teacher, o);
  const std::vector<double> kl = distill(student, teacher, o);
  const double distill_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  teacher.set_training(false);
  student.set_training(false);
  knead::save(teacher, o.out + "/teacher.safetensors");
  knead::save(student, o.out + "/student.safetensors");

  knead::Trainer<Flow> evaluator(student, {.progress = nullptr});
  const double teacher_nll = trainer.evaluate(data.test);
  const double student_nll = evaluator.evaluate(data.test);
  const auto [teacher_sps, teacher_dps] = example::throughput(teacher, 20000, o.seed + 7);
  const auto [student_sps, student_dps] = example::throughput(student, 20000, o.seed + 7);

  knead::Rng rng(o.seed + 99);
  const plot::Limits view = example::view_of(data.train);
  example::scatter_png(o.out + "/data.png", data.train, view, "training data (standardised)",
                       plot::colors::series[0]);
  example::scatter_png(o.out + "/teacher_samples.png", teacher.sample(20000, rng), view,
                       "MAF teacher samples", plot::colors::series[1]);
  example::scatter_png(o.out + "/student_samples.png", student.sample(20000, rng), view,
                       "IAF student samples", plot::colors::series[2]);
  example::density_png(o.out + "/student_density.png", student, view, "IAF student log density");
  example::taffy_png(o.out + "/student_taffy.png", student, 4000, o.seed + 5);
  example::loss_png(o.out + "/distill_loss.png", kl, {}, "reverse KL(student || teacher), estimate per step");

  nlohmann::json summary = {
      {"dataset", o.dataset},
      {"layers", o.layers},
      {"hidden", o.hidden},
      {"batch", o.batch},
      {"lr", o.lr},
      {"seed", o.seed},
      {"teacher",
       {{"flow", "maf"},
        {"steps", history.steps},
        {"train_seconds", history.seconds},
        {"test_nll", teacher_nll},
        {"samples_per_second", teacher_sps},
        {"densities_per_second", teacher_dps}}},
      {"student",
       {{"flow", "iaf"},
        {"steps", o.student_steps},
        {"train_seconds", distill_seconds},
        {"final_kl_estimate", kl.empty() ? 0.0 : kl.back()},
        {"test_nll", student_nll},
        {"samples_per_second", student_sps},
        {"densities_per_second", student_dps}}},
      {"nll_coordinates", "standardised with the training split's mean and standard deviation"},
      {"test_set", data.test_description},
      {"student_minus_teacher_nll", student_nll - teacher_nll},
      {"sampling_speedup", student_sps / teacher_sps}};
  example::write_json(o.out + "/summary.json", summary);
  std::printf(
      "teacher MAF test NLL %.4f, student IAF test NLL %.4f (difference %.4f); sampling %.0f vs %.0f per s "
      "(student %.1fx faster) -> %s/\n",
      teacher_nll, student_nll, student_nll - teacher_nll, teacher_sps, student_sps,
      student_sps / teacher_sps, o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Distil a MAF teacher into an IAF student by reverse KL (Parallel WaveNet style)"};
  Options o;
  app.add_option("--dataset", o.dataset, "moons, siggraph, or the path of a CSV file with two columns");
  app.add_option("--layers", o.layers, "layers of both flows")->check(CLI::PositiveNumber);
  app.add_option("--hidden", o.hidden, "hidden layer sizes, e.g. 64,64")->delimiter(',');
  app.add_option("--teacher-steps", o.teacher_steps, "maximum-likelihood steps of the MAF teacher")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--student-steps", o.student_steps, "reverse-KL steps of the IAF student")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--warmup-steps", o.warmup_steps,
                 "maximum-likelihood steps of the student on teacher samples before the reverse KL (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", o.batch, "batch size (data for the teacher, samples for the student)")
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "peak learning rate of both cosine schedules")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed");
  app.add_option("--train-size", o.train_size, "points generated for moons/siggraph")
      ->check(CLI::Range(Index(10), Index(100000000)));
  app.add_option("--noise", o.noise, "noise of the two moons")->check(CLI::NonNegativeNumber);
  app.add_flag("--quiet", o.quiet, "no progress lines");
  app.add_option("--out", o.out, "output directory");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distill_iaf: %s\n", e.what());
    return 1;
  }
}
