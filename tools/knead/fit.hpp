#pragma once
/// @file
/// `knead fit DATA -o MODEL`: fits a flow to a table and writes a model file (model_file.hpp).

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "dequantize.hpp"
#include "evaluation.hpp"
#include "knead/core/threads.hpp"
#include "knead/data/standardizer.hpp"
#include "knead/flows/builder.hpp"
#include "knead/optim/adam.hpp"
#include "knead/train/checkpoint.hpp"
#include "knead/train/minibatch.hpp"
#include "knead/train/trainer.hpp"
#include "logit.hpp"
#include "model_file.hpp"
#include "plot/loss_curve.hpp"
#include "progress.hpp"
#include "table.hpp"

namespace knead_cli {

struct FitOptions {
  std::string data, output, validation_file, test_file, columns, summary, loss_plot;
  std::string flow = "maf", precision = "float";
  std::string
      preprocessing;  ///< whiten, standardize or none; empty: whiten, or standardize with --dequantize
  Index layers = 5;
  std::vector<Index> hidden = {128, 128};
  bool act_norm = false;           ///< an ActNorm after each layer (FlowSpec::act_norm)
  std::string mixing = "permute";  ///< between layers: "permute" or "lu" (FlowSpec::mixing)
  Index batch = 256;
  double lr = 1e-3;
  double weight_decay = 0.0;
  std::string schedule = "cosine";  ///< "cosine" (to 2 % of lr) or "constant"
  Index epochs = 100;               ///< 0: no training; the model is the initial flow (the identity: with
                                    ///< whiten, the full-covariance Gaussian of the training rows)
  Index patience = 10;              ///< epochs without improvement before stopping (0: never)
  double log_scale_bound =
      2;  ///< c of each layer's soft clamp α = c·tanh(a/c) of its log-scales (bench/quality)
  double max_gradient_norm = 100;  ///< clip the global gradient norm to this (0: no clipping)
  Index checkpoint_every = 0;      ///< epochs between checkpoints written to OUTPUT.checkpoint (0: never)
  std::string resume;              ///< a checkpoint of the same command to continue from
  std::vector<std::string> logit;  ///< --logit COLUMN=LOW:HIGH, each (logit.hpp)
  std::string dequantize;          ///< integer columns fitted as x + u (names, positions or "auto")
  double validation_fraction = 0.1;
  std::uint64_t seed = 0;
  int threads = 1;
  bool quiet = false;
  std::string command_line;
  ReadOptions read;
};

/// Set by SIGINT: training stops after the current step and the best parameters so far are saved.
inline volatile std::sig_atomic_t interrupted = 0;

/// The training and validation tables of a fit, with the columns chosen.
struct FitData {
  Table train, validation;
  std::optional<Table> test;
  std::vector<LogitInterval> logit;  ///< the --logit columns, every row checked to lie inside
  std::vector<Index> dequantized;    ///< columns fitted as x + u, u ~ Uniform[0, 1) (dequantize.hpp)
};

template <class T>
FitData fit_data(const FitOptions& o) {
  FitData d;
  Table read = read_table(o.data, o.read);
  const std::vector<std::string> file_columns = read.names;
  Table all = select_columns(std::move(read), o.columns);
  d.logit = resolve_logit(o.logit, file_columns, all);
  (void)logit_sigmoid<T>(d.logit, all.names);              // refuses an interval that T cannot hold
  require_inside<T>(all, d.logit, o.data);                 // before the split, rows are in the file's order
  d.dequantized = dequantized_columns(all, o.dequantize);  // before the split, which loses line numbers
  // --logit maps its columns in place before the noise of --dequantize would be drawn in data units;
  // the two are not combined
  if (!d.logit.empty() && !d.dequantized.empty())
    throw UsageError("--logit and --dequantize cannot be used together");
  if (!o.validation_file.empty()) {
    d.train = std::move(all);
    d.validation = read_columns(o.validation_file, d.train.names, o.read);
    require_inside<T>(d.validation, d.logit, o.validation_file);
    check_integer_columns(d.validation, d.dequantized);
  } else {
    if (all.rows() < 2) fail("'", o.data, "'", " has ", all.rows(), " rows; at least 2 are needed");
    knead::Rng rng(o.seed);
    knead::DataSplit<double> split = knead::split_validation<double>(all.data, o.validation_fraction, rng);
    // the names and source without copying the whole table twice
    d.train = {all.source, all.names, std::move(split.train), {}, {}};
    d.validation = {std::move(all.source), std::move(all.names), std::move(split.validation), {}, {}};
  }
  if (!o.test_file.empty()) {
    d.test = read_columns(o.test_file, d.train.names, o.read);
    require_inside<T>(*d.test, d.logit, o.test_file);
    check_integer_columns(*d.test, d.dequantized);
  }
  return d;
}

/// Throws the tool's error naming the first constant column of `train`, if it has one: no density
/// over such a column exists, and neither standardising nor whitening can map it.
inline void refuse_constant_columns(const Table& train) {
  for (Index i = 0; i < train.dim(); ++i)
    if (train.data.row(i).maxCoeff() == train.data.row(i).minCoeff())
      fail("column '", train.names[std::size_t(i)], "' of ", train.source, " is constant (", train.data(i, 0),
           " in every row): a density over it does not exist; leave it out with --columns");
}

/// Whitening: μ the training mean and L the Cholesky factor of the maximum-likelihood covariance
/// Σ = (1/N) Σ_n (x_n − μ)(x_n − μ)ᵀ. Σ counts as positive definite if the factorisation succeeds
/// and every column keeps a part of its variance that the columns before it do not explain:
/// L_ii² ≥ 10⁻¹³ Σ_ii. Otherwise (columns linearly dependent on the training rows) L is the factor
/// of Σ + ε diag(Σ) (a ridge relative to each column's variance, so the units do not matter) with
/// the smallest ε = 10^k, k = −12, −11, …, −1, that passes, reported in one line on stderr; if none
/// does, the fit stops with an error.
inline void fit_whitening(const Table& train, Preprocessing& p) {
  const knead::Matrix<double>& x = train.data;  // D × N
  const Index d = x.rows();
  const knead::Vector<double> mean = x.rowwise().mean();
  const knead::Matrix<double> centred = x.colwise() - mean;
  const knead::Matrix<double> covariance = centred * centred.transpose() / double(x.cols());
  const auto usable = [&](const Eigen::LLT<knead::Matrix<double>>& llt) {
    if (llt.info() != Eigen::Success) return false;
    const knead::Matrix<double> l = llt.matrixL();
    for (Index i = 0; i < d; ++i)
      if (!(std::isfinite(l(i, i)) && l(i, i) * l(i, i) >= 1e-13 * covariance(i, i))) return false;
    return true;
  };
  Eigen::LLT<knead::Matrix<double>> llt(covariance);
  double ridge = 0;
  for (int k = -12; !usable(llt); ++k) {
    if (k > -1)
      fail("the covariance of the training rows of ", train.source,
           " is not positive definite even with 0.1 times its diagonal added: columns are linearly "
           "dependent; leave some out with --columns or use --preprocess standardize");
    ridge = std::pow(10.0, k);
    knead::Matrix<double> ridged = covariance;
    ridged.diagonal() *= 1 + ridge;
    llt.compute(ridged);
  }
  if (ridge > 0)
    std::cerr << "knead fit: the training covariance of " << train.source
              << " is singular (columns linearly dependent); whitening with covariance + " << ridge
              << " x its diagonal\n";
  const knead::Matrix<double> l = llt.matrixL();
  p.mean.assign(mean.data(), mean.data() + d);
  p.cholesky.resize(std::size_t(d * d));
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) p.cholesky[std::size_t(i * d + j)] = j <= i ? l(i, j) : 0.0;
  p.ridge = ridge;
}

