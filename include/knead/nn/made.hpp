#pragma once
/// @file
/// Made<T>: the Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray and
/// Larochelle 2015, "MADE: Masked Autoencoder for Distribution Estimation"), the conditioner of
/// MAF and IAF. An Mlp whose weights are masked so that the outputs for input dimension i depend
/// only on the dimensions generated before i in a chosen order.

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/types.hpp"
#include "knead/nn/mlp.hpp"

namespace knead {

/// The order in which an autoregressive model generates the dimensions: `order[k]` is the input
/// dimension generated k-th. Identity (0, 1, …, D−1), reversed (D−1, …, 0) or a given permutation.
class InputOrder {
 public:
  InputOrder() = default;  ///< the identity
  [[nodiscard]] static InputOrder identity() { return {}; }
  [[nodiscard]] static InputOrder reversed() {
    InputOrder o;
    o.kind_ = Kind::reversed;
    return o;
  }
  /// `order[k]` = the dimension generated k-th; checked to be a permutation of 0..D−1 when used.
  [[nodiscard]] static InputOrder permutation(std::vector<Index> order) {
    InputOrder o;
    o.kind_ = Kind::permutation;
    o.permutation_ = std::move(order);
    return o;
  }

  /// The order for `dim` dimensions; throws std::invalid_argument naming `function` and the bad
  /// entry unless a given permutation is one of 0..dim−1.
  [[nodiscard]] std::vector<Index> resolve(std::string_view function, Index dim) const {
    std::vector<Index> order(static_cast<std::size_t>(dim));
    switch (kind_) {
      case Kind::identity:
        for (Index k = 0; k < dim; ++k) order[std::size_t(k)] = k;
        return order;
      case Kind::reversed:
        for (Index k = 0; k < dim; ++k) order[std::size_t(k)] = dim - 1 - k;
        return order;
      case Kind::permutation:
        break;
    }
    if (Index(permutation_.size()) != dim)
      detail::fail(function, "input order has ", permutation_.size(), " entries, expected ", dim,
                   " (a permutation of 0..", dim - 1, ")");
    std::vector<Index> seen_at(std::size_t(dim), -1);
    for (Index k = 0; k < dim; ++k) {
      const Index i = permutation_[std::size_t(k)];
      if (i < 0 || i >= dim)
        detail::fail(function, "input order entry ", k, " is ", i, ", outside 0..", dim - 1);
      if (seen_at[std::size_t(i)] >= 0)
        detail::fail(function, "input order entry ", k, " is ", i, ", which entry ", seen_at[std::size_t(i)],
                     " already holds (not a permutation)");
      seen_at[std::size_t(i)] = k;
    }
    return permutation_;
  }

