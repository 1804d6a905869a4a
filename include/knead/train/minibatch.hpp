#pragma once
/// @file
/// Data handling for training: checks of a D×N data matrix, a seeded validation split, and a
/// sampler of shuffled minibatches (columns are samples).
///
/// Shuffles use their own Fisher–Yates over the raw output of the engine (std::mt19937_64, whose
/// output the C++ standard fixes), not std::shuffle or std::uniform_int_distribution (whose
/// algorithms are left to the library), so a seed gives the same batches with every compiler.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <locale>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

namespace detail {

/// `data` must have `dim` rows (one sample per column), at least one column, and only finite
/// values; a non-finite value is reported with its column (sample) index.
template <class T>
void check_data(std::string_view function, std::string_view what, MatrixCRef<T> data, Index dim) {
  if (data.rows() != dim)
    fail(function, what, " has ", data.rows(), " rows but the model has dim ", dim, " (expected ", dim,
         " rows, one sample per column; got a ", data.rows(), "x", data.cols(), " matrix)");
  if (data.cols() == 0) fail(function, what, " is empty (0 columns)");
  for (Index j = 0; j < data.cols(); ++j)
    for (Index i = 0; i < data.rows(); ++i)
      if (!std::isfinite(static_cast<double>(data(i, j))))
        fail(function, what, " has a non-finite value ", data(i, j), " in column ", j, " (sample ", j,
             ", row ", i, ")");
}

/// Uniformly random permutation of `order` in place (Fisher–Yates; the modulo bias is below
/// n / 2⁶⁴, far under anything observable).
inline void shuffle(std::vector<Index>& order, Rng& rng) {
  for (std::size_t i = order.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(i));
    std::swap(order[i - 1], order[j]);
  }
}

/// Copies the columns `indices` of `data` into `out` (D × indices.size()).
template <class T>
void gather_columns(MatrixCRef<T> data, std::span<const Index> indices, Matrix<T>& out) {
  resize_workspace(out, data.rows(), Index(indices.size()));
  for (std::size_t k = 0; k < indices.size(); ++k) out.col(Index(k)) = data.col(indices[k]);
}

}  // namespace detail

/// A random split of the columns of `data`: round(fraction · N) of them (at least one) go to
/// validation, the rest, in their original order, to training.
template <class T>
struct DataSplit {
  Matrix<T> train;
  Matrix<T> validation;
};

template <class T>
DataSplit<T> split_validation(MatrixCRef<T> data, double fraction, Rng& rng) {
  constexpr std::string_view function = "split_validation";
  if (!std::isfinite(fraction) || fraction <= 0 || fraction >= 1)
    detail::fail(function, "fraction must be in (0, 1), got ", fraction);
  const Index n = data.cols();
  const Index n_validation = std::max<Index>(1, std::llround(fraction * double(n)));
  if (n_validation >= n)
    detail::fail(function, "a fraction of ", fraction, " of ", n, " samples leaves none for training");
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  detail::shuffle(order, rng);
  std::vector<bool> to_validation(static_cast<std::size_t>(n), false);
  for (Index k = 0; k < n_validation; ++k) to_validation[std::size_t(order[std::size_t(k)])] = true;
  std::vector<Index> train_idx, validation_idx;
  for (Index j = 0; j < n; ++j) (to_validation[std::size_t(j)] ? validation_idx : train_idx).push_back(j);
  DataSplit<T> split;
  detail::gather_columns<T>(data, train_idx, split.train);
  detail::gather_columns<T>(data, validation_idx, split.validation);
  return split;
}

/// Everything that decides the batches a MinibatchSampler draws next, for checkpoints: restoring it
/// into a sampler of the same size continues the exact sequence of batches.
struct MinibatchSamplerState {
  std::string engine;        ///< the std::mt19937_64 state in its standard text form
  std::vector<Index> order;  ///< the current epoch's permutation of the columns
  Index next = 0;            ///< position in `order` of the next batch's first column
  Index epoch = 0;           ///< epochs started so far
  Index batch_size = 0;      ///< the effective batch size (for checking)
};

/// What a MinibatchSampler does with the columns left over when N is not a multiple of the batch
/// size.
enum class LastBatch {
  drop,  ///< skipped: every batch has batch_size columns, an epoch is ⌊N / batch_size⌋ batches
  keep,  ///< a shorter last batch: an epoch is ⌈N / batch_size⌉ batches, every column once
};

