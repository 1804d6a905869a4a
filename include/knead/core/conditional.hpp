#pragma once
/// @file
/// Conditional bijectors, x = f(u; c), and data-dependent initialisation.
///
/// A conditional bijector maps a D×N batch paired with a C×N context (column j of the context
/// belongs to sample j) and reports log|det ∂x/∂u| per sample; the map is a bijection in u for
/// each fixed c. Its passes take the context after the input:
///
///   forward_and_log_det(u, c, x, log_det)     inverse_and_log_det(x, c, u, log_det)
///
/// Reverse mode is "values first, then a backward step" as for Bijector: backward(grad_out,
/// grad_log_det, grad_in, grad_context) differentiates the last pass; it adds ∂L/∂θ into
/// gradients(), writes ∂L/∂in and *adds* ∂L/∂c into grad_context, which the caller sizes C×N and
/// zeroes. Adding, like the parameter gradients, because one context feeds every conditional part
/// of a flow: a chain hands the same grad_context to each part and the sum is ∂L/∂c.
///
/// context_dim() ≥ 1 for a bijector that reads a context. Type-erased and composite bijectors
/// (AnyBijector, DynamicChain, Chain) report 0 when nothing inside reads one.
///
/// Unconditional bijectors are untouched: they need none of this and keep their own calls.

#include <concepts>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"

namespace knead {

template <class B>
concept HasContextDim = requires(const B& b) {
  { b.context_dim() } -> std::convertible_to<Index>;
};

template <class B>
concept HasConditionalForward = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> in, MatrixCRef<typename B::Scalar> context,
             Matrix<typename B::Scalar>& out, RowVector<typename B::Scalar>& log_det) {
  b.forward_and_log_det(in, context, out, log_det);
};

template <class B>
concept HasConditionalInverse = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> in, MatrixCRef<typename B::Scalar> context,
             Matrix<typename B::Scalar>& out, RowVector<typename B::Scalar>& log_det) {
  b.inverse_and_log_det(in, context, out, log_det);
};

template <class B>
concept HasConditionalBackward = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> grad_out, RowVectorCRef<typename B::Scalar> grad_log_det,
             Matrix<typename B::Scalar>& grad_in, Matrix<typename B::Scalar>& grad_context) {
  b.backward(grad_out, grad_log_det, grad_in, grad_context);
};

template <class B>
concept ConditionalBijector = HasScalar<B> && HasDim<B> && HasContextDim<B> && HasConditionalForward<B> &&
    HasConditionalInverse<B> && HasConditionalBackward<B> && Parameterised<B> && std::copy_constructible<B>;

/// What a flow may be built from: a bijector, a conditional one, or a type that is both (the
/// type-erased AnyBijector and DynamicChain, whose parts decide at run time).
template <class B>
concept FlowBijector = Bijector<B> || ConditionalBijector<B>;

/// Explains which part of the ConditionalBijector concept a type misses, one message each.
/// Use as `static_assert(knead::check_conditional_bijector<MyBijector<double>>());`.
template <class B>
consteval bool check_conditional_bijector() {
  static_assert(HasScalar<B>, "knead: a conditional bijector declares `using Scalar = float;` or double");
  static_assert(HasDim<B>, "knead: a conditional bijector provides `Index dim() const`");
  static_assert(HasContextDim<B>,
                "knead: a conditional bijector provides `Index context_dim() const` (rows of the context)");
  static_assert(HasConditionalForward<B>,
                "knead: a conditional bijector provides `void forward_and_log_det(MatrixCRef<Scalar> u, "
                "MatrixCRef<Scalar> context, Matrix<Scalar>& x, RowVector<Scalar>& log_det)`");
  static_assert(HasConditionalInverse<B>,
                "knead: a conditional bijector provides `void inverse_and_log_det(MatrixCRef<Scalar> x, "
                "MatrixCRef<Scalar> context, Matrix<Scalar>& u, RowVector<Scalar>& log_det)`");
  static_assert(HasConditionalBackward<B>,
                "knead: a conditional bijector provides `void backward(MatrixCRef<Scalar> grad_out, "
                "RowVectorCRef<Scalar> grad_log_det, Matrix<Scalar>& grad_in, Matrix<Scalar>& "
                "grad_context)` that adds ∂L/∂context into grad_context");
  static_assert(Parameterised<B>,
                "knead: a conditional bijector provides num_parameters(), parameters(), gradients() and "
                "bind_parameters(storage, offset)");
  static_assert(std::copy_constructible<B>, "knead: a conditional bijector is copy constructible");
  return ConditionalBijector<B>;
}

/// The number of context rows `b` reads: its context_dim(), 0 for an unconditional bijector.
template <class B>
[[nodiscard]] Index context_dim(const B& b) {
  if constexpr (HasContextDim<B>)
    return b.context_dim();
  else
    return 0;
}

// ---- calls derived from the primary ones ---------------------------------------------------------

