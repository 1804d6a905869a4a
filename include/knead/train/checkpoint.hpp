#pragma once
/// @file
/// Training checkpoints: everything a Trainer needs to continue a run exactly where it stopped, so
/// that a resumed run ends with the same parameters, bit for bit, as one that was never interrupted
/// (same seed, single thread).
///
/// A checkpoint is a safetensors file (knead/io/safetensors.hpp), replaced atomically on every save
/// (a crash mid-save leaves the previous checkpoint intact). Layout:
///
/// | tensor                            | dtype   | content                                          |
/// |-----------------------------------|---------|--------------------------------------------------|
/// | parameters                        | F32/F64 | the model's parameters after `step` updates      |
/// | optimizer.state                   | F32/F64 | Adam [m][v] or SGD velocity (Optimizer::state()) |
/// | best_parameters                   | F32/F64 | parameters of the best validation (if any)       |
/// | sampler.order                     | F64     | the minibatch sampler's current permutation      |
/// | history.train_loss                | F64     | batch loss of steps 1..step                      |
/// | history.validation_step / _nll    | F64     | the validation records so far (step 0: initial)  |
/// | history.best_validation_nll       | F64 [1] | the best validation NLL (if any)                 |
/// | model.bijector.K.running_mean     | F32/F64 | running mean of a flow's BatchNorm K (if any)    |
/// | model.bijector.K.running_variance | F32/F64 | its running variance                             |
///
/// and `__metadata__` (all strings): format = "knead.checkpoint", format_version, scalar ("float" or
/// "double"), step, dim, train_samples, validation_samples, seed, optimizer ("Adam", "Sgd" or "" for
/// another optimizer), optimizer.step_count, sampler.engine (the std::mt19937_64 state in its
/// standard text form), sampler.next, sampler.epoch, sampler.batch_size, epochs (TrainerOptions::epochs:
/// 0 for a run counting steps, whose sampler skips an epoch's partial last batch; > 0 for a run
/// counting epochs, whose sampler keeps it), best_step, evaluations_without_improvement, seconds,
/// model.training ("true" or "false": the model's mode
/// before the run, which the run ends in) and model.architecture (for a flow, its bijector's node
/// as knead::save writes it, which the model.* tensors belong to; "" for another model). The
/// model.* tensors are a flow's state that is not a parameter (knead::FlowState), named as in a
/// flow file after the "model." prefix. Counts stored as F64 are exact below 2⁵³.
///
/// A run counting epochs validates its initial model: its first validation record may be step 0,
/// and best_step is 0 when the initial model is still the best. best_parameters and
/// history.best_validation_nll are present exactly when a validation ran. Version 1 files (without
/// the model.* entries) and version 2 files (without epochs, read as 0) are still read. knead.data_crc32
/// holds the CRC-32 of the tensor data, verified by SafetensorsFile (files without it are read unchecked).
///
/// load_checkpoint treats the file as untrusted: besides the checks of SafetensorsFile it checks every
/// field and the consistency between them, and throws FormatError naming the path and the problem.
/// Whether the model.* state fits the model is checked by Trainer::resume (set_flow_state).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <locale>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "knead/io/flow_io.hpp"
#include "knead/io/safetensors.hpp"
#include "knead/optim/adam.hpp"
#include "knead/optim/sgd.hpp"
#include "knead/train/minibatch.hpp"

