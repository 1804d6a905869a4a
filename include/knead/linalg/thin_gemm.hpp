#pragma once
/// @file
/// Products with fewer than 16 rows, on knead's kernel paths (float, AVX-512 or AVX2 + FMA).
///
/// knead's kernels fill 16 rows of C at a time, and Eigen's handles a handful of rows on its slowest
/// paths, with the batch packed for each call: MADE's D=2 output layer (2 of its 4 rows used) ran
/// below 25 GFLOP/s. These products have a long side, the batch.
///
/// thin_multiply (A·X, a layer's few outputs): each sample's column of X is contiguous, so the
/// dot products of A's rows with it are computed along k in vectors of 16, for 8 samples at a time,
/// and 16 such vectors are then summed into one vector of their 16 totals (a tree of shuffles); on
/// AVX2, vectors of 8 for 4 samples at a time, 8 such vectors summed into one.
/// Computing it as Cᵀ = Xᵀ Aᵀ on the kernel instead first transposed X, which with the scattered
/// results cost three times the products (12 % of a D=2 hidden 64 MAF's density pass).
/// thin_weight_gradient (G Xᵀ, summed over the batch) computes its transpose X Gᵀ, a sample at a
/// time: each sample adds its column of X times its few entries of G into the sums.

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/linalg/gemm.hpp"
#include "knead/linalg/kernel_path.hpp"

namespace knead::linalg {

/// Writes a block's dot products: sums[r·block + j] is row i0 + r (of `rows`, when given) and
/// sample j0 + j; C = bias + A·X (store.start) or C + A·X, then store.finish. Shared by the
/// thin kernels of every width: plain scalar code, the same on every path.
inline void store_sums(const float* sums, Index block, Index pair, Index count, Index i0, Index j0, float* c,
                       Index ldc, const Index* rows, const Store<float>& store) {
  for (Index r = 0; r < pair; ++r) {
    const Index row = rows == nullptr ? i0 + r : rows[i0 + r];
    const float bias = store.bias != nullptr ? store.bias[row] : 0.0f;
    for (Index j = 0; j < count; ++j) {
      float& out = c[row + (j0 + j) * ldc];
      out = store.finish(sums[r * block + j] + (store.start ? bias : out), row, j0 + j);
    }
  }
}

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
      store_sums(sums, block, pair, count, i0, j0, c, ldc, rows, store);
    }
  }
}
#endif

#if KNEAD_HAS_X86_KERNELS
/// sums[t] = the sum of the 8 entries of v[t]: pairs added within each vector, then pairs of pairs,
/// then the two 128-bit halves.
KNEAD_AVX2 inline void sum_each(const __m256 (&v)[8], float* sums) {
  const __m256 s0 = _mm256_hadd_ps(v[0], v[1]), s1 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 s2 = _mm256_hadd_ps(v[4], v[5]), s3 = _mm256_hadd_ps(v[6], v[7]);
  // t0: v[0..3]'s sums of entries 0..3 in its low half, of entries 4..7 in its high half
  const __m256 t0 = _mm256_hadd_ps(s0, s1), t1 = _mm256_hadd_ps(s2, s3);
  _mm256_storeu_ps(sums,
                   _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31)));
}

