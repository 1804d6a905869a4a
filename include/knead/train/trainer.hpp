#pragma once
/// @file
/// Maximum-likelihood training of a flow: shuffled minibatches, an optimizer with its schedule,
/// optional gradient clipping, validation with early stopping that restores the best parameters,
/// a progress line on stderr, a per-step callback, and checkpoints every N steps from which a run
/// resumes bit for bit (see knead/train/checkpoint.hpp).
///
/// A run counts steps (TrainerOptions::epochs = 0: max_steps updates on batches of batch_size,
/// validation every validation_every steps) or epochs (epochs > 0: that many passes over every
/// training column, ⌈N / batch_size⌉ steps each with a shorter last batch, a fresh shuffle per
/// epoch; validation before the first epoch, so the initial model is a candidate for the best, and
/// after each epoch; patience counts epochs).
///
/// A conditional flow p(x | c) trains on (x, c) pairs: fit_with_context(data, context) with one
/// context column per data column; every batch takes the same columns of both. A model with an
/// initialize(batch) hook (TransformedDistribution) is initialised on the first batch of a run, once, unless
/// it reports initialized().

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/optim/adam.hpp"
#include "knead/optim/clip.hpp"
#include "knead/optim/optimizer.hpp"
#include "knead/train/checkpoint.hpp"
#include "knead/train/evaluate.hpp"
#include "knead/train/minibatch.hpp"
#include "knead/train/progress.hpp"
#include "knead/train/training_run.hpp"

