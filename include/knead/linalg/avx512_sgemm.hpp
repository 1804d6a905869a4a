#pragma once
/// @file
/// Avx512Sgemm: knead's own float GEMM micro-kernel for AVX-512 (x86-64), which PackedGemm<float>
/// (gemm.hpp) runs on the `avx512` kernel path (kernel_path.hpp) for the products of 16 rows or more,
/// whatever the compiler flags: the functions are compiled for AVX-512 by attribute and chosen at
/// run time.
///
/// Why not Eigen's: Eigen 3.4's kernel computes 48 × 4 tiles (12 accumulators); on AMD Zen 4, which
/// executes a 512-bit FMA as two 256-bit halves, it reached 91 GFLOP/s on a 512 × 512 × 256
/// product, against 117 for the FMA peak. Tiles of 64 × 6 (24 accumulators: four 16-float rows by
/// six broadcast columns) use each vector of A loaded six times instead of four and reached 112 in
/// the same run.
///
/// Layouts: PanelLayout's (panel_layout.hpp), packed here with AVX-512 where that is faster. A tile
/// reads 6 columns of B, which a column-major batch holds in one contiguous run: packing a layer's
/// input batch (a scalar transpose, 10–15 % of a small network's time) buys nothing; a transposed B
/// (the batch xᵀ of a weight gradient, one row per sample) is packed. Every output entry is one
/// chain of FMAs over k in order, whichever tile computes it: results do not depend on how the
/// rows or columns are split among calls or threads.

#include <algorithm>
#include <cstddef>

#include "knead/core/types.hpp"
#include "knead/linalg/kernel_path.hpp"
#include "knead/linalg/panel_layout.hpp"

#if KNEAD_HAS_X86_KERNELS
#include <immintrin.h>
#define KNEAD_HAS_AVX512_SGEMM 1
#define KNEAD_AVX512 __attribute__((target("avx512f")))
#else
#define KNEAD_HAS_AVX512_SGEMM 0
#endif

namespace knead::linalg {

/// The AVX-512 kernel: tiles of 64 rows (four 16-float vectors) × 6 columns. Its functions run
/// only on a CPU with AVX-512F (cpu_runs(KernelPath::avx512)).
struct Avx512Sgemm : PanelLayout {
#if KNEAD_HAS_AVX512_SGEMM
  /// PanelLayout::pack_lhs(), in AVX-512.
  static void pack_lhs(float* packed, const float* a, Index lda, Index rows, Index depth, bool transposed) {
    pack_lhs_avx512(packed, a, lda, rows, depth, transposed);
  }

  /// PanelLayout::pack_rhs(), B = Sᵀ in AVX-512.
  static void pack_rhs(float* packed, const float* b, Index ldb, Index depth, Index cols, bool transposed) {
    if (transposed) return pack_rhs_transposed_avx512(packed, b, ldb, depth, cols);
    PanelLayout::pack_rhs(packed, b, ldb, depth, cols, false);
  }

