#pragma once
/// @file
/// Mlp<T>: a multilayer perceptron with ReLU hidden layers, a linear output layer and optional
/// fixed 0/1 masks on its weights (the building block of MADE and of coupling conditioners).
///
/// With masks the network computes with W ⊙ M: entries outside a mask have no effect and get a zero
/// gradient, whatever value the buffer holds (they start at zero and optimizers leave them there).
/// Only the blocks of W that are not structurally zero are multiplied (linalg/masked_linear.hpp); W ⊙ M
/// is never formed in full. Workspaces are sized on first use: steady-state calls do not allocate.
///
/// With a context (context_dim C > 0) the first layer also reads a C×N context through a dense
/// weight V (out(0) × C): z_1 = (W_1⊙M_1) x + V c + b_1. V c is one dense product per pass, added
/// to the first layer's pre-activation before its ReLU; V sits after every layer's parameters.

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <vector>

#include "knead/core/conditional.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/threads.hpp"
#include "knead/linalg/masked_linear.hpp"
#include "knead/linalg/pass_jobs.hpp"

namespace knead {

/// The default of the column callbacks of Mlp::forward() and Mlp::backward(): nothing to do.
struct NoColumns {
  void operator()(Index, Index) const {}
};

template <class T>
class Mlp : public LeafParameters<T> {
 public:
  /// `sizes` = {inputs, hidden…, outputs}. Weights and biases start as PyTorch's nn.Linear does:
  /// uniform in ±1/√fan_in, drawn from `seed`. `masks`, if given, holds one (out × in) 0/1 matrix
  /// per layer. `zero_last_layer` starts the output at exactly zero (identity-initialised flows).
  /// `context_dim` = C, the rows of a context read by the first layer (0: none). V is drawn after
  /// every layer, like the first layer's weights (uniform in ±1/√in(0)), so the layers' initial
  /// values do not depend on C; it starts at zero with the last layer when that is the first.
  Mlp(std::vector<Index> sizes, std::uint64_t seed, std::vector<Matrix<T>> masks = {},
      bool zero_last_layer = false, Index context_dim = 0)
      : LeafParameters<T>(count_parameters(sizes, context_dim)),
        sizes_(std::move(sizes)),
        masks_(std::move(masks)),
        context_dim_(context_dim) {
    if (!masks_.empty() && masks_.size() != std::size_t(layers()))
      detail::fail("Mlp", "got ", masks_.size(), " masks for ", layers(), " layers");
    for (Index l = 0; l < layers(); ++l)
      if (!masks_.empty() &&
          (masks_[std::size_t(l)].rows() != out(l) || masks_[std::size_t(l)].cols() != in(l)))
        detail::fail("Mlp", "mask ", l, " is ", masks_[std::size_t(l)].rows(), "x",
                     masks_[std::size_t(l)].cols(), ", expected ", out(l), "x", in(l));
    std::mt19937_64 rng(seed);
    for (Index l = 0; l < layers(); ++l) {
      const T bound = T(1) / std::sqrt(T(in(l)));
      std::uniform_real_distribution<T> uniform(-bound, bound);
      const bool zero = zero_last_layer && l == layers() - 1;
      auto w = weight(l);
      for (Index j = 0; j < w.cols(); ++j)
        for (Index i = 0; i < w.rows(); ++i) w(i, j) = zero ? T(0) : uniform(rng);
      if (masked()) w.array() *= masks_[std::size_t(l)].array();
      for (auto& b : bias(l)) b = zero ? T(0) : uniform(rng);
    }
    if (context_dim_ > 0) {
      const T bound = T(1) / std::sqrt(T(in(0)));
      std::uniform_real_distribution<T> uniform(-bound, bound);
      const bool zero = zero_last_layer && layers() == 1;
      auto v = context_weight();
      for (Index j = 0; j < v.cols(); ++j)
        for (Index i = 0; i < v.rows(); ++i) v(i, j) = zero ? T(0) : uniform(rng);
    }
    for (Index l = 0; l < layers(); ++l)
      plans_.push_back(masked() ? linalg::MaskedLinearPlan(masks_[std::size_t(l)])
                                : linalg::MaskedLinearPlan(out(l), in(l)));
  }

