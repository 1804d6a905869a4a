#pragma once
/// @file
/// MaskedLinearPlan: the kernels of (masked) linear layers. The non-zero entries of a fixed 0/1
/// mask are covered with rectangles (cover_mask, mask_cover.hpp) so that a masked product only
/// touches the blocks that are not structurally zero.
///
/// MADE sorts its hidden units by degree, which makes every mask a staircase: the plan then holds a
/// few large all-ones blocks (computed straight from W, no masking needed) and thin "partial"
/// blocks along the stair edge, the only place where W ⊙ M is formed (while packing). So
/// about half of the dense FLOPs are skipped and W ⊙ M is never rebuilt in full.

#include <algorithm>
#include <span>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "knead/core/threads.hpp"
#include "knead/core/types.hpp"
#include "knead/linalg/gemm.hpp"
#include "knead/linalg/mask_cover.hpp"
#include "knead/linalg/thin_gemm.hpp"

namespace knead::linalg {

/// The rectangles covering the non-zeros of a mask, in two layouts: `by_rows` (row strips, for
/// y = (W⊙M) x and ∂L/∂W) and `by_cols` (column strips, for ∂L/∂x = (W⊙M)ᵀ g), so that each
/// product has a long inner dimension. A layer without mask is one full block.
class MaskedLinearPlan {
 public:
  MaskedLinearPlan() = default;
  /// Dense layer (out × in).
  MaskedLinearPlan(Index out, Index in) : out_(out), in_(in) {
    by_rows_.push_back({0, out, 0, in, false});
    by_cols_.push_back({0, in, 0, out, false});  // transposed coordinates
    count_offsets();
  }
  /// Masked layer; `mask` holds 0/1 values.
  template <class T>
  explicit MaskedLinearPlan(const Matrix<T>& mask) : out_(mask.rows()), in_(mask.cols()) {
    const Matrix<Index> ones = (mask.array() != T(0)).template cast<Index>();
    by_rows_ = cover_mask(ones);
    by_cols_ = cover_mask(ones.transpose());
    // A thin() product computes only rows with a weight: blocks may cover rows whose mask is all
    // zeros (MADE's first-degree outputs at D = 2, half of its output layer), whose value is the bias.
    std::vector<char> rows_with_weights(static_cast<std::size_t>(out_)),
        cols_with_weights(static_cast<std::size_t>(in_));
    for (Index r = 0; r < out_; ++r) rows_with_weights[std::size_t(r)] = ones.row(r).any();
    for (Index c = 0; c < in_; ++c) cols_with_weights[std::size_t(c)] = ones.col(c).any();
    count_offsets(rows_with_weights, cols_with_weights);
  }

  [[nodiscard]] const std::vector<MaskBlock>& by_rows() const { return by_rows_; }
  [[nodiscard]] const std::vector<MaskBlock>& by_cols() const { return by_cols_; }
  /// The kernel this layer's forward products (y and ∂L/∂W, whose rows are the layer's outputs), or
  /// its input gradients when `transposed` (rows: the inputs), run on block by block, for the kernel
  /// path in force (kernel_path.hpp): knead's AVX-512 or AVX2 kernel (float), or Eigen's. knead's
  /// are faster (about 1.15× on MADE's D=64 hidden 512 layers on AMD Zen 4, AVX-512), fuse the bias
  /// and ReLU into their tiles and read the batch without packing it, but fill their rows 16 at a
  /// time: products with fewer rows are thin(), and Eigen's kernel computes those on `portable`.
  template <class T>
  [[nodiscard]] KernelPath kernel(bool transposed = false) const {
    return rows_of(transposed) >= 16 ? PackedGemm<T>::kernel() : KernelPath::portable;
  }
  /// Whether those products have fewer than 16 rows and run as dot products along k on knead's
  /// kernel path (thin_multiply in thin_gemm.hpp), from the rows of W⊙M (or columns, for input
  /// gradients) with a weight (MADE's D=2 output layer, and its input layer's input gradients).
  template <class T>
  [[nodiscard]] bool thin(bool transposed = false) const {
    return runs_thin<T>(rows_of(transposed));
  }