 private:
  enum class Kind { identity, reversed, permutation };
  Kind kind_ = Kind::identity;
  std::vector<Index> permutation_;
};

/// A masked MLP with ReLU hidden layers and P·D outputs, P parameters per dimension (2 by default):
/// row p·D + i is parameter p of input dimension i (for MAF's affine transformer, rows [0, D) the
/// shifts μ_i and rows [D, 2D) the raw log-scales a_i), each a function of the dimensions generated
/// before i only.
///
/// Degrees (Germain et al. 2015, §4): input dimension order[k] has degree k + 1; all P outputs of
/// dimension i have the degree of input i. The units of each hidden layer get the degrees
/// 1, 2, …, D−1, 1, 2, … and are then sorted ascending within the layer, so every mask is a
/// staircase (an incremental sampler can recompute only a block of units per step). Masks:
///   input → hidden   [m_hidden ≥ m_input]
///   hidden → hidden  [m_next ≥ m_prev]
///   hidden → output  [m_output > m_hidden]   (strict: output i never sees input i)
/// With no hidden layer the single layer uses the strict rule [m_output > m_input].
///
/// Every hidden layer needs at least D − 1 units, or some degree would be missing and outputs
/// would lose inputs they may depend on. Then no hidden unit is dead: a unit of degree k sees the
/// inputs of degree ≤ k (degree 1 exists) and feeds the outputs of degree > k (degree D exists),
/// and every output of degree d depends on every input of degree < d.
///
/// The outputs of the first dimension in the order (degree 1) depend on no input: they are
/// learnable constants. For D = 1 that is all there is: the hidden units get degree 0, so they see
/// no input (bias-only features, relu(b)) and feed both outputs, which are therefore constants
/// computed from the biases.
///
/// The masks, weights and values of the first 2·D outputs do not depend on P beyond the last
/// layer's size: P = 2 is MAF's network.
///
/// Context (context_dim C > 0, conditional MAF/IAF): a C×N context feeds every unit of the first
/// layer through a dense weight V, h_1 = relu((W_1⊙M_1) x + V c + b_1) (Mlp's context). The
/// context has degree 0, not above any unit's, so the autoregressive property holds for every
/// order and every context. The hidden units then take the degrees 0, 1, …, D−1 cyclically (sorted)
/// instead of 1, …, D−1: the outputs of the first dimension (degree 1) read only units of degree 0,
/// which without a context do not exist (those outputs are constants), and with one carry the
/// context; so with D ≥ 2 each hidden layer needs at least D units. With no hidden layer V feeds the
/// outputs, all of degree ≥ 1. Parameters: Mlp's layers (weight then bias, layer by layer), then V
/// (H_1 × C column-major, H_1 = the first hidden layer's size, or P·D without one). With C = 0
/// nothing changes: no V, the degrees above, no extra work.
template <class T>
class Made {
 public:
  using Scalar = T;

  /// `hidden` = the hidden layer sizes (may be empty); `seed` draws the initial weights (see Mlp);
  /// `zero_last_layer` makes every output exactly zero at the start (an identity MAF);
  /// `params_per_dim` = P, the outputs per input dimension; `context_dim` = C, the rows of the
  /// context (0: none).
  Made(Index dim, std::vector<Index> hidden, const InputOrder& order = {}, std::uint64_t seed = 0,
       bool zero_last_layer = false, Index params_per_dim = 2, Index context_dim = 0)
      : dim_(dim),
        params_per_dim_(checked_params_per_dim("Made", params_per_dim)),
        order_(validate("Made", dim, hidden, order, checked_context_dim("Made", context_dim))),
        input_degrees_(input_degrees_of(order_)),
        hidden_degrees_(hidden_degrees_of(dim, hidden, context_dim > 0)),
        output_degrees_(output_degrees_of(input_degrees_, params_per_dim_)),
        mlp_(layer_sizes(dim, hidden, params_per_dim_), seed,
             masks_of(input_degrees_, hidden_degrees_, output_degrees_), zero_last_layer,
             checked_context_dim("Made", context_dim)) {
    // step_rows_[k·P + p] = p·D + order[k]: the outputs incremental_step(k) computes
    step_rows_.resize(std::size_t(dim_ * params_per_dim_));
    for (Index k = 0; k < dim_; ++k)
      for (Index p = 0; p < params_per_dim_; ++p)
        step_rows_[std::size_t(k * params_per_dim_ + p)] = p * dim_ + order_[std::size_t(k)];
    // units_up_to_[l][k] = number of units of hidden layer l with degree ≤ k (they are sorted)
    for (const auto& layer : hidden_degrees_) {
      std::vector<Index> counts(std::size_t(dim_) + 1);
      for (Index k = 0; k <= dim_; ++k)
        counts[std::size_t(k)] = Index(std::ranges::upper_bound(layer, k) - layer.begin());
      units_up_to_.push_back(std::move(counts));
      std::vector<Index> all(layer.size());
      for (std::size_t j = 0; j < all.size(); ++j) all[j] = Index(j);
      unit_index_.push_back(std::move(all));
    }
  }

