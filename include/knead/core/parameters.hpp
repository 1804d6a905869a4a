#pragma once
/// @file
/// Contiguous parameter storage. Every learnable object keeps its values and gradients in a
/// ParameterBlock: a window [offset, offset + size) into a shared buffer. A standalone object owns
/// a buffer of its own; a composite (Chain, TransformedDistribution, ...) allocates one buffer for
/// all its parts and rebinds each part into it, so an optimizer updates a whole flow in one loop
/// and a model is saved or reduced across processes as one array.
///
/// Copies are deep: a copied block gets a fresh buffer holding the same values. Moves keep the
/// buffer, so the views of the parts of a moved composite stay valid.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "knead/core/types.hpp"

namespace knead {

/// A zero-initialised array of n scalars whose first element sits on a 64-byte boundary.
///
/// Parameter values and gradients live in these: with std::vector's 16-byte alignment, vectorised
/// loops over a block would peel a number of scalars that depends on the heap address, so float
/// sums could differ in their last bits from run to run, breaking bit-identical resumes and
/// same-seed reproducibility. (Over-allocating by hand rather than Eigen::aligned_allocator keeps
/// GCC 12's -Warray-bounds from misreading the aligned malloc path.)
template <class T>
class AlignedBuffer {
 public:
  static constexpr std::size_t alignment = 64;
  explicit AlignedBuffer(std::size_t n)
      : raw_(std::make_unique<T[]>(n + alignment / sizeof(T))), data_(raw_.get()), size_(n) {
    const auto address = reinterpret_cast<std::uintptr_t>(raw_.get());
    const std::size_t misalignment = address % alignment;
    if (misalignment != 0) data_ += (alignment - misalignment) / sizeof(T);
  }
  [[nodiscard]] T* data() { return data_; }
  [[nodiscard]] const T* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] T* begin() { return data_; }
  [[nodiscard]] T* end() { return data_ + size_; }

 private:
  std::unique_ptr<T[]> raw_;
  T* data_;
  std::size_t size_;
};

template <class T>
struct ParameterStorage {
  explicit ParameterStorage(Index size)
      : values(static_cast<std::size_t>(size)), gradients(static_cast<std::size_t>(size)) {}
  AlignedBuffer<T> values;
  AlignedBuffer<T> gradients;
};

template <class T>
class ParameterBlock {
 public:
  ParameterBlock() : ParameterBlock(0) {}
  explicit ParameterBlock(Index size)
      : storage_(std::make_shared<ParameterStorage<T>>(size)), offset_(0), size_(size) {}

  ParameterBlock(const ParameterBlock& other) : ParameterBlock(other.size_) {
    std::ranges::copy(other.values(), values().begin());
    std::ranges::copy(other.gradients(), gradients().begin());
  }
  ParameterBlock& operator=(const ParameterBlock& other) {
    if (this != &other) *this = ParameterBlock(other);
    return *this;
  }
  ParameterBlock(ParameterBlock&&) noexcept = default;
  ParameterBlock& operator=(ParameterBlock&&) noexcept = default;
  ~ParameterBlock() = default;

  [[nodiscard]] Index size() const { return size_; }
  [[nodiscard]] std::span<T> values() { return {storage_->values.data() + offset_, std::size_t(size_)}; }
  [[nodiscard]] std::span<const T> values() const {
    return {storage_->values.data() + offset_, std::size_t(size_)};
  }
  [[nodiscard]] std::span<T> gradients() {
    return {storage_->gradients.data() + offset_, std::size_t(size_)};
  }
  [[nodiscard]] std::span<const T> gradients() const {
    return {storage_->gradients.data() + offset_, std::size_t(size_)};
  }
  [[nodiscard]] T* value_data() { return values().data(); }
  [[nodiscard]] const T* value_data() const { return values().data(); }
  [[nodiscard]] T* gradient_data() { return gradients().data(); }

  /// Moves this block into `storage` at `offset`, carrying its current values and gradients.
  void bind(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    std::ranges::copy(values(), storage->values.begin() + offset);
    std::ranges::copy(gradients(), storage->gradients.begin() + offset);
    storage_ = storage;
    offset_ = offset;
  }

  /// Views of a sub-range, as Eigen maps (column-major), for the parts of one object.
  [[nodiscard]] Eigen::Map<Matrix<T>> matrix(Index at, Index rows, Index cols) {
    return {value_data() + at, rows, cols};
  }
  [[nodiscard]] Eigen::Map<const Matrix<T>> matrix(Index at, Index rows, Index cols) const {
    return {value_data() + at, rows, cols};
  }
  [[nodiscard]] Eigen::Map<Matrix<T>> gradient_matrix(Index at, Index rows, Index cols) {
    return {gradient_data() + at, rows, cols};
  }
  [[nodiscard]] Eigen::Map<Vector<T>> vector(Index at, Index n) { return {value_data() + at, n}; }
  [[nodiscard]] Eigen::Map<const Vector<T>> vector(Index at, Index n) const { return {value_data() + at, n}; }
  [[nodiscard]] Eigen::Map<Vector<T>> gradient_vector(Index at, Index n) { return {gradient_data() + at, n}; }

 private:
  std::shared_ptr<ParameterStorage<T>> storage_;
  Index offset_;
  Index size_;
};

}  // namespace knead

namespace knead {

/// The parameters of a composite: one window that spans those of its parts, laid out in order.
/// `for_each_part(f)` must call `f(part)` on every part in order; each part must provide
/// `num_parameters()` and `bind_parameters(storage, offset)`.
template <class T>
class ParameterGroup {
 public:
  /// Gives the parts one fresh contiguous buffer, keeping their current values.
  template <class ForEachPart>
  void adopt(ForEachPart for_each_part) {
    Index total = 0;
    for_each_part([&](auto& part) { total += part.num_parameters(); });
    bind(std::make_shared<ParameterStorage<T>>(total), 0, for_each_part);
  }

  /// Binds the parts, in order, into `storage` starting at `offset`.
  template <class ForEachPart>
  void bind(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset, ForEachPart for_each_part) {
    Index at = offset;
    for_each_part([&](auto& part) {
      part.bind_parameters(storage, at);
      at += part.num_parameters();
    });
    storage_ = storage;
    offset_ = offset;
    size_ = at - offset;
  }

  [[nodiscard]] Index size() const { return size_; }
  [[nodiscard]] std::span<T> values() { return {storage_->values.data() + offset_, std::size_t(size_)}; }
  [[nodiscard]] std::span<const T> values() const {
    return {storage_->values.data() + offset_, std::size_t(size_)};
  }
  [[nodiscard]] std::span<T> gradients() {
    return {storage_->gradients.data() + offset_, std::size_t(size_)};
  }

 private:
  std::shared_ptr<ParameterStorage<T>> storage_ = std::make_shared<ParameterStorage<T>>(0);
  Index offset_ = 0;
  Index size_ = 0;
};

}  // namespace knead
