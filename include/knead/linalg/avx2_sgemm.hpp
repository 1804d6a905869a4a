#pragma once
/// @file
/// Avx2Sgemm: knead's float GEMM micro-kernel for AVX2 + FMA (x86-64), which PackedGemm<float>
/// (gemm.hpp) runs on the `avx2` kernel path (kernel_path.hpp) for the products of 16 rows or more.
/// Its functions are compiled for AVX2 and FMA by attribute, so a build without -march runs them on
/// a CPU that has both.
///
/// Tiles of 16 rows × 6 columns: two 8-float vectors of A times six broadcast entries of B, 12
/// accumulators, which with the two vectors of A and the broadcast fill 15 of the 16 registers
/// (Eigen 3.4's AVX kernel computes 24 × 4 tiles, 12 accumulators, each vector of A used four times
/// instead of six). It reads B in PanelLayout's layout (panel_layout.hpp) and A packed by its own
/// pack_lhs(): PanelLayout's panels of 64 rows at the same offsets, each held as sub-panels of 16
/// rows; a panel is computed 16 rows at a time, its last rows (up to 8 of them) in one vector when
/// they fit. B is read packed or as stored (RhsView), and C stored as Store says, in the tiles'
/// own stores.
///
/// Every output entry is one chain of FMAs over k in order, starting at the first product, whichever
/// tile computes it: results do not depend on how rows or columns are split among calls or threads,
/// and they are the AVX-512 kernel's, bit for bit.

#include <algorithm>

#include "knead/core/types.hpp"
#include "knead/linalg/kernel_path.hpp"
#include "knead/linalg/panel_layout.hpp"

#if KNEAD_HAS_X86_KERNELS
#include <immintrin.h>
#define KNEAD_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace knead::linalg {

/// The AVX2 + FMA kernel. Its functions run only on a CPU with both (cpu_runs(KernelPath::avx2)).
struct Avx2Sgemm : PanelLayout {
#if KNEAD_HAS_X86_KERNELS
  /// C(rows × cols) (+)= A · B for A (rows × depth, depth ≥ 1) packed by pack_lhs (lda 0) or as
  /// stored (column-major, leading dimension lda, rows a multiple of 16), and B (depth × cols, packed
  /// or as stored), stored as `store` says.
  KNEAD_AVX2 static void multiply(float* c, Index ldc, const float* a, Index lda, Index rows, Index depth,
                                  const RhsView<float>& b, Index cols, const Store<float>& store) {
    const int finish = store.relu ? relu : store.gate != nullptr ? gate : keep;
    switch (int(store.start) * 4 + finish) {
      case 0 + keep:
        return tiles<false, keep>(c, ldc, a, lda, rows, depth, b, cols, store);
      case 0 + relu:
        return tiles<false, relu>(c, ldc, a, lda, rows, depth, b, cols, store);
      case 0 + gate:
        return tiles<false, gate>(c, ldc, a, lda, rows, depth, b, cols, store);
      case 4 + keep:
        return tiles<true, keep>(c, ldc, a, lda, rows, depth, b, cols, store);
      case 4 + relu:
        return tiles<true, relu>(c, ldc, a, lda, rows, depth, b, cols, store);
      default:
        return tiles<true, gate>(c, ldc, a, lda, rows, depth, b, cols, store);
    }
  }

