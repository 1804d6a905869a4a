#pragma once
/// @file
/// Maf<T>: the masked autoregressive flow layer (Papamakarios, Pavlakou and Murray 2017, "Masked
/// Autoregressive Flow for Density Estimation"), an affine autoregressive map conditioned by MADE.

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/threads.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/made.hpp"

namespace knead {

template <class T>
struct MafOptions {
  std::vector<Index> hidden = {64, 64};  ///< MADE hidden layer sizes, each at least D − 1
  InputOrder order{};                    ///< the order in which dimensions are generated
  LogScaleGuard<T> guard{};              ///< α = guard(a); a soft clamp by default
  bool identity_init = false;            ///< zero MADE's last layer: exactly the identity at the start
  std::uint64_t seed = 0;                ///< draws MADE's initial weights
};

/// Masked autoregressive flow: an affine map whose shift μ_i and log-scale α_i depend on the
/// dimensions before i in `order`, computed by one MADE; α = guard(a) for MADE's raw output a.
///
/// - forward (sampling, noise → data):  x_i = u_i·exp(α_i(x_{<i})) + μ_i(x_{<i}),
///   sequential in the order, but incremental: each MADE unit is computed once (the cost of about
///   one MADE pass, in D small steps).
/// - inverse (density, data → noise):   u_i = (x_i − μ_i(x_{<i}))·exp(−α_i(x_{<i})), one MADE pass.
/// - log|det ∂x/∂u| = Σ_i α_i (the Jacobian is triangular in the order with diagonal exp(α)).
///
/// Density evaluation is the fast direction, as in the paper; Iaf (iaf.hpp) is its inverse.
/// Parameters are MADE's. Passes throw std::invalid_argument on a wrong shape, an empty batch, a
/// non-finite input, or a non-finite result (exp(α) overflowed, which a guard bound prevents, or
/// a parameter is not finite).
template <class T>
class Maf {
 public:
  using Scalar = T;

  explicit Maf(Index dim, MafOptions<T> options = {})
      : made_(make_made(dim, options)), guard_(options.guard), dim_(dim) {}

