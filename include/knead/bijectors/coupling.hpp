#pragma once
/// @file
/// Coupling layers: RealNVP's affine coupling and NICE's additive coupling, conditioned by a dense
/// Mlp on the dimensions they leave unchanged.

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/mlp.hpp"

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
    out.resize(Index(rows.size()), in.cols());
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
};

/// Coupling layer. The dimensions split into a conditioning set A and a transformed set B (by a
/// split point or a mask, see CouplingPartition); a dense Mlp reads the A half and emits a shift
/// t and, for the affine coupling, a raw log-scale a for every dimension of B, with
/// s = guard(a) (LogScaleGuard, soft clamp by default).
///
/// Affine coupling (HasScale; RealNVP: Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation
/// using Real NVP"):
/// - forward:  x_A = u_A,  x_B = u_B ⊙ exp(s(u_A)) + t(u_A)
/// - inverse:  u_A = x_A,  u_B = (x_B − t(x_A)) ⊙ exp(−s(x_A))
/// - log|det ∂x/∂u| = Σ_{i∈B} s_i   (the Jacobian is triangular after permuting A before B)
///
/// Additive coupling (!HasScale; NICE: Dinh, Krueger & Bengio 2015, "NICE: Non-linear Independent
/// Components Estimation"): the same with s ≡ 0, so x_B = u_B + t(u_A) and log|det| = 0.
///
/// Both directions take one pass of the conditioner, since A is known on both sides.
/// Parameters are the conditioner's (Mlp layout); its last layer's outputs are
/// [t (|B| rows)][a (|B| rows, affine only)].
template <class T, bool HasScale>
class Coupling {
 public:
  using Scalar = T;

  /// Dimensions [0, split) condition and [split, dim) are transformed.
  Coupling(Index dim, Index split, CouplingOptions<T> options = {})
      : Coupling(CouplingPartition::from_split(names().type, dim, split), std::move(options)) {}
  /// mask[i] = 1: dimension i conditions (passes through); 0: it is transformed. dim = mask size.
  explicit Coupling(const std::vector<int>& mask, CouplingOptions<T> options = {})
      : Coupling(CouplingPartition::from_mask(names().type, mask), std::move(options)) {}
  /// The same for a braced mask such as {1, 0, 1}; without it, {1, 0} would also match (dim, split).
  explicit Coupling(std::initializer_list<int> mask, CouplingOptions<T> options = {})
      : Coupling(std::vector<int>(mask), std::move(options)) {}

