#pragma once
/// @file
/// The passes of a chain of bijectors, shared by the static Chain<B...> and the run-time
/// DynamicChain. Parts are reached through `visit(i, f)`, which calls `f(part_i)`.
///
/// Order: forward applies part 0 first, then part 1, …; inverse runs the parts in reverse.
/// (TensorFlow Probability's Chain([b1, b2]).forward applies b2 first; knead lists parts in the
/// order the forward, sampling, direction applies them, as FlowJAX does.)

#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/types.hpp"

namespace knead::detail {

template <class T>
class ChainRunner {
 public:
  template <class Visit>
  void forward(Index parts, Visit visit, MatrixCRef<T> u, Matrix<T>& x, RowVector<T>& log_det) const {
    run(parts, visit, u, x, log_det, Direction::forward);
  }
  template <class Visit>
  void inverse(Index parts, Visit visit, MatrixCRef<T> x, Matrix<T>& u, RowVector<T>& log_det) const {
    run(parts, visit, x, u, log_det, Direction::inverse);
  }

  /// Runs the parts' backward steps in the reverse order of the last pass. Every part receives the
  /// same ∂L/∂log_det, since the chain's log-det is the sum of theirs.
  template <class Visit>
  void backward(std::string_view function, Index parts, Visit visit, MatrixCRef<T> grad_out,
                RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    if (last_ == Direction::none)
      fail<std::logic_error>(function, "no forward or inverse pass to differentiate", NoGrad::hint);
    check_backward(function, grad_out, grad_log_det, out_rows_, out_cols_);
    if (parts == 0) {
      grad_in = grad_out;
      return;
    }
    grads_.resize(2);
    for (Index step = 0; step < parts; ++step) {
      const Index i = last_ == Direction::forward ? parts - 1 - step : step;
      MatrixCRef<T> upstream = step == 0 ? grad_out : MatrixCRef<T>(grads_[(step - 1) % 2]);
      Matrix<T>& downstream = step == parts - 1 ? grad_in : grads_[step % 2];
      visit(i, [&](auto& part) { part.backward(upstream, grad_log_det, downstream); });
    }
  }

 private:
  template <class Visit>
  void run(Index parts, Visit visit, MatrixCRef<T> in, Matrix<T>& out, RowVector<T>& log_det,
           Direction direction) const {
    log_det.setZero(in.cols());
    out_rows_ = in.rows();
    out_cols_ = in.cols();
    last_ = NoGrad::recorded(direction);
    if (parts == 0) {
      out = in;
      return;
    }
    between_.resize(std::size_t(parts));
    for (Index step = 0; step < parts; ++step) {
      const Index i = direction == Direction::forward ? step : parts - 1 - step;
      MatrixCRef<T> source = step == 0 ? in : MatrixCRef<T>(between_[std::size_t(step - 1)]);
      Matrix<T>& target = step == parts - 1 ? out : between_[std::size_t(step)];
      visit(i, [&](const auto& part) {
        if (direction == Direction::forward)
          part.forward_and_log_det(source, target, part_log_det_);
        else
          part.inverse_and_log_det(source, target, part_log_det_);
      });
      log_det += part_log_det_;
    }
    out_rows_ = out.rows();
  }

  mutable std::vector<Matrix<T>> between_;  // outputs of all but the last part
  mutable RowVector<T> part_log_det_;
  mutable Direction last_ = Direction::none;
  mutable Index out_rows_ = 0;
  mutable Index out_cols_ = 0;
  std::vector<Matrix<T>> grads_;
};

}  // namespace knead::detail
