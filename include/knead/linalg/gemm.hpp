#pragma once
/// @file
/// GEMM on raw column-major pointers, built from Eigen's packing routines and SIMD micro-kernel
/// (gebp), with thread-local packing buffers so that no call allocates once warm.
///
/// Besides a plain C += α·op(A)·op(B), it exposes the two halves of a GEMM separately, for the
/// masked layers (PackedGemm): pack_lhs() packs one block of weights (once per pass, shared by all
/// threads), pack_rhs() packs a thread's slice of the batch once per layer where the kernel needs
/// it packed, and multiply() multiplies a packed weight block by a depth range of the batch, on
/// the kernel of a KernelPath (kernel_path.hpp): Eigen's micro-kernel or knead's (avx512_sgemm.hpp,
/// avx2_sgemm.hpp). Eigen's own GEMM would repack the batch for every block and every thread would
/// repack the weights.

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "knead/core/types.hpp"
#include "knead/linalg/avx2_sgemm.hpp"
#include "knead/linalg/avx512_sgemm.hpp"
#include "knead/linalg/eigen_internal.hpp"
#include "knead/linalg/kernel_path.hpp"
#include "knead/linalg/panel_layout.hpp"

namespace knead::linalg {

/// A buffer aligned as Eigen allocates (the kernels' packed operands start on SIMD boundaries).
template <class T>
using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;

/// b's entries, grown to at least `size` of them (a buffer grows, never shrinks: once warm, no
/// call allocates).
template <class T>
T* ensure(Buffer<T>& b, Index size) {
  if (Index(b.size()) < size) b.resize(std::size_t(size));
  return b.data();
}

/// Per-thread scratch for the GEMM packing buffers, masked-block copies and weights packed for
/// one call; grows, never shrinks.
template <class T>
struct KernelScratch {
  using Buffer = linalg::Buffer<T>;
  Buffer pack_a, pack_b, block, product, weights;
  static KernelScratch& local() {
    thread_local KernelScratch scratch;
    return scratch;
  }
  static T* ensure(Buffer& b, Index size) { return linalg::ensure(b, size); }
};

/// Eigen's level-3 blocking over the thread-local packing buffers (Eigen's own would allocate
/// them on the heap for every large product). The buffers are sized for the largest blocks a
/// product of m rows, depth k and up to `column_capacity` columns can choose (mc ≤ m, nc ≤ n; kc
/// depends on k alone), so that a later call with more columns, up to that capacity, finds them
/// large enough: a thread's share of a batch can grow from call to call (detail::Balance).
template <class T>
class ScratchBlocking : public eigen_internal::level3_blocking<T, T> {
 public:
  ScratchBlocking(Index m, Index n, Index k, Index column_capacity) {
    this->m_mc = m;
    this->m_nc = n;
    this->m_kc = k;
    eigen_internal::computeProductBlockingSizes<T, T, 1, Index>(this->m_kc, this->m_mc, this->m_nc, Index(1));
    auto& s = KernelScratch<T>::local();
    this->m_blockA = KernelScratch<T>::ensure(s.pack_a, this->m_kc * m);
    this->m_blockB = KernelScratch<T>::ensure(s.pack_b, this->m_kc * std::max(n, column_capacity));
  }
};

/// Widths of the slices a call cuts a batch into, counted from the call's first column, are
/// multiples of this many columns: whole panels of B for every kernel (knead's 6 columns, Eigen's 4
/// for float and double). Eigen's micro-kernel sums the columns past the last whole panel in
/// another order than a panel's, so a slice of another width would give a column other bits
/// depending on where the call began (a thread's share of the batch).
inline constexpr Index slice_step =
    std::lcm(PanelLayout::nr, std::lcm(Index(eigen_internal::gebp_traits<float, float>::nr),
                                       Index(eigen_internal::gebp_traits<double, double>::nr)));

/// C += alpha · op(A) · op(B), all column-major with leading dimensions; op(A) is m × k (A is
/// stored k × m when TransA), op(B) is k × n (B stored n × k when TransB). Uses Eigen's
/// cache-blocked, SIMD micro-kernel (gebp). Its packing buffers are sized for up to
/// `column_capacity` columns (ScratchBlocking): a caller whose n varies passes its largest n.
template <bool TransA, bool TransB, class T>
void gemm(Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b, Index ldb, T* c, Index ldc,
          Index column_capacity = 0) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  using Eigen::ColMajor, Eigen::RowMajor;
  ScratchBlocking<T> blocking(m, n, k, column_capacity);
  eigen_internal::general_matrix_matrix_product<Index, T, TransA ? RowMajor : ColMajor, false, T,
                                                TransB ? RowMajor : ColMajor, false, ColMajor,
                                                1>::run(m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking,
                                                        nullptr);
}