  /// Multiply–adds per sample of the blocks (what the kernels compute) .
  [[nodiscard]] Index computed_macs() const {
    Index n = 0;
    for (const auto& b : by_rows_) n += b.rows * b.cols;
    return n;
  }

  /// Entries of the packed weights that forward_packed() (`transposed` false: the by_rows() blocks
  /// of W⊙M) or backward_input_packed() (true: the by_cols() blocks of (W⊙M)ᵀ) multiply.
  [[nodiscard]] Index packed_size(bool transposed) const {
    const Index blocks = (transposed ? col_offsets_ : row_offsets_).back();
    return rows_of(transposed) < 16 ? std::max(blocks, out_ * in_) : blocks;  // thin(): W⊙M whole
  }

  /// Packs the blocks of W⊙M (out × in, leading dimension ldw) for forward_packed(), or of (W⊙M)ᵀ
  /// for backward_input_packed() when `transposed`, into `packed` (packed_size(transposed) entries,
  /// aligned as Eigen allocates). Only the kernel's row panels (PackedGemm::mr rows from a block's top)
  /// whose middle falls in `share` of the packed entries, so that threads share the packing of
  /// weights that all of them then read, even when one block holds most of them (an unmasked
  /// layer is a single block).
  template <class T>
  void pack_weights(const T* w, Index ldw, const T* mask, bool transposed, T* packed,
                    detail::Share share = {}) const {
    if (thin<T>(transposed)) {  // by the first share
      // the live rows of W⊙M (or of (W⊙M)ᵀ), one after the other: (i, k) at packed[i·depth + k]
      const std::vector<Index>& live = (transposed ? col_edges_ : row_edges_).live;
      const Index m = Index(live.size()), depth = transposed ? out_ : in_;
      auto entry = [&](Index r, Index c) {  // of W⊙M
        return mask == nullptr || mask[r + c * out_] != T(0) ? w[r + c * ldw] : T(0);
      };
      for (Index i = 0; share.begin <= 0 && i < m; ++i)
        for (Index k = 0; k < depth; ++k)
          packed[i * depth + k] = transposed ? entry(k, live[i]) : entry(live[i], k);
      return;
    }
    const KernelPath kernel = this->kernel<T>(transposed);
    const Index mr = PackedGemm<T>::mr(kernel);
    const auto& blocks = transposed ? by_cols_ : by_rows_;
    const auto& offsets = transposed ? col_offsets_ : row_offsets_;
    double total = 0, before = 0;  // entries of all blocks, of the blocks before this one
    for (const MaskBlock& b : blocks) total += double(b.rows * b.cols);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      // by_cols_ blocks are in transposed coordinates: row = input index, col = output index
      const MaskBlock& b = blocks[i];
      const auto [top, bottom] = panels_in(b.rows, b.cols, before, total, mr, share);
      before += double(b.rows * b.cols);
      if (bottom <= top) continue;
      const MaskBlock in_w = transposed ? MaskBlock{b.col, b.cols, b.row, b.rows, b.partial} : b;
      const T* a = w + in_w.row + in_w.col * ldw;
      Index lda = ldw;
      // a partial block's mask: applied while packing where the kernel's packing does (the AVX2
      // kernel's), else W⊙M is copied out of W first
      const T* m =
          b.partial && PackedGemm<T>::packs_masked(kernel) ? mask + in_w.row + in_w.col * out_ : nullptr;
      if (b.partial && m == nullptr) {
        a = masked_copy(w, ldw, mask, in_w);
        lda = in_w.rows;
      }
      // Eigen packs rows in panels of mr, each depth-major: rows [top, bottom) start at top · depth.
      // Row r of the block is column r of the stored matrix when transposed.
      a += transposed ? top * lda : top;
      if (m != nullptr) m += transposed ? top * out_ : top;
      PackedGemm<T>::pack_lhs(kernel, packed + offsets[i] + top * b.cols, a, lda, bottom - top, b.cols,
                              transposed, m, out_);
    }
  }