  [[nodiscard]] Index layers() const { return Index(sizes_.size()) - 1; }
  [[nodiscard]] Index in(Index layer) const { return sizes_[std::size_t(layer)]; }
  [[nodiscard]] Index out(Index layer) const { return sizes_[std::size_t(layer) + 1]; }
  [[nodiscard]] Index inputs() const { return sizes_.front(); }
  [[nodiscard]] Index outputs() const { return sizes_.back(); }
  [[nodiscard]] const std::vector<Index>& sizes() const { return sizes_; }
  [[nodiscard]] bool masked() const { return !masks_.empty(); }
  [[nodiscard]] const std::vector<Matrix<T>>& masks() const { return masks_; }
  /// C: the rows of the context the first layer reads (0: none).
  [[nodiscard]] Index context_dim() const { return context_dim_; }

  [[nodiscard]] Eigen::Map<Matrix<T>> weight(Index l) {
    return this->params_.matrix(offset(l), out(l), in(l));
  }
  [[nodiscard]] Eigen::Map<const Matrix<T>> weight(Index l) const {
    return this->params_.matrix(offset(l), out(l), in(l));
  }
  [[nodiscard]] Eigen::Map<Vector<T>> bias(Index l) {
    return this->params_.vector(offset(l) + out(l) * in(l), out(l));
  }
  [[nodiscard]] Eigen::Map<const Vector<T>> bias(Index l) const {
    return this->params_.vector(offset(l) + out(l) * in(l), out(l));
  }
  /// V (out(0) × C, column-major), after every layer's weight and bias.
  [[nodiscard]] Eigen::Map<Matrix<T>> context_weight() {
    return this->params_.matrix(offset(layers()), out(0), context_dim_);
  }
  [[nodiscard]] Eigen::Map<const Matrix<T>> context_weight() const {
    return this->params_.matrix(offset(layers()), out(0), context_dim_);
  }

  /// out = W_L(… relu(W_1 in + b_1) …) + b_L. Keeps the activations for backward(); under
  /// NoGrad, keeps nothing: the hidden activations of each slice of columns go to the thread's
  /// scratch, shared by every network it runs, instead of this network's buffers.
  /// Masked layers only compute the blocks of W that are not structurally zero (see
  /// MaskedLinearPlan); the batch is split over knead::num_threads() threads by columns.
  /// `then(c0, c1)` is called on each thread's columns [c0, c1) of `output` as soon as they are
  /// done, in the same parallel job: a caller's elementwise work on the output runs on the threads
  /// without a job of its own (each job ends waiting for its slowest thread).
  template <class ColumnsDone = NoColumns>
  void forward(MatrixCRef<T> input, Matrix<T>& output, ColumnsDone&& then = {}) {
    if (context_dim_ > 0) fail_needs_context("Mlp::forward");
    run_forward(input, output, then);
  }

  /// forward() of a network with a context: column j of `context` (C × N) belongs to column j of
  /// the input.
  template <class ColumnsDone = NoColumns>
  void forward_with_context(MatrixCRef<T> input, MatrixCRef<T> context, Matrix<T>& output,
                            ColumnsDone&& then = {}) {
    set_context("Mlp::forward_with_context", context, input.cols());
    run_forward(input, output, then);
  }

