#pragma once
/// @file
/// DynamicChain<T>: a chain of type-erased bijectors assembled at run time.

#include <utility>
#include <vector>

#include "knead/bijectors/any_bijector.hpp"
#include "knead/core/chain_runner.hpp"

namespace knead {

/// Same passes and order as Chain<B…> (forward applies part 0 first), with parts added at run
/// time. An empty DynamicChain of a given dim is the identity.
///
/// Parts may be conditional: context_dim() is the one their conditional parts share (0 if none),
/// the calls with a context pass it to those parts only, and a call without a context on a chain
/// with a conditional part throws std::invalid_argument.
template <class T>
class DynamicChain {
 public:
  using Scalar = T;

  explicit DynamicChain(Index dim) : dim_(dim) { detail::check_positive("DynamicChain", "dim", dim); }
  DynamicChain(const DynamicChain& other)
      : dim_(other.dim_), context_dim_(other.context_dim_), parts_(other.parts_) {
    adopt();
  }
  DynamicChain& operator=(const DynamicChain& other) {
    if (this != &other) {
      dim_ = other.dim_;
      context_dim_ = other.context_dim_;
      parts_ = other.parts_;
      adopt();
    }
    return *this;
  }
  DynamicChain(DynamicChain&&) noexcept = default;
  DynamicChain& operator=(DynamicChain&&) noexcept = default;
  ~DynamicChain() = default;

  /// Appends a part; it is applied after the existing ones in the forward direction.
  DynamicChain& push_back(AnyBijector<T> part) {
    if (part.dim() != dim_)
      detail::fail("DynamicChain::push_back", "part has dim ", part.dim(), ", the chain has dim ", dim_);
    const Index c = part.context_dim();
    if (c != 0 && context_dim_ != 0 && c != context_dim_)
      detail::fail("DynamicChain::push_back", "part ", parts_.size(), " (", part.name(),
                   ") reads a context of ", c, " rows but the chain's conditional parts read ", context_dim_);
    if (c != 0) context_dim_ = c;
    parts_.push_back(std::move(part));
    adopt();
    return *this;
  }

  static constexpr std::string_view name() { return "DynamicChain"; }
  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] Index size() const { return Index(parts_.size()); }
  [[nodiscard]] AnyBijector<T>& part(Index i) { return parts_.at(std::size_t(i)); }
  [[nodiscard]] const AnyBijector<T>& part(Index i) const { return parts_.at(std::size_t(i)); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    constexpr std::string_view function = "DynamicChain::forward_and_log_det";
    detail::check_batch(function, u, dim_);
    check_no_context_needed(function);
    runner_.forward(function, size(), visitor(parts_), u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    constexpr std::string_view function = "DynamicChain::inverse_and_log_det";
    detail::check_batch(function, x, dim_);
    check_no_context_needed(function);
    runner_.inverse(function, size(), visitor(parts_), x, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    runner_.backward("DynamicChain", size(), visitor(parts_), grad_out, grad_log_det, grad_in);
  }

  // ---- with a context --------------------------------------------------------------------------

  /// The context rows the conditional parts read; 0 if no part reads a context.
  [[nodiscard]] Index context_dim() const { return context_dim_; }
  void forward_and_log_det(MatrixCRef<T> u, MatrixCRef<T> context, Matrix<T>& x, RowVector<T>& log_det) {
    constexpr std::string_view function = "DynamicChain::forward_and_log_det";
    detail::check_batch(function, u, dim_);
    detail::check_context(function, context, context_dim_, u.cols());
    runner_.forward(function, size(), visitor(parts_), u, x, log_det, context);
  }
  void inverse_and_log_det(MatrixCRef<T> x, MatrixCRef<T> context, Matrix<T>& u, RowVector<T>& log_det) {
    constexpr std::string_view function = "DynamicChain::inverse_and_log_det";
    detail::check_batch(function, x, dim_);
    detail::check_context(function, context, context_dim_, x.cols());
    runner_.inverse(function, size(), visitor(parts_), x, u, log_det, context);
  }
  /// Writes ∂L/∂in and adds ∂L/∂c (summed over the conditional parts) into grad_context.
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                Matrix<T>& grad_context) {
    runner_.backward("DynamicChain", size(), visitor(parts_), grad_out, grad_log_det, grad_in, grad_context,
                     context_dim_);
  }

  // ---- data-dependent initialisation -----------------------------------------------------------

  /// Some part has an initialize hook.
  [[nodiscard]] bool needs_initialize() const {
    for (const auto& p : parts_)
      if (p.needs_initialize()) return true;
    return false;
  }
  /// Initialises the parts in the density direction, each on the batch as it arrives there.
  void initialize(MatrixCRef<T> x) {
    constexpr std::string_view function = "DynamicChain::initialize";
    detail::check_batch(function, x, dim_);
    check_no_context_needed(function);
    runner_.initialize(size(), visitor(parts_), x);
  }
  void initialize(MatrixCRef<T> x, MatrixCRef<T> context) {
    constexpr std::string_view function = "DynamicChain::initialize";
    detail::check_batch(function, x, dim_);
    detail::check_context(function, context, context_dim_, x.cols());
    runner_.initialize(size(), visitor(parts_), x, context);
  }

  [[nodiscard]] Index num_parameters() const { return group_.size(); }
  [[nodiscard]] std::span<T> parameters() { return group_.values(); }
  [[nodiscard]] std::span<T> gradients() { return group_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    group_.bind(storage, offset, for_each_part());
  }
  void set_training(bool on) {
    for (auto& p : parts_) p.set_training(on);
  }
  [[nodiscard]] bool training() const {
    for (const auto& p : parts_)
      if (p.training()) return true;
    return false;
  }

 private:
  void check_no_context_needed(std::string_view function) const {
    if (context_dim_ != 0)
      for (std::size_t i = 0; i < parts_.size(); ++i)
        if (parts_[i].context_dim() != 0)
          detail::fail(function, "part ", i, " (", parts_[i].name(), ") is conditional (context_dim ",
                       context_dim_, "): call the chain with a context, one column per sample");
  }

  auto for_each_part() {
    return [this](auto f) {
      for (auto& p : parts_) f(p);
    };
  }
  void adopt() { group_.adopt(for_each_part()); }

  template <class Parts>
  static auto visitor(Parts& parts) {
    return [&parts](Index i, auto&& f) { f(parts[std::size_t(i)]); };
  }

  Index dim_;
  Index context_dim_ = 0;
  std::vector<AnyBijector<T>> parts_;
  ParameterGroup<T> group_;
  detail::ChainRunner<T> runner_;
};

static_assert(check_bijector<DynamicChain<float>>());
static_assert(check_conditional_bijector<DynamicChain<float>>());

}  // namespace knead
