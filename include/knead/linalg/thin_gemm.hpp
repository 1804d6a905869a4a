#pragma once
/// @file
/// Products with fewer than 16 rows, on AVX-512 (float).
///
/// The kernel fills 16 rows of C at a time, and Eigen's handles a handful of rows on its slowest
/// paths, with the batch packed for each call: MADE's D=2 output layer (2 of its 4 rows used) ran
/// below 25 GFLOP/s. These products have a long side, the batch.
///
/// thin_multiply (A·X, a layer's few outputs): each sample's column of X is contiguous, so the
/// dot products of A's rows with it are computed along k in vectors of 16, for 8 samples at a time,
/// and 16 such vectors are then summed into one vector of their 16 totals (a tree of shuffles).
/// Computing it as Cᵀ = Xᵀ Aᵀ on the kernel instead first transposed X, which with the scattered
/// results cost three times the products (12 % of a D=2 hidden 64 MAF's density pass).
/// thin_weight_gradient (G Xᵀ, summed over the batch) computes its transpose X Gᵀ, a sample at a
/// time: each sample adds its column of X times its few entries of G into the sums.

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/linalg/gemm.hpp"

namespace knead::linalg {

#if KNEAD_HAS_AVX512_SGEMM
/// sums[t] = the sum of the 16 entries of v[t]. Pairs are interleaved and added, then pairs of
/// pairs, then 128-bit lanes, so that each level halves the vectors. (Masked forms with every lane
/// on, as in Avx512Sgemm::transpose16: the plain ones trip GCC 12's -Wmaybe-uninitialized.)
KNEAD_AVX512 inline void sum_each(const __m512 (&v)[16], float* sums) {
  constexpr __mmask16 all = 0xFFFF;
  __m512 s[8], u[4], w[2];
  for (int p = 0; p < 8; ++p)  // in each 128-bit lane: v[2p]'s two pair sums, v[2p+1]'s, interleaved
    s[p] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, v[2 * p], v[2 * p + 1]),
                         _mm512_maskz_unpackhi_ps(all, v[2 * p], v[2 * p + 1]));
  for (int q = 0; q < 4; ++q)  // in each 128-bit lane: the lane's sums of v[4q .. 4q + 3]
    u[q] = _mm512_add_ps(_mm512_maskz_shuffle_ps(all, s[2 * q], s[2 * q + 1], 0x44),
                         _mm512_maskz_shuffle_ps(all, s[2 * q], s[2 * q + 1], 0xEE));
  for (int r = 0; r < 2; ++r)  // lanes 0, 1 from u[2r], 2, 3 from u[2r + 1]: each a half's sums
    w[r] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, u[2 * r], u[2 * r + 1], 0x88),
                         _mm512_maskz_shuffle_f32x4(all, u[2 * r], u[2 * r + 1], 0xDD));
  _mm512_storeu_ps(sums, _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, w[0], w[1], 0x88),
                                       _mm512_maskz_shuffle_f32x4(all, w[0], w[1], 0xDD)));
}

