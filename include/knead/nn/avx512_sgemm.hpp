#pragma once
/// @file
/// Avx512Sgemm: knead's own float GEMM micro-kernel for AVX-512 (x86-64), which PackedGemm<float>
/// (gemm.hpp) runs for the layers that ask for it (MaskedLinearPlan::own_kernel: wide layers) when
/// the CPU has AVX-512F, whatever the compiler flags: the functions are compiled for AVX-512 by
/// attribute and chosen at run time.
///
/// Why not Eigen's: Eigen 3.4's kernel computes 48 × 4 tiles (12 accumulators); on AMD Zen 4, which
/// executes a 512-bit FMA as two 256-bit halves, it reached 91 GFLOP/s on a 512 × 512 × 256
/// product, against 117 for the FMA peak. Tiles of 64 × 6 (24 accumulators: four 16-float rows by
/// six broadcast columns) use each vector of A loaded six times instead of four and reached 112 in
/// the same run.
///
/// Layouts. A (rows × depth) is packed in panels of 64 rows, the last one rounded up to a multiple of
/// 16 rows with zeros; a panel of h rows holds entry (i, k) at k·h + i. B (depth × cols) is packed in
/// panels of 6 columns (the last one narrower); a panel of w columns holds (k, j) at k·w + j, so a
/// depth range of B is a plain offset into every panel. Every output entry is one chain of FMAs over
/// k in order, whichever tile computes it: results do not depend on how the rows or columns are
/// split among calls or threads.

#include <algorithm>
#include <cstddef>

#include "knead/core/types.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KNEAD_HAS_AVX512_SGEMM 1
#define KNEAD_AVX512 __attribute__((target("avx512f")))
#else
#define KNEAD_HAS_AVX512_SGEMM 0
#endif

namespace knead::detail {

struct Avx512Sgemm {
  static constexpr Index mr = 64;        ///< rows of a full panel of A (four 16-float vectors)
  static constexpr Index nr = 6;         ///< columns of a panel of B
  static constexpr Index row_step = 16;  ///< the last panel of A is rounded up to this

  /// True when the CPU runs AVX-512F (checked once).
  static bool available() {
#if KNEAD_HAS_AVX512_SGEMM
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes;
#else
    return false;
#endif
  }

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

#if KNEAD_HAS_AVX512_SGEMM
  /// C(rows × cols) += A · B(first .. first + depth, :), for A packed by pack_lhs (rows × depth) and
  /// B packed whole by pack_rhs (full_depth × cols). With `bias`, C's old values are not read:
  /// C = A · B + bias (one entry per row; starting a layer's output without a pass of its own);
  /// with `relu`, C = max(C, 0) after.
  KNEAD_AVX512 static void multiply(float* c, Index ldc, const float* packed_a, Index rows, Index depth,
                                    const float* packed_b, Index full_depth, Index first, Index cols,
                                    const float* bias = nullptr, bool relu = false) {
    if (bias != nullptr)
      relu ? tiles<true, true>(c, ldc, packed_a, rows, depth, packed_b, full_depth, first, cols, bias)
           : tiles<true, false>(c, ldc, packed_a, rows, depth, packed_b, full_depth, first, cols, bias);
    else
      relu ? tiles<false, true>(c, ldc, packed_a, rows, depth, packed_b, full_depth, first, cols, bias)
           : tiles<false, false>(c, ldc, packed_a, rows, depth, packed_b, full_depth, first, cols, bias);
  }

 private:
  template <bool Start, bool Relu>
  KNEAD_AVX512 static void tiles(float* c, Index ldc, const float* packed_a, Index rows, Index depth,
                                 const float* packed_b, Index full_depth, Index first, Index cols,
                                 const float* bias) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0);
      const int vectors = int(padded_rows(h) / row_step);
      const auto last = __mmask16((1u << (h - (vectors - 1) * row_step)) - 1u);
      const float* a = packed_a + p0 * depth;
      const float* tile_bias = Start ? bias + p0 : nullptr;
      for (Index q0 = 0; q0 < cols; q0 += nr) {
        const Index w = std::min(nr, cols - q0);
        const float* b = packed_b + q0 * full_depth + first * w;
        float* ct = c + p0 + q0 * ldc;
        switch (vectors * 8 + int(w)) {
#define KNEAD_TILE(R, W)                                            \
  case R * 8 + W:                                                   \
    tile<R, W, Start, Relu>(a, b, depth, ct, ldc, last, tile_bias); \
    break;
#define KNEAD_TILES(R) \
  KNEAD_TILE(R, 1) KNEAD_TILE(R, 2) KNEAD_TILE(R, 3) KNEAD_TILE(R, 4) KNEAD_TILE(R, 5) KNEAD_TILE(R, 6)
          KNEAD_TILES(1)
          KNEAD_TILES(2)
          KNEAD_TILES(3)
          KNEAD_TILES(4)
#undef KNEAD_TILES
#undef KNEAD_TILE
          default:
            break;
        }
      }
    }
  }

  /// One tile: R vectors of 16 rows (the last one masked by `last`) × W columns, over depth; then
  /// C = acc + bias (Start) or C + acc, and ReLU (Relu).
  template <int R, int W, bool Start, bool Relu>
  KNEAD_AVX512 static void tile(const float* a, const float* b, Index depth, float* c, Index ldc,
                                __mmask16 last, const float* bias) {
    constexpr Index stride = R * 16;  // floats per k in the panel
    __m512 acc[R][W];
    for (int j = 0; j < W; ++j)
      for (int r = 0; r < R; ++r) acc[r][j] = _mm512_setzero_ps();
    for (Index k = 0; k < depth; ++k) {
      __m512 ak[R];
      for (int r = 0; r < R; ++r) ak[r] = _mm512_loadu_ps(a + r * 16);
      for (int j = 0; j < W; ++j) {
        const __m512 bj = _mm512_set1_ps(b[j]);
        for (int r = 0; r < R; ++r) acc[r][j] = _mm512_fmadd_ps(ak[r], bj, acc[r][j]);
      }
      a += stride;
      b += W;
    }
    __m512 start[R];
    if constexpr (Start) {
      for (int r = 0; r + 1 < R; ++r) start[r] = _mm512_loadu_ps(bias + r * 16);
      start[R - 1] = _mm512_maskz_loadu_ps(last, bias + (R - 1) * 16);
    }
    for (int j = 0; j < W; ++j) {
      float* cj = c + j * ldc;
      for (int r = 0; r < R; ++r) {
        const __mmask16 m = r + 1 < R ? __mmask16(0xffff) : last;
        // bias + acc, or c + acc: the same sums as starting C at the bias and adding
        __m512 v = _mm512_add_ps(Start ? start[r] : _mm512_maskz_loadu_ps(m, cj + r * 16), acc[r][j]);
        // (masked form: the plain _mm512_max_ps trips GCC 12's -Wuninitialized in its header)
        if constexpr (Relu) v = _mm512_maskz_max_ps(__mmask16(0xffff), v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(cj + r * 16, m, v);
      }
    }
  }
#endif
};

}  // namespace knead::detail