/// thin_rows_avx512() on AVX2 + FMA: rows two at a time, 4 samples at a time, the 8 dot products
/// in 8 vectors over k. Likewise, a sample's sums do not depend on its block or the row's partner.
KNEAD_AVX2 inline void thin_rows_avx2(const float* a, Index m, Index depth, const float* x, Index ldx,
                                      Index n, float* c, Index ldc, const Index* rows,
                                      const Store<float>& store) {
  constexpr Index block = 4;
  const Index whole = depth / 8 * 8;
  const __m256i tail = Avx2Sgemm::lanes_below(depth - whole);
  alignas(32) float sums[2 * block];
  for (Index j0 = 0; j0 < n; j0 += block) {
    const Index count = std::min(block, n - j0);
    const float* xj[block];
    for (Index j = 0; j < block; ++j) xj[j] = x + (j0 + std::min(j, count - 1)) * ldx;
    for (Index i0 = 0; i0 < m; i0 += 2) {
      const Index pair = std::min<Index>(2, m - i0);
      const float* a0 = a + i0 * depth;
      const float* a1 = a0 + (pair - 1) * depth;  // a single last row pairs with itself
      __m256 acc[2 * block];
      for (auto& v : acc) v = _mm256_setzero_ps();
      Index k = 0;
      for (; k < whole; k += 8) {
        const __m256 w0 = _mm256_loadu_ps(a0 + k), w1 = _mm256_loadu_ps(a1 + k);
        for (Index j = 0; j < block; ++j) {
          const __m256 xk = _mm256_loadu_ps(xj[j] + k);
          acc[j] = _mm256_fmadd_ps(w0, xk, acc[j]);
          acc[block + j] = _mm256_fmadd_ps(w1, xk, acc[block + j]);
        }
      }
      if (k < depth) {  // the last depth − whole entries, masked
        const __m256 w0 = _mm256_maskload_ps(a0 + k, tail), w1 = _mm256_maskload_ps(a1 + k, tail);
        for (Index j = 0; j < block; ++j) {
          const __m256 xk = _mm256_maskload_ps(xj[j] + k, tail);
          acc[j] = _mm256_fmadd_ps(w0, xk, acc[j]);
          acc[block + j] = _mm256_fmadd_ps(w1, xk, acc[block + j]);
        }
      }
      sum_each(acc, sums);  // sums[r·4 + j]: row i0 + r, sample j0 + j
      store_sums(sums, block, pair, count, i0, j0, c, ldc, rows, store);
    }
  }
}
#endif

/// Whether a product with `rows` rows runs on thin_multiply: fewer than 16 (knead's kernels fill
/// 16 rows at a time), float, on `path` (knead's kernel paths; Eigen's kernel on `portable`). The
/// one rule for MaskedLinearPlan's layers and MADE's incremental steps.
template <class T>
[[nodiscard]] bool runs_thin(Index rows, KernelPath path = kernel_path()) {
  return rows < 16 && PackedGemm<T>::knead_kernel(path);
}

/// C (m × n, leading dimension ldc) = or += A·X for a thin A (m × depth, m < 16, entry (i, k) at
/// a[i·a_row + k·a_col]) and a batch X (depth × n, column-major, leading dimension ldx), stored as
/// `store` says, row i of A·X into row rows[i] of C (row i when `rows` is null; bias and gate are
/// indexed the same way). A is read where it is when its rows are contiguous (a_col = 1, a_row =
/// depth: how MaskedLinearPlan packs a thin layer), else copied so. float on knead's kernel paths
/// only (runs_thin), `path` one the CPU runs.
template <class T>
void thin_multiply(const T* a, Index a_row, Index a_col, Index m, Index depth, const T* x, Index ldx, Index n,
                   T* c, Index ldc, const Index* rows, const Store<T>& store,
                   KernelPath path = kernel_path()) {
#if KNEAD_HAS_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (path != KernelPath::portable) {
      if (m <= 0 || n <= 0) return;
      if (a_col != 1 || a_row != depth) {
        auto& s = KernelScratch<T>::local();
        T* rows_of_a = KernelScratch<T>::ensure(s.block, m * depth);
        for (Index i = 0; i < m; ++i)
          for (Index k = 0; k < depth; ++k) rows_of_a[i * depth + k] = a[i * a_row + k * a_col];
        a = rows_of_a;
      }
      if (path == KernelPath::avx512) return thin_rows_avx512(a, m, depth, x, ldx, n, c, ldc, rows, store);
      return thin_rows_avx2(a, m, depth, x, ldx, n, c, ldc, rows, store);
    }
  }
#else
  (void)a, (void)a_row, (void)a_col, (void)m, (void)depth, (void)x, (void)ldx, (void)n, (void)c, (void)ldc,
      (void)rows, (void)store;  // (no kernel to give them to)
#endif
  detail::fail<std::logic_error>("thin_multiply", "runs on knead's float kernels only, not on the '",
                                 to_string(path), "' path");
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

