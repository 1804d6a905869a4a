#pragma once
/// @file
/// Argument checks shared by every public call. Each error names the function and the bad value.
///
/// Two tiers:
/// - checks of what a caller passes (shapes, non-finite values, options) always run and throw
///   std::invalid_argument via detail::fail;
/// - KNEAD_ASSERT(condition, function, message...) states an invariant that only a bug in knead
///   itself can break (a part returning a result of the wrong shape inside a chain). It throws
///   std::logic_error with "function: message" when the condition is false. It is on by default;
///   compiling with -DKNEAD_NO_ASSERT (the same in every translation unit of a program) removes
///   the checks and does not evaluate their arguments.

#include <cmath>
#include <limits>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "knead/core/types.hpp"

namespace knead::detail {

/// Any streamable pieces written one after the other.
template <class... Parts>
std::string concatenate(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

/// Builds "function: message" from any streamable pieces.
template <class... Parts>
std::string message(std::string_view function, const Parts&... parts) {
  return concatenate(function, ": ", parts...);
}

template <class Error = std::invalid_argument, class... Parts>
[[noreturn]] void fail(std::string_view function, const Parts&... parts) {
  throw Error(message(function, parts...));
}

/// The failure of a KNEAD_ASSERT: an internal invariant broke.
template <class... Parts>
[[noreturn]] void assertion_failed(std::string_view function, const Parts&... parts) {
  fail<std::logic_error>(function, parts..., " (internal check failed: a bug in knead)");
}

}  // namespace knead::detail

#ifdef KNEAD_NO_ASSERT
// never evaluated, but the arguments still count as used (no unused-variable warnings)
#define KNEAD_ASSERT(condition, ...)                                                             \
  (false ? ((condition) ? static_cast<void>(0) : ::knead::detail::assertion_failed(__VA_ARGS__)) \
         : static_cast<void>(0))
#else
/// Checks an internal invariant: KNEAD_ASSERT(out.cols() == n, "Chain", "part returned ", ...).
#define KNEAD_ASSERT(condition, ...) \
  ((condition) ? static_cast<void>(0) : ::knead::detail::assertion_failed(__VA_ARGS__))
#endif

namespace knead::detail {

/// A batch must have `rows` rows and at least one column.
template <class Derived>
void check_batch(std::string_view function, const Eigen::MatrixBase<Derived>& batch, Index rows) {
  if (batch.rows() != rows)
    fail(function, "expected a batch with ", rows, " rows (one sample per column), got ", batch.rows(), "x",
         batch.cols());
  if (batch.cols() == 0) fail(function, "empty batch (0 columns)");
}

/// Per-sample row vector (such as a log-det gradient) of length n.
template <class Derived>
void check_per_sample(std::string_view function, const Eigen::MatrixBase<Derived>& v, Index n) {
  if (v.rows() != 1 || v.cols() != n)
    fail(function, "expected a 1x", n, " per-sample row vector, got ", v.rows(), "x", v.cols());
}

/// Whether every entry is finite. |v| ≤ max is false exactly for ±inf and NaN: an or-reduction
/// without branches, which vectorises; a caller looks for the first bad entry only when this is
/// false (a loop that stops at the first non-finite entry does not vectorise: 7 % of a `knead fit`
/// step at D = 8, hidden 128).
template <class T>
[[nodiscard]] bool all_finite(std::span<const T> values) {
  constexpr T max = std::numeric_limits<T>::max();
  int bad = 0;
  for (const T v : values) bad |= int(!(std::abs(v) <= max));
  return bad == 0;
}

template <class Derived>
void check_finite(std::string_view function, std::string_view what, const Eigen::DenseBase<Derived>& values) {
  // |v| ≤ max is false exactly for ±inf and NaN: an or-reduction without branches, which
  // vectorises (every pass checks its input and result, so this runs on every call). The position
  // of the first bad value is looked for only when there is one.
  using Scalar = typename Derived::Scalar;
  const Derived& v = values.derived();
  constexpr Scalar max = std::numeric_limits<Scalar>::max();
  int bad = 0;
  bool flat = false;
  if constexpr (bool(Derived::Flags & Eigen::DirectAccessBit)) {
    // stored contiguously: one loop over all entries (a loop per column of a D = 2 batch would not
    // vectorise: 4 % of a small MAF's density pass)
    flat = v.innerStride() == 1 && (v.outerStride() == v.innerSize() || v.outerSize() <= 1);
    if (flat) bad = int(!all_finite(std::span<const Scalar>(v.data(), std::size_t(v.size()))));
  }
  if (!flat)
    for (Index j = 0; j < v.cols(); ++j)
      for (Index i = 0; i < v.rows(); ++i) bad |= int(!(std::abs(v.coeff(i, j)) <= max));
  if (bad == 0) return;
  for (Index j = 0; j < v.cols(); ++j)
    for (Index i = 0; i < v.rows(); ++i)
      if (!std::isfinite(static_cast<double>(v.coeff(i, j))))
        fail(function, what, " has a non-finite value ", v.coeff(i, j), " at (", i, ", ", j, ")");
}

inline void check_positive(std::string_view function, std::string_view what, Index value) {
  if (value < 1) fail(function, what, " must be at least 1, got ", value);
}

}  // namespace knead::detail

namespace knead::detail {

/// The gradients handed to backward() must match the batch of the pass they differentiate.
template <class A, class B>
void check_backward(std::string_view function, const Eigen::MatrixBase<A>& grad_out,
                    const Eigen::MatrixBase<B>& grad_log_det, Index rows, Index cols) {
  if (grad_out.rows() != rows || grad_out.cols() != cols)
    fail(function, "backward expected a ", rows, "x", cols,
         " output gradient (the shape of the last pass), got ", grad_out.rows(), "x", grad_out.cols());
  check_per_sample(function, grad_log_det, cols);
}

}  // namespace knead::detail
