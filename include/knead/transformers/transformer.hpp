#pragma once
/// @file
/// The ElementwiseTransformer concept: the invertible scalar map x_i = f(u_i; θ_i) that a coupling
/// layer or an autoregressive layer applies to each transformed dimension, with parameters θ_i
/// computed by its conditioner (an Mlp or MADE). AffineTransformer and AdditiveTransformer are
/// the two in knead; a rational-quadratic spline fits the same shape with 3K − 1 parameters a
/// dimension.
///
/// A transformer works on blocks: an r × n block of elements (r dimensions of n samples, or one
/// flat run of r·n entries as an (r·n) × 1 block) and P = params_per_dim() parameter blocks of the
/// same shape, given as ParamBlocks: parameter p of element (i, j) sits at
/// data[p·param_stride + i + j·outer_stride]. A conditioner whose outputs stack the P parameters
/// of r dimensions (row p·r + i is parameter p of dimension i, the layout of Coupling's and
/// MADE's outputs) is ParamBlocks::stacked(outputs, r). Every block has inner stride 1, so the
/// transformer's loops vectorise; it keeps what its backward needs in a Workspace the caller owns
/// (sized once, reused: no allocation per pass once the shapes repeat).
///
/// The calls (u = noise side, x = data side; log|∂x/∂u| per element):
/// - forward(params, u, x, log_det, ws):   x = f(u), log_det = log|∂x/∂u|
/// - inverse(params, x, u, log_det, ws):   u = f⁻¹(x), log_det = log|∂u/∂x| = −log|∂x/∂u|
/// - backward(pass, params, u, grad, grad_log_det, grad_params, ws): differentiates the last
///   forward or inverse call made with `ws` on the same block. `u` is the noise side of that call
///   (its input for forward, its output for inverse); `grad` holds ∂L/∂out on entry and ∂L/∂in
///   on return; grad_log_det (1 × n) is ∂L/∂ of the per-sample log-det, which is the sum of the
///   per-element ones; ∂L/∂(raw parameters) is written into grad_params.

#include <algorithm>
#include <array>
#include <concepts>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>

#include "knead/core/types.hpp"

namespace knead {

/// P parameter blocks of r × n elements: parameter p of element (i, j) at
/// data[p·param_stride + i + j·outer_stride]. S is T (gradients, written) or const T (read).
template <class S>
struct ParamBlocks {
  using Scalar = std::remove_const_t<S>;
  using Block = Eigen::Map<std::conditional_t<std::is_const_v<S>, const Matrix<Scalar>, Matrix<Scalar>>, 0,
                           Eigen::OuterStride<>>;

  S* data = nullptr;
  Index rows = 0, cols = 0, param_stride = 0, outer_stride = 0;

  /// The r × n block of parameter p.
  [[nodiscard]] Block param(Index p) const {
    return Block(data + p * param_stride, rows, cols, Eigen::OuterStride<>(outer_stride));
  }

