#pragma once
/// @file
/// The passes of a chain of bijectors, shared by the static Chain<B...> and the run-time
/// DynamicChain. Parts are reached through `visit(i, f)`, which calls `f(part_i)`.
///
/// Order: forward applies part 0 first, then part 1, …; inverse runs the parts in reverse.
/// (TensorFlow Probability's Chain([b1, b2]).forward applies b2 first; knead lists parts in the
/// order the forward, sampling, direction applies them, as FlowJAX does.)
///
/// With a context (see knead/core/conditional.hpp) every part that models ConditionalBijector gets
/// the same context and the others none; backward hands every such part the same grad_context,
/// into which each adds its ∂L/∂c, so the chain's ∂L/∂c is their sum. Passes without a context
/// compile to the same code as for a chain of unconditional parts.

#include <string_view>
#include <utility>
#include <vector>

#include "knead/core/conditional.hpp"
#include "knead/core/errors.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/types.hpp"

namespace knead::detail {

/// Stands for "no context" in the chain's passes.
struct NoContext {};

template <class T>
class ChainRunner {
 public:
  template <class Visit, class Context = NoContext>
  void forward(std::string_view function, Index parts, Visit visit, MatrixCRef<T> u, Matrix<T>& x,
               RowVector<T>& log_det, const Context& context = {}) {
    run(function, parts, visit, u, context, x, log_det, Direction::forward);
  }
  template <class Visit, class Context = NoContext>
  void inverse(std::string_view function, Index parts, Visit visit, MatrixCRef<T> x, Matrix<T>& u,
               RowVector<T>& log_det, const Context& context = {}) {
    run(function, parts, visit, x, context, u, log_det, Direction::inverse);
  }

  /// Runs the parts' backward steps in the reverse order of the last pass. Every part receives the
  /// same ∂L/∂log_det, since the chain's log-det is the sum of theirs.
  template <class Visit>
  void backward(std::string_view function, Index parts, Visit visit, MatrixCRef<T> grad_out,
                RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in) {
    check_last_pass(function, false);
    check_backward(function, grad_out, grad_log_det, out_rows_, out_cols_);
    backward_parts(parts, visit, grad_out, grad_log_det, grad_in, static_cast<Matrix<T>*>(nullptr));
  }

  /// The same after a pass with a context: also adds ∂L/∂c, summed over the conditional parts,
  /// into grad_context (C×N, sized and zeroed by the caller).
  template <class Visit>
  void backward(std::string_view function, Index parts, Visit visit, MatrixCRef<T> grad_out,
                RowVectorCRef<T> grad_log_det, Matrix<T>& grad_in, Matrix<T>& grad_context,
                Index context_dim) {
    check_last_pass(function, true);
    check_backward(function, grad_out, grad_log_det, out_rows_, out_cols_);
    check_context(function, grad_context, context_dim, out_cols_);
    backward_parts(parts, visit, grad_out, grad_log_det, grad_in, &grad_context);
  }

  /// Data-dependent initialisation in the density direction: the last part is initialised on `x`,
  /// then `x` goes through its inverse to the part before it, which is initialised on that, and so
  /// on, down to the first part that needs initialising (see knead::needs_initialize); nothing runs
  /// if none does. The pushes run under NoGrad; afterwards there is no pass to differentiate.
  template <class Visit, class Context = NoContext>
  void initialize(Index parts, Visit visit, MatrixCRef<T> x, const Context& context = {}) {
    Index lowest = parts;  // the part with the lowest index that needs initialising
    for (Index i = parts - 1; i >= 0; --i)
      visit(i, [&](const auto& part) {
        if (knead::needs_initialize(part)) lowest = i;
      });
    if (lowest == parts) return;
    const NoGrad no_grad;
    last_ = Direction::none;
    Matrix<T> current = x, next;
    RowVector<T> log_det;
    for (Index i = parts - 1; i >= lowest; --i) {
      visit(i, [&](auto& part) {
        if constexpr (std::same_as<Context, NoContext>)
          knead::initialize(part, current);
        else
          knead::initialize(part, current, context);
        if (i > lowest) pass(part, Direction::inverse, current, context, next, log_det);
      });
      if (i > lowest) std::swap(current, next);
    }
  }

