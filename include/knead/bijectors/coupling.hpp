#pragma once
/// @file
/// Coupling<T, Transformer>: an elementwise transformer on some dimensions, conditioned by a dense
/// Mlp on the others, which pass unchanged. RealNVP's affine coupling and NICE's additive coupling
/// are its AffineTransformer and AdditiveTransformer instances.

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/mlp.hpp"
#include "knead/transformers/additive.hpp"
#include "knead/transformers/affine.hpp"
#include "knead/transformers/rational_quadratic.hpp"
#include "knead/transformers/transformer.hpp"

namespace knead {

/// Which dimensions of a coupling layer condition (pass through unchanged, set A) and which are
/// transformed (set B). Both index lists are computed once, so each pass gathers and scatters rows
/// by list instead of re-reading the mask.
class CouplingPartition {
 public:
  /// A = [0, split), B = [split, dim). `function` names the caller in error messages.
  static CouplingPartition from_split(std::string_view function, Index dim, Index split) {
    check_dim(function, dim);
    if (split < 1 || split > dim - 1)
      detail::fail(function, "split must be in [1, ", dim - 1, "] for dim ", dim, ", got ", split);
    std::vector<int> mask(std::size_t(dim), 0);
    for (Index i = 0; i < split; ++i) mask[std::size_t(i)] = 1;
    return CouplingPartition(mask);
  }

  /// mask[i] = 1: dimension i conditions (passes through); 0: it is transformed.
  static CouplingPartition from_mask(std::string_view function, const std::vector<int>& mask) {
    check_dim(function, Index(mask.size()));
    Index ones = 0;
    for (std::size_t i = 0; i < mask.size(); ++i) {
      if (mask[i] != 0 && mask[i] != 1)
        detail::fail(function, "mask ", show(mask), " has entry ", mask[i], " at index ", i,
                     ", expected 0 or 1");
      ones += mask[i];
    }
    if (ones == 0) detail::fail(function, "mask ", show(mask), " has no 1 entry: nothing to condition on");
    if (ones == Index(mask.size()))
      detail::fail(function, "mask ", show(mask), " has no 0 entry: nothing to transform");
    return CouplingPartition(mask);
  }

  [[nodiscard]] Index dim() const { return Index(mask_.size()); }
  [[nodiscard]] const std::vector<int>& mask() const { return mask_; }
  /// Rows of set A (conditioning) and of set B (transformed), in increasing order.
  [[nodiscard]] const std::vector<Index>& conditioning() const { return conditioning_; }
  [[nodiscard]] const std::vector<Index>& transformed() const { return transformed_; }

  /// out = the rows `rows` of in, in order.
  template <class T>
  static void gather(const std::vector<Index>& rows, MatrixCRef<T> in, Matrix<T>& out) {
    // a row loop, not an indexed view: Eigen copies the index list of a view (an allocation)
    resize_workspace(out, Index(rows.size()), in.cols());
    for (std::size_t r = 0; r < rows.size(); ++r) out.row(Index(r)) = in.row(rows[r]);
  }
  /// The rows `rows` of out = in (out keeps its other rows).
  template <class T>
  static void scatter(const std::vector<Index>& rows, MatrixCRef<T> in, Matrix<T>& out) {
    for (std::size_t r = 0; r < rows.size(); ++r) out.row(rows[r]) = in.row(Index(r));
  }

 private:
  explicit CouplingPartition(std::vector<int> mask) : mask_(std::move(mask)) {
    for (std::size_t i = 0; i < mask_.size(); ++i)
      (mask_[i] == 1 ? conditioning_ : transformed_).push_back(Index(i));
  }

  static void check_dim(std::string_view function, Index dim) {
    if (dim < 2)
      detail::fail(function, "dim ", dim,
                   " has no valid partition: a coupling needs at least one conditioning and one "
                   "transformed dimension (dim >= 2)");
  }
  static std::string show(const std::vector<int>& mask) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < mask.size(); ++i) out << (i ? ", " : "") << mask[i];
    out << ']';
    return out.str();
  }

  std::vector<int> mask_;
  std::vector<Index> conditioning_;
  std::vector<Index> transformed_;
};

/// Settings of a coupling layer's conditioner.
template <class T>
struct CouplingOptions {
  std::vector<Index> hidden = {64, 64};  ///< sizes of the ReLU hidden layers (may be empty: linear)
  LogScaleGuard<T> guard = {};           ///< bounds the log-scale (affine coupling only)
  bool identity_init = false;            ///< zero last layer: the layer starts as exactly the identity
  std::uint64_t seed = 0;                ///< draws the initial weights; vary it between layers
  Index context_dim = 0;  ///< rows of a context the conditioner reads: > 0 makes it conditional
  RationalQuadraticOptions<T> spline = {};  ///< the spline's bins and bound (spline coupling only)
};

