#pragma once
/// @file
/// Mlp<T>: a multilayer perceptron with ReLU hidden layers, a linear output layer and optional
/// fixed 0/1 masks on its weights (the building block of MADE and of coupling conditioners).
///
/// With masks the network computes with W ⊙ M: entries outside a mask have no effect and get a zero
/// gradient, whatever value the buffer holds (they start at zero and optimizers leave them there).

#include <cmath>
#include <random>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/leaf.hpp"

namespace knead {

template <class T>
class Mlp : public LeafParameters<T> {
 public:
  /// `sizes` = {inputs, hidden…, outputs}. Weights and biases start as PyTorch's nn.Linear does:
  /// uniform in ±1/√fan_in, drawn from `seed`. `masks`, if given, holds one (out × in) 0/1 matrix
  /// per layer. `zero_last_layer` starts the output at exactly zero (identity-initialised flows).
  Mlp(std::vector<Index> sizes, std::uint64_t seed, std::vector<Matrix<T>> masks = {},
      bool zero_last_layer = false)
      : LeafParameters<T>(count_parameters(sizes)), sizes_(std::move(sizes)), masks_(std::move(masks)) {
    if (!masks_.empty() && masks_.size() != std::size_t(layers()))
      detail::fail("Mlp", "got ", masks_.size(), " masks for ", layers(), " layers");
    for (Index l = 0; l < layers(); ++l)
      if (!masks_.empty() &&
          (masks_[std::size_t(l)].rows() != out(l) || masks_[std::size_t(l)].cols() != in(l)))
        detail::fail("Mlp", "mask ", l, " is ", masks_[std::size_t(l)].rows(), "x",
                     masks_[std::size_t(l)].cols(), ", expected ", out(l), "x", in(l));
    std::mt19937_64 rng(seed);
    for (Index l = 0; l < layers(); ++l) {
      const T bound = T(1) / std::sqrt(T(in(l)));
      std::uniform_real_distribution<T> uniform(-bound, bound);
      const bool zero = zero_last_layer && l == layers() - 1;
      auto w = weight(l);
      for (Index j = 0; j < w.cols(); ++j)
        for (Index i = 0; i < w.rows(); ++i) w(i, j) = zero ? T(0) : uniform(rng);
      if (masked()) w.array() *= masks_[std::size_t(l)].array();
      for (auto& b : bias(l)) b = zero ? T(0) : uniform(rng);
    }
  }

  [[nodiscard]] Index layers() const { return Index(sizes_.size()) - 1; }
  [[nodiscard]] Index in(Index layer) const { return sizes_[std::size_t(layer)]; }
  [[nodiscard]] Index out(Index layer) const { return sizes_[std::size_t(layer) + 1]; }
  [[nodiscard]] Index inputs() const { return sizes_.front(); }
  [[nodiscard]] Index outputs() const { return sizes_.back(); }
  [[nodiscard]] const std::vector<Index>& sizes() const { return sizes_; }
  [[nodiscard]] bool masked() const { return !masks_.empty(); }
  [[nodiscard]] const std::vector<Matrix<T>>& masks() const { return masks_; }

  [[nodiscard]] Eigen::Map<Matrix<T>> weight(Index l) {
    return this->params_.matrix(offset(l), out(l), in(l));
  }
  [[nodiscard]] Eigen::Map<const Matrix<T>> weight(Index l) const {
    return this->params_.matrix(offset(l), out(l), in(l));
  }
  [[nodiscard]] Eigen::Map<Vector<T>> bias(Index l) {
    return this->params_.vector(offset(l) + out(l) * in(l), out(l));
  }
  [[nodiscard]] Eigen::Map<const Vector<T>> bias(Index l) const {
    return this->params_.vector(offset(l) + out(l) * in(l), out(l));
  }

  /// out = W_L(… relu(W_1 in + b_1) …) + b_L. Keeps the activations for backward().
  void forward(MatrixCRef<T> input, Matrix<T>& output) const {
    if (input.rows() != inputs())
      detail::fail("Mlp::forward", "expected ", inputs(), " input rows, got ", input.rows());
    activations_.resize(std::size_t(layers()));
    activations_[0] = input;
    for (Index l = 0; l < layers(); ++l) {
      Matrix<T>& target = l == layers() - 1 ? output : activations_[std::size_t(l + 1)];
      target.noalias() = effective_weight(l) * activations_[std::size_t(l)];
      target.colwise() += bias(l);
      if (l < layers() - 1) target = target.cwiseMax(T(0));
    }
  }

  /// Given ∂L/∂out of the last forward(), adds ∂L/∂θ into gradients() when
  /// `accumulate_parameters`, and writes ∂L/∂in into *grad_input unless it is null.
  void backward(MatrixCRef<T> grad_output, Matrix<T>* grad_input, bool accumulate_parameters = true) {
    if (activations_.empty())
      detail::fail<std::logic_error>("Mlp::backward", "no forward pass to differentiate");
    grad_.resize(2);
    for (Index l = layers() - 1; l >= 0; --l) {
      MatrixCRef<T> g = l == layers() - 1 ? grad_output : MatrixCRef<T>(grad_[std::size_t(l % 2)]);
      const Matrix<T>& h = activations_[std::size_t(l)];
      if (accumulate_parameters) {
        // z = W h + b:  ∂L/∂W = ∂L/∂z hᵀ (masked),  ∂L/∂b = Σ_n ∂L/∂z
        auto grad_w = this->params_.gradient_matrix(offset(l), out(l), in(l));
        if (masked())
          grad_w.noalias() += (g * h.transpose()).cwiseProduct(masks_[std::size_t(l)]);
        else
          grad_w.noalias() += g * h.transpose();
        this->params_.gradient_vector(offset(l) + out(l) * in(l), out(l)) += g.rowwise().sum();
      }
      if (l > 0) {
        // h = relu(z_prev):  ∂L/∂z_prev = (Wᵀ ∂L/∂z) ⊙ [h > 0]
        Matrix<T>& below = grad_[std::size_t((l + 1) % 2)];
        below.noalias() = effective_weight(l).transpose() * g;
        below.array() *= (h.array() > T(0)).template cast<T>();
      } else if (grad_input != nullptr) {
        grad_input->noalias() = effective_weight(0).transpose() * g;
      }
    }
  }

 private:
  /// W ⊙ M for a masked layer (into a workspace), W itself otherwise.
  [[nodiscard]] MatrixCRef<T> effective_weight(Index l) const {
    if (!masked()) return weight(l);
    masked_weights_.resize(std::size_t(layers()));
    masked_weights_[std::size_t(l)] = weight(l).cwiseProduct(masks_[std::size_t(l)]);
    return masked_weights_[std::size_t(l)];
  }

  static Index count_parameters(const std::vector<Index>& sizes) {
    if (sizes.size() < 2)
      detail::fail("Mlp", "needs at least input and output sizes, got ", sizes.size(), " sizes");
    Index n = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      detail::check_positive("Mlp", "layer size", sizes[l]);
      detail::check_positive("Mlp", "layer size", sizes[l + 1]);
      n += sizes[l + 1] * (sizes[l] + 1);
    }
    return n;
  }
  [[nodiscard]] Index offset(Index layer) const {
    Index at = 0;
    for (Index l = 0; l < layer; ++l) at += out(l) * (in(l) + 1);
    return at;
  }

  std::vector<Index> sizes_;
  std::vector<Matrix<T>> masks_;
  mutable std::vector<Matrix<T>> masked_weights_;
  mutable std::vector<Matrix<T>> activations_;  // input of every layer, for backward
  std::vector<Matrix<T>> grad_;
};

}  // namespace knead