template <ConditionalBijector B>
ValueAndLogDet<typename B::Scalar> forward_and_log_det(B& b, MatrixCRef<typename B::Scalar> u,
                                                       MatrixCRef<typename B::Scalar> context) {
  ValueAndLogDet<typename B::Scalar> r;
  b.forward_and_log_det(u, context, r.value, r.log_det);
  return r;
}

template <ConditionalBijector B>
ValueAndLogDet<typename B::Scalar> inverse_and_log_det(B& b, MatrixCRef<typename B::Scalar> x,
                                                       MatrixCRef<typename B::Scalar> context) {
  ValueAndLogDet<typename B::Scalar> r;
  b.inverse_and_log_det(x, context, r.value, r.log_det);
  return r;
}

template <ConditionalBijector B>
Matrix<typename B::Scalar> forward(B& b, MatrixCRef<typename B::Scalar> u,
                                   MatrixCRef<typename B::Scalar> context) {
  return forward_and_log_det(b, u, context).value;
}
template <ConditionalBijector B>
Matrix<typename B::Scalar> inverse(B& b, MatrixCRef<typename B::Scalar> x,
                                   MatrixCRef<typename B::Scalar> context) {
  return inverse_and_log_det(b, x, context).value;
}

/// ∂L/∂in and ∂L/∂context of the last pass of a conditional bijector.
template <class T>
struct InputAndContextGradients {
  Matrix<T> input;
  Matrix<T> context;
};

/// Differentiates the last pass of `b` (run with a context of `context_cols` columns): adds ∂L/∂θ
/// into b.gradients() and returns ∂L/∂in and ∂L/∂context (started from zero).
template <ConditionalBijector B>
InputAndContextGradients<typename B::Scalar> backward(B& b, MatrixCRef<typename B::Scalar> grad_out,
                                                      RowVectorCRef<typename B::Scalar> grad_log_det,
                                                      Index context_cols) {
  InputAndContextGradients<typename B::Scalar> g;
  resize_workspace(g.context, b.context_dim(), context_cols);
  g.context.setZero();
  b.backward(grad_out, grad_log_det, g.input, g.context);
  return g;
}

// ---- data-dependent initialisation ----------------------------------------------------------------

/// A bijector that sets some parameters from data (ActNorm-like): initialize(x) sees a D×N batch
/// as it arrives at the bijector in the density direction (the input of inverse_and_log_det).
template <class B>
concept HasInitialize = HasScalar<B> && requires(B& b, MatrixCRef<typename B::Scalar> batch) {
  b.initialize(batch);
};

/// The same for a conditional bijector, which also sees the batch's context.
template <class B>
concept HasConditionalInitialize = HasScalar<B> &&
    requires(B& b, MatrixCRef<typename B::Scalar> batch, MatrixCRef<typename B::Scalar> context) {
  b.initialize(batch, context);
};

/// Whether `b` or anything inside it has an initialize hook. Composites (Chain, DynamicChain,
/// AnyBijector, Invert) answer with needs_initialize(), since they have initialize members either
/// way; a chain pushes a batch only as far as the last part (in the density direction) that needs it.
template <class B>
[[nodiscard]] bool needs_initialize(const B& b) {
  if constexpr (requires { b.needs_initialize(); })
    return b.needs_initialize();
  else
    return HasInitialize<B> || HasConditionalInitialize<B>;
}

/// Initialises `b` from `batch` if it has an initialize hook; a no-op otherwise.
template <class B>
void initialize(B& b, MatrixCRef<typename B::Scalar> batch) {
  if constexpr (HasInitialize<B>) b.initialize(batch);
}

/// Initialises `b` from `batch` and its context: a conditional hook gets the context, an
/// unconditional hook the batch alone; a no-op for bijectors without a hook.
template <class B>
void initialize(B& b, MatrixCRef<typename B::Scalar> batch, MatrixCRef<typename B::Scalar> context) {
  if constexpr (HasConditionalInitialize<B>)
    b.initialize(batch, context);
  else if constexpr (HasInitialize<B>)
    b.initialize(batch);
}

namespace detail {

/// A context must have `rows` rows and one column per sample of the `cols`-column batch.
template <class Derived>
void check_context(std::string_view function, const Eigen::MatrixBase<Derived>& context, Index rows,
                   Index cols) {
  if (context.rows() != rows || context.cols() != cols)
    fail(function, "expected a ", rows, "x", cols, " context (", rows,
         " rows, one column per sample of the batch), got ", context.rows(), "x", context.cols());
}

/// Names the error of an unconditional call reaching a bijector that needs a context.
[[noreturn]] inline void fail_needs_context(std::string_view function, std::string_view bijector,
                                            Index context_dim) {
  fail(function, bijector, " is conditional (context_dim ", context_dim,
       "): call it with a context, one column per sample");
}

}  // namespace detail

}  // namespace knead
