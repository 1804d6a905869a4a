#pragma once
// The kernel paths the linalg tests run on (not a test program: only the .cpp files under tests/
// are).

#include <vector>

#include "knead/linalg/kernel_path.hpp"

namespace knead::test {

/// Every kernel path this CPU runs, fastest first.
inline std::vector<linalg::KernelPath> kernel_paths_here() {
  std::vector<linalg::KernelPath> paths;
  for (const auto p : {linalg::KernelPath::avx512, linalg::KernelPath::avx2, linalg::KernelPath::portable})
    if (linalg::cpu_runs(p)) paths.push_back(p);
  return paths;
}

/// Puts `path` in force for its lifetime, then the path that was.
class KernelPathScope {
 public:
  explicit KernelPathScope(linalg::KernelPath path) : before_(linalg::kernel_path()) {
    linalg::set_kernel_path(path);
  }
  KernelPathScope(const KernelPathScope&) = delete;
  KernelPathScope& operator=(const KernelPathScope&) = delete;
  ~KernelPathScope() { linalg::set_kernel_path(before_); }

 private:
  linalg::KernelPath before_;
};

}  // namespace knead::test