  /// y(:, 0..n) = (W⊙M) x + b, then ReLU when `relu`, for W⊙M packed by pack_weights(…, false, …).
  /// The bias and the ReLU are applied by the blocks' products where they can (see Edges): the
  /// output is not swept once more for each.
  template <class T>
  void forward_packed(const T* packed, const T* bias, const T* x, Index ldx, T* y, Index ldy, Index n,
                      bool relu) const {
    product(false, packed, x, ldx, y, ldy, n, Store<T>{true, bias, relu, nullptr, 0});
  }

  /// gx(:, 0..n) = (W⊙M)ᵀ g for (W⊙M)ᵀ packed by pack_weights(…, true, …); with `gate` (in × n,
  /// leading dimension ld_gate: the layer's input, a ReLU's output), gx = 0 where gate ≤ 0, the
  /// gradient through that ReLU. Like forward_packed(), in the blocks' products.
  template <class T>
  void backward_input_packed(const T* packed, const T* g, Index ldg, T* gx, Index ldgx, Index n,
                             const T* gate = nullptr, Index ld_gate = 0) const {
    product(true, packed, g, ldg, gx, ldgx, n, Store<T>{true, nullptr, false, gate, ld_gate});
  }

  /// forward_packed() with the weights packed on the spot (into the thread's scratch).
  template <class T>
  void forward(const T* w, Index ldw, const T* bias, const T* mask, const T* x, Index ldx, T* y, Index ldy,
               Index n, bool relu) const {
    T* packed = KernelScratch<T>::ensure(KernelScratch<T>::local().weights, packed_size(false));
    pack_weights(w, ldw, mask, false, packed);
    forward_packed(packed, bias, x, ldx, y, ldy, n, relu);
  }

  /// backward_input_packed() with the weights packed on the spot: gx(:, 0..n) = (W⊙M)ᵀ g.
  template <class T>
  void backward_input(const T* w, Index ldw, const T* mask, const T* g, Index ldg, T* gx, Index ldgx,
                      Index n) const {
    T* packed = KernelScratch<T>::ensure(KernelScratch<T>::local().weights, packed_size(true));
    pack_weights(w, ldw, mask, true, packed);
    backward_input_packed(packed, g, ldg, gx, ldgx, n);
  }

  /// The units `rows` of the layer on n columns from its first `input_cols` inputs (the others must
  /// not matter: masked out, or zero): y(rows[i], j) = ((W⊙M) x)(rows[i], j) + b(rows[i]), then ReLU
  /// when `relu`, for x (input_cols × n, leading dimension ldx) and y (leading dimension ldy); the
  /// other rows of y are left as they are. The incremental steps of autoregressive sampling: a step
  /// computes a few units (about hidden / (D − 1) a layer, 2 outputs) over the whole batch. For few
  /// rows (runs_thin) those rows of W⊙M are laid out row by row and dotted with each sample's
  /// contiguous input column (thin_multiply), straight into y with bias and ReLU; Eigen's product
  /// packed the batch's inputs anew for every step and layer, and its few-row paths are its slowest.
  template <class T>
  void forward_rows(const T* w, Index ldw, const T* bias, const T* mask, std::span<const Index> rows,
                    Index input_cols, const T* x, Index ldx, T* y, Index ldy, Index n, bool relu) const {
    const Index m = Index(rows.size());
    if (m == 0 || n <= 0) return;
    auto& s = KernelScratch<T>::local();
    T* rows_of_w = KernelScratch<T>::ensure(s.block, m * input_cols);
    const bool thin = runs_thin<T>(m);
    for (Index c = 0; c < input_cols; ++c)
      for (Index r = 0; r < m; ++r) {
        const Index at = rows[std::size_t(r)] + c * out_;
        rows_of_w[thin ? r * input_cols + c : r + c * m] =
            mask == nullptr || mask[at] != T(0) ? w[rows[std::size_t(r)] + c * ldw] : T(0);
      }
    if (thin)
      return thin_multiply(rows_of_w, input_cols, Index(1), m, input_cols, x, ldx, n, y, ldy, rows.data(),
                           Store<T>{true, bias, relu, nullptr, 0});
    // in runs of at most `run` columns, so that the scratch's size does not depend on n (a thread's
    // share of the batch, which can grow from call to call: detail::Balance)
    constexpr Index run = 256;
    T* z = KernelScratch<T>::ensure(s.product, m * run);
    for (Index j0 = 0; j0 < n; j0 += run) {
      const Index width = std::min(run, n - j0);
      std::fill(z, z + m * width, T(0));
      gemm<false, false>(m, width, input_cols, T(1), rows_of_w, m, x + j0 * ldx, ldx, z, m, run);
      for (Index j = 0; j < width; ++j)
        for (Index r = 0; r < m; ++r) {
          const Index row = rows[std::size_t(r)];
          const T v = z[r + j * m] + bias[row];
          y[row + (j0 + j) * ldy] = relu ? std::max(v, T(0)) : v;
        }
    }
  }

