#pragma once
/// @file
/// The parts of Eigen's own matrix product that knead's GEMM (gemm.hpp) builds on: its cache
/// blocking, packing routines and SIMD micro-kernel (gebp). They live in Eigen::internal, which is
/// not Eigen's public interface and may change between versions, so every use of Eigen::internal in
/// knead goes through the names declared here, checked against the Eigen versions they are written
/// for: 3.4.x. Later versions are refused unless KNEAD_UNTESTED_EIGEN_INTERNALS is defined.

#include <Eigen/Core>

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error \
    "knead needs Eigen 3.4: knead/linalg/gemm.hpp uses Eigen 3.4's internal packing routines and GEMM micro-kernel"
#endif
#if EIGEN_VERSION_AT_LEAST(3, 4, 90) && !defined(KNEAD_UNTESTED_EIGEN_INTERNALS)
#error \
    "knead/linalg/gemm.hpp uses Eigen 3.4's internal packing routines and GEMM micro-kernel, which this newer Eigen may have changed; define KNEAD_UNTESTED_EIGEN_INTERNALS to try it anyway"
#endif

namespace knead::linalg::eigen_internal {

using Eigen::internal::blas_data_mapper;
using Eigen::internal::computeProductBlockingSizes;
using Eigen::internal::const_blas_data_mapper;
using Eigen::internal::gebp_kernel;
using Eigen::internal::gebp_traits;
using Eigen::internal::gemm_pack_lhs;
using Eigen::internal::gemm_pack_rhs;
using Eigen::internal::general_matrix_matrix_product;
using Eigen::internal::level3_blocking;

}  // namespace knead::linalg::eigen_internal
