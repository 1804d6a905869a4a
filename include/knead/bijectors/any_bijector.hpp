#pragma once
/// @file
/// AnyBijector<T>: a type-erased bijector with value semantics, so flows can be assembled at
/// run time (from command-line options or a saved file).
///
/// It wraps unconditional and conditional bijectors alike (knead/core/conditional.hpp) and so has
/// both kinds of call: context_dim() is the wrapped one's (0 for an unconditional bijector, which
/// ignores a context given to it and adds nothing to ∂L/∂c); a call without a context reaching a
/// conditional bijector throws std::invalid_argument naming it.

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"

namespace knead {

template <class T>
class AnyBijector {
 public:
  using Scalar = T;

  // The self test comes first: clang checks Bijector<AnyBijector> (copyability) recursively otherwise.
  template <class B>
  requires(!std::same_as<std::remove_cvref_t<B>, AnyBijector> && FlowBijector<B> &&
           std::same_as<typename B::Scalar, T>)
      AnyBijector(B bijector)  // NOLINT(google-explicit-constructor): wrapping is the point
      : self_(std::make_unique<Model<B>>(std::move(bijector))) {}

  AnyBijector(const AnyBijector& other) : self_(other.self_->clone()) {}
  AnyBijector& operator=(const AnyBijector& other) {
    if (this != &other) self_ = other.self_->clone();
    return *this;
  }
  AnyBijector(AnyBijector&&) noexcept = default;
  AnyBijector& operator=(AnyBijector&&) noexcept = default;
  ~AnyBijector() = default;

