#pragma once
/// @file
/// The Bijector concept and the calls derived from it.
///
/// A bijector maps a D×N batch (one sample per column) both ways and reports log|det J| per
/// sample. Direction follows TensorFlow Probability: forward = noise → data (sampling),
/// inverse = data → noise (density evaluation).
///
/// Reverse mode follows "values first, then a backward step": a call to forward_and_log_det or
/// inverse_and_log_det keeps what its derivative needs in the object's workspace; `backward`
/// then differentiates that last call. Given ∂L/∂out and ∂L/∂log_det it *adds* ∂L/∂θ into the
/// object's gradients() and writes ∂L/∂in. The passes write the object's workspaces, so they are
/// non-const members: an object is used by one thread at a time; copy it per thread.

#include <algorithm>
#include <concepts>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "knead/core/parameters.hpp"
#include "knead/core/threads.hpp"
#include "knead/core/types.hpp"

namespace knead {

template <class B>
concept HasScalar = requires {
  typename B::Scalar;
}
&&std::floating_point<typename B::Scalar>;

template <class B>
concept HasDim = requires(const B& b) {
  { b.dim() } -> std::convertible_to<Index>;
};

template <class B>
concept HasForwardAndLogDet = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> in, Matrix<typename B::Scalar>& out,
             RowVector<typename B::Scalar>& log_det) {
  b.forward_and_log_det(in, out, log_det);
};

template <class B>
concept HasInverseAndLogDet = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> in, Matrix<typename B::Scalar>& out,
             RowVector<typename B::Scalar>& log_det) {
  b.inverse_and_log_det(in, out, log_det);
};

template <class B>
concept HasBackward = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> grad_out, RowVectorCRef<typename B::Scalar> grad_log_det,
             Matrix<typename B::Scalar>& grad_in) {
  b.backward(grad_out, grad_log_det, grad_in);
};

/// Owns learnable values in a ParameterBlock or ParameterGroup (possibly of size zero).
template <class B>
concept Parameterised = HasScalar<B> &&
    requires(B& b, const B& cb, const std::shared_ptr<ParameterStorage<typename B::Scalar>>& storage,
             Index offset) {
  { cb.num_parameters() } -> std::convertible_to<Index>;
  { b.parameters() } -> std::same_as<std::span<typename B::Scalar>>;
  { b.gradients() } -> std::same_as<std::span<typename B::Scalar>>;
  b.bind_parameters(storage, offset);
};

template <class B>
concept Bijector = HasScalar<B> && HasDim<B> && HasForwardAndLogDet<B> && HasInverseAndLogDet<B> &&
    HasBackward<B> && Parameterised<B> && std::copy_constructible<B>;

/// Explains which part of the Bijector concept a type misses, one readable message each.
/// Use as `static_assert(knead::check_bijector<MyBijector<double>>());`.
template <class B>
consteval bool check_bijector() {
  static_assert(HasScalar<B>, "knead: a bijector declares `using Scalar = float;` or double");
  static_assert(HasDim<B>, "knead: a bijector provides `Index dim() const`");
  static_assert(HasForwardAndLogDet<B>,
                "knead: a bijector provides `void forward_and_log_det(MatrixCRef<Scalar> u, "
                "Matrix<Scalar>& x, RowVector<Scalar>& log_det)`");
  static_assert(HasInverseAndLogDet<B>,
                "knead: a bijector provides `void inverse_and_log_det(MatrixCRef<Scalar> x, "
                "Matrix<Scalar>& u, RowVector<Scalar>& log_det)`");
  static_assert(HasBackward<B>,
                "knead: a bijector provides `void backward(MatrixCRef<Scalar> grad_out, "
                "RowVectorCRef<Scalar> grad_log_det, Matrix<Scalar>& grad_in)`");
  static_assert(Parameterised<B>,
                "knead: a bijector provides num_parameters(), parameters(), gradients() and "
                "bind_parameters(storage, offset)");
  static_assert(std::copy_constructible<B>, "knead: a bijector is copy constructible");
  return Bijector<B>;
}

/// A readable name of a bijector type for messages and pictures: B::name() where B has one
/// ("Affine", "Maf", ...), else the compiler's type name.
template <class B>
[[nodiscard]] std::string bijector_name() {
  if constexpr (requires { B::name(); })
    return std::string(B::name());
  else
    return typeid(B).name();
}

/// True for objects with a training mode (BatchNorm and composites holding one).
template <class B>
concept HasTrainingMode = requires(B& b, const B& cb) {
  b.set_training(true);
  { cb.training() } -> std::convertible_to<bool>;
};

template <class B>
void set_training(B& b, bool on) {
  if constexpr (HasTrainingMode<B>) b.set_training(on);
}

// ---- calls derived from the two primary ones --------------------------------------------------

template <Bijector B>
ValueAndLogDet<typename B::Scalar> forward_and_log_det(B& b, MatrixCRef<typename B::Scalar> u) {
  ValueAndLogDet<typename B::Scalar> r;
  b.forward_and_log_det(u, r.value, r.log_det);
  return r;
}

template <Bijector B>
ValueAndLogDet<typename B::Scalar> inverse_and_log_det(B& b, MatrixCRef<typename B::Scalar> x) {
  ValueAndLogDet<typename B::Scalar> r;
  b.inverse_and_log_det(x, r.value, r.log_det);
  return r;
}

template <Bijector B>
Matrix<typename B::Scalar> forward(B& b, MatrixCRef<typename B::Scalar> u) {
  return forward_and_log_det(b, u).value;
}
template <Bijector B>
Matrix<typename B::Scalar> inverse(B& b, MatrixCRef<typename B::Scalar> x) {
  return inverse_and_log_det(b, x).value;
}
template <Bijector B>
RowVector<typename B::Scalar> forward_log_det(B& b, MatrixCRef<typename B::Scalar> u) {
  return forward_and_log_det(b, u).log_det;
}
template <Bijector B>
RowVector<typename B::Scalar> inverse_log_det(B& b, MatrixCRef<typename B::Scalar> x) {
  return inverse_and_log_det(b, x).log_det;
}

/// Differentiates the last pass of `b`: adds ∂L/∂θ into b.gradients() and returns ∂L/∂in.
template <Bijector B>
Matrix<typename B::Scalar> backward(B& b, MatrixCRef<typename B::Scalar> grad_out,
                                    RowVectorCRef<typename B::Scalar> grad_log_det) {
  Matrix<typename B::Scalar> grad_in;
  b.backward(grad_out, grad_log_det, grad_in);
  return grad_in;
}

template <Parameterised P>
void zero_gradients(P& p) {
  const auto g = p.gradients();
  using T = std::remove_cvref_t<decltype(g[0])>;
  detail::parallel_elementwise(Index(g.size()), [&](Index begin, Index end, int) {
    std::fill(g.data() + begin, g.data() + end, T(0));
  });
}

}  // namespace knead