  static constexpr std::string_view name() { return "Maf"; }
  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] const Made<T>& made() const { return made_; }
  [[nodiscard]] Made<T>& made() { return made_; }
  [[nodiscard]] const LogScaleGuard<T>& guard() const { return guard_; }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) const {
    constexpr std::string_view function = "Maf::forward_and_log_det";
    start_pass(function, u);
    const Index d = dim_, n = u.cols();
    u_ = u;
    log_scale_.resize(d, n);
    x.resize(d, n);
    // Incremental autoregressive inversion: step k computes only MADE's units of degree k and the
    // outputs of dimension i = order[k] (see Made::incremental_step), then sets x_i. Each unit is
    // computed once, at its final value, so the pass leaves MADE's activations and outputs as a
    // full pass at the final x would: backward() differentiates it like an inverse pass.
    Matrix<T>& made_input = made_.begin_incremental(n, conditioner_);
    detail::parallel_columns(
        n, detail::column_chunks(n, made_.mlp().min_chunk()), [&](Index c0, Index c1, int) {
          if (c1 <= c0) return;
          for (Index k = 0; k < d; ++k) {
            const Index i = made_.order()[std::size_t(k)];
            made_.incremental_step(k, c0, c1, conditioner_);
            for (Index j = c0; j < c1; ++j) {
              const T alpha = guard_.apply(conditioner_(d + i, j));
              log_scale_(i, j) = alpha;
              x(i, j) = made_input(i, j) = u(i, j) * std::exp(alpha) + conditioner_(i, j);
            }
          }
        });
    made_.end_incremental(n);
    log_det = log_scale_.colwise().sum();  // α_i collected at the step that set x_i
    exp_neg_log_scale_ = (-log_scale_).array().exp();
    finish_pass(function, x, log_det, Direction::forward);
  }

  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) const {
    constexpr std::string_view function = "Maf::inverse_and_log_det";
    start_pass(function, x);
    const Index d = dim_, n = x.cols();
    u.resize(d, n);
    u_.resize(d, n);
    log_scale_.resize(d, n);
    exp_neg_log_scale_.resize(d, n);
    log_det.resize(n);
    // The elementwise rest of the pass runs on each thread's columns inside MADE's job.
    made_.forward(x, conditioner_, [&](Index c0, Index c1) {
      // Flat vectorised passes over the d × (c1 − c0) entries, contiguous, after one pass that
      // splits the conditioner's columns [μ; a] into μ (into u_) and α: Eigen's expressions on its
      // row blocks went entry by entry when d is small, and a copy per column was a call to memmove
      // (together a tenth of MAF's density time at D = 2).
      const Index m = c1 - c0, size = d * m;
      const T* cond = conditioner_.data() + c0 * 2 * d;  // column j: μ at [0, d), a at [d, 2d)
      T* alpha = log_scale_.data() + c0 * d;
      T* e = exp_neg_log_scale_.data() + c0 * d;
      T* mu_then_u = u_.data() + c0 * d;
      for (Index k = 0, i = 0, from = 0; k < size; ++k) {  // from = 2d·j + i for entry k = d·j + i
        mu_then_u[k] = cond[from];
        alpha[k] = cond[from + d];
        if (++i == d) {
          i = 0;
          from += d + 1;
        } else {
          ++from;
        }
      }
      Eigen::Map<Matrix<T>> alpha_flat(alpha, size, 1);
      guard_.apply(alpha_flat, alpha_flat);
      Eigen::Map<Matrix<T>>(e, size, 1) = (-alpha_flat).array().exp().matrix();
      // u = (x − μ) e^{−α}
      Eigen::Map<Matrix<T>> u_flat(mu_then_u, size, 1);
      if (x.outerStride() == d)
        u_flat = (Eigen::Map<const Matrix<T>>(x.data() + c0 * d, size, 1) - u_flat)
                     .cwiseProduct(Eigen::Map<const Matrix<T>>(e, size, 1));
      else
        for (Index j = 0; j < m; ++j)
          for (Index i = 0; i < d; ++i)
            mu_then_u[j * d + i] = (x(i, c0 + j) - mu_then_u[j * d + i]) * e[j * d + i];
      std::copy_n(mu_then_u, size, u.data() + c0 * d);
      for (Index j = 0; j < m; ++j) {
        T sum = 0;
        for (Index i = 0; i < d; ++i) sum += alpha[j * d + i];
        log_det(c0 + j) = -sum;
      }
    });
    finish_pass(function, u, log_det, Direction::inverse);
  }

  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    if (last_ == Direction::none)
      detail::fail<std::logic_error>("Maf::backward",
                                     "no forward or inverse pass to differentiate; call "
                                     "forward_and_log_det or inverse_and_log_det first",
                                     NoGrad::hint);
    const Index d = dim_, n = u_.cols();
    detail::check_backward("Maf::backward", grad_out, grad_log_det, d, n);
    guard_slope_.resize(d, n);
    grad_in.resize(d, n);
    if (last_ == Direction::inverse) {
      // u = (x − μ) e^{−α}: ∂L/∂x = e^{−α} ∂L/∂u + the path through MADE (see conditioner_vjp)
      conditioner_vjp(grad_out, grad_log_det, T(1), &grad_x_made_, true, true, [&](Index c0, Index c1) {
        const Index m = c1 - c0;
        grad_in.middleCols(c0, m) =
            grad_out.middleCols(c0, m).cwiseProduct(exp_neg_log_scale_.middleCols(c0, m)) +
            grad_x_made_.middleCols(c0, m);
      });
      return;
    }
    // Forward (sequential) pass, by implicit differentiation: no need to keep D MADE passes,
    // and exact. Let u = h(x, θ) be the inverse map and J = ∂h/∂x, lower triangular in the
    // order with diagonal e^{−α}. From h(f(u, θ), θ) = u: ∂x/∂u = J⁻¹ and ∂x/∂θ = −J⁻¹ ∂h/∂θ;
    // and ld_fwd(u) = −ld_inv(x). So with
    //   g = ∂L/∂x + (∂ld_inv/∂x)ᵀ (−∂L/∂ld)   and   v = J⁻ᵀ g:
    //   ∂L/∂u = v,   ∂L/∂θ = (∂h/∂θ)ᵀ (−v) + (∂ld_inv/∂θ)ᵀ (−∂L/∂ld),
    // the latter being the inverse pass's vjp with cotangents (−v, −∂L/∂ld).
    // Jᵀ v = g is solved by the sweeps v ← v + diag(J)⁻¹ (g − Jᵀ v) from v = 0: the error is
    // multiplied each sweep by diag(J)⁻¹ (diag(J) − Jᵀ), strictly triangular hence nilpotent, so
    // D sweeps are exact. Writing Jᵀ v = e^{−α} v + R(v), with R the path through MADE, a sweep
    // is v ← e^{α} (g − R(v)); and g − R(v) = ∂L/∂x − conditioner_vjp(v, ∂L/∂ld), one MADE
    // backward pass per sweep (inputs only).
    scale_ = log_scale_.array().exp();
    v_.setZero(d, n);
    for (Index sweep = 0; sweep < d; ++sweep)
      conditioner_vjp(v_, grad_log_det, T(1), &grad_x_made_, false, sweep == 0, [&](Index c0, Index c1) {
        const Index m = c1 - c0;
        v_.middleCols(c0, m) = (grad_out.middleCols(c0, m) - grad_x_made_.middleCols(c0, m))
                                   .cwiseProduct(scale_.middleCols(c0, m));
      });
    conditioner_vjp(v_, grad_log_det, T(-1), nullptr, true, false, NoColumns{});
    grad_in = v_;
  }

  [[nodiscard]] Index num_parameters() const { return made_.num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return made_.parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return made_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return made_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    made_.bind_parameters(storage, offset);
  }

 private:
  static Made<T> make_made(Index dim, const MafOptions<T>& options) {
    const std::vector<Index> order = Made<T>::validate("Maf", dim, options.hidden, options.order);
    options.guard.validate("Maf");
    return Made<T>(dim, options.hidden, InputOrder::permutation(order), options.seed, options.identity_init);
  }

  void start_pass(std::string_view function, MatrixCRef<T> in) const {
    detail::check_batch(function, in, dim_);
    detail::check_finite(function, "input batch", in);
    last_ = Direction::none;  // a pass that throws midway leaves nothing to differentiate
  }
  void finish_pass(std::string_view function, const Matrix<T>& out, const RowVector<T>& log_det,
                   Direction pass) const {
    detail::check_finite(function, "result (exp of a log-scale overflowed, or a parameter is not finite)",
                         out);
    detail::check_finite(function, "log-det", log_det);
    last_ = NoGrad::recorded(pass);
  }

  /// The path through MADE of the inverse pass's vector-Jacobian product at the stored point:
  /// given the cotangents s·∂L/∂u and s·∂L/∂ld_inv, runs MADE's backward pass with
  ///   u = (x − μ) e^{−α}, ld_inv = −Σ_i α_i, α = guard(a):
  ///   ∂L/∂μ = −s ∂L/∂u e^{−α},   ∂L/∂a = −s (∂L/∂u u + ∂L/∂ld_inv) guard'(a),
  /// writing MADE's ∂L/∂x into *grad_x (without the direct term e^{−α} ∂L/∂u) and adding ∂L/∂θ
  /// when `accumulate`. guard'(a) is computed first when `new_slope`. The cotangents of MADE's
  /// outputs are formed on each thread's columns inside MADE's backward job, and then(c0, c1) runs
  /// on each thread's columns of *grad_x when they are done.
  template <class ColumnsDone>
  void conditioner_vjp(MatrixCRef<T> grad_u, RowVectorCRef<T> grad_log_det, T s, Matrix<T>* grad_x,
                       bool accumulate, bool new_slope, ColumnsDone&& then) {
    const Index d = dim_;
    grad_conditioner_.resize(2 * d, u_.cols());
    made_.backward(
        grad_conditioner_, grad_x, accumulate,
        [&](Index c0, Index c1) {
          const Index m = c1 - c0;
          if (new_slope)
            guard_.derivative(conditioner_.bottomRows(d).middleCols(c0, m), log_scale_.middleCols(c0, m),
                              guard_slope_.middleCols(c0, m));
          grad_conditioner_.topRows(d).middleCols(c0, m) =
              (-s) * grad_u.middleCols(c0, m).cwiseProduct(exp_neg_log_scale_.middleCols(c0, m));
          auto grad_a = grad_conditioner_.bottomRows(d).middleCols(c0, m);
          grad_a = grad_u.middleCols(c0, m).cwiseProduct(u_.middleCols(c0, m));
          grad_a.rowwise() += grad_log_det.segment(c0, m);
          grad_a.array() *= (-s) * guard_slope_.middleCols(c0, m).array();
        },
        then);
  }

  Made<T> made_;
  LogScaleGuard<T> guard_;
  Index dim_;
  mutable Direction last_ = Direction::none;
  mutable Matrix<T> u_;                  // noise side of the last pass (its input or its output)
  mutable Matrix<T> conditioner_;        // MADE output [μ; a] at the data side of the last pass
  mutable Matrix<T> log_scale_;          // α = guard(a) of the last pass
  mutable Matrix<T> exp_neg_log_scale_;  // e^{−α}
  Matrix<T> scale_, guard_slope_, grad_conditioner_, grad_x_made_, v_;
};

static_assert(check_bijector<Maf<double>>());

}  // namespace knead
