#pragma once
/// @file
/// Autoregressive<T, Transformer>: an elementwise transformer whose parameters for dimension i are
/// computed by MADE from the dimensions generated before i. MAF (maf.hpp) is its affine instance.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/threads.hpp"
#include "knead/nn/made.hpp"
#include "knead/transformers/additive.hpp"
#include "knead/transformers/affine.hpp"
#include "knead/transformers/transformer.hpp"

namespace knead {

/// Settings of an autoregressive layer's MADE.
template <class T>
struct AutoregressiveOptions {
  std::vector<Index> hidden = {64, 64};  ///< MADE hidden layer sizes, each at least D − 1
  InputOrder order{};                    ///< the order in which dimensions are generated
  bool identity_init = false;            ///< zero MADE's last layer (all parameters 0 at the start)
  std::uint64_t seed = 0;                ///< draws MADE's initial weights
  Index context_dim = 0;                 ///< rows of the context MADE reads (0: unconditional)
};

namespace detail {
inline constexpr std::string_view autoregressive_word = "Autoregressive";
}  // namespace detail

/// Autoregressive layer: x_i = f(u_i; θ_i(x_{<i})), with θ_i the P = params_per_dim() outputs of
/// one MADE for dimension i (row p·D + i is parameter p of dimension i), "<i" meaning before i in
/// `order`, and f an elementwise transformer (transformers/transformer.hpp).
///
/// - inverse (density, data → noise):  u_i = f⁻¹(x_i; θ_i(x_{<i})), one MADE pass.
/// - forward (sampling, noise → data): sequential in the order, but incremental: step k computes
///   only MADE's units of degree k and the outputs of dimension order[k] (Made::incremental_step),
///   then sets x_i, so every unit is computed once (about one MADE pass, in D small steps).
/// - log|det ∂x/∂u| = Σ_i log|f'(u_i)| (the Jacobian is triangular in the order).
///
/// With AffineTransformer this is MAF (Papamakarios, Pavlakou and Murray 2017, "Masked
/// Autoregressive Flow for Density Estimation"); see Maf. Parameters are MADE's. Passes throw
/// std::invalid_argument on a wrong shape, an empty batch, a non-finite input, or a non-finite
/// result (the transformer overflowed, or a parameter is not finite).
///
/// With context_dim C > 0 the layer is conditional, x = f(u; c): θ_i(x_{<i}, c), the C×N context
/// feeding MADE's first layer (Made). It then has the passes with a context only
/// (core/conditional.hpp); those without one throw, as do passes with a context on an
/// unconditional layer and contexts of the wrong shape or with a non-finite entry. The context is
/// a parameter of each pass, differentiated like MADE's weights (see the backward passes).
template <class T, class Transformer>
class Autoregressive {
  static_assert(check_transformer<Transformer>());
  static_assert(std::is_same_v<typename Transformer::Scalar, T>,
                "knead: Autoregressive<T, Transformer> needs a transformer on the same scalar T");
  /// The affine instance runs MAF's hand-flattened passes (see inverse_affine).
  static constexpr bool affine = std::is_same_v<Transformer, AffineTransformer<T>>;

 public:
  using Scalar = T;

  Autoregressive(Index dim, Transformer transformer, AutoregressiveOptions<T> options = {})
      : Autoregressive(dim, std::move(transformer), options, name(), "Invert<" + std::string(name()) + ">",
                       false) {}

  /// "AffineAutoregressive", "AdditiveAutoregressive": the transformer's label + "Autoregressive".
  static constexpr std::string_view name() {
    return detail::JoinedName<Transformer::label, detail::autoregressive_word>::value;
  }
  [[nodiscard]] Index dim() const { return dim_; }
  /// C: the rows of the context (0: unconditional).
  [[nodiscard]] Index context_dim() const { return made_.context_dim(); }
  [[nodiscard]] const Made<T>& made() const { return made_; }
  [[nodiscard]] Made<T>& made() { return made_; }
  [[nodiscard]] const Transformer& transformer() const { return transformer_; }