  /// Packs A (rows × depth; column-major at a with leading dimension lda, or, when `transposed`,
  /// A = Sᵀ for S column-major depth × rows at a) for this kernel: PanelLayout's panels of 64 rows
  /// at the same offsets (a panel of h rows takes padded_rows(h) · depth entries from p0 · depth),
  /// each held as sub-panels of 16 rows, depth-major: (i, k) of a panel at
  /// (i / 16) · 16 · depth + k · 16 + i % 16, zeros past its last row. A tile then reads one
  /// contiguous 64-byte line per step of k (a 512 × 512 × 512 product: 97 GFLOP/s warm and 91–94
  /// after a cache sweep, against 82–85 and 75–82 with the 64-row depth-major panels of the AVX-512
  /// kernel on this kernel; bench/README.md).
  ///
  /// With `mask` (0/1 entries at the stored positions of a's, leading dimension ldm), packs A ⊙ M:
  /// an entry is a's where the mask is non-zero and +0 elsewhere, the values a masked copy of the
  /// block would hold, packed without that copy (it wrote and re-read every entry of a partial block
  /// of MADE's weights once more: 10 of the 18 M instructions of pack_weights per D=64 hidden 512
  /// train step). Compiled for AVX2 (it runs only on that path): a full sub-panel's line of 16
  /// entries is two vector moves (or compares and ands), not a call to memmove.
  KNEAD_AVX2 static void pack_lhs(float* packed, const float* a, Index lda, Index rows, Index depth,
                                  bool transposed, const float* mask = nullptr, Index ldm = 0) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0), padded = padded_rows(h);
      for (Index s0 = 0; s0 < padded; s0 += row_step) {
        float* sub = packed + (p0 + s0) * depth;
        const Index live = std::clamp<Index>(h - s0, 0, row_step);  // rows of A in this sub-panel
        if (!transposed) {
          for (Index k = 0; k < depth; ++k) {
            const float* src = a + p0 + s0 + k * lda;
            const float* m = mask == nullptr ? nullptr : mask + p0 + s0 + k * ldm;
            float* dst = sub + k * row_step;
            if (live == row_step) {
              // src where m ≠ 0 (_CMP_NEQ_UQ: C++'s !=), else the bits of +0
              for (Index i = 0; i < row_step; i += 8) {
                __m256 v = _mm256_loadu_ps(src + i);
                if (m != nullptr)
                  v = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(m + i), _mm256_setzero_ps(), _CMP_NEQ_UQ),
                                    v);
                _mm256_storeu_ps(dst + i, v);
              }
            } else {
              for (Index i = 0; i < live; ++i) dst[i] = m == nullptr || m[i] != 0.0f ? src[i] : 0.0f;
              std::fill(dst + live, dst + row_step, 0.0f);
            }
          }
        } else {
          // A(i, k) = S(k, i) = a[k + i·lda]: read S's columns contiguously
          for (Index i = 0; i < live; ++i) {
            const float* src = a + (p0 + s0 + i) * lda;
            if (mask == nullptr) {
              for (Index k = 0; k < depth; ++k) sub[k * row_step + i] = src[k];
            } else {
              const float* m = mask + (p0 + s0 + i) * ldm;
              for (Index k = 0; k < depth; ++k) sub[k * row_step + i] = m[k] != 0.0f ? src[k] : 0.0f;
            }
          }
          for (Index k = 0; k < depth; ++k)
            std::fill(sub + k * row_step + live, sub + (k + 1) * row_step, 0.0f);
        }
      }
    }
  }

  /// The lanes of an 8-float vector below `live` (0..8), as maskload/maskstore take them.
  KNEAD_AVX2 static __m256i lanes_below(Index live) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(live)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

 private:
  enum Finish : int { keep = 0, relu = 1, gate = 2 };  ///< what a tile does to C after the sum

  template <bool Start, int Finish>
  KNEAD_AVX2 static void tiles(float* c, Index ldc, const float* a, Index lda, Index rows, Index depth,
                               const RhsView<float>& b, Index cols, const Store<float>& store) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0);
      // this panel of A: packed (pack_lhs), rows [r0, r0 + 16) at ap + r0 · depth with (i, k) at
      // [k · 16 + i − r0]; as stored, (i, k) at ap[k · lda + i]
      const float* ap = a + (lda == 0 ? p0 * depth : p0);
      const Index as = lda == 0 ? row_step : lda, sub_panel = lda == 0 ? depth : 1;
      for (Index q0 = 0; q0 < cols; q0 += nr) {
        const Index w = std::min(nr, cols - q0);
        // this tile's columns of B: (k, j) at bq[k·ks + j·cs]
        const bool packed = b.is_packed();
        const float* bq = packed ? b.data + q0 * b.full_depth + b.first * w : b.data + q0 * b.col_stride;
        const Index ks = packed ? w : b.k_stride, cs = packed ? 1 : b.col_stride;
        for (Index r0 = 0; r0 < h; r0 += row_step) {
          // rows [r0, r0 + live) of the panel, in one vector when 8 or fewer
          const Index live = std::min(row_step, h - r0);
          const int vectors = live > 8 ? 2 : 1;
          const Index last = live - 8 * (vectors - 1);  // live rows of the last vector
          const Index row = p0 + r0;
          float* ct = c + row + q0 * ldc;
          const float* bias = Start && store.bias != nullptr ? store.bias + row : nullptr;
          const float* gt = Finish == gate ? store.gate + row + q0 * store.ld_gate : nullptr;
          switch (vectors * 8 + int(w)) {
#define KNEAD_TILE(R, W)                                                                           \
  case R * 8 + W:                                                                                  \
    tile<R, W, Start, Finish>(ap + r0 * sub_panel, as, bq, ks, cs, depth, ct, ldc, last, bias, gt, \
                              store.ld_gate);                                                      \
    break;
#define KNEAD_TILES(R) \
  KNEAD_TILE(R, 1) KNEAD_TILE(R, 2) KNEAD_TILE(R, 3) KNEAD_TILE(R, 4) KNEAD_TILE(R, 5) KNEAD_TILE(R, 6)
            KNEAD_TILES(1)
            KNEAD_TILES(2)
#undef KNEAD_TILES
#undef KNEAD_TILE
            default:
              break;
          }
        }
      }
    }
  }

  /// An 8-float vector at p: all of it, or (`partial`) the lanes in `mask`, zeros elsewhere.
  KNEAD_AVX2 static __m256 load(const float* p, bool partial, __m256i mask) {
    return partial ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
  }

  /// One tile: R vectors of 8 rows (the last one with `last` live rows) × W columns, over depth;
  /// then C = acc (+ bias) (Start) or C + acc, then the ReLU or the gate by g > 0 (Finish).
  template <int R, int W, bool Start, int Finish>
  KNEAD_AVX2 static void tile(const float* a, Index a_stride, const float* b, Index k_stride,
                              Index col_stride, Index depth, float* c, Index ldc, Index last,
                              const float* bias, const float* g, Index ldg) {
    // C's lines (and the gate's) are fetched now, for writing, and arrive while the FMAs run (see
    // Avx512Sgemm::tile)
    for (int j = 0; j < W; ++j) {
      __builtin_prefetch(c + j * ldc, 1);
      __builtin_prefetch(c + j * ldc + R * 8 - 1, 1);
      if constexpr (Finish == gate) __builtin_prefetch(g + j * ldg);
    }
    // acc = A·B over k, one FMA chain per entry, from the first product (depth ≥ 1)
    __m256 acc[R][W], ak[R];
    for (int r = 0; r < R; ++r) ak[r] = _mm256_loadu_ps(a + r * 8);
    for (int j = 0; j < W; ++j) {
      const __m256 bj = _mm256_set1_ps(b[j * col_stride]);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_mul_ps(ak[r], bj);
    }
    for (Index k = 1; k < depth; ++k) {
      a += a_stride;
      b += k_stride;
      for (int r = 0; r < R; ++r) ak[r] = _mm256_loadu_ps(a + r * 8);
      for (int j = 0; j < W; ++j) {
        const __m256 bj = _mm256_set1_ps(b[j * col_stride]);
        for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(ak[r], bj, acc[r][j]);
      }
    }
    // the last vector's rows past `last` are neither read nor written (masked)
    const __m256i mask = lanes_below(last);
    const bool partial = last < 8;
    __m256 start[R];
    if constexpr (Start)
      for (int r = 0; r < R; ++r)
        start[r] = bias == nullptr ? _mm256_setzero_ps() : load(bias + r * 8, partial && r + 1 == R, mask);
    for (int j = 0; j < W; ++j) {
      float* cj = c + j * ldc;
      for (int r = 0; r < R; ++r) {
        const bool part = partial && r + 1 == R;
        // bias + acc, or c + acc: the same sums as starting C at the bias and adding
        __m256 v = _mm256_add_ps(Start ? start[r] : load(cj + r * 8, part, mask), acc[r][j]);
        if constexpr (Finish == relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
        if constexpr (Finish == gate)
          v = _mm256_and_ps(
              v, _mm256_cmp_ps(load(g + j * ldg + r * 8, part, mask), _mm256_setzero_ps(), _CMP_GT_OQ));
        if (part)
          _mm256_maskstore_ps(cj + r * 8, mask, v);
        else
          _mm256_storeu_ps(cj + r * 8, v);
      }
    }
  }
#endif
};

}  // namespace knead::linalg
