#pragma once
/// @file
/// What knead's float kernels (Avx512Sgemm, Avx2Sgemm) share: the layouts of their packed operands
/// (PanelLayout, with scalar packing routines), B as they read it (RhsView) and how they store C
/// (Store).
///
/// Layouts. A (rows × depth) is packed in panels of 64 rows, the last one rounded up to a multiple of
/// 16 rows with zeros; a panel of h rows holds entry (i, k) at k·h + i. B (depth × cols) is read
/// where it is stored (RhsView::stored) or packed in panels of 6 columns (the last one narrower),
/// a panel of w columns holding (k, j) at k·w + j, so that a depth range of B is a plain offset into
/// every panel. The AVX-512 kernel reads A in this layout; the AVX2 kernel holds each of these panels
/// as sub-panels of 16 rows at the same offsets (Avx2Sgemm::pack_lhs), so A is packed for the kernel
/// that multiplies it. Both read B in this layout.

#include <algorithm>

#include "knead/core/types.hpp"

namespace knead::linalg {

/// B (depth × cols) as a GEMM micro-kernel reads it: packed by the kernel's pack_rhs() (all
/// `full_depth` rows of it; the product reads rows first .. first + depth), or, for knead's kernel
/// only, as stored: entry (k, j) at data[k·k_stride + j·col_stride].
template <class T>
struct RhsView {
  const T* data = nullptr;
  Index full_depth = 0, first = 0;     // packed
  Index k_stride = 0, col_stride = 0;  // stored
  static RhsView packed(const T* data, Index full_depth, Index first = 0) {
    return {data, full_depth, first, 0, 0};
  }
  static RhsView stored(const T* data, Index k_stride, Index col_stride) {
    return {data, 0, 0, k_stride, col_stride};
  }
  [[nodiscard]] bool is_packed() const { return full_depth > 0; }
};

/// How a product C (rows × cols) = or += A·B is stored: C += A·B by default; with `start`, C's old
/// values are not read: C = A·B + bias (one entry per row; none when bias is null). Then, with
/// `relu`, C = max(C, 0); with `gate` (rows × cols, leading dimension ld_gate), C = 0 where
/// gate ≤ 0 (the derivative of a ReLU whose output is `gate`). So a layer's output or input
/// gradient is written in the product's own pass instead of more passes over it.
template <class T>
struct Store {
  bool start = false;
  const T* bias = nullptr;
  bool relu = false;
  const T* gate = nullptr;
  Index ld_gate = 0;

  /// Entry (row, col) of C after the ReLU or the gate (the scalar form of what the tiles do).
  [[nodiscard]] T finish(T v, Index row, Index col) const {
    if (relu) return std::max(v, T(0));
    if (gate != nullptr && !(gate[row + col * ld_gate] > T(0))) return T(0);
    return v;
  }
};

/// The packed layouts of knead's float kernels, and their scalar packing routines (the AVX-512
/// kernel has faster ones of its own that write the same entries).
struct PanelLayout {
  static constexpr Index mr = 64;        ///< rows of a full panel of A
  static constexpr Index nr = 6;         ///< columns of a panel of B (and of a tile)
  static constexpr Index row_step = 16;  ///< the last panel of A is rounded up to this

  /// Rows of a packed panel of h rows: h rounded up to whole 16-float vectors.
  static constexpr Index padded_rows(Index h) { return (h + row_step - 1) / row_step * row_step; }

  /// Entries of A packed.
  static constexpr Index packed_lhs_size(Index rows, Index depth) { return padded_rows(rows) * depth; }

  /// Packs A (rows × depth; column-major at a with leading dimension lda, or, when `transposed`,
  /// A = Sᵀ for S column-major depth × rows at a).
  static void pack_lhs(float* packed, const float* a, Index lda, Index rows, Index depth, bool transposed) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0), padded = padded_rows(h);
      float* panel = packed + p0 * depth;
      if (!transposed) {
        for (Index k = 0; k < depth; ++k) {
          const float* src = a + p0 + k * lda;
          float* dst = panel + k * padded;
          std::copy(src, src + h, dst);
          std::fill(dst + h, dst + padded, 0.0f);
        }
      } else {
        // A(i, k) = S(k, i) = a[k + i·lda]: read S's columns contiguously
        for (Index i = 0; i < h; ++i) {
          const float* src = a + (p0 + i) * lda;
          for (Index k = 0; k < depth; ++k) panel[k * padded + i] = src[k];
        }
        for (Index k = 0; k < depth; ++k)
          std::fill(panel + k * padded + h, panel + k * padded + padded, 0.0f);
      }
    }
  }

  /// Packs B (depth × cols; column-major at b with leading dimension ldb, or, when `transposed`,
  /// B = Sᵀ for S column-major cols × depth at b) into depth · cols entries.
  static void pack_rhs(float* packed, const float* b, Index ldb, Index depth, Index cols, bool transposed) {
    for (Index q0 = 0; q0 < cols; q0 += nr) {
      const Index w = std::min(nr, cols - q0);
      float* panel = packed + q0 * depth;
      if (!transposed) {
        const float* src = b + q0 * ldb;
        if (w == nr) {  // the full panel with a constant width, which the compiler unrolls
          for (Index k = 0; k < depth; ++k)
            for (Index j = 0; j < nr; ++j) panel[k * nr + j] = src[k + j * ldb];
        } else {
          for (Index k = 0; k < depth; ++k)
            for (Index j = 0; j < w; ++j) panel[k * w + j] = src[k + j * ldb];
        }
      } else {
        // B(k, j) = S(j, k) = b[j + k·ldb]
        for (Index k = 0; k < depth; ++k)
          for (Index j = 0; j < w; ++j) panel[k * w + j] = b[q0 + j + k * ldb];
      }
    }
  }
};

}  // namespace knead::linalg