  /// Checks the arguments of a MADE, naming `function` in errors; returns the resolved order.
  static std::vector<Index> validate(std::string_view function, Index dim, const std::vector<Index>& hidden,
                                     const InputOrder& order, Index context_dim = 0) {
    detail::check_positive(function, "dim", dim);
    const Index needed = std::max<Index>(context_dim > 0 ? dim : dim - 1, 1);
    for (std::size_t l = 0; l < hidden.size(); ++l)
      if (hidden[l] < needed) {
        if (dim >= 2 && context_dim > 0)
          detail::fail(function, "hidden layer ", l + 1, " has ", hidden[l], " units, fewer than D = ", dim,
                       " (with a context every degree 0..D−1 needs a unit)");
        if (dim >= 2)
          detail::fail(function, "hidden layer ", l + 1, " has ", hidden[l],
                       " units, fewer than D − 1 = ", dim - 1, " (every degree 1..D−1 needs a unit)");
        detail::fail(function, "hidden layer ", l + 1, " has ", hidden[l], " units, needs at least 1");
      }
    return order.resolve(function, dim);
  }

  /// Checks a context dimension (0 or more), naming `function` in errors.
  static Index checked_context_dim(std::string_view function, Index context_dim) {
    if (context_dim < 0) detail::fail(function, "context_dim is ", context_dim, ", expected 0 or more");
    return context_dim;
  }

  /// Checks a number of outputs per dimension (at least 1), naming `function` in errors.
  static Index checked_params_per_dim(std::string_view function, Index params_per_dim) {
    detail::check_positive(function, "parameters per dimension", params_per_dim);
    return params_per_dim;
  }

  [[nodiscard]] Index dim() const { return dim_; }
  /// P: the outputs per input dimension (row p·D + i is parameter p of dimension i).
  [[nodiscard]] Index params_per_dim() const { return params_per_dim_; }
  /// C: the rows of the context (0: an unconditional MADE).
  [[nodiscard]] Index context_dim() const { return mlp_.context_dim(); }
  /// order()[k] = the input dimension generated k-th.
  [[nodiscard]] const std::vector<Index>& order() const { return order_; }
  /// Degree of each input dimension i (order()[k] has degree k + 1).
  [[nodiscard]] const std::vector<Index>& input_degrees() const { return input_degrees_; }
  /// Degrees of the units of each hidden layer, ascending within a layer.
  [[nodiscard]] const std::vector<std::vector<Index>>& hidden_degrees() const { return hidden_degrees_; }
  /// Degree of each of the P·D outputs (that of input i for rows p·D + i).
  [[nodiscard]] const std::vector<Index>& output_degrees() const { return output_degrees_; }
  /// The masked network; its masks() are the 0/1 connectivity, one (out × in) matrix per layer.
  [[nodiscard]] const Mlp<T>& mlp() const { return mlp_; }
  [[nodiscard]] Mlp<T>& mlp() { return mlp_; }

  /// out (PD × N) = the P parameters of every dimension, stacked, for the D × N batch x. Keeps the
  /// activations for backward() (not under NoGrad). `then(c0, c1)`: the caller's work on columns [c0, c1) of
  /// out, run as in Mlp::forward().
  template <class ColumnsDone = NoColumns>
  void forward(MatrixCRef<T> x, Matrix<T>& out, ColumnsDone&& then = {}) {
    detail::check_batch("Made::forward", x, dim_);
    if (context_dim() > 0)
      detail::fail("Made::forward", "this MADE reads a context of ", context_dim(),
                   " rows: call forward_with_context");
    mlp_.forward(x, out, then);
    last_cols_ = NoGrad::active() ? -1 : x.cols();
  }

  /// forward() with a context (C × N, column j for sample j), fed to the first layer.
  template <class ColumnsDone = NoColumns>
  void forward_with_context(MatrixCRef<T> x, MatrixCRef<T> context, Matrix<T>& out, ColumnsDone&& then = {}) {
    detail::check_batch("Made::forward_with_context", x, dim_);
    mlp_.forward_with_context(x, context, out, then);
    last_cols_ = NoGrad::active() ? -1 : x.cols();
  }

