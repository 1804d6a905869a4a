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
  /// std::invalid_argument for an empty batch, a non-finite value (naming its dimension and sample),
  /// or a scale of 0 (a constant dimension cannot be standardised; its density is not defined) or
  /// beyond the range of T. Sums are taken in double precision, so float data loses no accuracy.
  ///
  /// The moments cannot overflow: row i is first divided by a power of two c_i near its largest
  /// magnitude, so |x/c_i| < 2 and the squares stay small (values near 1e300 have squares beyond
  /// double's range). With y = x / c_i, μ_i = c_i mean(y) and σ_i = c_i √(mean((y − μ_i/c_i)²)).
  /// Dividing by a power of two is exact and commutes with the rounding of +, /N and √, so data whose
  /// squares fit gets the same bits as the unscaled formulas.
  void fit(MatrixCRef<T> data, Scaling scaling = Scaling::per_dimension) {
    constexpr std::string_view function = "Standardizer::fit";
    if (data.rows() < 1 || data.cols() < 1)
      detail::fail(function, "expected a non-empty D×N batch, got ", data.rows(), "x", data.cols());
    for (Index j = 0; j < data.cols(); ++j)
      for (Index i = 0; i < data.rows(); ++i)
        if (!std::isfinite(static_cast<double>(data(i, j))))
          detail::fail(function, "data has a non-finite value ", data(i, j), " in dimension ", i,
                       " of sample ", j, " (row ", i, ", column ", j, " of the D×N batch)");
    const Index dims = data.rows();
    Matrix<double> y = data.template cast<double>();
    Vector<double> power(dims);  // c_i
    for (Index i = 0; i < dims; ++i) {
      const double largest = y.row(i).cwiseAbs().maxCoeff();
      int exponent = 0;
      std::frexp(largest, &exponent);  // largest < 2^exponent
      power(i) = largest > 0 ? std::ldexp(1.0, exponent - 1) : 1.0;
      y.row(i) /= power(i);
    }
    const Vector<double> scaled_mean = y.rowwise().mean();
    // σ_i² / c_i²
    const Vector<double> scaled_var = (y.colwise() - scaled_mean).rowwise().squaredNorm() / double(y.cols());
    Vector<double> sd(dims);
    if (scaling == Scaling::uniform) {
      // √(mean_i σ_i²) = c √(mean_i (σ_i/c)²), with c the largest c_i
      const double common = power.maxCoeff();
      const double scaled = (scaled_var.array() * (power.array() / common).square()).mean();
      sd.setConstant(std::sqrt(scaled) * common);
    } else {
      sd = scaled_var.cwiseSqrt().cwiseProduct(power);
    }
    if (scaling == Scaling::none) sd.setOnes();
    for (Index i = 0; i < dims; ++i) {
      // σ must survive the round trip to T and back through 1/σ.
      if (!std::isfinite(sd(i)) || !std::isfinite(static_cast<double>(static_cast<T>(sd(i)))))
        detail::fail(function, "dimension ", i, " has standard deviation ", sd(i),
                     ", beyond the range of the scalar type");
      if (!(static_cast<T>(sd(i)) > T(0)) ||
          !std::isfinite(static_cast<double>(T(1) / static_cast<T>(sd(i)))))
        detail::fail(function, "dimension ", i, " has standard deviation ", sd(i),
                     " (constant data cannot be standardised)");
    }
    mean_ = scaled_mean.cwiseProduct(power).template cast<T>();
    scale_ = sd.template cast<T>();
    log_det_ = static_cast<T>(-sd.array().log().sum());
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