  static constexpr std::string_view name() { return names().type; }
  [[nodiscard]] Index dim() const { return partition_.dim(); }
  [[nodiscard]] const CouplingPartition& partition() const { return partition_; }
  [[nodiscard]] const LogScaleGuard<T>& guard() const { return guard_; }
  /// The conditioner: |A| inputs, |B| (additive) or 2|B| (affine) outputs.
  [[nodiscard]] Mlp<T>& conditioner() { return net_; }
  [[nodiscard]] const Mlp<T>& conditioner() const { return net_; }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) const {
    detail::check_batch(names().forward, u, dim());
    condition(u);
    // x_B = u_B ⊙ e^s + t, written over a copy of u so x_A = u_A
    if constexpr (HasScale) {
      CouplingPartition::gather<T>(partition_.transformed(), u, input_half_);  // backward needs u_B
      scale_ = log_scale_.array().exp();
      half_ = input_half_.cwiseProduct(scale_) + shift();
      log_det = log_scale_.colwise().sum();
    } else {
      CouplingPartition::gather<T>(partition_.transformed(), u, half_);
      half_ += shift();
      log_det.setZero(u.cols());
    }
    x = u;
    CouplingPartition::scatter<T>(partition_.transformed(), half_, x);
    record(Direction::forward, u.cols());
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) const {
    detail::check_batch(names().inverse, x, dim());
    condition(x);
    // u_B = (x_B − t) ⊙ e^{−s}; u_B is kept: backward needs it for ∂L/∂s
    CouplingPartition::gather<T>(partition_.transformed(), x, half_);
    half_ -= shift();
    if constexpr (HasScale) {
      scale_ = (-log_scale_.array()).exp();
      half_.array() *= scale_.array();
      log_det = -log_scale_.colwise().sum();
    } else {
      log_det.setZero(x.cols());
    }
    u = x;
    CouplingPartition::scatter<T>(partition_.transformed(), half_, u);
    record(Direction::inverse, x.cols());
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    if (last_ == Direction::none)
      detail::fail<std::logic_error>(names().backward,
                                     "no forward or inverse pass to differentiate; call "
                                     "forward_and_log_det or inverse_and_log_det first",
                                     NoGrad::hint);
    detail::check_backward(names().backward, grad_out, grad_log_det, dim(), cols_);
    const bool forward = last_ == Direction::forward;
    const Index m = transformed_size();
    // rows [0, m): ∂L/∂t; rows [m, 2m): ∂L/∂a (affine only)
    grad_net_.resize(net_.outputs(), cols_);
    auto grad_shift = grad_net_.topRows(m);
    CouplingPartition::gather<T>(partition_.transformed(), grad_out, grad_half_);
    auto grad_s = grad_net_.bottomRows(HasScale ? m : 0);
    if (forward) {
      // x_B = u_B ⊙ e^s + t:  ∂L/∂u_B = ∂L/∂x_B ⊙ e^s,  ∂L/∂t = ∂L/∂x_B,
      //                       ∂L/∂s = ∂L/∂x_B ⊙ u_B ⊙ e^s + ∂L/∂ld   (log|det| = Σ s)
      grad_shift = grad_half_;
      if constexpr (HasScale) {
        grad_s = grad_half_.cwiseProduct(scale_).cwiseProduct(input_half_);
        grad_s.rowwise() += grad_log_det;
        grad_half_.array() *= scale_.array();
      }
    } else {
      // u_B = (x_B − t) ⊙ e^{−s}:  ∂L/∂x_B = ∂L/∂u_B ⊙ e^{−s},  ∂L/∂t = −∂L/∂x_B,
      //                            ∂L/∂s = −∂L/∂u_B ⊙ u_B − ∂L/∂ld   (log|det| = −Σ s)
      if constexpr (HasScale) {
        grad_s = -grad_half_.cwiseProduct(half_);
        grad_s.rowwise() -= grad_log_det;
        grad_half_.array() *= scale_.array();
      }
      grad_shift = -grad_half_;
    }
    // s = guard(a):  ∂L/∂a = ∂L/∂s ⊙ guard'(a)   (in place: grad_s becomes ∂L/∂a)
    if constexpr (HasScale) {
      guard_.derivative(raw_log_scale(), log_scale_, guard_slope_);
      grad_s.array() *= guard_slope_.array();
    }
    // A feeds the conditioner and passes through: ∂L/∂in_A = ∂L/∂out_A + (∂t,a/∂in_A)ᵀ [∂L/∂t; ∂L/∂a]
    net_.backward(grad_net_, &grad_conditioning_);
    const auto& rows = partition_.conditioning();
    for (std::size_t r = 0; r < rows.size(); ++r) grad_conditioning_.row(Index(r)) += grad_out.row(rows[r]);
    grad_in.resize(dim(), cols_);
    CouplingPartition::scatter<T>(partition_.conditioning(), grad_conditioning_, grad_in);
    CouplingPartition::scatter<T>(partition_.transformed(), grad_half_, grad_in);
  }

  [[nodiscard]] Index num_parameters() const { return net_.num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return net_.parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return net_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return net_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    net_.bind_parameters(storage, offset);
  }

 private:
  struct Names {
    std::string_view type, forward, inverse, backward;
  };
  static constexpr Names names() {
    if constexpr (HasScale)
      return {"AffineCoupling", "AffineCoupling::forward_and_log_det", "AffineCoupling::inverse_and_log_det",
              "AffineCoupling::backward"};
    else
      return {"AdditiveCoupling", "AdditiveCoupling::forward_and_log_det",
              "AdditiveCoupling::inverse_and_log_det", "AdditiveCoupling::backward"};
  }

  Coupling(CouplingPartition partition, CouplingOptions<T> options)
      : partition_(std::move(partition)),
        guard_(options.guard),
        net_(conditioner_sizes(partition_, options.hidden), options.seed, {}, options.identity_init) {
    if constexpr (HasScale) guard_.validate(names().type);
  }

  static std::vector<Index> conditioner_sizes(const CouplingPartition& partition,
                                              const std::vector<Index>& hidden) {
    std::vector<Index> sizes{Index(partition.conditioning().size())};
    for (const Index h : hidden) {
      detail::check_positive(names().type, "hidden layer size", h);
      sizes.push_back(h);
    }
    sizes.push_back(Index(partition.transformed().size()) * (HasScale ? 2 : 1));
    return sizes;
  }

  [[nodiscard]] Index transformed_size() const { return Index(partition_.transformed().size()); }
  [[nodiscard]] auto shift() const { return net_out_.topRows(transformed_size()); }
  [[nodiscard]] auto raw_log_scale() const { return net_out_.bottomRows(transformed_size()); }

  /// Runs the conditioner on the A half of `in`; sets net_out_ = [t; a] and, affine, log_scale_ = guard(a).
  void condition(MatrixCRef<T> in) const {
    CouplingPartition::gather<T>(partition_.conditioning(), in, conditioning_);
    net_.forward(conditioning_, net_out_);
    if constexpr (HasScale) guard_.apply(raw_log_scale(), log_scale_);
  }

  void record(Direction d, Index cols) const {
    last_ = NoGrad::recorded(d);
    cols_ = cols;
  }

  CouplingPartition partition_;
  LogScaleGuard<T> guard_;
  Mlp<T> net_;  // its (const) forward() keeps the activations backward() needs

  // workspaces of the last pass, for backward
  mutable Matrix<T> conditioning_;  // in_A
  mutable Matrix<T> net_out_;       // [t; a]
  mutable Matrix<T> log_scale_;     // s = guard(a)
  mutable Matrix<T> scale_;         // e^{±s}, the factor applied to the B half
  mutable Matrix<T> half_;          // the B half of the output (u_B after an inverse pass)
  mutable Matrix<T> input_half_;    // u_B of a forward pass (affine only)
  mutable Direction last_ = Direction::none;
  mutable Index cols_ = 0;
  Matrix<T> grad_net_, grad_half_, grad_conditioning_, guard_slope_;
};

template <class T>
using AffineCoupling = Coupling<T, true>;
template <class T>
using AdditiveCoupling = Coupling<T, false>;

static_assert(check_bijector<AffineCoupling<double>>());
static_assert(check_bijector<AdditiveCoupling<float>>());

}  // namespace knead