/// Draws minibatches of `batch_size` columns without replacement: each epoch is a fresh random
/// permutation of the N columns, cut into batches in order. With LastBatch::drop (the default) the
/// remainder of an epoch is skipped, so every step sees a batch of the same size (with reshuffling
/// no sample is left out for good); with LastBatch::keep the last batch of an epoch holds the
/// remainder, so an epoch takes every column exactly once. Both draw the same permutations from a
/// seed. A batch size above N is reduced to N.
class MinibatchSampler {
 public:
  MinibatchSampler(Index num_samples, Index batch_size, std::uint64_t seed, LastBatch last = LastBatch::drop)
      : rng_(seed), last_(last) {
    constexpr std::string_view function = "MinibatchSampler";
    detail::check_positive(function, "number of samples", num_samples);
    detail::check_positive(function, "batch_size", batch_size);
    batch_size_ = std::min(batch_size, num_samples);
    order_.resize(static_cast<std::size_t>(num_samples));
    std::iota(order_.begin(), order_.end(), Index(0));
    next_ = order_.size();  // the first call shuffles
  }

  [[nodiscard]] Index batch_size() const { return batch_size_; }
  /// Epochs started so far (1 after the first batch).
  [[nodiscard]] Index epoch() const { return epoch_; }

  [[nodiscard]] LastBatch last_batch() const { return last_; }
  /// Batches per epoch: ⌊N / batch_size⌋ (LastBatch::drop) or ⌈N / batch_size⌉ (LastBatch::keep).
  [[nodiscard]] Index batches_per_epoch() const {
    const Index n = num_samples();
    return last_ == LastBatch::drop ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }

  /// The column indices of the next batch.
  std::span<const Index> next_indices() {
    const bool epoch_done =
        last_ == LastBatch::drop ? next_ + std::size_t(batch_size_) > order_.size() : next_ >= order_.size();
    if (epoch_done) {
      detail::shuffle(order_, rng_);
      next_ = 0;
      ++epoch_;
    }
    const std::size_t size = std::min(std::size_t(batch_size_), order_.size() - next_);
    const std::span<const Index> batch(order_.data() + next_, size);
    next_ += size;
    return batch;
  }

  /// Gathers the next batch of columns of `data` (which must have num_samples columns).
  template <class T>
  void next(MatrixCRef<T> data, Matrix<T>& batch) {
    if (data.cols() != Index(order_.size()))
      detail::fail("MinibatchSampler::next", "expected data with ", order_.size(), " columns, got ",
                   data.cols());
    detail::gather_columns<T>(data, next_indices(), batch);
  }

  [[nodiscard]] Index num_samples() const { return Index(order_.size()); }

  /// The state that decides every later batch (engine, permutation, position, epoch).
  [[nodiscard]] MinibatchSamplerState state() const {
    std::ostringstream engine;
    engine.imbue(std::locale::classic());  // no digit grouping in the engine's numbers
    engine << rng_;
    return {engine.str(), order_, Index(next_), epoch_, batch_size_};
  }

  /// Restores a state taken with state() from a sampler of the same number of samples and batch
  /// size. Checks everything before changing anything. @throws std::invalid_argument naming the
  /// mismatch or the bad value.
  void set_state(const MinibatchSamplerState& s) {
    constexpr std::string_view function = "MinibatchSampler::set_state";
    if (s.batch_size != batch_size_)
      detail::fail(function, "the state is for batches of ", s.batch_size, " samples, this sampler draws ",
                   batch_size_);
    if (s.order.size() != order_.size())
      detail::fail(function, "the state is for ", s.order.size(), " samples, this sampler has ",
                   order_.size());
    if (s.next < 0 || s.next > Index(order_.size()))
      detail::fail(function, "position ", s.next, " is outside [0, ", order_.size(), "]");
    if (s.epoch < 0) detail::fail(function, "epoch must be non-negative, got ", s.epoch);
    std::vector<bool> seen(order_.size(), false);
    for (std::size_t k = 0; k < s.order.size(); ++k) {
      const Index j = s.order[k];
      if (j < 0 || j >= Index(order_.size()) || seen[std::size_t(j)])
        detail::fail(function, "the order is not a permutation of 0..", order_.size() - 1, ": entry ", k,
                     " is ", j);
      seen[std::size_t(j)] = true;
    }
    std::istringstream text(s.engine);
    text.imbue(std::locale::classic());
    Rng engine;
    text >> engine;
    if (text.fail() || !(text >> std::ws).eof())
      detail::fail(function, "the engine state is not the text form of a std::mt19937_64");
    rng_ = engine;
    order_ = s.order;
    next_ = std::size_t(s.next);
    epoch_ = s.epoch;
  }

 private:
  Rng rng_;
  LastBatch last_ = LastBatch::drop;
  Index batch_size_ = 1;
  std::vector<Index> order_;
  std::size_t next_ = 0;
  Index epoch_ = 0;
};

}  // namespace knead
