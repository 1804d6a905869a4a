#pragma once
/// @file
/// Kernels of (masked) linear layers: a GEMM on raw pointers that reuses thread-local packing
/// buffers (no heap allocation once warm), and MaskedLinearPlan, which covers the non-zero entries
/// of a fixed 0/1 mask with rectangles so that a masked product only touches the blocks that are
/// not structurally zero.
///
/// MADE sorts its hidden units by degree, which makes every mask a staircase: the plan then holds a
/// few large all-ones blocks (computed straight from W, no masking needed) and thin "partial"
/// blocks along the stair edge, the only place where W ⊙ M is formed (into a small scratch). So
/// about half of the dense FLOPs are skipped and W ⊙ M is never rebuilt in full.

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "knead/core/types.hpp"

namespace knead::detail {

/// Per-thread scratch for the GEMM packing buffers and the masked-block copies; grows, never shrinks.
template <class T>
struct KernelScratch {
  using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;
  Buffer pack_a, pack_b, block, product;
  static KernelScratch& local() {
    thread_local KernelScratch scratch;
    return scratch;
  }
  static T* ensure(Buffer& b, Index size) {
    if (Index(b.size()) < size) b.resize(std::size_t(size));
    return b.data();
  }
};

/// Eigen's level-3 blocking over the thread-local packing buffers (Eigen's own would allocate
/// them on the heap for every large product).
template <class T>
class ScratchBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  ScratchBlocking(Index m, Index n, Index k) {
    this->m_mc = m;
    this->m_nc = n;
    this->m_kc = k;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(this->m_kc, this->m_mc, this->m_nc,
                                                                 Index(1));
    auto& s = KernelScratch<T>::local();
    this->m_blockA = KernelScratch<T>::ensure(s.pack_a, this->m_kc * this->m_mc);
    this->m_blockB = KernelScratch<T>::ensure(s.pack_b, this->m_kc * this->m_nc);
  }
};

/// C += alpha · op(A) · op(B), all column-major with leading dimensions; op(A) is m × k (A is
/// stored k × m when TransA), op(B) is k × n (B stored n × k when TransB). Uses Eigen's
/// cache-blocked, SIMD micro-kernel (gebp).
template <bool TransA, bool TransB, class T>
void gemm(Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T* c, Index ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  using namespace Eigen;
  ScratchBlocking<T> blocking(m, n, k);
  internal::general_matrix_matrix_product<Index, T, TransA ? RowMajor : ColMajor, false, T,
                                          TransB ? RowMajor : ColMajor, false, ColMajor, 1>::run(m, n, k, a,
                                                                                                 lda, b, ldb,
                                                                                                 c, 1, ldc,
                                                                                                 alpha,
                                                                                                 blocking,
                                                                                                 nullptr);
}

