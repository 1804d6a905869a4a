#pragma once
// Helpers shared by the tests: random batches, a Catch2 check of a conformance report and the
// largest errors over several, input orders and hidden sizes for MADE-based tests, a temporary folder,
// a thread count for a scope.

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "knead/core/threads.hpp"
#include "knead/testing/conformance.hpp"

namespace knead::test {

/// Runs knead on n threads while in scope, splitting even the tests' small batches
/// (min_parallel_work() 0); then one thread and the threshold as it was, however the scope ends.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : work_(min_parallel_work()) {
    set_num_threads(n);
    set_min_parallel_work(0);
  }
  ~ThreadCount() {
    set_num_threads(1);
    set_min_parallel_work(work_);
  }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  Index work_;
};

/// A D×N batch of independent N(0, scale²) entries.
template <class T>
Matrix<T> random_batch(Index d, Index n, Rng& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  return Matrix<double>::NullaryExpr(d, n, [&] { return normal(rng); }).template cast<T>();
}

/// A D×N batch of isotropic N(μ, 1) samples.
template <class T = double>
Matrix<T> shifted_normal(Index d, Index n, Rng& rng, double mu) {
  return (random_batch<double>(d, n, rng).array() + mu).matrix().template cast<T>();
}

/// Fills every parameter with N(0, scale²) draws.
template <class P>
void randomise_parameters(P& p, Rng& rng, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  for (auto& v : p.parameters()) v = static_cast<std::remove_reference_t<decltype(v)>>(normal(rng));
}

/// Runs the conformance checker and fails the test with its summary if anything is off.
template <class B>
knead::testing::ConformanceReport require_conformance(B& b, const Matrix<typename B::Scalar>& z, Rng& rng) {
  auto report = knead::testing::check_conformance(b, z, rng);
  INFO(report.summary());
  CHECK(report.ok());
  return report;
}

/// Largest errors over the conformance reports of a test case; printed with KNEAD_PRINT_ERRORS set.
struct MaxErrors {
  double round_trip = 0, log_det = 0, input_gradient = 0, parameter_gradient = 0;
  void add(const knead::testing::ConformanceReport& r) {
    round_trip = std::max(round_trip, r.round_trip_error);
    log_det = std::max({log_det, r.log_det_error, r.log_det_symmetry_error});
    input_gradient = std::max(input_gradient, r.input_gradient_error);
    parameter_gradient = std::max(parameter_gradient, r.parameter_gradient_error);
  }
  void print(const char* what, bool is_float) const {
    if (std::getenv("KNEAD_PRINT_ERRORS") != nullptr)
      std::printf("%s<%s>: round trip %.3g, log-det %.3g, input gradient %.3g, parameter gradient %.3g\n",
                  what, is_float ? "float" : "double", round_trip, log_det, input_gradient,
                  parameter_gradient);
  }
};

/// A fixed input order of 0..d−1 (order[k] = dimension generated k-th), neither the identity nor,
/// for d ≥ 3, the reversal: for d ≤ 5 from a table, else k ↦ (s·k + 1) mod d with s the smallest
/// step ≥ 3 coprime to d. The random draws of the MADE and IAF tests depend on these orders (through
/// the redraws near the clamp's kinks), and some draws are too steep for float finite differences:
/// change the orders only together with a run of those tests (see also tests/bijectors/maf.cpp).
inline std::vector<Index> custom_order(Index d) {
  switch (d) {
    case 1:
      return {0};
    case 2:
      return {1, 0};
    case 3:
      return {1, 2, 0};
    case 5:
      return {3, 1, 4, 0, 2};
    default:
      break;
  }
  Index step = 3;
  while (std::gcd(step, d) != 1) ++step;
  std::vector<Index> order(static_cast<std::size_t>(d));
  for (Index k = 0; k < d; ++k) order[std::size_t(k)] = (step * k + 1) % d;  // d = 7: 1 4 0 3 6 2 5
  return order;
}

/// Hidden sizes of MADE in conformance checks. Float finite differences step by about 0.02, which
/// often straddles a kink of one of MADE's ReLUs (the float analytic gradients agree with double's,
/// yet a third of random float cases fail the checker with hidden layers). So float conformance
/// uses a MADE without hidden layers: smooth, still autoregressive; double uses two layers.
template <class T>
std::vector<Index> conformance_hidden(Index units) {
  if constexpr (std::is_same_v<T, double>) return {units, units};
  return {};
}

/// A copy of a span's values.
template <class T>
std::vector<std::remove_const_t<T>> copy_of(std::span<T> s) {
  return {s.begin(), s.end()};
}

/// A fresh folder under the system's temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "knead-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  /// Names of the entries in the folder, sorted.
  [[nodiscard]] std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace knead::test