namespace detail {
inline constexpr std::string_view coupling_word = "Coupling";
inline constexpr std::string_view forward_suffix = "Coupling::forward_and_log_det";
inline constexpr std::string_view inverse_suffix = "Coupling::inverse_and_log_det";
inline constexpr std::string_view backward_suffix = "Coupling::backward";

/// The transformer a coupling layer builds from its options: the guard for the affine one, the
/// spline's options for the rational-quadratic one.
template <class Transformer, class T>
Transformer transformer_from(const CouplingOptions<T>& options) {
  if constexpr (std::is_constructible_v<Transformer, LogScaleGuard<T>>)
    return Transformer(options.guard);
  else if constexpr (std::is_constructible_v<Transformer, RationalQuadraticOptions<T>>)
    return Transformer(options.spline);
  else
    return Transformer();
}
}  // namespace detail

/// Coupling layer. The dimensions split into a conditioning set A and a transformed set B (by a
/// split point or a mask, see CouplingPartition); a dense Mlp reads the A half and emits the
/// parameters θ of an elementwise transformer (transformers/transformer.hpp) for every dimension
/// of B, which maps u_B to x_B:
/// - forward:  x_A = u_A,  x_B = f(u_B; θ(u_A))
/// - inverse:  u_A = x_A,  u_B = f⁻¹(x_B; θ(x_A))
/// - log|det ∂x/∂u| = Σ_{i∈B} log|f'(u_i)|   (the Jacobian is triangular after permuting A before B)
///
/// AffineCoupling (RealNVP: Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real
/// NVP") uses AffineTransformer: x_B = u_B ⊙ exp(s(u_A)) + t(u_A), s = guard(a), log|det| = Σ s.
/// AdditiveCoupling (NICE: Dinh, Krueger & Bengio 2015, "NICE: Non-linear Independent Components
/// Estimation") uses AdditiveTransformer: x_B = u_B + t(u_A), log|det| = 0.
/// RationalQuadraticCoupling (neural_spline.hpp) uses RationalQuadraticTransformer: x_B a monotone
/// spline of u_B on [−B, B] with knots θ(u_A), set by CouplingOptions::spline.
///
/// Both directions take one pass of the conditioner, since A is known on both sides.
/// Parameters are the conditioner's (Mlp layout); its last layer's P·|B| outputs stack the P
/// parameters of the transformer: row p·|B| + r is parameter p of transformed dimension r
/// ([t (|B| rows)][a (|B| rows)] for the affine coupling).
///
/// With context_dim C > 0 the layer is conditional, x = f(u; c): the conditioner reads [u_A; c],
/// the C×N context entering its first layer through the Mlp's context weight V, so θ = θ(u_A, c)
/// and x_A = u_A still passes unchanged. It then has the passes with a context only
/// (core/conditional.hpp); those without one throw std::invalid_argument, as do passes with a
/// context on an unconditional layer and contexts of the wrong shape or with a non-finite entry.
/// The Jacobian in u keeps its triangular form (c is held fixed), so log|det| is as above.
template <class T, class Transformer>
class Coupling {
  static_assert(check_transformer<Transformer>());
  static_assert(std::is_same_v<typename Transformer::Scalar, T>,
                "knead: Coupling<T, Transformer> needs a "
                "transformer on the same scalar T");

 public:
  using Scalar = T;

  /// Dimensions [0, split) condition and [split, dim) are transformed.
  Coupling(Index dim, Index split, CouplingOptions<T> options = {})
      : Coupling(CouplingPartition::from_split(name(), dim, split), std::move(options)) {}
  /// mask[i] = 1: dimension i conditions (passes through); 0: it is transformed. dim = mask size.
  explicit Coupling(const std::vector<int>& mask, CouplingOptions<T> options = {})
      : Coupling(CouplingPartition::from_mask(name(), mask), std::move(options)) {}
  /// The same for a braced mask such as {1, 0, 1}; without it, {1, 0} would also match (dim, split).
  explicit Coupling(std::initializer_list<int> mask, CouplingOptions<T> options = {})
      : Coupling(std::vector<int>(mask), std::move(options)) {}

  /// "AffineCoupling", "AdditiveCoupling": the transformer's label + "Coupling".
  static constexpr std::string_view name() {
    return detail::JoinedName<Transformer::label, detail::coupling_word>::value;
  }
  [[nodiscard]] Index dim() const { return partition_.dim(); }
  [[nodiscard]] const CouplingPartition& partition() const { return partition_; }
  [[nodiscard]] const Transformer& transformer() const { return transformer_; }
  /// The log-scale guard (transformers that have one, such as the affine).
  [[nodiscard]] const LogScaleGuard<T>& guard() const requires requires(const Transformer& t) { t.guard(); }
  { return transformer_.guard(); }
  /// The conditioner: |A| inputs (and C context rows), P·|B| outputs.
  [[nodiscard]] Mlp<T>& conditioner() { return net_; }
  [[nodiscard]] const Mlp<T>& conditioner() const { return net_; }