/// A rectangle of a weight matrix: all ones in the mask (full), or mixed (partial).
struct MaskBlock {
  Index row, rows, col, cols;
  bool partial;
};

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
  }
  /// Masked layer; `mask` holds 0/1 values.
  template <class T>
  explicit MaskedLinearPlan(const Matrix<T>& mask) : out_(mask.rows()), in_(mask.cols()) {
    Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic> counts(mask.rows() + 1, mask.cols());
    for (Index c = 0; c < mask.cols(); ++c) {
      counts(0, c) = 0;
      for (Index r = 0; r < mask.rows(); ++r) counts(r + 1, c) = counts(r, c) + (mask(r, c) != T(0) ? 1 : 0);
    }
    strips(counts, 0, out_, 0, in_, by_rows_);
    Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic> counts_t(mask.cols() + 1, mask.rows());
    for (Index r = 0; r < mask.rows(); ++r) {
      counts_t(0, r) = 0;
      for (Index c = 0; c < mask.cols(); ++c)
        counts_t(c + 1, r) = counts_t(c, r) + (mask(r, c) != T(0) ? 1 : 0);
    }
    strips(counts_t, 0, in_, 0, out_, by_cols_);
  }

  [[nodiscard]] const std::vector<MaskBlock>& by_rows() const { return by_rows_; }
  [[nodiscard]] const std::vector<MaskBlock>& by_cols() const { return by_cols_; }
  /// Multiply–adds per sample of the blocks (what the kernels compute) .
  [[nodiscard]] Index computed_macs() const {
    Index n = 0;
    for (const auto& b : by_rows_) n += b.rows * b.cols;
    return n;
  }

  /// y(:, 0..n) = (W⊙M) x + b, then ReLU when `relu`. W is out × in (leading dimension ldw).
  template <class T>
  void forward(const T* w, Index ldw, const T* bias, const T* mask, const T* x, Index ldx, T* y, Index ldy,
               Index n, bool relu) const {
    for (Index j = 0; j < n; ++j) std::copy(bias, bias + out_, y + j * ldy);
    for (const MaskBlock& b : by_rows_) {
      const T* wb = w + b.row + b.col * ldw;
      Index ld = ldw;
      if (b.partial) {
        wb = masked_copy(w, ldw, mask, b);
        ld = b.rows;
      }
      gemm<false, false>(b.rows, n, b.cols, T(1), wb, ld, x + b.col, ldx, y + b.row, ldy);
    }
    if (relu)
      for (Index j = 0; j < n; ++j)
        for (T *p = y + j * ldy, *e = p + out_; p != e; ++p) *p = std::max(*p, T(0));
  }

  /// gx(:, 0..n) = (W⊙M)ᵀ g.
  template <class T>
  void backward_input(const T* w, Index ldw, const T* mask, const T* g, Index ldg, T* gx, Index ldgx,
                      Index n) const {
    for (Index j = 0; j < n; ++j) std::fill(gx + j * ldgx, gx + j * ldgx + in_, T(0));
    for (const MaskBlock& b : by_cols_) {
      // by_cols_ blocks are in transposed coordinates: row = input index, col = output index
      const MaskBlock wblock{b.col, b.cols, b.row, b.rows, b.partial};
      const T* wb = w + wblock.row + wblock.col * ldw;
      Index ld = ldw;
      if (b.partial) {
        wb = masked_copy(w, ldw, mask, wblock);
        ld = wblock.rows;
      }
      gemm<true, false>(wblock.cols, n, wblock.rows, T(1), wb, ld, g + wblock.row, ldg, gx + wblock.col,
                        ldgx);
    }
  }

  /// gw += (g xᵀ) ⊙ M over the n columns of g and x.
  template <class T>
  void backward_weight(const T* mask, const T* g, Index ldg, const T* x, Index ldx, Index n, T* gw,
                       Index ldgw) const {
    for (const MaskBlock& b : by_rows_) {
      if (!b.partial) {
        gemm<false, true>(b.rows, b.cols, n, T(1), g + b.row, ldg, x + b.col, ldx, gw + b.row + b.col * ldgw,
                          ldgw);
        continue;
      }
      auto& s = KernelScratch<T>::local();
      T* p = KernelScratch<T>::ensure(s.product, b.rows * b.cols);
      std::fill(p, p + b.rows * b.cols, T(0));
      gemm<false, true>(b.rows, b.cols, n, T(1), g + b.row, ldg, x + b.col, ldx, p, b.rows);
      for (Index c = 0; c < b.cols; ++c)
        for (Index r = 0; r < b.rows; ++r)
          gw[b.row + r + (b.col + c) * ldgw] += p[r + c * b.rows] * mask[b.row + r + (b.col + c) * out_];
    }
  }

 private:
  /// Smallest partial block height: below it the stair edge is covered by masked copies.
  static constexpr Index min_partial = 16;

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

  /// Covers rows [r0, r1) × cols [c0, c1) of the mask whose per-column prefix counts are `counts`:
  /// consecutive columns that are all ones (or all zeros) over the strip form one full block (or
  /// nothing); runs of mixed columns are split in half by rows until thin, then kept as partial.
  static void strips(const Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic>& counts, Index r0, Index r1,
                     Index c0, Index c1, std::vector<MaskBlock>& out) {
    const Index h = r1 - r0;
    if (h <= 0 || c1 <= c0) return;
    auto kind = [&](Index c) {
      const Index k = counts(r1, c) - counts(r0, c);
      return k == 0 ? 0 : (k == h ? 1 : 2);
    };
    Index start = c0;
    int run = kind(c0);
    for (Index c = c0 + 1; c <= c1; ++c) {
      const int k = c < c1 ? kind(c) : -1;
      if (k == run) continue;
      if (run == 1 || (run == 2 && h <= min_partial)) {
        out.push_back({r0, h, start, c - start, run == 2});
      } else if (run == 2) {
        const Index mid = r0 + (h / 2 + 7) / 8 * 8;  // split at a multiple of 8 (SIMD-friendly)
        strips(counts, r0, std::min(mid, r1), start, c, out);
        strips(counts, std::min(mid, r1), r1, start, c, out);
      }
      start = c;
      run = k;
    }
  }

  Index out_ = 0, in_ = 0;
  std::vector<MaskBlock> by_rows_, by_cols_;
};

}  // namespace knead::detail