  /// The parameters stacked by rows in `outputs` ((P·r) × n, inner stride 1): row p·r + i is
  /// parameter p of element row i.
  template <class Derived>
  [[nodiscard]] static ParamBlocks stacked(Derived&& outputs, Index r) {
    return {outputs.data(), r, outputs.cols(), r, outputs.outerStride()};
  }
  /// One element row i of a stacking of `dims` rows ((P·dims) × n): the 1 × n blocks of rows
  /// p·dims + i.
  template <class Derived>
  [[nodiscard]] static ParamBlocks row(Derived&& outputs, Index dims, Index i) {
    return {outputs.data() + i, 1, outputs.cols(), dims, outputs.outerStride()};
  }
};

template <class Tr>
concept TransformerHasScalar = requires {
  typename Tr::Scalar;
}
&&std::floating_point<typename Tr::Scalar>;

template <class Tr>
concept TransformerHasLabel = requires {
  { Tr::label } -> std::convertible_to<std::string_view>;
};

template <class Tr>
concept TransformerHasParamsPerDim = requires(const Tr& tr, std::string_view function) {
  { tr.params_per_dim() } -> std::convertible_to<Index>;
  tr.validate(function);
};

template <class Tr>
concept TransformerHasWorkspace = requires {
  typename Tr::Workspace;
}
&&std::default_initializable<typename Tr::Workspace>&& std::copy_constructible<typename Tr::Workspace>;

template <class Tr>
concept TransformerHasForward = TransformerHasScalar<Tr> && TransformerHasWorkspace<Tr> &&
    requires(const Tr& tr, ParamBlocks<const typename Tr::Scalar> params, MatrixCRef<typename Tr::Scalar> in,
             Matrix<typename Tr::Scalar>& out, Matrix<typename Tr::Scalar>& log_det,
             typename Tr::Workspace& ws) {
  tr.forward(params, in, out, log_det, ws);
  tr.inverse(params, in, out, log_det, ws);
};

template <class Tr>
concept TransformerHasBackward = TransformerHasScalar<Tr> && TransformerHasWorkspace<Tr> &&
    requires(const Tr& tr, Direction pass, ParamBlocks<const typename Tr::Scalar> params,
             MatrixCRef<typename Tr::Scalar> u, Matrix<typename Tr::Scalar>& grad,
             RowVectorCRef<typename Tr::Scalar> grad_log_det, ParamBlocks<typename Tr::Scalar> grad_params,
             typename Tr::Workspace& ws) {
  tr.backward(pass, params, u, grad, grad_log_det, grad_params, ws);
};

template <class Tr>
concept ElementwiseTransformer = TransformerHasScalar<Tr> && TransformerHasLabel<Tr> &&
    TransformerHasParamsPerDim<Tr> && TransformerHasWorkspace<Tr> && TransformerHasForward<Tr> &&
    TransformerHasBackward<Tr> && std::copy_constructible<Tr>;

/// Explains which part of the ElementwiseTransformer concept a type misses, one readable message
/// each. Use as `static_assert(knead::check_transformer<MyTransformer<double>>());`.
template <class Tr>
consteval bool check_transformer() {
  static_assert(TransformerHasScalar<Tr>, "knead: a transformer declares `using Scalar = float;` or double");
  static_assert(TransformerHasLabel<Tr>,
                "knead: a transformer declares `static constexpr std::string_view label` (\"Affine\": "
                "layer names such as AffineCoupling are built from it)");
  static_assert(TransformerHasParamsPerDim<Tr>,
                "knead: a transformer provides `Index params_per_dim() const` and "
                "`void validate(std::string_view function) const`");
  static_assert(TransformerHasWorkspace<Tr>,
                "knead: a transformer declares a default-constructible, copyable `struct Workspace` "
                "(what backward needs from the last pass)");
  static_assert(TransformerHasForward<Tr>,
                "knead: a transformer provides `forward(ParamBlocks<const Scalar> params, u, x, log_det, "
                "Workspace&) const` and `inverse(params, x, u, log_det, Workspace&) const` on blocks");
  static_assert(TransformerHasBackward<Tr>,
                "knead: a transformer provides `backward(Direction pass, ParamBlocks<const Scalar> params, "
                "u, grad, RowVectorCRef<Scalar> grad_log_det, ParamBlocks<Scalar> grad_params, "
                "Workspace&) const`");
  static_assert(std::copy_constructible<Tr>, "knead: a transformer is copy constructible");
  return ElementwiseTransformer<Tr>;
}

namespace detail {

/// The concatenation of static strings, as a static string: JoinedName<a, b>::value == "ab".
/// Layer names built from a transformer's label ("Affine" + "Coupling") are compile-time constants.
template <const std::string_view&... Parts>
struct JoinedName {
  static constexpr auto storage = [] {
    std::array<char, (Parts.size() + ... + 0) + 1> chars{};
    std::size_t at = 0;
    ((std::copy(Parts.begin(), Parts.end(), chars.begin() + at), at += Parts.size()), ...);
    return chars;
  }();
  static constexpr std::string_view value{storage.data(), storage.size() - 1};
};

}  // namespace detail

}  // namespace knead
