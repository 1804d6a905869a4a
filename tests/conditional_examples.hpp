#pragma once
// Small bijectors for the tests of conditional flows and data-dependent initialisation:
// a conditional affine map and a shift initialised from data that records what it saw.

#include <vector>

#include <span>

#include "knead/core/conditional.hpp"
#include "knead/core/leaf.hpp"
#include "knead/testing/finite_difference.hpp"

namespace knead::test {

/// x = u ⊙ exp(A c) + B c + b, with A, B (D×C) and b (D) learnable; one context column per sample.
///
/// With s = A c (per sample), forward: x = u ⊙ e^s + B c + b, log|det ∂x/∂u| = Σ_i s_i.
/// Backward of forward, given gx = ∂L/∂x and gl = ∂L/∂log_det:
///   ∂L/∂u = gx ⊙ e^s,  ∂L/∂s = gx ⊙ u ⊙ e^s + gl,
///   ∂L/∂A = ∂L/∂s cᵀ,  ∂L/∂B = gx cᵀ,  ∂L/∂b = Σ_samples gx,  ∂L/∂c = Aᵀ ∂L/∂s + Bᵀ gx.
/// Inverse: u = (x − B c − b) ⊙ e^{−s}, log|det ∂u/∂x| = −Σ_i s_i. Backward of inverse, given
/// gu = ∂L/∂u and gl:
///   ∂L/∂x = gu ⊙ e^{−s},  ∂L/∂s = −gu ⊙ u − gl,
///   ∂L/∂A = ∂L/∂s cᵀ,  ∂L/∂B = −∂L/∂x cᵀ,  ∂L/∂b = −Σ_samples ∂L/∂x,  ∂L/∂c = Aᵀ ∂L/∂s − Bᵀ ∂L/∂x.
///
/// It also has a conditional initialize hook that records the batch and context it was given.
template <class T>
class ConditionalAffine : public LeafParameters<T> {
 public:
  using Scalar = T;
  ConditionalAffine(Index dim, Index context_dim)
      : LeafParameters<T>(2 * dim * context_dim + dim), dim_(dim), context_dim_(context_dim) {}

  static constexpr std::string_view name() { return "ConditionalAffine"; }
  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] Index context_dim() const { return context_dim_; }

  void forward_and_log_det(MatrixCRef<T> u, MatrixCRef<T> c, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_context("ConditionalAffine::forward_and_log_det", c, context_dim_, u.cols());
    s_ = a() * c;
    x = (u.array() * s_.array().exp()).matrix() + b_matrix() * c;
    x.colwise() += b();
    log_det = s_.colwise().sum();
    kept_ = u;  // u, which backward needs
    context_ = c;
    this->record(Direction::forward);
  }
  void inverse_and_log_det(MatrixCRef<T> x, MatrixCRef<T> c, Matrix<T>& u, RowVector<T>& log_det) {
    detail::check_context("ConditionalAffine::inverse_and_log_det", c, context_dim_, x.cols());
    s_ = a() * c;
    Matrix<T> centred = x - b_matrix() * c;
    centred.colwise() -= b();
    u = (centred.array() * (-s_.array()).exp()).matrix();
    log_det = -s_.colwise().sum();
    kept_ = u;
    context_ = c;
    this->record(Direction::inverse);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                Matrix<T>& grad_context) {
    const Direction last = this->last_pass("ConditionalAffine::backward");
    Matrix<T> grad_s, grad_shift;  // ∂L/∂s and ∂L/∂(B c + b)
    if (last == Direction::forward) {
      const Matrix<T> scale = s_.array().exp().matrix();
      grad_in = grad_out.cwiseProduct(scale);
      grad_s = grad_in.cwiseProduct(kept_);
      grad_s.rowwise() += grad_log_det;
      grad_shift = grad_out;
    } else {
      grad_in = (grad_out.array() * (-s_.array()).exp()).matrix();
      grad_s = -grad_out.cwiseProduct(kept_);
      grad_s.rowwise() -= grad_log_det;
      grad_shift = -grad_in;
    }
    const Index dc = dim_ * context_dim_;
    this->params_.gradient_matrix(0, dim_, context_dim_) += grad_s * context_.transpose();
    this->params_.gradient_matrix(dc, dim_, context_dim_) += grad_shift * context_.transpose();
    this->params_.gradient_vector(2 * dc, dim_) += grad_shift.rowwise().sum();
    grad_context += a().transpose() * grad_s + b_matrix().transpose() * grad_shift;
  }

  void initialize(MatrixCRef<T> x, MatrixCRef<T> c) {
    initialized_on.push_back(x);
    initialized_context.push_back(c);
  }
  std::vector<Matrix<T>> initialized_on, initialized_context;

  [[nodiscard]] Matrix<T> a() const { return this->params_.matrix(0, dim_, context_dim_); }
  [[nodiscard]] Matrix<T> b_matrix() const {
    return this->params_.matrix(dim_ * context_dim_, dim_, context_dim_);
  }
  [[nodiscard]] Vector<T> b() const { return this->params_.vector(2 * dim_ * context_dim_, dim_); }

 private:
  Index dim_, context_dim_;
  Matrix<T> s_, kept_, context_;
};

