#pragma once
/// @file
/// The conformance checker every bijector is tested with. For a bijector and a batch it measures:
/// - round trips both ways: inverse(forward(z)) = z and forward(inverse(z)) = z;
/// - each log-det against log|det| of a central-difference Jacobian, both directions;
/// - inverse log-det at forward(z) = −forward log-det at z;
/// - batched results equal per-sample results;
/// - every vector-Jacobian product (inputs and each parameter, both directions) against finite
///   differences of L = Σ w ⊙ out + Σ v ⊙ log_det for random w, v.
/// Bijectors whose result depends on the batch (BatchNorm in training mode) are checked in eval
/// mode here and by their own tests in training mode.
///
/// A conditional bijector (core/conditional.hpp) is checked the same way with a context, one
/// column per point, held fixed in the round trips and Jacobians, and its vector-Jacobian
/// product w.r.t. the context checked too.

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"
#include "knead/distributions/distribution.hpp"
#include "knead/testing/finite_difference.hpp"

namespace knead::testing {

/// Largest error allowed for each measure, relative (see relative_error) unless said.
struct Tolerances {
  double round_trip;  // absolute, per entry, relative to max(1, |z|)
  double log_det;     // absolute, against the numerical Jacobian
  double gradient;    // relative, against finite differences
  double fd_step_scale = 1.0;

  template <class T>
  static Tolerances for_scalar() {
    if constexpr (std::is_same_v<T, double>) return {1e-9, 1e-6, 1e-6};
    return {2e-4, 2e-2, 3e-2, 4.0};
  }
};

struct ConformanceReport {
  double round_trip_error = 0;          // max over both directions
  double log_det_error = 0;             // max |ld − log|det J_fd|| over both directions
  double log_det_symmetry_error = 0;    // max |ld_inv(f(z)) + ld_fwd(z)|
  double batch_error = 0;               // max |batched − per-sample|
  double input_gradient_error = 0;      // relative, max over directions
  double parameter_gradient_error = 0;  // relative, max over directions
  double context_gradient_error = 0;    // relative, max over directions (conditional bijectors)
  std::vector<std::string> failures;

