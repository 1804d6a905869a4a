#pragma once
/// @file
/// Eigen aliases used throughout knead. A batch is a D×N matrix, one sample per column; a
/// per-sample quantity such as a log-det is a 1×N row vector.

#include <Eigen/Core>

namespace knead {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

/// Read-only views accepted by every call, so blocks and maps pass without copies.
template <class T>
using MatrixCRef = Eigen::Ref<const Matrix<T>>;
template <class T>
using RowVectorCRef = Eigen::Ref<const RowVector<T>>;

/// Resizes a dynamic Eigen matrix or vector (values left unspecified, as Eigen's resize()) so that
/// it stays valid when the allocation fails. Eigen's resize() frees the old storage before it
/// allocates the new one; when that allocation throws std::bad_alloc, the matrix keeps the freed
/// pointer and its destructor frees it again. Here the old storage goes first into a temporary
/// (the matrix is empty while the new storage is allocated), so a failed growth leaves an empty
/// matrix and the exception. The memory held at the peak is the same: never old and new together.
/// Every buffer knead grows (workspaces and the outputs it sizes) goes through this function.
template <class Derived>
void resize_workspace(Eigen::PlainObjectBase<Derived>& m, Index rows, Index cols) {
  if (m.rows() == rows && m.cols() == cols) return;
  if (m.size() != rows * cols) m.derived() = Derived();  // the temporary takes the old storage and frees it
  m.resize(rows, cols);
}
/// The same for a vector (a row vector: 1 × n; a column vector: n × 1).
template <class Derived>
void resize_workspace(Eigen::PlainObjectBase<Derived>& v, Index n) {
  static_assert(Derived::IsVectorAtCompileTime, "knead::resize_workspace(v, n) takes a vector");
  resize_workspace(v, Derived::RowsAtCompileTime == 1 ? 1 : n, Derived::RowsAtCompileTime == 1 ? n : 1);
}

/// Which way a bijector was last evaluated; backward() differentiates that pass.
enum class Direction { none, forward, inverse };

/// A value together with the per-sample log|det J| of the map that produced it.
template <class T>
struct ValueAndLogDet {
  Matrix<T> value;
  RowVector<T> log_det;
};

}  // namespace knead