namespace knead {

/// Fits `model` by minimising the mean negative log-likelihood of the data (D×N, one sample per
/// column) with `optimizer`. The model is held by reference and updated in place.
template <class Model, Optimizer Opt = Adam<typename Model::Scalar>>
requires(TrainableModel<Model> || ConditionalTrainableModel<Model>) &&
    std::same_as<typename Model::Scalar, typename Opt::Scalar> class Trainer {
 public:
  using T = typename Model::Scalar;

  Trainer(Model& model, Opt optimizer, TrainerOptions options = {})
      : model_(model), optimizer_(std::move(optimizer)), options_(std::move(options)) {
    check_options();
    check_parameter_count("Trainer");
  }
  /// With a default-constructed optimizer (Adam, lr 1e-3) sized for the model.
  explicit Trainer(Model& model, TrainerOptions options = {}) requires std::constructible_from<Opt, Index>
      : Trainer(model, Opt(Index(model.parameters().size())), std::move(options)) {}

  /// Trains on `data`, holding out options().validation_fraction of it for validation.
  TrainingHistory fit(MatrixCRef<T> data) requires TrainableModel<Model> {
    detail::check_data<T>("Trainer::fit", "training data", data, model_.dim());
    if (options_.validation_fraction == 0) return run(data, nullptr);
    Rng split_rng(options_.seed);
    const DataSplit<T> split = split_validation<T>(data, options_.validation_fraction, split_rng);
    const MatrixCRef<T> validation(split.validation);
    return run(split.train, &validation);
  }
  /// Trains on `train`, validating on `validation`. Both are read in place, not copied.
  TrainingHistory fit(MatrixCRef<T> train, MatrixCRef<T> validation) requires TrainableModel<Model> {
    detail::check_data<T>("Trainer::fit", "training data", train, model_.dim());
    detail::check_data<T>("Trainer::fit", "validation data", validation, model_.dim());
    return run(train, &validation);
  }

  /// Continues the run saved in the checkpoint at `path` (by a Trainer with checkpoint_every set),
  /// on the same data as fit(data) was given. The model, the optimizer type and its
  /// hyper-parameters, the options (seed, batch size, validation) and the data must be those of the
  /// run that wrote it; then the run ends exactly as an uninterrupted one would (single thread).
  /// The returned history covers the whole run, from step 1. The parameter count, dimension,
  /// optimizer, data sizes, batch size, seed and (for a flow) the bijector's architecture are
  /// checked before anything is changed. A flow gets back its BatchNorm running statistics, and the
  /// model ends in the mode it had before the run that wrote the checkpoint.
  /// @throws FileError if the file cannot be read, FormatError (naming Trainer::resume, the path and
  ///         the mismatch) if it is broken or belongs to another model, optimizer or data set.
  TrainingHistory resume(const std::filesystem::path& path,
                         MatrixCRef<T> data) requires TrainableModel<Model> {
    detail::check_data<T>("Trainer::resume", "training data", data, model_.dim());
    const TrainingCheckpoint<T> checkpoint = load_checkpoint<T>(path);
    if (options_.validation_fraction == 0) return run(data, nullptr, &checkpoint, path);
    Rng split_rng(options_.seed);
    const DataSplit<T> split = split_validation<T>(data, options_.validation_fraction, split_rng);
    const MatrixCRef<T> validation(split.validation);
    return run(split.train, &validation, &checkpoint, path);
  }
  /// resume(path, data) for a run started with fit(train, validation).
  TrainingHistory resume(const std::filesystem::path& path, MatrixCRef<T> train,
                         MatrixCRef<T> validation) requires TrainableModel<Model> {
    detail::check_data<T>("Trainer::resume", "training data", train, model_.dim());
    detail::check_data<T>("Trainer::resume", "validation data", validation, model_.dim());
    const TrainingCheckpoint<T> checkpoint = load_checkpoint<T>(path);
    return run(train, &validation, &checkpoint, path);
  }

  /// Mean NLL of `data` in evaluation mode (BatchNorm uses its running statistics) under NoGrad, in
  /// chunks of validation_batch_size columns (as log_prob_rows). The model's training mode is
  /// restored afterwards.
  double evaluate(MatrixCRef<T> data) requires TrainableModel<Model> {
    detail::check_data<T>("Trainer::evaluate", "data", data, model_.dim());
    return mean_nll(data);
  }

  // ---- a conditional model p(x | c): (x, c) pairs, column j of the context belongs to sample j ----

  /// Trains on the pairs (data column j, context column j), holding out
  /// options().validation_fraction of the pairs for validation (the same columns of both).
  TrainingHistory fit_with_context(MatrixCRef<T> data,
                                   MatrixCRef<T> context) requires ConditionalTrainableModel<Model> {
    check_pairs("Trainer::fit_with_context", "training", data, context);
    if (options_.validation_fraction == 0) return run(data, nullptr, nullptr, {}, {&context, nullptr});
    // the same seed splits both the same way: the split depends only on the engine and N
    Rng data_rng(options_.seed), context_rng(options_.seed);
    const DataSplit<T> x = split_validation<T>(data, options_.validation_fraction, data_rng);
    const DataSplit<T> c = split_validation<T>(context, options_.validation_fraction, context_rng);
    const MatrixCRef<T> x_validation(x.validation), c_train(c.train), c_validation(c.validation);
    return run(x.train, &x_validation, nullptr, {}, {&c_train, &c_validation});
  }
  /// Trains on the pairs (train, train_context), validating on (validation, validation_context).
  TrainingHistory fit_with_context(MatrixCRef<T> train, MatrixCRef<T> train_context, MatrixCRef<T> validation,
                                   MatrixCRef<T> validation_context) requires
      ConditionalTrainableModel<Model> {
    check_pairs("Trainer::fit_with_context", "training", train, train_context);
    check_pairs("Trainer::fit_with_context", "validation", validation, validation_context);
    return run(train, &validation, nullptr, {}, {&train_context, &validation_context});
  }
  /// Mean of −log p(x_j | c_j) in evaluation mode, in chunks of validation_batch_size columns.
  double evaluate_with_context(MatrixCRef<T> data,
                               MatrixCRef<T> context) requires ConditionalTrainableModel<Model> {
    check_pairs("Trainer::evaluate_with_context", "", data, context);
    return mean_nll(data, &context);
  }

  [[nodiscard]] Opt& optimizer() { return optimizer_; }
  [[nodiscard]] const Opt& optimizer() const { return optimizer_; }
  [[nodiscard]] const TrainerOptions& options() const { return options_; }

 private:
  /// The contexts paired with the training and validation data (none for an unconditional model).
  struct Contexts {
    const MatrixCRef<T>* train = nullptr;
    const MatrixCRef<T>* validation = nullptr;
  };

  void check_pairs(std::string_view function, std::string_view what, MatrixCRef<T> data,
                   MatrixCRef<T> context) const requires ConditionalTrainableModel<Model> {
    const std::string prefix = what.empty() ? std::string() : std::string(what) + " ";
    detail::check_data<T>(function, prefix + "data", data, model_.dim());
    if (context.rows() != model_.context_dim() || context.cols() != data.cols())
      detail::fail(function, prefix, "context must be ", model_.context_dim(), "x", data.cols(),
                   " (context_dim rows, one column per data column), got ", context.rows(), "x",
                   context.cols());
    detail::check_finite(function, prefix + "context", context);
  }

  /// The first batch of a run initialises a model with an initialize hook, unless it says it is.
  template <class... Context>
  void initialize_once(const Matrix<T>& batch, const Context&... context) {
    if constexpr (requires { model_.initialize(batch, context...); }) {
      if constexpr (requires { model_.initialized(); })
        if (model_.initialized()) return;
      model_.initialize(batch, context...);
    }
  }

  /// Evaluation mode for validation, training mode for the run (see detail::ModeGuard).
  using ModeGuard = detail::ModeGuard<Model>;

  TrainingHistory run(MatrixCRef<T> train, const MatrixCRef<T>* validation,
                      const TrainingCheckpoint<T>* checkpoint = nullptr,
                      const std::filesystem::path& from = {}, Contexts contexts = {}) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    check_parameter_count("Trainer::fit");
    // the batches draw from their own stream, independent of the split's
    const bool by_epoch = options_.epochs > 0;
    MinibatchSampler sampler(train.cols(), options_.batch_size, options_.seed ^ 0x9E3779B97F4A7C15ULL,
                             by_epoch ? LastBatch::keep : LastBatch::drop);
    const Index steps_per_epoch = sampler.batches_per_epoch();
    if (by_epoch && options_.epochs > std::numeric_limits<Index>::max() / steps_per_epoch)
      detail::fail("Trainer::fit", "epochs is ", options_.epochs, ": with ", steps_per_epoch,
                   " steps per epoch the step count overflows");
    const Index total_steps = by_epoch ? options_.epochs * steps_per_epoch : options_.max_steps;
    const auto n = std::size_t(optimizer_.num_parameters());
    std::vector<T> before(n), best(n);
    Matrix<T> batch, context_batch;
    TrainingHistory h;
    if (by_epoch) h.stop_reason = StopReason::epochs;
    double best_nll = std::numeric_limits<double>::infinity();
    Index evaluations_without_improvement = 0;
    double progress_loss_sum = 0;
    Index progress_loss_count = 0;
    double seconds_before = 0;
    if (checkpoint != nullptr) {
      restore(*checkpoint, from, train.cols(), validation ? validation->cols() : 0, sampler);
      const TrainingCheckpoint<T>& c = *checkpoint;
      h.train_loss = c.train_loss;
      for (std::size_t i = 0; i < c.validation_step.size(); ++i)
        h.validation.push_back({c.validation_step[i], c.validation_nll[i]});
      h.steps = c.step;
      h.best_step = c.best_step;
      h.best_validation_nll = c.best_validation_nll;
      if (c.best_validation_nll) {
        best_nll = *c.best_validation_nll;
        best = c.best_parameters;
      }
      if (by_epoch)
        for (Index e = 1; e * steps_per_epoch <= h.steps; ++e)
          h.epochs.push_back(epoch_record(h, e, steps_per_epoch, train.cols()));
      evaluations_without_improvement = c.evaluations_without_improvement;
      seconds_before = c.seconds;
    }
    const ModeGuard training_mode(model_, true,
                                  checkpoint ? std::optional(checkpoint->training) : std::nullopt);
    const auto elapsed = [&] { return seconds_before + training_progress::seconds_since(start); };
    const bool patience_ran_out =
        options_.patience > 0 && evaluations_without_improvement >= options_.patience;
    if (patience_ran_out) h.stop_reason = StopReason::early_stopping;  // the checkpointed run stopped there

    // Parameters an update made finite but far out (a learning rate far too large) can make a later
    // pass overflow inside the model, which refuses the non-finite value with
    // std::invalid_argument. After this run's first update that is divergence: the step's
    // TrainingError, and the model goes back to the parameters it had at the start of the last
    // step whose passes were finite (`before`, which holds the parameters the last update started
    // from).
    bool updated = false;
    Index finitely_validated_step = 0;  // the last step whose validation NLL was finite
    const auto diverged = [&](Index step, Index restored_step, const char* pass, const char* what) {
      std::ranges::copy(before, model_.parameters().begin());
      throw TrainingError(
          step,
          detail::message("Trainer::fit", "step ", step, ": the ", pass, " met a non-finite value (", what,
                          "); training stopped, the model keeps its parameters from the "
                          "start of step ",
                          restored_step, ", the last that evaluated finitely"));
    };
    // Validates the parameters after `step` updates (0: the initial model) and keeps the best.
    const auto validate = [&](Index step) {
      double nll = 0;
      try {
        nll = mean_nll(*validation, contexts.validation);
      } catch (const std::invalid_argument& e) {
        if (!updated) throw;
        diverged(step, step, "validation pass", e.what());
      }
      if (std::isfinite(nll)) finitely_validated_step = step;
      h.validation.push_back({step, nll});
      if (nll < best_nll - options_.min_improvement) {  // a NaN NLL never improves
        best_nll = nll;
        h.best_step = step;
        h.best_validation_nll = nll;
        std::ranges::copy(model_.parameters(), best.begin());
        evaluations_without_improvement = 0;
      } else {
        ++evaluations_without_improvement;
      }
      return nll;
    };
    // epoch mode validates the initial model too (after a data-dependent initialisation, which
    // the first batch triggers): it is the first candidate for the best
    const bool validates_initial = by_epoch && validation != nullptr && checkpoint == nullptr;
    for (Index step = h.steps + 1; step <= total_steps && !patience_ran_out; ++step) {
      double loss = 0;
      try {
        if (contexts.train == nullptr) {
          if constexpr (TrainableModel<Model>) {
            sampler.next<T>(train, batch);
            if (step == 1 && checkpoint == nullptr) initialize_once(batch);
            if (step == 1 && validates_initial) validate(0);
            model_.zero_gradients();
            loss = static_cast<double>(model_.mean_nll_and_backward(batch));
          }
        } else {
          if constexpr (ConditionalTrainableModel<Model>) {
            const std::span<const Index> columns = sampler.next_indices();
            detail::gather_columns<T>(train, columns, batch);
            detail::gather_columns<T>(*contexts.train, columns, context_batch);
            if (step == 1 && checkpoint == nullptr) initialize_once(batch, context_batch);
            if (step == 1 && validates_initial) validate(0);
            model_.zero_gradients();
            loss = static_cast<double>(model_.mean_nll_and_backward(batch, context_batch));
          }
        }
      } catch (const std::invalid_argument& e) {
        if (!updated) throw;
        diverged(step, step - 1, "pass on the training batch", e.what());
      }
      if (!std::isfinite(loss)) fail_step(step, "the training loss is non-finite (", loss, ")");
      const std::span<T> params = model_.parameters();
      const std::span<T> grads = model_.gradients();
      if (params.size() != n || grads.size() != n)
        detail::fail("Trainer::fit", "step ", step, ": the model has ", params.size(), " parameters and ",
                     grads.size(), " gradients, but training started with ", n);
      if (!detail::all_finite(std::span<const T>(grads)))
        for (std::size_t i = 0; i < n; ++i)
          if (!std::isfinite(static_cast<double>(grads[i])))
            fail_step(step, "the gradient of parameter ", i, " is non-finite (", grads[i], ")");
      const double norm = options_.max_gradient_norm ? clip_gradient_norm(grads, *options_.max_gradient_norm)
                                                     : gradient_norm(grads);
      const double lr = optimizer_.learning_rate();
      std::ranges::copy(params, before.begin());
      optimizer_.step(params, std::span<const T>(grads));
      if (!detail::all_finite(std::span<const T>(params)))
        for (std::size_t i = 0; i < n; ++i)
          if (!std::isfinite(static_cast<double>(params[i]))) {
            const T bad = params[i];
            std::ranges::copy(before, params.begin());
            fail_step(step, "the update made parameter ", i, " non-finite (", bad, ") at learning rate ", lr);
          }
      updated = true;
      h.train_loss.push_back(loss);
      h.steps = step;
      progress_loss_sum += loss;
      ++progress_loss_count;

      StepInfo info{step, total_steps, loss, norm, lr, std::nullopt, std::nullopt, h.best_step};
      info.epoch = (step - 1) / steps_per_epoch + 1;
      info.step_in_epoch = (step - 1) % steps_per_epoch + 1;
      info.steps_per_epoch = steps_per_epoch;
      const bool validates =
          validation != nullptr &&
          (by_epoch ? step % steps_per_epoch == 0
                    : (step % options_.validation_every == 0 || step == options_.max_steps));
      if (validates) info.validation_nll = validate(step);
      if (by_epoch && step % steps_per_epoch == 0)
        h.epochs.push_back(epoch_record(h, info.epoch, steps_per_epoch, train.cols()));
      info.best_validation_nll = h.best_validation_nll;
      info.best_step = h.best_step;

      if (options_.checkpoint_every > 0 && step % options_.checkpoint_every == 0)
        save_checkpoint(snapshot(h, best, evaluations_without_improvement, sampler, train.cols(),
                                 validation ? validation->cols() : 0, elapsed(), training_mode.previous()),
                        options_.checkpoint_path, options_.checkpoint_write);

      const bool last = step == total_steps;
      const bool epoch_end = by_epoch && step % steps_per_epoch == 0;
      if (options_.progress != nullptr && (step % options_.progress_every == 0 || last || epoch_end)) {
        training_progress::print_progress(
            *options_.progress, options_, info, progress_loss_sum / double(progress_loss_count), h,
            step - (checkpoint ? checkpoint->step : 0), training_progress::seconds_since(start));
        progress_loss_sum = 0;
        progress_loss_count = 0;
      }
      if (options_.on_step && options_.on_step(info) == StepAction::stop) {
        h.stop_reason = StopReason::callback;
        break;
      }
      if (options_.patience > 0 && evaluations_without_improvement >= options_.patience) {
        h.stop_reason = StopReason::early_stopping;
        break;
      }
    }

    const bool restores_best = options_.restore_best && h.best_validation_nll && h.best_step != h.steps;
    if (updated && !restores_best && finitely_validated_step != h.steps) {
      // The last update is checked as the others were (unless the validation at the last step
      // did): its parameters must evaluate the last batch finitely, or the model would be handed
      // back unusable.
      const MatrixCRef<T> last_contexts(context_batch);
      double nll = 0;
      try {
        nll = mean_nll(batch, contexts.train != nullptr ? &last_contexts : nullptr);
      } catch (const std::invalid_argument& e) {
        diverged(h.steps, h.steps, "check of the final parameters on the last batch", e.what());
      }
      if (!std::isfinite(nll))
        diverged(h.steps, h.steps, "check of the final parameters on the last batch",
                 "the negative log-likelihood is non-finite");
    }
    if (restores_best) {
      std::ranges::copy(best, model_.parameters().begin());
      h.restored_best = true;
    }
    h.seconds = elapsed();
    if (options_.progress != nullptr) training_progress::print_summary(*options_.progress, options_, h);
    return h;
  }

