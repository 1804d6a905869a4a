#pragma once
/// @file
/// Evaluation of a trained model on a data set in bounded memory: the log density of every sample
/// (log_prob_rows), computed in chunks of columns under NoGrad in evaluation mode (BatchNorm uses
/// its running statistics), and a summary of those values (summarize_log_prob: mean NLL with its
/// standard error, median NLL, the worst-fitting samples).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <numeric>
#include <optional>
#include <string_view>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/types.hpp"
#include "knead/train/minibatch.hpp"

namespace knead {

/// What log_prob_rows needs of a model: log densities of a batch and a training-mode switch.
template <class M>
concept EvaluableModel = HasScalar<M> && HasDim<M> &&
    requires(M& m, MatrixCRef<typename M::Scalar> x, RowVector<typename M::Scalar>& out) {
  { m.log_prob(x, out) } -> std::same_as<void>;  // not log_prob(x, c) of a conditional model
  m.set_training(true);
};

/// What log_prob_rows needs of a conditional model p(x | c).
template <class M>
concept ConditionalEvaluableModel = HasScalar<M> && HasDim<M> &&
    requires(M& m, const M& cm, MatrixCRef<typename M::Scalar> x, MatrixCRef<typename M::Scalar> c,
             RowVector<typename M::Scalar>& out) {
  { cm.context_dim() } -> std::convertible_to<Index>;
  { m.log_prob(x, c, out) } -> std::same_as<void>;
  m.set_training(true);
};

namespace detail {

/// Sets a model's training mode and puts back the previous one (or `restore`) on scope exit, also
/// when an exception leaves. A model that cannot report its mode is taken to be in training mode,
/// the default of every layer.
template <class Model>
class ModeGuard {
 public:
  ModeGuard(Model& m, bool on, std::optional<bool> restore = std::nullopt)
      : m_(m), previous_(restore.value_or(mode(m))) {
    m_.set_training(on);
  }
  ~ModeGuard() { m_.set_training(previous_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;
  [[nodiscard]] bool previous() const { return previous_; }

 private:
  static bool mode(const Model& m) {
    if constexpr (HasTrainingMode<Model>) return m.training();
    return true;
  }
  Model& m_;
  bool previous_;
};

/// Calls visit(first_column, log_prob_of_chunk) for consecutive chunks of at most `chunk` columns
/// of `data` (paired with the same columns of `*context` when it is given), in evaluation mode
/// under NoGrad; `buffer` holds each chunk's log densities. The caller checks the arguments.
template <class Model, class Visit>
void visit_log_prob_chunks(Model& model, MatrixCRef<typename Model::Scalar> data,
                           const MatrixCRef<typename Model::Scalar>* context, Index chunk,
                           RowVector<typename Model::Scalar>& buffer, Visit&& visit) {
  const ModeGuard<Model> evaluation_mode(model, false);
  const NoGrad no_grad;  // nothing to differentiate: networks keep no activations
  for (Index j = 0; j < data.cols(); j += chunk) {
    const Index c = std::min(chunk, data.cols() - j);
    if (context == nullptr) {
      if constexpr (EvaluableModel<Model>) model.log_prob(data.middleCols(j, c), buffer);
    } else {
      if constexpr (ConditionalEvaluableModel<Model>)
        model.log_prob(data.middleCols(j, c), context->middleCols(j, c), buffer);
    }
    visit(j, static_cast<const RowVector<typename Model::Scalar>&>(buffer));
  }
}

inline void check_chunk(std::string_view function, Index chunk) {
  if (chunk <= 0) fail(function, "chunk must be positive (columns per log_prob call), got ", chunk);
}

template <class Model>
RowVector<double> log_prob_rows(Model& model, MatrixCRef<typename Model::Scalar> data,
                                const MatrixCRef<typename Model::Scalar>* context, Index chunk) {
  RowVector<double> rows(data.cols());
  RowVector<typename Model::Scalar> buffer;
  visit_log_prob_chunks(model, data, context, chunk, buffer, [&](Index first, const auto& lp) {
    for (Index k = 0; k < lp.size(); ++k) rows(first + k) = static_cast<double>(lp(k));
  });
  return rows;
}

}  // namespace detail

/// log p(x_j) of every column x_j of `data` (dim × N), computed `chunk` columns at a time under
/// NoGrad in evaluation mode; the model's mode is restored afterwards. Memory beyond the result
/// is that of one chunk.
/// @throws std::invalid_argument if `chunk` is not positive or `data` is not dim × N (N ≥ 1) with
///         finite values.
template <EvaluableModel Model>
RowVector<double> log_prob_rows(Model& model, MatrixCRef<typename Model::Scalar> data, Index chunk = 4096) {
  constexpr std::string_view function = "log_prob_rows";
  detail::check_chunk(function, chunk);
  detail::check_data<typename Model::Scalar>(function, "data", data, model.dim());
  return detail::log_prob_rows(model, data, nullptr, chunk);
}

/// log p(x_j | c_j) for the pairs (column j of `data`, column j of `context`), as above.
template <ConditionalEvaluableModel Model>
RowVector<double> log_prob_rows(Model& model, MatrixCRef<typename Model::Scalar> data,
                                MatrixCRef<typename Model::Scalar> context, Index chunk = 4096) {
  constexpr std::string_view function = "log_prob_rows";
  detail::check_chunk(function, chunk);
  detail::check_data<typename Model::Scalar>(function, "data", data, model.dim());
  if (context.rows() != model.context_dim() || context.cols() != data.cols())
    detail::fail(function, "context must be ", model.context_dim(), "x", data.cols(),
                 " (context_dim rows, one column per data column), got ", context.rows(), "x",
                 context.cols());
  detail::check_finite(function, "context", context);
  return detail::log_prob_rows(model, data, &context, chunk);
}

/// Summary of per-sample log densities (log_prob_rows) as negative log-likelihoods.
struct LogProbSummary {
  Index count = 0;
  double mean_nll = 0;  ///< (1/n) Σ −log p_j, summed in column order
  /// s / √n with s² = Σ (nll_j − mean)² / (n − 1), the standard error of mean_nll; +∞ for n = 1
  /// (one sample says nothing about the spread).
  double standard_error = 0;
  double median_nll = 0;               ///< the middle NLL, or the mean of the two middle ones for even n
  std::vector<Index> worst_rows;       ///< columns of the lowest log densities, lowest first
  std::vector<double> worst_log_prob;  ///< their log densities (ties: the lower column first)
};

/// Summarises `log_prob` (one log density per sample): mean NLL, its standard error, median NLL
/// and the `worst` samples with the lowest log densities (fewer if there are fewer samples).
/// A log density of −∞ (a sample outside the model's support) is allowed and makes the mean +∞.
/// @throws std::invalid_argument if `log_prob` is empty or holds a NaN or +∞, or `worst` is negative.
inline LogProbSummary summarize_log_prob(const RowVector<double>& log_prob, Index worst = 10) {
  constexpr std::string_view function = "summarize_log_prob";
  const Index n = log_prob.size();
  if (n == 0) detail::fail(function, "no log densities to summarise (0 values)");
  if (worst < 0) detail::fail(function, "worst must be non-negative, got ", worst);
  for (Index j = 0; j < n; ++j)
    if (std::isnan(log_prob(j)) || log_prob(j) == std::numeric_limits<double>::infinity())
      detail::fail(function, "log density ", j, " is ", log_prob(j), " (expected a number or -inf)");
  LogProbSummary s;
  s.count = n;
  double sum = 0;
  for (Index j = 0; j < n; ++j) sum -= log_prob(j);
  s.mean_nll = sum / double(n);
  if (n == 1) {
    s.standard_error = std::numeric_limits<double>::infinity();
  } else if (!std::isfinite(s.mean_nll)) {
    s.standard_error = std::numeric_limits<double>::infinity();  // a sample of infinite NLL
  } else {
    double squares = 0;
    for (Index j = 0; j < n; ++j) {
      const double d = -log_prob(j) - s.mean_nll;
      squares += d * d;
    }
    s.standard_error = std::sqrt(squares / double(n - 1)) / std::sqrt(double(n));
  }
  // the median NLL: the middle of the sorted values, found by selection (O(n); a full sort of a
  // million values was 8 % of `knead log-prob`)
  std::vector<double> nll(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) nll[std::size_t(j)] = -log_prob(j);
  const auto middle = nll.begin() + n / 2;
  std::nth_element(nll.begin(), middle, nll.end());
  s.median_nll = n % 2 == 1 ? *middle : 0.5 * (*std::max_element(nll.begin(), middle) + *middle);
  // the worst columns: lowest log density first, ties by column
  const Index k = std::min(worst, n);
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](Index a, Index b) {
    return log_prob(a) < log_prob(b) || (log_prob(a) == log_prob(b) && a < b);
  });
  for (Index i = 0; i < k; ++i) {
    s.worst_rows.push_back(order[std::size_t(i)]);
    s.worst_log_prob.push_back(log_prob(order[std::size_t(i)]));
  }
  return s;
}

}  // namespace knead