/// The preprocessing fitted on the training table.
inline Preprocessing fit_preprocessing(const Table& train, const std::string& kind) {
  Preprocessing p;
  p.kind = kind;
  if (kind == "none") return p;
  refuse_constant_columns(train);
  if (kind == "whiten") {
    fit_whitening(train, p);
    return p;
  }
  knead::data::Standardizer<double> s;
  s.fit(train.data);
  p.mean.assign(s.mean().data(), s.mean().data() + s.dim());
  p.scale.assign(s.scale().data(), s.scale().data() + s.dim());
  return p;
}

/// z = L⁻¹(x − μ) (whiten) or (x − μ)/σ (standardize) as the flow's scalar type.
template <class T>
knead::Matrix<T> to_flow_units(const knead::Matrix<double>& x, const Preprocessing& p) {
  if (p.kind == "none") return x.cast<T>();
  knead::Matrix<double> z = x;
  const Index d = z.rows();
  for (Index i = 0; i < d; ++i) z.row(i).array() -= p.mean[std::size_t(i)];
  if (p.kind == "whiten") {
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> l(
        p.cholesky.data(), d, d);
    l.triangularView<Eigen::Lower>().solveInPlace(z);
  } else {
    for (Index i = 0; i < d; ++i) z.row(i) /= p.scale[std::size_t(i)];
  }
  return z.cast<T>();
}