 private:
  template <class ColumnsDone>
  void run_forward(MatrixCRef<T> input, Matrix<T>& output, ColumnsDone&& then) {
    if (input.rows() != inputs())
      detail::fail("Mlp::forward", "expected ", inputs(), " input rows, got ", input.rows());
    const Index n = input.cols();
    const bool keep = !NoGrad::active();  // the caller's: the parts may run on other threads
    size_workspaces(n, output, keep);
    const int chunks = detail::column_chunks(n, min_chunk());
    PassScratch& pass = PassScratch::local();
    const auto in_pass = pass.enter("Mlp::forward", layers());
    pack(pass, false, chunks, true, false);
    detail::parallel_columns(n, chunks, [&](Index c0, Index c1, int) {
      if (c1 <= c0) return;
      // kept for ∂W of layer 0; one flat copy when the columns are contiguous (Eigen copies a
      // strided Ref column by column: 3 % of a D=2 density pass)
      if (keep && input.outerStride() == input.rows())
        std::copy_n(input.data() + c0 * input.rows(), (c1 - c0) * input.rows(),
                    activations_[0].data() + c0 * input.rows());
      else if (keep)
        activations_[0].middleCols(c0, c1 - c0) = input.middleCols(c0, c1 - c0);
      const Index slice = linalg::forward_slice(*std::max_element(sizes_.begin(), sizes_.end()));
      std::vector<linalg::Buffer<T>>& hidden = PassScratch::local().hidden;  // this thread's
      if (!keep && hidden.size() < std::size_t(layers())) hidden.resize(std::size_t(layers()));
      for (Index j0 = c0; j0 < c1; j0 += slice) {
        const Index j1 = std::min(c1, j0 + slice);
        for (Index l = 0; l < layers(); ++l) {
          // layer l reads x (ldx) and writes y (ldy): column j0 of the batch, or of the slice
          const T* x = keep     ? activations_[std::size_t(l)].data() + j0 * in(l)
                       : l == 0 ? input.data() + j0 * input.outerStride()
                                : hidden[std::size_t(l)].data();
          const Index ldx = !keep && l == 0 ? input.outerStride() : in(l);
          T* y = l == layers() - 1 ? output.data() + j0 * out(l)
                 : keep            ? activations_[std::size_t(l + 1)].data() + j0 * out(l)
                                   : linalg::ensure(hidden[std::size_t(l + 1)], out(l) * slice);
          const bool relu = l < layers() - 1, add_context = l == 0 && context_dim_ > 0;
          plans_[std::size_t(l)].forward_packed(pass.packed[std::size_t(l)].data(), bias(l).data(), x, ldx, y,
                                                out(l), j1 - j0, relu && !add_context);
          if (add_context) {
            // z_1 = (W_1⊙M_1) x + b_1 + V c, then the ReLU
            Eigen::Map<Matrix<T>> z(y, out(0), j1 - j0);
            z += context_product_.middleCols(j0, j1 - j0);
            if (relu) z = z.cwiseMax(T(0));
          }
        }
      }
      then(c0, c1);
    });
    forwarded_cols_ = keep ? n : -1;
  }

 public:
  /// Given ∂L/∂out of the last forward(), adds ∂L/∂θ into gradients() when
  /// `accumulate_parameters`, and writes ∂L/∂in into *grad_input unless it is null. With a
  /// context, adds ∂L/∂c into *grad_context (C × N) unless it is null.
  /// As in forward(), a caller's elementwise work runs on the threads inside backward's own jobs:
  /// `first(c0, c1)` on each thread's columns before anything reads them (it may compute those
  /// columns of `grad_output`, which must already have its final shape), and `then(c0, c1)` on
  /// each thread's columns of *grad_input as soon as they are done.
  template <class ColumnsFirst = NoColumns, class ColumnsDone = NoColumns>
  void backward(MatrixCRef<T> grad_output, Matrix<T>* grad_input, bool accumulate_parameters = true,
                ColumnsFirst&& first = {}, ColumnsDone&& then = {}, Matrix<T>* grad_context = nullptr) {
    if (forwarded_cols_ < 0)
      detail::fail<std::logic_error>("Mlp::backward", "no forward pass to differentiate", NoGrad::hint);
    const Index n = forwarded_cols_;
    if (grad_output.rows() != outputs() || grad_output.cols() != n)
      detail::fail("Mlp::backward", "expected a ", outputs(), "x", n, " output gradient, got ",
                   grad_output.rows(), "x", grad_output.cols());
    if (context_dim_ > 0 && grad_context != nullptr)
      detail::check_context("Mlp::backward", *grad_context, context_dim_, n);
    PassScratch& pass = PassScratch::local();
    const auto in_pass = pass.enter("Mlp::backward", layers());
    for (Index l = 0; l + 1 < layers(); ++l) linalg::ensure(pass.grads[std::size_t(l)], out(l) * n);
    if (grad_input != nullptr) resize_workspace(*grad_input, inputs(), n);
    const int chunks = detail::column_chunks(n, min_chunk());
    T* gradient = accumulate_parameters ? this->params_.gradient_data() : nullptr;
    // Several threads each need the whole batch for their share of ∂W: it is packed once for all.
    // One thread packs it slice by slice instead, into a buffer that stays in cache.
    pack(pass, true, chunks, grad_input != nullptr, gradient != nullptr && chunks > 1, first);
    // One parallel job per layer. Thread t computes ∂L/∂(layer input) on its columns, and
    // ∂L/∂W, ∂L/∂b of its share of the layer's weight blocks and rows over the whole batch: every
    // parameter gradient is summed by one thread in one order, so no per-thread copies are reduced
    // and the results are the same for any thread count.
    for (Index l = layers() - 1; l >= 0; --l) {
      detail::parallel_columns(
          n, chunks,
          [&](Index c0, Index c1, int t) {
            backward_layer(pass, l, grad_output, grad_input, gradient, c0, c1, t, chunks);
            if (l == 0 && c1 > c0) then(c0, c1);
          },
          linalg::column_align, &linalg::PassBalances<T>::backward_layer(l));
    }
    if (context_dim_ > 0) backward_context(pass, grad_output, gradient, grad_context);
  }