  /// pack_lhs() in 16-row vectors: masked loads read a panel's last rows and give the zeros of its
  /// padding; the transposed layout (weights for input gradients, each pass) moves 16 × 16 blocks
  /// through registers instead of one strided store per entry.
  KNEAD_AVX512 static void pack_lhs_avx512(float* packed, const float* a, Index lda, Index rows, Index depth,
                                           bool transposed) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0), padded = padded_rows(h);
      float* panel = packed + p0 * depth;
      auto live = [&](Index v, Index n) { return __mmask16((1u << std::clamp<Index>(n - v, 0, 16)) - 1u); };
      if (!transposed) {
        for (Index k = 0; k < depth; ++k)
          for (Index v = 0; v < padded; v += 16)
            _mm512_storeu_ps(panel + k * padded + v, _mm512_maskz_loadu_ps(live(v, h), a + p0 + v + k * lda));
        continue;
      }
      // A(i, k) = S(k, i) = a[k + i·lda]: 16 columns of S, 16 entries each, transposed in registers
      for (Index v = 0; v < padded; v += 16)
        for (Index k0 = 0; k0 < depth; k0 += 16) {
          const __mmask16 ks = live(k0, depth);
          __m512 r[16];
          for (Index i = 0; i < 16; ++i)
            r[i] = v + i < h ? _mm512_maskz_loadu_ps(ks, a + k0 + (p0 + v + i) * lda) : _mm512_setzero_ps();
          transpose16(r);
          for (Index k = 0; k < std::min<Index>(16, depth - k0); ++k)
            _mm512_storeu_ps(panel + (k0 + k) * padded + v, r[k]);
        }
    }
  }

  /// pack_rhs() of B = Sᵀ (the batch xᵀ of a weight gradient): each k's entries of a panel are
  /// contiguous in S. Eight panels (48 columns) at a time, so that each k reads its 48 entries once
  /// (one panel at a time read every line of S about three times, at a stride of S's leading
  /// dimension that misses L1: 2× slower); each panel's 6 entries go out as a store of 8 whose last
  /// 2 land on the next k's and are rewritten by it, the last k masked.
  KNEAD_AVX512 static void pack_rhs_transposed_avx512(float* packed, const float* b, Index ldb, Index depth,
                                                      Index cols) {
    constexpr Index group = 8 * nr;
    constexpr __mmask16 six = (1u << nr) - 1u;
    Index q0 = 0;
    for (; q0 + group <= cols && depth > 0; q0 += group) {
      float* panels = packed + q0 * depth;
      const float* src = b + q0;
      // (k + 1 < depth: reading 2 entries past the group stays within S, in column k or k + 1)
      for (Index k = 0; k + 1 < depth; ++k, src += ldb)
        for (Index p = 0; p < 8; ++p)
          _mm256_storeu_ps(panels + p * nr * depth + k * nr, _mm256_loadu_ps(src + p * nr));
      for (Index p = 0; p < 8; ++p)
        _mm512_mask_storeu_ps(panels + p * nr * depth + (depth - 1) * nr, six,
                              _mm512_maskz_loadu_ps(six, src + p * nr));
    }
    for (; q0 < cols; q0 += nr) {
      const Index w = std::min(nr, cols - q0);
      const auto lanes = __mmask16((1u << w) - 1u);
      float* panel = packed + q0 * depth;
      for (Index k = 0; k < depth; ++k)
        _mm512_mask_storeu_ps(panel + k * w, lanes, _mm512_maskz_loadu_ps(lanes, b + q0 + k * ldb));
    }
  }

  /// Transposes the 16 × 16 block whose rows are r[0..15], in place: four rounds of shuffles,
  /// interleaving entries, pairs, 128-bit quarters and halves. (Masked forms with every lane on:
  /// the plain ones trip GCC 12's -Wmaybe-uninitialized inside its header.)
  KNEAD_AVX512 static void transpose16(__m512 (&r)[16]) {
    constexpr __mmask16 all = 0xFFFF;
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
      t[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_maskz_shuffle_ps(all, t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_maskz_shuffle_ps(all, t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_maskz_shuffle_ps(all, t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_maskz_shuffle_ps(all, t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 16; i += 8)
      for (int j = 0; j < 4; ++j) {
        t[i + j] = _mm512_maskz_shuffle_f32x4(all, r[i + j], r[i + j + 4], 0x88);
        t[i + j + 4] = _mm512_maskz_shuffle_f32x4(all, r[i + j], r[i + j + 4], 0xDD);
      }
    for (int j = 0; j < 8; ++j) {
      r[j] = _mm512_maskz_shuffle_f32x4(all, t[j], t[j + 8], 0x88);
      r[j + 8] = _mm512_maskz_shuffle_f32x4(all, t[j], t[j + 8], 0xDD);
    }
  }

  /// C(rows × cols) (+)= A · B for A (rows × depth) packed by pack_lhs (lda 0) or as stored
  /// (column-major, leading dimension lda, rows a multiple of 16: the tiles read whole vectors), and
  /// B (depth × cols, packed or as stored), stored as `store` says, in the tiles' own stores.
  KNEAD_AVX512 static void multiply(float* c, Index ldc, const float* a, Index lda, Index rows, Index depth,
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

 private:
  enum Finish : int{keep = 0, relu = 1, gate = 2};  ///< what a tile does to C after the sum

  template <bool Start, int Finish>
  KNEAD_AVX512 static void tiles(float* c, Index ldc, const float* a, Index lda, Index rows, Index depth,
                                 const RhsView<float>& b, Index cols, const Store<float>& store) {
    for (Index p0 = 0; p0 < rows; p0 += mr) {
      const Index h = std::min(mr, rows - p0);
      const int vectors = int(padded_rows(h) / row_step);
      const auto last = __mmask16((1u << (h - (vectors - 1) * row_step)) - 1u);
      // this panel of A: (i, k) at ap[k·as + i]
      const float* ap = lda == 0 ? a + p0 * depth : a + p0;
      const Index as = lda == 0 ? padded_rows(h) : lda;
      const float* bias = Start && store.bias != nullptr ? store.bias + p0 : nullptr;
      for (Index q0 = 0; q0 < cols; q0 += nr) {
        const Index w = std::min(nr, cols - q0);
        // this tile's columns of B: (k, j) at bq[k·ks + j·cs]
        const bool packed = b.is_packed();
        const float* bq = packed ? b.data + q0 * b.full_depth + b.first * w : b.data + q0 * b.col_stride;
        const Index ks = packed ? w : b.k_stride, cs = packed ? 1 : b.col_stride;
        float* ct = c + p0 + q0 * ldc;
        const float* gt = Finish == gate ? store.gate + p0 + q0 * store.ld_gate : nullptr;
        switch (vectors * 8 + int(w)) {
#define KNEAD_TILE(R, W)                                                                          \
  case R * 8 + W:                                                                                 \
    tile<R, W, Start, Finish>(ap, as, bq, ks, cs, depth, ct, ldc, last, bias, gt, store.ld_gate); \
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
  /// C = acc (+ bias) (Start) or C + acc, then the ReLU or the gate by g > 0 (Finish).
  template <int R, int W, bool Start, int Finish>
  KNEAD_AVX512 static void tile(const float* a, Index a_stride, const float* b, Index k_stride,
                                Index col_stride, Index depth, float* c, Index ldc, __mmask16 last,
                                const float* bias, const float* g, Index ldg) {
    // C's lines (and the gate's) are fetched now, for writing, and arrive while the FMAs run: in a
    // training step they have left the caches since the last one, and the stores at the tile's end
    // would otherwise wait for them (+2–3 % D=2 hidden 512 train step, +5 % at D=64; even tiles of
    // depth 1 gain, their 24 fetches overlapping instead of queueing behind the stores).
    for (int j = 0; j < W; ++j)
      for (int r = 0; r < R; ++r) {
        __builtin_prefetch(c + j * ldc + r * 16, 1);
        if constexpr (Finish == gate) __builtin_prefetch(g + j * ldg + r * 16);
      }
    // acc = A·B over k, one FMA chain per entry. The chains start at the first product (depth ≥ 1)
    // rather than at zero: GCC would zero acc with a call to memset, per tile.
    __m512 acc[R][W], ak[R];
    for (int r = 0; r < R; ++r) ak[r] = _mm512_loadu_ps(a + r * 16);
    for (int j = 0; j < W; ++j) {
      const __m512 bj = _mm512_set1_ps(b[j * col_stride]);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm512_mul_ps(ak[r], bj);
    }
    for (Index k = 1; k < depth; ++k) {
      a += a_stride;
      b += k_stride;
      for (int r = 0; r < R; ++r) ak[r] = _mm512_loadu_ps(a + r * 16);
      for (int j = 0; j < W; ++j) {
        const __m512 bj = _mm512_set1_ps(b[j * col_stride]);
        for (int r = 0; r < R; ++r) acc[r][j] = _mm512_fmadd_ps(ak[r], bj, acc[r][j]);
      }
    }
    __m512 start[R];
    if constexpr (Start)
      for (int r = 0; r < R; ++r)
        start[r] = bias == nullptr
                       ? _mm512_setzero_ps()
                       : _mm512_maskz_loadu_ps(r + 1 < R ? __mmask16(0xffff) : last, bias + r * 16);
    for (int j = 0; j < W; ++j) {
      float* cj = c + j * ldc;
      for (int r = 0; r < R; ++r) {
        const __mmask16 m = r + 1 < R ? __mmask16(0xffff) : last;
        // bias + acc, or c + acc: the same sums as starting C at the bias and adding
        __m512 v = _mm512_add_ps(Start ? start[r] : _mm512_maskz_loadu_ps(m, cj + r * 16), acc[r][j]);
        // (masked forms: the plain _mm512_max_ps trips GCC 12's -Wuninitialized in its header)
        if constexpr (Finish == relu) v = _mm512_maskz_max_ps(__mmask16(0xffff), v, _mm512_setzero_ps());
        if constexpr (Finish == gate) {
          const __m512 gr = _mm512_maskz_loadu_ps(m, g + j * ldg + r * 16);
          v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(gr, _mm512_setzero_ps(), _CMP_GT_OQ), v);
        }
        _mm512_mask_storeu_ps(cj + r * 16, m, v);
      }
    }
  }
#endif
};

}  // namespace knead::linalg