  /// The state after the step just taken, as a checkpoint.
  TrainingCheckpoint<T> snapshot(const TrainingHistory& h, const std::vector<T>& best,
                                 Index without_improvement, const MinibatchSampler& sampler,
                                 Index train_samples, Index validation_samples, double seconds,
                                 bool mode_before_run) {
    TrainingCheckpoint<T> c;
    c.step = h.steps;
    c.dim = model_.dim();
    c.train_samples = train_samples;
    c.validation_samples = validation_samples;
    c.seed = options_.seed;
    const std::span<T> params = model_.parameters();
    c.parameters.assign(params.begin(), params.end());
    c.optimizer = std::string(optimizer_name<Opt>);
    const std::span<const T> state = optimizer_.state();
    c.optimizer_state.assign(state.begin(), state.end());
    c.optimizer_step_count = optimizer_.step_count();
    c.sampler = sampler.state();
    c.train_loss = h.train_loss;
    for (const ValidationRecord& r : h.validation) {
      c.validation_step.push_back(r.step);
      c.validation_nll.push_back(r.nll);
    }
    c.best_step = h.best_step;
    c.best_validation_nll = h.best_validation_nll;
    if (h.best_validation_nll) c.best_parameters = best;
    c.epochs = options_.epochs;
    c.evaluations_without_improvement = without_improvement;
    c.seconds = seconds;
    c.training = mode_before_run;
    if constexpr (has_flow_state) c.model_state = flow_state(model_);
    return c;
  }