  [[nodiscard]] Index dim() const { return self_->dim(); }
  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) {
    self_->forward_and_log_det(u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) {
    self_->inverse_and_log_det(x, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    self_->backward(grad_out, grad_log_det, grad_in);
  }
  [[nodiscard]] Index context_dim() const { return self_->context_dim(); }
  void forward_and_log_det(MatrixCRef<T> u, MatrixCRef<T> context, Matrix<T>& x, RowVector<T>& log_det) {
    self_->forward_and_log_det(u, context, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, MatrixCRef<T> context, Matrix<T>& u, RowVector<T>& log_det) {
    self_->inverse_and_log_det(x, context, u, log_det);
  }
  /// Writes ∂L/∂in and adds ∂L/∂c into grad_context (nothing for an unconditional bijector).
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in,
                Matrix<T>& grad_context) {
    self_->backward(grad_out, grad_log_det, grad_in, grad_context);
  }
  [[nodiscard]] bool needs_initialize() const { return self_->needs_initialize(); }
  void initialize(MatrixCRef<T> x) { self_->initialize(x); }
  void initialize(MatrixCRef<T> x, MatrixCRef<T> context) { self_->initialize(x, context); }

  [[nodiscard]] Index num_parameters() const { return self_->num_parameters(); }
  [[nodiscard]] std::span<T> parameters() { return self_->parameters(); }
  [[nodiscard]] std::span<T> gradients() { return self_->gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    self_->bind_parameters(storage, offset);
  }
  void set_training(bool on) { self_->set_training(on); }
  [[nodiscard]] bool training() const { return self_->training(); }

  /// The wrapped bijector if it is a B, else nullptr.
  template <class B>
  [[nodiscard]] B* target() {
    auto* model = dynamic_cast<Model<B>*>(self_.get());
    return model ? &model->bijector : nullptr;
  }
  template <class B>
  [[nodiscard]] const B* target() const {
    const auto* model = dynamic_cast<const Model<B>*>(self_.get());
    return model ? &model->bijector : nullptr;
  }
  [[nodiscard]] const std::type_info& type() const { return self_->type(); }
  /// The wrapped bijector's name (see bijector_name).
  [[nodiscard]] std::string name() const { return self_->name(); }

 private:
  struct Interface {
    virtual ~Interface() = default;
    [[nodiscard]] virtual std::unique_ptr<Interface> clone() const = 0;
    [[nodiscard]] virtual Index dim() const = 0;
    virtual void forward_and_log_det(MatrixCRef<T>, Matrix<T>&, RowVector<T>&) = 0;
    virtual void inverse_and_log_det(MatrixCRef<T>, Matrix<T>&, RowVector<T>&) = 0;
    virtual void backward(MatrixCRef<T>, RowVectorCRef<T>, Matrix<T>&) = 0;
    [[nodiscard]] virtual Index context_dim() const = 0;
    virtual void forward_and_log_det(MatrixCRef<T>, MatrixCRef<T>, Matrix<T>&, RowVector<T>&) = 0;
    virtual void inverse_and_log_det(MatrixCRef<T>, MatrixCRef<T>, Matrix<T>&, RowVector<T>&) = 0;
    virtual void backward(MatrixCRef<T>, RowVectorCRef<T>, Matrix<T>&, Matrix<T>&) = 0;
    [[nodiscard]] virtual bool needs_initialize() const = 0;
    virtual void initialize(MatrixCRef<T>) = 0;
    virtual void initialize(MatrixCRef<T>, MatrixCRef<T>) = 0;
    [[nodiscard]] virtual Index num_parameters() const = 0;
    virtual std::span<T> parameters() = 0;
    virtual std::span<T> gradients() = 0;
    virtual void bind_parameters(const std::shared_ptr<ParameterStorage<T>>&, Index) = 0;
    virtual void set_training(bool) = 0;
    [[nodiscard]] virtual bool training() const = 0;
    [[nodiscard]] virtual const std::type_info& type() const = 0;
    [[nodiscard]] virtual std::string name() const = 0;
  };

  template <class B>
  struct Model final : Interface {
    explicit Model(B b) : bijector(std::move(b)) {}
    [[nodiscard]] std::unique_ptr<Interface> clone() const override {
      return std::make_unique<Model>(bijector);
    }
    [[nodiscard]] Index dim() const override { return bijector.dim(); }
    void forward_and_log_det(MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& ld) override {
      if constexpr (Bijector<B>)
        bijector.forward_and_log_det(in, out, ld);
      else
        detail::fail_needs_context("AnyBijector::forward_and_log_det", name(), bijector.context_dim());
    }
    void inverse_and_log_det(MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& ld) override {
      if constexpr (Bijector<B>)
        bijector.inverse_and_log_det(in, out, ld);
      else
        detail::fail_needs_context("AnyBijector::inverse_and_log_det", name(), bijector.context_dim());
    }
    void backward(MatrixCRef<T> g, RowVectorCRef<T> gld, Matrix<T>& gin) override {
      if constexpr (Bijector<B>)
        bijector.backward(g, gld, gin);
      else
        detail::fail_needs_context("AnyBijector::backward", name(), bijector.context_dim());
    }
    [[nodiscard]] Index context_dim() const override { return knead::context_dim(bijector); }
    void forward_and_log_det(MatrixCRef<T> in, MatrixCRef<T> c, Matrix<T>& out, RowVector<T>& ld) override {
      with_or_without_context([&](auto& b) { b.forward_and_log_det(in, c, out, ld); },
                              [&](auto& b) { b.forward_and_log_det(in, out, ld); });
    }
    void inverse_and_log_det(MatrixCRef<T> in, MatrixCRef<T> c, Matrix<T>& out, RowVector<T>& ld) override {
      with_or_without_context([&](auto& b) { b.inverse_and_log_det(in, c, out, ld); },
                              [&](auto& b) { b.inverse_and_log_det(in, out, ld); });
    }
    void backward(MatrixCRef<T> g, RowVectorCRef<T> gld, Matrix<T>& gin, Matrix<T>& gc) override {
      with_or_without_context([&](auto& b) { b.backward(g, gld, gin, gc); },
                              [&](auto& b) { b.backward(g, gld, gin); });
    }
    /// A call that comes with a context: `with_context(bijector)` if the bijector reads the
    /// context, else `without(bijector)`. A type with both kinds of call (a Maf) reads it when its
    /// context_dim() is > 0. The generic lambdas are instantiated only for the calls B has.
    template <class WithContext, class WithoutContext>
    void with_or_without_context(WithContext&& with_context, WithoutContext&& without) {
      if constexpr (ConditionalBijector<B> && Bijector<B>) {
        if (knead::context_dim(bijector) > 0)
          with_context(bijector);
        else
          without(bijector);
      } else if constexpr (ConditionalBijector<B>) {
        with_context(bijector);
      } else {
        without(bijector);
      }
    }
    [[nodiscard]] bool needs_initialize() const override { return knead::needs_initialize(bijector); }
    void initialize(MatrixCRef<T> x) override {
      if constexpr (Bijector<B> || HasInitialize<B>)
        knead::initialize(bijector, x);
      else if (knead::needs_initialize(bijector))
        detail::fail_needs_context("AnyBijector::initialize", name(), bijector.context_dim());
    }
    void initialize(MatrixCRef<T> x, MatrixCRef<T> c) override { knead::initialize(bijector, x, c); }
    [[nodiscard]] Index num_parameters() const override { return bijector.num_parameters(); }
    std::span<T> parameters() override { return bijector.parameters(); }
    std::span<T> gradients() override { return bijector.gradients(); }
    void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& s, Index offset) override {
      bijector.bind_parameters(s, offset);
    }
    void set_training(bool on) override { knead::set_training(bijector, on); }
    [[nodiscard]] bool training() const override {
      if constexpr (HasTrainingMode<B>) return bijector.training();
      return false;
    }
    [[nodiscard]] const std::type_info& type() const override { return typeid(B); }
    [[nodiscard]] std::string name() const override { return bijector_name<B>(); }
    B bijector;
  };

  std::unique_ptr<Interface> self_;
};

static_assert(check_bijector<AnyBijector<double>>());
static_assert(check_conditional_bijector<AnyBijector<double>>());

}  // namespace knead
