#pragma once
/// @file
/// Permute: a fixed reordering of the dimensions, placed between coupling or autoregressive
/// layers so that every dimension gets transformed (the reversals of NICE, RealNVP and MAF).

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

/// A fixed permutation p of the D dimensions; no parameters.
///
/// - forward:  x_i = u_{p[i]}   (row i of the output is row p[i] of the input: a gather)
/// - inverse:  u_j = x_{q[j]}   with q = p⁻¹, i.e. u_{p[i]} = x_i
/// - log|det ∂x/∂u| = 0   (a permutation matrix has determinant ±1)
///
/// Dinh et al. 2015 (NICE) and Papamakarios et al. 2017 (MAF) reverse the order between layers
/// (`reverse(dim)`); a seeded `random(dim, seed)` permutation is the other common choice.
template <class T>
class Permute : public LeafParameters<T> {
 public:
  using Scalar = T;

  /// `permutation` must hold each of 0, …, D−1 exactly once (D ≥ 1).
  explicit Permute(std::vector<Index> permutation)
      : LeafParameters<T>(0), perm_(std::move(permutation)), inverse_(perm_.size(), -1) {
    const Index d = dim();
    if (d == 0) detail::fail("Permute", "empty permutation (it needs at least one entry)");
    for (Index i = 0; i < d; ++i) {
      const Index p = perm_[std::size_t(i)];
      if (p < 0 || p >= d)
        detail::fail("Permute", "permutation entry ", p, " at position ", i, " is out of range [0, ", d, ")");
      Index& slot = inverse_[std::size_t(p)];
      if (slot >= 0)
        detail::fail("Permute", "permutation entry ", p, " is repeated (at positions ", slot, " and ", i,
                     ")");
      slot = i;
    }
  }

  /// D−1, …, 1, 0: the reversal used between the layers of NICE and MAF.
  static Permute reverse(Index dim) {
    detail::check_positive("Permute::reverse", "dim", dim);
    std::vector<Index> p(static_cast<std::size_t>(dim));
    for (Index i = 0; i < dim; ++i) p[std::size_t(i)] = dim - 1 - i;
    return Permute(std::move(p));
  }

  /// A uniformly random permutation, the same for the same seed on every platform: a
  /// Fisher–Yates shuffle driven by the raw output of mt19937_64 (whose sequence the standard
  /// fixes, unlike those of std::shuffle and the std distributions).
  static Permute random(Index dim, std::uint64_t seed) {
    detail::check_positive("Permute::random", "dim", dim);
    std::vector<Index> p(static_cast<std::size_t>(dim));
    for (Index i = 0; i < dim; ++i) p[std::size_t(i)] = i;
    std::mt19937_64 engine(seed);
    for (Index i = dim - 1; i > 0; --i) std::swap(p[std::size_t(i)], p[std::size_t(below(engine, i + 1))]);
    return Permute(std::move(p));
  }

  static constexpr std::string_view name() { return "Permute"; }
  [[nodiscard]] Index dim() const { return Index(perm_.size()); }
  /// p: forward output row i is input row p[i].
  [[nodiscard]] const std::vector<Index>& permutation() const { return perm_; }
  /// q = p⁻¹: inverse output row j is input row q[j].
  [[nodiscard]] const std::vector<Index>& inverse_permutation() const { return inverse_; }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    detail::check_batch("Permute::forward_and_log_det", u, dim());
    gather(u, perm_, x);
    resize_workspace(log_det, u.cols());
    log_det.setZero();
    cols_ = u.cols();
    this->record(Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    detail::check_batch("Permute::inverse_and_log_det", x, dim());
    gather(x, inverse_, u);
    resize_workspace(log_det, x.cols());
    log_det.setZero();
    cols_ = x.cols();
    this->record(Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    const Direction pass = this->last_pass("Permute::backward");
    detail::check_backward("Permute::backward", grad_out, grad_log_det, dim(), cols_);
    // The Jacobian of a gather by p is the permutation matrix P; its transpose gathers by p⁻¹.
    // forward (gather by p):  ∂L/∂u = Pᵀ ∂L/∂x = gather of ∂L/∂x by q
    // inverse (gather by q):  ∂L/∂x = gather of ∂L/∂u by p.  The log-det is constant.
    gather(grad_out, pass == Direction::forward ? inverse_ : perm_, grad_in);
  }

 private:
  /// out.row(i) = in.row(index[i]), column by column: a column is contiguous and small, while a
  /// row of a column-major batch is strided.
  static void gather(MatrixCRef<T> in, const std::vector<Index>& index, Matrix<T>& out) {
    resize_workspace(out, in.rows(), in.cols());
    const Index d = in.rows();
    for (Index j = 0; j < in.cols(); ++j) {
      const T* from = in.data() + j * in.outerStride();
      T* to = out.data() + j * d;
      for (Index i = 0; i < d; ++i) to[i] = from[index[std::size_t(i)]];
    }
  }

  /// Uniform on [0, n) by rejection, so no residue is favoured.
  static Index below(std::mt19937_64& engine, Index n) {
    const auto range = static_cast<std::uint64_t>(n);
    const std::uint64_t limit = std::uint64_t(-1) - std::uint64_t(-1) % range;  // multiple of range
    std::uint64_t draw = engine();
    while (draw >= limit) draw = engine();
    return static_cast<Index>(draw % range);
  }

  std::vector<Index> perm_;
  std::vector<Index> inverse_;
  Index cols_ = 0;  // batch size of the last pass, for backward's shape check
};

static_assert(check_bijector<Permute<double>>());

}  // namespace knead