  /// C: the rows of the context the conditioner reads (0: unconditional).
  [[nodiscard]] Index context_dim() const { return net_.context_dim(); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    if (context_dim() > 0) detail::fail_needs_context(forward_name(), name(), context_dim());
    forward_pass(u, nullptr, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    if (context_dim() > 0) detail::fail_needs_context(inverse_name(), name(), context_dim());
    inverse_pass(x, nullptr, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    if (context_dim() > 0) detail::fail_needs_context(backward_name(), name(), context_dim());
    backward_pass(grad_out, grad_log_det, grad_in, nullptr);
  }

  // ---- with a context (context_dim() > 0) -------------------------------------------------------

  void forward_and_log_det(MatrixCRef<T> u, MatrixCRef<T> context, Matrix<T>& x, RowVector<T>& log_det) {
    check_context(forward_name(), context, u.cols());
    forward_pass(u, &context, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, MatrixCRef<T> context, Matrix<T>& u, RowVector<T>& log_det) {
    check_context(inverse_name(), context, x.cols());
    inverse_pass(x, &context, u, log_det);
  }
  /// Writes ∂L/∂in and adds ∂L/∂c into grad_context (C × N): c enters only the conditioner, so
  /// ∂L/∂c = Vᵀ ∂L/∂z_1, the conditioner's own context gradient at ∂L/∂θ (see backward_pass).
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                Matrix<T>& grad_context) {
    if (context_dim() == 0)
      detail::fail(backward_name(), name(),
                   " is unconditional (context_dim 0): call backward without a context gradient");
    backward_pass(grad_out, grad_log_det, grad_in, &grad_context);
  }

  [[nodiscard]] Index num_parameters() const { return net_.num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return net_.parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return net_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return net_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    net_.bind_parameters(storage, offset);
  }

 private:
  /// `context`: null for an unconditional layer (checked by the caller).
  void forward_pass(MatrixCRef<T> u, const MatrixCRef<T>* context, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch(forward_name(), u, dim());
    condition(u, context);
    // x_B = f(u_B; θ), written over a copy of u so x_A = u_A; u_B is kept for backward
    CouplingPartition::gather<T>(partition_.transformed(), u, input_half_);
    transformer_.forward(params(), input_half_, half_, element_log_det_, workspace_);
    log_det = element_log_det_.colwise().sum();
    x = u;
    CouplingPartition::scatter<T>(partition_.transformed(), half_, x);
    record(Direction::forward, u.cols());
  }

  void inverse_pass(MatrixCRef<T> x, const MatrixCRef<T>* context, Matrix<T>& u, RowVector<T>& log_det) {
    detail::check_batch(inverse_name(), x, dim());
    condition(x, context);
    // u_B = f⁻¹(x_B; θ); u_B (half_) is kept: backward needs it
    CouplingPartition::gather<T>(partition_.transformed(), x, input_half_);
    transformer_.inverse(params(), input_half_, half_, element_log_det_, workspace_);
    log_det = element_log_det_.colwise().sum();
    u = x;
    CouplingPartition::scatter<T>(partition_.transformed(), half_, u);
    record(Direction::inverse, x.cols());
  }

  /// `grad_context`: null for an unconditional layer; else C × N, ∂L/∂c added into it.
  void backward_pass(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                     Matrix<T>* grad_context) {
    if (last_ == Direction::none)
      detail::fail<std::logic_error>(backward_name(),
                                     "no forward or inverse pass to differentiate; call "
                                     "forward_and_log_det or inverse_and_log_det first",
                                     NoGrad::hint);
    detail::check_backward(backward_name(), grad_out, grad_log_det, dim(), cols_);
    if (grad_context != nullptr) detail::check_context(backward_name(), *grad_context, context_dim(), cols_);
    const bool forward = last_ == Direction::forward;
    // ∂L/∂θ of the transformer into grad_net_ (the conditioner's output layout); ∂L/∂x_B becomes
    // ∂L/∂u_B in place (or the reverse after an inverse pass)
    resize_workspace(grad_net_, net_.outputs(), cols_);
    CouplingPartition::gather<T>(partition_.transformed(), grad_out, grad_half_);
    transformer_.backward(last_, params(), forward ? input_half_ : half_, grad_half_, grad_log_det,
                          ParamBlocks<T>::stacked(grad_net_, transformed_size()), workspace_);
    // A feeds the conditioner and passes through: ∂L/∂in_A = ∂L/∂out_A + (∂θ/∂in_A)ᵀ ∂L/∂θ;
    // the context feeds only the conditioner: ∂L/∂c += (∂θ/∂c)ᵀ ∂L/∂θ
    net_.backward(grad_net_, &grad_conditioning_, true, NoColumns{}, NoColumns{}, grad_context);
    const auto& rows = partition_.conditioning();
    for (std::size_t r = 0; r < rows.size(); ++r) grad_conditioning_.row(Index(r)) += grad_out.row(rows[r]);
    resize_workspace(grad_in, dim(), cols_);
    CouplingPartition::scatter<T>(partition_.conditioning(), grad_conditioning_, grad_in);
    CouplingPartition::scatter<T>(partition_.transformed(), grad_half_, grad_in);
  }

  void check_context(std::string_view function, MatrixCRef<T> context, Index cols) const {
    if (context_dim() == 0)
      detail::fail(function, name(), " is unconditional (context_dim 0): call it without a context, got a ",
                   context.rows(), "x", context.cols(), " context");
    detail::check_context(function, context, context_dim(), cols);
    detail::check_finite(function, "context", context);
  }

  static constexpr std::string_view forward_name() {
    return detail::JoinedName<Transformer::label, detail::forward_suffix>::value;
  }
  static constexpr std::string_view inverse_name() {
    return detail::JoinedName<Transformer::label, detail::inverse_suffix>::value;
  }
  static constexpr std::string_view backward_name() {
    return detail::JoinedName<Transformer::label, detail::backward_suffix>::value;
  }

  Coupling(CouplingPartition partition, CouplingOptions<T> options)
      : partition_(std::move(partition)),
        transformer_(detail::transformer_from<Transformer>(options)),
        net_(conditioner_sizes(partition_, options.hidden, transformer_), options.seed, {},
             options.identity_init, checked_context_dim(options.context_dim)) {
    transformer_.validate(name());
  }

  static Index checked_context_dim(Index context_dim) {
    if (context_dim < 0) detail::fail(name(), "context_dim is ", context_dim, ", expected 0 or more");
    return context_dim;
  }

  static std::vector<Index> conditioner_sizes(const CouplingPartition& partition,
                                              const std::vector<Index>& hidden,
                                              const Transformer& transformer) {
    std::vector<Index> sizes{Index(partition.conditioning().size())};
    for (const Index h : hidden) {
      detail::check_positive(name(), "hidden layer size", h);
      sizes.push_back(h);
    }
    sizes.push_back(Index(partition.transformed().size()) * transformer.params_per_dim());
    return sizes;
  }

  [[nodiscard]] Index transformed_size() const { return Index(partition_.transformed().size()); }
  /// The transformer's parameters: the conditioner's outputs of the last pass.
  [[nodiscard]] ParamBlocks<const T> params() const {
    return ParamBlocks<const T>::stacked(net_out_, transformed_size());
  }

  /// Runs the conditioner on the A half of `in` (and the context unless null) into net_out_ (the
  /// transformer's parameters).
  void condition(MatrixCRef<T> in, const MatrixCRef<T>* context) {
    CouplingPartition::gather<T>(partition_.conditioning(), in, conditioning_);
    if (context != nullptr)
      net_.forward_with_context(conditioning_, *context, net_out_);
    else
      net_.forward(conditioning_, net_out_);
  }

  void record(Direction d, Index cols) {
    last_ = NoGrad::recorded(d);
    cols_ = cols;
  }

  CouplingPartition partition_;
  Transformer transformer_;
  Mlp<T> net_;  // its (const) forward() keeps the activations backward() needs

  // workspaces of the last pass, for backward
  Matrix<T> conditioning_;     // in_A
  Matrix<T> net_out_;          // the transformer's parameters, stacked
  Matrix<T> input_half_;       // the B half of the input
  Matrix<T> half_;             // the B half of the output
  Matrix<T> element_log_det_;  // log|det| of each element of the B half
  typename Transformer::Workspace workspace_;
  Direction last_ = Direction::none;
  Index cols_ = 0;
  Matrix<T> grad_net_, grad_half_, grad_conditioning_;
};

template <class T>
using AffineCoupling = Coupling<T, AffineTransformer<T>>;
template <class T>
using AdditiveCoupling = Coupling<T, AdditiveTransformer<T>>;

static_assert(check_bijector<AffineCoupling<double>>());
static_assert(check_bijector<AdditiveCoupling<float>>());
static_assert(check_conditional_bijector<AffineCoupling<float>>());
static_assert(check_conditional_bijector<AdditiveCoupling<double>>());

}  // namespace knead