/// x = u + b, whose initialize(batch) sets b to the batch's mean over samples (so the batch maps
/// to mean zero in the density direction, as ActNorm's shift does) and records the batch.
template <class T>
class MeanShift : public LeafParameters<T> {
 public:
  using Scalar = T;
  explicit MeanShift(Index dim) : LeafParameters<T>(dim), dim_(dim) {}
  static constexpr std::string_view name() { return "MeanShift"; }
  [[nodiscard]] Index dim() const { return dim_; }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    x = u.colwise() + shift();
    log_det.setZero(u.cols());
    this->record(Direction::forward);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    u = x.colwise() - shift();
    log_det.setZero(x.cols());
    this->record(Direction::inverse);
  }
  /// ∂x/∂u = I, ∂x/∂b = I: ∂L/∂u = ∂L/∂x, ∂L/∂b = ±Σ_samples ∂L/∂out.
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> /*grad_log_det*/, Matrix<T>& grad_in) {
    const Direction last = this->last_pass("MeanShift::backward");
    grad_in = grad_out;
    if (last == Direction::forward)
      this->params_.gradient_vector(0, dim_) += grad_out.rowwise().sum();
    else
      this->params_.gradient_vector(0, dim_) -= grad_out.rowwise().sum();
  }

  void initialize(MatrixCRef<T> batch) {
    initialized_on.push_back(batch);
    this->params_.vector(0, dim_) = batch.rowwise().mean();
  }
  std::vector<Matrix<T>> initialized_on;

  [[nodiscard]] Vector<T> shift() const { return this->params_.vector(0, dim_); }

 private:
  Index dim_;
};

/// One pass of a conditional bijector in direction d.
template <class B>
void conditional_pass(B& b, Direction d, MatrixCRef<double> in, MatrixCRef<double> c, Matrix<double>& out,
                      RowVector<double>& log_det) {
  if (d == Direction::forward)
    b.forward_and_log_det(in, c, out, log_det);
  else
    b.inverse_and_log_det(in, c, out, log_det);
}

/// Errors of backward against central differences for L = Σ w ⊙ out + Σ v ⊙ log_det of a pass in
/// direction d: w.r.t. the input, the context and the parameters (relative_error of each).
struct VjpErrors {
  double input = 0, context = 0, parameters = 0;
};

template <class B>
VjpErrors conditional_vjp_errors(B& b, Direction d, const Matrix<double>& in, const Matrix<double>& c,
                                 const Matrix<double>& w, const RowVector<double>& v) {
  Matrix<double> out;
  RowVector<double> log_det;
  const auto loss = [&](const Matrix<double>& i, const Matrix<double>& cc) {
    conditional_pass(b, d, i, cc, out, log_det);
    return out.cwiseProduct(w).sum() + log_det.dot(v);
  };
  for (auto& g : b.gradients()) g = 0;
  conditional_pass(b, d, in, c, out, log_det);
  Matrix<double> grad_in, grad_c = Matrix<double>::Zero(c.rows(), c.cols());
  b.backward(w, v, grad_in, grad_c);
  const Vector<double> grad_theta = Eigen::Map<Vector<double>>(b.gradients().data(), b.num_parameters());

  Matrix<double> in_copy = in, c_copy = c;
  const Vector<double> fd_in = testing::finite_difference_gradient<double>(
      [&] { return loss(in_copy, c); }, std::span<double>(in_copy.data(), std::size_t(in_copy.size())));
  const Vector<double> fd_c = testing::finite_difference_gradient<double>(
      [&] { return loss(in, c_copy); }, std::span<double>(c_copy.data(), std::size_t(c_copy.size())));
  const Vector<double> fd_theta =
      testing::finite_difference_gradient<double>([&] { return loss(in, c); }, b.parameters());
  VjpErrors e;
  e.input = testing::relative_error(Eigen::Map<const Vector<double>>(grad_in.data(), grad_in.size()), fd_in);
  e.context = testing::relative_error(Eigen::Map<const Vector<double>>(grad_c.data(), grad_c.size()), fd_c);
  e.parameters = testing::relative_error(grad_theta, fd_theta);
  return e;
}

/// Largest |log|det J_j| − log_det_j| over the samples of a pass in direction d, J_j the Jacobian
/// of sample j's output w.r.t. its input by central differences (the context held fixed).
template <class B>
double conditional_log_det_error(B& b, Direction d, const Matrix<double>& in, const Matrix<double>& c) {
  Matrix<double> out, up, down;
  RowVector<double> log_det, ignored;
  conditional_pass(b, d, in, c, out, log_det);
  double worst = 0;
  const double h = 1e-6;
  for (Index j = 0; j < in.cols(); ++j) {
    Matrix<double> jacobian(in.rows(), in.rows());
    for (Index k = 0; k < in.rows(); ++k) {
      Matrix<double> plus = in.col(j), minus = in.col(j);
      plus(k, 0) += h;
      minus(k, 0) -= h;
      conditional_pass(b, d, plus, c.col(j), up, ignored);
      conditional_pass(b, d, minus, c.col(j), down, ignored);
      jacobian.col(k) = (up - down) / (2 * h);
    }
    worst = std::max(worst, std::abs(testing::log_abs_det(jacobian) - log_det(j)));
  }
  return worst;
}

static_assert(check_conditional_bijector<ConditionalAffine<double>>());
static_assert(!Bijector<ConditionalAffine<double>>);
static_assert(check_bijector<MeanShift<float>>());
static_assert(HasInitialize<MeanShift<double>> && HasConditionalInitialize<ConditionalAffine<double>>);

}  // namespace knead::test