  /// Checks that checkpoint `c` belongs to this model, optimizer, options and data, then restores
  /// the optimizer, the sampler, the flow's non-parameter state (BatchNorm running statistics) and
  /// the parameters. Nothing is changed unless every check passes.
  void restore(const TrainingCheckpoint<T>& c, const std::filesystem::path& path, Index train_samples,
               Index validation_samples, MinibatchSampler& sampler) {
    const std::string where = io::detail::quoted(path);
    const auto mismatch = [&](const auto&... parts) {
      detail::fail<FormatError>("Trainer::resume", "checkpoint ", where, " ", parts...);
    };
    const std::span<T> params = model_.parameters();
    if (c.parameters.size() != params.size())
      mismatch("holds ", c.parameters.size(), " parameters but the model has ", params.size(),
               " (a checkpoint of a different model?)");
    if (c.dim != model_.dim()) mismatch("is for dimension ", c.dim, " but the model has dim ", model_.dim());
    if (c.optimizer != optimizer_name<Opt>)
      mismatch("was written with optimizer '", c.optimizer, "' but this trainer uses '", optimizer_name<Opt>,
               "'");
    if (c.optimizer_state.size() != optimizer_.state().size())
      mismatch("holds an optimizer state of ", c.optimizer_state.size(), " values but the optimizer has ",
               optimizer_.state().size());
    if (c.train_samples != train_samples)
      mismatch("was written for ", c.train_samples, " training samples, got ", train_samples);
    if (c.validation_samples != validation_samples)
      mismatch("was written for ", c.validation_samples, " validation samples, got ", validation_samples);
    if (c.sampler.batch_size != sampler.batch_size())
      mismatch("was written with batches of ", c.sampler.batch_size, " samples, the options give ",
               sampler.batch_size());
    if (c.seed != options_.seed)
      mismatch("was written with seed ", c.seed, ", the options have ", options_.seed);
    if (c.epochs != options_.epochs)
      mismatch("was written with epochs = ", c.epochs, " (0: a run counting steps), the options have ",
               options_.epochs);
    std::optional<Model> with_state;  // the model with the checkpoint's state, swapped in at the end
    if constexpr (has_flow_state) {
      if (!c.model_state.architecture.empty()) {
        with_state.emplace(model_);
        try {
          set_flow_state(*with_state, c.model_state);
        } catch (const FormatError& e) {
          mismatch("does not fit the model's state: ", e.what());
        }
      } else if (!flow_state(model_).buffers.empty()) {
        mismatch("holds no running statistics for the model's BatchNorm layers");
      }
    } else if (!c.model_state.architecture.empty()) {
      mismatch("holds the state of a flow, but the model is not a TransformedDistribution");
    }
    try {
      sampler.set_state(c.sampler);
    } catch (const std::invalid_argument& e) {
      mismatch("has a bad sampler state: ", e.what());
    }
    try {
      optimizer_.set_state(std::span<const T>(c.optimizer_state), c.optimizer_step_count);
    } catch (const std::invalid_argument& e) {
      mismatch("has a bad optimizer state: ", e.what());
    }
    if constexpr (has_flow_state)
      if (with_state) model_ = std::move(*with_state);
    std::ranges::copy(c.parameters, model_.parameters().begin());
  }

