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
template <class T>
class DynamicChain {
 public:
  using Scalar = T;

  explicit DynamicChain(Index dim) : dim_(dim) { detail::check_positive("DynamicChain", "dim", dim); }
  DynamicChain(const DynamicChain& other) : dim_(other.dim_), parts_(other.parts_) { adopt(); }
  DynamicChain& operator=(const DynamicChain& other) {
    if (this != &other) {
      dim_ = other.dim_;
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
    parts_.push_back(std::move(part));
    adopt();
    return *this;
  }

  static constexpr std::string_view name() { return "DynamicChain"; }
  [[nodiscard]] Index dim() const { return dim_; }
  [[nodiscard]] Index size() const { return Index(parts_.size()); }
  [[nodiscard]] AnyBijector<T>& part(Index i) { return parts_.at(std::size_t(i)); }
  [[nodiscard]] const AnyBijector<T>& part(Index i) const { return parts_.at(std::size_t(i)); }

  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) const {
    detail::check_batch("DynamicChain::forward_and_log_det", u, dim_);
    runner_.forward(size(), visitor(parts_), u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) const {
    detail::check_batch("DynamicChain::inverse_and_log_det", x, dim_);
    runner_.inverse(size(), visitor(parts_), x, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    runner_.backward("DynamicChain", size(), visitor(parts_), grad_out, grad_log_det, grad_in);
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
  std::vector<AnyBijector<T>> parts_;
  ParameterGroup<T> group_;
  mutable detail::ChainRunner<T> runner_;
};

static_assert(check_bijector<DynamicChain<float>>());

}  // namespace knead
