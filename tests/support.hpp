#pragma once
// Helpers shared by the tests: random batches and a Catch2 check of a conformance report.

#include <catch2/catch.hpp>
#include <random>

#include "knead/testing/conformance.hpp"

namespace knead::test {

/// A D×N batch of independent N(0, scale²) entries.
template <class T>
Matrix<T> random_batch(Index d, Index n, Rng& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  return Matrix<double>::NullaryExpr(d, n, [&] { return normal(rng); }).template cast<T>();
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

}  // namespace knead::test