  /// Mean of −log p over the columns of `data`, summed in column order (see visit_log_prob_chunks).
  double mean_nll(MatrixCRef<T> data, const MatrixCRef<T>* context = nullptr) {
    double sum = 0;
    detail::visit_log_prob_chunks(model_, data, context, options_.validation_batch_size, log_prob_,
                                  [&](Index, const RowVector<T>& log_prob) {
                                    for (Index k = 0; k < log_prob.size(); ++k)
                                      sum -= static_cast<double>(log_prob(k));
                                  });
    return sum / double(data.cols());
  }

  /// The record of epoch `e` (1-based) from the history's batch losses: every batch holds
  /// batch_size columns but the epoch's last, which holds the rest.
  EpochRecord epoch_record(const TrainingHistory& h, Index e, Index steps_per_epoch, Index samples) const {
    const Index batch = std::min(options_.batch_size, samples);
    EpochRecord r;
    r.epoch = e;
    r.step = e * steps_per_epoch;
    double sum = 0;
    for (Index k = 0; k < steps_per_epoch; ++k) {
      const Index size = k + 1 < steps_per_epoch ? batch : samples - (steps_per_epoch - 1) * batch;
      sum += h.train_loss[std::size_t((e - 1) * steps_per_epoch + k)] * double(size);
    }
    r.mean_train_loss = sum / double(samples);
    const auto v = std::ranges::find(h.validation, r.step, &ValidationRecord::step);
    if (v != h.validation.end()) r.validation_nll = v->nll;
    return r;
  }

