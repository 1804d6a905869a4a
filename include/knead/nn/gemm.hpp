#pragma once
/// @file
/// GEMM on raw column-major pointers, built from Eigen's packing routines and SIMD micro-kernel
/// (gebp), with thread-local packing buffers so that no call allocates once warm.
///
/// Besides a plain C += α·op(A)·op(B), it exposes the two halves of a GEMM separately, for the
/// masked layers: pack_lhs() packs one block of weights (once per pass, shared by all threads),
/// pack_rhs() packs a thread's slice of the batch once per layer, and multiply_packed() multiplies a
/// packed weight block by a depth range of the packed batch. Eigen's own GEMM would repack the
/// batch for every block and every thread would repack the weights.

#include <vector>

#include <Eigen/Core>

#include "knead/core/types.hpp"

namespace knead::detail {

/// Per-thread scratch for the GEMM packing buffers, masked-block copies and weights packed for
/// one call; grows, never shrinks.
template <class T>
struct KernelScratch {
  using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;
  Buffer pack_a, pack_b, block, product, weights;
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

/// Eigen's packing routines and micro-kernel for C (column-major) += A·B, A given column-major
/// (or row-major: the transpose of a column-major matrix) and B column-major.
template <class T>
struct PackedGemm {
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using ColMapper = Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using RowMapper = Eigen::internal::const_blas_data_mapper<T, Index, Eigen::RowMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;

  // The micro-kernel reads packed A with aligned SIMD loads; MaskedLinearPlan starts every packed
  // block at a multiple of 16 entries from an Eigen-aligned buffer.
  static_assert(16 * sizeof(T) % EIGEN_DEFAULT_ALIGN_BYTES == 0,
                "MaskedLinearPlan starts packed blocks at multiples of 16 entries");

  /// Packs the rows × depth block A (column-major at a with leading dimension lda, or, when
  /// `transposed`, A = Sᵀ for S column-major at a, depth × rows) into rows · depth entries at packed.
  static void pack_lhs(T* packed, const T* a, Index lda, Index rows, Index depth, bool transposed) {
    if (transposed) {
      Eigen::internal::gemm_pack_lhs<T, Index, RowMapper, Traits::mr, Traits::LhsProgress,
                                     typename Traits::LhsPacket4Packing, Eigen::RowMajor>
          pack;
      pack(packed, RowMapper(a, lda), depth, rows);
    } else {
      Eigen::internal::gemm_pack_lhs<T, Index, ColMapper, Traits::mr, Traits::LhsProgress,
                                     typename Traits::LhsPacket4Packing, Eigen::ColMajor>
          pack;
      pack(packed, ColMapper(a, lda), depth, rows);
    }
  }

  /// Packs the depth × cols matrix B (column-major at b with leading dimension ldb, or, when
  /// `transposed`, B = Sᵀ for S column-major at b, cols × depth) into depth · cols entries: panels
  /// of Traits::nr columns, each depth-major, then the remaining columns one by one.
  static void pack_rhs(T* packed, const T* b, Index ldb, Index depth, Index cols, bool transposed = false) {
    if (transposed) {
      Eigen::internal::gemm_pack_rhs<T, Index, RowMapper, Traits::nr, Eigen::RowMajor> pack;
      pack(packed, RowMapper(b, ldb), depth, cols);
    } else {
      Eigen::internal::gemm_pack_rhs<T, Index, ColMapper, Traits::nr, Eigen::ColMajor> pack;
      pack(packed, ColMapper(b, ldb), depth, cols);
    }
  }

  /// C(rows × cols) += A·B(first .. first + depth, :) for A packed by pack_lhs (rows × depth) and B
  /// packed whole by pack_rhs (full_depth × cols): a depth range of B needs no repacking.
  static void multiply_packed(T* c, Index ldc, const T* packed_a, Index rows, Index depth, const T* packed_b,
                              Index full_depth, Index first, Index cols) {
    if (rows <= 0 || depth <= 0 || cols <= 0) return;
    Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> kernel;
    kernel(ResMapper(c, ldc), packed_a, packed_b, rows, depth, cols, T(1), depth, full_depth, 0, first);
  }
};

}  // namespace knead::detail