  /// gb += Σ_j g(:, j) over the n columns of g (out × n, leading dimension ldg): ∂L/∂b, for the
  /// rows in `share` of the layer's outputs (all by default), each row summed over the batch in order.
  template <class T>
  void backward_bias(const T* g, Index ldg, Index n, T* gb, detail::Share share = {}) const {
    const auto [r0, r1] = share.of(out_, 16);
    for (Index j = 0; j < n; ++j)
      for (Index r = r0; r < r1; ++r) gb[r] += g[r + j * ldg];
  }

  /// Whether backward_weight() reads the layer's input batch as it is (knead's kernels, 64 inputs or
  /// fewer) rather than packed: a sample's inputs then span at most four cache lines, and packing
  /// (a transpose) would cost more than the product gains from it. Wider rows, with a leading
  /// dimension of a large power of two, would map the rows a tile reads to a few cache sets.
  /// (A thin() layer packs what it needs itself.)
  template <class T>
  [[nodiscard]] bool reads_inputs_unpacked() const {
    return (PackedGemm<T>::knead_kernel(kernel<T>()) && in_ <= 64) || thin<T>();
  }

  /// Entries of the batch packed by pack_inputs() for n columns (none when reads_inputs_unpacked()).
  template <class T>
  [[nodiscard]] Index packed_inputs_size(Index n) const {
    return reads_inputs_unpacked<T>() ? 0 : in_ * n;
  }

  /// Packs the layer's input batch x (in × n, leading dimension ldx) transposed, as
  /// backward_weight() multiplies it (slice by slice of the batch), into `packed`
  /// (packed_inputs_size(n) entries). Only the kernel column panels in `share`, so that threads
  /// share the packing of a batch that all of them then read.
  template <class T>
  void pack_inputs(const T* x, Index ldx, Index n, T* packed, detail::Share share = {}) const {
    if (reads_inputs_unpacked<T>()) return;
    const KernelPath kernel = this->kernel<T>();
    const Index nr = PackedGemm<T>::nr(kernel);
    const auto [c0, c1] = share.of(in_, nr);
    if (c1 <= c0) return;
    const Index slice = batch_slice(in_);
    for (Index j0 = 0; j0 < n; j0 += slice) {
      // slice j0 is depth × in_ entries at j0 · in_, in panels of nr input columns
      const Index depth = std::min(slice, n - j0);
      PackedGemm<T>::pack_rhs(kernel, packed + j0 * in_ + c0 * depth, x + j0 * ldx + c0, ldx, depth, c1 - c0,
                              true);
    }
  }