  template <class... Parts>
  [[noreturn]] void fail_step(Index step, const Parts&... parts) const {
    throw TrainingError(step,
                        detail::message("Trainer::fit", "step ", step, ": ", parts...,
                                        "; training stopped, the model keeps its parameters from before "
                                        "this step"));
  }

  void check_options() const {
    constexpr std::string_view function = "Trainer";
    const TrainerOptions& o = options_;
    detail::check_positive(function, "batch_size", o.batch_size);
    detail::check_positive(function, "max_steps", o.max_steps);
    if (o.epochs < 0)
      detail::fail(function, "epochs must be non-negative (0: count max_steps), got ", o.epochs);
    detail::check_positive(function, "validation_every", o.validation_every);
    detail::check_positive(function, "progress_every", o.progress_every);
    detail::check_positive(function, "validation_batch_size", o.validation_batch_size);
    if (o.patience < 0) detail::fail(function, "patience must be non-negative, got ", o.patience);
    if (!std::isfinite(o.validation_fraction) || o.validation_fraction < 0 || o.validation_fraction >= 1)
      detail::fail(function, "validation_fraction must be in [0, 1), got ", o.validation_fraction);
    detail::check_non_negative(function, "min_improvement", o.min_improvement);
    if (o.max_gradient_norm && (!std::isfinite(*o.max_gradient_norm) || *o.max_gradient_norm <= 0))
      detail::fail(function, "max_gradient_norm must be positive and finite, got ", *o.max_gradient_norm);
    if (o.checkpoint_every < 0)
      detail::fail(function, "checkpoint_every must be non-negative, got ", o.checkpoint_every);
    if (o.checkpoint_every > 0 && o.checkpoint_path.empty())
      detail::fail(function, "checkpoint_every is ", o.checkpoint_every, " but checkpoint_path is empty");
  }

  void check_parameter_count(std::string_view function) {
    const auto n = Index(model_.parameters().size());
    if (n != optimizer_.num_parameters() || Index(model_.gradients().size()) != n)
      detail::fail(function, "the optimizer was made for ", optimizer_.num_parameters(),
                   " parameters but the model has ", n);
  }

  /// Flows (TransformedDistribution) have state that is not a parameter, which checkpoints keep.
  static constexpr bool has_flow_state = requires(const Model& m) { knead::flow_state(m); };

  Model& model_;
  Opt optimizer_;
  TrainerOptions options_;
  RowVector<T> log_prob_;
};

}  // namespace knead
