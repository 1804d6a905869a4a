#pragma once
/// @file
/// Invert<B>: the inverse of a bijector, as a bijector.

#include <string>
#include <utility>

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"

namespace knead {

/// Swaps the directions of B (and so the signs of the log-dets).
///
/// - forward:  x = B⁻¹(u),  log|det| = B's inverse log-det at u
/// - inverse:  u = B(x),    log|det| = B's forward log-det at x
///
/// An IAF is Invert<MAF>: MAF's one-pass direction becomes the sampling direction.
/// Parameters are B's own; backward() is B's backward, which knows which pass ran last.
///
/// Invert of a conditional bijector is conditional with the same context: x = B⁻¹(u; c). Each
/// kind of call exists when B has it. initialize(x) hands B the batch Invert receives in its density
/// direction, which B receives in its forward direction.
template <FlowBijector B>
class Invert {
 public:
  using Scalar = typename B::Scalar;

  /// A B with name_as_inverse() (Maf) is told to name its inverse in error messages (Iaf).
  explicit Invert(B inner) : inner_(std::move(inner)) {
    if constexpr (requires { inner_.name_as_inverse(); }) inner_.name_as_inverse();
  }

  [[nodiscard]] static std::string name() { return "Invert<" + bijector_name<B>() + ">"; }
  [[nodiscard]] Index dim() const { return inner_.dim(); }
  [[nodiscard]] B& inner() { return inner_; }
  [[nodiscard]] const B& inner() const { return inner_; }

  void forward_and_log_det(MatrixCRef<Scalar> u, Matrix<Scalar>& x,
                           RowVector<Scalar>& log_det) requires Bijector<B> {
    inner_.inverse_and_log_det(u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<Scalar> x, Matrix<Scalar>& u,
                           RowVector<Scalar>& log_det) requires Bijector<B> {
    inner_.forward_and_log_det(x, u, log_det);
  }
  void backward(MatrixCRef<Scalar> grad_out, RowVectorCRef<Scalar> grad_log_det,
                Matrix<Scalar>& grad_in) requires Bijector<B> {
    inner_.backward(grad_out, grad_log_det, grad_in);
  }

  [[nodiscard]] Index context_dim() const requires ConditionalBijector<B> { return inner_.context_dim(); }
  void forward_and_log_det(MatrixCRef<Scalar> u, MatrixCRef<Scalar> context, Matrix<Scalar>& x,
                           RowVector<Scalar>& log_det) requires ConditionalBijector<B> {
    inner_.inverse_and_log_det(u, context, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<Scalar> x, MatrixCRef<Scalar> context, Matrix<Scalar>& u,
                           RowVector<Scalar>& log_det) requires ConditionalBijector<B> {
    inner_.forward_and_log_det(x, context, u, log_det);
  }
  void backward(MatrixCRef<Scalar> grad_out, RowVectorCRef<Scalar> grad_log_det, Matrix<Scalar>& grad_in,
                Matrix<Scalar>& grad_context) requires ConditionalBijector<B> {
    inner_.backward(grad_out, grad_log_det, grad_in, grad_context);
  }

  [[nodiscard]] bool needs_initialize() const { return knead::needs_initialize(inner_); }
  void initialize(MatrixCRef<Scalar> x) requires Bijector<B> { knead::initialize(inner_, x); }
  void initialize(MatrixCRef<Scalar> x, MatrixCRef<Scalar> context) requires ConditionalBijector<B> {
    knead::initialize(inner_, x, context);
  }

  [[nodiscard]] Index num_parameters() const { return inner_.num_parameters(); }
  [[nodiscard]] std::span<Scalar> parameters() { return inner_.parameters(); }
  [[nodiscard]] std::span<Scalar> gradients() { return inner_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<Scalar>>& storage, Index offset) {
    inner_.bind_parameters(storage, offset);
  }

  void set_training(bool on) { knead::set_training(inner_, on); }
  [[nodiscard]] bool training() const {
    if constexpr (HasTrainingMode<B>) return inner_.training();
    return false;
  }

 private:
  B inner_;
};

}  // namespace knead