/// The packing routines and micro-kernels for C (column-major) += A·B, A given column-major (or
/// row-major: the transpose of a column-major matrix) and B column-major, of a kernel named by its
/// KernelPath: Eigen's (gebp, `portable`), or knead's AVX-512 or AVX2 kernel for float (any path
/// is Eigen's for other types: see kernel()). The packed layouts belong to the kernel: pack and
/// multiply with the same one (knead's two kernels share theirs, PanelLayout). knead's kernels can
/// also read B where it is stored (RhsView::stored). The caller passes only paths the CPU runs.
template <class T>
struct PackedGemm {
  using Traits = eigen_internal::gebp_traits<T, T>;
  using ColMapper = eigen_internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using RowMapper = eigen_internal::const_blas_data_mapper<T, Index, Eigen::RowMajor>;
  using ResMapper = eigen_internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;

  // Eigen's micro-kernel reads packed A with aligned SIMD loads; MaskedLinearPlan starts every
  // packed block at a multiple of 16 entries from an Eigen-aligned buffer.
  static_assert(16 * sizeof(T) % EIGEN_DEFAULT_ALIGN_BYTES == 0,
                "MaskedLinearPlan starts packed blocks at multiples of 16 entries");

  /// The kernel T's products run on for `path`: the path's own for float, Eigen's otherwise.
  [[nodiscard]] static KernelPath kernel(KernelPath path = kernel_path()) {
    return std::is_same_v<T, float> ? path : KernelPath::portable;
  }
  /// Whether `kernel` is one of knead's own (not Eigen's).
  [[nodiscard]] static bool knead_kernel(KernelPath kernel) {
    return PackedGemm::kernel(kernel) != KernelPath::portable;
  }
  /// Rows of the kernel's row panel: work split at multiples of it from a block's top is computed
  /// alike by every part.
  static Index mr(KernelPath kernel) { return knead_kernel(kernel) ? PanelLayout::mr : Index(Traits::mr); }
  /// Columns of the kernel's panels of B: pack_rhs() of columns [c0, c1) with c0 a multiple of it
  /// (and c1 one, or the end) lands where packing all the columns would put them.
  static Index nr(KernelPath kernel) { return knead_kernel(kernel) ? PanelLayout::nr : Index(Traits::nr); }
  /// Whether multiply() is given a stored A (a gradient, multiplied once) where it is, not packed
  /// first: on knead's AVX-512 kernel, whose tiles read 64 contiguous rows (256 bytes) of A per step
  /// of k. The AVX2 kernel's tiles read 16 rows (one 64-byte line) per step of k, a column of A
  /// apart; on a 512 × 512 × 512 product after a cache sweep they reach 48–65 GFLOP/s so, and 84–85
  /// with A packed first, the packing included (bench/README.md, "Figures on AVX2").
  [[nodiscard]] static bool reads_lhs_stored(KernelPath kernel) {
    return PackedGemm::kernel(kernel) == KernelPath::avx512;
  }
  /// Entries pack_lhs() may write for a rows × depth block, any kernel: rows rounded up to 16,
  /// × depth.
  static constexpr Index packed_lhs_size(Index rows, Index depth) {
    return PanelLayout::packed_lhs_size(rows, depth);
  }

  /// Whether pack_lhs() on `kernel` applies a mask while packing (the AVX2 kernel's); the others
  /// pack a masked copy of the block.
  [[nodiscard]] static bool packs_masked(KernelPath kernel) {
#if KNEAD_HAS_X86_KERNELS
    return std::is_same_v<T, float> && kernel == KernelPath::avx2;
#else
    (void)kernel;  // no AVX2 kernel on this architecture
    return false;
#endif
  }

