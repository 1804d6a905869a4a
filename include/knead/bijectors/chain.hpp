#pragma once
/// @file
/// Chain<B1, …, Bk>: the composition of bijectors known at compile time.

#include <tuple>
#include <utility>

#include "knead/core/bijector.hpp"
#include "knead/core/chain_runner.hpp"

namespace knead {

/// Composition of bijectors, in the order the forward (sampling) direction applies them.
///
/// - forward:  x = B_k(… B_2(B_1(u)))   (B1 first; the reverse of TFP's Chain([b1, …, bk]))
/// - inverse:  u = B_1⁻¹(… B_k⁻¹(x))
/// - log|det ∂x/∂u| = Σ_j log|det ∂B_j| at the point each part sees
///
/// The parts' parameters are laid out one after the other in one buffer. All parts have the
/// same dim(); an empty Chain<> is not allowed (use DynamicChain for a possibly empty one).
template <Bijector First, Bijector... Rest>
class Chain {
 public:
  using Scalar = typename First::Scalar;
  static_assert((std::same_as<Scalar, typename Rest::Scalar> && ...),
                "knead::Chain: all parts must use the same scalar type");
  static constexpr Index size = 1 + sizeof...(Rest);

  explicit Chain(First first, Rest... rest) : parts_(std::move(first), std::move(rest)...) {
    const Index d = std::get<0>(parts_).dim();
    Index i = 0;
    for_each_part([&](const auto& part) {
      if (part.dim() != d)
        detail::fail("Chain", "part ", i, " has dim ", part.dim(), " but part 0 has dim ", d);
      ++i;
    });
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

  void forward_and_log_det(MatrixCRef<Scalar> u, Matrix<Scalar>& x, RowVector<Scalar>& log_det) const {
    runner_.forward(size, visitor(parts_), u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<Scalar> x, Matrix<Scalar>& u, RowVector<Scalar>& log_det) const {
    runner_.inverse(size, visitor(parts_), x, u, log_det);
  }
  void backward(MatrixCRef<Scalar> grad_out, RowVectorCRef<Scalar> grad_log_det, Matrix<Scalar>& grad_in) {
    runner_.backward("Chain", size, visitor(parts_), grad_out, grad_log_det, grad_in);
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
  mutable detail::ChainRunner<Scalar> runner_;
};

}  // namespace knead