namespace knead {

/// The name a checkpoint records for an optimizer type: "Adam", "Sgd", or "" for any other (then
/// only the size of its state is checked on resume).
template <class O>
inline constexpr std::string_view optimizer_name = "";
template <class T>
inline constexpr std::string_view optimizer_name<Adam<T>> = "Adam";
template <class T>
inline constexpr std::string_view optimizer_name<Sgd<T>> = "Sgd";

/// The state of a training run after `step` updates (see the file comment for its layout).
template <class T>
struct TrainingCheckpoint {
  Index step = 0;
  Index dim = 0;
  Index train_samples = 0;
  Index validation_samples = 0;  ///< 0: the run has no validation data
  std::uint64_t seed = 0;
  std::vector<T> parameters;
  std::string optimizer;  ///< optimizer_name of the optimizer type
  std::vector<T> optimizer_state;
  Index optimizer_step_count = 0;
  MinibatchSamplerState sampler;
  std::vector<double> train_loss;  ///< train_loss[i]: batch loss of step i + 1
  std::vector<Index> validation_step;
  std::vector<double> validation_nll;
  Index epochs = 0;     ///< TrainerOptions::epochs of the run (0: it counts steps)
  Index best_step = 0;  ///< 0: no validation yet, or the initial model is the best (epoch mode)
  std::optional<double> best_validation_nll;  ///< set once a validation ran
  std::vector<T> best_parameters;             ///< empty when best_validation_nll is not set
  Index evaluations_without_improvement = 0;
  double seconds = 0;    ///< training time before this checkpoint
  bool training = true;  ///< the model's mode before the run: the mode the run ends in
  /// For a flow: its BatchNorm running statistics and the architecture they belong to (empty
  /// architecture: the model is not a flow, or a version 1 file).
  FlowState<T> model_state;
};

inline constexpr std::string_view checkpoint_format = "knead.checkpoint";
inline constexpr int checkpoint_format_version = 3;
/// Prefix of the model's non-parameter tensors and metadata in a checkpoint.
inline constexpr std::string_view checkpoint_model_prefix = "model.";

namespace detail {

template <class T>
constexpr std::string_view scalar_name() {
  return std::is_same_v<T, float> ? "float" : "double";
}

inline std::vector<double> as_doubles(const std::vector<Index>& values) {
  return {values.begin(), values.end()};
}

/// Reads the checkpoint's fields, each failure a FormatError naming the field.
class CheckpointReader {
 public:
  CheckpointReader(const io::SafetensorsFile& file, std::string where)
      : file_(file), where_(std::move(where)) {}

  template <class... Parts>
  [[noreturn]] void bad(const Parts&... parts) const {
    fail<FormatError>("load_checkpoint", where_, ": ", parts...);
  }

  const std::string& text(std::string_view key) const {
    const auto it = file_.metadata().find(key);
    if (it == file_.metadata().end()) bad("metadata '", key, "' is missing");
    return it->second;
  }

  std::int64_t integer(std::string_view key, std::int64_t lo,
                       std::int64_t hi = std::numeric_limits<Index>::max()) const {
    const std::string& s = text(key);
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (error != std::errc() || end != s.data() + s.size() || s.empty())
      bad("metadata '", key, "' is not an integer: '", io::detail::printable(s, 40), "'");
    if (value < lo || value > hi) bad("metadata '", key, "' is ", value, ", outside [", lo, ", ", hi, "]");
    return value;
  }

  std::uint64_t unsigned_integer(std::string_view key) const {
    const std::string& s = text(key);
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (error != std::errc() || end != s.data() + s.size() || s.empty())
      bad("metadata '", key, "' is not an unsigned integer: '", io::detail::printable(s, 40), "'");
    return value;
  }

  /// A 1-D tensor of `expected` elements (any length if expected is negative).
  template <class V>
  std::vector<V> vector(std::string_view name, Index expected) const {
    if (!file_.contains(name)) bad("tensor '", name, "' is missing");
    const io::TensorInfo& t = file_.tensor(name);
    if (t.shape.size() != 1) bad("tensor '", name, "' has ", t.shape.size(), " dimensions, expected 1");
    if (expected >= 0 && t.element_count != std::uint64_t(expected))
      bad("tensor '", name, "' has ", t.element_count, " values, expected ", expected);
    if (t.dtype != io::dtype_of<V>)
      bad("tensor '", name, "' has dtype ", io::dtype_name(t.dtype), ", expected ",
          io::dtype_name(io::dtype_of<V>));
    return file_.read<V>(name);
  }

  /// Non-negative integer counts stored as F64.
  std::vector<Index> indices(std::string_view name, Index expected, Index upper) const {
    const std::vector<double> values = vector<double>(name, expected);
    std::vector<Index> out(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!(values[i] >= 0 && values[i] <= double(upper)) || values[i] != std::floor(values[i]))
        bad("tensor '", name, "' entry ", i, " is ", values[i], ", not an integer in [0, ", upper, "]");
      out[i] = Index(values[i]);
    }
    return out;
  }

  template <class V>
  void require_finite(std::string_view name, const std::vector<V>& values) const {
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(static_cast<double>(values[i])))
        bad("tensor '", name, "' has a non-finite value ", values[i], " at index ", i);
  }

 private:
  const io::SafetensorsFile& file_;
  std::string where_;
};

