#pragma once
/// @file
/// Which float kernels knead's products run on: KernelPath, chosen once per process.
///
/// - `avx512`: knead's AVX-512 kernels (avx512_sgemm.hpp, thin_gemm.hpp), on a CPU with AVX-512F;
/// - `avx2`: knead's AVX2 + FMA kernels (avx2_sgemm.hpp, thin_gemm.hpp), on a CPU with both;
/// - `portable`: Eigen's kernel (gebp) compiled with the program's own flags, on any CPU.
///
/// The x86 kernels are compiled for their instruction sets by function attributes, whatever the
/// compiler flags, so a build without -march runs the best one the CPU has. They exist on x86-64
/// with GCC or Clang only; elsewhere the one path is `portable`. `double` runs on Eigen's kernel on
/// every path.
///
/// The path is the CPU's best unless the environment variable KNEAD_KERNEL (avx512, avx2 or
/// portable; read once, at the first product) or set_kernel_path() says otherwise. A path the CPU
/// cannot run, or an unknown name, is refused with std::invalid_argument.
///
/// Switching paths: each network pass (knead::Mlp) packs the weights and batches it reads at its
/// start, for the path then in force, so a switch between passes is safe (tested). A switch while
/// a pass runs (from another thread) is the caller's error, which knead does not detect: the pass
/// may read a layout packed for another kernel, or pack more of a batch than its buffer was sized
/// for. The avx512 and avx2 kernels share their packed layouts, and compute each entry of a general
/// product with the same chain of fused multiply-adds (their thin products sum in different orders).

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#include "knead/core/errors.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KNEAD_HAS_X86_KERNELS 1
#else
#define KNEAD_HAS_X86_KERNELS 0
#endif

namespace knead::linalg {

/// The kernels the float products run on (see the file's comment).
enum class KernelPath { avx512, avx2, portable };

/// "avx512", "avx2" or "portable".
[[nodiscard]] inline std::string_view to_string(KernelPath path) {
  switch (path) {
    case KernelPath::avx512:
      return "avx512";
    case KernelPath::avx2:
      return "avx2";
    default:
      return "portable";
  }
}

/// Whether this CPU (and this build) can run `path`.
[[nodiscard]] inline bool cpu_runs(KernelPath path) {
  switch (path) {
#if KNEAD_HAS_X86_KERNELS
    case KernelPath::avx512: {
      static const bool yes = __builtin_cpu_supports("avx512f");
      return yes;
    }
    case KernelPath::avx2: {
      static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
      return yes;
    }
#endif
    case KernelPath::portable:
      return true;
    default:
      return false;
  }
}

/// The paths this CPU runs, fastest first, comma separated ("avx2, portable").
[[nodiscard]] inline std::string cpu_kernel_paths() {
  std::string names;
  for (const KernelPath p : {KernelPath::avx512, KernelPath::avx2, KernelPath::portable})
    if (cpu_runs(p)) names += (names.empty() ? "" : ", ") + std::string(to_string(p));
  return names;
}

/// The fastest path this CPU runs.
[[nodiscard]] inline KernelPath best_kernel_path() {
  if (cpu_runs(KernelPath::avx512)) return KernelPath::avx512;
  if (cpu_runs(KernelPath::avx2)) return KernelPath::avx2;
  return KernelPath::portable;
}

/// The path named `name` (as to_string() spells it), checked against the CPU; `function` is named
/// in the error.
[[nodiscard]] inline KernelPath parse_kernel_path(std::string_view name, std::string_view function) {
  for (const KernelPath p : {KernelPath::avx512, KernelPath::avx2, KernelPath::portable}) {
    if (name != to_string(p)) continue;
    if (!cpu_runs(p))
      detail::fail(function, "kernel path '", name, "' cannot run on this CPU (it runs: ", cpu_kernel_paths(),
                   ")");
    return p;
  }
  detail::fail(function, "unknown kernel path '", name,
               "' (expected avx512, avx2 or portable; this CPU runs: ", cpu_kernel_paths(), ")");
}

/// The path a KNEAD_KERNEL value chooses: the CPU's best when it is null or empty.
[[nodiscard]] inline KernelPath kernel_path_from_setting(const char* value) {
  if (value == nullptr || *value == '\0') return best_kernel_path();
  return parse_kernel_path(value, "KNEAD_KERNEL");
}

/// The path in force, or -1 before the first kernel_path() or set_kernel_path().
inline std::atomic<int>& active_kernel_path() {
  static std::atomic<int> path{-1};
  return path;
}

/// The path the float products run on: at the first call (unless set_kernel_path() came first), the
/// one KNEAD_KERNEL names, or the CPU's best; an unknown or unavailable KNEAD_KERNEL throws, at
/// this call and the next ones, until a path is set.
[[nodiscard]] inline KernelPath kernel_path() {
  std::atomic<int>& active = active_kernel_path();
  int path = active.load(std::memory_order_relaxed);
  if (path < 0) {
    const int chosen = int(kernel_path_from_setting(std::getenv("KNEAD_KERNEL")));
    path = active.compare_exchange_strong(path, chosen, std::memory_order_relaxed) ? chosen : path;
  }
  return KernelPath(path);
}

/// Makes the float products run on `path` from now on; throws std::invalid_argument when the CPU
/// cannot run it. Not while a pass runs on another thread (see the file's comment).
inline void set_kernel_path(KernelPath path) {
  if (!cpu_runs(path))
    detail::fail("set_kernel_path", "kernel path '", to_string(path),
                 "' cannot run on this CPU (it runs: ", cpu_kernel_paths(), ")");
  active_kernel_path().store(int(path), std::memory_order_relaxed);
}

}  // namespace knead::linalg
