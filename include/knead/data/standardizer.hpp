#pragma once
/// @file
/// Standardisation z = (x − μ) / σ, fitted on training data: σ per dimension (the usual), one σ for
/// all dimensions (keeps the data's aspect ratio, e.g. a wide word stays wide), or σ = 1 (centring
/// only, as in the "Normalizing Flows Tutorial, Part 2" for its SIGGRAPH cloud).
///
/// Flows train best on data of unit scale. Fit a Standardizer on the training set, train the flow
/// on transform(x), and convert densities back: since z = (x − μ)/σ has Jacobian diag(1/σ),
///
///     log p_x(x) = log p_z(z) + Σ_i log(1/σ_i) = log p_z(z) + log_det(),
///
/// so an NLL measured in standardised coordinates is data_nll = z_nll − log_det().

#include <cmath>
#include <string>
#include <string_view>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead::data {

/// How a Standardizer scales after centring.
enum class Scaling {
  per_dimension,  ///< σ_i = standard deviation of dimension i
  uniform,        ///< σ_i = √(mean_i var_i) for every i: one scale, the aspect ratio is kept
  none            ///< σ_i = 1: centring only, log_det() = 0
};

template <class T>
class Standardizer {
 public:
  using Scalar = T;

  /// Unfitted: every call but fit() throws std::logic_error.
  Standardizer() = default;

  /// Fitted on `data` (D×N, one sample per column).
  explicit Standardizer(MatrixCRef<T> data, Scaling scaling = Scaling::per_dimension) { fit(data, scaling); }

  /// μ_i is the mean of row i; σ_i follows `scaling` from the (population, 1/N) variances. Throws
  /// std::invalid_argument for an empty or non-finite batch or a scale of 0 (a constant dimension
  /// cannot be standardised; its density is not defined). Sums are taken in double precision, so
  /// float data loses no accuracy.
  void fit(MatrixCRef<T> data, Scaling scaling = Scaling::per_dimension) {
    constexpr std::string_view function = "Standardizer::fit";
    if (data.rows() < 1 || data.cols() < 1)
      detail::fail(function, "expected a non-empty D×N batch, got ", data.rows(), "x", data.cols());
    detail::check_finite(function, "data", data);
    const Matrix<double> x = data.template cast<double>();
    const Vector<double> mean = x.rowwise().mean();
    Vector<double> var = (x.colwise() - mean).rowwise().squaredNorm() / double(x.cols());
    if (scaling == Scaling::uniform) var.setConstant(var.mean());
    if (scaling == Scaling::none) var.setOnes();
    for (Index i = 0; i < x.rows(); ++i) {
      const double sd = std::sqrt(var(i));
      // σ must survive the round trip to T and back through 1/σ.
      if (!(static_cast<T>(sd) > T(0)) || !std::isfinite(static_cast<double>(T(1) / static_cast<T>(sd))))
        detail::fail(function, "dimension ", i, " has standard deviation ", sd,
                     " (constant data cannot be standardised)");
    }
    mean_ = mean.template cast<T>();
    scale_ = var.cwiseSqrt().template cast<T>();
    log_det_ = static_cast<T>(-var.array().sqrt().log().sum());
  }

  [[nodiscard]] bool fitted() const { return mean_.size() > 0; }
  [[nodiscard]] Index dim() const { return mean_.size(); }
  /// μ and σ per dimension.
  [[nodiscard]] const Vector<T>& mean() const {
    check_fitted("mean");
    return mean_;
  }
  [[nodiscard]] const Vector<T>& scale() const {
    check_fitted("scale");
    return scale_;
  }

  /// z = (x − μ) / σ, column by column. Throws std::invalid_argument for a batch with the wrong
  /// number of rows, no columns or a non-finite value.
  [[nodiscard]] Matrix<T> transform(MatrixCRef<T> x) const {
    check("transform", x);
    return (x.colwise() - mean_).array().colwise() / scale_.array();
  }

  /// x = σ z + μ, column by column.
  [[nodiscard]] Matrix<T> inverse_transform(MatrixCRef<T> z) const {
    check("inverse_transform", z);
    Matrix<T> x = z.array().colwise() * scale_.array();
    x.colwise() += mean_;
    return x;
  }

  /// log|det ∂z/∂x| = Σ_i log(1/σ_i), the same for every sample: log p_x(x) = log p_z(z) + log_det().
  [[nodiscard]] T log_det() const {
    check_fitted("log_det");
    return log_det_;
  }

  /// Per-sample log densities in data coordinates from those of the standardised samples.
  [[nodiscard]] RowVector<T> data_log_prob(RowVectorCRef<T> log_prob_z) const {
    check_fitted("data_log_prob");
    return log_prob_z.array() + log_det_;
  }

 private:
  static std::string function(std::string_view what) { return "Standardizer::" + std::string(what); }
  void check_fitted(std::string_view what) const {
    if (!fitted()) detail::fail<std::logic_error>(function(what), "called before fit()");
  }
  void check(std::string_view what, MatrixCRef<T> batch) const {
    check_fitted(what);
    detail::check_batch(function(what), batch, dim());
    detail::check_finite(function(what), "batch", batch);
  }

  Vector<T> mean_, scale_;
  T log_det_ = T(0);
};

}  // namespace knead::data