/// thin_multiply() for A's rows contiguous (row i at a + i·depth): rows two at a time, 8 samples
/// at a time, the 16 dot products in 16 vectors over k. A sample's sums do not depend on which
/// block of 8 it falls in (a short block repeats its last sample), nor on the row's partner: a
/// product comes out the same however the batch is split among calls or threads.
KNEAD_AVX512 inline void thin_rows_avx512(const float* a, Index m, Index depth, const float* x, Index ldx,
                                          Index n, float* c, Index ldc, const Index* rows,
                                          const Store<float>& store) {
  constexpr Index block = 8;
  const Index whole = depth / 16 * 16;
  const auto tail = __mmask16((1u << (depth - whole)) - 1u);
  alignas(64) float sums[2 * block];
  for (Index j0 = 0; j0 < n; j0 += block) {
    const Index count = std::min(block, n - j0);
    const float* xj[block];
    for (Index j = 0; j < block; ++j) xj[j] = x + (j0 + std::min(j, count - 1)) * ldx;
    for (Index i0 = 0; i0 < m; i0 += 2) {
      const Index pair = std::min<Index>(2, m - i0);
      const float* a0 = a + i0 * depth;
      const float* a1 = a0 + (pair - 1) * depth;  // a single last row pairs with itself
      __m512 acc[2 * block];
      for (auto& v : acc) v = _mm512_setzero_ps();
      for (Index k = 0; k < depth; k += 16) {
        const __mmask16 live = k < whole ? __mmask16(0xffff) : tail;
        const __m512 w0 = _mm512_maskz_loadu_ps(live, a0 + k), w1 = _mm512_maskz_loadu_ps(live, a1 + k);
        for (Index j = 0; j < block; ++j) {
          const __m512 xk = _mm512_maskz_loadu_ps(live, xj[j] + k);
          acc[j] = _mm512_fmadd_ps(w0, xk, acc[j]);
          acc[block + j] = _mm512_fmadd_ps(w1, xk, acc[block + j]);
        }
      }
      sum_each(acc, sums);  // sums[r·8 + j]: row i0 + r, sample j0 + j
      for (Index r = 0; r < pair; ++r) {
        const Index row = rows == nullptr ? i0 + r : rows[i0 + r];
        const float bias = store.bias != nullptr ? store.bias[row] : 0.0f;
        for (Index j = 0; j < count; ++j) {
          float& out = c[row + (j0 + j) * ldc];  // C = bias + A·X (start), or C + A·X
          out = store.finish(sums[r * block + j] + (store.start ? bias : out), row, j0 + j);
        }
      }
    }
  }
}
#endif

/// Whether a product with `rows` rows runs on thin_multiply: fewer than 16 (knead's kernel fills
/// 16 rows at a time), float on AVX-512. The one rule for MaskedLinearPlan's layers and MADE's
/// incremental steps.
template <class T>
[[nodiscard]] bool runs_thin(Index rows) {
  return rows < 16 && PackedGemm<T>::own_kernel_available();
}

/// C (m × n, leading dimension ldc) = or += A·X for a thin A (m × depth, m < 16, entry (i, k) at
/// a[i·a_row + k·a_col]) and a batch X (depth × n, column-major, leading dimension ldx), stored as
/// `store` says, row i of A·X into row rows[i] of C (row i when `rows` is null; bias and gate are
/// indexed the same way). A is read where it is when its rows are contiguous (a_col = 1, a_row =
/// depth: how MaskedLinearPlan packs a thin layer), else copied so. float on AVX-512 only
/// (PackedGemm::own_kernel_available()).
template <class T>
void thin_multiply([[maybe_unused]] const T* a, [[maybe_unused]] Index a_row, [[maybe_unused]] Index a_col,
                   [[maybe_unused]] Index m, [[maybe_unused]] Index depth, [[maybe_unused]] const T* x,
                   [[maybe_unused]] Index ldx, [[maybe_unused]] Index n, [[maybe_unused]] T* c,
                   [[maybe_unused]] Index ldc, [[maybe_unused]] const Index* rows,
                   [[maybe_unused]] const Store<T>& store) {  // (unused without the AVX-512 kernel)
#if KNEAD_HAS_AVX512_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (m <= 0 || n <= 0) return;
    if (a_col != 1 || a_row != depth) {
      auto& s = KernelScratch<T>::local();
      T* rows_of_a = KernelScratch<T>::ensure(s.block, m * depth);
      for (Index i = 0; i < m; ++i)
        for (Index k = 0; k < depth; ++k) rows_of_a[i * depth + k] = a[i * a_row + k * a_col];
      a = rows_of_a;
    }
    return thin_rows_avx512(a, m, depth, x, ldx, n, c, ldc, rows, store);
  }
#endif
  detail::fail<std::logic_error>("thin_multiply", "runs on knead's AVX-512 float kernel only");
}

