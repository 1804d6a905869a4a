#include "knead/linalg/kernel_path.hpp"

#include <stdexcept>
#include <string>

#include "linalg/kernel_paths.hpp"
#include "support.hpp"

using namespace knead;
using linalg::KernelPath;

namespace {

/// The message of the std::invalid_argument that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("Kernel paths are named, and portable runs everywhere", "[linalg][kernel_path]") {
  CHECK(linalg::to_string(KernelPath::avx512) == "avx512");
  CHECK(linalg::to_string(KernelPath::avx2) == "avx2");
  CHECK(linalg::to_string(KernelPath::portable) == "portable");
  CHECK(linalg::cpu_runs(KernelPath::portable));
  // the best path is one the CPU runs, and none it runs is faster
  const KernelPath best = linalg::best_kernel_path();
  CHECK(linalg::cpu_runs(best));
  if (best == KernelPath::portable) CHECK_FALSE(linalg::cpu_runs(KernelPath::avx2));
  if (best != KernelPath::avx512) CHECK_FALSE(linalg::cpu_runs(KernelPath::avx512));
  CHECK(contains(linalg::cpu_kernel_paths(), "portable"));
#if !(defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
  CHECK(best == KernelPath::portable);
#endif
}

TEST_CASE("KNEAD_KERNEL's values choose a path, or are refused with the paths this CPU runs",
          "[linalg][kernel_path][errors]") {
  CHECK(linalg::kernel_path_from_setting(nullptr) == linalg::best_kernel_path());
  CHECK(linalg::kernel_path_from_setting("") == linalg::best_kernel_path());
  for (const KernelPath p : {KernelPath::avx512, KernelPath::avx2, KernelPath::portable}) {
    const std::string name(linalg::to_string(p));
    INFO(name);
    if (linalg::cpu_runs(p)) {
      CHECK(linalg::kernel_path_from_setting(name.c_str()) == p);
    } else {
      const std::string error = error_of([&] { (void)linalg::kernel_path_from_setting(name.c_str()); });
      CHECK(contains(error, "KNEAD_KERNEL"));
      CHECK(contains(error, "'" + name + "' cannot run on this CPU"));
      CHECK(contains(error, linalg::cpu_kernel_paths()));
    }
  }
  for (const char* unknown : {"AVX2", "sse2", "avx2 ", "avx"}) {
    INFO(unknown);
    const std::string error = error_of([&] { (void)linalg::kernel_path_from_setting(unknown); });
    CHECK(contains(error, "KNEAD_KERNEL: unknown kernel path '" + std::string(unknown) + "'"));
    CHECK(contains(error, linalg::cpu_kernel_paths()));
  }
}

TEST_CASE("set_kernel_path puts a path the CPU runs in force and refuses the others",
          "[linalg][kernel_path][errors]") {
  const KernelPath before = linalg::kernel_path();
  for (const KernelPath p : {KernelPath::avx512, KernelPath::avx2, KernelPath::portable}) {
    INFO(linalg::to_string(p));
    if (linalg::cpu_runs(p)) {
      {
        const test::KernelPathScope on_path(p);
        CHECK(linalg::kernel_path() == p);
      }
      CHECK(linalg::kernel_path() == before);
    } else {
      const std::string error = error_of([&] { linalg::set_kernel_path(p); });
      CHECK(contains(error, "set_kernel_path: kernel path '" + std::string(linalg::to_string(p)) + "'"));
      CHECK(contains(error, linalg::cpu_kernel_paths()));
      CHECK(linalg::kernel_path() == before);
    }
  }
}