  // ---- layer-by-layer evaluation (incremental autoregressive passes) ---------------------------

  /// Sizes the workspaces of a pass on n columns and `output`; returns the input buffer (zero), which
  /// the caller fills while computing units with forward_units(). Then end_partial(n) makes the
  /// pass differentiable by backward() as if forward() had run on the final input.
  Matrix<T>& begin_partial(Index n, Matrix<T>& output) {
    if (context_dim_ > 0) fail_needs_context("Mlp::begin_partial");
    size_workspaces(n, output);
    activations_[0].setZero();
    return activations_[0];
  }
  /// begin_partial() with a context (C × n): V c is computed here, once, for every step.
  Matrix<T>& begin_partial(Index n, MatrixCRef<T> context, Matrix<T>& output) {
    set_context("Mlp::begin_partial", context, n);
    size_workspaces(n, output);
    activations_[0].setZero();
    return activations_[0];
  }

  /// Computes the units `rows` of layer `layer` on columns [c0, c1) from its first `input_cols`
  /// inputs (the others must not matter: masked out, or zero): into the layer's activation buffer,
  /// or into `output` for the last layer. Uses W ⊙ M, so masked entries never count.
  void forward_units(Index layer, std::span<const Index> rows, Index input_cols, Index c0, Index c1,
                     Matrix<T>& output) {
    const Matrix<T>& x = activations_[std::size_t(layer)];
    Matrix<T>& y = layer == layers() - 1 ? output : activations_[std::size_t(layer + 1)];
    const bool relu = layer < layers() - 1, add_context = layer == 0 && context_dim_ > 0;
    plans_[std::size_t(layer)].forward_rows(weight(layer).data(), out(layer), bias(layer).data(),
                                            mask_data(layer), rows, input_cols, x.data() + c0 * x.rows(),
                                            x.rows(), y.data() + c0 * y.rows(), y.rows(), c1 - c0,
                                            relu && !add_context);
    if (add_context)  // z_1 = (W_1⊙M_1) x + b_1 + V c (V c of begin_partial), then the ReLU
      for (Index j = c0; j < c1; ++j)
        for (const Index r : rows) {
          const T z = y(r, j) + context_product_(r, j);
          y(r, j) = relu ? std::max(z, T(0)) : z;
        }
  }

  /// Marks a layer-by-layer pass on n columns as complete (see begin_partial()).
  void end_partial(Index n) { forwarded_cols_ = NoGrad::active() ? -1 : n; }

  /// Multiply–adds per sample that the masked kernels compute (all of W when unmasked).
  [[nodiscard]] Index computed_macs() const {
    Index n = 0;
    for (const auto& p : plans_) n += p.computed_macs();
    return n;
  }

  /// Columns per thread below which a batch is not split: 32, and enough columns for
  /// min_parallel_work() multiply–adds.
  [[nodiscard]] Index min_chunk() const {
    const Index per_column = std::max<Index>(computed_macs(), 1);
    const Index work = min_parallel_work();
    return std::max<Index>(32, work / per_column + (work % per_column != 0));
  }

 private:
  /// The buffers of one forward() or backward() that do not outlive it: the weights packed for the
  /// kernels, the batches packed for ∂W (several threads), ∂L/∂(pre-activation) of the hidden
  /// layers. They belong to the calling thread and serve every network it runs, each pass writing
  /// them before reading them: a flow of many networks keeps one set in cache rather than one per
  /// network (5 MADEs at D=2 hidden 512: 34 MB touched per training step instead of 50; +3 %).
  struct PassScratch {
    std::vector<linalg::Buffer<T>> packed, packed_inputs, grads;  // one per layer
    std::vector<linalg::Buffer<T>> hidden;  // a slice of each hidden layer's output, in a NoGrad forward()
    bool busy = false;

