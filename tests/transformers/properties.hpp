#pragma once
// Property checks shared by the transformer tests: round trips, the per-element log-det against
// central differences of the elementwise map, and backward's VJPs against central differences of
// L = Σ w ⊙ out + Σ_j v_j Σ_i log_det(i, j), in both directions.

#include <cmath>
#include <type_traits>

#include "knead/transformers/transformer.hpp"
#include "support.hpp"

namespace knead::test {

/// Central-difference step and tolerances for the scalar type; the maps are computed in T.
template <class T>
struct TransformerTolerance {
  static constexpr double step = std::is_same_v<T, double> ? 1e-6 : 2e-3;
  static constexpr double round_trip = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  static constexpr double derivative = std::is_same_v<T, double> ? 1e-7 : 2e-2;
};

/// Runs the pass of `pass` (forward: u → x; inverse: x → u) on an r × n block.
template <class Tr>
void run_pass(const Tr& tr, Direction pass, const Matrix<typename Tr::Scalar>& params, Index r,
              const Matrix<typename Tr::Scalar>& in, Matrix<typename Tr::Scalar>& out,
              Matrix<typename Tr::Scalar>& log_det, typename Tr::Workspace& ws) {
  using T = typename Tr::Scalar;
  const auto blocks = ParamBlocks<const T>::stacked(params, r);
  if (pass == Direction::forward)
    tr.forward(blocks, in, out, log_det, ws);
  else
    tr.inverse(blocks, in, out, log_det, ws);
}

/// L = Σ w ⊙ out + Σ_j v_j Σ_i log_det(i, j) at (params, in), in double.
template <class Tr>
double objective(const Tr& tr, Direction pass, const Matrix<typename Tr::Scalar>& params, Index r,
                 const Matrix<typename Tr::Scalar>& in, const Matrix<typename Tr::Scalar>& w,
                 const RowVector<typename Tr::Scalar>& v) {
  using T = typename Tr::Scalar;
  Matrix<T> out, log_det;
  typename Tr::Workspace ws;
  run_pass(tr, pass, params, r, in, out, log_det, ws);
  return (w.template cast<double>().cwiseProduct(out.template cast<double>())).sum() +
         (v.template cast<double>() * log_det.template cast<double>().colwise().sum().transpose()).value();
}

/// Checks every property at `params` ((P·r) × n) and the noise-side block u (r × n).
template <class Tr>
void check_transformer_properties(const Tr& tr, const Matrix<typename Tr::Scalar>& params,
                                  const Matrix<typename Tr::Scalar>& u, Rng& rng) {
  using T = typename Tr::Scalar;
  using Tol = TransformerTolerance<T>;
  const Index r = u.rows(), n = u.cols();
  REQUIRE(params.rows() == tr.params_per_dim() * r);
  typename Tr::Workspace ws;

  // round trips, and log|∂u/∂x| at x = −log|∂x/∂u| at u
  Matrix<T> x, ld_forward, u_back, ld_inverse;
  run_pass(tr, Direction::forward, params, r, u, x, ld_forward, ws);
  run_pass(tr, Direction::inverse, params, r, x, u_back, ld_inverse, ws);
  const auto scale = u.template cast<double>().cwiseAbs().cwiseMax(1.0);
  CHECK(((u_back - u).template cast<double>().cwiseAbs().cwiseQuotient(scale)).maxCoeff() < Tol::round_trip);
  CHECK((ld_forward + ld_inverse).template cast<double>().cwiseAbs().maxCoeff() <
        Tol::round_trip * (1 + ld_forward.template cast<double>().cwiseAbs().maxCoeff()));

  // the log-det of each element against the central difference of its map
  const double h = Tol::step;
  for (const Direction pass : {Direction::forward, Direction::inverse}) {
    const Matrix<T>& in = pass == Direction::forward ? u : x;
    Matrix<T> out, ld, plus, minus, unused;
    run_pass(tr, pass, params, r, in, out, ld, ws);
    Matrix<T> in_plus = in, in_minus = in;
    in_plus.array() += T(h);
    in_minus.array() -= T(h);
    run_pass(tr, pass, params, r, in_plus, plus, unused, ws);
    run_pass(tr, pass, params, r, in_minus, minus, unused, ws);
    const Matrix<double> slope = (plus.template cast<double>() - minus.template cast<double>()) /
                                 (double(in_plus(0, 0)) - double(in_minus(0, 0)));
    const Matrix<double> numerical = slope.array().abs().log().matrix();
    CAPTURE(int(pass));
    CHECK(testing::relative_error(Eigen::Map<const Vector<double>>(numerical.data(), numerical.size()),
                                  Eigen::Map<const Vector<double>>(ld.template cast<double>().eval().data(),
                                                                   ld.size())) < Tol::derivative);
  }

  // backward against central differences of L, for the inputs and the raw parameters
  const Matrix<T> w = random_batch<T>(r, n, rng);
  const RowVector<T> v = random_batch<T>(1, n, rng);
  for (const Direction pass : {Direction::forward, Direction::inverse}) {
    CAPTURE(int(pass));
    const Matrix<T>& in = pass == Direction::forward ? u : x;
    Matrix<T> out, ld;
    run_pass(tr, pass, params, r, in, out, ld, ws);
    const Matrix<T>& noise = pass == Direction::forward ? in : out;
    Matrix<T> grad = w;
    Matrix<T> grad_params = Matrix<T>::Constant(params.rows(), n, T(7));  // every entry is written
    tr.backward(pass, ParamBlocks<const T>::stacked(params, r), noise, grad, v,
                ParamBlocks<T>::stacked(grad_params, r), ws);
    Matrix<double> numerical_in(r, n), numerical_params(params.rows(), n);
    for (Index k = 0; k < in.size(); ++k) {
      Matrix<T> plus = in, minus = in;
      plus.data()[k] += T(h);
      minus.data()[k] -= T(h);
      numerical_in.data()[k] =
          (objective(tr, pass, params, r, plus, w, v) - objective(tr, pass, params, r, minus, w, v)) /
          (double(plus.data()[k]) - double(minus.data()[k]));
    }
    for (Index k = 0; k < params.size(); ++k) {
      Matrix<T> plus = params, minus = params;
      plus.data()[k] += T(h);
      minus.data()[k] -= T(h);
      numerical_params.data()[k] =
          (objective(tr, pass, plus, r, in, w, v) - objective(tr, pass, minus, r, in, w, v)) /
          (double(plus.data()[k]) - double(minus.data()[k]));
    }
    auto flat = [](const Matrix<double>& m) { return Eigen::Map<const Vector<double>>(m.data(), m.size()); };
    CHECK(testing::relative_error(flat(grad.template cast<double>()), flat(numerical_in)) < Tol::derivative);
    CHECK(testing::relative_error(flat(grad_params.template cast<double>()), flat(numerical_params)) <
          Tol::derivative);
  }

  // a row of a stacking (strided parameter blocks, as an autoregressive step reads them) maps
  // as that row of the whole block
  for (Index i = 0; i < r; ++i) {
    Matrix<T> row_x(1, n), row_ld(1, n);
    typename Tr::Workspace row_ws;
    tr.forward(ParamBlocks<const T>::row(params, r, i), u.row(i), row_x, row_ld, row_ws);
    CHECK((row_x - x.row(i)).template cast<double>().cwiseAbs().maxCoeff() <
          Tol::round_trip * (1 + x.row(i).template cast<double>().cwiseAbs().maxCoeff()));
    CHECK((row_ld - ld_forward.row(i)).template cast<double>().cwiseAbs().maxCoeff() < Tol::round_trip);
  }
}

}  // namespace knead::test
