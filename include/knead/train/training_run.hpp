#pragma once
/// @file
/// What describes a training run (knead/train/trainer.hpp): the options, what the per-step
/// callback is handed, the history a run returns, why it stopped, the error a diverging run
/// throws, and the concepts a trainable model satisfies.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/io/file.hpp"
#include "knead/optim/optimizer.hpp"

namespace knead {

/// Training hit a non-finite loss, gradient or parameter, or a pass met a non-finite value inside
/// the model (divergence). step() is the step that failed; the model keeps finite parameters that
/// evaluated finitely: those it had before that step (the poisoning update is not applied), or,
/// when a pass on updated parameters failed, those at the start of the step the message names.
class TrainingError : public std::runtime_error {
 public:
  TrainingError(Index step, const std::string& what) : std::runtime_error(what), step_(step) {}
  [[nodiscard]] Index step() const noexcept { return step_; }

 private:
  Index step_;
};

/// What the trainer needs of a model: TransformedDistribution has it, and so may any wrapper.
template <class M>
concept TrainableModel = HasScalar<M> && HasDim<M> && HasParameterSpans<M> &&
    requires(M& m, MatrixCRef<typename M::Scalar> x, RowVector<typename M::Scalar>& out) {
  { m.mean_nll_and_backward(x) } -> std::convertible_to<typename M::Scalar>;
  m.log_prob(x, out);
  m.zero_gradients();
  m.set_training(true);
};

/// What the trainer needs of a conditional model p(x | c): a TransformedDistribution with a
/// conditional bijector has it.
template <class M>
concept ConditionalTrainableModel = HasScalar<M> && HasDim<M> && HasParameterSpans<M> &&
    requires(M& m, const M& cm, MatrixCRef<typename M::Scalar> x, MatrixCRef<typename M::Scalar> c,
             RowVector<typename M::Scalar>& out) {
  { cm.context_dim() } -> std::convertible_to<Index>;
  { m.mean_nll_and_backward(x, c) } -> std::convertible_to<typename M::Scalar>;
  m.log_prob(x, c, out);
  m.zero_gradients();
  m.set_training(true);
};

enum class StopReason { max_steps, early_stopping, callback, epochs };

[[nodiscard]] inline std::string_view to_string(StopReason r) {
  switch (r) {
    case StopReason::max_steps:
      return "max_steps";
    case StopReason::early_stopping:
      return "early stopping";
    case StopReason::callback:
      return "stopped by callback";
    case StopReason::epochs:
      return "epochs";
  }
  return "unknown";
}

/// What the per-step callback returns.
enum class StepAction { proceed, stop };

/// Handed to the callback after each step's update (and validation, if one ran at this step).
struct StepInfo {
  Index step = 0;  ///< 1 for the first update
  Index max_steps = 0;
  double train_loss = 0;                 ///< mean NLL of this step's batch, before the update
  double gradient_norm = 0;              ///< before clipping
  double learning_rate = 0;              ///< the one this update used
  std::optional<double> validation_nll;  ///< set when validation ran at this step
  std::optional<double> best_validation_nll;
  Index best_step = 0;  ///< step of best_validation_nll (0: none yet, or the initial model)
  /// The epoch this step belongs to (1 for the first), its place in that epoch (1 to
  /// steps_per_epoch) and the steps per epoch: ⌈N / B⌉ in epoch mode, ⌊N / B⌋ in step mode (which
  /// skips an epoch's last partial batch).
  Index epoch = 0;
  Index step_in_epoch = 0;
  Index steps_per_epoch = 0;
};

struct ValidationRecord {
  Index step = 0;  ///< 0: the initial model (epoch mode)
  double nll = 0;  ///< mean validation NLL with the parameters after this step
};

/// One finished epoch of an epoch-mode run.
struct EpochRecord {
  Index epoch = 0;  ///< 1 for the first
  Index step = 0;   ///< its last step
  /// Mean NLL of the epoch's training columns, each at the parameters of the step that used it:
  /// Σ_k loss_k · |batch_k| / N over the epoch's steps k.
  double mean_train_loss = 0;
  std::optional<double> validation_nll;  ///< the validation after the epoch (without validation: none)
};

struct TrainingHistory {
  std::vector<double> train_loss;  ///< train_loss[i] is the batch loss of step i + 1
  std::vector<ValidationRecord> validation;
  Index steps = 0;      ///< updates applied
  Index best_step = 0;  ///< step with the lowest validation NLL (0 without validation, or the initial model)
  std::optional<double> best_validation_nll;  ///< set once a validation ran
  bool restored_best = false;                 ///< the final parameters were copied back from best_step
  std::vector<EpochRecord> epochs;            ///< epoch mode: one record per finished epoch
  double seconds = 0;
  StopReason stop_reason = StopReason::max_steps;
};

struct TrainerOptions {
  Index batch_size = 256;  ///< reduced to N if larger
  Index max_steps = 1000;  ///< the run's updates when epochs is 0
  /// 0: count steps (max_steps). > 0: this many passes over every training column, ⌈N / batch_size⌉
  /// steps each (the last batch of an epoch holds the remainder), validating before the first
  /// epoch and after each; max_steps and validation_every are then unused and patience counts
  /// epochs.
  Index epochs = 0;
  std::uint64_t seed = 0;  ///< batches and the validation split
  /// fit(data) holds out this fraction of the columns for validation (0: none); fit(train,
  /// validation) ignores it.
  double validation_fraction = 0.0;
  Index validation_every = 100;  ///< steps between validation evaluations (also at the last step)
  Index patience = 0;            ///< stop after this many evaluations without improvement (0: never)
  double min_improvement = 0.0;  ///< an evaluation improves if it beats the best by more than this
  /// End with the parameters of the best validation step (in epoch mode possibly the initial ones).
  bool restore_best = true;
  std::optional<double> max_gradient_norm = std::nullopt;  ///< clip the global gradient norm to this
  std::ostream* progress = &std::cerr;                     ///< progress lines go here; nullptr silences them
  Index progress_every = 100;
  Index validation_batch_size = 4096;  ///< columns per log_prob call when validating
  std::function<StepAction(const StepInfo&)> on_step = nullptr;  ///< called after every step
  /// Every checkpoint_every steps (0: never) the whole training state is saved to checkpoint_path,
  /// replacing the previous checkpoint atomically, after the step's validation and before the
  /// callback. Trainer::resume continues from such a file.
  Index checkpoint_every = 0;
  std::filesystem::path checkpoint_path{};
  io::AtomicWriteOptions checkpoint_write{};  ///< passed to write_file_atomically (test seam)
};

}  // namespace knead