  /// gw += (g xᵀ) ⊙ M over the n columns of g and x, for the rows of the blocks in `share` of the
  /// computed multiply-adds (all by default): threads split a layer's weight gradient this way.
  /// Shares are cut only at multiples of the kernel's row panel (PackedGemm::mr) from a block's top:
  /// the kernel then treats every row alike however the work is split, so the sums come out bit
  /// for bit the same for any split, as from one thread.
  ///
  /// xᵀ is read as it is (reads_inputs_unpacked()) or packed once per slice of the batch for all
  /// blocks (or taken from `packed_x`, by pack_inputs()), in panels of the kernel's nr columns: a
  /// block whose columns do not start and end on panel edges is widened to them and computed into
  /// a scratch, from which only its own columns are added.
  template <class T>
  void backward_weight(const T* mask, const T* g, Index ldg, const T* x, Index ldx, Index n, T* gw,
                       Index ldgw, detail::Share share = {}, const T* packed_x = nullptr) const {
    if (thin<T>()) {  // by the share that holds the middle of the work
      if (share.begin <= 0.5 && 0.5 < share.end)
        thin_weight_gradient(g, ldg, out_, x, ldx, in_, n, mask, gw, ldgw);
      return;
    }
    auto& s = KernelScratch<T>::local();
    const Index slice = batch_slice(in_);
    if (reads_inputs_unpacked<T>()) {
      for (Index j0 = 0; j0 < n; j0 += slice)
        weight_gradient_slice(mask, g + j0 * ldg, ldg, std::min(slice, n - j0), x + j0 * ldx, ldx, gw, ldgw,
                              share);
      return;
    }
    if (packed_x == nullptr) {
      T* packed = KernelScratch<T>::ensure(s.pack_b, in_ * std::min(n, slice));
      for (Index j0 = 0; j0 < n; j0 += slice) {
        const Index depth = std::min(slice, n - j0);
        PackedGemm<T>::pack_rhs(kernel<T>(), packed, x + j0 * ldx, ldx, depth, in_, true);
        weight_gradient_slice(mask, g + j0 * ldg, ldg, depth, packed, 0, gw, ldgw, share);
      }
      return;
    }
    for (Index j0 = 0; j0 < n; j0 += slice)
      weight_gradient_slice(mask, g + j0 * ldg, ldg, std::min(slice, n - j0), packed_x + j0 * in_, 0, gw,
                            ldgw, share);
  }

 private:
  /// Which blocks of a layout are the first to touch all their rows (their products start those
  /// rows: y = b + product, ∂L/∂x = product, without reading the output) and the last (they apply
  /// the ReLU, or its derivative), and the rows left to do apart: those without such a block, or
  /// outside every block; and the rows with weights, which some block covers and, in a masked layer,
  /// the mask has a non-zero in (live), or not (dead).
  struct Edges {
    std::vector<char> first, last;
    std::vector<Index> unstarted, unfinished, live, dead;
  };

  /// c(:, 0..n) = the layer's product (W⊙M packed for it, or (W⊙M)ᵀ when `transposed`) with the
  /// batch b, stored as `store` says (it starts every row): the blocks' products, with the rows they
  /// do not start or finish done apart, or, for a thin() product, its live rows (thin_multiply).
  template <class T>
  void product(bool transposed, const T* packed, const T* b, Index ldb, T* c, Index ldc, Index n,
               const Store<T>& store) const {
    const Edges& edges = transposed ? col_edges_ : row_edges_;
    const Index depth = transposed ? out_ : in_;
    auto start = [&](Index r) { return store.bias != nullptr ? store.bias[r] : T(0); };
    // (each loop over the batch only when it has rows to do: an empty inner loop per column still
    // cost 1–2 % of a small network's pass)
    if (thin<T>(transposed)) {
      for (Index j = 0; !edges.dead.empty() && j < n; ++j)
        for (const Index r : edges.dead) c[r + j * ldc] = store.finish(start(r), r, j);
      const Index m = Index(edges.live.size());
      return thin_multiply(packed, depth, 1, m, depth, b, ldb, n, c, ldc, edges.live.data(), store);
    }
    for (Index j = 0; !edges.unstarted.empty() && j < n; ++j)
      for (const Index r : edges.unstarted) c[r + j * ldc] = start(r);
    multiply_blocks(kernel<T>(transposed), transposed ? by_cols_ : by_rows_,
                    transposed ? col_offsets_ : row_offsets_, edges, packed, b, ldb, depth, c, ldc, n, store);
    const bool finishing = (store.relu || store.gate != nullptr) && !edges.unfinished.empty();
    for (Index j = 0; finishing && j < n; ++j)
      for (const Index r : edges.unfinished) c[r + j * ldc] = store.finish(c[r + j * ldc], r, j);
  }

