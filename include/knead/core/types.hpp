#pragma once
/// @file
/// Eigen aliases used throughout knead. A batch is a D×N matrix, one sample per column; a
/// per-sample quantity such as a log-det is a 1×N row vector.

#include <Eigen/Core>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>

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

/// A workspace that could not be grown: a std::bad_alloc (catch(std::bad_alloc) still catches it)
/// whose what() names the public pass that needed it and the size it needed.
class WorkspaceAllocationError : public std::bad_alloc {
 public:
  explicit WorkspaceAllocationError(std::string message)
      : message_(std::make_shared<const std::string>(std::move(message))) {}
  [[nodiscard]] const char* what() const noexcept override { return message_->c_str(); }

 private:
  std::shared_ptr<const std::string> message_;  // shared: copying an exception cannot throw
};

namespace detail {

/// The public pass running on this thread (the outermost one a user called), or empty; set by
/// InUseFlag::enter (knead/core/in_use.hpp) and named by a WorkspaceAllocationError.
inline thread_local std::string_view current_pass;

/// A byte count as "12.3 GB" (decimal units).
inline std::string format_bytes(long double bytes) {
  const char* const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  std::size_t unit = 0;
  while (bytes >= 1000 && unit + 1 < std::size(units)) {
    bytes /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0Lf %s" : "%.1Lf %s", bytes, units[unit]);
  return text;
}

/// The error for a rows × cols workspace of `value_bytes`-byte values that cannot be had.
[[noreturn]] inline void fail_workspace(Index rows, Index cols, std::size_t value_bytes, bool addressable) {
  const long double bytes = static_cast<long double>(rows) * static_cast<long double>(cols) * value_bytes;
  std::string message(current_pass.empty() ? std::string_view("knead::resize_workspace") : current_pass);
  message += ": a batch of " + std::to_string(cols) + " columns needs a workspace of " +
             std::to_string(rows) + " x " + std::to_string(cols) + " values (" + format_bytes(bytes) + ")";
  message += addressable ? ", which could not be allocated" : ", more than a process can address";
  message +=
      "; a pass kept for backward holds its whole batch: give it fewer columns (evaluation and "
      "sampling under knead::NoGrad run in bounded passes)";
  throw WorkspaceAllocationError(std::move(message));
}

}  // namespace detail

/// Resizes a dynamic Eigen matrix or vector (values left unspecified, as Eigen's resize()) so that
/// it stays valid when the allocation fails. Eigen's resize() frees the old storage before it
/// allocates the new one; when that allocation throws std::bad_alloc, the matrix keeps the freed
/// pointer and its destructor frees it again. Here the old storage goes first into a temporary
/// (the matrix is empty while the new storage is allocated), so a failed growth leaves an empty
/// matrix and the exception. The memory held at the peak is the same: never old and new together.
/// Every buffer knead grows (workspaces and the outputs it sizes) goes through this function.
///
/// A size whose bytes exceed what a process can address (rows·cols·sizeof(value) > PTRDIFF_MAX) is
/// refused before anything is freed; a failed allocation leaves the matrix empty. Both throw
/// WorkspaceAllocationError (a std::bad_alloc) naming the pass running on this thread and the size.
template <class Derived>
void resize_workspace(Eigen::PlainObjectBase<Derived>& m, Index rows, Index cols) {
  if (m.rows() == rows && m.cols() == cols) return;
  using Value = typename Derived::Scalar;
  constexpr Index max_values = std::numeric_limits<std::ptrdiff_t>::max() / Index(sizeof(Value));
  if (rows > 0 && cols > max_values / rows) detail::fail_workspace(rows, cols, sizeof(Value), false);
  if (m.size() != rows * cols) m.derived() = Derived();  // the temporary takes the old storage and frees it
  try {
    m.resize(rows, cols);
  } catch (const std::bad_alloc&) {
    detail::fail_workspace(rows, cols, sizeof(Value), true);
  }
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