  /// Makes error messages name the inverse layer (Iaf for a Maf): Invert calls it on the bijector
  /// it wraps, so the passes name the inverse's functions (this forward is its inverse_and_log_det).
  void name_as_inverse() {
    inverted_ = !inverted_;
    names_ = Names::of(inverted_ ? inverse_type_ : type_, inverted_);
  }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    if (context_dim() > 0) detail::fail_needs_context(names_.forward, shown_name(), context_dim());
    forward_pass(u, nullptr, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    if (context_dim() > 0) detail::fail_needs_context(names_.inverse, shown_name(), context_dim());
    inverse_pass(x, nullptr, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    if (context_dim() > 0) detail::fail_needs_context(names_.backward, shown_name(), context_dim());
    backward_pass(grad_out, grad_log_det, grad_in, nullptr);
  }

  // ---- with a context (context_dim() > 0) -------------------------------------------------------

  void forward_and_log_det(MatrixCRef<T> u, MatrixCRef<T> context, Matrix<T>& x, RowVector<T>& log_det) {
    check_context(names_.forward, context, u.cols());
    forward_pass(u, &context, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, MatrixCRef<T> context, Matrix<T>& u, RowVector<T>& log_det) {
    check_context(names_.inverse, context, x.cols());
    inverse_pass(x, &context, u, log_det);
  }
  /// Writes ∂L/∂in and adds ∂L/∂c into grad_context (C × N).
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                Matrix<T>& grad_context) {
    if (context_dim() == 0)
      detail::fail(names_.backward, shown_name(),
                   " is unconditional (context_dim 0): call backward without a "
                   "context gradient");
    detail::check_context(names_.backward, grad_context, context_dim(), u_.cols());
    backward_pass(grad_out, grad_log_det, grad_in, &grad_context);
  }

  [[nodiscard]] Index num_parameters() const { return made_.num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return made_.parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return made_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return made_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    made_.bind_parameters(storage, offset);
  }

 protected:
  /// `type` names the layer in errors ("Maf"), `inverse_type` its inverse ("Iaf", once
  /// name_as_inverse() ran); construction errors name the inverse when `constructed_as_inverse`.
  Autoregressive(Index dim, Transformer transformer, const AutoregressiveOptions<T>& options,
                 std::string_view type, std::string inverse_type, bool constructed_as_inverse)
      : type_(type),
        inverse_type_(std::move(inverse_type)),
        names_(Names::of(type_, false)),
        transformer_(std::move(transformer)),
        made_(make_made(dim, options, transformer_, constructed_as_inverse ? inverse_type_ : type_)),
        dim_(dim) {}

 private:
  /// The layer's name in errors: its type, or its inverse's once name_as_inverse() ran.
  [[nodiscard]] const std::string& shown_name() const { return inverted_ ? inverse_type_ : type_; }

  void check_context(std::string_view function, MatrixCRef<T> context, Index cols) const {
    if (context_dim() == 0)
      detail::fail(function, shown_name(),
                   " is unconditional (context_dim 0): call it without a context, got a ", context.rows(),
                   "x", context.cols(), " context");
    detail::check_context(function, context, context_dim(), cols);
    detail::check_finite(function, "context", context);
  }

  /// `context`: null for an unconditional layer.
  void forward_pass(MatrixCRef<T> u, const MatrixCRef<T>* context, Matrix<T>& x, RowVector<T>& log_det) {
    start_pass(names_.forward, u);
    if constexpr (affine)
      forward_affine(u, context, x, log_det);
    else
      forward_generic(u, context, x, log_det);
    finish_pass(names_.forward, x, log_det, Direction::forward);
  }

  void inverse_pass(MatrixCRef<T> x, const MatrixCRef<T>* context, Matrix<T>& u, RowVector<T>& log_det) {
    start_pass(names_.inverse, x);
    if constexpr (affine)
      inverse_affine(x, context, u, log_det);
    else
      inverse_generic(x, context, u, log_det);
    finish_pass(names_.inverse, u, log_det, Direction::inverse);
  }

  void backward_pass(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                     Matrix<T>* grad_context) {
    if (last_ == Direction::none)
      detail::fail<std::logic_error>(names_.backward,
                                     "no forward or inverse pass to differentiate; call "
                                     "forward_and_log_det or inverse_and_log_det first",
                                     NoGrad::hint);
    detail::check_backward(names_.backward, grad_out, grad_log_det, dim_, u_.cols());
    if constexpr (affine)
      backward_affine(grad_out, grad_log_det, grad_in, grad_context);
    else
      backward_generic(grad_out, grad_log_det, grad_in, grad_context);
  }

  /// The function names a layer's errors use.
  struct Names {
    std::string forward, inverse, backward;
    /// Named as `shown`; swapped: the passes are those of the inverse layer (forward ↔ inverse).
    static Names of(const std::string& shown, bool swapped) {
      const std::string f = shown + "::forward_and_log_det", i = shown + "::inverse_and_log_det";
      return swapped ? Names{i, f, shown + "::backward"} : Names{f, i, shown + "::backward"};
    }
  };

  static Made<T> make_made(Index dim, const AutoregressiveOptions<T>& options, const Transformer& transformer,
                           const std::string& type) {
    const Index context_dim = Made<T>::checked_context_dim(type, options.context_dim);
    const std::vector<Index> order = Made<T>::validate(type, dim, options.hidden, options.order, context_dim);
    transformer.validate(type);
    return Made<T>(dim, options.hidden, InputOrder::permutation(order), options.seed, options.identity_init,
                   transformer.params_per_dim(), context_dim);
  }

  void start_pass(std::string_view function, MatrixCRef<T> in) {
    detail::check_batch(function, in, dim_);
    detail::check_finite(function, "input batch", in);
    last_ = Direction::none;  // a pass that throws midway leaves nothing to differentiate
  }
  void finish_pass(std::string_view function, const Matrix<T>& out, const RowVector<T>& log_det,
                   Direction pass) {
    constexpr std::string_view what =
        affine ? "result (exp of a log-scale overflowed, or a parameter is not finite)"
               : "result (the transformer overflowed, or a parameter is not finite)";
    detail::check_finite(function, what, out);
    detail::check_finite(function, "log-det", log_det);
    last_ = NoGrad::recorded(pass);
  }

  /// The transformer's parameters: MADE's outputs of the last pass, stacked by dimension.
  [[nodiscard]] ParamBlocks<const T> params() const {
    return ParamBlocks<const T>::stacked(conditioner_, dim_);
  }

  // ---- any transformer ------------------------------------------------------------------------

  void inverse_generic(MatrixCRef<T> x, const MatrixCRef<T>* context, Matrix<T>& u, RowVector<T>& log_det) {
    if (context != nullptr)
      made_.forward_with_context(x, *context, conditioner_);
    else
      made_.forward(x, conditioner_);
    transformer_.inverse(params(), x, u_, element_log_det_, workspace_);
    log_det = element_log_det_.colwise().sum();
    u = u_;
  }

  void forward_generic(MatrixCRef<T> u, const MatrixCRef<T>* context, Matrix<T>& x, RowVector<T>& log_det) {
    const Index d = dim_, n = u.cols();
    u_ = u;
    resize_workspace(x, d, n);
    resize_workspace(element_log_det_, d, n);
    // Incremental inversion (see Made::incremental_step): step k computes the parameters of
    // dimension i = order[k], then x_i; the pass leaves MADE as a full pass at the final x would.
    Matrix<T>& made_input = context != nullptr ? made_.begin_incremental(n, *context, conditioner_)
                                               : made_.begin_incremental(n, conditioner_);
    const int chunks = detail::column_chunks(n, made_.mlp().min_chunk());
    if (Index(step_workspaces_.size()) < chunks) step_workspaces_.resize(std::size_t(chunks));
    detail::parallel_columns(n, chunks, [&](Index c0, Index c1, int chunk) {
      if (c1 <= c0) return;
      const Index m = c1 - c0;
      auto& ws = step_workspaces_[std::size_t(chunk)];
      for (Index k = 0; k < d; ++k) {
        const Index i = made_.order()[std::size_t(k)];
        made_.incremental_step(k, c0, c1, conditioner_);
        transformer_.forward(ParamBlocks<const T>::row(conditioner_.middleCols(c0, m), d, i),
                             u.block(i, c0, 1, m), x.block(i, c0, 1, m), element_log_det_.block(i, c0, 1, m),
                             ws);
        made_input.block(i, c0, 1, m) = x.block(i, c0, 1, m);
      }
    });
    made_.end_incremental(n);
    log_det = element_log_det_.colwise().sum();
    // backward differentiates the whole batch at once: the transformer's workspace at the final
    // parameters (its values are those of the steps)
    transformer_.forward(params(), u_, data_scratch_, log_det_scratch_, workspace_);
  }

  /// The context enters like MADE's weights: its gradient comes with theirs (accumulating calls).
  void backward_generic(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                        Matrix<T>* grad_context) {
    const Index d = dim_, n = u_.cols();
    resize_workspace(grad_conditioner_, made_.params_per_dim() * d, n);
    const auto grad_params = ParamBlocks<T>::stacked(grad_conditioner_, d);
    if (last_ == Direction::inverse) {
      // u = f⁻¹(x; θ(x)): ∂L/∂x = the direct term (∂u/∂x ⊙ ∂L/∂u) + MADE's path (∂θ/∂x)ᵀ ∂L/∂θ
      grad_in = grad_out;
      transformer_.backward(Direction::inverse, params(), u_, grad_in, grad_log_det, grad_params, workspace_);
      made_.backward(grad_conditioner_, &grad_x_made_, true, NoColumns{}, NoColumns{}, grad_context);
      grad_in += grad_x_made_;
      return;
    }
    // Forward (sequential) pass, by implicit differentiation of x = f(u; c(x)), c = MADE's outputs
    // (each element's parameters; ld = Σ log|f'|). With λ = the total ∂L/∂x, it satisfies
    //   λ = ∂L/∂x + (∂c/∂x)ᵀ [(∂f/∂c)ᵀ λ + (∂ld/∂c)ᵀ ∂L/∂ld],
    // and then ∂L/∂u = (∂f/∂u) λ + (∂ld/∂u) ∂L/∂ld and ∂L/∂W = (∂c/∂W)ᵀ [(∂f/∂c)ᵀ λ + (∂ld/∂c)ᵀ ∂L/∂ld]
    // (the same for the context, which enters c like W).
    // The bracket is the transformer's forward backward at cotangents (λ, ∂L/∂ld); (∂c/∂x)ᵀ is
    // MADE's backward. ∂c/∂x is strictly triangular in the order (nilpotent), so the sweeps
    // λ ← ∂L/∂x + (∂c/∂x)ᵀ[…](λ) from λ = 0 are exact after D of them.
    resize_workspace(v_, d, n);
    v_.setZero();
    for (Index sweep = 0; sweep < d; ++sweep) {
      grad_elements_ = v_;
      transformer_.backward(Direction::forward, params(), u_, grad_elements_, grad_log_det, grad_params,
                            workspace_);
      made_.backward(grad_conditioner_, &grad_x_made_, false);
      resize_workspace(v_, grad_out.rows(), grad_out.cols());
      v_ = grad_out + grad_x_made_;
    }
    grad_in = v_;
    transformer_.backward(Direction::forward, params(), u_, grad_in, grad_log_det, grad_params, workspace_);
    made_.backward(grad_conditioner_, nullptr, true, NoColumns{}, NoColumns{}, grad_context);
  }

  // ---- the affine transformer (MAF) -----------------------------------------------------------

  void forward_affine(MatrixCRef<T> u, const MatrixCRef<T>* context, Matrix<T>& x, RowVector<T>& log_det) {
    const LogScaleGuard<T>& guard = transformer_.guard();
    const Index d = dim_, n = u.cols();
    u_ = u;
    resize_workspace(log_scale_, d, n);
    resize_workspace(x, d, n);
    // Incremental autoregressive inversion: step k computes only MADE's units of degree k and the
    // outputs of dimension i = order[k] (see Made::incremental_step), then sets x_i. Each unit is
    // computed once, at its final value, so the pass leaves MADE's activations and outputs as a
    // full pass at the final x would: backward() differentiates it like an inverse pass.
    Matrix<T>& made_input = context != nullptr ? made_.begin_incremental(n, *context, conditioner_)
                                               : made_.begin_incremental(n, conditioner_);
    detail::parallel_columns(
        n, detail::column_chunks(n, made_.mlp().min_chunk()), [&](Index c0, Index c1, int) {
          if (c1 <= c0) return;
          for (Index k = 0; k < d; ++k) {
            const Index i = made_.order()[std::size_t(k)];
            made_.incremental_step(k, c0, c1, conditioner_);
            for (Index j = c0; j < c1; ++j) {
              const T alpha = guard.apply(conditioner_(d + i, j));
              log_scale_(i, j) = alpha;
              x(i, j) = made_input(i, j) = u(i, j) * std::exp(alpha) + conditioner_(i, j);
            }
          }
        });
    made_.end_incremental(n);
    log_det = log_scale_.colwise().sum();  // α_i collected at the step that set x_i
    resize_workspace(exp_neg_log_scale_, log_scale_.rows(), log_scale_.cols());
    exp_neg_log_scale_ = (-log_scale_).array().exp();
  }

  void inverse_affine(MatrixCRef<T> x, const MatrixCRef<T>* context, Matrix<T>& u, RowVector<T>& log_det) {
    const LogScaleGuard<T>& guard = transformer_.guard();
    const Index d = dim_, n = x.cols();
    resize_workspace(u, d, n);
    resize_workspace(u_, d, n);
    resize_workspace(log_scale_, d, n);
    resize_workspace(exp_neg_log_scale_, d, n);
    resize_workspace(log_det, n);
    // The elementwise rest of the pass runs on each thread's columns inside MADE's job.
    const auto rest = [&](Index c0, Index c1) {
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
      guard.apply(alpha_flat, alpha_flat);
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
    };
    if (context != nullptr)
      made_.forward_with_context(x, *context, conditioner_, rest);
    else
      made_.forward(x, conditioner_, rest);
  }

  /// The context enters like MADE's weights: its gradient comes with theirs (accumulating calls).
  void backward_affine(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                       Matrix<T>* grad_context) {
    const Index d = dim_, n = u_.cols();
    resize_workspace(guard_slope_, d, n);
    resize_workspace(grad_in, d, n);
    if (last_ == Direction::inverse) {
      // u = (x − μ) e^{−α}: ∂L/∂x = e^{−α} ∂L/∂u + the path through MADE (see conditioner_vjp)
      conditioner_vjp(
          grad_out, grad_log_det, T(1), &grad_x_made_, true, true,
          [&](Index c0, Index c1) {
            const Index m = c1 - c0;
            grad_in.middleCols(c0, m) =
                grad_out.middleCols(c0, m).cwiseProduct(exp_neg_log_scale_.middleCols(c0, m)) +
                grad_x_made_.middleCols(c0, m);
          },
          grad_context);
      return;
    }
    // Forward (sequential) pass, by implicit differentiation: no need to keep D MADE passes,
    // and exact. Let u = h(x, θ) be the inverse map and J = ∂h/∂x, lower triangular in the
    // order with diagonal e^{−α}. From h(f(u, θ), θ) = u: ∂x/∂u = J⁻¹ and ∂x/∂θ = −J⁻¹ ∂h/∂θ;
    // and ld_fwd(u) = −ld_inv(x). So with
    //   g = ∂L/∂x + (∂ld_inv/∂x)ᵀ (−∂L/∂ld)   and   v = J⁻ᵀ g:
    //   ∂L/∂u = v,   ∂L/∂θ = (∂h/∂θ)ᵀ (−v) + (∂ld_inv/∂θ)ᵀ (−∂L/∂ld),
    // the latter being the inverse pass's vjp with cotangents (−v, −∂L/∂ld); the same for ∂L/∂c,
    // since the context enters h like θ.
    // Jᵀ v = g is solved by the sweeps v ← v + diag(J)⁻¹ (g − Jᵀ v) from v = 0: the error is
    // multiplied each sweep by diag(J)⁻¹ (diag(J) − Jᵀ), strictly triangular hence nilpotent, so
    // D sweeps are exact. Writing Jᵀ v = e^{−α} v + R(v), with R the path through MADE, a sweep
    // is v ← e^{α} (g − R(v)); and g − R(v) = ∂L/∂x − conditioner_vjp(v, ∂L/∂ld), one MADE
    // backward pass per sweep (inputs only).
    resize_workspace(scale_, log_scale_.rows(), log_scale_.cols());
    scale_ = log_scale_.array().exp();
    resize_workspace(v_, d, n);
    v_.setZero();
    for (Index sweep = 0; sweep < d; ++sweep)
      conditioner_vjp(v_, grad_log_det, T(1), &grad_x_made_, false, sweep == 0, [&](Index c0, Index c1) {
        const Index m = c1 - c0;
        v_.middleCols(c0, m) = (grad_out.middleCols(c0, m) - grad_x_made_.middleCols(c0, m))
                                   .cwiseProduct(scale_.middleCols(c0, m));
      });
    conditioner_vjp(v_, grad_log_det, T(-1), nullptr, true, false, NoColumns{}, grad_context);
    grad_in = v_;
  }

  /// The path through MADE of the inverse pass's vector-Jacobian product at the stored point:
  /// given the cotangents s·∂L/∂u and s·∂L/∂ld_inv, runs MADE's backward pass with
  ///   u = (x − μ) e^{−α}, ld_inv = −Σ_i α_i, α = guard(a):
  ///   ∂L/∂μ = −s ∂L/∂u e^{−α},   ∂L/∂a = −s (∂L/∂u u + ∂L/∂ld_inv) guard'(a),
  /// writing MADE's ∂L/∂x into *grad_x (without the direct term e^{−α} ∂L/∂u) and adding ∂L/∂θ
  /// when `accumulate`, and ∂L/∂c into *grad_context unless null. guard'(a) is computed first when
  /// `new_slope`. The cotangents of MADE's
  /// outputs are formed on each thread's columns inside MADE's backward job, and then(c0, c1) runs
  /// on each thread's columns of *grad_x when they are done.
  template <class ColumnsDone>
  void conditioner_vjp(MatrixCRef<T> grad_u, RowVectorCRef<T> grad_log_det, T s, Matrix<T>* grad_x,
                       bool accumulate, bool new_slope, ColumnsDone&& then,
                       Matrix<T>* grad_context = nullptr) {
    const LogScaleGuard<T>& guard = transformer_.guard();
    const Index d = dim_;
    resize_workspace(grad_conditioner_, 2 * d, u_.cols());
    made_.backward(
        grad_conditioner_, grad_x, accumulate,
        [&](Index c0, Index c1) {
          const Index m = c1 - c0;
          if (new_slope)
            guard.derivative(conditioner_.bottomRows(d).middleCols(c0, m), log_scale_.middleCols(c0, m),
                             guard_slope_.middleCols(c0, m));
          grad_conditioner_.topRows(d).middleCols(c0, m) =
              (-s) * grad_u.middleCols(c0, m).cwiseProduct(exp_neg_log_scale_.middleCols(c0, m));
          auto grad_a = grad_conditioner_.bottomRows(d).middleCols(c0, m);
          grad_a = grad_u.middleCols(c0, m).cwiseProduct(u_.middleCols(c0, m));
          grad_a.rowwise() += grad_log_det.segment(c0, m);
          grad_a.array() *= (-s) * guard_slope_.middleCols(c0, m).array();
        },
        then, grad_context);
  }

  std::string type_, inverse_type_;
  bool inverted_ = false;
  Names names_;
  Transformer transformer_;
  Made<T> made_;
  Index dim_;
  Direction last_ = Direction::none;
  Matrix<T> u_;            // noise side of the last pass (its input or its output)
  Matrix<T> conditioner_;  // MADE's outputs (the parameters) at the data side of the last pass
  // the affine passes
  Matrix<T> log_scale_;          // α = guard(a) of the last pass
  Matrix<T> exp_neg_log_scale_;  // e^{−α}
  Matrix<T> scale_, guard_slope_;
  // the other transformers' passes
  Matrix<T> element_log_det_;  // log|det| of each element
  typename Transformer::Workspace workspace_;
  std::vector<typename Transformer::Workspace> step_workspaces_;  // one per thread chunk
  Matrix<T> data_scratch_, log_det_scratch_;
  Matrix<T> grad_elements_;
  // both
  Matrix<T> grad_conditioner_, grad_x_made_, v_;
};

static_assert(check_bijector<Autoregressive<double, AffineTransformer<double>>>());
static_assert(check_conditional_bijector<Autoregressive<double, AffineTransformer<double>>>());
static_assert(check_bijector<Autoregressive<float, AdditiveTransformer<float>>>());

}  // namespace knead