 private:
  /// One part's pass, with the context if the part reads one.
  template <class Part, class Context>
  static void pass(Part& part, Direction direction, MatrixCRef<T> in, const Context& context, Matrix<T>& out,
                   RowVector<T>& log_det) {
    if constexpr (!std::same_as<Context, NoContext> && ConditionalBijector<Part>) {
      if constexpr (Bijector<Part>)
        if (!reads_context(part)) {  // a bijector with both kinds of call, unconditional (a Maf)
          pass(part, direction, in, NoContext{}, out, log_det);
          return;
        }
      if (direction == Direction::forward)
        part.forward_and_log_det(in, context, out, log_det);
      else
        part.inverse_and_log_det(in, context, out, log_det);
    } else {
      static_assert(Bijector<Part>, "knead: a conditional bijector in a chain pass without a context");
      if (direction == Direction::forward)
        part.forward_and_log_det(in, out, log_det);
      else
        part.inverse_and_log_det(in, out, log_det);
    }
  }

  /// Whether a conditional part takes the context: one with both kinds of call (type-erased, or a
  /// Maf) only when its context_dim() is not 0. A type-erased part ignores a context it does not
  /// read; a Maf refuses it.
  template <class Part>
  static bool reads_context(const Part& part) {
    if constexpr (Bijector<Part>)
      return knead::context_dim(part) > 0;
    else
      return true;
  }

  void check_last_pass(std::string_view function, bool with_context) const {
    if (last_ == Direction::none)
      fail<std::logic_error>(function, "no forward or inverse pass to differentiate", NoGrad::hint);
    if (with_context != with_context_)
      fail<std::logic_error>(function, with_context
                                           ? "backward with a context gradient, but the last pass had "
                                             "no context"
                                           : "the last pass had a context: call backward with a "
                                             "context gradient");
  }

  template <class Visit>
  void backward_parts(Index parts, Visit visit, MatrixCRef<T> grad_out, RowVectorCRef<T> grad_log_det,
                      Matrix<T>& grad_in, Matrix<T>* grad_context) {
    if (parts == 0) {
      grad_in = grad_out;
      return;
    }
    grads_.resize(2);
    for (Index step = 0; step < parts; ++step) {
      const Index i = last_ == Direction::forward ? parts - 1 - step : step;
      MatrixCRef<T> upstream = step == 0 ? grad_out : MatrixCRef<T>(grads_[(step - 1) % 2]);
      Matrix<T>& downstream = step == parts - 1 ? grad_in : grads_[step % 2];
      visit(i, [&](auto& part) {
        using Part = std::remove_cvref_t<decltype(part)>;
        if constexpr (ConditionalBijector<Part> && Bijector<Part>) {  // type-erased: both kinds of call
          if (grad_context != nullptr && reads_context(part))
            part.backward(upstream, grad_log_det, downstream, *grad_context);
          else
            part.backward(upstream, grad_log_det, downstream);
        } else if constexpr (ConditionalBijector<Part>) {
          KNEAD_ASSERT(grad_context != nullptr, "ChainRunner::backward",
                       "a conditional part without a context");
          part.backward(upstream, grad_log_det, downstream, *grad_context);
        } else {
          part.backward(upstream, grad_log_det, downstream);
        }
      });
    }
  }

  template <class Visit, class Context>
  void run(std::string_view function, Index parts, Visit visit, MatrixCRef<T> in, const Context& context,
           Matrix<T>& out, RowVector<T>& log_det, Direction direction) {
    resize_workspace(log_det, in.cols());
    log_det.setZero();
    out_rows_ = in.rows();
    out_cols_ = in.cols();
    last_ = NoGrad::recorded(direction);
    with_context_ = !std::same_as<Context, NoContext>;
    if (parts == 0) {
      out = in;
      return;
    }
    between_.resize(std::size_t(parts));
    for (Index step = 0; step < parts; ++step) {
      const Index i = direction == Direction::forward ? step : parts - 1 - step;
      MatrixCRef<T> source = step == 0 ? in : MatrixCRef<T>(between_[std::size_t(step - 1)]);
      Matrix<T>& target = step == parts - 1 ? out : between_[std::size_t(step)];
      visit(i, [&](auto& part) { pass(part, direction, source, context, target, part_log_det_); });
      KNEAD_ASSERT(
          target.rows() == in.rows() && target.cols() == in.cols() && part_log_det_.cols() == in.cols(),
          function, "part ", i, " returned a ", target.rows(), "x", target.cols(), " batch and ",
          part_log_det_.cols(), " log-dets for a ", in.rows(), "x", in.cols(), " batch");
      log_det += part_log_det_;
    }
    out_rows_ = out.rows();
  }

  std::vector<Matrix<T>> between_;  // outputs of all but the last part
  RowVector<T> part_log_det_;
  Direction last_ = Direction::none;
  bool with_context_ = false;  // the last pass had a context
  Index out_rows_ = 0;
  Index out_cols_ = 0;
  std::vector<Matrix<T>> grads_;
};

}  // namespace knead::detail
