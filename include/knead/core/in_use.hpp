#pragma once
/// @file
/// InUseFlag: detects two threads using one object at the same time.
///
/// A flow's passes write workspaces the object owns (they are non-const members): two
/// threads running passes on one object would overwrite each other's intermediate values and
/// return wrong results. Each public pass enters the object's flag first; a second thread that
/// enters while the first is inside gets std::logic_error naming the function, before anything is
/// written. The cost is one atomic exchange and one store per pass. Copies and moves of the owner
/// start with a free flag (a copy is how each thread gets its own object).

#include <atomic>
#include <stdexcept>
#include <string_view>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead::detail {

class InUseFlag {
 public:
  InUseFlag() = default;
  InUseFlag(const InUseFlag& /*other*/) noexcept {}
  InUseFlag& operator=(const InUseFlag& /*other*/) noexcept { return *this; }
  ~InUseFlag() = default;

  /// Holds the flag until it goes out of scope. The outermost pass entered on a thread is that
  /// thread's current pass (detail::current_pass), named by a failed workspace growth.
  class Entered {
   public:
    Entered(std::atomic<bool>* flag, std::string_view function)
        : flag_(flag), outermost_(current_pass.empty()) {
      if (outermost_) current_pass = function;
    }
    Entered(const Entered&) = delete;
    Entered& operator=(const Entered&) = delete;
    ~Entered() {
      if (outermost_) current_pass = {};
      flag_->store(false, std::memory_order_release);
    }

   private:
    std::atomic<bool>* flag_;
    bool outermost_;
  };

  /// Marks the object in use by `function` on this thread; throws std::logic_error if it already
  /// is (another thread inside a pass, or a pass started from within one of the same object's).
  [[nodiscard]] Entered enter(std::string_view function) {
    if (busy_.exchange(true, std::memory_order_acquire))
      fail<std::logic_error>(function,
                             "this object is already in use by another pass (another thread?): use one flow "
                             "object per thread (copy it)");
    return Entered(&busy_, function);
  }

 private:
  std::atomic<bool> busy_{false};
};

}  // namespace knead::detail
