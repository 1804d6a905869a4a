#pragma once
/// @file
/// AnyDistribution<T>: a type-erased base distribution with value semantics, so a flow whose base
/// is only known at run time (a flow loaded from a file) still has one concrete type.

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "knead/distributions/distribution.hpp"

namespace knead {

template <class T>
class AnyDistribution {
 public:
  using Scalar = T;

  // The self test comes first: clang checks Distribution<AnyDistribution> (copyability) recursively
  // otherwise.
  template <class D>
  requires(!std::same_as<std::remove_cvref_t<D>, AnyDistribution> && Distribution<D> &&
           std::same_as<typename D::Scalar, T>)
      AnyDistribution(D distribution)  // NOLINT(google-explicit-constructor): wrapping is the point
      : self_(std::make_unique<Model<D>>(std::move(distribution))) {}

  AnyDistribution(const AnyDistribution& other) : self_(other.self_->clone()) {}
  AnyDistribution& operator=(const AnyDistribution& other) {
    if (this != &other) self_ = other.self_->clone();
    return *this;
  }
  AnyDistribution(AnyDistribution&&) noexcept = default;
  AnyDistribution& operator=(AnyDistribution&&) noexcept = default;
  ~AnyDistribution() = default;

  [[nodiscard]] Index dim() const { return self_->dim(); }
  void log_prob(MatrixCRef<T> u, RowVector<T>& out) { self_->log_prob(u, out); }
  void sample(Index n, Rng& rng, Matrix<T>& out) { self_->sample(n, rng, out); }
  void backward_log_prob(RowVectorCRef<T> grad_log_prob, Matrix<T>& grad_u) {
    self_->backward_log_prob(grad_log_prob, grad_u);
  }
  void backward_sample(MatrixCRef<T> grad_sample) { self_->backward_sample(grad_sample); }

  [[nodiscard]] Index num_parameters() const { return self_->num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return self_->parameters(); }
  [[nodiscard]] std::span<T> gradients() { return self_->gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    self_->bind_parameters(storage, offset);
  }

  /// The wrapped distribution if it is a D, else nullptr.
  template <class D>
  [[nodiscard]] D* target() {
    auto* model = dynamic_cast<Model<D>*>(self_.get());
    return model ? &model->distribution : nullptr;
  }
  template <class D>
  [[nodiscard]] const D* target() const {
    const auto* model = dynamic_cast<const Model<D>*>(self_.get());
    return model ? &model->distribution : nullptr;
  }
  [[nodiscard]] const std::type_info& type() const { return self_->type(); }

 private:
  struct Interface {
    virtual ~Interface() = default;
    [[nodiscard]] virtual std::unique_ptr<Interface> clone() const = 0;
    [[nodiscard]] virtual Index dim() const = 0;
    virtual void log_prob(MatrixCRef<T>, RowVector<T>&) = 0;
    virtual void sample(Index, Rng&, Matrix<T>&) = 0;
    virtual void backward_log_prob(RowVectorCRef<T>, Matrix<T>&) = 0;
    virtual void backward_sample(MatrixCRef<T>) = 0;
    [[nodiscard]] virtual Index num_parameters() const = 0;
    virtual std::span<T> parameters() = 0;
    virtual std::span<T> gradients() = 0;
    virtual void bind_parameters(const std::shared_ptr<ParameterStorage<T>>&, Index) = 0;
    [[nodiscard]] virtual const std::type_info& type() const = 0;
  };

  template <class D>
  struct Model final : Interface {
    explicit Model(D d) : distribution(std::move(d)) {}
    [[nodiscard]] std::unique_ptr<Interface> clone() const override {
      return std::make_unique<Model>(distribution);
    }
    [[nodiscard]] Index dim() const override { return distribution.dim(); }
    void log_prob(MatrixCRef<T> u, RowVector<T>& out) override { distribution.log_prob(u, out); }
    void sample(Index n, Rng& rng, Matrix<T>& out) override { distribution.sample(n, rng, out); }
    void backward_log_prob(RowVectorCRef<T> g, Matrix<T>& grad_u) override {
      distribution.backward_log_prob(g, grad_u);
    }
    void backward_sample(MatrixCRef<T> g) override { distribution.backward_sample(g); }
    [[nodiscard]] Index num_parameters() const override { return distribution.num_parameters(); }
    std::span<T> parameters() override { return distribution.parameters(); }
    std::span<T> gradients() override { return distribution.gradients(); }
    void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& s, Index offset) override {
      distribution.bind_parameters(s, offset);
    }
    [[nodiscard]] const std::type_info& type() const override { return typeid(D); }
    D distribution;
  };

  std::unique_ptr<Interface> self_;
};

}  // namespace knead

namespace knead {
static_assert(Distribution<AnyDistribution<double>>);
}  // namespace knead
