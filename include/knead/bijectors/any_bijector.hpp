#pragma once
/// @file
/// AnyBijector<T>: a type-erased bijector with value semantics, so flows can be assembled at
/// run time (from command-line options or a saved file).

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "knead/core/bijector.hpp"

namespace knead {

template <class T>
class AnyBijector {
 public:
  using Scalar = T;

  // The self test comes first: clang checks Bijector<AnyBijector> (copyability) recursively otherwise.
  template <class B>
  requires(!std::same_as<std::remove_cvref_t<B>, AnyBijector> && Bijector<B> &&
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
  void forward_and_log_det(MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) const {
    self_->forward_and_log_det(u, x, log_det);
  }
  void inverse_and_log_det(MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) const {
    self_->inverse_and_log_det(x, u, log_det);
  }
  void backward(MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    self_->backward(grad_out, grad_log_det, grad_in);
  }
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
    virtual void forward_and_log_det(MatrixCRef<T>, Matrix<T>&, RowVector<T>&) const = 0;
    virtual void inverse_and_log_det(MatrixCRef<T>, Matrix<T>&, RowVector<T>&) const = 0;
    virtual void backward(MatrixCRef<T>, RowVectorCRef<T>, Matrix<T>&) = 0;
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
    void forward_and_log_det(MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& ld) const override {
      bijector.forward_and_log_det(in, out, ld);
    }
    void inverse_and_log_det(MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& ld) const override {
      bijector.inverse_and_log_det(in, out, ld);
    }
    void backward(MatrixCRef<T> g, RowVectorCRef<T> gld, Matrix<T>& gin) override {
      bijector.backward(g, gld, gin);
    }
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

}  // namespace knead