/// With --dequantize, the tables of a fit with u ~ Uniform[0, 1) added to their integer columns:
/// the training table with the noise of epoch 1, the validation and test tables with noise drawn
/// once (noise_rng streams). Without, the tables themselves.
struct DequantizedTables {
  std::optional<Table> train_epoch_1, validation_table, test_table;
  const Table& train(const FitData& d) const { return train_epoch_1 ? *train_epoch_1 : d.train; }
  const Table& validation(const FitData& d) const {
    return validation_table ? *validation_table : d.validation;
  }
  const Table& test(const FitData& d) const { return test_table ? *test_table : *d.test; }
};

inline DequantizedTables dequantized_tables(const FitData& d, const FitOptions& o) {
  DequantizedTables t;
  if (d.dequantized.empty()) {
    if (o.dequantize == "auto") std::cerr << "--dequantize auto: no column holds only integers\n";
    return t;
  }
  std::vector<std::string> names;
  for (const Index i : d.dequantized) names.push_back(d.train.names[std::size_t(i)]);
  std::cerr << "dequantising " << quoted_list(names)
            << ": training sees x + u, u ~ Uniform[0, 1), fresh every epoch; the model's density is that "
               "of the dequantised data\n";
  t.train_epoch_1 = with_noise(d.train, d.dequantized, o.seed, 2);
  t.validation_table = with_noise(d.validation, d.dequantized, o.seed, 0);
  if (d.test) t.test_table = with_noise(*d.test, d.dequantized, o.seed, 1);
  return t;
}