  /// Given ∂L/∂out (PD × N) of the last forward(), adds ∂L/∂θ into gradients() when
  /// `accumulate_parameters` and writes ∂L/∂x into *grad_in unless it is null. `first` and
  /// `then`: the caller's work on columns of grad_out and *grad_in, run as in Mlp::backward().
  /// With a context, adds ∂L/∂c into *grad_context (C × N) unless it is null.
  template <class ColumnsFirst = NoColumns, class ColumnsDone = NoColumns>
  void backward(MatrixCRef<T> grad_out, Matrix<T>* grad_in, bool accumulate_parameters = true,
                ColumnsFirst&& first = {}, ColumnsDone&& then = {}, Matrix<T>* grad_context = nullptr) {
    if (last_cols_ < 0)
      detail::fail<std::logic_error>("Made::backward", "no forward pass to differentiate", NoGrad::hint);
    if (grad_out.rows() != params_per_dim_ * dim_ || grad_out.cols() != last_cols_)
      detail::fail("Made::backward", "expected a ", params_per_dim_ * dim_, "x", last_cols_,
                   " output gradient (the shape of the last forward), got ", grad_out.rows(), "x",
                   grad_out.cols());
    mlp_.backward(grad_out, grad_in, accumulate_parameters, first, then, grad_context);
  }

  // ---- incremental evaluation (sequential sampling) -------------------------------------------
  // Units of degree k depend only on the inputs of degree ≤ k, and the outputs of the dimension
  // generated k-th (degree k + 1) only on units of degree ≤ k. So a sequential pass that generates
  // the dimensions one by one computes, at step k, just the hidden units of degree k and the P
  // outputs of dimension order()[k]: every unit once, instead of D full passes.

  /// Starts an incremental pass on n columns (`out` is sized PD × n); returns the input buffer,
  /// zero, whose row order()[k] the caller sets after step k.
  Matrix<T>& begin_incremental(Index n, Matrix<T>& out) {
    last_cols_ = -1;
    return mlp_.begin_partial(n, out);
  }
  /// begin_incremental() with a context (C × n): its product with V is computed here, once, and
  /// added in the first layer's units at every step.
  Matrix<T>& begin_incremental(Index n, MatrixCRef<T> context, Matrix<T>& out) {
    last_cols_ = -1;
    return mlp_.begin_partial(n, context, out);
  }
  /// Step k on columns [c0, c1): the hidden units of degree k, then rows p·D + i of `out` (the P
  /// parameters of dimension i, in order of p) for i = order()[k], from the input rows of the
  /// dimensions generated before.
  void incremental_step(Index k, Index c0, Index c1, Matrix<T>& out) {
    const auto hidden = Index(hidden_degrees_.size());
    for (Index l = 0; l < hidden; ++l) {
      const auto& up_to = units_up_to_[std::size_t(l)];
      const Index begin = k == 0 ? 0 : up_to[std::size_t(k - 1)], end = up_to[std::size_t(k)];
      // layer 0 reads all inputs: those not generated yet are zero and masked out anyway
      const Index inputs = l == 0 ? dim_ : units_up_to_[std::size_t(l - 1)][std::size_t(k)];
      mlp_.forward_units(l,
                         std::span<const Index>(unit_index_[std::size_t(l)])
                             .subspan(std::size_t(begin), std::size_t(end - begin)),
                         inputs, c0, c1, out);
    }
    const auto rows = std::span<const Index>(step_rows_)
                          .subspan(std::size_t(k * params_per_dim_), std::size_t(params_per_dim_));
    const Index inputs = hidden == 0 ? dim_ : units_up_to_.back()[std::size_t(k)];
    mlp_.forward_units(hidden, rows, inputs, c0, c1, out);
  }
  /// Ends an incremental pass on n columns: backward() then differentiates it like forward() at
  /// the final input.
  void end_incremental(Index n) {
    mlp_.end_partial(n);
    last_cols_ = NoGrad::active() ? -1 : n;
  }