    static PassScratch& local() {
      thread_local PassScratch scratch;
      return scratch;
    }
    /// Marks the buffers in use by one pass of a network of `layers` layers (they only grow), until
    /// the returned guard goes. A pass started from within another on the same thread (a column
    /// callback running a network) would overwrite the buffers the outer one is reading: refused.
    [[nodiscard]] auto enter(const char* function, Index layers) {
      if (busy)
        detail::fail<std::logic_error>(function, "called from within another network's pass on this thread");
      for (auto* buffers : {&packed, &packed_inputs, &grads})
        if (buffers->size() < std::size_t(layers)) buffers->resize(std::size_t(layers));
      busy = true;
      struct Leave {
        bool* busy;
        ~Leave() { *busy = false; }
      };
      return Leave{&busy};
    }
  };

  /// Activations (unless not `keep`) and output sized for a pass on n columns (values left as
  /// they are).
  void size_workspaces(Index n, Matrix<T>& output, bool keep = true) {
    activations_.resize(std::size_t(layers()));
    for (Index l = 0; keep && l < layers(); ++l) resize_workspace(activations_[std::size_t(l)], in(l), n);
    resize_workspace(output, outputs(), n);
    forwarded_cols_ = -1;
  }

  [[noreturn]] void fail_needs_context(std::string_view function) const {
    detail::fail(function, "the network reads a context of ", context_dim_,
                 " rows: call the pass with one, one column per input column");
  }

  /// Checks and keeps a context for a pass on n columns (for ∂V) and computes V c: column by
  /// column, each entry summed over k in one order whatever n, so a sample's value does not
  /// depend on the batch it is in.
  void set_context(std::string_view function, MatrixCRef<T> context, Index n) {
    if (context_dim_ == 0)
      detail::fail(function, "the network reads no context, got a ", context.rows(), "x", context.cols(),
                   " one");
    detail::check_context(function, context, context_dim_, n);
    resize_workspace(context_, context_dim_, n);
    context_ = context;
    resize_workspace(context_product_, out(0), n);
    const auto v = context_weight();
    for (Index j = 0; j < n; ++j) {
      auto z = context_product_.col(j);
      z.setZero();
      for (Index k = 0; k < context_dim_; ++k) z += v.col(k) * context_(k, j);
    }
  }

  /// The context's part of backward(), with δ = ∂L/∂z_1 (the first layer's pre-activation: the
  /// output gradient for a single layer, else the one the layer above left in pass.grads[0]):
  /// z_1 = … + V c:  ∂L/∂V = δ cᵀ (into `gradient` unless null),  ∂L/∂c += Vᵀ δ (unless null).
  void backward_context(PassScratch& pass, MatrixCRef<T> grad_output, T* gradient, Matrix<T>* grad_context) {
    const Index n = forwarded_cols_;
    const auto apply = [&](const auto& delta) {
      if (gradient != nullptr)
        Eigen::Map<Matrix<T>>(gradient + offset(layers()), out(0), context_dim_).noalias() +=
            delta * context_.transpose();
      if (grad_context != nullptr) grad_context->noalias() += context_weight().transpose() * delta;
    };
    if (layers() == 1)
      apply(grad_output);
    else
      apply(Eigen::Map<const Matrix<T>>(pass.grads[0].data(), out(0), n));
  }

  [[nodiscard]] const T* mask_data(Index l) const {
    return masked() ? masks_[std::size_t(l)].data() : nullptr;
  }

