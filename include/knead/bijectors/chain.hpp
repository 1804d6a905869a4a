#pragma once
/// @file
/// Chain<B1, …, Bk>: the composition of bijectors known at compile time.

#include <tuple>
#include <utility>

#include "knead/core/bijector.hpp"
#include "knead/core/chain_runner.hpp"
#include "knead/core/conditional.hpp"

namespace knead {

/// Composition of bijectors, in the order the forward (sampling) direction applies them.
///
/// - forward:  x = B_k(… B_2(B_1(u)))   (B1 first; the reverse of TFP's Chain([b1, …, bk]))
/// - inverse:  u = B_1⁻¹(… B_k⁻¹(x))
/// - log|det ∂x/∂u| = Σ_j log|det ∂B_j| at the point each part sees
///
/// The parts' parameters are laid out one after the other in one buffer. All parts have the
/// same dim(); an empty Chain<> is not allowed (use DynamicChain for a possibly empty one).
///
/// Parts may be conditional (knead/core/conditional.hpp). A chain with a conditional part is a
/// conditional bijector: its passes take one context, which goes to every conditional part (they
/// all read the same context_dim() rows) and to no other, and backward adds the sum of their ∂L/∂c.
/// Its calls without a context exist only if every part has them.
template <FlowBijector First, FlowBijector... Rest>
class Chain {
 public:
  using Scalar = typename First::Scalar;
  static_assert((std::same_as<Scalar, typename Rest::Scalar> && ...),
                "knead::Chain: all parts must use the same scalar type");
  static constexpr Index size = 1 + sizeof...(Rest);
  /// Some part reads a context.
  static constexpr bool conditional = ConditionalBijector<First> || (ConditionalBijector<Rest> || ...);
  /// Every part has the calls without a context.
  static constexpr bool unconditional = Bijector<First> && (Bijector<Rest> && ...);

  explicit Chain(First first, Rest... rest) : parts_(std::move(first), std::move(rest)...) {
    const Index d = std::get<0>(parts_).dim();
    Index i = 0;
    for_each_part([&](const auto& part) {
      if (part.dim() != d)
        detail::fail("Chain", "part ", i, " has dim ", part.dim(), " but part 0 has dim ", d);
      ++i;
    });
    if constexpr (conditional) (void)context_dim();  // the parts must agree
    adopt();
  }
  Chain(const Chain& other) : parts_(other.parts_) { adopt(); }
  Chain& operator=(const Chain& other) {
    if (this != &other) {
      parts_ = other.parts_;
      adopt();
    }
    return *this;
  }
  Chain(Chain&&) noexcept = default;
  Chain& operator=(Chain&&) noexcept = default;
  ~Chain() = default;

  static constexpr std::string_view name() { return "Chain"; }
  [[nodiscard]] Index dim() const { return std::get<0>(parts_).dim(); }

  template <std::size_t I>
  [[nodiscard]] auto& part() {
    return std::get<I>(parts_);
  }
  template <std::size_t I>
  [[nodiscard]] const auto& part() const {
    return std::get<I>(parts_);
  }