  /// Rows of the forward products (the layer's outputs), or of the input gradients (its inputs).
  [[nodiscard]] Index rows_of(bool transposed) const { return transposed ? in_ : out_; }

  /// backward_weight() on one slice of `depth` batch columns: x (in_ × depth) as stored with leading
  /// dimension ldx, or, when ldx is 0, xᵀ packed at x.
  template <class T>
  void weight_gradient_slice(const T* mask, const T* g, Index ldg, Index depth, const T* x, Index ldx, T* gw,
                             Index ldgw, detail::Share share) const {
    const KernelPath kernel = this->kernel<T>();
    const bool reads_stored = PackedGemm<T>::reads_lhs_stored(kernel);
    const Index nr = PackedGemm<T>::nr(kernel), mr = PackedGemm<T>::mr(kernel);
    auto& s = KernelScratch<T>::local();
    const double total = double(computed_macs());
    double before = 0;  // multiply-adds of the blocks before this one
    for (const MaskBlock& whole : by_rows_) {
      const auto [first, end] = panels_in(whole.rows, whole.cols, before, total, mr, share);
      before += double(whole.rows * whole.cols);
      if (end <= first) continue;
      const MaskBlock b{whole.row + first, end - first, whole.col, whole.cols, whole.partial};
      // xᵀ(k, c) for the block's columns [c0, c1): at x[c + k·ldx] as stored, or packed in whole
      // panels of nr columns, to which the block is widened
      const bool packed = ldx == 0;
      const Index c0 = packed ? b.col / nr * nr : b.col;
      const Index c1 = packed ? std::min(in_, (b.col + b.cols + nr - 1) / nr * nr) : b.col + b.cols;
      const RhsView<T> rhs =
          packed ? RhsView<T>::packed(x + c0 * depth, depth) : RhsView<T>::stored(x + c0, ldx, 1);
      // g is read where it is when the kernel reads a stored A well (reads_lhs_stored(), whole
      // vectors of 16 rows); otherwise it is packed
      const T* a = g + b.row;
      Index lda = ldg;
      if (!reads_stored || b.rows % 16 != 0) {
        // sized for the whole block, not this share of it: a share can grow from call to call
        // (detail::Balance), and a warm scratch must not grow with it
        T* packed_g = KernelScratch<T>::ensure(s.pack_a, PackedGemm<T>::packed_lhs_size(whole.rows, depth));
        PackedGemm<T>::pack_lhs(kernel, packed_g, g + b.row, ldg, b.rows, depth, false);
        a = packed_g, lda = 0;
      }
      if (!b.partial && c0 == b.col && c1 == b.col + b.cols) {
        PackedGemm<T>::multiply(kernel, gw + b.row + b.col * ldgw, ldgw, a, lda, b.rows, depth, rhs, c1 - c0);
        continue;
      }
      T* p = KernelScratch<T>::ensure(s.product, whole.rows * (c1 - c0));  // the whole block, as above
      std::fill(p, p + b.rows * (c1 - c0), T(0));
      PackedGemm<T>::multiply(kernel, p, b.rows, a, lda, b.rows, depth, rhs, c1 - c0);
      for (Index c = b.col; c < b.col + b.cols; ++c) {
        const T* pc = p + (c - c0) * b.rows;
        T* gc = gw + b.row + c * ldgw;
        if (b.partial) {
          const T* mc = mask + b.row + c * out_;
          for (Index r = 0; r < b.rows; ++r) gc[r] += pc[r] * mc[r];
        } else {
          for (Index r = 0; r < b.rows; ++r) gc[r] += pc[r];
        }
      }
    }
  }