  /// Packs the rows × depth block A (column-major at a with leading dimension lda, or, when
  /// `transposed`, A = Sᵀ for S column-major at a, depth × rows) into at most
  /// packed_lhs_size(rows, depth) entries at packed. With `mask` (only where packs_masked(kernel):
  /// 0/1 entries at the positions of a's, leading dimension ldm), A ⊙ M.
  static void pack_lhs(KernelPath kernel, T* packed, const T* a, Index lda, Index rows, Index depth,
                       bool transposed, const T* mask = nullptr, Index ldm = 0) {
    if (mask != nullptr && !packs_masked(kernel))
      throw std::logic_error("PackedGemm::pack_lhs: a mask on a kernel path that does not apply masks");
    (void)ldm;  // read by the AVX2 kernel only, which other architectures do not have
    if constexpr (std::is_same_v<T, float>) {
#if KNEAD_HAS_AVX512_SGEMM
      if (kernel == KernelPath::avx512) return Avx512Sgemm::pack_lhs(packed, a, lda, rows, depth, transposed);
#endif
#if KNEAD_HAS_X86_KERNELS
      if (kernel == KernelPath::avx2)
        return Avx2Sgemm::pack_lhs(packed, a, lda, rows, depth, transposed, mask, ldm);
#endif
      if (kernel != KernelPath::portable)
        return PanelLayout::pack_lhs(packed, a, lda, rows, depth, transposed);
    }
    if (transposed) {
      eigen_internal::gemm_pack_lhs<T, Index, RowMapper, Traits::mr, Traits::LhsProgress,
                                    typename Traits::LhsPacket4Packing, Eigen::RowMajor>
          pack;
      pack(packed, RowMapper(a, lda), depth, rows);
    } else {
      eigen_internal::gemm_pack_lhs<T, Index, ColMapper, Traits::mr, Traits::LhsProgress,
                                    typename Traits::LhsPacket4Packing, Eigen::ColMajor>
          pack;
      pack(packed, ColMapper(a, lda), depth, rows);
    }
  }

  /// Packs the depth × cols matrix B (column-major at b with leading dimension ldb, or, when
  /// `transposed`, B = Sᵀ for S column-major at b, cols × depth) into depth · cols entries, in
  /// panels of nr(kernel) columns.
  static void pack_rhs(KernelPath kernel, T* packed, const T* b, Index ldb, Index depth, Index cols,
                       bool transposed = false) {
    if constexpr (std::is_same_v<T, float>) {
#if KNEAD_HAS_AVX512_SGEMM
      if (kernel == KernelPath::avx512) return Avx512Sgemm::pack_rhs(packed, b, ldb, depth, cols, transposed);
#endif
      if (kernel != KernelPath::portable)
        return PanelLayout::pack_rhs(packed, b, ldb, depth, cols, transposed);
    }
    if (transposed) {
      eigen_internal::gemm_pack_rhs<T, Index, RowMapper, Traits::nr, Eigen::RowMajor> pack;
      pack(packed, RowMapper(b, ldb), depth, cols);
    } else {
      eigen_internal::gemm_pack_rhs<T, Index, ColMapper, Traits::nr, Eigen::ColMajor> pack;
      pack(packed, ColMapper(b, ldb), depth, cols);
    }
  }

  /// C(rows × cols) (+)= A·B for A (rows × depth) packed by pack_lhs of the same kernel (lda 0) or, for
  /// knead's kernels, as stored (column-major, leading dimension lda, rows a multiple of 16), and B
  /// as `b` says: packed by pack_rhs of the same kernel (a depth range of it needs no repacking), or
  /// as stored (knead's kernels only); stored as `store` says (knead's kernels do it in the tiles'
  /// stores).
  static void multiply([[maybe_unused]] KernelPath kernel, T* c, Index ldc, const T* a, Index lda, Index rows,
                       Index depth, const RhsView<T>& b, Index cols, const Store<T>& store = {}) {
    if (rows <= 0 || cols <= 0) return;
#if KNEAD_HAS_X86_KERNELS
    if constexpr (std::is_same_v<T, float>) {
      if (knead_kernel(kernel) && depth > 0) {
        if (lda != 0 && rows % PanelLayout::row_step != 0)
          throw std::logic_error("PackedGemm::multiply: A as stored needs a multiple of 16 rows");
        if (kernel == KernelPath::avx512)
          return Avx512Sgemm::multiply(c, ldc, a, lda, rows, depth, b, cols, store);
        return Avx2Sgemm::multiply(c, ldc, a, lda, rows, depth, b, cols, store);
      }
    }
#endif
    for (Index j = 0; store.start && j < cols; ++j) {
      if (store.bias != nullptr)
        std::copy(store.bias, store.bias + rows, c + j * ldc);
      else
        std::fill(c + j * ldc, c + j * ldc + rows, T(0));
    }
    if (depth > 0) {
      if (lda != 0 || !b.is_packed())
        throw std::logic_error("PackedGemm::multiply: Eigen's kernel reads A and B packed only");
      eigen_internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false>
          kernel_of_eigen;
      kernel_of_eigen(ResMapper(c, ldc), a, b.data, rows, depth, cols, T(1), depth, b.full_depth, 0, b.first);
    }
    for (Index j = 0; (store.relu || store.gate != nullptr) && j < cols; ++j)
      for (Index i = 0; i < rows; ++i) c[i + j * ldc] = store.finish(c[i + j * ldc], i, j);
  }
};

}  // namespace knead::linalg
