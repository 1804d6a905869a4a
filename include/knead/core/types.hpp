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

/// Which way a bijector was last evaluated; backward() differentiates that pass.
enum class Direction { none, forward, inverse };

/// A value together with the per-sample log|det J| of the map that produced it.
template <class T>
struct ValueAndLogDet {
  Matrix<T> value;
  RowVector<T> log_det;
};

}  // namespace knead