#if KNEAD_HAS_X86_KERNELS
/// thin_gradient_sums() on AVX2 + FMA: blocks of 16 rows of X (two 8-float vectors), the 2 × M sums
/// in registers over 8 samples at a time; each sum is one chain over the samples in order.
template <int M>
KNEAD_AVX2 void thin_gradient_sums_avx2(const float* g, Index ldg, const float* x, Index ldx, Index in,
                                        Index n, float* ct, Index ldct) {
  constexpr Index samples = 8;
  for (Index k0 = 0; k0 < n; k0 += samples) {
    const Index k1 = std::min(n, k0 + samples);
    for (Index r0 = 0; r0 < in; r0 += 16) {
      const Index live = std::min<Index>(16, in - r0);
      const int vectors = live > 8 ? 2 : 1;
      const bool partial = live % 8 != 0;  // the last vector is
      const __m256i mask = Avx2Sgemm::lanes_below(live - 8 * (vectors - 1));
      __m256 acc[2][M];
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < vectors; ++r) {
          const float* at = ct + r0 + 8 * r + i * ldct;
          acc[r][i] = partial && r + 1 == vectors ? _mm256_maskload_ps(at, mask) : _mm256_loadu_ps(at);
        }
      for (Index k = k0; k < k1; ++k) {
        const float* xk = x + r0 + k * ldx;
        __m256 xv[2];
        for (int r = 0; r < vectors; ++r)
          xv[r] = partial && r + 1 == vectors ? _mm256_maskload_ps(xk + 8 * r, mask)
                                              : _mm256_loadu_ps(xk + 8 * r);
        for (int i = 0; i < M; ++i) {
          const __m256 gi = _mm256_set1_ps(g[i + k * ldg]);
          for (int r = 0; r < vectors; ++r) acc[r][i] = _mm256_fmadd_ps(xv[r], gi, acc[r][i]);
        }
      }
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < vectors; ++r) {
          float* at = ct + r0 + 8 * r + i * ldct;
          if (partial && r + 1 == vectors)
            _mm256_maskstore_ps(at, mask, acc[r][i]);
          else
            _mm256_storeu_ps(at, acc[r][i]);
        }
    }
  }
}
#endif

/// G_W (m × in, leading dimension ldgw) += (G Xᵀ) ⊙ M for a thin G (m × n, m < 16, leading dimension
/// ldg) and a batch X (in × n, leading dimension ldx); `mask` (m × in, column-major) may be null.
/// Computed as (G Xᵀ)ᵀ = X Gᵀ by thin_gradient_sums (or its AVX2 form), up to 4 rows of G at a
/// time, into a scratch. float on knead's kernel paths only (runs_thin).
template <class T>
void thin_weight_gradient(const T* g, Index ldg, Index m, const T* x, Index ldx, Index in, Index n,
                          const T* mask, T* gw, Index ldgw, KernelPath path = kernel_path()) {
#if KNEAD_HAS_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (path == KernelPath::portable)
      detail::fail<std::logic_error>("thin_weight_gradient",
                                     "runs on knead's float kernels only, not on the '", to_string(path),
                                     "' path");
    if (m <= 0 || in <= 0) return;
    // ct(:, i0 ..) += X Gᵀ for the M rows of G from i0
    auto sums = [&](auto rows_of_g, Index i0, T* ci) {
      constexpr int M = decltype(rows_of_g)::value;
      if (path == KernelPath::avx512)
        thin_gradient_sums<M>(g + i0, ldg, x, ldx, in, n, ci, in);
      else
        thin_gradient_sums_avx2<M>(g + i0, ldg, x, ldx, in, n, ci, in);
    };
    auto& s = KernelScratch<T>::local();
    T* ct = KernelScratch<T>::ensure(s.product, in * m);
    std::fill(ct, ct + in * m, T(0));
    for (Index i0 = 0; i0 < m; i0 += 4) {
      T* ci = ct + i0 * in;
      switch (std::min<Index>(4, m - i0)) {
        case 1:
          sums(std::integral_constant<int, 1>{}, i0, ci);
          break;
        case 2:
          sums(std::integral_constant<int, 2>{}, i0, ci);
          break;
        case 3:
          sums(std::integral_constant<int, 3>{}, i0, ci);
          break;
        default:
          sums(std::integral_constant<int, 4>{}, i0, ci);
          break;
      }
    }
    for (Index c = 0; c < in; ++c)
      for (Index i = 0; i < m; ++i)
        gw[i + c * ldgw] += mask == nullptr ? ct[c + i * in] : ct[c + i * in] * mask[i + c * m];
    return;
  }
#else
  (void)g, (void)ldg, (void)m, (void)x, (void)ldx, (void)in, (void)n, (void)mask, (void)gw,
      (void)ldgw;  // (no kernel to give them to)
#endif
  detail::fail<std::logic_error>("thin_weight_gradient", "runs on knead's float kernels only, not on the '",
                                 to_string(path), "' path");
}

}  // namespace knead::linalg