/// The model.* entries of a version 2 checkpoint (see the file comment).
template <class T>
void read_model_state(const CheckpointReader& r, const io::SafetensorsFile& file, TrainingCheckpoint<T>& c) {
  const std::string model(checkpoint_model_prefix);
  const std::string& training = r.text(model + "training");
  if (training != "true" && training != "false")
    r.bad("metadata '", model, "training' is '", io::detail::printable(training, 20), "', not true or false");
  c.training = training == "true";
  c.model_state.architecture = r.text(model + "architecture");
  if (!c.model_state.architecture.empty()) {
    try {
      (void)io::flow_detail::parse_architecture(c.model_state.architecture, model + "architecture");
    } catch (const FormatError& e) {
      r.bad(e.what());
    }
  }
  for (const io::TensorInfo& t : file.tensors()) {
    if (!t.name.starts_with(model)) continue;
    if (c.model_state.architecture.empty())
      r.bad("tensor '", io::detail::printable(t.name, 80), "' belongs to no model architecture");
    std::vector<T> values = r.template vector<T>(t.name, -1);
    r.require_finite(t.name, values);
    c.model_state.buffers.emplace(t.name.substr(model.size()), std::move(values));
  }
}

}  // namespace detail

/// Writes `c` to `path` atomically (write_file_atomically: the previous file survives any failure).
/// @throws FileError if the system refuses, or whatever options.fault_hook throws.
template <class T>
void save_checkpoint(const TrainingCheckpoint<T>& c, const std::filesystem::path& path,
                     const io::AtomicWriteOptions& options = {}) {
  using Shape = io::SafetensorsWriter::Shape;
  const auto n = [](std::size_t size) { return Shape{std::uint64_t(size)}; };
  io::SafetensorsWriter w;
  w.write_data_checksum(true);
  w.add("parameters", std::span<const T>(c.parameters), n(c.parameters.size()));
  w.add("optimizer.state", std::span<const T>(c.optimizer_state), n(c.optimizer_state.size()));
  if (c.best_validation_nll)
    w.add("best_parameters", std::span<const T>(c.best_parameters), n(c.best_parameters.size()));
  const std::vector<double> order = detail::as_doubles(c.sampler.order);
  w.add("sampler.order", std::span<const double>(order), n(order.size()));
  w.add("history.train_loss", std::span<const double>(c.train_loss), n(c.train_loss.size()));
  const std::vector<double> steps = detail::as_doubles(c.validation_step);
  w.add("history.validation_step", std::span<const double>(steps), n(steps.size()));
  w.add("history.validation_nll", std::span<const double>(c.validation_nll), n(c.validation_nll.size()));
  if (c.best_validation_nll)
    w.add("history.best_validation_nll", std::span<const double>(&*c.best_validation_nll, 1), Shape{1});
  const std::string model(checkpoint_model_prefix);
  for (const auto& [name, values] : c.model_state.buffers)
    w.add(model + name, std::span<const T>(values), n(values.size()));

  const auto str = [](auto v) { return std::to_string(v); };
  w.set_metadata("format", std::string(checkpoint_format));
  w.set_metadata("format_version", str(checkpoint_format_version));
  w.set_metadata("scalar", std::string(detail::scalar_name<T>()));
  w.set_metadata("step", str(c.step));
  w.set_metadata("dim", str(c.dim));
  w.set_metadata("train_samples", str(c.train_samples));
  w.set_metadata("validation_samples", str(c.validation_samples));
  w.set_metadata("seed", str(c.seed));
  w.set_metadata("optimizer", c.optimizer);
  w.set_metadata("optimizer.step_count", str(c.optimizer_step_count));
  w.set_metadata("sampler.engine", c.sampler.engine);
  w.set_metadata("sampler.next", str(c.sampler.next));
  w.set_metadata("sampler.epoch", str(c.sampler.epoch));
  w.set_metadata("sampler.batch_size", str(c.sampler.batch_size));
  w.set_metadata("epochs", str(c.epochs));
  w.set_metadata("best_step", str(c.best_step));
  w.set_metadata("evaluations_without_improvement", str(c.evaluations_without_improvement));
  std::ostringstream seconds;
  seconds.imbue(std::locale::classic());
  seconds.precision(17);
  seconds << c.seconds;
  w.set_metadata("seconds", seconds.str());
  w.set_metadata(model + "training", c.training ? "true" : "false");
  w.set_metadata(model + "architecture", c.model_state.architecture);
  w.write(path, options);
}