  /// c(:, 0..n) = Σ_blocks A_block · b(block's depth range, :) for the blocks packed at `offsets`
  /// (rows of c = block rows, depth = block columns), on `kernel`, stored as
  /// `store` says (with `start`, the rows no block starts must already hold their start, and the
  /// rows no block finishes are finished by the caller; see Edges). The batch b (depth × n) is
  /// taken a slice of columns at a time, for all blocks. knead's kernels read it as it is; Eigen's
  /// needs it packed, once per slice (Eigen's GEMM would repack it for every block).
  template <class T>
  void multiply_blocks(KernelPath kernel, const std::vector<MaskBlock>& blocks,
                       const std::vector<Index>& offsets, const Edges& edges, const T* packed, const T* b,
                       Index ldb, Index depth, T* c, Index ldc, Index n, const Store<T>& store) const {
    const Index slice = product_slice(depth);
    const bool reads_stored = PackedGemm<T>::knead_kernel(kernel);
    T* packed_b =
        reads_stored ? nullptr
                     : KernelScratch<T>::ensure(KernelScratch<T>::local().pack_b, depth * std::min(n, slice));
    for (Index j0 = 0; j0 < n; j0 += slice) {
      const Index cols = std::min(slice, n - j0);
      if (!reads_stored) PackedGemm<T>::pack_rhs(kernel, packed_b, b + j0 * ldb, ldb, depth, cols);
      for (std::size_t i = 0; i < blocks.size(); ++i) {
        const MaskBlock& k = blocks[i];
        // the first block over its rows starts them, the last one finishes them
        const bool starts = store.start && edges.first[i], finishes = edges.last[i];
        const Store<T> block{
            starts, starts && store.bias != nullptr ? store.bias + k.row : nullptr, finishes && store.relu,
            finishes && store.gate != nullptr ? store.gate + k.row + j0 * store.ld_gate : nullptr,
            store.ld_gate};
        const RhsView<T> rhs = reads_stored ? RhsView<T>::stored(b + k.col + j0 * ldb, 1, ldb)
                                            : RhsView<T>::packed(packed_b, depth, k.col);
        PackedGemm<T>::multiply(kernel, c + k.row + j0 * ldc, ldc, packed + offsets[i], 0, k.rows, k.cols,
                                rhs, cols, block);
      }
    }
  }

  /// Columns of the batch packed at a time for a layer with `depth` inputs: about 512 KB of floats,
  /// which stay in L2 while every block of weights is multiplied by them. backward_weight() sums
  /// the batch slice by slice from its first column on one thread, whatever the thread count.
  static Index batch_slice(Index depth) {
    return std::clamp<Index>(131072 / std::max<Index>(depth, 1), 16, 512);
  }
  /// batch_slice() for the products whose columns threads share (outputs, input gradients):
  /// a multiple of slice_step, so that a column's bits do not depend on where its thread's share
  /// begins.
  static Index product_slice(Index depth) { return batch_slice(depth) / slice_step * slice_step; }

  /// The rows [top, bottom) of a rows × cols block, starting at `before` of `total` entries, whose
  /// mr-row panels have their middle entry in `share`: a contiguous run of whole panels.
  static std::pair<Index, Index> panels_in(Index rows, Index cols, double before, double total, Index mr,
                                           detail::Share share) {
    const Index panels = (rows + mr - 1) / mr;
    auto mine = [&](Index k) {
      const double middle =
          before + (double(k * mr) + double(std::min(mr, rows - k * mr)) / 2) * double(cols);
      return (share.begin <= 0 || middle >= share.begin * total) &&
             (share.end >= 1 || middle < share.end * total);
    };
    Index k0 = 0;
    while (k0 < panels && !mine(k0)) ++k0;
    Index k1 = k0;
    while (k1 < panels && mine(k1)) ++k1;
    return {k0 * mr, std::min(rows, k1 * mr)};
  }