template <class T>
int fit(const FitOptions& o) {
  knead::set_num_threads(o.threads);
  FitData d = fit_data<T>(o);
  const Index dim = d.train.dim();
  // --logit: the training rows go to logit units in place; the validation rows stay in data units too,
  // to score the model
  Table validation_logit;
  if (!d.logit.empty()) validation_logit = d.validation;
  const double train_logit_jacobian = to_logit_units(d.train, d.logit);
  const double validation_logit_jacobian = to_logit_units(validation_logit, d.logit);
  // --dequantize (never with --logit): every table gets its noise before the preprocessing
  // statistics are computed
  const DequantizedTables noisy = dequantized_tables(d, o);
  // Whitening rotates the columns; dequantised integer columns keep their unit cells aligned with
  // the axes only under a per-column map, where an autoregressive flow models them far better (a
  // Poisson pair in tools/knead/tool_test.sh: 0.072 nats below the true log probability whitened,
  // 0.019 standardised). So --dequantize standardises unless --preprocess says otherwise.
  const std::string kind = !o.preprocessing.empty() ? o.preprocessing
                           : d.dequantized.empty()  ? "whiten"
                                                    : "standardize";
  const Preprocessing pre = fit_preprocessing(noisy.train(d), kind);
  knead::Matrix<T> train = to_flow_units<T>(noisy.train(d).data, pre);
  const knead::Matrix<T> validation =
      to_flow_units<T>((d.logit.empty() ? noisy.validation(d) : validation_logit).data, pre);

  knead::FlowSpec<T> spec;
  spec.kind = knead::parse_flow_kind(o.flow);
  spec.dim = dim;
  spec.layers = o.layers;
  spec.hidden = o.hidden;
  spec.act_norm = o.act_norm;
  spec.mixing = knead::parse_mixing(o.mixing);
  spec.seed = o.seed;
  spec.guard.bound = T(o.log_scale_bound);
  using Flow = knead::TransformedDistribution<knead::StandardNormal<T>, knead::DynamicChain<T>>;
  Flow flow(knead::StandardNormal<T>(dim), knead::make_flow(spec));

  const Index batch = std::min<Index>(o.batch, train.cols());
  const Index steps_per_epoch = (train.cols() + batch - 1) / batch;
  const Index total_steps = steps_per_epoch * o.epochs;
  knead::TrainerOptions options;
  options.batch_size = batch;
  options.epochs = o.epochs;
  options.seed = o.seed;
  options.patience = o.patience;
  if (o.max_gradient_norm > 0) options.max_gradient_norm = o.max_gradient_norm;
  options.progress = nullptr;
  if (o.checkpoint_every > 0 || !o.resume.empty()) {
    options.checkpoint_every = std::max<Index>(o.checkpoint_every, 1) * steps_per_epoch;
    options.checkpoint_path = o.output + ".checkpoint";
  }
  const double log_scales = pre.log_det();  // NLL in data units = NLL in the flow's units + this
  // ... − the mean logit log-Jacobian of the rows scored (exact for whole-set means; a batch's differs)
  Progress progress(o.quiet ? nullptr : stderr, Progress::is_terminal(stderr), o.epochs, train.cols(),
                    log_scales - validation_logit_jacobian);
  // KNEAD_TEST_INTERRUPT_AT_STEP=k raises SIGINT after step k: the tests' way to interrupt a run at a
  // known step, through the same handler as Ctrl-C.
  const char* interrupt_at = std::getenv("KNEAD_TEST_INTERRUPT_AT_STEP");
  const Index interrupt_step = interrupt_at != nullptr ? Index(std::atol(interrupt_at)) : -1;
  // Fresh dequantisation noise for each epoch (stream 1 + epoch), written into `train` in place:
  // the trainer reads that matrix by reference, so the next epoch's batches take the new values.
  const auto draw_epoch_noise = [&](Index epoch) {
    const knead::Matrix<T> fresh =
        to_flow_units<T>(with_noise(d.train, d.dequantized, o.seed, 1 + epoch).data, pre);
    std::copy_n(fresh.data(), fresh.size(), train.data());
  };
  options.on_step = [&](const knead::StepInfo& s) {
    progress.step(
        s, s.step_in_epoch < s.steps_per_epoch ? batch : train.cols() - (s.steps_per_epoch - 1) * batch);
    if (!d.dequantized.empty() && s.step_in_epoch == s.steps_per_epoch && s.epoch < o.epochs)
      draw_epoch_noise(s.epoch + 1);
    if (s.step == interrupt_step) std::raise(SIGINT);
    return interrupted ? knead::StepAction::stop : knead::StepAction::proceed;
  };
  knead::AdamOptions adam;
  adam.lr = o.schedule == "constant"
                ? knead::LrSchedule::constant(o.lr)
                : knead::LrSchedule::cosine(o.lr, std::max<Index>(total_steps, 1), 0, o.lr * 0.02);
  adam.weight_decay = o.weight_decay;
  knead::TrainingHistory history;
  if (flow.num_parameters() > 0 && o.epochs > 0) {
    knead::Trainer trainer(flow, knead::Adam<T>(flow.num_parameters(), adam), options);
    // a resumed run starts after a checkpointed epoch: its noise is that of the next epoch
    if (!o.resume.empty() && !d.dequantized.empty())
      draw_epoch_noise(knead::load_checkpoint<T>(o.resume).step / steps_per_epoch + 1);
    const auto previous = std::signal(SIGINT, [](int) { interrupted = 1; });
    history = o.resume.empty() ? trainer.fit(train, validation) : trainer.resume(o.resume, train, validation);
    std::signal(SIGINT, previous);
    progress.finish();
  }
  flow.set_training(false);

  Flow model = with_logit_stage<T>(data_unit_flow<T>(flow.bijector(), pre), d.logit, d.train.names);
  model.set_training(false);
  const knead::LogProbSummary val = summarize(model, noisy.validation(d).data);
  std::optional<knead::LogProbSummary> test;
  if (d.test) test = summarize(model, noisy.test(d).data);

  ModelRecord record;
  record.columns = d.train.names;
  record.preprocessing = pre;
  record.logit = d.logit;
  for (const Index i : d.dequantized) record.dequantized.push_back(d.train.names[std::size_t(i)]);
  record.training = {
      {"data", o.data},
      {"data_crc32", file_crc32(o.data)},
      {"train_rows", d.train.rows()},
      {"validation_rows", d.validation.rows()},
      {"validation", o.validation_file.empty() ? "a random fraction of DATA" : o.validation_file},
      {"flow", o.flow},
      {"layers", o.layers},
      {"hidden", o.hidden},
      {"act_norm", o.act_norm},
      {"mixing", o.mixing},
      {"batch", batch},
      {"lr", o.lr},
      {"log_scale_bound", o.log_scale_bound},
      {"max_grad_norm", o.max_gradient_norm},
      {"patience", o.patience},
      {"schedule", o.schedule},
      {"epochs_asked", o.epochs},
      {"epochs_run", history.epochs.size()},
      {"steps", history.steps},
      {"resumed_from", o.resume},
      {"best_epoch", history.best_step / steps_per_epoch},
      {"validation_nll", val.mean_nll},
      {"interrupted", interrupted != 0},
      {"seed", o.seed},
      {"precision", o.precision},
      {"command", o.command_line},
      {"knead_version", knead_version}};
  knead::save(model, o.output, knead::FlowMetadata{{record_key, record.to_json().dump()}});

  std::cerr << "validation NLL " << format_summary(val, dim) << '\n';
  if (test) std::cerr << "test NLL " << format_summary(*test, dim) << '\n';
  if (!d.dequantized.empty())
    std::cerr << "(NLLs of the dequantised tables, x + u with one draw of u: each is in expectation an upper "
                 "bound on the NLL of the integer values)\n";
  if (!o.loss_plot.empty()) {
    // in data units, as the progress lines: the trainer's NLLs plus Σ log σ_i or Σ log L_ii, minus
    // the mean logit log-Jacobian of the training or validation rows
    std::vector<double> train_loss = history.train_loss;
    for (double& v : train_loss) v += log_scales - train_logit_jacobian;
    std::vector<std::pair<double, double>> validation_curve;
    for (const knead::ValidationRecord& v : history.validation)
      validation_curve.emplace_back(double(v.step), v.nll + log_scales - validation_logit_jacobian);
    plot::loss_png(o.loss_plot, train_loss, validation_curve, "knead fit " + o.data);
  }
  if (!o.summary.empty()) {
    Json s = record.to_json();
    s["validation"] = summary_json(val, dim);
    if (test) s["test"] = summary_json(*test, dim);
    // per epoch, in the flow's (preprocessed) units: the mean training NLL and the validation NLL
    Json epochs = Json::array();
    for (const knead::EpochRecord& e : history.epochs)
      epochs.push_back({{"epoch", e.epoch},
                        {"train_nll", e.mean_train_loss},
                        {"validation_nll", e.validation_nll ? Json(*e.validation_nll) : Json()}});
    s["epochs"] = epochs;
    write_text(o.summary, s.dump(2) + "\n");
  }
  return interrupted ? 130 : 0;
}

}  // namespace knead_cli