  void forward_and_log_det(MatrixCRef<Scalar> u, Matrix<Scalar>& x,
                           RowVector<Scalar>& log_det) requires unconditional {
    runner_.forward("Chain::forward_and_log_det", size, visitor(parts_), u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<Scalar> x, Matrix<Scalar>& u,
                           RowVector<Scalar>& log_det) requires unconditional {
    runner_.inverse("Chain::inverse_and_log_det", size, visitor(parts_), x, u, log_det);
  }
  void backward(MatrixCRef<Scalar> grad_out, RowVectorCRef<Scalar> grad_log_det,
                Matrix<Scalar>& grad_in) requires unconditional {
    runner_.backward("Chain", size, visitor(parts_), grad_out, grad_log_det, grad_in);
  }

  // ---- with a context (a chain with a conditional part) -----------------------------------------

  /// The context rows the conditional parts read (all the same; 0 if the parts are type-erased
  /// and none of them reads one). @throws std::invalid_argument if two parts disagree.
  [[nodiscard]] Index context_dim() const requires conditional {
    Index c = 0, i = 0;
    for_each_part([&](const auto& part) {
      const Index mine = knead::context_dim(part);
      if (mine != 0 && c != 0 && mine != c)
        detail::fail("Chain", "part ", i, " reads a context of ", mine, " rows but an earlier part reads ",
                     c);
      if (mine != 0) c = mine;
      ++i;
    });
    return c;
  }
  void forward_and_log_det(MatrixCRef<Scalar> u, MatrixCRef<Scalar> context, Matrix<Scalar>& x,
                           RowVector<Scalar>& log_det) requires conditional {
    constexpr std::string_view function = "Chain::forward_and_log_det";
    detail::check_context(function, context, context_dim(), u.cols());
    runner_.forward(function, size, visitor(parts_), u, x, log_det, context);
  }
  void inverse_and_log_det(MatrixCRef<Scalar> x, MatrixCRef<Scalar> context, Matrix<Scalar>& u,
                           RowVector<Scalar>& log_det) requires conditional {
    constexpr std::string_view function = "Chain::inverse_and_log_det";
    detail::check_context(function, context, context_dim(), x.cols());
    runner_.inverse(function, size, visitor(parts_), x, u, log_det, context);
  }
  /// Writes ∂L/∂in and adds ∂L/∂c (summed over the conditional parts) into grad_context.
  void backward(MatrixCRef<Scalar> grad_out, RowVectorCRef<Scalar> grad_log_det, Matrix<Scalar>& grad_in,
                Matrix<Scalar>& grad_context) requires conditional {
    runner_.backward("Chain", size, visitor(parts_), grad_out, grad_log_det, grad_in, grad_context,
                     context_dim());
  }

  // ---- data-dependent initialisation ------------------------------------------------------------

  /// Some part has an initialize hook.
  [[nodiscard]] bool needs_initialize() const {
    bool any = false;
    for_each_part([&any](const auto& part) { any = any || knead::needs_initialize(part); });
    return any;
  }
  /// Initialises the parts in the density direction, each on the batch as it arrives there.
  void initialize(MatrixCRef<Scalar> x) requires unconditional {
    runner_.initialize(size, visitor(parts_), x);
  }
  void initialize(MatrixCRef<Scalar> x, MatrixCRef<Scalar> context) requires conditional {
    detail::check_context("Chain::initialize", context, context_dim(), x.cols());
    runner_.initialize(size, visitor(parts_), x, context);
  }

  [[nodiscard]] Index num_parameters() const { return group_.size(); }
  [[nodiscard]] std::span<Scalar> parameters() { return group_.values(); }
  [[nodiscard]] std::span<Scalar> gradients() { return group_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<Scalar>>& storage, Index offset) {
    group_.bind(storage, offset, [this](auto f) { for_each_part(f); });
  }

  void set_training(bool on) {
    for_each_part([on](auto& part) { knead::set_training(part, on); });
  }
  [[nodiscard]] bool training() const {
    bool any = false;
    for_each_part([&any](const auto& part) {
      if constexpr (HasTrainingMode<std::remove_cvref_t<decltype(part)>>) any = any || part.training();
    });
    return any;
  }

  template <class F>
  void for_each_part(F&& f) {
    std::apply([&](auto&... p) { (f(p), ...); }, parts_);
  }
  template <class F>
  void for_each_part(F&& f) const {
    std::apply([&](const auto&... p) { (f(p), ...); }, parts_);
  }

 private:
  void adopt() {
    group_.adopt([this](auto f) { for_each_part(f); });
  }

  /// Run-time index → part, for the shared chain passes (const parts for a const tuple).
  template <class Tuple>
  static auto visitor(Tuple& parts) {
    return [&parts](Index i, auto&& f) {
      Index j = 0;
      std::apply([&](auto&... p) { ((j++ == i ? f(p) : void()), ...); }, parts);
    };
  }

  std::tuple<First, Rest...> parts_;
  ParameterGroup<Scalar> group_;
  detail::ChainRunner<Scalar> runner_;
};

}  // namespace knead