  /// W⊙M restricted to block b, into the thread's scratch (b.rows × b.cols, column-major).
  template <class T>
  const T* masked_copy(const T* w, Index ldw, const T* mask, const MaskBlock& b) const {
    auto& s = KernelScratch<T>::local();
    T* p = KernelScratch<T>::ensure(s.block, b.rows * b.cols);
    for (Index c = 0; c < b.cols; ++c)
      for (Index r = 0; r < b.rows; ++r)
        p[r + c * b.rows] =
            mask[b.row + r + (b.col + c) * out_] != T(0) ? w[b.row + r + (b.col + c) * ldw] : T(0);
    return p;
  }

  /// (`with_weights`: which rows have a non-zero in the mask; empty for an unmasked layer.)
  static Edges find_edges(const std::vector<MaskBlock>& blocks, Index rows,
                          const std::vector<char>& with_weights) {
    std::vector<Index> first(std::size_t(rows), -1), last(std::size_t(rows), -1);
    for (std::size_t i = 0; i < blocks.size(); ++i)
      for (Index r = blocks[i].row; r < blocks[i].row + blocks[i].rows; ++r) {
        if (first[std::size_t(r)] < 0) first[std::size_t(r)] = Index(i);
        last[std::size_t(r)] = Index(i);
      }
    Edges e;
    e.first.assign(blocks.size(), 1);
    e.last.assign(blocks.size(), 1);
    for (std::size_t i = 0; i < blocks.size(); ++i)
      for (Index r = blocks[i].row; r < blocks[i].row + blocks[i].rows; ++r) {
        if (first[std::size_t(r)] != Index(i)) e.first[i] = 0;
        if (last[std::size_t(r)] != Index(i)) e.last[i] = 0;
      }
    for (Index r = 0; r < rows; ++r) {
      const Index f = first[std::size_t(r)], l = last[std::size_t(r)];
      if (f < 0 || e.first[std::size_t(f)] == 0) e.unstarted.push_back(r);
      if (l < 0 || e.last[std::size_t(l)] == 0) e.unfinished.push_back(r);
      const bool weighted = with_weights.empty() || with_weights[std::size_t(r)] != 0;
      (f >= 0 && weighted ? e.live : e.dead).push_back(r);
    }
    return e;
  }

  /// Where each block starts in the packed weights: at multiples of 16 entries (64 bytes or more,
  /// the alignment of Eigen's micro-kernel's loads), each block sized for any kernel
  /// (PackedGemm::packed_lhs_size: knead's kernels round rows up to 16). Also finds the
  /// blocks that start and finish their rows, and the live rows of each layout (find_edges).
  void count_offsets(const std::vector<char>& rows_with_weights = {},
                     const std::vector<char>& cols_with_weights = {}) {
    row_edges_ = find_edges(by_rows_, out_, rows_with_weights);
    col_edges_ = find_edges(by_cols_, in_, cols_with_weights);
    for (auto [blocks, offsets] :
         {std::pair{&by_rows_, &row_offsets_}, std::pair{&by_cols_, &col_offsets_}}) {
      offsets->assign(1, 0);
      for (const MaskBlock& b : *blocks)
        offsets->push_back(offsets->back() + PackedGemm<float>::packed_lhs_size(b.rows, b.cols));
    }
  }

  Index out_ = 0, in_ = 0;
  std::vector<MaskBlock> by_rows_, by_cols_;
  std::vector<Index> row_offsets_{0}, col_offsets_{0};  // block starts in the packed weights
  Edges row_edges_, col_edges_;  // blocks that start / finish their rows, in each layout
};

}  // namespace knead::linalg
