#pragma once
/// @file
/// Products with fewer than 16 rows on knead's AVX-512 kernel, computed transposed.
///
/// The kernel fills 16 rows of C at a time, and Eigen's handles a handful of rows on its slowest
/// paths, with the batch packed for each call: MADE's D=2 output layer (2 of its 4 rows used) ran
/// below 25 GFLOP/s. These products have a long side, the batch, so they are computed as
/// Cᵀ = Bᵀ Aᵀ, with the batch as the rows: knead's kernel then fills its tiles, and the few rows of
/// C become a tile's columns.

#include <algorithm>

#include "knead/core/types.hpp"
#include "knead/nn/gemm.hpp"

namespace knead::detail {

/// C (m × n, leading dimension ldc) = or += A·X for a thin A (m × depth, m < 16, entry (i, k) at
/// a[i·a_row + k·a_col]) and a batch X (depth × n, column-major, leading dimension ldx), stored as
/// `store` says, row i of A·X into row rows[i] of C (row i when `rows` is null; bias and gate are
/// indexed the same way); computed as Cᵀ = Xᵀ Aᵀ, a slice of the batch at a time: Xᵀ packed (a transpose),
/// Aᵀ read where it is, Cᵀ into the thread's scratch and then written into C. float on AVX-512 only
/// (PackedGemm::own_kernel_available()).
template <class T>
void thin_multiply(const T* a, Index a_row, Index a_col, Index m, Index depth, const T* x, Index ldx, Index n,
                   T* c, Index ldc, const Index* rows, const Store<T>& store) {
  auto& s = KernelScratch<T>::local();
  constexpr Index slice = 256;
  T* packed_x = KernelScratch<T>::ensure(s.pack_a, PackedGemm<T>::packed_lhs_size(slice, depth));
  T* ct = KernelScratch<T>::ensure(s.product, slice * m);
  for (Index j0 = 0; j0 < n; j0 += slice) {
    const Index cols = std::min(slice, n - j0);
    // Xᵀ (cols × depth) is the transpose of the column-major X
    PackedGemm<T>::pack_lhs(true, packed_x, x + j0 * ldx, ldx, cols, depth, true);
    // Aᵀ (depth × m): entry (k, i) = A(i, k)
    PackedGemm<T>::multiply(true, ct, cols, packed_x, 0, cols, depth, RhsView<T>::stored(a, a_col, a_row), m,
                            Store<T>{true, nullptr, false, nullptr, 0});
    for (Index j = 0; j < cols; ++j) {
      T* cj = c + (j0 + j) * ldc;
      for (Index i = 0; i < m; ++i) {
        const Index r = rows == nullptr ? i : rows[i];
        const T v = ct[j + i * cols] + (!store.start ? cj[r] : store.bias != nullptr ? store.bias[r] : T(0));
        cj[r] = store.finish(v, r, j0 + j);
      }
    }
  }
}

/// G_W (m × in, leading dimension ldgw) += (G Xᵀ) ⊙ M for a thin G (m × n, m < 16, leading dimension
/// ldg) and a batch X (in × n, leading dimension ldx); `mask` (m × in, column-major) may be null.
/// Computed as (G Xᵀ)ᵀ = X Gᵀ: X read where it is when `in` is a multiple of 16 (whole vectors),
/// else packed, Gᵀ read where it is. float on AVX-512 only.
template <class T>
void thin_weight_gradient(const T* g, Index ldg, Index m, const T* x, Index ldx, Index in, Index n,
                          const T* mask, T* gw, Index ldgw) {
  auto& s = KernelScratch<T>::local();
  T* ct = KernelScratch<T>::ensure(s.product, in * m);
  const bool stored = in % 16 == 0;
  constexpr Index slice = 512;
  for (Index j0 = 0; j0 < n; j0 += slice) {
    const Index depth = std::min(slice, n - j0);
    const T* a = x + j0 * ldx;
    Index lda = ldx;
    if (!stored) {
      T* packed = KernelScratch<T>::ensure(s.pack_b, PackedGemm<T>::packed_lhs_size(in, depth));
      PackedGemm<T>::pack_lhs(true, packed, a, ldx, in, depth, false);
      a = packed, lda = 0;
    }
    // Gᵀ (depth × m): entry (k, i) = G(i, j0 + k)
    PackedGemm<T>::multiply(true, ct, in, a, lda, in, depth, RhsView<T>::stored(g + j0 * ldg, ldg, 1), m,
                            Store<T>{j0 == 0, nullptr, false, nullptr, 0});
  }
  for (Index c = 0; c < in; ++c)
    for (Index i = 0; i < m; ++i)
      gw[i + c * ldgw] += mask == nullptr ? ct[c + i * in] : ct[c + i * in] * mask[i + c * m];
}

}  // namespace knead::detail