  /// Layer l's part of backward() for thread t of `parts`: ∂L/∂(input of layer l) on columns
  /// [c0, c1) (into pass.grads[l − 1], or *grad_input for l = 0), and, unless `gradient` is null,
  /// the parameter gradients of the thread's share of the layer's output rows over all columns.
  void backward_layer(PassScratch& pass, Index l, MatrixCRef<T> grad_output, Matrix<T>* grad_input,
                      T* gradient, Index c0, Index c1, int t, int parts) {
    const bool last = l == layers() - 1;
    const T* g = last ? grad_output.data() : pass.grads[std::size_t(l)].data();
    const Index ldg = last ? grad_output.outerStride() : out(l);
    const Matrix<T>& h = activations_[std::size_t(l)];
    const auto& plan = plans_[std::size_t(l)];
    if (gradient != nullptr) {
      // z = (W⊙M) h + b:  ∂L/∂W = (∂L/∂z hᵀ) ⊙ M,  ∂L/∂b = Σ_n ∂L/∂z
      const detail::Share share = detail::thread_share(t, parts);
      plan.backward_weight(mask_data(l), g, ldg, h.data(), h.rows(), h.cols(), gradient + offset(l), out(l),
                           share, parts > 1 ? pass.packed_inputs[std::size_t(l)].data() : nullptr);
      plan.backward_bias(g, ldg, h.cols(), gradient + offset(l) + out(l) * in(l), share);
    }
    if (c1 <= c0) return;
    const Index n = c1 - c0;
    if (l > 0) {
      // h = relu(z_prev):  ∂L/∂z_prev = ((W⊙M)ᵀ ∂L/∂z) ⊙ [h > 0]
      plan.backward_input_packed(pass.packed[std::size_t(l)].data(), g + c0 * ldg, ldg,
                                 pass.grads[std::size_t(l - 1)].data() + c0 * in(l), in(l), n,
                                 h.data() + c0 * h.rows(), h.rows());
    } else if (grad_input != nullptr) {
      plan.backward_input_packed(pass.packed[0].data(), g + c0 * ldg, ldg, grad_input->data() + c0 * inputs(),
                                 inputs(), n);
    }
  }

  /// Packs, once per pass, W⊙M of every layer (or (W⊙M)ᵀ when `transposed`, for the input
  /// gradients; layer 0's only if `first_layer`) into pass.packed, and, when `inputs`, every layer's
  /// input batch as the weight gradients read it into pass.packed_inputs. The `chunks` threads each
  /// pack a share, then all of them read the whole. Each thread first calls columns(c0, c1) on its
  /// share of the batch's columns.
  template <class Columns = NoColumns>
  void pack(PassScratch& pass, bool transposed, int chunks, bool first_layer, bool inputs,
            Columns&& columns = {}) const {
    const Index n = activations_[0].cols();
    for (Index l = 0; l < layers(); ++l) {
      const auto& plan = plans_[std::size_t(l)];
      linalg::ensure(pass.packed[std::size_t(l)], plan.packed_size(transposed));
      if (inputs) linalg::ensure(pass.packed_inputs[std::size_t(l)], plan.template packed_inputs_size<T>(n));
    }
    detail::parallel_parts(
        chunks,
        [&](int t) {
          const detail::Share share = detail::thread_share(t, chunks);
          if (const auto [c0, c1] = share.of(n, linalg::column_align); c1 > c0) columns(c0, c1);
          for (Index l = 0; l < layers(); ++l) {
            const auto& plan = plans_[std::size_t(l)];
            if (l > 0 || first_layer)
              plan.pack_weights(weight(l).data(), out(l), mask_data(l), transposed,
                                pass.packed[std::size_t(l)].data(), share);
            if (inputs) {
              const Matrix<T>& h = activations_[std::size_t(l)];
              plan.pack_inputs(h.data(), h.rows(), n, pass.packed_inputs[std::size_t(l)].data(), share);
            }
          }
        },
        linalg::PassBalances<T>::packing(transposed));
  }

  static Index count_parameters(const std::vector<Index>& sizes, Index context_dim) {
    if (sizes.size() < 2)
      detail::fail("Mlp", "needs at least input and output sizes, got ", sizes.size(), " sizes");
    Index n = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      detail::check_positive("Mlp", "layer size", sizes[l]);
      detail::check_positive("Mlp", "layer size", sizes[l + 1]);
      n += sizes[l + 1] * (sizes[l] + 1);
    }
    if (context_dim < 0) detail::fail("Mlp", "context_dim is ", context_dim, ", expected 0 or more");
    return n + sizes[1] * context_dim;
  }
  [[nodiscard]] Index offset(Index layer) const {
    Index at = 0;
    for (Index l = 0; l < layer; ++l) at += out(l) * (in(l) + 1);
    return at;
  }

  std::vector<Index> sizes_;
  std::vector<Matrix<T>> masks_;
  std::vector<linalg::MaskedLinearPlan> plans_;  // the blocks each layer computes
  std::vector<Matrix<T>> activations_;           // input of every layer, for backward
  Index forwarded_cols_ = -1;                    // columns of the last complete forward pass
  Index context_dim_ = 0;                        // C: rows of the context the first layer reads
  Matrix<T> context_;                            // the last pass's context, for ∂V
  Matrix<T> context_product_;                    // V c of the last pass (out(0) × N)
};

}  // namespace knead