#if KNEAD_HAS_AVX512_SGEMM
/// ct(:, 0..M) += X Gᵀ for M rows of G (ct: in × M, leading dimension ldct): for each block of 64
/// rows of X, the 4 × M sums stay in registers over 8 samples at a time, each sample's column of X
/// read once (4 vectors) for M fused multiply-adds; each sum is one chain over the samples in order.
/// The samples' columns are walked in order, 8 at a time for all the row blocks (32 KB for a
/// 512-row X, with the next 8 prefetched), instead of the general kernel's panels of 64 rows over
/// the whole batch, which read X at its leading dimension's stride (2 KB) and ran at 25 GFLOP/s
/// (1 % of a D=2 hidden 512 MAF's train step); this runs 1.5× (warm) to 2.2× (cold caches) faster.
template <int M>
KNEAD_AVX512 void thin_gradient_sums(const float* g, Index ldg, const float* x, Index ldx, Index in, Index n,
                                     float* ct, Index ldct) {
  constexpr Index samples = 8;
  for (Index k0 = 0; k0 < n; k0 += samples) {
    const Index k1 = std::min(n, k0 + samples);
    const bool ahead = k1 + samples <= n;  // (prefetch only within X)
    for (Index r0 = 0; r0 < in; r0 += 64) {
      __mmask16 live[4];
      for (int r = 0; r < 4; ++r)
        live[r] = __mmask16((1u << std::clamp<Index>(in - r0 - 16 * r, 0, 16)) - 1u);
      __m512 acc[4][M];
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < 4; ++r) acc[r][i] = _mm512_maskz_loadu_ps(live[r], ct + r0 + 16 * r + i * ldct);
      for (Index k = k0; k < k1; ++k) {
        const float* xk = x + r0 + k * ldx;
        __m512 xv[4];
        for (int r = 0; r < 4; ++r) {
          xv[r] = _mm512_maskz_loadu_ps(live[r], xk + 16 * r);
          if (ahead && live[r] != 0) __builtin_prefetch(xk + 16 * r + samples * ldx);
        }
        for (int i = 0; i < M; ++i) {
          const __m512 gi = _mm512_set1_ps(g[i + k * ldg]);
          for (int r = 0; r < 4; ++r) acc[r][i] = _mm512_fmadd_ps(xv[r], gi, acc[r][i]);
        }
      }
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < 4; ++r) _mm512_mask_storeu_ps(ct + r0 + 16 * r + i * ldct, live[r], acc[r][i]);
    }
  }
}
#endif

/// G_W (m × in, leading dimension ldgw) += (G Xᵀ) ⊙ M for a thin G (m × n, m < 16, leading dimension
/// ldg) and a batch X (in × n, leading dimension ldx); `mask` (m × in, column-major) may be null.
/// Computed as (G Xᵀ)ᵀ = X Gᵀ by thin_gradient_sums, up to 4 rows of G at a time, into a scratch.
/// float on AVX-512 only.
template <class T>
void thin_weight_gradient([[maybe_unused]] const T* g, [[maybe_unused]] Index ldg, [[maybe_unused]] Index m,
                          [[maybe_unused]] const T* x, [[maybe_unused]] Index ldx, [[maybe_unused]] Index in,
                          [[maybe_unused]] Index n, [[maybe_unused]] const T* mask, [[maybe_unused]] T* gw,
                          [[maybe_unused]] Index ldgw) {  // (unused without the AVX-512 kernel)
#if KNEAD_HAS_AVX512_SGEMM
  if constexpr (std::is_same_v<T, float>) {
    if (m <= 0 || in <= 0) return;
    auto& s = KernelScratch<T>::local();
    T* ct = KernelScratch<T>::ensure(s.product, in * m);
    std::fill(ct, ct + in * m, T(0));
    for (Index i0 = 0; i0 < m; i0 += 4) {
      const T* gi = g + i0;
      T* ci = ct + i0 * in;
      switch (std::min<Index>(4, m - i0)) {
        case 1:
          thin_gradient_sums<1>(gi, ldg, x, ldx, in, n, ci, in);
          break;
        case 2:
          thin_gradient_sums<2>(gi, ldg, x, ldx, in, n, ci, in);
          break;
        case 3:
          thin_gradient_sums<3>(gi, ldg, x, ldx, in, n, ci, in);
          break;
        default:
          thin_gradient_sums<4>(gi, ldg, x, ldx, in, n, ci, in);
          break;
      }
    }
    for (Index c = 0; c < in; ++c)
      for (Index i = 0; i < m; ++i)
        gw[i + c * ldgw] += mask == nullptr ? ct[c + i * in] : ct[c + i * in] * mask[i + c * m];
    return;
  }
#endif
  detail::fail<std::logic_error>("thin_weight_gradient", "runs on knead's AVX-512 float kernel only");
}

}  // namespace knead::linalg
