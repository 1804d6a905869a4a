#pragma once
/// @file
/// StandardNormal<T>: N(0, I) on R^D, the usual base of a flow. No parameters.

#include <numbers>

#include "knead/core/leaf.hpp"
#include "knead/distributions/distribution.hpp"

namespace knead {

/// log p(u) = −½‖u‖² − (D/2)·log 2π
template <class T>
class StandardNormal : public LeafParameters<T> {
 public:
  using Scalar = T;
  explicit StandardNormal(Index dim) : LeafParameters<T>(0), dim_(dim) {
    detail::check_positive("StandardNormal", "dim", dim);
  }
  [[nodiscard]] Index dim() const { return dim_; }

  void log_prob(MatrixCRef<T> u, RowVector<T>& out) {
    detail::check_batch("StandardNormal::log_prob", u, dim_);
    resize_workspace(input_, u.rows(), u.cols());
    input_ = u;
    resize_workspace(out, u.cols());
    out = T(-0.5) * u.colwise().squaredNorm().array() -
          T(0.5) * T(dim_) * std::log(T(2) * std::numbers::pi_v<T>);
  }
  void sample(Index n, Rng& rng, Matrix<T>& out) {
    detail::check_positive("StandardNormal::sample", "number of samples", n);
    standard_normal(rng, out, dim_, n);
  }
  /// ∂ log p / ∂u = −u
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_u) {
    detail::check_per_sample("StandardNormal::backward_log_prob", grad_log_prob, input_.cols());
    resize_workspace(grad_u, input_.rows(), input_.cols());
    grad_u = -(input_.array().rowwise() * grad_log_prob.array());
  }
  void backward_sample(MatrixCRef<T> /*grad_sample*/) {}  // nothing learnable

 private:
  Index dim_;
  Matrix<T> input_;
};

static_assert(Distribution<StandardNormal<double>>);

}  // namespace knead