  [[nodiscard]] bool ok() const { return failures.empty(); }
  [[nodiscard]] std::string summary() const {
    std::ostringstream out;
    out << "round trip " << round_trip_error << ", log-det vs Jacobian " << log_det_error
        << ", log-det symmetry " << log_det_symmetry_error << ", batch " << batch_error << ", input gradient "
        << input_gradient_error << ", parameter gradient " << parameter_gradient_error
        << ", context gradient " << context_gradient_error;
    for (const auto& f : failures) out << "\n  FAILED: " << f;
    return out.str();
  }
};

namespace detail {

/// One pass; with the context `context` unless it is null.
template <class B>
void run(B& b, bool forward, MatrixCRef<typename B::Scalar> in, const Matrix<typename B::Scalar>* context,
         Matrix<typename B::Scalar>& out, RowVector<typename B::Scalar>& log_det) {
  if constexpr (ConditionalBijector<B>) {
    if (context != nullptr) {
      if (forward)
        b.forward_and_log_det(in, *context, out, log_det);
      else
        b.inverse_and_log_det(in, *context, out, log_det);
      return;
    }
  }
  if constexpr (Bijector<B>) {
    if (context == nullptr) {
      if (forward)
        b.forward_and_log_det(in, out, log_det);
      else
        b.inverse_and_log_det(in, out, log_det);
      return;
    }
  }
  throw std::logic_error("check_conformance: the bijector has no pass of this kind");
}

/// backward() of the last pass; adds ∂L/∂c into *grad_context for a pass with a context.
template <class B>
void run_backward(B& b, const Matrix<typename B::Scalar>& w, const RowVector<typename B::Scalar>& v,
                  Matrix<typename B::Scalar>& grad_in, Matrix<typename B::Scalar>* grad_context) {
  if constexpr (ConditionalBijector<B>) {
    if (grad_context != nullptr) {
      b.backward(w, v, grad_in, *grad_context);
      return;
    }
  }
  if constexpr (Bijector<B>) {
    if (grad_context == nullptr) {
      b.backward(w, v, grad_in);
      return;
    }
  }
  throw std::logic_error("check_conformance: the bijector has no backward of this kind");
}

template <class A, class B>
double max_abs(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
  return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

/// Numerical Jacobian ∂out/∂in of one sample (column `col` of `z`, with that column of the
/// context unless it is null), by central differences.
template <class B>
Matrix<double> numerical_jacobian(B& b, bool forward, const Matrix<typename B::Scalar>& z,
                                  const Matrix<typename B::Scalar>* context, Index col, double step_scale) {
  using T = typename B::Scalar;
  const Index d = b.dim();
  Matrix<double> jac(d, d);
  Matrix<T> context_col;
  if (context != nullptr) context_col = context->col(col);
  const Matrix<T>* c = context != nullptr ? &context_col : nullptr;
  Matrix<T> point = z.col(col), out_up, out_down;
  RowVector<T> ld;
  for (Index k = 0; k < d; ++k) {
    const T saved = point(k, 0);
    const T h = T(step_scale) * central_step(saved);
    point(k, 0) = saved + h;
    run(b, forward, point, c, out_up, ld);
    point(k, 0) = saved - h;
    run(b, forward, point, c, out_down, ld);
    point(k, 0) = saved;
    jac.col(k) = (out_up - out_down).template cast<double>() / (double(saved + h) - double(saved - h));
  }
  return jac;
}

/// The checks of check_conformance(), with the context `context` (C × N) unless it is null.
template <class B>
ConformanceReport check(B& bijector, const Matrix<typename B::Scalar>& z,
                        const Matrix<typename B::Scalar>* context, Rng& rng, Tolerances tol) {
  using T = typename B::Scalar;
  ConformanceReport report;
  auto expect = [&report](bool ok, const std::string& what, double value, double limit) {
    if (!ok || !std::isfinite(value)) {
      std::ostringstream out;
      out << what << ": " << value << " (limit " << limit << ")";
      report.failures.push_back(out.str());
    }
  };
  const Index d = bijector.dim(), n = z.cols();
  const double z_scale = std::max(1.0, z.template cast<double>().cwiseAbs().maxCoeff());

  for (const bool forward : {true, false}) {
    const std::string dir = forward ? "forward" : "inverse";
    Matrix<T> out, back;
    RowVector<T> ld, ld_back;
    run(bijector, forward, z, context, out, ld);
    run(bijector, !forward, out, context, back, ld_back);

    // round trip and log-det symmetry
    const double rt = detail::max_abs(back, z) / z_scale;
    report.round_trip_error = std::max(report.round_trip_error, rt);
    expect(rt <= tol.round_trip, dir + " round trip", rt, tol.round_trip);
    const double sym = (ld.template cast<double>() + ld_back.template cast<double>()).cwiseAbs().maxCoeff();
    report.log_det_symmetry_error = std::max(report.log_det_symmetry_error, sym);
    expect(sym <= tol.log_det, dir + " log-det symmetry", sym, tol.log_det);

    // batched = per sample, and log-det against the numerical Jacobian
    for (Index j = 0; j < n; ++j) {
      Matrix<T> single_out, single_context;
      RowVector<T> single_ld;
      if (context != nullptr) single_context = context->col(j);
      run(bijector, forward, z.col(j), context != nullptr ? &single_context : nullptr, single_out, single_ld);
      const double be =
          std::max(max_abs(single_out, out.col(j)), std::abs(double(single_ld(0)) - double(ld(j))));
      report.batch_error = std::max(report.batch_error, be);
      expect(be <= tol.round_trip * std::max(1.0, double(out.col(j).cwiseAbs().maxCoeff())),
             dir + " batched vs per-sample", be, tol.round_trip);
      const double num_ld =
          log_abs_det(numerical_jacobian(bijector, forward, z, context, j, tol.fd_step_scale));
      const double lde = std::abs(num_ld - double(ld(j)));
      report.log_det_error = std::max(report.log_det_error, lde);
      expect(lde <= tol.log_det, dir + " log-det vs numerical Jacobian", lde, tol.log_det);
    }

    // vector-Jacobian products against finite differences of L = Σ w ⊙ out + Σ v ⊙ log_det
    std::normal_distribution<double> normal;
    const Matrix<T> w = Matrix<double>::NullaryExpr(d, n, [&] { return normal(rng); }).template cast<T>();
    const RowVector<T> v = RowVector<double>::NullaryExpr(n, [&] { return normal(rng); }).template cast<T>();
    Matrix<T> point = z, context_point;
    if (context != nullptr) context_point = *context;
    auto loss = [&]() {
      Matrix<T> o;
      RowVector<T> l;
      run(bijector, forward, point, context != nullptr ? &context_point : nullptr, o, l);
      return (o.template cast<double>().cwiseProduct(w.template cast<double>())).sum() +
             l.template cast<double>().dot(v.template cast<double>());
    };
    zero_gradients(bijector);
    run(bijector, forward, z, context, out, ld);
    Matrix<T> grad_in, grad_context;
    if (context != nullptr) grad_context.setZero(context->rows(), n);
    run_backward(bijector, w, v, grad_in, context != nullptr ? &grad_context : nullptr);
    const Vector<double> analytic_params =
        Eigen::Map<const Vector<T>>(bijector.gradients().data(), Index(bijector.gradients().size()))
            .template cast<double>();
    const Vector<double> numeric_in = finite_difference_gradient<T>(
        loss, std::span<T>(point.data(), std::size_t(point.size())), tol.fd_step_scale);
    const Vector<double> analytic_in =
        Eigen::Map<const Vector<T>>(grad_in.data(), grad_in.size()).template cast<double>();
    const double gin = grad_in.size() == point.size() ? relative_error(analytic_in, numeric_in) : INFINITY;
    report.input_gradient_error = std::max(report.input_gradient_error, gin);
    expect(gin <= tol.gradient, dir + " input gradient", gin, tol.gradient);
    const Vector<double> numeric_params =
        finite_difference_gradient<T>(loss, bijector.parameters(), tol.fd_step_scale);
    const double gp = relative_error(analytic_params, numeric_params);
    report.parameter_gradient_error = std::max(report.parameter_gradient_error, gp);
    expect(gp <= tol.gradient, dir + " parameter gradient", gp, tol.gradient);
    if (context != nullptr) {
      const Vector<double> numeric_context = finite_difference_gradient<T>(
          loss, std::span<T>(context_point.data(), std::size_t(context_point.size())), tol.fd_step_scale);
      const Vector<double> analytic_context =
          Eigen::Map<const Vector<T>>(grad_context.data(), grad_context.size()).template cast<double>();
      const double gc = relative_error(analytic_context, numeric_context);
      report.context_gradient_error = std::max(report.context_gradient_error, gc);
      expect(gc <= tol.gradient, dir + " context gradient", gc, tol.gradient);
    }
  }
  return report;
}

}  // namespace detail

/// Runs every check on `bijector` with the columns of `z` as points (z must lie in the domain of
/// both directions). `rng` draws the random cotangents. The bijector's gradients are changed.
template <Bijector B>
ConformanceReport check_conformance(B& bijector, const Matrix<typename B::Scalar>& z, Rng& rng,
                                    Tolerances tol = Tolerances::for_scalar<typename B::Scalar>()) {
  return detail::check(bijector, z, nullptr, rng, tol);
}

/// The same checks on a conditional bijector, column j of `context` (C × N) being the context of
/// point j; also checks ∂L/∂context.
template <ConditionalBijector B>
ConformanceReport check_conformance(B& bijector, const Matrix<typename B::Scalar>& z,
                                    const Matrix<typename B::Scalar>& context, Rng& rng,
                                    Tolerances tol = Tolerances::for_scalar<typename B::Scalar>()) {
  return detail::check(bijector, z, &context, rng, tol);
}

}  // namespace knead::testing