  [[nodiscard]] Index num_parameters() const { return mlp_.num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return mlp_.parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return mlp_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return mlp_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    mlp_.bind_parameters(storage, offset);
  }

 private:
  static std::vector<Index> input_degrees_of(const std::vector<Index>& order) {
    std::vector<Index> degrees(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) degrees[std::size_t(order[k])] = Index(k) + 1;
    return degrees;
  }

  /// Cyclic degrees 1..D−1 sorted ascending (all 0 when D = 1: bias-only units); with a context,
  /// cyclic degrees 0..D−1 (the units of degree 0 carry the context to the first dimension).
  static std::vector<std::vector<Index>> hidden_degrees_of(Index dim, const std::vector<Index>& hidden,
                                                           bool with_context) {
    std::vector<std::vector<Index>> degrees;
    for (const Index units : hidden) {
      std::vector<Index> layer(std::size_t(units), 0);
      if (dim >= 2)
        for (Index j = 0; j < units; ++j) layer[std::size_t(j)] = with_context ? j % dim : j % (dim - 1) + 1;
      std::ranges::sort(layer);
      degrees.push_back(std::move(layer));
    }
    return degrees;
  }

  /// The input degrees repeated P times: row p·D + i has the degree of input i.
  static std::vector<Index> output_degrees_of(const std::vector<Index>& input_degrees, Index params_per_dim) {
    std::vector<Index> degrees;
    for (Index p = 0; p < params_per_dim; ++p)
      degrees.insert(degrees.end(), input_degrees.begin(), input_degrees.end());
    return degrees;
  }

  static std::vector<Index> layer_sizes(Index dim, const std::vector<Index>& hidden, Index params_per_dim) {
    std::vector<Index> sizes{dim};
    sizes.insert(sizes.end(), hidden.begin(), hidden.end());
    sizes.push_back(params_per_dim * dim);
    return sizes;
  }

  /// M(r, c) = [m_out(r) ≥ m_in(c)] between hidden layers, [m_out(r) > m_in(c)] into the outputs.
  static Matrix<T> mask(const std::vector<Index>& out, const std::vector<Index>& in, bool strict) {
    Matrix<T> m(Index(out.size()), Index(in.size()));
    for (Index c = 0; c < m.cols(); ++c)
      for (Index r = 0; r < m.rows(); ++r) {
        const Index o = out[std::size_t(r)], i = in[std::size_t(c)];
        m(r, c) = (strict ? o > i : o >= i) ? T(1) : T(0);
      }
    return m;
  }

  static std::vector<Matrix<T>> masks_of(const std::vector<Index>& input_degrees,
                                         const std::vector<std::vector<Index>>& hidden_degrees,
                                         const std::vector<Index>& output_degrees) {
    std::vector<Matrix<T>> masks;
    const std::vector<Index>* below = &input_degrees;
    for (const auto& layer : hidden_degrees) {
      masks.push_back(mask(layer, *below, false));
      below = &layer;
    }
    masks.push_back(mask(output_degrees, *below, true));
    return masks;
  }

  Index dim_;
  Index params_per_dim_;
  std::vector<Index> order_;
  std::vector<Index> input_degrees_;
  std::vector<std::vector<Index>> hidden_degrees_;
  std::vector<Index> output_degrees_;
  Mlp<T> mlp_;
  std::vector<std::vector<Index>> units_up_to_;  // per hidden layer: units of degree ≤ k, k = 0..D
  std::vector<std::vector<Index>> unit_index_;   // per hidden layer: 0, 1, …, size − 1
  std::vector<Index> step_rows_;                 // [k·P, (k+1)·P): the output rows of step k
  Index last_cols_ = -1;                         // columns of the last forward(), checked by backward()
};

}  // namespace knead