/// Reads a checkpoint written by save_checkpoint<T>, checking every field and their consistency.
/// @throws FileError if it cannot be read; FormatError naming the path and the problem if it is
///         truncated, malformed, of another format or version, or holds the other scalar type.
template <class T>
TrainingCheckpoint<T> load_checkpoint(const std::filesystem::path& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::load(path);
  const detail::CheckpointReader r(file, io::detail::quoted(path));
  if (r.text("format") != checkpoint_format)
    r.bad("not a knead checkpoint (format '", io::detail::printable(r.text("format"), 40), "')");
  const auto version = r.integer("format_version", 1);
  if (version > checkpoint_format_version)
    r.bad("format version ", version, " is newer than this knead reads (", checkpoint_format_version, ")");
  if (r.text("scalar") != detail::scalar_name<T>())
    r.bad("holds ", io::detail::printable(r.text("scalar"), 20), " values, expected ",
          detail::scalar_name<T>(),
          " (a resumed run continues bit for bit only in the scalar type it was saved in)");

  TrainingCheckpoint<T> c;
  c.step = r.integer("step", 0);
  c.dim = r.integer("dim", 1);
  c.train_samples = r.integer("train_samples", 1);
  c.validation_samples = r.integer("validation_samples", 0);
  c.seed = r.unsigned_integer("seed");
  c.parameters = r.template vector<T>("parameters", -1);
  r.require_finite("parameters", c.parameters);
  c.optimizer = r.text("optimizer");
  c.optimizer_state = r.template vector<T>("optimizer.state", -1);
  r.require_finite("optimizer.state", c.optimizer_state);
  c.optimizer_step_count = r.integer("optimizer.step_count", 0);
  c.sampler.engine = r.text("sampler.engine");
  c.sampler.order = r.indices("sampler.order", c.train_samples, c.train_samples - 1);
  c.sampler.next = r.integer("sampler.next", 0, c.train_samples);
  c.sampler.epoch = r.integer("sampler.epoch", 0);
  c.sampler.batch_size = r.integer("sampler.batch_size", 1, c.train_samples);
  c.train_loss = r.template vector<double>("history.train_loss", c.step);
  r.require_finite("history.train_loss", c.train_loss);
  c.epochs = file.metadata().contains("epochs") ? r.integer("epochs", 0) : 0;  // version 2: steps
  c.validation_step = r.indices("history.validation_step", -1, c.step);
  c.validation_nll = r.template vector<double>("history.validation_nll", Index(c.validation_step.size()));
  for (std::size_t i = 0; i < c.validation_step.size(); ++i) {
    const bool initial = i == 0 && c.validation_step[i] == 0 && c.epochs > 0;  // the initial model
    if ((c.validation_step[i] == 0 && !initial) ||
        (i > 0 && c.validation_step[i] <= c.validation_step[i - 1]))
      r.bad("validation steps must increase from 1 (from 0 in a run counting epochs), got ",
            c.validation_step[i], " at index ", i);
  }
  if (c.validation_samples == 0 && !c.validation_step.empty())
    r.bad("has validation records but no validation samples");
  c.best_step = r.integer("best_step", 0, c.step);
  c.evaluations_without_improvement = r.integer("evaluations_without_improvement", 0, c.step);
  const bool has_best = file.contains("history.best_validation_nll");
  if ((c.best_step > 0 || has_best) &&
      std::find(c.validation_step.begin(), c.validation_step.end(), c.best_step) == c.validation_step.end())
    r.bad("best_step ", c.best_step, " is not a validation step");
  if (c.best_step > 0 && !has_best)
    r.bad("best_step is ", c.best_step, " but history.best_validation_nll is missing");
  if (has_best) {
    c.best_parameters = r.template vector<T>("best_parameters", Index(c.parameters.size()));
    r.require_finite("best_parameters", c.best_parameters);
    c.best_validation_nll = r.template vector<double>("history.best_validation_nll", 1)[0];
  }
  if (file.contains("best_parameters") != has_best)
    r.bad("best_parameters must be present exactly when history.best_validation_nll is");
  const std::string& seconds = r.text("seconds");
  std::istringstream in(seconds);
  in.imbue(std::locale::classic());
  if (!(in >> c.seconds) || !std::isfinite(c.seconds) || c.seconds < 0) c.seconds = 0;  // informative only
  if (version >= 2) read_model_state(r, file, c);
  return c;
}

}  // namespace knead
