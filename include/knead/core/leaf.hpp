#pragma once
/// @file
/// Shared plumbing of bijectors that own their parameters directly (no parts): the
/// Parameterised interface over one ParameterBlock, and the record of the last pass that
/// backward() differentiates.

#include <span>
#include <string_view>

#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/parameters.hpp"

namespace knead {

template <class T>
class LeafParameters {
 public:
  [[nodiscard]] Index num_parameters() const { return params_.size(); }
  [[nodiscard]] std::span<T> parameters() { return params_.values(); }
  [[nodiscard]] std::span<const T> parameters() const { return params_.values(); }
  [[nodiscard]] std::span<T> gradients() { return params_.gradients(); }
  void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& storage, Index offset) {
    params_.bind(storage, offset);
  }

 protected:
  explicit LeafParameters(Index size) : params_(size) {}

  /// Records which pass ran, so backward() knows what to differentiate (none under NoGrad).
  void record(Direction d) { last_ = NoGrad::recorded(d); }
  /// The pass backward() must differentiate; throws std::logic_error if there was none.
  [[nodiscard]] Direction last_pass(std::string_view function) const {
    if (last_ == Direction::none)
      detail::fail<std::logic_error>(function,
                                     "no forward or inverse pass to differentiate; call "
                                     "forward_and_log_det or inverse_and_log_det first",
                                     NoGrad::hint);
    return last_;
  }

  ParameterBlock<T> params_;

 private:
  Direction last_ = Direction::none;
};

}  // namespace knead
